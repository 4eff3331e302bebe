"""Status of staged uploads, from a running writer or from the journal on disk.

``pmzfs status`` runs in another process than the mount, so
``staging_status`` reads the manifests directly.  That is why each
manifest records its upload's state and last error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pmzfs.writer.journal import FAILED, PENDING_STATES, Manifest


@dataclass(frozen=True)
class StagedUpload:
    """One upload that waits in the staging directory."""

    staging_id: str
    folder_id: str
    name: str
    size: int
    # "ready" (waits for its upload), "uploaded" (landed, not yet in place)
    # or "failed" (gave up until the next mount).
    state: str
    attempts: int
    last_error: str | None
    staged_path: Path
    # Wall-clock seconds since the epoch of the last change to the manifest.
    updated: float


@dataclass(frozen=True)
class WriterStatus:
    """Pending uploads, failed uploads (with their last error) and the bytes staged on local disk.

    ``pending`` contains uploads that have not failed yet.  ``failed``
    contains those whose last attempt failed, which are retried in the
    background unless their state is "failed".
    """

    pending: tuple[StagedUpload, ...]
    failed: tuple[StagedUpload, ...]
    bytes_staged: int

    @classmethod
    def from_entries(cls, entries: list[StagedUpload], bytes_staged: int) -> WriterStatus:
        entries = sorted(entries, key=lambda entry: entry.updated)
        return cls(
            pending=tuple(e for e in entries if e.last_error is None and e.state != FAILED),
            failed=tuple(e for e in entries if e.last_error is not None or e.state == FAILED),
            bytes_staged=bytes_staged,
        )


def describe_manifest(manifest: Manifest, path: Path, size: int) -> StagedUpload:
    return StagedUpload(
        staging_id=manifest.staging_id,
        folder_id=manifest.folder_id,
        name=manifest.name,
        size=size,
        state=manifest.state,
        attempts=manifest.attempts,
        last_error=manifest.last_error,
        staged_path=path,
        updated=manifest.updated,
    )


def staging_status(staging_dir: Path) -> WriterStatus:
    """Read the status of the staging directory without a running writer.

    A mount may change the files meanwhile, so a manifest that disappears
    or is half-read is skipped.  A missing directory has nothing staged.
    """
    entries: list[StagedUpload] = []
    staged_bytes = 0
    if not staging_dir.is_dir():
        return WriterStatus.from_entries(entries, 0)
    for data_path in staging_dir.glob("*.data"):
        try:
            staged_bytes += data_path.stat().st_size
        except FileNotFoundError:
            continue
    for path in staging_dir.glob("*.json"):
        try:
            manifest = Manifest.from_json(json.loads(path.read_text("utf-8")))
        except (OSError, ValueError, TypeError):
            continue
        if manifest.state not in PENDING_STATES:
            continue
        data_path = staging_dir / f"{manifest.staging_id}.data"
        try:
            size = data_path.stat().st_size
        except FileNotFoundError:
            size = manifest.size
        entries.append(describe_manifest(manifest, data_path, size))
    return WriterStatus.from_entries(entries, staged_bytes)
