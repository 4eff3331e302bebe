"""Fixtures for the API client tests: a fake service and a client with fast retries."""

from __future__ import annotations

import pytest
from api_testing import fast_retry
from fake_premiumize import API_KEY, BASE_URL, FakeService

from pmzfs.api.client import PremiumizeClient


@pytest.fixture
def service() -> FakeService:
    return FakeService()


@pytest.fixture
async def client(service: FakeService):
    async with PremiumizeClient(
        BASE_URL, API_KEY, transport=service.transport, retry=fast_retry(), rate=0
    ) as api:
        yield api
