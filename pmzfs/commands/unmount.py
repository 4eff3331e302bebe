"""``pmzfs unmount MOUNTPOINT``: unmount a pmzfs mount with ``fusermount3 -u``."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
from pathlib import Path

from pmzfs.cli import EXIT_OK, CommandError

FUSERMOUNT = "fusermount3"

# Seconds fusermount3 may take. It only makes one system call, so more means a hang.
UNMOUNT_TIMEOUT = 60.0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "unmount",
        help="unmount a pmzfs mount",
        description="Unmount the pmzfs filesystem at MOUNTPOINT (with fusermount3 -u); its process then exits.",
    )
    parser.add_argument("mountpoint", metavar="MOUNTPOINT", help="folder where pmzfs is mounted")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pmzfs.mount import mount_type_at

    mountpoint = Path(os.path.abspath(args.mountpoint))
    mounted = mount_type_at(mountpoint)
    if mounted is None:
        raise CommandError(f"{mountpoint} is not a mount point; nothing to unmount")
    if mounted != "fuse.pmzfs":
        raise CommandError(f"{mountpoint} is a {mounted} mount, not a pmzfs mount; unmount it with: umount {mountpoint}")
    if shutil.which(FUSERMOUNT) is None:
        raise CommandError(f"{FUSERMOUNT} not found on PATH; install the fuse3 package (apt install fuse3)")

    try:
        result = subprocess.run(
            [FUSERMOUNT, "-u", os.fspath(mountpoint)],
            capture_output=True,
            text=True,
            timeout=UNMOUNT_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise CommandError(f"{FUSERMOUNT} -u {mountpoint} did not finish within {UNMOUNT_TIMEOUT:.0f} s") from None
    if result.returncode != 0:
        detail = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit code {result.returncode}"
        raise CommandError(
            f"unmounting {mountpoint} failed: {detail}; close the programs that use it"
            f" (`fuser -vm {mountpoint}` lists them) and try again"
        )
    return EXIT_OK
