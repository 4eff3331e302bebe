"""The range client against a scripted HTTP server on loopback.

Each test's server replies to requests from a list of replies and records
what arrived, so the tests can check the request bytes, connection
reuse and the handling of responses the emulator never sends.
"""

from __future__ import annotations

import functools
import ssl

import httpx
import pytest
import trio
import trustme

from pmzfs.reader._chunk import Chunk
from pmzfs.reader._fetch import Fetcher, Link, RetryLimits
from pmzfs.reader._http import RangeClient, Unsupported, proxy_configured

BODY = bytes(range(256)) * 64  # 16 KiB


def partial(start: int, end: int, *, extra: str = "", body: bytes | None = None) -> bytes:
    """A 206 reply for bytes ``[start, end)`` of BODY."""
    data = BODY[start:end] if body is None else body
    head = (
        "HTTP/1.1 206 Partial Content\r\n"
        f"Content-Range: bytes {start}-{end - 1}/{len(BODY)}\r\n"
        f"Content-Length: {len(data)}\r\n"
        f"{extra}\r\n"
    )
    return head.encode() + data


class ScriptedServer:
    """Serves ``replies`` in order, one per request, on keep-alive connections.

    A reply is bytes to send, or a callable that gets the stream (to stall,
    split or close).  ``None`` closes the connection without a reply.
    """

    def __init__(self, replies: list) -> None:
        self.replies = list(replies)
        self.requests: list[bytes] = []
        self.connections = 0
        self.port = 0

    async def handle(self, stream) -> None:
        self.connections += 1
        buffer = b""
        try:
            while self.replies:
                while b"\r\n\r\n" not in buffer:
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    buffer += data
                request, _, buffer = buffer.partition(b"\r\n\r\n")
                self.requests.append(request)
                reply = self.replies.pop(0)
                if reply is None:
                    return
                if callable(reply):
                    if await reply(stream) is False:
                        return
                else:
                    await stream.send_all(reply)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await stream.aclose()


async def start_server(nursery, replies, *, tls: ssl.SSLContext | None = None) -> ScriptedServer:
    server = ScriptedServer(replies)
    handler = server.handle
    if tls is not None:

        async def handler(stream):
            wrapped = trio.SSLStream(stream, tls, server_side=True)
            try:
                await wrapped.do_handshake()
            except trio.BrokenResourceError:
                return
            await server.handle(wrapped)

    listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    server.port = listeners[0].socket.getsockname()[1]
    return server


def client(**kwargs) -> RangeClient:
    return RangeClient(httpx.Timeout(5.0), "pmzfs-test", **kwargs)


async def fetch(ranges: RangeClient, url: str, start: int, end: int) -> Chunk:
    chunk = Chunk(start, end, None, readahead=False)
    response = await ranges.get(url, start, end)
    try:
        assert response.status_code == 206
        await response.read_into(chunk)
    finally:
        response.close()
    return chunk


async def test_body_fills_chunk_on_reused_connection(nursery):
    server = await start_server(nursery, [partial(0, 5000), partial(5000, 16384)])
    ranges = client()
    url = f"http://127.0.0.1:{server.port}/dl/file.bin?token=x"
    first = await fetch(ranges, url, 0, 5000)
    second = await fetch(ranges, url, 5000, 16384)
    assert first.slice(0, 5000) == BODY[:5000]
    assert second.slice(5000, 16384) == BODY[5000:]
    assert server.connections == 1
    request = server.requests[1].decode()
    assert request.startswith("GET /dl/file.bin?token=x HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{server.port}" in request
    assert "Range: bytes=5000-16383" in request
    assert "Accept-Encoding: identity" in request
    await ranges.aclose()


async def test_body_split_over_many_sends(nursery):
    async def trickle(stream):
        reply = partial(100, 9100)
        for offset in range(0, len(reply), 777):
            await stream.send_all(reply[offset : offset + 777])
            await trio.sleep(0)

    server = await start_server(nursery, [trickle])
    chunk = await fetch(client(), f"http://127.0.0.1:{server.port}/f", 100, 9100)
    assert chunk.filled == 9100
    assert chunk.slice(100, 9100) == BODY[100:9100]


async def test_connection_close_is_honoured(nursery):
    server = await start_server(nursery, [partial(0, 10, extra="Connection: close\r\n"), partial(10, 20)])
    ranges = client()
    url = f"http://127.0.0.1:{server.port}/f"
    await fetch(ranges, url, 0, 10)
    assert ranges._idle == []
    await fetch(ranges, url, 10, 20)
    assert ranges.new_connections == 2


async def test_idle_connection_closed_by_the_server_is_replaced(nursery):
    # The first connection sends one reply and then closes without a Connection: close header.
    server = await start_server(nursery, [partial(0, 10), None, partial(10, 20)])
    ranges = client()
    url = f"http://127.0.0.1:{server.port}/f"
    await fetch(ranges, url, 0, 10)
    chunk = await fetch(ranges, url, 10, 20)
    assert chunk.slice(10, 20) == BODY[10:20]
    assert server.connections == 2
    assert ranges.new_connections == 2


async def test_expired_idle_connection_is_closed(nursery):
    server = await start_server(nursery, [partial(0, 10), partial(10, 20)])
    ranges = RangeClient(httpx.Timeout(5.0), "pmzfs-test", keepalive_expiry=0.01)
    url = f"http://127.0.0.1:{server.port}/f"
    await fetch(ranges, url, 0, 10)
    await trio.sleep(0.05)
    chunk = await fetch(ranges, url, 10, 20)
    assert chunk.slice(10, 20) == BODY[10:20]
    assert ranges.new_connections == 2


async def test_redirects_are_followed(nursery):
    redirect = b"HTTP/1.1 302 Found\r\nLocation: /cdn/file.bin\r\nContent-Length: 0\r\n\r\n"
    server = await start_server(nursery, [redirect, partial(0, 64)])
    chunk = await fetch(client(), f"http://127.0.0.1:{server.port}/link", 0, 64)
    assert chunk.slice(0, 64) == BODY[:64]
    assert server.requests[1].startswith(b"GET /cdn/file.bin HTTP/1.1")


async def test_informational_head_is_skipped(nursery):
    server = await start_server(nursery, [b"HTTP/1.1 100 Continue\r\n\r\n" + partial(0, 32)])
    chunk = await fetch(client(), f"http://127.0.0.1:{server.port}/f", 0, 32)
    assert chunk.slice(0, 32) == BODY[:32]


async def test_chunked_body_is_left_to_httpx(nursery):
    chunked = b"HTTP/1.1 206 Partial Content\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n" + BODY[:16] + b"\r\n0\r\n\r\n"
    server = await start_server(nursery, [chunked])
    ranges = client()
    response = await ranges.get(f"http://127.0.0.1:{server.port}/f", 0, 16)
    with pytest.raises(Unsupported):
        await response.read_into(Chunk(0, 16, None, readahead=False))
    response.close()


async def test_fetcher_falls_back_to_httpx(nursery):
    chunked_head = (
        "HTTP/1.1 206 Partial Content\r\nTransfer-Encoding: chunked\r\n"
        f"Content-Range: bytes 0-99/{len(BODY)}\r\n\r\n"
    ).encode()
    chunked = chunked_head + b"64\r\n" + BODY[:100] + b"\r\n0\r\n\r\n"
    # The range client's request, then httpx's, then a second chunk through httpx only.
    server = await start_server(nursery, [chunked, chunked, chunked])
    url = f"http://127.0.0.1:{server.port}/f"
    async with httpx.AsyncClient() as plain:
        ranges = client()
        fetcher = Fetcher(plain, plain, RetryLimits(), readahead_ranges=ranges, read_ranges=ranges)

        async def refresh() -> str:
            return url

        link = Link("file-1", url, refresh, nursery.start_soon, 5.0)
        for _ in range(2):
            chunk = Chunk(0, 100, None, readahead=False)
            await fetcher.fill(link, chunk, len(BODY))
            assert chunk.slice(0, 100) == BODY[:100]
        assert not ranges.handles(url)
    assert len(server.requests) == 3


async def test_body_cut_short_raises_a_transport_error(nursery):
    async def cut(stream):
        await stream.send_all(partial(0, 1000)[:-400])
        return False

    server = await start_server(nursery, [cut])
    ranges = client()
    chunk = Chunk(0, 1000, None, readahead=False)
    response = await ranges.get(f"http://127.0.0.1:{server.port}/f", 0, 1000)
    with pytest.raises(httpx.RemoteProtocolError):
        await response.read_into(chunk)
    response.close()
    assert chunk.filled == 600
    assert chunk.slice(0, 600) == BODY[:600]
    assert ranges._idle == []


async def test_stalled_body_times_out(nursery):
    async def stall(stream):
        await stream.send_all(partial(0, 1000)[:-500])
        await trio.sleep_forever()

    server = await start_server(nursery, [stall])
    ranges = RangeClient(httpx.Timeout(0.2), "pmzfs-test")
    response = await ranges.get(f"http://127.0.0.1:{server.port}/f", 0, 1000)
    with pytest.raises(httpx.ReadTimeout):
        await response.read_into(Chunk(0, 1000, None, readahead=False))
    response.close()


async def test_oversized_head_is_a_protocol_error(nursery):
    huge = b"HTTP/1.1 206 Partial Content\r\n" + b"X-Padding: " + b"a" * 70000 + b"\r\n\r\n"
    server = await start_server(nursery, [huge])
    with pytest.raises(httpx.RemoteProtocolError, match="longer than"):
        await client().get(f"http://127.0.0.1:{server.port}/f", 0, 10)


async def test_garbage_status_line_is_a_protocol_error(nursery):
    server = await start_server(nursery, [b"SPDY/9 ok\r\n\r\n"])
    with pytest.raises(httpx.RemoteProtocolError, match="invalid status line"):
        await client().get(f"http://127.0.0.1:{server.port}/f", 0, 10)


async def test_refused_connection_is_a_connect_error(nursery):
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    with pytest.raises(httpx.ConnectError):
        await client().get(f"http://127.0.0.1:{port}/f", 0, 10)


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("ftp://127.0.0.1/f", httpx.UnsupportedProtocol),
        ("http:///f", httpx.InvalidURL),
        ("http://127.0.0.1:99999/f", httpx.InvalidURL),
        ("http://user:secret@127.0.0.1/f", Unsupported),
        ("http://127.0.0.1/a file", Unsupported),
        ("http://127.0.0.1/caf\u00e9", Unsupported),
    ],
)
async def test_links_it_cannot_send(url, error):
    with pytest.raises(error):
        await client().get(url, 0, 10)


@pytest.fixture(scope="module")
def certificate_authority():
    return trustme.CA()


async def test_tls_body_is_decrypted_into_the_chunk(nursery, certificate_authority):
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate_authority.issue_cert("localhost").configure_cert(server_context)
    client_context = ssl.create_default_context()
    certificate_authority.configure_trust(client_context)
    server = await start_server(nursery, [partial(0, 16384), partial(1, 2)], tls=server_context)
    ranges = client(ssl_context=client_context)
    url = f"https://localhost:{server.port}/f"
    chunk = await fetch(ranges, url, 0, 16384)
    assert chunk.slice(0, 16384) == BODY
    second = await fetch(ranges, url, 1, 2)
    assert second.slice(1, 2) == BODY[1:2]
    assert server.connections == 1


async def test_tls_with_an_untrusted_certificate_fails_to_connect(nursery, certificate_authority):
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate_authority.issue_cert("localhost").configure_cert(server_context)
    server = await start_server(nursery, [partial(0, 10)], tls=server_context)
    # The default context does not trust the test authority.
    ranges = client(ssl_context=ssl.create_default_context())
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        await ranges.get(f"https://localhost:{server.port}/f", 0, 10)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, False),
        ({"HTTPS_PROXY": "http://127.0.0.1:3128"}, True),
        ({"http_proxy": "http://127.0.0.1:3128"}, True),
        ({"ALL_PROXY": ""}, False),
        ({"NO_PROXY": "*"}, False),
    ],
)
def test_proxy_detection(environ, expected):
    assert proxy_configured(environ) is expected
