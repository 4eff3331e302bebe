"""One downloaded byte range of a file, in one buffer that the download fills."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from pmzfs.reader._buffers import BufferPool


class ChunkState(enum.Enum):
    PENDING = "pending"  # registered, no request sent yet
    ACTIVE = "active"  # a download is filling it
    DONE = "done"  # every byte arrived
    DROPPED = "dropped"  # evicted, cancelled or failed; no longer in the file's index


class Chunk:
    """Bytes ``[start, end)`` of a file, filled front to back by one download.

    ``filled`` is the absolute offset up to which bytes have arrived, so a
    reader can take ``[start, filled)`` while the rest is still downloading.
    The bytes live in one buffer, allocated when the download starts.  The
    range client receives straight into it (``receive_view`` and
    ``advance``), and a read gets a memoryview of it, so a byte is copied
    only by the kernel: once from the socket and once into the FUSE reply.
    The memory budget is charged for ``size`` bytes from creation until the
    chunk is dropped.
    """

    __slots__ = (
        "start",
        "end",
        "filled",
        "state",
        "stream",
        "readahead",
        "queued",
        "waiters",
        "error",
        "scope",
        "_base",
        "_view",
        "_pool",
        "_wake_at",
        "_event",
    )

    def __init__(self, start: int, end: int, stream: object, *, readahead: bool, pool: BufferPool | None = None) -> None:
        self.start = start
        self.end = end
        self.filled = start
        self.state = ChunkState.PENDING
        # The read-ahead stream that owns the chunk; evicting the stream drops it.
        self.stream = stream
        # True for read-ahead fetched by a background worker, False for a
        # chunk that a read fetches itself.
        self.readahead = readahead
        # True while the chunk waits in the file's queue for a worker.
        self.queued = False
        # Reads waiting for bytes of this chunk; a chunk with waiters is never cancelled.
        self.waiters = 0
        # The exception that ended the download, for the reads waiting on it.
        self.error: BaseException | None = None
        # Cancel scope of the download in progress, so eviction can stop it.
        self.scope: trio.CancelScope | None = None
        # The buffer and the file offset of its first byte, both set when
        # the first byte is stored.  A queued chunk's start may still move
        # (a read takes its head), so the buffer waits until then.
        self._base = start
        self._view: memoryview | None = None
        # Where the buffer comes from and goes back to; None allocates a bytearray.
        self._pool = pool
        self._wake_at = end + 1
        self._event = trio.Event()

    @property
    def size(self) -> int:
        return self.end - self.start

    def __repr__(self) -> str:
        return f"<Chunk {self.start}-{self.end} {self.state.value} filled={self.filled - self.start}>"

    def receive_view(self) -> memoryview:
        """Return the writable buffer space for bytes ``[filled, end)``.

        The caller stores bytes at the front and then calls ``advance``.
        """
        view = self._view
        if view is None:
            self._base = self.start
            size = self.end - self.start
            view = memoryview(bytearray(size)) if self._pool is None else self._pool.take(size)
            self._view = view
        return view[self.filled - self._base : self.end - self._base]

    def advance(self, count: int) -> None:
        """Record that ``count`` more bytes were stored at ``filled`` and wake the reads they satisfy."""
        self.filled += count
        if self.filled >= self._wake_at:
            self._wake()

    def append(self, data: bytes) -> None:
        """Copy ``data`` to ``filled`` and wake the reads it satisfies.

        The caller checks first that ``data`` fits before ``end``.
        """
        count = len(data)
        if count:
            self.receive_view()[:count] = data
            self.advance(count)

    def slice(self, start: int, end: int) -> memoryview:
        """Return a read-only view of bytes ``[start, end)``, which must have arrived.

        The view keeps the buffer alive after the chunk is dropped, and
        nothing writes to those bytes again.
        """
        return self._view[start - self._base : end - self._base].toreadonly()

    def release_buffer(self) -> None:
        """Give the buffer back to the pool; call it once the chunk is dropped and no download writes to it.

        Views that reads returned stay valid: the pool reuses the buffer
        only after they are gone.
        """
        view = self._view
        if view is not None:
            self._view = None
            if self._pool is not None:
                self._pool.give(view)

    def finish(self) -> None:
        """Mark every byte as arrived and wake all waiting reads."""
        self.state = ChunkState.DONE
        self._wake()

    def drop(self, error: BaseException | None = None) -> None:
        """Mark the chunk as gone and wake all waiting reads.

        Reads that were waiting look the range up again, or raise ``error``
        when it is set.  The buffer stays until the chunk is garbage: a
        cancelled download may still store bytes before the cancellation
        reaches it.
        """
        self.state = ChunkState.DROPPED
        self.error = error
        self._wake()

    async def wait_for(self, offset: int) -> None:
        """Wait until bytes up to ``offset`` arrived or the chunk was dropped."""
        self.waiters += 1
        try:
            while self.filled < offset and self.state in (ChunkState.PENDING, ChunkState.ACTIVE):
                if offset < self._wake_at:
                    self._wake_at = offset
                await self._event.wait()
        finally:
            self.waiters -= 1

    def _wake(self) -> None:
        # Every waiter loops and registers its own offset again, so one
        # threshold (the smallest) is enough.
        event = self._event
        self._event = trio.Event()
        self._wake_at = self.end + 1
        event.set()
