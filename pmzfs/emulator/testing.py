"""Helpers for tests that run against the emulator.

A fixture in a test package's conftest.py can be as short as::

    @pytest.fixture
    def emulator(tmp_path):
        with emulator_for_tests(tmp_path / "emulator") as emu:
            yield emu
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pmzfs.emulator.options import EmulatorOptions
from pmzfs.emulator.server import Emulator

TEST_API_KEY = "test-key"


@contextlib.contextmanager
def emulator_for_tests(state_dir: Path | None = None, **options: Any) -> Iterator[Emulator]:
    """Run an emulator on 127.0.0.1 with a free port and ``TEST_API_KEY`` until the block ends.

    Keyword arguments set ``EmulatorOptions`` fields; transfers finish at
    once and device codes may be polled without waiting, unless given.
    """
    options.setdefault("api_key", TEST_API_KEY)
    options.setdefault("device_poll_interval", 0)
    emulator = Emulator(state_dir=state_dir, options=EmulatorOptions(**options))
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


def success(response: Any) -> dict[str, Any]:
    """Return the JSON of an HTTP 200 success envelope; fail with the whole envelope otherwise."""
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["status"] == "success", document
    return document


def error_code(response: Any) -> str:
    """Return the ``code`` of an HTTP 200 error envelope; fail with the response otherwise."""
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["status"] == "error", document
    assert document["message"], document
    return document["code"]
