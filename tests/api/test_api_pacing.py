"""The pacer's concurrency and rate caps, and the shared rate-limit pause (virtual time)."""

from __future__ import annotations

import httpx
import pytest
import trio
from api_testing import fast_retry
from fake_premiumize import API_KEY, BASE_URL, FakeService

from pmzfs.api import errors
from pmzfs.api._pacer import RateLimitPause, TokenBucket
from pmzfs.api.client import PremiumizeClient


class SlowService(FakeService):
    """A fake service that takes ``latency`` seconds per API call and counts calls in flight."""

    def __init__(self, latency: float = 0.5) -> None:
        super().__init__()
        self.latency = latency
        self.in_flight = 0
        self.max_in_flight = 0
        self.times: list[float] = []

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.times.append(trio.current_time())
        try:
            await trio.sleep(self.latency)
            return await super().handle(request)
        finally:
            self.in_flight -= 1


class RateLimitedService(FakeService):
    """A fake service that returns rate_limit_reached beyond ``limit`` requests per ``window`` seconds."""

    def __init__(self, limit: int, window: float) -> None:
        super().__init__()
        self.limit = limit
        self.window = window
        self.accepted: list[float] = []
        self.rejected = 0

    async def handle(self, request: httpx.Request) -> httpx.Response:
        now = trio.current_time()
        recent = [t for t in self.accepted if now - t < self.window]
        self.accepted = recent
        if len(recent) >= self.limit:
            self.rejected += 1
            self.requests.append(request)
            self.bodies.append(b"")
            return self.error("rate_limit_reached", "too many requests")
        self.accepted.append(now)
        return await super().handle(request)


async def list_many(api: PremiumizeClient, count: int) -> list[str]:
    results: list[str] = []

    async def one() -> None:
        listing = await api.folder_list()
        results.append(listing.folder_id)

    async with trio.open_nursery() as nursery:
        for _ in range(count):
            nursery.start_soon(one)
    return results


async def test_pacer_caps_concurrency(autojump_clock):
    service = SlowService()
    async with PremiumizeClient(
        BASE_URL, API_KEY, transport=service.transport, retry=fast_retry(), concurrency=3, rate=0
    ) as api:
        results = await list_many(api, 12)
    assert len(results) == 12
    assert service.max_in_flight == 3


async def test_pacer_caps_rate_with_burst(autojump_clock):
    service = SlowService(latency=0.0)
    async with PremiumizeClient(
        BASE_URL, API_KEY, transport=service.transport, retry=fast_retry(), concurrency=50, rate=10, burst=5
    ) as api:
        await list_many(api, 40)
    times = sorted(service.times)
    assert len(times) == 40
    # In any one-second window: at most the burst plus one second of rate.
    for index, start in enumerate(times):
        in_window = [t for t in times[index:] if t - start < 1.0]
        assert len(in_window) <= 5 + 10
    # 40 requests at 10/s after a burst of 5 take at least 3.5 s of virtual time.
    assert times[-1] - times[0] >= 3.4


async def test_token_bucket_disabled_with_zero_rate(autojump_clock):
    bucket = TokenBucket(rate=0, burst=1)
    start = trio.current_time()
    for _ in range(100):
        await bucket.take()
    assert trio.current_time() == start


async def test_rate_limit_storm_finishes(autojump_clock):
    service = RateLimitedService(limit=5, window=1.0)
    retry = fast_retry(rate_limit_attempts=30, rate_limit_initial=0.5, rate_limit_max=4.0, max_elapsed=600)
    async with PremiumizeClient(
        BASE_URL, API_KEY, transport=service.transport, retry=retry, concurrency=20, rate=0
    ) as api:
        results = await list_many(api, 60)
        pause = api.rate_limit_pause
    assert len(results) == 60
    assert service.rejected > 0
    assert pause.hits == service.rejected
    # The shared pause makes all requests wait together: far fewer
    # rejections than the 60 requests times their rate-limit attempts.
    assert service.rejected < 60 * 3


async def test_rate_limit_exhausted_raises(autojump_clock):
    service = RateLimitedService(limit=0, window=1.0)
    retry = fast_retry(rate_limit_attempts=4, max_elapsed=600)
    async with PremiumizeClient(BASE_URL, API_KEY, transport=service.transport, retry=retry, rate=0) as api:
        with pytest.raises(errors.RateLimitReached):
            await api.folder_list()
    assert service.rejected == 4


async def test_pause_grows_once_per_burst(autojump_clock):
    pause = RateLimitPause(initial=1.0, maximum=8.0)
    generation = await pause.wait()
    # Ten requests sent in the same generation grow the pause once.
    for _ in range(10):
        pause.hit(generation)
    assert pause.delay == 1.0
    generation = await pause.wait()
    pause.hit(generation)
    assert pause.delay == 2.0
    generation = await pause.wait()
    pause.hit(generation)
    generation = await pause.wait()
    pause.hit(generation)
    generation = await pause.wait()
    pause.hit(generation)
    assert pause.delay == 8.0


async def test_pause_decays_after_success(autojump_clock):
    pause = RateLimitPause(initial=1.0, maximum=8.0)
    for _ in range(3):
        pause.hit(await pause.wait())
    assert pause.delay == 4.0
    pause.success()
    assert pause.delay == 2.0
    pause.success()
    pause.success()
    assert pause.delay == 0.5
    pause.success()
    assert pause.delay == 0.0


async def test_pause_blocks_all_requests(autojump_clock):
    pause = RateLimitPause(initial=2.0, maximum=8.0)
    pause.hit(await pause.wait())
    start = trio.current_time()
    await pause.wait()
    assert trio.current_time() - start == pytest.approx(2.0)
