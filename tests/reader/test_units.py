"""Reader units against an in-process range server (httpx.MockTransport).

Time is trio's MockClock where a test waits through retries, so backoff
and deadlines pass instantly.
"""

from __future__ import annotations

import errno
import random

import httpx
import pytest
import trio

from pmzfs.reader import Reader, ReadError
from pmzfs.reader._chunk import Chunk
from pmzfs.reader._fetch import BadResponse, LinkFailed, check_response
from rangemock import MockRangeServer, range_response

KiB = 1024
MiB = 1024 * KiB


def make_data(size: int, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    block = 16 * MiB
    return b"".join(rng.randbytes(min(block, size - start)) for start in range(0, size, block))


def no_refresh():
    async def refresh() -> str:
        raise AssertionError("the link was refreshed although it works")

    return refresh


@pytest.fixture
def server():
    return MockRangeServer()


def response(status: int, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers={name.replace("_", "-"): value for name, value in headers.items()})


# check_response


@pytest.mark.parametrize(
    ("status", "headers", "reason"),
    [
        (206, {"Content-Range": "bytes 10-19/100"}, "Content-Range"),
        (206, {"Content-Range": "bytes 0-9/99"}, "size 99"),
        (206, {"Content-Range": "bytes 0-9/*"}, "invalid Content-Range"),
        (206, {}, "without Content-Range"),
        (206, {"Content-Range": "bytes 0-9/100", "Content-Length": "11"}, "Content-Length"),
        (206, {"Content-Range": "bytes 0-9/100", "Content-Encoding": "gzip"}, "Content-Encoding"),
        (200, {"Content-Type": "text/html"}, "HTTP 200"),
        (500, {}, "HTTP 500"),
        (302, {}, "unexpected HTTP 302"),
    ],
)
def test_check_response_rejects(status, headers, reason):
    with pytest.raises(BadResponse, match=reason):
        check_response(response(status, **headers), 0, 10, 100)


@pytest.mark.parametrize("status", [403, 404, 410, 416])
def test_check_response_link_failures(status):
    with pytest.raises(LinkFailed):
        check_response(response(status), 0, 10, 100)


def test_check_response_accepts_matching():
    check_response(response(206, Content_Range="bytes 10-19/100", Content_Length="10"), 10, 20, 100)
    check_response(response(200, Content_Length="100"), 0, 100, 100)


# Reads


async def test_read_returns_requested_bytes(server):
    data = make_data(3 * MiB)
    link = server.add("a", data)
    async with Reader(transport=server.transport()) as reader:
        handle = reader.open("a", len(data), link, no_refresh())
        assert await handle.read(1000, 5000) == data[1000:6000]
        assert await handle.read(len(data) - 10, 100) == data[-10:]
        assert await handle.read(len(data), 100) == b""
        assert await handle.read(len(data) + 5, 100) == b""
        await handle.close()


async def test_empty_file_sends_no_request(server):
    async with Reader(transport=server.transport()) as reader:
        handle = reader.open("empty", 0, "http://127.0.0.1:9/empty", no_refresh())
        assert await handle.read(0, 4096) == b""
        await handle.close()
        assert reader.stats()["requests"] == 0


async def test_invalid_offset_is_einval(server):
    link = server.add("a", b"x" * 100)
    async with Reader(transport=server.transport()) as reader:
        handle = reader.open("a", 100, link, no_refresh())
        with pytest.raises(ReadError) as caught:
            await handle.read(-1, 10)
        assert caught.value.errno == errno.EINVAL


async def test_closed_handle_is_ebadf(server):
    link = server.add("a", b"x" * 100)
    async with Reader(transport=server.transport()) as reader:
        handle = reader.open("a", 100, link, no_refresh())
        await handle.close()
        await handle.close()
        with pytest.raises(ReadError) as caught:
            await handle.read(0, 10)
        assert caught.value.errno == errno.EBADF


async def test_wrong_content_range_is_retried(server, autojump_clock):
    data = make_data(MiB)
    link = server.add("a", data)
    wrong = data[4096 : 4096 + 256 * KiB]
    server.faults.append(lambda request, start, end: range_response(start + 4096, end + 4096, len(data), wrong))
    async with Reader(transport=server.transport()) as reader:
        handle = reader.open("a", len(data), link, no_refresh())
        assert await handle.read(0, 128 * KiB) == data[: 128 * KiB]
        assert reader.stats()["retries"] == 1


async def test_html_body_is_never_returned(server, autojump_clock):
    data = make_data(MiB)
    link = server.add("a", data)
    html = b"<html><body>Service unavailable</body></html>"

    def html_page(request, start, end):
        server.faults.append(html_page)
        return httpx.Response(200, headers={"Content-Type": "text/html"}, content=html)

    server.faults.append(html_page)
    async with Reader(transport=server.transport()) as reader:
        handle = reader.open("a", len(data), link, no_refresh())
        with pytest.raises(ReadError) as caught:
            await handle.read(0, 128 * KiB)
        assert caught.value.errno == errno.EIO
        assert "HTTP 200" in str(caught.value)
        assert server.requests["a"] <= 6


async def test_short_body_resumes_at_offset(server, autojump_clock):
    data = make_data(MiB)
    link = server.add("a", data)

    def short(request, start, end):
        # The headers announce the whole range, as when a connection drops mid-body.
        return range_response(start, end, len(data), data[start : start + 1000], Content_Length=str(end - start))

    server.faults.append(short)
    async with Reader(transport=server.transport()) as reader:
        handle = reader.open("a", len(data), link, no_refresh())
        assert await handle.read(0, 200 * KiB) == data[: 200 * KiB]
    assert server.ranges[1][1] == 1000


async def test_expired_link_is_refreshed(server, autojump_clock):
    data = make_data(2 * MiB)
    old_link = server.add("old", data)
    new_link = server.add("new", data)
    server.dead.add("old")
    refreshes = []

    async def refresh() -> str:
        refreshes.append(1)
        return new_link

    async with Reader(transport=server.transport()) as reader:
        handle = reader.open("a", len(data), old_link, refresh)
        assert await handle.read(MiB, 128 * KiB) == data[MiB : MiB + 128 * KiB]
        assert await handle.read(0, 128 * KiB) == data[: 128 * KiB]
        assert refreshes == [1]
        assert reader.stats()["link_refreshes"] == 1


async def test_dead_link_fails_within_bounds(server, autojump_clock):
    link = server.add("a", b"x" * MiB)
    server.dead.add("a")
    refreshes = []

    async def refresh() -> str:
        refreshes.append(1)
        return link

    async with Reader(transport=server.transport()) as reader:
        handle = reader.open("a", MiB, link, refresh)
        started = trio.current_time()
        with pytest.raises(ReadError) as caught:
            await handle.read(0, 128 * KiB)
        assert caught.value.errno == errno.EIO
        assert trio.current_time() - started <= 10.5
    assert len(refreshes) == 3
    assert server.requests["a"] == 4
    assert "http" not in str(caught.value)


async def test_failing_refresh_is_eio(server, autojump_clock):
    link = server.add("a", b"x" * MiB)
    server.dead.add("a")

    async def refresh() -> str:
        raise RuntimeError("item/details failed")

    async with Reader(transport=server.transport()) as reader:
        handle = reader.open("a", MiB, link, refresh)
        with pytest.raises(ReadError, match="item/details failed") as caught:
            await handle.read(0, 10)
        assert caught.value.errno == errno.EIO


async def test_server_errors_fail_within_bounds(server, autojump_clock):
    link = server.add("a", b"x" * MiB)

    def error(request, start, end):
        server.faults.append(error)
        return httpx.Response(503)

    server.faults.append(error)
    async with Reader(transport=server.transport()) as reader:
        handle = reader.open("a", MiB, link, no_refresh())
        with pytest.raises(ReadError, match="HTTP 503"):
            await handle.read(0, 10)
    assert server.requests["a"] == 6


async def test_dead_link_leaves_other_files_readable(server, autojump_clock):
    good = make_data(MiB)
    good_link = server.add("good", good)
    dead_link = server.add("dead", b"x" * MiB)
    server.dead.add("dead")

    async def refresh() -> str:
        return dead_link

    async with Reader(transport=server.transport()) as reader:
        dead = reader.open("dead", MiB, dead_link, refresh)
        alive = reader.open("good", MiB, good_link, no_refresh())
        with pytest.raises(ReadError):
            await dead.read(0, 10)
        assert await alive.read(0, MiB) == good


async def test_retry_warnings_are_rate_limited(server, autojump_clock, caplog):
    data = make_data(MiB)
    link = server.add("a", data)
    for _ in range(3):
        server.faults.append(lambda request, start, end: httpx.Response(503))
    async with Reader(transport=server.transport()) as reader:
        handle = reader.open("file-a", len(data), link, no_refresh())
        assert await handle.read(0, 1000) == data[:1000]
    warnings = [record for record in caplog.records if record.levelname == "WARNING"]
    assert len(warnings) == 1
    assert "file-a" in warnings[0].getMessage()
    assert "127.0.0.1" not in warnings[0].getMessage()


# Chunks


@pytest.mark.parametrize(
    ("start", "end"),
    [(0, 10), (0, 3), (3, 7), (2, 3), (4, 9), (5, 10), (9, 10), (0, 4), (4, 4)],
)
def test_chunk_slice_spans_pieces(start, end):
    chunk = Chunk(100, 110, None, readahead=False)
    for piece in (b"abc", b"d", b"efghi", b"j"):
        chunk.append(piece)
    assert chunk.slice(100 + start, 100 + end) == b"abcdefghij"[start:end]


# Read-ahead policy, counted in requests and bytes


async def read_pieces(handle, offset: int, length: int, piece: int = 128 * KiB) -> bytes:
    """Read like the kernel does through FUSE: 128 KiB at a time, each read its own step."""
    parts = []
    for position in range(offset, offset + length, piece):
        parts.append(await handle.read(position, min(piece, offset + length - position)))
        # Each FUSE read is a task of its own; let the workers run between them.
        await trio.sleep(0)
    return b"".join(parts)


async def test_single_read_starts_no_readahead(server):
    data = make_data(64 * MiB)
    link = server.add("a", data)
    async with Reader(transport=server.transport()) as reader:
        handle = reader.open("a", len(data), link, no_refresh())
        assert await handle.read(10 * MiB, 128 * KiB) == data[10 * MiB : 10 * MiB + 128 * KiB]
        await trio.sleep(0.01)
        assert server.ranges == [("a", 10 * MiB, 10 * MiB + 256 * KiB)]


async def test_random_one_mib_reads_fetch_little(server):
    data = make_data(256 * MiB)
    link = server.add("a", data)
    rng = random.Random(11)
    async with Reader(transport=server.transport()) as reader:
        handle = reader.open("a", len(data), link, no_refresh())
        for _ in range(20):
            offset = rng.randrange(len(data) - MiB) // 4096 * 4096
            assert await read_pieces(handle, offset, MiB) == data[offset : offset + MiB]
        await trio.sleep(0.01)
        stats = reader.stats()
    assert stats["bytes_served"] == 20 * MiB
    assert stats["bytes_fetched"] <= 1.6 * 20 * MiB


async def test_sequential_read_uses_large_requests(server):
    data = make_data(128 * MiB)
    link = server.add("a", data)
    async with Reader(transport=server.transport()) as reader:
        handle = reader.open("a", len(data), link, no_refresh())
        assert await read_pieces(handle, 0, len(data)) == data
        stats = reader.stats()
    assert stats["bytes_fetched"] == len(data)
    # The window is half the bytes read so far, so it reaches 32 MiB, split
    # over 4 connections, once 64 MiB have been read, and requests start up
    # to a window ahead of the read position.
    late = [end - start for _, start, end in server.ranges if start >= 96 * MiB and end < len(data)]
    assert late
    assert set(late) == {8 * MiB}
    assert len(server.ranges) <= 80


async def test_readahead_respects_memory_limit(server):
    data = make_data(64 * MiB)
    link = server.add("a", data)
    peak = 0
    async with Reader(memory_limit=2 * MiB, transport=server.transport()) as reader:
        handle = reader.open("a", len(data), link, no_refresh())
        for offset in range(0, len(data), 128 * KiB):
            assert await handle.read(offset, 128 * KiB) == data[offset : offset + 128 * KiB]
            await trio.sleep(0)
            peak = max(peak, reader.stats()["memory_in_use"])
        await handle.close()
        assert reader.stats()["memory_in_use"] == 0
    assert peak <= 2 * MiB + 256 * KiB


class GatedServer(MockRangeServer):
    """A range server whose responses wait until the test opens the gate.

    ``waiting`` counts requests held at the gate and ``cancelled`` those
    whose client gave up while held.
    """

    def __init__(self) -> None:
        super().__init__()
        self.gate = trio.Event()
        self.hold_from = 0
        self.waiting = 0
        self.cancelled = 0

    async def handle_async(self, request: httpx.Request) -> httpx.Response:
        start = int(request.headers["range"].split("=")[1].split("-")[0])
        if start >= self.hold_from:
            self.waiting += 1
            try:
                await self.gate.wait()
            except trio.Cancelled:
                self.cancelled += 1
                raise
            finally:
                self.waiting -= 1
        return self.handle(request)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle_async)


async def test_seek_cancels_old_readahead():
    server = GatedServer()
    data = make_data(64 * MiB)
    link = server.add("a", data)
    async with Reader(transport=server.transport()) as reader:
        handle = reader.open("a", len(data), link, no_refresh())
        # The first 2 MiB arrive at once; read-ahead beyond them waits at the gate.
        server.hold_from = 2 * MiB
        await read_pieces(handle, 0, 2 * MiB)
        await trio.sleep(0.01)
        assert server.waiting > 0
        held = server.waiting
        server.hold_from = len(data)
        # A player seeks: two reads at the new position abandon the old one.
        await read_pieces(handle, 40 * MiB, 256 * KiB)
        await trio.sleep(0.01)
        assert server.cancelled == held
        await handle.close()


async def test_close_cancels_downloads():
    server = GatedServer()
    data = make_data(64 * MiB)
    link = server.add("a", data)
    async with Reader(transport=server.transport()) as reader:
        handle = reader.open("a", len(data), link, no_refresh())
        server.hold_from = MiB
        await read_pieces(handle, 0, MiB)
        await trio.sleep(0.01)
        held = server.waiting
        assert held > 0
        requests = server.requests["a"]
        await handle.close()
        assert server.cancelled == held
        server.gate.set()
        await trio.sleep(0.01)
        assert server.requests["a"] == requests
        assert reader.stats()["memory_in_use"] == 0


async def test_handles_share_one_refresh(server, autojump_clock):
    data = make_data(MiB)
    old_link = server.add("old", data)
    new_link = server.add("new", data)
    server.dead.add("old")
    refreshes = []

    async def refresh() -> str:
        refreshes.append(1)
        await trio.sleep(0.1)
        return new_link

    async with Reader(transport=server.transport()) as reader:
        handles = [reader.open("a", len(data), old_link, refresh) for _ in range(4)]
        async with trio.open_nursery() as nursery:
            for index, handle in enumerate(handles):
                nursery.start_soon(handle.read, index * 256 * KiB, 1000)
    assert refreshes == [1]
