"""A small HTTP/1.1 client for range requests that receives into chunk buffers.

httpx hands a body over as new bytes objects of about 64 KiB, each copied
through h11's receive buffer first.  At loopback speed those copies, the
work per piece and the page faults of fresh buffers cost more CPU than
the kernel's own copies.  This client sends the GET itself, parses the
response head and then calls ``recv_into`` on the chunk's buffer, so the
kernel copies each body byte once and nothing else touches it.  TLS goes
through ``ssl.SSLObject``, which decrypts into the same buffer.

It covers what file links need: GET with a Range header, keep-alive,
redirects and bodies framed by Content-Length.  ``Unsupported`` means
httpx should make the request instead: a response without a length (or
with chunked encoding), a link with a user name or with characters that
need quoting.  The Reader uses httpx for every request when a proxy is
configured, because this client does not speak to proxies.

Errors are httpx's exception classes, so the Fetcher retries them
exactly as it retries httpx's own.
"""

from __future__ import annotations

import logging
import math
import os
import ssl
from collections.abc import Mapping
from urllib.parse import urljoin, urlsplit

from typing import TYPE_CHECKING

import httpx
import trio

if TYPE_CHECKING:
    from pmzfs.reader._chunk import Chunk

log = logging.getLogger(__name__)

# Largest response head; a CDN's is well under 2 KiB.
HEAD_LIMIT = 64 * 1024
MAX_REDIRECTS = 20
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Bytes asked of the socket per call while TLS records are decrypted.
TLS_RECEIVE_SIZE = 256 * 1024
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy")
DEFAULT_PORTS = {"http": 80, "https": 443}


def _host_of(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return (parts.scheme.lower(), parts.netloc.lower())


def proxy_configured(environ: Mapping[str, str] = os.environ) -> bool:
    """Return True when the environment names a proxy, which httpx honours and this client does not."""
    return any(environ.get(name) or environ.get(name.upper()) for name in PROXY_VARIABLES)


class Unsupported(Exception):
    """A link or response this client does not handle; httpx should make the request."""


class _NothingReceived(Exception):
    """The connection failed before any byte of the response arrived.

    On a reused connection that usually means the server closed it while
    it was idle, and the request goes out again on a fresh one.
    """

    def __init__(self, error: httpx.TransportError) -> None:
        super().__init__(str(error))
        self.error = error


class _Target:
    """The parts of a URL that a request needs."""

    __slots__ = ("scheme", "host", "port", "host_header", "path")

    def __init__(self, url: str) -> None:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise httpx.InvalidURL(f"invalid link: {exc}") from None
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"links must start with http:// or https://, not {scheme or 'nothing'}")
        host = parts.hostname
        if not host:
            raise httpx.InvalidURL("the link has no host")
        if parts.username is not None or not url.isascii() or any(c in url for c in " \t\r\n"):
            raise Unsupported("the link needs quoting or carries a user name")
        self.scheme = scheme
        self.host = host
        self.port = port or DEFAULT_PORTS[scheme]
        bracketed = f"[{host}]" if ":" in host else host
        self.host_header = bracketed if port is None else f"{bracketed}:{port}"
        path = parts.path or "/"
        self.path = f"{path}?{parts.query}" if parts.query else path

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)


class _Connection:
    """One TCP connection of the pool, with TLS when the link is https."""

    __slots__ = ("key", "socket", "tls", "incoming", "outgoing", "idle_since")

    def __init__(self, key: tuple[str, str, int], sock: trio.socket.SocketType) -> None:
        self.key = key
        self.socket = sock
        self.tls: ssl.SSLObject | None = None
        self.incoming: ssl.MemoryBIO | None = None
        self.outgoing: ssl.MemoryBIO | None = None
        self.idle_since = 0.0

    async def start_tls(self, context: ssl.SSLContext, host: str) -> None:
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname=host)
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                await self._flush()
                data = await self.socket.recv(TLS_RECEIVE_SIZE)
                if not data:
                    raise httpx.ConnectError("the server closed the connection during the TLS handshake") from None
                self.incoming.write(data)
        await self._flush()

    async def _flush(self) -> None:
        data = self.outgoing.read()
        if data:
            await self._send_raw(data)

    async def _send_raw(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            sent = await self.socket.send(view)
            view = view[sent:]

    async def send_all(self, data: bytes) -> None:
        if self.tls is None:
            await self._send_raw(data)
        else:
            self.tls.write(data)
            await self._flush()

    async def recv_into(self, view: memoryview) -> int:
        """Receive up to ``len(view)`` bytes into ``view``; return 0 at the end of the stream."""
        if self.tls is None:
            return await self.socket.recv_into(view)
        while True:
            try:
                return self.tls.read(len(view), view)
            except ssl.SSLWantReadError:
                # A TLS 1.3 key update may require a reply before more data comes.
                await self._flush()
                data = await self.socket.recv(TLS_RECEIVE_SIZE)
                if not data:
                    return 0
                self.incoming.write(data)
            except ssl.SSLZeroReturnError:
                return 0

    def close(self) -> None:
        self.socket.close()


class RangeResponse:
    """The head of a response and the connection its body is still on.

    ``close`` returns the connection to the pool when the body was read
    whole and the server keeps connections open, and closes it otherwise.
    """

    __slots__ = ("status_code", "headers", "length", "_client", "_connection", "_keep_alive", "_spare", "_complete")

    def __init__(
        self,
        client: RangeClient,
        connection: _Connection,
        status_code: int,
        headers: httpx.Headers,
        keep_alive: bool,
        spare: memoryview,
    ) -> None:
        self.status_code = status_code
        self.headers = headers
        self.length = _content_length(status_code, headers)
        self._client = client
        self._connection = connection
        self._keep_alive = keep_alive
        # Body bytes that arrived with the head.
        self._spare = spare
        self._complete = False

    async def read_into(self, chunk: Chunk) -> None:
        """Receive the whole body into ``chunk`` from ``chunk.filled`` on.

        The caller checked that the body fits.  Raises ``Unsupported`` for
        a body without a Content-Length, before reading any of it.
        """
        remaining = self.length
        if remaining is None:
            raise Unsupported("a response without Content-Length")
        spare = self._spare
        if spare:
            count = min(len(spare), remaining)
            chunk.receive_view()[:count] = spare[:count]
            chunk.advance(count)
            remaining -= count
            self._spare = spare[count:]
        if remaining:
            await self._receive(chunk, remaining)
        self._complete = not self._spare

    async def _receive(self, chunk: Chunk, remaining: int) -> None:
        connection = self._connection
        timeout = self._client.read_timeout
        view = chunk.receive_view()[:remaining]
        received = 0
        with trio.CancelScope() as scope:
            while received < remaining:
                scope.deadline = trio.current_time() + timeout
                try:
                    count = await connection.recv_into(view[received:])
                except (OSError, ssl.SSLError) as exc:
                    raise httpx.ReadError(f"receiving the body failed: {exc}") from None
                if not count:
                    raise httpx.RemoteProtocolError(f"the server closed the connection after {received} of {remaining} body bytes")
                received += count
                chunk.advance(count)
        if scope.cancelled_caught:
            raise httpx.ReadTimeout(f"no body bytes for {timeout:g} s")

    def close(self) -> None:
        connection = self._connection
        if connection is None:
            return
        self._connection = None
        if self._complete and self._keep_alive:
            self._client.release(connection)
        else:
            connection.close()


def _content_length(status_code: int, headers: httpx.Headers) -> int | None:
    if status_code in (204, 304) or 100 <= status_code < 200:
        return 0
    encoding = headers.get("transfer-encoding")
    if encoding is not None and encoding.strip().lower() != "identity":
        return None
    values = {value.strip() for value in headers.get_list("content-length")}
    if not values:
        return None
    if len(values) > 1 or not all(value.isdigit() for value in values):
        raise httpx.RemoteProtocolError(f"invalid Content-Length {', '.join(sorted(values))!r}")
    return int(values.pop())


class RangeClient:
    """Keep-alive connections per host and GET requests with a Range header.

    ``timeout`` gives the connect timeout and the longest wait for a
    byte (its ``read`` value).  Idle connections stay open for
    ``keepalive_expiry`` seconds, at most ``max_idle`` of them.
    """

    def __init__(
        self,
        timeout: httpx.Timeout,
        user_agent: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        max_idle: int = 64,
        keepalive_expiry: float = 30.0,
    ) -> None:
        self.connect_timeout = math.inf if timeout.connect is None else timeout.connect
        self.read_timeout = math.inf if timeout.read is None else timeout.read
        self.user_agent = user_agent
        self.max_idle = max_idle
        self.keepalive_expiry = keepalive_expiry
        self._ssl_context = ssl_context
        self._idle: list[_Connection] = []
        # (scheme, netloc) of hosts whose responses only httpx can read.
        self._httpx_hosts: set[tuple[str, str]] = set()
        self.new_connections = 0

    # Pool

    def release(self, connection: _Connection) -> None:
        connection.idle_since = trio.current_time()
        self._idle.append(connection)
        if len(self._idle) > self.max_idle:
            self._idle.pop(0).close()

    def _take_idle(self, key: tuple[str, str, int]) -> _Connection | None:
        oldest_kept = trio.current_time() - self.keepalive_expiry
        idle = self._idle
        # Connections are released in time order, so the expired ones are at the front.
        while idle and idle[0].idle_since < oldest_kept:
            idle.pop(0).close()
        # Newest first: it is the least likely to have been closed by the server.
        for index in range(len(idle) - 1, -1, -1):
            if idle[index].key == key:
                return idle.pop(index)
        return None

    async def _connect(self, target: _Target) -> _Connection:
        try:
            with trio.fail_after(self.connect_timeout):
                stream = await trio.open_tcp_stream(target.host, target.port)
                connection = _Connection(target.key, stream.socket)
                try:
                    if target.scheme == "https":
                        await connection.start_tls(self._tls_context(), target.host)
                except BaseException:
                    connection.close()
                    raise
        except trio.TooSlowError:
            raise httpx.ConnectTimeout(f"connecting to {target.host_header} took over {self.connect_timeout:g} s") from None
        except (OSError, ssl.SSLError, ssl.CertificateError) as exc:
            raise httpx.ConnectError(f"connecting to {target.host_header} failed: {exc}") from None
        self.new_connections += 1
        return connection

    def _tls_context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            # The same verification as the httpx clients: certifi, or
            # SSL_CERT_FILE and SSL_CERT_DIR when set.
            self._ssl_context = httpx.create_ssl_context()
        return self._ssl_context

    async def aclose(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()

    # Requests

    def handles(self, url: str) -> bool:
        """Return False for links of hosts that earlier sent a response only httpx can read."""
        return not self._httpx_hosts or _host_of(url) not in self._httpx_hosts

    def leave_to_httpx(self, url: str) -> None:
        """Send the requests of ``url``'s host through httpx from now on."""
        self._httpx_hosts.add(_host_of(url))

    async def get(self, url: str, start: int, end: int) -> RangeResponse:
        """Send ``GET url`` for bytes ``[start, end)`` and return the response once its head arrived.

        Follows redirects.  The caller reads the body with ``read_into``
        and must call ``close``.
        """
        for _ in range(MAX_REDIRECTS + 1):
            target = _Target(url)
            response = await self._request(target, start, end)
            location = response.headers.get("location")
            if response.status_code not in REDIRECT_STATUSES or not location:
                return response
            response.close()
            url = urljoin(url, location.strip())
        raise httpx.RemoteProtocolError(f"more than {MAX_REDIRECTS} redirects")

    async def _request(self, target: _Target, start: int, end: int) -> RangeResponse:
        request = (
            f"GET {target.path} HTTP/1.1\r\n"
            f"Host: {target.host_header}\r\n"
            f"User-Agent: {self.user_agent}\r\n"
            "Accept: */*\r\n"
            "Accept-Encoding: identity\r\n"
            f"Range: bytes={start}-{end - 1}\r\n"
            "\r\n"
        ).encode("ascii")
        while True:
            connection = self._take_idle(target.key)
            reused = connection is not None
            if connection is None:
                connection = await self._connect(target)
            try:
                return await self._exchange(connection, request)
            except _NothingReceived as exc:
                connection.close()
                if reused:
                    continue
                raise exc.error from None
            except BaseException:
                connection.close()
                raise

    async def _exchange(self, connection: _Connection, request: bytes) -> RangeResponse:
        try:
            await connection.send_all(request)
        except (OSError, ssl.SSLError) as exc:
            raise _NothingReceived(httpx.WriteError(f"sending the request failed: {exc}")) from None
        buffer = bytearray(HEAD_LIMIT)
        view = memoryview(buffer)
        filled = 0
        searched = 0
        with trio.CancelScope() as scope:
            while True:
                scope.deadline = trio.current_time() + self.read_timeout
                try:
                    count = await connection.recv_into(view[filled:])
                except (OSError, ssl.SSLError) as exc:
                    error = httpx.ReadError(f"receiving the response failed: {exc}")
                    if filled == 0:
                        raise _NothingReceived(error) from None
                    raise error from None
                if not count:
                    error = httpx.RemoteProtocolError("the server closed the connection before the whole response head")
                    if filled == 0:
                        raise _NothingReceived(error)
                    raise error
                filled += count
                while True:
                    index = buffer.find(b"\r\n\r\n", max(0, searched - 3), filled)
                    if index < 0:
                        break
                    head_end = index + 4
                    status, headers, keep_alive = _parse_head(bytes(view[:index]))
                    if 100 <= status < 200 and status != 101:
                        # An informational head; the real one follows.
                        view[: filled - head_end] = view[head_end:filled]
                        filled -= head_end
                        searched = 0
                        continue
                    # The buffer belongs to this request alone, so a view of it is enough.
                    spare = view[head_end:filled]
                    return RangeResponse(self, connection, status, headers, keep_alive, spare)
                searched = filled
                if filled == HEAD_LIMIT:
                    raise httpx.RemoteProtocolError(f"a response head longer than {HEAD_LIMIT} bytes")
        raise httpx.ReadTimeout(f"no response for {self.read_timeout:g} s")


def _parse_head(head: bytes) -> tuple[int, httpx.Headers, bool]:
    """Return the status, the headers and whether the connection stays open."""
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code = rest[:3]
    if version not in ("HTTP/1.1", "HTTP/1.0") or not code.isdigit() or not 100 <= int(code) <= 599:
        raise httpx.RemoteProtocolError(f"invalid status line {lines[0][:80]!r}")
    pairs: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise httpx.RemoteProtocolError(f"invalid header line {line[:80]!r}")
        pairs.append((name, value.strip()))
    headers = httpx.Headers(pairs)
    tokens = {token.strip().lower() for token in headers.get("connection", "").split(",")}
    if version == "HTTP/1.1":
        keep_alive = "close" not in tokens
    else:
        keep_alive = "keep-alive" in tokens
    return int(code), headers, keep_alive

