"""``pmzfs status MOUNTPOINT``: print the report of a running mount."""

from __future__ import annotations

import argparse
import json

from pmzfs.cli import EXIT_OK
from pmzfs.status import REQUEST_TIMEOUT, format_status, query_status


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "status",
        help="show pending and failed uploads, memory, cache and API counters of a mount",
        description=(
            "Ask the pmzfs process serving MOUNTPOINT for its report: pending and failed uploads"
            " (with their errors), read-ahead memory in use, cache entries, API calls and errors"
            " since the mount, and uptime. Run it as the user who mounted."
        ),
    )
    parser.add_argument("mountpoint", metavar="MOUNTPOINT", help="folder where pmzfs is mounted")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.add_argument(
        "--timeout",
        type=float,
        default=REQUEST_TIMEOUT,
        metavar="SECONDS",
        help=f"seconds to wait for the response of the mount process (default {REQUEST_TIMEOUT:g})",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    report = query_status(args.mountpoint, timeout=args.timeout)
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True, default=str))
    else:
        print(format_status(report))
    return EXIT_OK
