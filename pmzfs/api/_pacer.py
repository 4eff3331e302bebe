"""Limits on the API requests of one client: concurrency, rate and the rate-limit pause."""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

log = logging.getLogger(__name__)


class TokenBucket:
    """A token bucket: ``rate`` tokens per second, at most ``burst`` stored.

    Waiters take tokens in arrival order because they queue on one lock.
    A ``rate`` of 0 or less disables the limit.
    """

    def __init__(self, rate: float, burst: float) -> None:
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst}")
        self.rate = rate
        self.burst = float(burst)
        self._tokens = float(burst)
        self._updated: float | None = None
        self._lock = trio.Lock()

    async def take(self) -> None:
        """Wait until a token is available and take it."""
        if self.rate <= 0:
            return
        async with self._lock:
            self._refill()
            if self._tokens < 1.0:
                await trio.sleep((1.0 - self._tokens) / self.rate)
                self._refill()
            self._tokens -= 1.0

    def _refill(self) -> None:
        now = trio.current_time()
        if self._updated is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now


class RateLimitPause:
    """One pause shared by every request of a client after ``rate_limit_reached``.

    Each hit sets a pause that all new requests wait out.  The pause
    doubles when a request sent after the previous pause is rejected again,
    so many requests rejected in the same burst grow it only once.  Each
    success halves it, and it drops to zero once it falls below half the
    initial value.
    """

    def __init__(self, initial: float, maximum: float) -> None:
        self.initial = initial
        self.maximum = maximum
        self.delay = 0.0
        self.generation = 0
        self._until = -math.inf
        self.hits = 0

    async def wait(self) -> int:
        """Wait for the current pause to end; returns the generation to pass to ``hit``."""
        while True:
            remaining = self._until - trio.current_time()
            if remaining <= 0:
                return self.generation
            await trio.sleep(remaining)

    def hit(self, generation: int) -> float:
        """Record a ``rate_limit_reached`` for a request sent in ``generation``; returns the pause."""
        self.hits += 1
        if generation == self.generation:
            self.delay = self.initial if self.delay == 0 else min(self.maximum, self.delay * 2)
            self.generation += 1
            self._until = trio.current_time() + self.delay
            log.debug("rate limit pause is now %.2f s", self.delay)
        return self.delay

    def success(self) -> None:
        """Shrink the pause after a request succeeded."""
        if self.delay:
            self.delay /= 2
            if self.delay < self.initial / 2:
                self.delay = 0.0


class Pacer:
    """Caps the concurrent API requests and their rate, and contains the rate-limit pause."""

    def __init__(self, concurrency: int, rate: float, burst: float, pause: RateLimitPause) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.limiter = trio.CapacityLimiter(concurrency)
        self.bucket = TokenBucket(rate, burst)
        self.pause = pause

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[int]:
        """Hold one request slot; yields the rate-limit generation the request is sent in."""
        async with self.limiter:
            generation = await self.pause.wait()
            await self.bucket.take()
            yield generation
