"""The Reader: the HTTP clients for file links, one memory budget and the open files of a mount."""

from __future__ import annotations

import collections
import errno
import logging
from collections.abc import Awaitable, Callable

import httpx
import trio

from pmzfs import __version__
from pmzfs.reader._buffers import BufferPool
from pmzfs.reader._errors import ReadError
from pmzfs.reader._fetch import Fetcher, Link, RetryLimits
from pmzfs.reader._file import MIN_CHUNK, FileState, Stream
from pmzfs.reader._http import RangeClient, proxy_configured

log = logging.getLogger(__name__)

MiB = 1024 * 1024

# A stream read within this many seconds keeps its read-ahead when another
# stream needs memory; older streams are evicted first.
ACTIVE_SECONDS = 1.0


class ReadHandle:
    """One open handle of a file; several handles of one file share its chunks."""

    __slots__ = ("_reader", "_file", "_closed")

    def __init__(self, reader: Reader, file: FileState) -> None:
        self._reader = reader
        self._file = file
        self._closed = False

    @property
    def file_id(self) -> str:
        return self._file.file_id

    @property
    def size(self) -> int:
        return self._file.size

    async def read(self, offset: int, length: int) -> bytes | memoryview:
        """Return ``length`` bytes at ``offset``, fewer only at the end of the file.

        The result is bytes or a read-only memoryview of a chunk's buffer.

        Raises ``ReadError`` (EIO) when the bytes cannot be fetched within
        the retry limits, EBADF after ``close`` and EINVAL for a negative
        offset or length.
        """
        if self._closed:
            raise ReadError(f"read of file {self._file.file_id} on a closed handle", errno.EBADF)
        return await self._file.read(offset, length)

    async def close(self) -> None:
        """Close the handle; closing the file's last handle cancels its downloads.

        Calling it again does nothing.
        """
        if self._closed:
            return
        self._closed = True
        await self._reader._release(self._file)


class Reader:
    """Range reads against file links, with read-ahead under a shared memory budget.

    ``memory_limit`` bounds the bytes that read-ahead of all open files may
    hold, together with the free buffers kept for reuse.  A read that
    misses memory fetches its own bytes even beyond the limit, after
    evicting the least recently read positions.  ``max_window``
    is the largest read-ahead of one position, and ``connections_per_file``
    the parallel range requests that one file's read-ahead may have open.
    ``transport`` replaces the HTTP transport (tests pass
    ``httpx.MockTransport``).
    """

    def __init__(
        self,
        memory_limit: int = 128 * MiB,
        max_window: int = 32 * MiB,
        connections_per_file: int = 4,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: httpx.Timeout | None = None,
        retry_limits: RetryLimits | None = None,
    ) -> None:
        _require_at_least("memory_limit", memory_limit, MIN_CHUNK, "bytes")
        _require_at_least("max_window", max_window, MIN_CHUNK, "bytes")
        _require_at_least("connections_per_file", connections_per_file, 1, "connections")
        self.memory_limit = memory_limit
        self.max_window = max_window
        self.connections_per_file = connections_per_file
        self._transport = transport
        # The range client reads straight into chunk buffers; httpx stays
        # for a test's transport and for proxies, which only httpx speaks to.
        self._use_range_client = transport is None and not proxy_configured()
        self._range_clients: list[RangeClient] = []
        # Buffers of dropped chunks, reused by new ones.  Up to a quarter
        # of the budget (at most 32 MiB), and only what the chunks leave
        # of it, so chunks and free buffers together stay within it.  With
        # 16 MiB, a 1 GiB stream in the reader's benchmark read at 1.6
        # instead of 2.2 GB/s on the 2-core development machine.
        self.buffers = BufferPool(keep=min(32 * MiB, memory_limit // 4))
        self._timeout = timeout or httpx.Timeout(10.0)
        self._retry_limits = retry_limits or RetryLimits()
        self._clients: list[httpx.AsyncClient] = []
        self._nursery_manager = None
        self._nursery: trio.Nursery | None = None
        self.fetcher: Fetcher | None = None
        self._files: dict[tuple[str, int], FileState] = {}
        # Streams of every file, least recently read first.
        self._lru: collections.OrderedDict[Stream, None] = collections.OrderedDict()
        self._memory_in_use = 0
        self._closed_bytes_served = 0
        self._closed_link_refreshes = 0

    async def __aenter__(self) -> Reader:
        self._clients = [self._new_client(), self._new_client()]
        if self._use_range_client:
            user_agent = f"pmzfs/{__version__}"
            self._range_clients = [RangeClient(self._timeout, user_agent), RangeClient(self._timeout, user_agent)]
        readahead_ranges, read_ranges = self._range_clients or (None, None)
        self.fetcher = Fetcher(
            self._clients[0],
            self._clients[1],
            self._retry_limits,
            readahead_ranges=readahead_ranges,
            read_ranges=read_ranges,
        )
        self._nursery_manager = trio.open_nursery()
        try:
            self._nursery = await self._nursery_manager.__aenter__()
        except BaseException:
            await self._close_clients()
            raise
        return self

    def _new_client(self) -> httpx.AsyncClient:
        # Connections stay open between requests, and the pool has no upper
        # bound: a read after a seek must never wait for a connection that
        # is busy with read-ahead of the old position.
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=64, keepalive_expiry=30.0)
        return httpx.AsyncClient(
            transport=self._transport,
            timeout=self._timeout,
            limits=limits,
            follow_redirects=True,
            headers={"User-Agent": f"pmzfs/{__version__}"},
        )

    async def _close_clients(self) -> None:
        with trio.CancelScope(shield=True):
            for client in self._clients:
                await client.aclose()
            for ranges in self._range_clients:
                await ranges.aclose()
        self._clients = []
        self._range_clients = []
        self.buffers.clear()

    async def __aexit__(self, *exc_info: object) -> None:
        # The workers catch every Exception, so the nursery exits cleanly.  It gets no
        # exception from the body either: trio would wrap that in an
        # ExceptionGroup, and the caller should see its own exception.
        self._nursery.cancel_scope.cancel()
        try:
            await self._nursery_manager.__aexit__(None, None, None)
        finally:
            self._files.clear()
            self._lru.clear()
            self._nursery = None
            await self._close_clients()

    def open(
        self, file_id: str, size: int, link: str, refresh_link: Callable[[], Awaitable[str]]
    ) -> ReadHandle:
        """Open a file for reading; sends no request.

        ``link`` is the file's download URL and ``refresh_link`` an async
        callable that returns a fresh one (the caller asks the API for the
        item's details).  Handles of the same ``file_id`` and ``size``
        share downloaded bytes.
        """
        if self._nursery is None:
            raise RuntimeError("the Reader is not running; open files inside 'async with reader:'")
        if size < 0:
            raise ValueError(f"size of file {file_id} must be >= 0, not {size}")
        key = (file_id, size)
        file = self._files.get(key)
        if file is None:
            timeout = self._retry_limits.max_stall
            file = FileState(self, file_id, size, Link(file_id, link, refresh_link, self.start_worker, timeout))
            self._files[key] = file
        else:
            file.link.refresh_callback = refresh_link
        file.handles += 1
        return ReadHandle(self, file)

    async def _release(self, file: FileState) -> None:
        file.handles -= 1
        if file.handles > 0:
            return
        key = (file.file_id, file.size)
        if self._files.get(key) is file:
            del self._files[key]
        self._closed_bytes_served += file.bytes_served
        self._closed_link_refreshes += file.link.refreshes
        await file.close()

    def stats(self, *, per_file: bool = False) -> dict[str, object]:
        """Return counters for ``pmzfs status`` and benchmarks.

        ``memory_in_use`` and ``memory_limit`` are bytes of chunk buffers,
        ``requests`` counts range requests, ``bytes_fetched`` body bytes
        received and ``bytes_served`` bytes returned by reads.  With
        ``per_file`` the dict also maps each open file id to its own counts.
        """
        fetcher = self.fetcher
        files = self._files.values()
        served = self._closed_bytes_served + sum(file.bytes_served for file in files)
        refreshes = self._closed_link_refreshes + sum(file.link.refreshes for file in files)
        result: dict[str, object] = {
            "memory_in_use": self._memory_in_use,
            "memory_limit": self.memory_limit,
            "requests": fetcher.requests if fetcher else 0,
            "bytes_fetched": fetcher.bytes_fetched if fetcher else 0,
            "bytes_served": served,
            "link_refreshes": refreshes,
            "retries": fetcher.retries if fetcher else 0,
            "open_files": len(self._files),
            "open_handles": sum(file.handles for file in self._files.values()),
        }
        if per_file:
            result["files"] = {file.file_id: file.stats() for file in self._files.values()}
        return result

    # Used by FileState

    def start_worker(self, worker: Callable[[], Awaitable[None]]) -> None:
        """Start a background task of a file (a read-ahead worker or a link refresh)."""
        self._nursery.start_soon(worker)

    def touch(self, stream: Stream) -> None:
        lru = self._lru
        if stream in lru:
            lru.move_to_end(stream)
        else:
            lru[stream] = None

    def forget(self, stream: Stream) -> None:
        self._lru.pop(stream, None)

    def reserve(self, nbytes: int, stream: Stream, *, required: bool) -> int:
        """Charge up to ``nbytes`` to the memory budget and return the bytes granted.

        Evicts idle streams first when the budget is short.  ``required``
        grants all of ``nbytes`` even beyond the limit, for bytes a read
        needs now.
        """
        shortfall = self._memory_in_use + nbytes - self.memory_limit
        if shortfall > 0:
            self._evict(shortfall, keep=stream)
            shortfall = self._memory_in_use + nbytes - self.memory_limit
        granted = nbytes
        if shortfall > 0 and not required:
            granted = max(0, nbytes - shortfall)
        self._memory_in_use += granted
        self.buffers.trim(self.memory_limit - self._memory_in_use)
        return granted

    def unreserve(self, nbytes: int) -> None:
        self._memory_in_use -= nbytes

    def _evict(self, amount: int, keep: Stream) -> None:
        """Free at least ``amount`` bytes if possible, least recently read streams first.

        Streams idle for ``ACTIVE_SECONDS`` lose all their chunks.  Then
        every other stream loses the chunks it has read past and the chunks
        of reads at random offsets, so only read-ahead of active sequential
        streams survives.
        """
        now = trio.current_time()
        freed = 0
        streams = list(self._lru)
        for stream in streams:
            if freed >= amount or now - stream.last_time < ACTIVE_SECONDS:
                # The rest of the list was read even more recently.
                break
            if stream is not keep:
                freed += stream.file.evict_stream(stream)
        for stream in streams:
            if freed >= amount:
                break
            if stream is not keep:
                freed += stream.file.evict_read_chunks(stream)


def _require_at_least(name: str, value: int, minimum: int, unit: str) -> None:
    if not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer of at least {minimum} {unit}, not {value!r}")
