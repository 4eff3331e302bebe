"""Request counters that tests and benchmarks read."""

from __future__ import annotations

import threading
from collections import Counter


class Counters:
    """Thread-safe counts of what the emulator served since start or ``reset``.

    ``api_calls[endpoint]`` counts every request to a known API endpoint,
    including the ones that returned an error.  ``bytes_served[file_id]``
    counts body bytes sent from file links, ``link_requests[file_id]`` the
    link requests (GET and HEAD).  ``uploads`` and ``upload_bytes`` count
    uploads stored successfully, ``new_connections`` every accepted TCP
    connection.  Reading a key that was never counted returns 0.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.api_calls: Counter[str] = Counter()
        self.bytes_served: Counter[str] = Counter()
        self.link_requests: Counter[str] = Counter()
        self.uploads = 0
        self.upload_bytes = 0
        self.new_connections = 0

    def count_api_call(self, endpoint: str) -> None:
        with self._lock:
            self.api_calls[endpoint] += 1

    def count_link_request(self, file_id: str) -> None:
        with self._lock:
            self.link_requests[file_id] += 1

    def count_bytes_served(self, file_id: str, count: int) -> None:
        with self._lock:
            self.bytes_served[file_id] += count

    def count_upload(self, size: int) -> None:
        with self._lock:
            self.uploads += 1
            self.upload_bytes += size

    def count_connection(self) -> None:
        with self._lock:
            self.new_connections += 1

    def reset(self) -> None:
        """Set every counter back to zero."""
        with self._lock:
            self.api_calls.clear()
            self.bytes_served.clear()
            self.link_requests.clear()
            self.uploads = 0
            self.upload_bytes = 0
            self.new_connections = 0

    def snapshot(self) -> dict[str, object]:
        """Return a copy of every counter, for a report or a JSON dump."""
        with self._lock:
            return {
                "api_calls": dict(self.api_calls),
                "bytes_served": dict(self.bytes_served),
                "link_requests": dict(self.link_requests),
                "uploads": self.uploads,
                "upload_bytes": self.upload_bytes,
                "new_connections": self.new_connections,
            }
