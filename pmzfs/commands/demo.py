"""``pmzfs demo MOUNTPOINT``: mount a local emulator with a demo library, in the foreground.

The emulator runs as a ``pmzfs emulator`` subprocess on 127.0.0.1 with its
state under the cache folder, so the demo library is generated only on the
first run.  Ctrl-C unmounts and then stops the emulator.
"""

from __future__ import annotations

import argparse
import functools
import os
import select
import shlex
import subprocess
import sys
import time
from pathlib import Path

import trio

from pmzfs.cli import CommandError
from pmzfs.logs import setup_logging
from pmzfs.options import MountOptions, default_cache_dir

# Seconds the emulator may take to print its URL; the first run writes the
# demo library to disk.
EMULATOR_START_TIMEOUT = 120.0
EMULATOR_STOP_TIMEOUT = 10.0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="mount a local emulator with a demo library (no account needed)",
        description=(
            "Start a local premiumize API emulator with a demo library (videos, documents, a large file)"
            " and mount it at MOUNTPOINT in the foreground. Ctrl-C unmounts and stops the emulator."
        ),
    )
    parser.add_argument("mountpoint", metavar="MOUNTPOINT", help="empty folder to mount the demo library at")
    parser.add_argument(
        "--cache-dir",
        metavar="DIR",
        help=f"folder for the emulator's state and the mount's cache (default {default_cache_dir()})",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages of the mount")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pmzfs import mount
    from pmzfs.auth import Credential
    from pmzfs.emulator.options import DEMO_API_KEY

    cache_dir = Path(args.cache_dir).expanduser().absolute() if args.cache_dir else default_cache_dir()
    options = MountOptions(
        mountpoint=Path(args.mountpoint).absolute(),
        cache_dir=cache_dir / "demo" / "mount",
        foreground=True,
        verbose=args.verbose,
    )
    mount.check_before_mount(options)
    setup_logging(options.verbose, None, foreground=True)

    state_dir = cache_dir / "demo" / "emulator"
    emulator, options.api_url = _start_emulator(state_dir, DEMO_API_KEY)
    try:
        credential = Credential(DEMO_API_KEY, "the demo emulator")
        ready = functools.partial(_print_hints, options.mountpoint, options.api_url)
        return trio.run(functools.partial(mount.serve, options, credential, on_ready=ready))
    finally:
        _stop_emulator(emulator)


def _start_emulator(state_dir: Path, api_key: str) -> tuple[subprocess.Popen, str]:
    """Start ``pmzfs emulator`` and return the process and its base URL."""
    state_dir.mkdir(parents=True, exist_ok=True)
    log_path = state_dir.parent / "emulator.log"
    command = [
        sys.executable, "-m", "pmzfs", "emulator", "--port", "0", "--demo-content",
        "--state", os.fspath(state_dir), "--api-key", api_key,
    ]  # fmt: skip
    with open(log_path, "ab") as log_file:
        # A session of its own keeps the terminal's Ctrl-C away from the
        # emulator, which must outlive the unmount.
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log_file, start_new_session=True
        )
    try:
        url = _read_first_line(process, EMULATOR_START_TIMEOUT)
    except BaseException:
        _stop_emulator(process)
        raise
    if not url.startswith("http://127.0.0.1:"):
        _stop_emulator(process)
        raise CommandError(f"the demo emulator printed {url!r} instead of its URL; see {log_path}")
    return process, url


def _read_first_line(process: subprocess.Popen, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    line = b""
    fd = process.stdout.fileno()
    while not line.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise CommandError(f"the demo emulator did not print its URL within {timeout:.0f} s; see its log beside the state folder")
        readable, _, _ = select.select([fd], [], [], remaining)
        if not readable:
            continue
        chunk = os.read(fd, 1)
        if not chunk:
            raise CommandError(f"the demo emulator exited with status {process.wait()} before it printed its URL")
        line += chunk
    return line.decode("utf-8", "replace").strip()


def _stop_emulator(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=EMULATOR_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()


def _print_hints(mountpoint: Path, api_url: str) -> None:
    quoted = shlex.quote(os.fspath(mountpoint))
    movie = shlex.quote(os.fspath(mountpoint / "Movies" / "Test Pattern (2024).mp4"))
    print(f"The demo library (emulator at {api_url}) is mounted at {mountpoint}. Try, in another terminal:")
    print(f"  ls -la {quoted}")
    print(f"  ffprobe {movie}")
    print(f"  mpv {movie}")
    print("Press Ctrl-C here to unmount and stop the emulator.", flush=True)
