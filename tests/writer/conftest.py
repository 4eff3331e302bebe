"""Fixtures for the writer tests: an emulator on loopback, the real client, and a writer.

Every test talks to the emulator through ``PremiumizeClient``; nothing
below HTTP is replaced.  The client retries with millisecond delays so
fault tests stay short.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trio

from pmzfs.api._retry import RetryPolicy as ClientRetryPolicy
from pmzfs.api.client import PremiumizeClient
from pmzfs.api.models import Item
from pmzfs.emulator.server import Emulator
from pmzfs.emulator.testing import emulator_for_tests
from pmzfs.writer import RetryPolicy, UploadDone, Writer

# Background retries that never fire on their own during a test; tests that
# want a retry call ``Writer.upload_pending`` or pass ``QUICK_RETRIES``.
NO_BACKGROUND_RETRIES = RetryPolicy((3600.0,))
QUICK_RETRIES = RetryPolicy((0.05, 0.1, 0.2))


def fast_client_retry() -> ClientRetryPolicy:
    return ClientRetryPolicy(
        max_attempts=3,
        rate_limit_attempts=4,
        max_elapsed=20.0,
        base_delay=0.01,
        max_delay=0.03,
        rate_limit_initial=0.01,
        rate_limit_max=0.05,
        rng=random.Random(1),
    )


class RecordingListener:
    """A ``WriterListener`` that keeps every ``UploadDone`` it gets."""

    def __init__(self) -> None:
        self.done: list[UploadDone] = []

    def upload_done(self, done: UploadDone) -> None:
        self.done.append(done)


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[Emulator]:
    with emulator_for_tests(tmp_path / "emulator") as emulator:
        yield emulator


@pytest.fixture
async def client(emu: Emulator) -> AsyncIterator[PremiumizeClient]:
    async with PremiumizeClient(emu.base_url, emu.api_key, retry=fast_client_retry(), rate=0) as api:
        yield api


@pytest.fixture
def staging_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache" / "staging"


@pytest.fixture
def listener() -> RecordingListener:
    return RecordingListener()


@pytest.fixture
async def writer(client, staging_dir, listener) -> AsyncIterator[Writer]:
    async with Writer(client, staging_dir, listener=listener, retry=NO_BACKGROUND_RETRIES) as instance:
        yield instance


@pytest.fixture
def folder_id(emu: Emulator) -> str:
    return emu.state.create_folder(emu.root_id, "Uploads")


async def files_named(client: PremiumizeClient, folder_id: str, name: str) -> list[Item]:
    listing = await client.folder_list(folder_id)
    return [item for item in listing.content if item.name == name and not item.is_folder]


async def only_file(client: PremiumizeClient, folder_id: str, name: str) -> Item:
    found = await files_named(client, folder_id, name)
    assert len(found) == 1, f"expected one file named {name!r}, found {found}"
    return found[0]


async def folder_names(client: PremiumizeClient, folder_id: str) -> list[str]:
    listing = await client.folder_list(folder_id)
    return sorted(item.name for item in listing.content)


async def wait_until(predicate, *, timeout: float = 20.0, step: float = 0.02) -> None:
    """Poll ``predicate`` until it is true; fail after ``timeout`` seconds."""
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(step)


def staged_data_files(staging_dir: Path) -> list[Path]:
    return sorted(staging_dir.glob("*.data"))
