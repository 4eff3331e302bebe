"""The read state of one open file: its chunks, read positions and read-ahead.

All handles of one file share one ``FileState``.  Its bookkeeping runs
without a checkpoint between looking something up and changing it, so
trio's cooperative scheduling makes each step atomic and concurrent reads
need no lock.  Every await is a wait for bytes, and code after it looks the
range up again.
"""

from __future__ import annotations

import bisect
import collections
import errno
import logging
from typing import TYPE_CHECKING

import trio

from pmzfs.reader._chunk import Chunk, ChunkState
from pmzfs.reader._errors import ReadError
from pmzfs.reader._fetch import Link, describe

if TYPE_CHECKING:
    from pmzfs.reader._reader import Reader

log = logging.getLogger(__name__)

KiB = 1024
MiB = 1024 * KiB

# Smallest request.  A read that misses every chunk fetches at least this
# much, so the kernel's next 128 KiB read usually finds it in memory.
MIN_CHUNK = 256 * KiB
# Largest request.  Each connection of a file fetches at most this much
# beyond a position the player has left.
MAX_CHUNK = 8 * MiB
# A read this far past a stream's position still continues the stream, so
# reads that the kernel sends out of order do not start a new one.
MATCH_AHEAD = 512 * KiB
# A read this far before a stream's position, into bytes still in memory,
# belongs to the stream without moving it.
MATCH_BEHIND = MAX_CHUNK
# Forward reads in a row before read-ahead starts.  ffprobe and library
# scanners read a few pieces at the head and the tail of each file, and
# those must not start read-ahead.
SEQUENTIAL_READS = 2
# Read positions tracked per file; a new one evicts the least recently read.
MAX_STREAMS = 8
# A stream with read-ahead that was not read during this many reads of its
# file has been abandoned, and its downloads in progress are cancelled.
STALE_READS = 64


def _chunk_start(chunk: Chunk) -> int:
    return chunk.start


class Stream:
    """A read position of a file and the read-ahead that follows it."""

    __slots__ = ("file", "next", "run", "reads", "fetch_end", "chunks", "created", "last_read", "last_time", "evicted")

    def __init__(self, file: FileState, offset: int, end: int, sequence: int, now: float) -> None:
        self.file = file
        # Offset after the furthest byte read.
        self.next = end
        # Bytes read since the stream started; sizes the read-ahead window.
        self.run = end - offset
        self.reads = 1
        # End of the contiguous bytes that are fetched or being fetched.
        self.fetch_end = offset
        # Chunks this stream created, sorted by start.
        self.chunks: collections.deque[Chunk] = collections.deque()
        # File read sequence numbers of the creation and of the last read.
        self.created = sequence
        self.last_read = sequence
        # trio clock time of the last read.
        self.last_time = now
        # True once evicted from its file; a read still using it adds it back.
        self.evicted = False

    def __repr__(self) -> str:
        return f"<Stream next={self.next} run={self.run} reads={self.reads} fetch_end={self.fetch_end}>"


class FileState:
    """Chunks, streams and read-ahead workers of one file."""

    def __init__(self, reader: Reader, file_id: str, size: int, link: Link) -> None:
        self.reader = reader
        self.file_id = file_id
        self.size = size
        self.link = link
        self.handles = 0
        self.closed = False
        self.bytes_served = 0
        # Chunks sorted by start, with the starts in a parallel list for bisect.
        self._starts: list[int] = []
        self._chunks: list[Chunk] = []
        self._streams: list[Stream] = []
        # Read-ahead chunks waiting for a worker, in the order they were scheduled.
        self._queue: list[Chunk] = []
        self._queue_changed = trio.Event()
        self._workers = 0
        self._worker_scopes: set[trio.CancelScope] = set()
        self._workers_stopped = trio.Event()
        self._sequence = 0

    # Reading

    async def read(self, offset: int, length: int) -> bytes | memoryview:
        """Return bytes ``[offset, offset + length)``, fewer only at the end of the file.

        Bytes of one chunk come as a read-only view of its buffer.
        """
        if offset < 0 or length < 0:
            raise ReadError(f"invalid read of file {self.file_id}: offset {offset}, length {length}", errno.EINVAL)
        end = offset + length
        if end > self.size:
            end = self.size
        if offset >= end:
            return b""
        stream = self._note_read(offset, end)
        chunk = self._find(offset)
        if chunk is not None and chunk.filled >= end:
            self.bytes_served += end - offset
            return chunk.slice(offset, end)
        data = await self._read_missing(stream, offset, end)
        self.bytes_served += len(data)
        return data

    async def _read_missing(self, stream: Stream, offset: int, end: int) -> bytes | memoryview:
        parts: list[memoryview] = []
        position = offset
        while position < end:
            if self.closed:
                raise ReadError(f"file {self.file_id} was closed during a read", errno.EBADF)
            chunk = self._find(position)
            if chunk is None:
                await self._fetch_here(self._add_chunk(stream, position, end))
                continue
            need = min(end, chunk.end)
            if chunk.filled < need:
                if chunk.queued:
                    # Every worker is busy: fetching the needed head here
                    # costs the same one request and does not wait for them.
                    await self._fetch_here(self._take_head(chunk, need))
                    continue
                await chunk.wait_for(need)
                if chunk.state is ChunkState.DROPPED and isinstance(chunk.error, ReadError):
                    raise ReadError(chunk.error.strerror, chunk.error.errno)
                continue
            parts.append(chunk.slice(position, need))
            position = need
        if len(parts) == 1:
            return parts[0]
        return b"".join(parts)

    def _find(self, offset: int) -> Chunk | None:
        index = bisect.bisect_right(self._starts, offset) - 1
        if index >= 0:
            chunk = self._chunks[index]
            if offset < chunk.end:
                return chunk
        return None

    # Streams

    def _note_read(self, offset: int, end: int) -> Stream:
        """Find or start the stream a read belongs to and schedule its read-ahead."""
        self._sequence += 1
        now = trio.current_time()
        for stream in self._streams:
            if stream.next <= offset <= max(stream.fetch_end, stream.next + MATCH_AHEAD):
                break
            if stream.next - MATCH_BEHIND <= offset < stream.next and self._find(offset) is not None:
                # A small backward seek into bytes still in memory.
                stream.last_read = self._sequence
                stream.last_time = now
                self.reader.touch(stream)
                return stream
        else:
            return self._start_stream(offset, end, now)
        stream.reads += 1
        stream.run += end - offset
        stream.next = end
        stream.last_read = self._sequence
        stream.last_time = now
        self.reader.touch(stream)
        self._trim_behind(stream, offset)
        if stream.reads >= SEQUENTIAL_READS:
            self._schedule_readahead(stream)
        return stream

    def _start_stream(self, offset: int, end: int, now: float) -> Stream:
        if len(self._streams) >= MAX_STREAMS:
            oldest = min(self._streams, key=lambda stream: stream.last_read)
            self.evict_stream(oldest)
        stream = Stream(self, offset, end, self._sequence, now)
        # Bytes that other streams already hold count as fetched.
        position = offset
        chunk = self._find(position)
        while chunk is not None:
            position = chunk.end
            chunk = self._find(position)
        stream.fetch_end = position
        self._streams.append(stream)
        self.reader.touch(stream)
        return stream

    def _trim_behind(self, stream: Stream, offset: int) -> None:
        """Drop the stream's chunks before ``offset`` except the last one, kept for small backward seeks."""
        chunks = stream.chunks
        while chunks and chunks[0].state is ChunkState.DROPPED:
            chunks.popleft()
        while len(chunks) >= 2 and chunks[1].end <= offset and not chunks[0].waiters:
            self._drop(chunks.popleft())

    def _window(self, stream: Stream) -> int:
        """Return the read-ahead window of ``stream`` in bytes.

        Half the bytes read in the run: a run of n bytes fetches at most
        1.5 n, which keeps bytes fetched per byte read low for short reads
        at random offsets, while the window still doubles whenever the run
        doubles.
        """
        window = stream.run // 2
        if window > self.reader.max_window:
            return self.reader.max_window
        if window < MIN_CHUNK:
            return MIN_CHUNK
        return window

    def _chunk_size(self, window: int) -> int:
        """Return the request size that splits ``window`` over the file's connections."""
        # Whole multiples of MIN_CHUNK keep request sizes few and regular.
        size = window // self.reader.connections_per_file // MIN_CHUNK * MIN_CHUNK
        return min(MAX_CHUNK, max(MIN_CHUNK, size))

    def _schedule_readahead(self, stream: Stream) -> None:
        """Queue chunks so that the window after the stream's position is being fetched."""
        window = self._window(stream)
        target = min(self.size, stream.next + window)
        start = max(stream.fetch_end, stream.next)
        chunk_size = self._chunk_size(window)
        # Schedule whole chunks only, so each request is worth its round trip.
        if start >= target or (target - start < chunk_size and target < self.size):
            return

        self._abandon_streams(stream)
        position = start
        while position < target:
            chunk = self._find(position)
            if chunk is not None:
                position = chunk.end
                continue
            end = min(position + chunk_size, target, self._next_start(position))
            if end - position < chunk_size and end == target < self.size:
                break

            granted = self.reader.reserve(end - position, stream, required=False)
            if granted < MIN_CHUNK and granted < end - position:
                # Too little memory for a request worth its round trip.
                self.reader.unreserve(granted)
                break
            chunk = Chunk(position, position + granted, stream, readahead=True, pool=self.reader.buffers)
            self._insert(chunk)
            bisect.insort(stream.chunks, chunk, key=_chunk_start)
            self._enqueue(chunk)
            position = chunk.end
        stream.fetch_end = position

    def _abandon_streams(self, current: Stream) -> None:
        """Cancel the read-ahead of streams that the reader has left.

        A stream is left when no read touched it since ``current`` started
        (a player that seeks), or during the last ``STALE_READS`` reads.
        Two positions read in turn (a video and its audio) keep both.
        """
        for stream in self._streams:
            if stream is current or stream.fetch_end <= stream.next:
                continue
            if stream.last_read < current.created or self._sequence - stream.last_read > STALE_READS:
                self._cancel_ahead(stream)

    def _cancel_ahead(self, stream: Stream) -> None:
        kept: collections.deque[Chunk] = collections.deque()
        fetch_end = stream.fetch_end
        for chunk in stream.chunks:
            unfinished = chunk.state in (ChunkState.PENDING, ChunkState.ACTIVE)
            if unfinished and chunk.end > stream.next and chunk.waiters == 0:
                self._drop(chunk)
                fetch_end = min(fetch_end, chunk.start)
            elif chunk.state is not ChunkState.DROPPED:
                kept.append(chunk)
        stream.chunks = kept
        stream.fetch_end = fetch_end

    def evict_stream(self, stream: Stream) -> int:
        """Drop the chunks of ``stream`` that no read waits for; return the bytes freed.

        The stream itself goes once none of its chunks is left.
        """
        freed = 0
        kept: collections.deque[Chunk] = collections.deque()
        for chunk in stream.chunks:
            if chunk.state is ChunkState.DROPPED:
                continue
            if chunk.waiters:
                kept.append(chunk)
                continue
            freed += chunk.size
            self._drop(chunk)
        stream.chunks = kept
        if not kept:
            self._streams.remove(stream)
            self.reader.forget(stream)
            stream.evicted = True
        else:
            stream.fetch_end = min(stream.fetch_end, stream.next)
        return freed

    def evict_read_chunks(self, stream: Stream) -> int:
        """Drop the chunks ``stream`` has read past, or all of a non-sequential stream's chunks.

        Returns the bytes freed; chunks still downloading or waited for stay.
        """
        sequential = stream.reads >= SEQUENTIAL_READS
        freed = 0
        kept: collections.deque[Chunk] = collections.deque()
        for chunk in stream.chunks:
            if chunk.state is ChunkState.DROPPED:
                continue
            if chunk.state is ChunkState.DONE and not chunk.waiters and (not sequential or chunk.end <= stream.next):
                freed += chunk.size
                if not sequential:
                    stream.fetch_end = min(stream.fetch_end, chunk.start)
                self._drop(chunk)
            else:
                kept.append(chunk)
        stream.chunks = kept
        return freed

    # Chunks

    def _next_start(self, offset: int) -> int:
        """Return the start of the first chunk after ``offset``, or the file size."""
        index = bisect.bisect_right(self._starts, offset)
        if index < len(self._starts):
            return self._starts[index]
        return self.size

    def _add_chunk(self, stream: Stream, position: int, end: int) -> Chunk:
        """Register a chunk for a read to fetch itself, covering ``position`` onward."""
        if stream.evicted:
            # Evicted while this read waited for another stream's chunk.
            stream.evicted = False
            self._streams.append(stream)
            self.reader.touch(stream)
        chunk_end = min(max(end, position + MIN_CHUNK), position + MAX_CHUNK, self._next_start(position))
        granted = self.reader.reserve(chunk_end - position, stream, required=True)
        chunk = Chunk(position, position + granted, stream, readahead=False, pool=self.reader.buffers)
        self._insert(chunk)
        bisect.insort(stream.chunks, chunk, key=_chunk_start)
        if stream.fetch_end == position:
            stream.fetch_end = chunk.end
        return chunk

    def _take_head(self, chunk: Chunk, need: int) -> Chunk:
        """Take the part of a queued chunk up to ``need`` out of the queue, for a read to fetch."""
        split = max(need, chunk.start + MIN_CHUNK)
        if split >= chunk.end:
            self._queue.remove(chunk)
            chunk.queued = False
            return chunk
        head = Chunk(chunk.start, split, chunk.stream, readahead=False, pool=self.reader.buffers)
        index = bisect.bisect_left(self._starts, chunk.start)
        self._starts[index] = split
        chunk.start = split
        chunk.filled = split
        self._starts.insert(index, head.start)
        self._chunks.insert(index, head)
        owner = chunk.stream.chunks
        owner.insert(owner.index(chunk), head)
        return head

    def _insert(self, chunk: Chunk) -> None:
        index = bisect.bisect_left(self._starts, chunk.start)
        self._starts.insert(index, chunk.start)
        self._chunks.insert(index, chunk)

    def _drop(self, chunk: Chunk, error: BaseException | None = None) -> None:
        """Remove ``chunk`` from the index, stop its download and release its memory."""
        if chunk.state is ChunkState.DROPPED:
            return
        index = bisect.bisect_left(self._starts, chunk.start)
        if index < len(self._chunks) and self._chunks[index] is chunk:
            del self._starts[index]
            del self._chunks[index]
        if chunk.queued:
            self._queue.remove(chunk)
            chunk.queued = False
        if chunk.scope is not None:
            chunk.scope.cancel()
        self.reader.unreserve(chunk.size)
        chunk.drop(error)
        if chunk.scope is None:
            # No download writes to it: the buffer can go back now.
            # Otherwise _download gives it back when the download ends.
            chunk.release_buffer()

    # Downloads

    async def _fetch_here(self, chunk: Chunk) -> None:
        """Download ``chunk`` in the calling task; raise ``ReadError`` on failure."""
        # A waiter count keeps eviction from cancelling the chunk under the read.
        chunk.waiters += 1
        try:
            await self._download(chunk)
        finally:
            chunk.waiters -= 1

    async def _download(self, chunk: Chunk) -> None:
        chunk.state = ChunkState.ACTIVE
        scope = trio.CancelScope()
        chunk.scope = scope
        try:
            with scope:
                await self.reader.fetcher.fill(self.link, chunk, self.size)
        except ReadError as exc:
            chunk.scope = None
            self._drop(chunk, exc)
            raise
        except BaseException:
            chunk.scope = None
            self._drop(chunk)
            raise
        else:
            chunk.scope = None
            if chunk.state is ChunkState.ACTIVE and not scope.cancelled_caught:
                chunk.finish()
            else:
                self._drop(chunk)
        finally:
            if chunk.state is ChunkState.DROPPED:
                # A chunk dropped during its download kept its buffer
                # until the download stopped writing to it.
                chunk.release_buffer()

    def _enqueue(self, chunk: Chunk) -> None:
        chunk.queued = True
        self._queue.append(chunk)
        event = self._queue_changed
        self._queue_changed = trio.Event()
        event.set()
        if self._workers < self.reader.connections_per_file:
            self._workers += 1
            self.reader.start_worker(self._worker)

    def _next_job(self) -> Chunk | None:
        if not self._queue:
            return None
        job = self._queue[0]
        for chunk in self._queue:
            if chunk.waiters:
                job = chunk
                break
        self._queue.remove(job)
        job.queued = False
        return job

    async def _worker(self) -> None:
        """Download queued read-ahead chunks until the file closes."""
        scope = trio.CancelScope()
        self._worker_scopes.add(scope)
        try:
            with scope:
                while not self.closed:
                    chunk = self._next_job()
                    if chunk is None:
                        await self._queue_changed.wait()
                        continue
                    try:
                        await self._download(chunk)
                    except ReadError as exc:
                        self.reader.fetcher.warnings.warning(
                            "readahead", "read-ahead of file %s failed: %s", self.file_id, describe(exc)
                        )
                    except Exception:
                        # A bug must not end the Reader's nursery and with
                        # it every other file's read-ahead.
                        log.exception("read-ahead of file %s failed unexpectedly", self.file_id)
        finally:
            self._worker_scopes.discard(scope)
            self._workers -= 1
            if self._workers == 0:
                self._workers_stopped.set()

    # Closing and statistics

    async def close(self) -> None:
        """Cancel every download of the file and free its memory.

        Returns once the read-ahead workers have stopped, so no byte of the
        file is downloaded after it returns.
        """
        self.closed = True
        for chunk in list(self._chunks):
            self._drop(chunk)
        for stream in self._streams:
            self.reader.forget(stream)
        self._streams.clear()
        for scope in list(self._worker_scopes):
            scope.cancel()
        if self._workers:
            await self._workers_stopped.wait()

    def stats(self) -> dict[str, int]:
        """Return the file's memory, chunk and stream counts and bytes served."""
        return {
            "memory_in_use": sum(chunk.size for chunk in self._chunks),
            "chunks": len(self._chunks),
            "streams": len(self._streams),
            "bytes_served": self.bytes_served,
            "handles": self.handles,
        }
