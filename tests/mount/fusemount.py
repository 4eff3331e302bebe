"""Start, check and stop real pmzfs mounts against an in-process emulator.

Every command here runs against 127.0.0.1: the emulator listens there and
each subprocess gets its URL both as ``--api-url`` and as ``PMZFS_API_URL``,
so nothing can fall back to the real service.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

MiB = 1024 * 1024
API_KEY = "test-key"

# Seconds a started mount has to appear in the mount table and pass a stat of its root.
MOUNT_DEADLINE = 20.0
# Seconds the mount process has to exit after its mountpoint is unmounted.
EXIT_DEADLINE = 15.0
# Seconds any single program run against the mount may take.
COMMAND_TIMEOUT = 60.0

ERROR_LINE = re.compile(r"\b(ERROR|CRITICAL)\b")


def fuse_unavailable_reason() -> str | None:
    """Return why this machine cannot make FUSE mounts, or None when it can."""
    if os.geteuid() != 0:
        return "the real-mount tests must run as root"
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing"
    if shutil.which("fusermount3") is None:
        return "fusermount3 is not installed (Debian package fuse3)"
    return None


def _unescape_mountinfo(field_text: str) -> str:
    # /proc/self/mountinfo writes space, tab, newline and backslash as \ooo.
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), field_text)


def is_mounted(path: Path) -> bool:
    """Return whether ``path`` is a mountpoint, without touching the filesystem there.

    ``os.path.ismount`` stats the path, which hangs on a stuck FUSE server,
    so this reads the kernel's mount table instead.
    """
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as table:
        for line in table:
            fields = line.split(" ")
            if len(fields) > 4 and _unescape_mountinfo(fields[4]) == target:
                return True
    return False


def command_env(home: Path, api_url: str, api_key: str | None = API_KEY) -> dict[str, str]:
    """Return the environment for a pmzfs subprocess.

    Config, cache and data directories point into ``home`` so that no token
    stored by an earlier ``pmzfs login`` on this machine can stand in for
    the key under test.
    """
    # Drop every inherited PMZFS_* setting, so only the options a test passes apply.
    env = {name: value for name, value in os.environ.items() if not name.startswith("PMZFS_")}
    if api_key is not None:
        env["PMZFS_API_KEY"] = api_key
    env["PMZFS_API_URL"] = api_url
    env["HOME"] = str(home)
    for variable, name in (("XDG_CONFIG_HOME", "config"), ("XDG_CACHE_HOME", "cache"), ("XDG_DATA_HOME", "data")):
        directory = home / name
        directory.mkdir(parents=True, exist_ok=True)
        env[variable] = str(directory)
    env["LC_ALL"] = "C.UTF-8"
    return env


def run(
    command: list[str],
    *,
    timeout: float = COMMAND_TIMEOUT,
    text: bool = True,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess:
    """Run ``command`` with captured output; fail the test if it exceeds ``timeout`` seconds."""
    if env is None:
        env = dict(os.environ, LC_ALL="C.UTF-8")
    try:
        return subprocess.run(
            command, capture_output=True, text=text, timeout=timeout, env=env, cwd=cwd, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{' '.join(command)} did not finish within {timeout} s; stderr: {exc.stderr!r}")


def pmzfs_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "pmzfs", *args]


def nonblank_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@dataclass
class Seeded:
    """Ids of seeded entries by path relative to the seeded folder."""

    files: dict[str, str] = field(default_factory=dict)
    folders: dict[str, str] = field(default_factory=dict)


def seed_tree(emu, parent_id: str, spec: dict, prefix: str = "", seeded: Seeded | None = None) -> Seeded:
    """Create ``spec`` under ``parent_id`` through ``emu.state``.

    ``spec`` maps a name to a dict (a folder) or to file content as
    ``emu.state.add_file`` takes it: bytes, a Path or ``(size, seed)``.
    """
    if seeded is None:
        seeded = Seeded()
    for name, content in spec.items():
        relative = f"{prefix}{name}"
        if isinstance(content, dict):
            folder_id = emu.state.create_folder(parent_id, name)
            seeded.folders[relative] = folder_id
            seed_tree(emu, folder_id, content, prefix=f"{relative}/", seeded=seeded)
        else:
            seeded.files[relative] = emu.state.add_file(parent_id, name, content)
    return seeded


@contextlib.contextmanager
def running_emulator(state_dir: Path, **options) -> Iterator:
    """Run an in-process emulator with API key ``API_KEY`` and the given options."""
    from pmzfs.emulator import Emulator, EmulatorOptions

    with Emulator(state_dir=state_dir, options=EmulatorOptions(api_key=API_KEY, **options)) as emu:
        yield emu


class Mount:
    """One ``pmzfs mount --foreground`` subprocess and its mountpoint."""

    def __init__(
        self, path: Path, cache_dir: Path, process: subprocess.Popen, stderr_path: Path, expect_errors: bool
    ) -> None:
        self.path = path
        self.cache_dir = cache_dir
        self.process = process
        self.stderr_path = stderr_path
        self.expect_errors = expect_errors
        self.problems: list[str] = []
        self.killed = False
        self.exit_checked = False

    @property
    def pid(self) -> int:
        return self.process.pid

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def is_running(self) -> bool:
        return self.process.poll() is None

    def unmount(self) -> int | None:
        """Unmount with ``fusermount3 -u`` and wait for the process; return its exit code.

        A busy mountpoint gets a few more tries before the lazy ``-z``
        fallback.  A process that does not exit in ``EXIT_DEADLINE`` seconds
        is killed by its PID.  Each fallback is recorded in ``problems``.
        """
        if is_mounted(self.path):
            self._fusermount_unmount()
        return self.wait_for_exit("unmount")

    def wait_for_exit(self, after: str) -> int | None:
        """Wait up to ``EXIT_DEADLINE`` s for the process to exit; kill it by PID if it hangs."""
        try:
            self.process.wait(timeout=EXIT_DEADLINE)
        except subprocess.TimeoutExpired:
            self.problems.append(f"mount process {self.pid} did not exit within {EXIT_DEADLINE} s after {after}")
            self.process.kill()
            self.killed = True
            self.process.wait(timeout=10)
        return self.process.returncode

    def _fusermount_unmount(self) -> None:
        last_error = ""
        for _attempt in range(10):
            try:
                result = run(["fusermount3", "-u", str(self.path)], timeout=15)
            except pytest.fail.Exception as exc:
                last_error = str(exc)
                break
            if result.returncode == 0 or not is_mounted(self.path):
                return
            last_error = result.stderr.strip()
            # Busy: a program of the test may still be closing its files.
            time.sleep(0.5)
        self.problems.append(f"fusermount3 -u {self.path} failed ({last_error}); used a lazy unmount")
        subprocess.run(["fusermount3", "-u", "-z", str(self.path)], capture_output=True, timeout=15)

    def send_signal(self, signal_number: int) -> int | None:
        """Send a signal to the mount process and wait for it to exit; return its exit code."""
        self.process.send_signal(signal_number)
        return self.wait_for_exit(signal.Signals(signal_number).name)

    def exit_failures(self) -> list[str]:
        """Return what was wrong with how the mount process ended (after ``unmount``)."""
        self.exit_checked = True
        failures = list(self.problems)
        stderr = self.stderr()
        if self.process.returncode != 0 and not self.killed:
            failures.append(f"mount process exited {self.process.returncode}, expected 0")
        if "Traceback" in stderr:
            failures.append("mount process printed a traceback")
        if not self.expect_errors and any(ERROR_LINE.search(line) for line in stderr.splitlines()):
            failures.append("mount process logged ERROR lines")
        if failures:
            failures.append(f"stderr of the mount of {self.path}:\n{stderr}")
        return failures

    def assert_clean_exit(self) -> None:
        """Unmount if needed and assert the process exited 0 without a traceback or ERROR line."""
        if self.process.poll() is None or is_mounted(self.path):
            self.unmount()
        failures = self.exit_failures()
        assert not failures, "\n".join(failures)


class Mounter:
    """Start mounts of emulators under one directory and clean all of them up."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.mounts: list[Mount] = []
        self._count = 0

    def __call__(self, emu, *options: str, **kwargs) -> Mount:
        return self.start(emu, *options, **kwargs)

    def new_dir(self, kind: str) -> Path:
        self._count += 1
        directory = self.base_dir / f"{kind}-{self._count}"
        directory.mkdir(parents=True)
        return directory

    def start(
        self,
        emu,
        *options: str,
        mountpoint: Path | None = None,
        cache_dir: Path | None = None,
        expect_errors: bool = False,
    ) -> Mount:
        """Mount ``emu`` with extra command-line ``options``; return once a stat of the mountpoint succeeds."""
        mountpoint = mountpoint or self.new_dir("mnt")
        cache_dir = cache_dir or self.new_dir("cache")
        home = self.base_dir / "home"
        stderr_path = self.new_dir("log") / "stderr.txt"
        command = pmzfs_command(
            "mount", str(mountpoint), "--foreground", "--api-url", emu.base_url, "--cache-dir", str(cache_dir), *options
        )
        with open(stderr_path, "wb") as stderr_file:
            process = subprocess.Popen(
                command,
                env=command_env(home, emu.base_url, emu.api_key),
                stdin=subprocess.DEVNULL,
                stdout=stderr_file,
                stderr=subprocess.STDOUT,
                cwd=self.base_dir,
            )
        mount = Mount(mountpoint, cache_dir, process, stderr_path, expect_errors)
        self.mounts.append(mount)
        self._wait_until_mounted(mount, command)
        return mount

    def _wait_until_mounted(self, mount: Mount, command: list[str]) -> None:
        deadline = time.monotonic() + MOUNT_DEADLINE
        while not is_mounted(mount.path):
            if mount.process.poll() is not None:
                mount.exit_checked = True
                pytest.fail(
                    f"{' '.join(command)} exited {mount.process.returncode} before mounting; output:\n{mount.stderr()}"
                )
            if time.monotonic() > deadline:
                mount.process.kill()
                mount.killed = True
                mount.process.wait(timeout=10)
                mount.exit_checked = True
                pytest.fail(f"{mount.path} was not mounted within {MOUNT_DEADLINE} s; output:\n{mount.stderr()}")
            time.sleep(0.05)
        os.stat(mount.path)

    def close(self) -> None:
        """Unmount every mount still up and fail if any of them ended badly."""
        failures: list[str] = []
        for mount in self.mounts:
            if mount.process.poll() is None or is_mounted(mount.path):
                mount.unmount()
            if not mount.exit_checked:
                failures.extend(mount.exit_failures())
        assert not failures, "\n".join(failures)
