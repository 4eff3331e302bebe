"""The ``pmzfs`` command line: dispatches to the modules in ``pmzfs.commands``."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from pmzfs import __version__

# Exit codes shared by every subcommand.
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

COMMAND_MODULES = (
    "mount",
    "demo",
    "unmount",
    "status",
    "auth",
    "emulator",
)

log = logging.getLogger(__name__)


class CommandError(Exception):
    """A failure to report as one line on stderr, with the exit code to use."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pmzfs",
        description="Mount a premiumize.me cloud account as a local filesystem.",
    )
    parser.add_argument("--version", action="version", version=f"pmzfs {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"pmzfs.commands.{name}")
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except CommandError as exc:
        print(f"pmzfs: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
