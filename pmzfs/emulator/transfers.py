"""Transfers, direct links, cache checks and the services list.

Nothing is downloaded: a transfer "downloads" synthetic files whose size
and bytes derive from the SHA-256 of its source, so the same source always
yields the same files.  Progress follows the wall clock at
``options.transfer_speed`` bytes per second (instant when None) and is
brought up to date at the start of every API call.

Source rules (the emulator's own, since the service's are unknown):

- ``http(s)://...`` makes one file named after the last path segment,
  stored in the target folder; the transfer's ``file_id`` is set.
- ``magnet:?xt=...`` and an uploaded ``.torrent`` or ``.nzb`` make a
  folder, named after ``dn`` or the uploaded file, that contains a video
  and an ``.nfo`` file.  The transfer's ``folder_id`` changes to that new
  folder.
- A source that contains ``fail`` fails its first attempt with status
  ``error``; ``transfer/retry`` then succeeds.
- A URL path ending in ``.dlc``, ``.ccf`` or ``.rsdf`` is a container.  The
  response lists three extracted links and no transfer is created.
- Another scheme gets ``service_unsupported``, and text that is no URL gets
  ``invalid_request``.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from pmzfs.emulator.content import mime_type_for
from pmzfs.emulator.errors import ServiceError, invalid_request, not_found
from pmzfs.emulator.state import MAX_NAME_LENGTH, new_id

if TYPE_CHECKING:
    from pmzfs.emulator.params import Params
    from pmzfs.emulator.server import Emulator

MIB = 1024 * 1024
CONTAINER_SUFFIXES = (".dlc", ".ccf", ".rsdf")
MAX_SOURCE_LENGTH = 8192

SERVICES: dict[str, Any] = {
    "cache": ["examplehoster", "exampletube"],
    "directdl": ["examplehoster", "exampletube", "examplefiles"],
    "queue": ["examplehoster", "examplefiles"],
    "fairusefactor": {"examplehoster": 1, "exampletube": 2, "examplefiles": 1},
    "aliases": {"examplehoster": ["hoster.example"], "exampletube": [], "examplefiles": ["files.example"]},
    "regexpatterns": {
        "examplehoster": [
            "^https?://(?:www\\.)?examplehoster\\.com/.*$",
            "^https?://(?:www\\.)?hoster\\.example/.*$",
        ],
        "exampletube": ["^https?://(?:www\\.)?exampletube\\.com/.*$"],
        "examplefiles": ["^https?://(?:www\\.)?files\\.example/.*$"],
    },
}


@dataclass(frozen=True)
class SyntheticFile:
    """One file a source yields: its path below the transfer's folder, size and seed."""

    path: str
    size: int
    seed: str


@dataclass(frozen=True)
class Source:
    """A parsed transfer source."""

    text: str
    name: str
    digest: str
    is_archive: bool  # magnet, .torrent or .nzb: the files go into a new folder

    def files(self) -> list[SyntheticFile]:
        """Return the synthetic files of this source, in a fixed order."""
        number = int(self.digest[:12], 16)
        video_size = MIB + number % (3 * MIB)
        if not self.is_archive:
            return [SyntheticFile(self.name, video_size, f"{self.digest}:0")]
        stem = PurePosixPath(self.name).stem or self.name
        return [
            SyntheticFile(f"{self.name}/{stem}.mkv", video_size, f"{self.digest}:0"),
            SyntheticFile(f"{self.name}/{stem}.nfo", 512 + number % 1024, f"{self.digest}:1"),
        ]

    @property
    def size(self) -> int:
        return sum(file.size for file in self.files())


def _clip_name(name: str) -> str:
    name = name.replace("\x00", "").strip() or "download"
    return name[:MAX_NAME_LENGTH]


def parse_source(src: str | None, upload: tuple[str, bytes] | None = None) -> Source:
    """Parse ``src`` or an uploaded .torrent/.nzb ``(filename, data)`` into a ``Source``."""
    if upload is not None:
        filename, data = upload
        suffix = PurePosixPath(filename).suffix.lower()
        if suffix not in (".torrent", ".nzb"):
            raise ServiceError("service_unsupported", f"uploaded file {filename!r} is not a .torrent or .nzb file")
        if not data:
            raise invalid_request(f"uploaded file {filename!r} is empty")
        digest = hashlib.sha256(data).hexdigest()
        return Source(filename, _clip_name(PurePosixPath(filename).stem), digest, True)
    if not src:
        raise invalid_request("send 'src' (a URL or magnet link) or a .torrent or .nzb file as 'file'")
    if len(src) > MAX_SOURCE_LENGTH:
        raise invalid_request(f"src is {len(src)} characters long; the maximum is {MAX_SOURCE_LENGTH}")
    digest = hashlib.sha256(src.encode("utf-8")).hexdigest()
    parts = urlsplit(src.strip())
    scheme = parts.scheme.lower()
    if scheme == "magnet":
        query = parse_qs(parts.query)
        if not any(value.startswith("urn:") for value in query.get("xt", [])):
            raise invalid_request("the magnet link has no 'xt=urn:...' parameter")
        name = query.get("dn", [f"magnet-{digest[:8]}"])[0]
        return Source(src, _clip_name(name), digest, True)
    if scheme in ("http", "https"):
        if not parts.hostname:
            raise invalid_request(f"src {src!r} has no host")
        segment = unquote(parts.path.rstrip("/").rsplit("/", 1)[-1]) if parts.path.strip("/") else ""
        return Source(src, _clip_name(segment or parts.hostname), digest, False)
    if scheme:
        raise ServiceError("service_unsupported", f"sources with the scheme {scheme!r} are not supported")
    raise invalid_request(f"src {src!r} is not a URL or magnet link")


class Transfers:
    """The account's transfer list, saved with the state as plain records."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.state = emu.state

    @property
    def _records(self) -> list[dict[str, Any]]:
        return self.state.extra.setdefault("transfers", [])

    # ------------------------------------------------------------ API

    def create(self, params: Params) -> dict[str, Any]:
        """Start a transfer from ``src`` or an uploaded ``file``; return the response fields."""
        part = params.files.get("file")
        source = parse_source(params.get("src"), (part.filename, part.data) if part else None)
        if not source.is_archive and PurePosixPath(urlsplit(source.text).path).suffix.lower() in CONTAINER_SUFFIXES:
            links = [f"{source.text.rsplit('.', 1)[0]}-part{index}.bin" for index in range(1, 4)]
            return {"type": "container", "content": links}
        folder_id = params.get("folder_id") or self.state.root_id
        self.state.folder(folder_id)
        now = time.time()
        record = {
            "id": new_id(),
            "name": source.name,
            "src": source.text,
            "upload_digest": source.digest if part else None,
            "status": "running",
            "progress": 0.0,
            "message": "Downloading",
            "folder_id": folder_id,
            "file_id": None,
            "started_at": now,
            "attempt": 1,
            "fails_first": "fail" in source.text.lower(),
        }
        with self.state.lock:
            self._records.insert(0, record)
            self.state.mark_dirty()
        self.advance()
        return {"id": record["id"], "name": record["name"]}

    def list(self) -> list[dict[str, Any]]:
        keys = ("id", "name", "status", "progress", "message", "folder_id", "file_id")
        with self.state.lock:
            return [{key: record[key] for key in keys} for record in self._records]

    def _find(self, transfer_id: str) -> dict[str, Any]:
        for record in self._records:
            if record["id"] == transfer_id:
                return record
        raise not_found(f"transfer {transfer_id!r} not found")

    def retry(self, transfer_id: str) -> None:
        with self.state.lock:
            record = self._find(transfer_id)
            if record["status"] != "error":
                raise invalid_request(f"transfer {transfer_id!r} has status {record['status']!r}; only failed transfers can be retried")
            record.update(status="running", progress=0.0, message="Downloading", started_at=time.time())
            record["attempt"] += 1
            self.state.mark_dirty()
        self.advance()

    def delete(self, transfer_id: str) -> None:
        with self.state.lock:
            self._records.remove(self._find(transfer_id))
            self.state.mark_dirty()

    def clear_finished(self) -> None:
        with self.state.lock:
            self._records[:] = [record for record in self._records if record["status"] != "finished"]
            self.state.mark_dirty()

    # ------------------------------------------------------------ progress

    def advance(self) -> None:
        """Bring the progress of running transfers up to date and finish the completed ones."""
        with self.state.lock:
            running = [record for record in self._records if record["status"] == "running"]
            if not running:
                return
            speed = self.emu.options.transfer_speed
            now = time.time()
            for record in running:
                source = self._source_of(record)
                if speed is None:
                    progress = 1.0
                else:
                    progress = min(1.0, (now - record["started_at"]) * speed / max(source.size, 1))
                record["progress"] = round(progress, 4)
                if progress >= 1.0:
                    self._finish(record, source)
            self.state.mark_dirty()

    def _source_of(self, record: dict[str, Any]) -> Source:
        if record["upload_digest"]:
            return Source(record["src"], record["name"], record["upload_digest"], True)
        return parse_source(record["src"])

    def _finish(self, record: dict[str, Any], source: Source) -> None:
        if record["fails_first"] and record["attempt"] == 1:
            record.update(status="error", progress=0.0, message="Download failed: the emulated host rejected the request")
            return
        try:
            target = record["folder_id"]
            if source.is_archive:
                target = self.state.create_folder(target, source.name, check_names=False)
            file_ids = [
                self.state.add_file(
                    target,
                    PurePosixPath(file.path).name,
                    (file.size, file.seed),
                    space_limit=self.emu.options.space_limit,
                    check_names=False,
                )
                for file in source.files()
            ]
        except ServiceError as exc:
            record.update(status="error", progress=0.0, message=f"Download failed: {exc.message}")
            return
        record.update(status="finished", progress=1.0, message="", folder_id=target)
        record["file_id"] = None if source.is_archive else file_ids[0]

    # ------------------------------------------------------------ direct links and cache

    def directdl(self, src: str) -> dict[str, Any]:
        """Return synthetic direct links of a source, served from ``/ddl/``."""
        source = parse_source(src)
        signer = self.emu.signer
        content = []
        for file in source.files():
            entry_id = f"{file.seed}:{file.size}"
            signature = signer.sign_entry("ddl", entry_id)
            name = quote(PurePosixPath(file.path).name, safe="")
            link = f"{self.emu.base_url}/ddl/{quote(entry_id, safe='')}/{signature}/{name}"
            content.append({"path": file.path, "size": file.size, "link": link})
        return {"content": content}

    def lookup_direct_link(self, path: str) -> tuple[str, int, str] | None:
        """Return ``(seed, size, mime type)`` of a genuine ``/ddl/`` path, or None."""
        parts = path.split("/")
        if len(parts) < 5:
            return None
        entry_id = unquote(parts[2])
        if not self.emu.signer.check_entry("ddl", entry_id, parts[3]):
            return None
        seed, _, size = entry_id.rpartition(":")
        if not size.isdigit():
            return None
        return seed, int(size), mime_type_for(unquote(parts[4]))

    def cache_check(self, items: list[str]) -> dict[str, Any]:
        """Return the parallel arrays of ``cache/check``: a source counts as cached when its digest is even."""
        if not items:
            raise invalid_request("send at least one item as items[]")
        response: list[bool] = []
        filenames: list[str | None] = []
        filesizes: list[str | int] = []
        for item in items:
            try:
                source = parse_source(item)
            except ServiceError:
                source = None
            cached = source is not None and int(source.digest[:2], 16) % 2 == 0
            response.append(cached)
            filenames.append(source.name if cached else None)
            filesizes.append(str(source.size) if cached else 0)
        return {"response": response, "filename": filenames, "filesize": filesizes}
