"""Real mounts through the ops pieces: READY=1, the fstab helper, umount and status."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

# The real-mount helpers of tests/mount, shared rather than copied.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "mount"))
from fusemount import (  # noqa: E402
    MOUNT_DEADLINE,
    Mount,
    command_env,
    fuse_unavailable_reason,
    is_mounted,
    pmzfs_command,
    run,
    running_emulator,
)

pytestmark = pytest.mark.mount

HELPER_LINK = Path("/sbin/mount.fuse.pmzfs")
MOUNT_HELPER = Path(sys.executable).with_name("mount.pmzfs")
# Seconds a background mount process has to exit after umount.
EXIT_DEADLINE = 30.0


@pytest.fixture(autouse=True)
def require_fuse():
    reason = fuse_unavailable_reason()
    if reason is not None:
        pytest.skip(f"real FUSE mounts are not possible here: {reason}")


@pytest.fixture
def emulator(tmp_path):
    with running_emulator(tmp_path / "emulator-state") as emu:
        folder = emu.state.create_folder(emu.root_id, "Movies")
        emu.state.add_file(folder, "clip.mkv", b"x" * 1000)
        yield emu


def foreground_mount(tmp_path: Path, emu, mountpoint: Path, env: dict[str, str]) -> Mount:
    command = pmzfs_command(
        "mount", str(mountpoint), "--foreground", "--api-url", emu.base_url, "--cache-dir", str(tmp_path / "cache")
    )
    stderr_path = tmp_path / "mount-stderr.txt"
    with open(stderr_path, "wb") as stderr_file:
        process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=stderr_file, stderr=subprocess.STDOUT)
    return Mount(mountpoint, tmp_path / "cache", process, stderr_path, expect_errors=False)


def test_ready_sent_once_mount_responds(tmp_path, short_tmp, emulator):
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    notify_path = short_tmp / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify_socket:
        notify_socket.bind(str(notify_path))
        notify_socket.settimeout(MOUNT_DEADLINE)
        env = command_env(tmp_path / "home", emulator.base_url, emulator.api_key)
        env["NOTIFY_SOCKET"] = str(notify_path)
        mount = foreground_mount(tmp_path, emulator, mountpoint, env)
        try:
            message = notify_socket.recv(4096)
            mounted_at_ready = is_mounted(mountpoint)
            listing = os.listdir(mountpoint)
        finally:
            mount.assert_clean_exit()
    assert message.split(b"\n")[0] == b"READY=1"
    assert mounted_at_ready
    assert listing == ["Movies"]


def test_no_ready_when_credential_rejected(tmp_path, short_tmp, emulator):
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    notify_path = short_tmp / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify_socket:
        notify_socket.bind(str(notify_path))
        env = command_env(tmp_path / "home", emulator.base_url, "wrong-key")
        env["NOTIFY_SOCKET"] = str(notify_path)
        mount = foreground_mount(tmp_path, emulator, mountpoint, env)
        try:
            returncode = mount.process.wait(timeout=60)
        finally:
            if mount.process.poll() is None:
                mount.process.kill()
                mount.process.wait(timeout=10)
        notify_socket.setblocking(False)
        with pytest.raises(BlockingIOError):
            notify_socket.recv(4096)
    assert returncode == 1
    assert "was rejected (authentication_failed)" in mount.stderr()


def wait_for_exit(pid: int, deadline: float) -> bool:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def status_json(mountpoint: Path, env: dict[str, str]) -> dict:
    result = run(pmzfs_command("status", str(mountpoint), "--json"), env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def helper_mount_and_umount(tmp_path: Path, emu, helper: list[str]) -> None:
    """Mount with ``helper`` as mount(8) would, check the mount, then umount it."""
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    env = command_env(tmp_path / "home", emu.base_url, emu.api_key)
    options = f"rw,_netdev,nofail,api_url={emu.base_url},cache_dir={tmp_path / 'cache'}"
    pid = None
    try:
        result = run([*helper, "pmzfs", str(mountpoint), "-o", options], env=env)
        assert result.returncode == 0, result.stderr
        assert is_mounted(mountpoint)
        assert os.listdir(mountpoint) == ["Movies"]

        pid = status_json(mountpoint, env)["pid"]
        assert pid != os.getpid()

        umount = run(["umount", str(mountpoint)], env=env)
        assert umount.returncode == 0, umount.stderr
        assert not is_mounted(mountpoint)
        assert wait_for_exit(pid, EXIT_DEADLINE), f"mount process {pid} still runs {EXIT_DEADLINE} s after umount"
    finally:
        if is_mounted(mountpoint):
            subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], capture_output=True, timeout=15)
        if pid is not None and not wait_for_exit(pid, 0.1):
            os.kill(pid, signal.SIGKILL)


def test_fstab_helper_mounts_and_umounts(tmp_path, emulator):
    assert MOUNT_HELPER.exists(), f"{MOUNT_HELPER} missing: run pip install -e ."
    helper_mount_and_umount(tmp_path, emulator, [str(MOUNT_HELPER)])


@pytest.mark.skipif(not HELPER_LINK.exists(), reason=f"{HELPER_LINK} is not installed (see docs/systemd.md)")
def test_mount_command_finds_helper(tmp_path, emulator):
    # mount(8) finds /sbin/mount.fuse.pmzfs for the type fuse.pmzfs.
    helper_mount_and_umount(tmp_path, emulator, ["mount", "-t", "fuse.pmzfs"])


def test_status_reports_failed_upload(tmp_path, emulator, expected_errors):
    emulator.options.upload_failure = "http_500"
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    env = command_env(tmp_path / "home", emulator.base_url, emulator.api_key)
    mount = foreground_mount(tmp_path, emulator, mountpoint, env)
    mount.expect_errors = True
    try:
        deadline = time.monotonic() + MOUNT_DEADLINE
        while not is_mounted(mountpoint) and time.monotonic() < deadline:
            time.sleep(0.05)
        with pytest.raises(OSError):
            with open(mountpoint / "Movies" / "new.txt", "wb") as file:
                file.write(b"upload me")
        report = status_json(mountpoint, env)
        human = run(pmzfs_command("status", str(mountpoint)), env=env).stdout
    finally:
        mount.assert_clean_exit()
    failed = report["uploads"]["failed"]
    assert [item["path"].rsplit("/", 1)[-1] for item in failed] == ["new.txt"]
    assert failed[0]["error"]
    assert "FAILED" in human
    assert "new.txt" in human
