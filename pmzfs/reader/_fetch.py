"""Range requests against file links: response checks, retries and link refresh.

Links of the real service embed access paths, so nothing here logs or
raises a link: messages name the file id.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import trio

from pmzfs.reader._chunk import Chunk
from pmzfs.reader._errors import ReadError
from pmzfs.reader._http import RangeClient, RangeResponse, Unsupported

log = logging.getLogger(__name__)

# Statuses that mean the link itself stopped working; a fresh link fixes them.
# 416 joins them because the link may now point at other content than the
# size the caller expects.
LINK_FAILURE_STATUSES = frozenset({403, 404, 410, 416})

_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+)\s*$", re.IGNORECASE)
_URL = re.compile(r"\w+://\S+")


@dataclass
class RetryLimits:
    """Bounds on retries of one chunk; progress (new bytes) resets the counts."""

    # Retries in a row after resets, timeouts, 429, 5xx and invalid responses.
    max_retries: int = 5
    # Link refreshes in a row.
    max_refreshes: int = 3
    # Seconds without a new byte before the read fails.
    max_stall: float = 10.0
    # Seconds before the first retry; each further retry waits twice as long.
    backoff_initial: float = 0.1
    backoff_max: float = 2.0


class BadResponse(Exception):
    """A response that must not be used as file data; a retry may fix it."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class LinkFailed(Exception):
    """The link returned a status that a fresh link fixes."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


class WarningLimiter:
    """Log a warning at most once per ``interval`` seconds per key, counting the rest."""

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, key: str, message: str, *args: object) -> None:
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        self._last[key] = now
        suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            log.warning(message + " (%d similar warnings suppressed)", *args, suppressed)
        else:
            log.warning(message, *args)


def describe(exc: BaseException) -> str:
    """Return a one-line description of ``exc`` with any URL in it masked."""
    text = _URL.sub("<link>", str(exc)) or "no details"
    return f"{type(exc).__name__}: {text}"


def check_response(response: httpx.Response | RangeResponse, start: int, end: int, size: int) -> None:
    """Raise unless ``response`` carries exactly bytes ``[start, end)`` of a ``size``-byte file.

    Accepts 206 with a matching Content-Range, and 200 only when the range
    is the whole file.  Raises ``LinkFailed`` for statuses a fresh link
    fixes and ``BadResponse`` for everything else.
    """
    status = response.status_code
    headers = response.headers
    if status in LINK_FAILURE_STATUSES:
        raise LinkFailed(status)
    if status == 429 or status >= 500:
        raise BadResponse(f"HTTP {status}", retry_after=_retry_after(headers))
    encoding = headers.get("content-encoding", "identity").strip().lower()
    if encoding != "identity":
        raise BadResponse(f"unexpected Content-Encoding {encoding!r}")
    expected_length = end - start
    if status == 206:
        _check_content_range(headers.get("content-range"), start, end, size)
    elif status == 200:
        if start != 0 or end != size:
            raise BadResponse(f"HTTP 200 (the whole file) for a request of bytes {start}-{end - 1}")
    else:
        raise BadResponse(f"unexpected HTTP {status}")
    length = headers.get("content-length")
    if length is not None and length.strip() != str(expected_length):
        raise BadResponse(f"Content-Length {length!r} for a range of {expected_length} bytes")


def _check_content_range(header: str | None, start: int, end: int, size: int) -> None:
    if header is None:
        raise BadResponse("HTTP 206 without Content-Range")
    match = _CONTENT_RANGE.match(header)
    if match is None:
        raise BadResponse(f"invalid Content-Range {header!r}")
    first, last, total = (int(value) for value in match.groups())
    if (first, last) != (start, end - 1):
        raise BadResponse(f"Content-Range {header!r} for a request of bytes {start}-{end - 1}")
    if total != size:
        raise BadResponse(f"Content-Range {header!r} gives size {total}, expected {size}")


def _retry_after(headers: httpx.Headers) -> float | None:
    value = headers.get("retry-after", "").strip()
    return float(value) if value.isdigit() else None


class Link:
    """The current link of one file and the callback that replaces it.

    One refresh runs at a time per file, in a task of its own.  A read that
    stops waiting for it (cancelled, or its file closed) does not cancel
    it, so the other reads of the file need not request a link again.
    """

    def __init__(
        self,
        file_id: str,
        url: str,
        refresh: Callable[[], Awaitable[str]],
        spawn: Callable[[Callable[[], Awaitable[None]]], None],
        timeout: float,
    ) -> None:
        self.file_id = file_id
        self.url = url
        self.refresh_callback = refresh
        self.refreshes = 0
        self._spawn = spawn
        self._timeout = timeout
        self._refreshed: trio.Event | None = None
        self._error: ReadError | None = None

    async def refresh(self, failed_url: str) -> None:
        """Replace the link unless it already changed since ``failed_url`` failed.

        Raises ``ReadError`` when the callback fails, times out or returns
        something other than a link.
        """
        if self.url != failed_url:
            return
        if self._refreshed is None:
            self._refreshed = trio.Event()
            self._error = None
            self._spawn(self._run_refresh)
        await self._refreshed.wait()
        if self.url == failed_url and self._error is not None:
            raise ReadError(self._error.strerror, self._error.errno)

    async def _run_refresh(self) -> None:
        try:
            with trio.fail_after(self._timeout):
                url = await self.refresh_callback()
            if not isinstance(url, str) or not url:
                raise ReadError(f"requesting a new link for file {self.file_id} returned {type(url).__name__}, not a link")
            self.url = url
            self.refreshes += 1
        except trio.TooSlowError:
            self._error = ReadError(f"requesting a new link for file {self.file_id} timed out after {self._timeout:g} s")
        except ReadError as exc:
            self._error = exc
        except Exception as exc:
            self._error = ReadError(f"requesting a new link for file {self.file_id} failed: {describe(exc)}")
        finally:
            event, self._refreshed = self._refreshed, None
            event.set()


class Fetcher:
    """Download chunks with range requests.

    Read-ahead and reads that fetch their own bytes use separate clients,
    so separate connection pools.  Read-ahead may keep every connection of
    its pool busy, and cancelling read-ahead of a position the player left
    closes connections.  The reads' pool keeps the connections of earlier
    reads open, so the first request after a seek usually goes out on an
    open connection.

    With ``readahead_ranges`` and ``read_ranges`` (``RangeClient``) the
    requests go through them, and through the httpx clients only for
    links and responses that the range client leaves to httpx.
    """

    def __init__(
        self,
        readahead_client: httpx.AsyncClient,
        read_client: httpx.AsyncClient,
        limits: RetryLimits,
        *,
        readahead_ranges: RangeClient | None = None,
        read_ranges: RangeClient | None = None,
    ) -> None:
        self.readahead_client = readahead_client
        self.read_client = read_client
        self.readahead_ranges = readahead_ranges
        self.read_ranges = read_ranges
        self.limits = limits
        self.requests = 0
        self.bytes_fetched = 0
        self.retries = 0
        self.warnings = WarningLimiter()

    async def fill(self, link: Link, chunk: Chunk, size: int) -> None:
        """Download the missing bytes ``[chunk.filled, chunk.end)`` into ``chunk``.

        Resumes where a failed attempt stopped.  Raises ``ReadError`` after
        ``max_retries`` retries or ``max_refreshes`` link refreshes
        in a row, or ``max_stall`` seconds without a new byte.
        """
        limits = self.limits
        failures = 0
        refreshes = 0
        deadline = trio.current_time() + limits.max_stall
        while chunk.filled < chunk.end:
            before = chunk.filled
            url = link.url
            try:
                await self._attempt(link.file_id, url, chunk, size, deadline)
            except LinkFailed as exc:
                if chunk.filled > before:
                    refreshes = 0
                    deadline = trio.current_time() + limits.max_stall
                refreshes += 1
                if refreshes > limits.max_refreshes:
                    raise ReadError(f"link of file {link.file_id} still fails after {limits.max_refreshes} refreshes ({exc})") from None
                await self._refresh(link, url, exc, deadline)
            except httpx.InvalidURL as exc:
                raise ReadError(f"link of file {link.file_id} is invalid: {describe(exc)}") from None
            except (httpx.UnsupportedProtocol, httpx.TooManyRedirects) as exc:
                raise ReadError(f"reading file {link.file_id} failed: {describe(exc)}") from None
            except (httpx.TransportError, BadResponse, trio.TooSlowError) as exc:
                if chunk.filled > before:
                    failures = 0
                    refreshes = 0
                    deadline = trio.current_time() + limits.max_stall
                failures += 1
                delay = min(limits.backoff_max, limits.backoff_initial * 2 ** (failures - 1))
                delay *= random.uniform(0.5, 1.0)
                if isinstance(exc, BadResponse) and exc.retry_after is not None:
                    delay = min(max(delay, exc.retry_after), limits.backoff_max)
                if failures > limits.max_retries or trio.current_time() + delay >= deadline:
                    raise ReadError(f"reading file {link.file_id} failed after {failures} attempts: {describe(exc)}") from None
                self.retries += 1
                self.warnings.warning(
                    "retry", "retrying a read of file %s at offset %d in %.2f s: %s",
                    link.file_id, chunk.filled, delay, describe(exc),
                )
                await trio.sleep(delay)

    async def _refresh(self, link: Link, url: str, exc: LinkFailed, deadline: float) -> None:
        self.warnings.warning(
            "refresh", "link of file %s stopped working (%s); requesting a new one", link.file_id, exc
        )
        try:
            with trio.fail_at(deadline):
                await link.refresh(url)
        except trio.TooSlowError:
            raise ReadError(f"requesting a new link for file {link.file_id} timed out") from None

    async def _attempt(self, file_id: str, url: str, chunk: Chunk, size: int, deadline: float) -> None:
        ranges = self.readahead_ranges if chunk.readahead else self.read_ranges
        if ranges is not None and ranges.handles(url):
            try:
                await self._attempt_ranges(ranges, file_id, url, chunk, size, deadline)
                return
            except Unsupported as exc:
                log.debug("file %s: the link needs httpx (%s); its host is read through httpx from now on", file_id, exc)
                ranges.leave_to_httpx(url)
        await self._attempt_httpx(file_id, url, chunk, size, deadline)

    async def _attempt_ranges(
        self, ranges: RangeClient, file_id: str, url: str, chunk: Chunk, size: int, deadline: float
    ) -> None:
        start = chunk.filled
        end = chunk.end
        log.debug("GET file %s bytes %d-%d", file_id, start, end - 1)
        self.requests += 1
        # As with httpx: the deadline bounds the wait for the response head.
        with trio.fail_at(deadline):
            response = await ranges.get(url, start, end)
        try:
            check_response(response, start, end, size)
            await response.read_into(chunk)
        finally:
            self.bytes_fetched += chunk.filled - start
            response.close()

    async def _attempt_httpx(self, file_id: str, url: str, chunk: Chunk, size: int, deadline: float) -> None:
        start = chunk.filled
        end = chunk.end
        client = self.readahead_client if chunk.readahead else self.read_client
        request = client.build_request(
            "GET", url, headers={"Range": f"bytes={start}-{end - 1}", "Accept-Encoding": "identity"}
        )
        log.debug("GET file %s bytes %d-%d", file_id, start, end - 1)
        self.requests += 1
        # The deadline bounds the wait for the response headers only: a
        # large body may take longer, and the client's read timeout catches
        # a body that stops.
        with trio.fail_at(deadline):
            response = await client.send(request, stream=True)
        try:
            check_response(response, start, end, size)
            async for data in response.aiter_bytes():
                if chunk.filled + len(data) > end:
                    raise BadResponse(f"body longer than the {end - start} bytes requested")
                chunk.append(data)
        finally:
            self.bytes_fetched += chunk.filled - start
            with trio.CancelScope(shield=True):
                await response.aclose()
        if chunk.filled < end:
            raise BadResponse(f"body ended after {chunk.filled - start} of {end - start} bytes")
