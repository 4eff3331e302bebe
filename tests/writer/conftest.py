"""Fixtures for the writer tests: an emulator on loopback, the real client, and a writer.

Every test talks to the emulator through ``PremiumizeClient``; nothing
below HTTP is replaced.  The client retries with millisecond delays so
fault tests stay short.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from writer_testing import NO_BACKGROUND_RETRIES, RecordingListener, fast_client_retry

from pmzfs.api.client import PremiumizeClient
from pmzfs.emulator.server import Emulator
from pmzfs.emulator.testing import emulator_for_tests
from pmzfs.writer import Writer


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
