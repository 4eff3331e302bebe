"""Local data files of staged uploads, and the copy-on-write fetch that fills them.

Every read, write and truncate is a positioned system call on the data
file, so memory use does not grow with the file size.  The fetch streams a
ranged GET of the file's link straight to disk as the bytes arrive (in
pieces of the network's read size) and resumes where it stopped when the connection drops or the link expires.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import trio

log = logging.getLogger(__name__)

# Fetch attempts in a row that may fail without any new bytes arriving.
FETCH_ATTEMPTS = 5
# HTTP statuses of a link that stopped working.
DEAD_LINK_STATUSES = (401, 403, 404, 410)


class FetchError(Exception):
    """The content of an existing file could not be fetched into staging."""


class StagedData:
    """One data file in the staging directory, opened on demand.

    The descriptor is closed by ``close`` so that thousands of pending
    uploads do not hold thousands of descriptors.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def _descriptor(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        return self._fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def size(self) -> int:
        return os.fstat(self._descriptor()).st_size

    def read(self, offset: int, length: int) -> bytes:
        return os.pread(self._descriptor(), length, offset)

    def write(self, offset: int, data: bytes | memoryview) -> int:
        """Write all of ``data`` at ``offset``; return the byte count."""
        fd = self._descriptor()
        view = memoryview(data)
        written = 0
        while written < len(view):
            written += os.pwrite(fd, view[written:], offset + written)
        return written

    def truncate(self, size: int) -> None:
        os.ftruncate(self._descriptor(), size)

    def sync(self) -> None:
        """Flush the data to the disk (blocking; run it in a worker thread)."""
        os.fsync(self._descriptor())

    def remove(self) -> None:
        self.close()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


async def fetch_into(
    data: StagedData,
    http: httpx.AsyncClient,
    link: str,
    length: int,
    refresh_link: Callable[[], Awaitable[str]],
    *,
    file_id: str,
) -> None:
    """Download the first ``length`` bytes of a file's ``link`` into ``data``.

    A dropped connection resumes at the first missing byte, and a link that
    returns 401, 403, 404 or 410 is replaced by ``refresh_link()``.  Raises
    ``FetchError`` after ``FETCH_ATTEMPTS`` failures in a row without
    progress.  The link is never logged, because it may carry a credential.
    """
    data.truncate(0)
    position = 0
    failures = 0
    while position < length:
        before = position
        try:
            position = await _fetch_once(data, http, link, position, length, file_id)
            if position < length:
                raise FetchError(f"the link of file {file_id} ended after {position} of {length} bytes")
        except (httpx.TransportError, _DeadLink, FetchError) as exc:
            # Bytes arrive in order, so the file's size is where to resume.
            position = min(data.size(), length)
            if position > before:
                failures = 0
            failures += 1
            if failures >= FETCH_ATTEMPTS:
                raise FetchError(
                    f"fetching file {file_id} into staging failed {failures} times in a row "
                    f"at byte {position} of {length}: {_describe(exc)}"
                ) from exc
            log.warning(
                "fetching file %s into staging failed at byte %d of %d (%s); retrying (attempt %d of %d)",
                file_id, position, length, _describe(exc), failures + 1, FETCH_ATTEMPTS,
            )
            if isinstance(exc, _DeadLink):
                link = await refresh_link()
            await trio.sleep(0.2 * 2 ** (failures - 1))


class _DeadLink(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(f"the link returned HTTP {status}")


async def _fetch_once(
    data: StagedData, http: httpx.AsyncClient, link: str, position: int, length: int, file_id: str
) -> int:
    """Stream bytes ``position`` to ``length - 1`` into ``data``; return the new position."""
    headers = {"Range": f"bytes={position}-{length - 1}"}
    async with http.stream("GET", link, headers=headers) as response:
        if response.status_code in DEAD_LINK_STATUSES:
            raise _DeadLink(response.status_code)
        if response.status_code == 206:
            start = _range_start(response.headers.get("Content-Range", ""))
            if start != position:
                raise FetchError(f"the link of file {file_id} returned a range starting at {start}, expected {position}")
            skip = 0
        elif response.status_code == 200:
            # The server ignored the Range header and sends the whole file.
            skip = position
        else:
            raise FetchError(f"the link of file {file_id} returned HTTP {response.status_code}")

        async for chunk in response.aiter_bytes():
            if skip:
                dropped = min(skip, len(chunk))
                chunk = chunk[dropped:]
                skip -= dropped
            chunk = chunk[: length - position]
            if chunk:
                position += data.write(position, chunk)
            if position >= length:
                break
    return position


def _range_start(content_range: str) -> int | None:
    # Content-Range: bytes 100-199/1000
    try:
        unit, spec = content_range.split(" ", 1)
        if unit.strip().lower() != "bytes":
            return None
        return int(spec.split("-", 1)[0])
    except ValueError:
        return None


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
