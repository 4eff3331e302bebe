"""The ``pmzfs mount`` and ``pmzfs unmount`` commands as a user runs them."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from fusemount import (
    API_KEY,
    ERROR_LINE,
    EXIT_DEADLINE,
    command_env,
    is_mounted,
    nonblank_lines,
    pmzfs_command,
    run,
)

pytestmark = pytest.mark.mount

# Seconds a mount command that must fail may take, retries included.
FAILING_MOUNT_DEADLINE = 60.0


def run_failing_mount(tmp_path: Path, mountpoint: Path, api_url: str, api_key: str = API_KEY) -> tuple[int, str]:
    """Run a foreground mount that must fail; return its exit code and output.

    If it mounts after all, the mount is undone and its process is killed by
    PID, so a product bug cannot leave a mount behind.
    """
    command = pmzfs_command(
        "mount", str(mountpoint), "--foreground", "--api-url", api_url, "--cache-dir", str(tmp_path / "cache")
    )
    output_path = tmp_path / "mount-output.txt"
    with open(output_path, "wb") as output:
        process = subprocess.Popen(
            command,
            env=command_env(tmp_path / "home", api_url, api_key),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        returncode = process.wait(timeout=FAILING_MOUNT_DEADLINE)
    except subprocess.TimeoutExpired:
        returncode = None
    finally:
        if is_mounted(mountpoint):
            subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], capture_output=True, timeout=15)
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    text = output_path.read_text(errors="replace")
    assert returncode is not None, f"mount still running after {FAILING_MOUNT_DEADLINE} s; output:\n{text}"
    return returncode, text


def assert_one_line_error(text: str) -> str:
    lines = nonblank_lines(text)
    assert "Traceback" not in text
    assert len(lines) == 1, f"expected one error line, got:\n{text}"
    return lines[0]


def closed_port_url() -> str:
    # A port that was just free on 127.0.0.1: nothing listens there.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_mount_rejects_missing_mountpoint(emulator, tmp_path):
    mountpoint = tmp_path / "does-not-exist"
    returncode, output = run_failing_mount(tmp_path, mountpoint, emulator.base_url)

    assert returncode in (1, 2), output
    line = assert_one_line_error(output)
    assert str(mountpoint) in line
    assert not is_mounted(mountpoint)


def test_mount_rejects_non_empty_mountpoint(emulator, tmp_path):
    mountpoint = tmp_path / "busy"
    mountpoint.mkdir()
    (mountpoint / "keep.txt").write_text("local file\n")
    returncode, output = run_failing_mount(tmp_path, mountpoint, emulator.base_url)

    assert returncode in (1, 2), output
    line = assert_one_line_error(output)
    assert str(mountpoint) in line
    assert not is_mounted(mountpoint)
    assert (mountpoint / "keep.txt").read_text() == "local file\n"


def test_mount_rejects_wrong_api_key(emulator, tmp_path):
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    returncode, output = run_failing_mount(tmp_path, mountpoint, emulator.base_url, api_key="wrong-key-123")

    assert returncode == 1, output
    line = assert_one_line_error(output)
    assert "wrong-key-123" not in output, "the command printed the API key"
    assert re.search(r"api key|authenticat|log ?in", line, re.IGNORECASE), line
    assert not is_mounted(mountpoint)
    assert emulator.counters.api_calls.get("account/info", 0) >= 1


def test_mount_reports_unreachable_api(tmp_path):
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    url = closed_port_url()
    returncode, output = run_failing_mount(tmp_path, mountpoint, url)

    assert returncode == 1, output
    line = assert_one_line_error(output)
    assert url.removeprefix("http://") in line
    assert not is_mounted(mountpoint)


def test_unmount_command_unmounts(emulator, mount):
    emulator.state.add_file(emulator.root_id, "hello.txt", b"hello\n")
    mounted = mount(emulator)
    assert (mounted.path / "hello.txt").read_bytes() == b"hello\n"

    result = run(pmzfs_command("unmount", str(mounted.path)), env=command_env(mounted.path.parent / "home", emulator.base_url))
    returncode = mounted.wait_for_exit("pmzfs unmount")

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert not is_mounted(mounted.path)
    assert returncode == 0, mounted.stderr()
    assert os.listdir(mounted.path) == []
    mounted.assert_clean_exit()


def test_unmount_command_rejects_plain_folder(emulator, tmp_path):
    folder = tmp_path / "plain"
    folder.mkdir()
    result = run(pmzfs_command("unmount", str(folder)), env=command_env(tmp_path / "home", emulator.base_url))

    assert result.returncode == 1, result.stderr
    line = assert_one_line_error(result.stderr)
    assert str(folder) in line


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_unmounts_cleanly(emulator, mount, signal_number):
    emulator.state.add_file(emulator.root_id, "hello.txt", b"hello\n")
    mounted = mount(emulator)
    assert (mounted.path / "hello.txt").read_bytes() == b"hello\n"

    returncode = mounted.send_signal(signal_number)

    assert returncode == 0, mounted.stderr()
    assert not is_mounted(mounted.path)
    assert os.listdir(mounted.path) == []
    mounted.assert_clean_exit()


def pids_with_mountpoint(mountpoint: Path) -> list[int]:
    """Return the PIDs of pmzfs processes whose command line names ``mountpoint``.

    The mountpoint is a fresh temporary path, so only processes this test
    started match.
    """
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            arguments = Path("/proc", entry, "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if os.fsencode(mountpoint) in arguments and b"pmzfs" in arguments and b"mount" in arguments:
            pids.append(int(entry))
    return pids


def wait_until_gone(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [pid for pid in alive if Path("/proc", str(pid)).exists() and not _is_zombie(pid)]
    return alive


def _is_zombie(pid: int) -> bool:
    try:
        status = Path("/proc", str(pid), "stat").read_text()
    except OSError:
        return True
    return status.rpartition(")")[2].split()[0] == "Z"


@pytest.mark.timeout(90)
def test_background_mount_and_unmount(emulator, tmp_path):
    emulator.state.add_file(emulator.root_id, "hello.txt", b"hello from the background\n")
    mountpoint = tmp_path / "mnt"
    mountpoint.mkdir()
    log_file = tmp_path / "pmzfs.log"
    env = command_env(tmp_path / "home", emulator.base_url)
    command = pmzfs_command(
        "mount", str(mountpoint), "--api-url", emulator.base_url,
        "--cache-dir", str(tmp_path / "cache"), "--log-file", str(log_file),
    )  # fmt: skip
    daemon_pids: list[int] = []
    try:
        # Output goes to a file: a daemon that kept a pipe open would block run().
        with open(tmp_path / "output.txt", "wb") as output:
            started = subprocess.run(
                command, env=env, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, timeout=30
            )
        output_text = (tmp_path / "output.txt").read_text(errors="replace")

        assert started.returncode == 0, output_text
        assert "Traceback" not in output_text
        assert is_mounted(mountpoint), "the parent exited before the mount answered"
        daemon_pids = pids_with_mountpoint(mountpoint)
        assert len(daemon_pids) >= 1, "no daemon process serves the mount"
        assert (mountpoint / "hello.txt").read_bytes() == b"hello from the background\n"

        stopped = run(pmzfs_command("unmount", str(mountpoint)), env=env)

        assert stopped.returncode == 0, stopped.stderr
        assert not is_mounted(mountpoint)
        assert wait_until_gone(daemon_pids, EXIT_DEADLINE) == [], "daemon still running after pmzfs unmount"
        log_text = log_file.read_text(errors="replace") if log_file.exists() else ""
        assert "Traceback" not in log_text
        assert not [line for line in log_text.splitlines() if ERROR_LINE.search(line)], log_text
    finally:
        if is_mounted(mountpoint):
            subprocess.run(["fusermount3", "-u", str(mountpoint)], capture_output=True, timeout=15)
        if is_mounted(mountpoint):
            subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], capture_output=True, timeout=15)
        for pid in wait_until_gone(daemon_pids or pids_with_mountpoint(mountpoint), 5):
            os.kill(pid, signal.SIGKILL)
