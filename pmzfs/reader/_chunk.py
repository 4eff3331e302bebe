"""One downloaded byte range of a file and the pieces its download received."""

from __future__ import annotations

import bisect
import enum

import trio


class ChunkState(enum.Enum):
    PENDING = "pending"  # registered, no request sent yet
    ACTIVE = "active"  # a download is filling it
    DONE = "done"  # every byte arrived
    DROPPED = "dropped"  # evicted, cancelled or failed; no longer in the file's index


class Chunk:
    """Bytes ``[start, end)`` of a file, filled front to back by one download.

    ``filled`` is the absolute offset up to which bytes have arrived, so a
    reader can take ``[start, filled)`` while the rest is still downloading.
    The chunk keeps the pieces the HTTP client returns as they are, so
    receiving costs no copy and a read copies its bytes exactly once.  The
    memory budget is charged for ``size`` bytes from creation until the
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
        "_pieces",
        "_piece_starts",
        "_wake_at",
        "_event",
    )

    def __init__(self, start: int, end: int, stream: object, *, readahead: bool) -> None:
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
        # Received pieces and the absolute offset of each piece's first byte.
        self._pieces: list[bytes] = []
        self._piece_starts: list[int] = []
        self._wake_at = end + 1
        self._event = trio.Event()

    @property
    def size(self) -> int:
        return self.end - self.start

    def __repr__(self) -> str:
        return f"<Chunk {self.start}-{self.end} {self.state.value} filled={self.filled - self.start}>"

    def append(self, data: bytes) -> None:
        """Store ``data`` at ``filled`` and wake the reads it satisfies.

        The caller checks first that ``data`` fits before ``end``.
        """
        if not data:
            return
        self._pieces.append(data)
        self._piece_starts.append(self.filled)
        self.filled += len(data)
        if self.filled >= self._wake_at:
            self._wake()

    def slice(self, start: int, end: int) -> bytes:
        """Return a copy of bytes ``[start, end)``, which must have arrived."""
        starts = self._piece_starts
        index = bisect.bisect_right(starts, start) - 1
        piece = self._pieces[index]
        offset = start - starts[index]
        if end - starts[index] <= len(piece):
            return piece[offset : end - start + offset]
        parts = [memoryview(piece)[offset:]]
        position = starts[index] + len(piece)
        while position < end:
            index += 1
            piece = self._pieces[index]
            if end - position < len(piece):
                parts.append(memoryview(piece)[: end - position])
            else:
                parts.append(piece)
            position += len(piece)
        return b"".join(parts)

    def finish(self) -> None:
        """Mark every byte as arrived and wake all waiting reads."""
        self.state = ChunkState.DONE
        self._wake()

    def drop(self, error: BaseException | None = None) -> None:
        """Mark the chunk as gone and wake all waiting reads.

        Reads that were waiting look the range up again, or raise ``error``
        when it is set.  The pieces stay until the chunk is garbage: a
        cancelled download may still append before the cancellation reaches
        it.
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
