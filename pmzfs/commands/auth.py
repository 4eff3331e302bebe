"""``pmzfs login``, ``pmzfs logout`` and ``pmzfs account``."""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import sys
from collections.abc import Mapping

import trio

from pmzfs import auth, redact
from pmzfs.api._retry import RetryPolicy
from pmzfs.api.client import DEFAULT_API_URL, PremiumizeClient, check_api_url
from pmzfs.api.errors import APIError, AuthenticationFailed, PermissionDenied, TransportError, UnexpectedRedirect
from pmzfs.api.models import AccountInfo
from pmzfs.cli import EXIT_OK, EXIT_USAGE, CommandError

log = logging.getLogger(__name__)

API_URL_ENV = auth.API_URL_ENV

# A one-shot command gives up sooner than a mount: a person is waiting.
COMMAND_RETRY = RetryPolicy(max_attempts=3, rate_limit_attempts=5, max_elapsed=20.0, max_delay=4.0)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the ``login``, ``logout`` and ``account`` subcommands."""
    login = subparsers.add_parser(
        "login",
        help="sign in with the OAuth device code and store the access token",
        description="Sign in through the service's device-code page and store the access token "
        "in $XDG_CONFIG_HOME/pmzfs/token.json (default ~/.config/pmzfs/token.json), mode 0600.",
    )
    _add_api_url(login)
    login.add_argument(
        "--client-id",
        metavar="ID",
        default=None,
        help=f"OAuth client id (default: ${auth.CLIENT_ID_ENV}, else {auth.DEFAULT_CLIENT_ID!r})",
    )
    _add_verbose(login)
    login.set_defaults(func=run_login)

    logout = subparsers.add_parser("logout", help="delete the access token that `pmzfs login` stored")
    _add_verbose(logout)
    logout.set_defaults(func=run_logout)

    account = subparsers.add_parser(
        "account",
        help="show the account's premium status, space and fair-use figures",
        description="Show the account behind the configured credential; exits 1 with one line "
        "saying what is wrong when the credential is missing or rejected.",
    )
    _add_api_url(account)
    account.add_argument("--api-key-file", metavar="FILE", default=None, help="file that contains the API key")
    _add_verbose(account)
    account.set_defaults(func=run_account)


def _add_api_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--api-url",
        metavar="URL",
        default=None,
        help=f"base URL of the API (default: ${API_URL_ENV}, else {DEFAULT_API_URL})",
    )


def _add_verbose(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="store_true", help="log every API request to stderr")


def _setup_logging(verbose: bool) -> None:
    """Send warnings (every record with -v) to stderr, masked, unless logging is already set up."""
    redact.install_redaction()
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("pmzfs: %(message)s" if not verbose else "%(name)s: %(message)s"))
    if not verbose:
        # Retry warnings would repeat the one-line error the command prints at the end.
        handler.addFilter(lambda record: record.levelno >= logging.ERROR or not record.name.startswith("pmzfs.api"))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)


def _api_url(args: argparse.Namespace, env: Mapping[str, str]) -> str:
    if args.api_url:
        url, source = args.api_url, "--api-url"
    elif env.get(API_URL_ENV):
        url, source = env[API_URL_ENV], API_URL_ENV
    else:
        url, source = DEFAULT_API_URL, "the default"
    try:
        check_api_url(url)
    except ValueError as exc:
        raise CommandError(f"{exc} (from {source})", EXIT_USAGE) from None
    return url


# ----------------------------------------------------------------------
# login / logout


def run_login(args: argparse.Namespace, env: Mapping[str, str] = os.environ) -> int:
    """Run the device-code flow and store the token; returns the exit code."""
    _setup_logging(args.verbose)
    url = _api_url(args, env)
    client_id = args.client_id or env.get(auth.CLIENT_ID_ENV) or auth.DEFAULT_CLIENT_ID
    path = auth.token_path(env)

    async def login() -> None:
        async with PremiumizeClient(url, retry=COMMAND_RETRY) as client:
            token = await auth.device_login(client, client_id, show=lambda line: print(line, flush=True))
        auth.store_token(token, path, url)

    try:
        trio.run(login)
    except auth.LoginError as exc:
        raise CommandError(f"login failed: {exc}") from None
    except TransportError as exc:
        raise CommandError(auth.connection_failed_message(exc, url)) from None
    except APIError as exc:
        raise CommandError(f"login failed: {exc}; check --api-url and --client-id") from None
    except OSError as exc:
        raise CommandError(f"cannot store the token in {path}: {exc.strerror}") from None
    print(f"Logged in. The access token is stored in {path}.")
    return EXIT_OK


def run_logout(args: argparse.Namespace, env: Mapping[str, str] = os.environ) -> int:
    """Delete the stored token; returns the exit code."""
    _setup_logging(args.verbose)
    path = auth.token_path(env)
    try:
        removed = auth.delete_token(path)
    except OSError as exc:
        raise CommandError(f"cannot remove the stored token {path}: {exc.strerror}") from None
    if removed:
        print(f"Logged out: removed {path}.")
    else:
        print(f"Not logged in: there is no stored token at {path}.")
    return EXIT_OK


# ----------------------------------------------------------------------
# account


def format_bytes(size: int) -> str:
    """Format a byte count in binary units with one decimal, for example "11.5 GiB"."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_premium(premium_until: int | None, now: datetime.datetime | None = None) -> str:
    """Format the premium expiry as YYYY-MM-DD (UTC), or "not premium"."""
    if not premium_until:
        return "not premium"
    until = datetime.datetime.fromtimestamp(premium_until, tz=datetime.timezone.utc)
    now = now or datetime.datetime.now(tz=datetime.timezone.utc)
    if until < now:
        return f"not premium (expired {until:%Y-%m-%d})"
    return f"{until:%Y-%m-%d}"


def format_account(info: AccountInfo) -> str:
    """Format the account figures as aligned lines."""
    rows = [
        ("customer id", info.customer_id),
        ("premium until", format_premium(info.premium_until)),
        ("space used", format_bytes(info.space_used)),
        ("fair use used", f"{info.limit_used * 100:.1f} %"),
    ]
    return "\n".join(f"{label + ':':<15}{value}" for label, value in rows)


def _config_settings(env: Mapping[str, str]) -> tuple[str | None, str | None, str | None]:
    """Return the config file's api_key, api_url and api_key_file, as far as they are set."""
    try:
        from pmzfs.config import load_mount_options
    except ImportError:
        return None, None, None
    options, api_key = load_mount_options({}, env)
    url = options.api_url if options.api_url != DEFAULT_API_URL else None
    key_file = str(options.api_key_file) if options.api_key_file else None
    return api_key, url, key_file


def run_account(args: argparse.Namespace, env: Mapping[str, str] = os.environ) -> int:
    """Print the account figures; returns the exit code."""
    _setup_logging(args.verbose)
    config_key, config_url, config_key_file = _config_settings(env)
    if not args.api_url and not env.get(API_URL_ENV) and config_url:
        args.api_url = config_url
    url = _api_url(args, env)
    try:
        credential = auth.resolve_credential(args.api_key_file or config_key_file, config_key, env, api_url=url)
    except auth.CredentialError as exc:
        raise CommandError(str(exc)) from None

    async def fetch() -> AccountInfo:
        async with PremiumizeClient(url, credential, retry=COMMAND_RETRY) as client:
            return await client.account_info()

    try:
        info = trio.run(fetch)
    except (AuthenticationFailed, PermissionDenied) as exc:
        raise CommandError(auth.rejected_credential_message(credential, exc.code)) from None
    except TransportError as exc:
        raise CommandError(auth.connection_failed_message(exc, url)) from None
    except UnexpectedRedirect as exc:
        raise CommandError(str(exc.message)) from None
    except APIError as exc:
        raise CommandError(f"reading the account from {url} failed: {exc}") from None
    print(format_account(info))
    return EXIT_OK
