"""``mount.pmzfs``: the helper mount(8) runs for an /etc/fstab line of type ``fuse.pmzfs``.

For a type ``fuse.pmzfs``, mount(8) from util-linux (checked with 2.38)
looks for ``/sbin/mount.fuse.pmzfs`` first and, only if that does not
exist, falls back to ``/sbin/mount.fuse`` (fuse3's ``mount.fuse3``), which
would run ``pmzfs SPEC MOUNTPOINT -o ...`` and fail because ``pmzfs``
expects a subcommand. So the install step links this helper there::

    ln -s "$(command -v mount.pmzfs)" /sbin/mount.fuse.pmzfs

A line of type ``pmzfs`` (without ``fuse.``) finds ``/sbin/mount.pmzfs``
instead; the helper works under both names. mount(8) calls it as::

    mount.fuse.pmzfs SPEC MOUNTPOINT [-sfnv] -o OPTIONS [-t fuse.pmzfs]

SPEC is only a label (write ``pmzfs``). The helper translates OPTIONS into
``pmzfs mount`` flags and runs ``pmzfs mount`` in its background mode,
which returns once the mount responds. ``umount MOUNTPOINT`` needs no
helper: the kernel ends the FUSE session and the pmzfs process exits.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence

from pmzfs.config import OPTION_SPECS, SPECS_BY_NAME, parse_bool, parse_path

PROG = "mount.pmzfs"

# mount(8)'s exit codes: 1 is "incorrect invocation or permissions".
EXIT_INVALID = 1

# Options for mount(8), systemd or the kernel that mean nothing to pmzfs.
IGNORED_OPTIONS = frozenset(
    {
        "_netdev",  # for systemd and mount -a: the network must be up first
        "nofail",
        "noauto",
        "auto",
        "user",
        "users",
        "nouser",
        "rw",
        "defaults",
        # pmzfs never shows setuid files or device nodes, so these always hold.
        "nosuid",
        "nodev",
    }
)
IGNORED_PREFIXES = ("x-", "comment=")

# fstab spellings that differ from the option's name.
ALIASES = {"ro": "read_only"}

# foreground would make mount(8) wait until the filesystem is unmounted.
REJECTED = {"foreground": "mount(8) would wait until the filesystem is unmounted; remove it from the fstab line"}


class FstabOptionError(ValueError):
    """An fstab mount option pmzfs does not accept, with the reason and the fix."""


def _accepted_names() -> str:
    names = ["ro", "nonempty", "config="]
    for spec in OPTION_SPECS:
        if spec.name in REJECTED:
            continue
        names.append(spec.name if spec.is_bool else spec.name + "=")
    return ", ".join(names)


def translate_options(option_string: str, *, sloppy: bool = False) -> tuple[list[str], list[str]]:
    """Translate a comma-separated fstab option string into ``pmzfs mount`` flags.

    Returns the flags and the options ignored on purpose (mount(8) and
    systemd options, listed in ``IGNORED_OPTIONS``). Raises
    ``FstabOptionError`` for an unknown option or an invalid value, unless
    ``sloppy`` (mount -s), which skips unknown options.
    """
    flags: list[str] = []
    ignored: list[str] = []
    for option in filter(None, (part.strip() for part in option_string.split(","))):
        name, has_value, value = option.partition("=")
        key = ALIASES.get(name, name.replace("-", "_"))
        if option in IGNORED_OPTIONS or option.startswith(IGNORED_PREFIXES):
            ignored.append(option)
        elif key in REJECTED:
            raise FstabOptionError(f"mount option {option!r} is not allowed in fstab: {REJECTED[key]}")
        elif key == "config":
            flags += ["--config", _checked_path(option, value, has_value)]
        elif option == "nonempty":
            flags.append("--nonempty")
        elif key in SPECS_BY_NAME:
            flags += _translate_known(SPECS_BY_NAME[key].name, option, value, has_value)
        elif sloppy:
            ignored.append(option)
        else:
            raise FstabOptionError(f"unknown mount option {option!r}; pmzfs accepts: {_accepted_names()}")
    return flags, ignored


def _checked_path(option: str, value: str, has_value: bool) -> str:
    try:
        if not has_value:
            raise ValueError("expected a path after '='")
        return str(parse_path(value))
    except ValueError as exc:
        raise FstabOptionError(f"invalid mount option {option!r}: {exc}") from None


def _translate_known(name: str, option: str, value: str, has_value: bool) -> list[str]:
    spec = SPECS_BY_NAME[name]
    try:
        if spec.is_bool:
            # "ro" and "allow_other" are flags; "allow_other=false" is allowed too.
            enabled = parse_bool(value) if has_value else True
            return [spec.flag if enabled else "--no-" + spec.flag[2:]]
        if not has_value or not value:
            raise ValueError(f"expected a value, as in {name}=VALUE")
        parsed = parse_path(value) if spec.is_path else spec.parse(value)
    except ValueError as exc:
        raise FstabOptionError(f"invalid mount option {option!r}: {exc}") from None
    # Pass the text as written (a user name stays a name); parsing here only
    # reports a bad value before the mount starts. Paths become absolute,
    # because pmzfs may run from another working directory.
    return [spec.flag, str(parsed) if spec.is_path else value]


def build_mount_command(mountpoint: str, flags: Sequence[str]) -> list[str]:
    """Return the ``pmzfs mount`` command line for ``mountpoint`` with ``flags``."""
    return [sys.executable, "-m", "pmzfs", "mount", mountpoint, *flags]


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Mount pmzfs from /etc/fstab; mount(8) runs this for a line of type fuse.pmzfs.",
        epilog="Example fstab line: pmzfs /mnt/cloud fuse.pmzfs _netdev,nofail,allow_other,uid=plex 0 0",
    )
    parser.add_argument("spec", metavar="SPEC", help="the fstab source field, a label such as 'pmzfs'")
    parser.add_argument("mountpoint", metavar="MOUNTPOINT")
    parser.add_argument("-o", dest="options", action="append", default=[], metavar="OPTIONS", help="comma-separated mount options")
    parser.add_argument("-t", dest="type", metavar="TYPE", help="filesystem type, such as fuse.pmzfs (ignored)")
    parser.add_argument("-s", dest="sloppy", action="store_true", help="ignore unknown mount options")
    parser.add_argument("-f", dest="fake", action="store_true", help="print the pmzfs command instead of running it")
    parser.add_argument("-n", dest="no_mtab", action="store_true", help="accepted for mount(8); has no effect")
    parser.add_argument("-v", dest="verbose", action="store_true", help="print the pmzfs command before running it")
    parser.add_argument("-N", dest="namespace", metavar="NS", help="not supported: mount in another mount namespace")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    if args.namespace is not None:
        print(f"{PROG}: mounting in another namespace (-N) is not supported", file=sys.stderr)
        return EXIT_INVALID
    try:
        flags, ignored = translate_options(",".join(args.options), sloppy=args.sloppy)
    except FstabOptionError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_INVALID

    mountpoint = os.path.abspath(args.mountpoint)
    command = build_mount_command(mountpoint, flags)
    if args.verbose or args.fake:
        if ignored:
            print(f"{PROG}: ignoring options for mount(8) and systemd: {','.join(ignored)}", file=sys.stderr)
        print(f"{PROG}: running {shlex.join(command)}", file=sys.stderr)
    if args.fake:
        return 0
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(command[0], command)
    except OSError as exc:
        print(f"{PROG}: failed to run {command[0]}: {exc.strerror}", file=sys.stderr)
        return EXIT_INVALID
    return 0  # not reached: execv replaces this process
