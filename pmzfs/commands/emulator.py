"""``pmzfs emulator``: serve a local premiumize API until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import logging
import re
import signal
import sys
import threading
from dataclasses import fields
from typing import Any

from pmzfs.cli import EXIT_OK, EXIT_USAGE, CommandError
from pmzfs.emulator.options import DEMO_API_KEY, UPLOAD_FAILURE_MODES, EmulatorOptions

log = logging.getLogger(__name__)

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_SIZE_FACTORS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}

# (option, EmulatorOptions field, value kind, help text).  Every value is
# parsed after argparse, so a bad one is reported in one line.
_VALUE_OPTIONS: list[tuple[str, str, str, str]] = [
    ("--api-latency", "api_latency", "seconds", "seconds every API call waits before it is handled (default 0)"),
    ("--link-rtt", "link_rtt", "seconds", "round-trip time in seconds added to each file link request, twice on a new connection (default 0)"),
    ("--link-rate", "link_rate", "size", "cap in bytes per second for file link bodies on each connection, e.g. 10M (default uncapped)"),
    ("--link-expiry", "link_expiry", "seconds", "seconds after which an issued file link returns HTTP 403 (default never)"),
    ("--requests-per-second", "requests_per_second", "number", "API calls accepted per second; more get rate_limit_reached (default unlimited)"),
    ("--seed", "seed", "integer", "seed of the random generator behind --error-rate (default 0)"),
    ("--link-reset-after-bytes", "link_reset_after_bytes", "size", "reset file link connections (TCP RST) after this many body bytes"),
    ("--link-reset-after-fraction", "link_reset_after_fraction", "fraction", "reset file link connections after this fraction (0..1) of the body"),
    ("--link-reset-count", "link_reset_count", "integer", "number of link responses to reset, then stop (default every one)"),
    ("--upload-failure-count", "upload_failure_count", "integer", "number of uploads that fail, then stop (default every one)"),
    ("--upload-reset-after-fraction", "upload_reset_after_fraction", "fraction", "fraction (0..1) of the upload body read before a reset (default 0)"),
    ("--space-limit", "space_limit", "size", "bytes the account may store, e.g. 5G; uploads beyond get account_limit_reached (default unlimited)"),
    ("--transfer-speed", "transfer_speed", "size", "bytes per second a transfer downloads, e.g. 1M (default instant)"),
    ("--device-code-lifetime", "device_code_lifetime", "integer", "seconds an OAuth device code stays valid (default 600)"),
    ("--device-poll-interval", "device_poll_interval", "integer", "poll interval in seconds that device codes announce (default 5)"),
    ("--token-lifetime", "token_lifetime", "integer", "seconds an OAuth access token stays valid (default 30 days)"),
]


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "emulator",
        help="serve a local premiumize API for tests and the demo",
        description=(
            "Serve a local emulation of the premiumize API. The first line on stdout is the base URL; "
            "the server runs until SIGINT or SIGTERM."
        ),
    )
    parser.add_argument("--state", metavar="DIR", help="directory that keeps the account between runs (default: a temporary directory removed on exit)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", default="0", help="TCP port to listen on; 0 picks a free port (default 0)")
    parser.add_argument("--api-key", default=DEMO_API_KEY, help=f"API key that the server accepts (default {DEMO_API_KEY!r})")
    parser.add_argument("--demo-content", action="store_true", help="seed a demo library with videos, documents and a 256 MiB file (once per state directory)")
    parser.add_argument("--reject-duplicate-names", action="store_true", help="reject a create, rename, upload or move onto a taken name with invalid_request")
    parser.add_argument("--case-insensitive-names", action="store_true", help="compare names without regard to case when duplicates are rejected")
    parser.add_argument(
        "--error-rate",
        action="append",
        default=[],
        metavar="ENDPOINT:CODE:PROBABILITY",
        help="fail calls of ENDPOINT (or * for all) with error CODE at this probability, e.g. folder/list:service_down:0.5; CODE http_500 sends HTTP 500; repeatable",
    )
    parser.add_argument("--upload-failure", metavar="MODE", help=f"make upload URLs fail: {', '.join(UPLOAD_FAILURE_MODES)}")
    parser.add_argument("--device-auto", metavar="DECISION", help="approve or deny every OAuth device code at once: approve, deny")
    for option, _, kind, help_text in _VALUE_OPTIONS:
        parser.add_argument(option, metavar=kind.upper(), help=help_text)
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request to stderr")
    parser.set_defaults(func=run)


def _parse_value(option: str, kind: str, text: str) -> int | float:
    try:
        if kind == "size":
            match = _SIZE.match(text)
            if not match:
                raise ValueError
            return int(float(match.group(1)) * _SIZE_FACTORS[match.group(2).lower()])
        if kind == "integer":
            return int(text)
        return float(text)
    except ValueError:
        examples = {"size": "a byte count such as 1048576 or 10M", "integer": "a whole number", "fraction": "a number from 0 to 1"}
        expected = examples.get(kind, "a number of seconds" if kind == "seconds" else "a number")
        raise CommandError(f"invalid value {text!r} for {option}; expected {expected}", EXIT_USAGE) from None


def _parse_error_rates(values: list[str]) -> dict[str, dict[str, float]]:
    rates: dict[str, dict[str, float]] = {}
    for value in values:
        endpoint, _, rest = value.rpartition(":")
        endpoint, _, code = endpoint.rpartition(":")
        try:
            probability = float(rest)
        except ValueError:
            probability = -1.0
        if not endpoint or not code or probability < 0:
            raise CommandError(
                f"invalid --error-rate {value!r}; expected ENDPOINT:CODE:PROBABILITY such as folder/list:service_down:0.5",
                EXIT_USAGE,
            )
        rates.setdefault(endpoint, {})[code] = probability
    return rates


def options_from_args(args: argparse.Namespace) -> EmulatorOptions:
    """Build the emulator options from parsed arguments; raise CommandError (exit 2) for a bad value."""
    known = {field.name for field in fields(EmulatorOptions)}
    settings: dict[str, Any] = {
        "api_key": args.api_key,
        "duplicate_names": not args.reject_duplicate_names,
        "case_sensitive_names": not args.case_insensitive_names,
        "error_rates": _parse_error_rates(args.error_rate),
        "upload_failure": args.upload_failure,
        "device_auto": args.device_auto,
    }
    if not args.api_key:
        raise CommandError("--api-key must not be empty", EXIT_USAGE)
    for option, name, kind, _ in _VALUE_OPTIONS:
        text = getattr(args, name)
        if text is not None:
            settings[name] = _parse_value(option, kind, text)
    assert set(settings) <= known
    options = EmulatorOptions(**settings)
    try:
        options.validate()
    except ValueError as exc:
        # The message starts with the field name; show the option instead.
        message = str(exc)
        name = message.split(" ", 1)[0]
        if name in known:
            message = "--" + name.replace("_", "-") + message[len(name) :]
        raise CommandError(f"invalid value: {message}", EXIT_USAGE) from None
    return options


def run(args: argparse.Namespace) -> int:
    from pmzfs.emulator import Emulator

    options = options_from_args(args)
    if not args.port.isdigit() or int(args.port) > 65535:
        raise CommandError(f"invalid --port {args.port!r}; expected 0 to 65535", EXIT_USAGE)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        emulator = Emulator(state_dir=args.state, options=options, host=args.host, port=int(args.port), demo_content=args.demo_content)
    except (OSError, ValueError) as exc:
        raise CommandError(f"cannot open the emulator state: {exc}") from None
    try:
        emulator.start()
    except OSError as exc:
        emulator.stop()
        raise CommandError(f"cannot listen on {args.host} port {args.port}: {exc.strerror or exc}") from None

    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        print(emulator.base_url, flush=True)
        while not stop.wait(1.0):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        emulator.stop()
    return EXIT_OK
