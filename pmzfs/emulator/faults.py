"""Fault injection decisions: forced errors, random errors, rate limit, resets.

The HTTP layer calls this module to decide whether a request fails and
how.  The settings are read from the options record on each call, so tests
change them at run time.
"""

from __future__ import annotations

import collections
import random
import threading
import time

from pmzfs.emulator.options import INJECTABLE_CODES, EmulatorOptions


class Faults:
    """Thread-safe fault state: forced failures, the random generator, the rate window."""

    def __init__(self, options: EmulatorOptions) -> None:
        self.options = options
        self._lock = threading.Lock()
        self._random = random.Random(options.seed)
        self._seed = options.seed
        # Forced failures per endpoint: a queue of codes, one per coming call.
        self._forced: dict[str, collections.deque[str]] = collections.defaultdict(collections.deque)
        # Monotonic times of the API calls accepted in the last second.
        self._recent_calls: collections.deque[float] = collections.deque()

    def fail_next(self, endpoint: str, code: str, count: int = 1) -> None:
        """Make the next ``count`` calls of ``endpoint`` fail with error ``code``."""
        from pmzfs.emulator.endpoints import ENDPOINTS

        if endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}; use one like 'folder/list'")
        if code not in INJECTABLE_CODES:
            raise ValueError(f"unknown error code {code!r}; use a documented code or 'http_500'")
        if count < 0:
            raise ValueError(f"count must be >= 0, not {count!r}")
        with self._lock:
            self._forced[endpoint].extend([code] * count)

    def clear(self) -> None:
        """Drop every forced failure that has not fired yet."""
        with self._lock:
            self._forced.clear()

    def api_fault(self, endpoint: str) -> str | None:
        """Return the code an API call fails with, or None to handle it normally.

        Forced failures come first, then the rate limit, then the random
        error rates of the endpoint and of ``"*"``.
        """
        with self._lock:
            forced = self._forced.get(endpoint)
            if forced:
                return forced.popleft()
            if self._rate_limited():
                return "rate_limit_reached"
            if self.options.seed != self._seed:
                self._seed = self.options.seed
                self._random.seed(self._seed)
            for key in (endpoint, "*"):
                for code, probability in self.options.error_rates.get(key, {}).items():
                    if probability > 0 and self._random.random() < probability:
                        return code
            return None

    def _rate_limited(self) -> bool:
        limit = self.options.requests_per_second
        if limit is None:
            self._recent_calls.clear()
            return False
        now = time.monotonic()
        while self._recent_calls and now - self._recent_calls[0] >= 1.0:
            self._recent_calls.popleft()
        if len(self._recent_calls) >= limit:
            return True
        self._recent_calls.append(now)
        return False

    def take_link_reset(self, body_length: int) -> int | None:
        """Return after how many body bytes to reset this link response, or None."""
        with self._lock:
            options = self.options
            if options.link_reset_after_bytes is None and options.link_reset_after_fraction is None:
                return None
            if options.link_reset_count is not None:
                if options.link_reset_count <= 0:
                    return None
                options.link_reset_count -= 1
            if options.link_reset_after_bytes is not None:
                return min(options.link_reset_after_bytes, body_length)
            return int(body_length * options.link_reset_after_fraction)

    def take_upload_failure(self) -> str | None:
        """Return how this upload fails ("reset" or "http_5xx"), or None."""
        with self._lock:
            options = self.options
            if options.upload_failure is None:
                return None
            if options.upload_failure_count is not None:
                if options.upload_failure_count <= 0:
                    return None
                options.upload_failure_count -= 1
            return options.upload_failure
