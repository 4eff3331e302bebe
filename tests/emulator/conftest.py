"""Fixtures for the emulator's contract tests: a running emulator and HTTP clients."""

from __future__ import annotations

import httpx
import pytest

from pmzfs.emulator.testing import emulator_for_tests


@pytest.fixture
def emulator(tmp_path):
    with emulator_for_tests(tmp_path / "emulator-state") as emu:
        yield emu


@pytest.fixture
def api(emulator):
    """A synchronous httpx client that sends the emulator's API key."""
    with httpx.Client(
        base_url=emulator.base_url,
        headers={"Authorization": f"Bearer {emulator.api_key}"},
        timeout=10,
    ) as client:
        yield client


@pytest.fixture
def anonymous(emulator):
    """A synchronous httpx client without credentials, for links and upload URLs."""
    with httpx.Client(base_url=emulator.base_url, timeout=10) as client:
        yield client
