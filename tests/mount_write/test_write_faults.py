"""Upload faults on a real mount: what the writing program gets, and that nothing is lost.

The emulator's fault options break the upload URL or the account's space;
a killed pmzfs is mounted again on the same cache directory.
"""

from __future__ import annotations

import errno
import os
import random
import subprocess
import time
from pathlib import Path

import pytest
from fusemount import MiB, run

from pmzfs.status import server_socket_path
from write_testing import FAST_MOUNT_OPTIONS, manifest_states

pytestmark = pytest.mark.mount

# Seconds a test waits for a condition that the mount reaches on its own.
WAIT_DEADLINE = 30.0


def make_file(path: Path, size: int, seed: int = 1) -> Path:
    path.write_bytes(random.Random(seed).randbytes(size))
    return path


def wait_for(condition, what: str, deadline: float = WAIT_DEADLINE) -> None:
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            pytest.fail(f"{what} did not happen within {deadline} s")
        time.sleep(0.05)


def names_on_service(emu, folder_id: str) -> list[str]:
    """Return every entry's name, including the temporary names the mount hides."""
    return sorted(entry.name for entry in emu.state.children(folder_id))


def staged_data(cache_dir: Path) -> list[bytes]:
    return [path.read_bytes() for path in sorted((cache_dir / "staging").glob("*.data"))]


def test_upload_fails_once(emulator, mounted, tmp_path):
    emulator.options.upload_failure = "http_500"
    emulator.options.upload_failure_count = 1
    source = make_file(tmp_path / "data.bin", 1 * MiB)

    result = run(["cp", str(source), str(mounted.path / "data.bin")])

    assert result.returncode == 0, result.stderr
    assert emulator.options.upload_failure_count == 0
    assert names_on_service(emulator, emulator.root_id) == ["data.bin"]
    assert emulator.state.file_bytes(emulator.state.find("data.bin")) == source.read_bytes()


def test_upload_always_fails(emulator, mounted, tmp_path):
    emulator.options.upload_failure = "http_500"
    source = make_file(tmp_path / "data.bin", 1 * MiB)

    result = run(["cp", str(source), str(mounted.path / "data.bin")])

    assert result.returncode != 0
    assert "Input/output error" in result.stderr
    assert names_on_service(emulator, emulator.root_id) == []
    assert staged_data(mounted.cache_dir) == [source.read_bytes()]
    # The mount still shows the file, from its staged copy.
    assert (mounted.path / "data.bin").read_bytes() == source.read_bytes()

    # Once the upload URL works again, the unmount waits for the upload.
    emulator.options.upload_failure = None
    mounted.assert_clean_exit()
    assert names_on_service(emulator, emulator.root_id) == ["data.bin"]
    assert emulator.state.file_bytes(emulator.state.find("data.bin")) == source.read_bytes()
    assert staged_data(mounted.cache_dir) == []


def test_upload_reset_midway(emulator, mounted, tmp_path):
    emulator.options.upload_failure = "reset"
    emulator.options.upload_reset_after_fraction = 0.6
    emulator.options.upload_failure_count = 1
    source = make_file(tmp_path / "data.bin", 4 * MiB)

    result = run(["cp", str(source), str(mounted.path / "data.bin")])

    assert result.returncode == 0, result.stderr
    assert emulator.options.upload_failure_count == 0
    assert emulator.counters.uploads == 1
    assert names_on_service(emulator, emulator.root_id) == ["data.bin"]
    assert emulator.state.file_bytes(emulator.state.find("data.bin")) == source.read_bytes()


def test_account_full_edquot(emulator, mounted):
    emulator.options.space_limit = 1000
    data = random.Random(2).randbytes(10_000)

    with pytest.raises(OSError) as info:
        with open(mounted.path / "big.bin", "wb") as file:
            file.write(data)

    assert info.value.errno == errno.EDQUOT
    assert names_on_service(emulator, emulator.root_id) == []
    assert staged_data(mounted.cache_dir) == [data]


@pytest.mark.parametrize("moment", ["before-upload", "after-upload"])
def test_kill_during_upload_remount(emulator, mount, tmp_path, moment):
    first = mount(emulator, *FAST_MOUNT_OPTIONS)
    source = make_file(tmp_path / "data.bin", 3 * MiB)
    # Every API call waits, so the upload is slow enough to be killed in.
    emulator.options.api_latency = 1.0
    copy = subprocess.Popen(
        ["cp", str(source), str(first.path / "data.bin")],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        if moment == "after-upload":
            # The file landed under its temporary name; confirming and
            # renaming it is still to come.
            wait_for(lambda: emulator.counters.uploads == 1, "the upload")
        else:
            wait_for(lambda: "ready" in manifest_states(first.cache_dir), "the flush")
        first.process.kill()
        first.killed = True
        first.exit_checked = True
        first.process.wait(timeout=10)
    finally:
        copy.wait(timeout=60)
    subprocess.run(["fusermount3", "-u", "-z", str(first.path)], capture_output=True, timeout=15)
    # A killed mount cannot remove its status socket, and the second mount
    # uses another mountpoint, so nothing else would.
    server_socket_path(first.path, os.environ).unlink(missing_ok=True)
    uploads_before = emulator.counters.uploads
    emulator.options.api_latency = 0

    second = mount(emulator, *FAST_MOUNT_OPTIONS, cache_dir=first.cache_dir)
    wait_for(lambda: names_on_service(emulator, emulator.root_id) == ["data.bin"], "the resumed upload")

    assert uploads_before == (1 if moment == "after-upload" else 0)
    assert emulator.counters.uploads == 1
    assert emulator.state.file_bytes(emulator.state.find("data.bin")) == source.read_bytes()
    assert (second.path / "data.bin").read_bytes() == source.read_bytes()
    wait_for(lambda: staged_data(second.cache_dir) == [], "the removal of the staged copy")
    assert "resuming the upload of 'data.bin'" in second.stderr()
    assert os.listdir(second.path) == ["data.bin"]
