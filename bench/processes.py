"""Start and stop the processes and mounts of a run, always by PID.

Every process the harness starts goes through ``start_process``, and every
mount through ``pmzfs_mount`` or ``rclone_mount``. The ``finally`` blocks of
the mount helpers unmount the mountpoint they made and end the process
they started.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# Seconds a process gets to exit after SIGTERM before it gets SIGKILL.
STOP_GRACE = 10.0
# Seconds a mount may take to appear.
MOUNT_TIMEOUT = 30.0
# Tries of a plain unmount, half a second apart, before a lazy one.
UNMOUNT_ATTEMPTS = 10


class BenchError(Exception):
    """A failure that ends the run with one clear line."""


@dataclass
class Mount:
    """A mounted filesystem under test and the PID of the process serving it."""

    system: str
    mountpoint: Path
    pid: int
    process: subprocess.Popen


def start_process(argv: list[str], *, log_path: Path, env: dict[str, str] | None = None, **kwargs) -> subprocess.Popen:
    """Start ``argv`` with stdout and stderr going to ``log_path``."""
    log.debug("starting %s", " ".join(argv))
    with open(log_path, "ab") as output:
        return subprocess.Popen(
            argv,
            stdout=kwargs.pop("stdout", output),
            stderr=output,
            stdin=kwargs.pop("stdin", subprocess.DEVNULL),
            env=env,
            **kwargs,
        )


def run_command(argv: list[str], timeout: float) -> subprocess.CompletedProcess:
    """Run a command to completion with captured text output, within ``timeout`` seconds.

    The command gets its own process group, and on timeout the whole group
    is killed, so that helpers it forked (rsync forks two) stop with it.
    Raises ``subprocess.TimeoutExpired`` after the kill.
    """
    process = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)


def stop_process(process: subprocess.Popen, grace: float = STOP_GRACE) -> None:
    """End a process this harness started: SIGTERM to its PID, then SIGKILL."""
    if process.poll() is not None:
        return
    log.debug("stopping PID %d", process.pid)
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        log.warning("PID %d did not exit %.0f s after SIGTERM; sending SIGKILL", process.pid, grace)
        process.kill()
        process.wait(timeout=grace)


def _wait_for_mount(mountpoint: Path, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + MOUNT_TIMEOUT
    while time.monotonic() < deadline:
        if os.path.ismount(mountpoint):
            return
        if process.poll() is not None:
            raise BenchError(
                f"the mount process exited with code {process.returncode} before {mountpoint} "
                f"was mounted; see {log_path}"
            )
        time.sleep(0.05)
    raise BenchError(f"{mountpoint} was not mounted within {MOUNT_TIMEOUT:.0f} s; see {log_path}")


def unmount(mountpoint: Path) -> None:
    """Unmount a FUSE mount this harness made; lazily if it stays busy."""
    error = ""
    for _attempt in range(UNMOUNT_ATTEMPTS):
        if not os.path.ismount(mountpoint):
            return
        result = subprocess.run(["fusermount3", "-u", str(mountpoint)], capture_output=True, text=True, timeout=30)
        if result.returncode == 0:
            return
        error = result.stderr.strip()
        # Busy: a reader thread of a measure that hit its deadline may still be closing.
        time.sleep(0.5)
    if os.path.ismount(mountpoint):
        log.warning("unmounting %s failed (%s); detaching it lazily", mountpoint, error)
        subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], capture_output=True, timeout=30)


@contextlib.contextmanager
def _mounted(system: str, argv: list[str], mountpoint: Path, log_path: Path, env: dict[str, str]) -> Iterator[Mount]:
    mountpoint.mkdir(parents=True, exist_ok=True)
    if os.path.ismount(mountpoint):
        raise BenchError(f"{mountpoint} is already a mountpoint; unmount it or pick another --work-dir")
    process = start_process(argv, log_path=log_path, env=env)
    try:
        _wait_for_mount(mountpoint, process, log_path)
        yield Mount(system, mountpoint, process.pid, process)
    finally:
        try:
            unmount(mountpoint)
        finally:
            stop_process(process)


def pmzfs_mount(
    mountpoint: Path, *, api_url: str, api_key: str, cache_dir: Path, config_path: Path, log_path: Path
) -> contextlib.AbstractContextManager[Mount]:
    """Mount pmzfs in the foreground against ``api_url`` with default options.

    ``config_path`` is an empty config file, so a config file of the user
    running the benchmark cannot change the settings under test.
    """
    config_path.touch()
    argv = [
        sys.executable, "-m", "pmzfs", "mount", str(mountpoint),
        "--foreground", "--api-url", api_url, "--cache-dir", str(cache_dir), "--config", str(config_path),
    ]
    env = dict(os.environ, PMZFS_API_KEY=api_key)
    return _mounted("pmzfs", argv, mountpoint, log_path, env)


def rclone_mount(mountpoint: Path, *, index_url: str, config_path: Path, log_path: Path) -> contextlib.AbstractContextManager[Mount]:
    """Mount rclone's http backend, read-only, with default VFS settings."""
    config_path.touch()
    argv = [
        "rclone", "mount", ":http:", str(mountpoint),
        "--http-url", index_url, "--read-only",
        "--config", str(config_path),
    ]
    return _mounted("rclone", argv, mountpoint, log_path, dict(os.environ))


def process_cpu_seconds(pid: int) -> float:
    """Return user plus system CPU seconds that process ``pid`` has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime field 14, stime field 15.
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def process_peak_rss(pid: int) -> int:
    """Return the peak resident set size of process ``pid`` in bytes (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise BenchError(f"/proc/{pid}/status has no VmHWM line")


def tool_version(argv: list[str]) -> str:
    """Return the first line a tool prints for its version, or why it could not."""
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({exc})"
    lines = (result.stdout or result.stderr).strip().splitlines()
    return lines[0] if lines else "unknown"
