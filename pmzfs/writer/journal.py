"""The staging journal: one manifest per staged file, written atomically.

Each staged file ``<id>.data`` has a manifest ``<id>.json`` beside it that
names the upload target and the upload's progress.  A durable save writes
the manifest to a temporary file, fsyncs it, renames it over the old one
and fsyncs the directory, so after a crash the manifest is either the old
or the new version, never a torn mix.  The next mount reads these
manifests to finish or report every upload that was pending.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1

# States of a manifest.
# Open for writing; nothing has been promised to the application yet.
WRITING = "writing"
# Flushed: the data file is fsynced and must reach the service.
READY = "ready"
# The upload landed under ``upload_name`` as ``uploaded_id``; it still has to
# be renamed into place and replace the old file.
UPLOADED = "uploaded"
# Gave up after an error that retrying cannot fix (the target folder is
# gone); the data stays staged until the next mount tries once more.
FAILED = "failed"
# No data: a leftover file on the service (``replaces_id``) to delete.
CLEANUP = "cleanup"

STATES = (WRITING, READY, UPLOADED, FAILED, CLEANUP)
PENDING_STATES = (READY, UPLOADED, FAILED)

LOCK_NAME = ".lock"
UNFLUSHED_DIR = "unflushed"


@dataclass
class Manifest:
    """The journal record of one staged file."""

    staging_id: str
    folder_id: str
    name: str
    state: str = WRITING
    # Account the target folder belongs to; empty when the writer was given none.
    account_id: str = ""
    # The file on the service that this content replaces, None for a new file.
    replaces_id: str | None = None
    # Size of the data in bytes when it was last flushed.
    size: int = 0
    # Wall-clock seconds since the epoch.
    created: float = 0.0
    updated: float = 0.0
    # True once the data differs from the service copy (or is new).
    modified: bool = False
    # Temporary names on the service of the current upload and of the old
    # file while it is set aside.  Each is unique, so a file with one of
    # them can only have come from this manifest.
    upload_name: str | None = None
    aside_name: str | None = None
    uploaded_id: str | None = None
    attempts: int = 0
    last_error: str | None = None
    # Modification time in nanoseconds that the user set and that the mtime
    # store gets once the upload has an id.
    mtime_ns: int | None = None
    version: int = MANIFEST_VERSION

    @classmethod
    def new(cls, folder_id: str, name: str, *, account_id: str = "", replaces_id: str | None = None) -> Manifest:
        """Build the manifest of a newly staged file with a fresh staging id."""
        now = time.time()
        return cls(
            staging_id=secrets.token_hex(8),
            folder_id=folder_id,
            name=name,
            account_id=account_id,
            replaces_id=replaces_id,
            created=now,
            updated=now,
        )

    @classmethod
    def from_json(cls, data: dict) -> Manifest:
        known = {f.name for f in fields(cls)}
        manifest = cls(**{key: value for key, value in data.items() if key in known})
        if manifest.state not in STATES:
            raise ValueError(f"unknown state {manifest.state!r}")
        return manifest


def new_temporary_name(kind: str) -> str:
    """Return a unique hidden name for a file the writer puts on the service for a while.

    ``kind`` is ``"new"`` for an upload and ``"old"`` for a file set aside
    during a replace.  The name contains only ASCII letters, digits, dots
    and dashes, so the upload sends it unchanged in the multipart header.
    """
    return f".pmzfs-{kind}-{secrets.token_hex(8)}.part"


def is_temporary_name(name: str) -> bool:
    """Return whether ``name`` is one that the writer gives files while it uploads or replaces them."""
    return name.startswith((".pmzfs-new-", ".pmzfs-old-")) and name.endswith(".part")


class Journal:
    """The staging directory: data files, their manifests and the directory lock."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock_fd: int | None = None

    def data_path(self, staging_id: str) -> Path:
        return self.directory / f"{staging_id}.data"

    def manifest_path(self, staging_id: str) -> Path:
        return self.directory / f"{staging_id}.json"

    def lock(self) -> None:
        """Create the directory and take its exclusive lock.

        Raises ``StagingLocked`` when another process has it locked, because
        two mounts sharing one staging directory would each upload the
        other's files.
        """
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StagingLocked(
                f"the staging directory {self.directory} is in use by another pmzfs process; "
                "give each mount its own --cache-dir"
            ) from None
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def save(self, manifest: Manifest, *, durable: bool) -> None:
        """Write ``manifest`` atomically; with ``durable``, fsync it and the directory first.

        Blocking; callers in trio run durable saves in a worker thread.
        """
        manifest.updated = time.time()
        text = json.dumps(asdict(manifest), indent=1, sort_keys=True)
        target = self.manifest_path(manifest.staging_id)
        temporary = target.with_name(f"{target.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, text.encode("utf-8"))
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, target)
        if durable:
            self.sync_directory()

    def sync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def remove(self, staging_id: str, *, data: bool = True) -> None:
        """Delete a manifest and, with ``data``, its data file; missing files are fine."""
        paths = [self.manifest_path(staging_id)]
        if data:
            paths.append(self.data_path(staging_id))
        for path in paths:
            try:
                path.unlink()
            except FileNotFoundError:
                pass

    def load_all(self) -> tuple[list[Manifest], list[Path]]:
        """Read every manifest; return them and the data files that have none.

        A manifest that cannot be parsed is logged and renamed to
        ``*.json.invalid``, so it stops being retried but is not lost.
        """
        manifests: list[Manifest] = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                manifests.append(Manifest.from_json(json.loads(path.read_text("utf-8"))))
            except (OSError, ValueError, TypeError) as exc:
                log.error("staging manifest %s is unreadable (%s); renamed it to %s.invalid", path, exc, path.name)
                path.rename(path.with_name(path.name + ".invalid"))
        for leftover in self.directory.glob("*.json.*.tmp"):
            leftover.unlink(missing_ok=True)
        known = {m.staging_id for m in manifests}
        orphans = [p for p in sorted(self.directory.glob("*.data")) if p.stem not in known]
        return manifests, orphans

    def set_aside(self, data_path: Path, name: str) -> Path:
        """Move a data file that will not be uploaded into ``unflushed/`` under a readable name."""
        folder = self.directory / UNFLUSHED_DIR
        folder.mkdir(exist_ok=True, mode=0o700)
        safe = name.replace("/", "_")[:200] or "unnamed"
        target = folder / f"{data_path.stem}-{safe}"
        os.replace(data_path, target)
        return target


class StagingLocked(Exception):
    """Another process has locked the staging directory."""

