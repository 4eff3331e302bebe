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
from pmzfs.reader._fetch import BadResponse, LinkFailed, check_response
from rangemock import MockRangeServer, range_response

KiB = 1024
MiB = 1024 * KiB


def make_data(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


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
