"""The records of the writer: staged files, write handles, upload results and retry delays.

All handles of one file share one ``StagedFile``, so every open file
descriptor reads the others' writes, as on a local filesystem.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import trio

from pmzfs.api.models import Item
from pmzfs.writer.journal import PENDING_STATES, Manifest
from pmzfs.writer.staging import StagedData

if TYPE_CHECKING:
    from pmzfs.writer.core import Writer


class WriteError(Exception):
    """A write-side operation failed; ``errno`` is what the filesystem call returns."""

    def __init__(self, errno_value: int, message: str) -> None:
        super().__init__(message)
        self.errno = errno_value


@dataclass(frozen=True)
class UploadDone:
    """A confirmed upload: ``item`` is the new file, named and in place.

    ``replaced_id`` is the file it replaced, now deleted, or None for a new
    file.  ``staging_id`` identifies the staged file that was uploaded.
    """

    staging_id: str
    folder_id: str
    item: Item
    replaced_id: str | None


class WriterListener(Protocol):
    """The callback through which the writer reports its own changes on the service to the metadata tree."""

    def upload_done(self, done: UploadDone) -> None:
        """Insert ``done.item`` into the cached listing of ``done.folder_id`` and drop ``done.replaced_id``.

        Called after every confirmed upload, from a flush or from a
        background retry, in the writer's trio task; it must not block.
        """


@dataclass(frozen=True)
class RetryPolicy:
    """Seconds to wait before each background retry; the last delay repeats without end."""

    delays: tuple[float, ...] = (5.0, 15.0, 60.0, 300.0, 600.0)

    def delay(self, attempts: int) -> float:
        return self.delays[min(max(attempts, 1), len(self.delays)) - 1]


class StagedFile:
    """The local copy of one file that is being written or waits to be uploaded.

    Read its attributes; change it only through a ``WriteHandle`` or the
    ``Writer``.  ``file_id`` is the file on the service that this content
    replaces on its next upload (after an upload, that upload's file), or
    None for a file that is not on the service yet.
    """

    def __init__(self, manifest: Manifest, data: StagedData, *, size: int, source: Item | None) -> None:
        self.manifest = manifest
        self.data = data
        self.lock = trio.Lock()
        self.handles = 0
        # The service file whose content is fetched on first use (copy-on-write).
        self.source = source
        self.materialized = source is None
        self._size = size
        # Versions of the content, bumped by every change.  ``ready_generation``
        # is the version journaled as READY, and ``attempted_generation`` the
        # last one an upload was tried for.
        self.generation = 0
        self.uploaded_generation = 0
        self.attempted_generation = 0
        self.ready_generation = -1
        self.last_errno = errno.EIO
        self.item: Item | None = None
        self.mtime_ns: int | None = None
        self.mtime_explicit = False
        # Unlinked: handles keep working, but nothing is uploaded or journaled.
        self.discarded = False
        # Forgotten by the writer after its last release or its upload.
        self.dropped = False
        self.next_retry: float | None = None
        self.index_keys: list[object] = []

    @property
    def staging_id(self) -> str:
        return self.manifest.staging_id

    @property
    def folder_id(self) -> str:
        return self.manifest.folder_id

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def file_id(self) -> str | None:
        return self.manifest.replaces_id

    @property
    def size(self) -> int:
        """Current size in bytes, including writes not yet uploaded."""
        return self._size

    @property
    def dirty(self) -> bool:
        """True when the content changed since the last confirmed upload."""
        return self.generation != self.uploaded_generation

    @property
    def pending(self) -> bool:
        """True while flushed content waits for its upload (after a failure or a crash)."""
        return self.manifest.state in PENDING_STATES

    @property
    def tracked(self) -> bool:
        """True while the writer journals and uploads this file."""
        return not (self.discarded or self.dropped)

    @property
    def path(self) -> Path:
        return self.data.path


class WriteHandle:
    """One open file descriptor on a staged file; FUSE's file handle for files open for writing."""

    def __init__(self, writer: Writer, staged: StagedFile) -> None:
        self._writer = writer
        self.staged = staged
        self.closed = False

    def _check_open(self) -> StagedFile:
        if self.closed:
            raise WriteError(errno.EBADF, f"the handle of {self.staged.name!r} is already released")
        return self.staged

    async def read(self, offset: int, length: int) -> bytes:
        """Return up to ``length`` bytes at ``offset`` of the staged content; short only at the end."""
        return await self._writer._read(self._check_open(), offset, length)

    async def write(self, offset: int, data: bytes) -> int:
        """Write ``data`` at ``offset`` into the staged copy; return the byte count."""
        return await self._writer._write(self._check_open(), offset, data)

    async def truncate(self, size: int) -> None:
        """Cut or extend the staged content to ``size`` bytes."""
        await self._writer._truncate(self._check_open(), size)

    async def set_mtime(self, mtime_ns: int) -> None:
        """Set the modification time; it reaches the mtime store with the next upload's file id."""
        await self._writer._set_mtime(self._check_open(), mtime_ns)

    async def flush(self) -> Item | None:
        """Upload the content if it changed since the last upload; return the file on the service.

        Returns None when nothing was ever uploaded because nothing changed.
        Raises ``WriteError`` (EIO, EDQUOT, ENOSPC...) when the upload
        failed; the data then stays staged and a background retry uploads it.
        """
        return await self._writer._flush(self._check_open())

    async def fsync(self) -> Item | None:
        """Same as ``flush``: the data is safe once the service has it."""
        return await self.flush()

    async def release(self) -> None:
        """Close the handle; the last release of a clean file deletes its staged copy."""
        if self.closed:
            return
        self.closed = True
        await self._writer._release(self.staged)
