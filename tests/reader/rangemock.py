"""An in-process range server for ``httpx.MockTransport``, with faults a test can script."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable

import httpx

_RANGE = re.compile(r"^bytes=(\d+)-(\d+)$")

Fault = Callable[[httpx.Request, int, int], "httpx.Response | None"]


class MockRangeServer:
    """Serve ``files`` (link path -> bytes) with 206 range responses.

    ``faults`` is a list of callables tried in order before each normal
    response.  The first that returns a response is removed from the list,
    and its response is sent instead.  Link paths in ``dead`` get HTTP 403.  ``requests`` and
    ``bytes_served`` count per link path.
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.dead: set[str] = set()
        self.faults: list[Fault] = []
        self.requests: Counter[str] = Counter()
        self.bytes_served: Counter[str] = Counter()
        self.ranges: list[tuple[str, int, int]] = []

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def add(self, path: str, data: bytes) -> str:
        """Add a file and return its link."""
        self.files[path] = data
        return f"http://127.0.0.1:9/{path}"

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.lstrip("/")
        self.requests[path] += 1
        if path in self.dead or path not in self.files:
            return httpx.Response(403, text="<html><body>Forbidden</body></html>")
        data = self.files[path]
        match = _RANGE.match(request.headers.get("range", ""))
        if match is None:
            return httpx.Response(400, text="this test server needs a Range header")
        start, last = int(match[1]), min(int(match[2]), len(data) - 1)
        self.ranges.append((path, start, last + 1))
        for fault in self.faults:
            response = fault(request, start, last + 1)
            if response is not None:
                self.faults.remove(fault)
                return response
        body = data[start : last + 1]
        self.bytes_served[path] += len(body)
        return range_response(start, last + 1, len(data), body)


def range_response(start: int, end: int, size: int, body: bytes, **headers: str) -> httpx.Response:
    """Return a 206 response whose headers announce bytes ``[start, end)`` of ``size``."""
    values = {
        "Content-Range": f"bytes {start}-{end - 1}/{size}",
        "Content-Length": str(len(body)),
        "Content-Type": "application/octet-stream",
    }
    values.update({name.replace("_", "-"): value for name, value in headers.items()})
    return httpx.Response(206, headers=values, content=body)
