"""Fixtures for the tests that mount pmzfs with the kernel's FUSE driver.

A test seeds an in-process emulator through ``emu.state``, mounts it with
the ``mount`` factory (``python -m pmzfs mount MP --foreground``) and drives
the mountpoint with ordinary programs.  Teardown unmounts and fails the test
if the mount process did not exit 0 or printed a traceback or ERROR line.
"""

from __future__ import annotations

import pytest
from fusemount import Mounter, fuse_unavailable_reason, running_emulator
from media import ffmpeg_missing, source_video


@pytest.fixture(scope="session", autouse=True)
def require_fuse():
    reason = fuse_unavailable_reason()
    if reason is not None:
        pytest.skip(f"real FUSE mounts are not possible here: {reason}")


@pytest.fixture
def emulator(tmp_path):
    """An emulator with API key "test-key" and state in the test's tmp_path."""
    with running_emulator(tmp_path / "emulator-state") as emu:
        yield emu


@pytest.fixture
def mount(tmp_path):
    """Factory: ``mount(emu, *options, expect_errors=False)`` returns a started ``Mount``.

    Calling it again on the same emulator (after ``Mount.unmount``) remounts.
    """
    mounter = Mounter(tmp_path / "mounts")
    try:
        yield mounter
    finally:
        mounter.close()


@pytest.fixture(scope="module")
def module_mounter(tmp_path_factory):
    """Mount factory whose mounts live until the end of the module."""
    mounter = Mounter(tmp_path_factory.mktemp("mounts"))
    try:
        yield mounter
    finally:
        mounter.close()


@pytest.fixture(scope="session")
def video_file(tmp_path_factory):
    """Path of a ~10 s H.264/AAC MP4 with a keyframe each second."""
    reason = ffmpeg_missing()
    if reason is not None:
        pytest.skip(f"video tests need ffmpeg: {reason}")
    return source_video(tmp_path_factory.mktemp("video"))
