"""``pmzfs mount MOUNTPOINT``: mount the account, in the background unless --foreground."""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

import trio

from pmzfs.config import add_mount_options, mount_options_from_args
from pmzfs.logs import setup_logging
from pmzfs.options import MountOptions


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "mount",
        help="mount the account at MOUNTPOINT",
        description=(
            "Mount the premiumize.me account at MOUNTPOINT. Without --foreground the command returns once the"
            " mount answers and a background process serves it until `pmzfs unmount MOUNTPOINT`."
            " Credentials come from --api-key-file, PMZFS_API_KEY, the config file's api_key or `pmzfs login`."
        ),
    )
    parser.add_argument("mountpoint", metavar="MOUNTPOINT", help="empty folder to mount the account at")
    parser.add_argument(
        "--nonempty",
        action="store_true",
        help="allow a MOUNTPOINT that contains files; they are hidden while the account is mounted",
    )
    add_mount_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    options, config_api_key = mount_options_from_args(args)
    options.mountpoint = Path(options.mountpoint).absolute()
    _make_paths_absolute(options)

    # Imported here so that `pmzfs --help` works on a machine without libfuse3.
    from pmzfs import mount

    mount.check_before_mount(options, nonempty=args.nonempty)
    if options.foreground:
        setup_logging(options.verbose, options.log_file, foreground=True)
        credential = mount.resolve(options, config_api_key)
        return trio.run(functools.partial(mount.serve, options, credential))

    def mount_in_child(on_ready) -> int:
        setup_logging(options.verbose, options.log_file, foreground=False)
        credential = mount.resolve(options, config_api_key)
        return trio.run(functools.partial(mount.serve, options, credential, on_ready=on_ready))

    return mount.run_in_background(mount_in_child, options.mountpoint)


def _make_paths_absolute(options: MountOptions) -> None:
    # The background process changes its working folder to /.
    for name in ("cache_dir", "log_file", "api_key_file"):
        value = getattr(options, name)
        if value is not None:
            setattr(options, name, Path(value).expanduser().absolute())

