"""Fixtures for the write tests on real mounts.

Every test runs twice: against an emulator that allows two entries with one
name in a folder, and against one that rejects a create, rename, upload or
paste onto a taken name.  pmzfs must behave the same under both.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The real-mount helpers of tests/mount, shared rather than copied.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "mount"))
from fusemount import Mounter, fuse_unavailable_reason, running_emulator  # noqa: E402
from write_testing import FAST_MOUNT_OPTIONS  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def require_fuse():
    reason = fuse_unavailable_reason()
    if reason is not None:
        pytest.skip(f"real FUSE mounts are not possible here: {reason}")


@pytest.fixture(params=[True, False], ids=["duplicates-allowed", "duplicates-rejected"])
def emulator(request, tmp_path):
    """An emulator with API key "test-key" under each setting for duplicate names."""
    with running_emulator(tmp_path / "emulator-state", duplicate_names=request.param) as emu:
        yield emu


@pytest.fixture
def mount(tmp_path):
    """Factory: ``mount(emu, *options, expect_errors=False)`` returns a started ``Mount``."""
    mounter = Mounter(tmp_path / "mounts")
    try:
        yield mounter
    finally:
        mounter.close()


@pytest.fixture
def mounted(emulator, mount):
    """A writable mount of ``emulator``."""
    return mount(emulator, *FAST_MOUNT_OPTIONS)
