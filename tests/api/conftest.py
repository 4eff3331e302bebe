"""Fixtures for the API client tests: a fake service and a client with fast retries."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fake_premiumize import API_KEY, BASE_URL, FakeService  # noqa: E402

from pmzfs.api._retry import RetryPolicy  # noqa: E402
from pmzfs.api.client import PremiumizeClient  # noqa: E402


def fast_retry(**overrides: float) -> RetryPolicy:
    """Return a retry policy with short delays, so tests under a real clock stay fast."""
    settings = dict(
        max_attempts=4,
        rate_limit_attempts=6,
        max_elapsed=30.0,
        base_delay=0.01,
        max_delay=0.05,
        rate_limit_initial=0.01,
        rate_limit_max=0.08,
    )
    settings.update(overrides)
    return RetryPolicy(**settings, rng=random.Random(1))


@pytest.fixture
def service() -> FakeService:
    return FakeService()


@pytest.fixture
async def client(service: FakeService):
    async with PremiumizeClient(
        BASE_URL, API_KEY, transport=service.transport, retry=fast_retry(), rate=0
    ) as api:
        yield api
