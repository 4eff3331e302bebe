"""Credentials: where the API key or access token comes from, and ``pmzfs login``'s token.

Sources, highest first: ``--api-key-file FILE``, the ``PMZFS_API_KEY``
environment variable, the config file's ``api_key``, and the access token
that ``pmzfs login`` stored in ``$XDG_CONFIG_HOME/pmzfs/token.json``
(default ``~/.config/pmzfs/token.json``, mode 0600).
"""

from __future__ import annotations

import json
import logging
import os
import stat
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import trio

from pmzfs import redact
from pmzfs.api.client import PremiumizeClient
from pmzfs.api.errors import APIError, OAuthError, TransportError
from pmzfs.api.models import AccessToken

log = logging.getLogger(__name__)

API_KEY_ENV = "PMZFS_API_KEY"
CLIENT_ID_ENV = "PMZFS_CLIENT_ID"

# The OAuth client id that ``pmzfs login`` sends unless --client-id or
# PMZFS_CLIENT_ID names another.
# NOTE: this project has not registered this id with premiumize.me. On the
# real service, register an OAuth client and pass its id.
DEFAULT_CLIENT_ID = "pmzfs"

TOKEN_FILE_NAME = "token.json"

API_URL_ENV = "PMZFS_API_URL"

HOW_TO_PROVIDE = "run `pmzfs login`, set PMZFS_API_KEY, or pass --api-key-file FILE"


class CredentialError(Exception):
    """No usable credential: the message names the source that failed and the fix."""


class LoginError(Exception):
    """The device-code login ended without a token: denied, expired or failed."""


@dataclass(frozen=True)
class Credential:
    """An API key or access token, with where it came from.

    ``value`` is the secret; ``repr()`` and ``str()`` show only ``source``,
    for example "the PMZFS_API_KEY environment variable".
    """

    value: str = field(repr=False)
    source: str
    # "api_key" or "access_token"; messages about a rejected credential differ.
    kind: str = "api_key"

    def __post_init__(self) -> None:
        redact.register_secret(self.value)

    def __str__(self) -> str:
        return f"credential from {self.source}"

    def __repr__(self) -> str:
        return f"Credential(source={self.source!r}, kind={self.kind!r})"


def config_dir(env: Mapping[str, str] = os.environ) -> Path:
    """Return pmzfs's config directory: ``$XDG_CONFIG_HOME/pmzfs``, by default ``~/.config/pmzfs``."""
    base = env.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "pmzfs"


def token_path(env: Mapping[str, str] = os.environ) -> Path:
    """Return the file where ``pmzfs login`` stores the access token."""
    return config_dir(env) / TOKEN_FILE_NAME


def _warn_if_readable_by_others(path: Path, description: str) -> None:
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("warning: %s %s is readable by group or others; run: chmod 600 %s", description, path, path)


def read_key_file(path: Path) -> str:
    """Return the API key stored in ``path``, the file's content without surrounding whitespace.

    Raises ``CredentialError`` naming the file when it is missing,
    unreadable, empty or contains more than one word.  Logs a warning when
    group or others can read it.
    """
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CredentialError(f"API key file {path} not found; create it with the key from your account page") from None
    except IsADirectoryError:
        raise CredentialError(f"API key file {path} is a directory; pass the file that contains the key") from None
    except PermissionError:
        raise CredentialError(f"API key file {path} is not readable by this user; check its owner and mode") from None
    except UnicodeDecodeError:
        raise CredentialError(f"API key file {path} is not UTF-8 text; it must contain only the API key") from None
    except OSError as exc:
        raise CredentialError(f"cannot read API key file {path}: {exc.strerror}") from None
    key = text.strip()
    if not key:
        raise CredentialError(f"API key file {path} is empty; put the API key from your account page in it")
    if len(key.split()) > 1:
        raise CredentialError(f"API key file {path} contains more than one word; it must contain only the API key")
    redact.register_secret(key)
    _warn_if_readable_by_others(path, "API key file")
    return key


def same_api_url(first: str, second: str) -> bool:
    """Return whether two API base URLs name the same service."""
    return first.strip().rstrip("/").lower() == second.strip().rstrip("/").lower()


def load_token(path: Path, api_url: str | None = None) -> Credential | None:
    """Return the access token stored by ``pmzfs login`` in ``path``, or None if there is none.

    Raises ``CredentialError`` when the file is unreadable, malformed or
    records that the token has expired.  It also raises when ``api_url`` is
    given and differs from the URL that issued the token, because a token
    from a local emulator must never be sent to the real service, nor the
    reverse.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CredentialError(f"cannot read the stored login token {path}: {exc.strerror}; run `pmzfs login`") from None
    try:
        data = json.loads(text)
        token = data["access_token"]
    except (ValueError, KeyError, TypeError):
        raise CredentialError(
            f"the stored login token {path} is damaged; run `pmzfs logout` and then `pmzfs login`"
        ) from None
    if not isinstance(token, str) or not token.strip():
        raise CredentialError(f"the stored login token {path} is empty; run `pmzfs login`")
    redact.register_secret(token)
    issued_by = data.get("api_url")
    if api_url is not None and isinstance(issued_by, str) and not same_api_url(issued_by, api_url):
        raise CredentialError(
            f"the login token in {path} was issued by {issued_by}, not {api_url}; "
            f"run `pmzfs login --api-url {api_url}`, or pass --api-url {issued_by}"
        )
    _warn_if_readable_by_others(path, "login token file")
    expires_at = data.get("expires_at")
    if isinstance(expires_at, (int, float)) and expires_at < time.time():
        day = time.strftime("%Y-%m-%d", time.gmtime(expires_at))
        raise CredentialError(f"the login token in {path} expired on {day}; run `pmzfs login` again")
    return Credential(token.strip(), f"the token stored by `pmzfs login` ({path})", kind="access_token")


def store_token(token: AccessToken, path: Path, api_url: str) -> None:
    """Write ``token`` to ``path`` atomically with mode 0600.

    The temporary file is created with mode 0600 before any byte is
    written, so the token is never readable by others, and it replaces
    ``path`` only once complete.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    now = time.time()
    data = {
        "access_token": token.access_token,
        "token_type": token.token_type,
        "scope": token.scope,
        "api_url": api_url,
        "created_at": int(now),
        "expires_at": int(now + token.expires_in) if token.expires_in else None,
    }
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            json.dump(data, file, indent=2)
            file.write("\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def delete_token(path: Path) -> bool:
    """Remove the stored token; returns False when there was none."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def resolve_credential(
    api_key_file: str | os.PathLike | None = None,
    config_api_key: str | None = None,
    env: Mapping[str, str] = os.environ,
    *,
    api_url: str | None = None,
) -> Credential:
    """Return the credential from the highest source that has one.

    Sources, highest first: ``api_key_file``, the ``PMZFS_API_KEY``
    environment variable, ``config_api_key`` (the config file's
    ``api_key``), the token stored by ``pmzfs login``.  The stored token is
    used only for the ``api_url`` that issued it (None skips that check,
    which only tests should do).  Raises
    ``CredentialError`` with a message saying how to provide one when no
    source has one or the chosen source is unusable.
    """
    if api_key_file is not None:
        path = Path(api_key_file).expanduser()
        return Credential(read_key_file(path), f"the API key file {path}")

    env_value = env.get(API_KEY_ENV)
    if env_value is not None:
        key = env_value.strip()
        if not key:
            raise CredentialError(f"{API_KEY_ENV} is set but empty; set it to your API key or unset it")
        return Credential(key, f"the {API_KEY_ENV} environment variable")

    if config_api_key is not None and config_api_key.strip():
        return Credential(config_api_key.strip(), "the config file's api_key setting")

    stored = load_token(token_path(env), api_url)
    if stored is not None:
        return stored
    raise CredentialError(f"no API key or login token found; {HOW_TO_PROVIDE}")


async def device_login(
    client: PremiumizeClient,
    client_id: str,
    *,
    show: Callable[[str], None] = print,
) -> AccessToken:
    """Run the OAuth device-code flow and return the access token once the user approves.

    ``show`` receives the lines to display: the verification URL and the
    user code.  Polls at the interval the service names, adding 5 seconds
    after each ``slow_down``.  Raises ``LoginError`` when the user denies
    the request, the code expires, or the service rejects the client.
    """
    code = await client.device_code(client_id)
    show(f"To sign in, open {code.verification_uri} and enter the code: {code.user_code}")
    show(f"Waiting for approval (the code expires in {code.expires_in // 60} min {code.expires_in % 60} s)...")
    interval = max(1, code.interval)
    deadline = trio.current_time() + code.expires_in
    while True:
        await trio.sleep(interval)
        try:
            return await client.device_token(client_id, code.device_code)
        except OAuthError as exc:
            if exc.code == "authorization_pending":
                pass
            elif exc.code == "slow_down":
                interval += 5
                log.debug("the service asked to poll slower; polling every %d s", interval)
            elif exc.code == "access_denied":
                raise LoginError("the sign-in request was denied; run `pmzfs login` again to retry") from None
            elif exc.code == "invalid_grant":
                raise LoginError(
                    "the code expired or is no longer valid; run `pmzfs login` again for a new code"
                ) from None
            else:
                detail = f" ({exc.message})" if exc.message else ""
                raise LoginError(f"the sign-in failed with {exc.code}{detail}") from None
        except APIError as exc:
            if not exc.retryable:
                raise LoginError(f"the sign-in failed: {exc}") from None
            log.warning("polling for the login token failed (%s); trying again in %d s", exc, interval)
        if trio.current_time() >= deadline:
            raise LoginError("the code expired before it was entered; run `pmzfs login` again for a new code")


def rejected_credential_message(credential: Credential, code: str) -> str:
    """Return the one-line error for a credential the service rejected with ``code``."""
    if credential.kind == "access_token":
        return f"the access token from {credential.source} was rejected ({code}); run `pmzfs login` again"
    source = credential.source
    if source.startswith("the ") and source.endswith(" environment variable"):
        source = source[len("the ") : -len(" environment variable")]
    return f"the API key from {source} was rejected ({code}); check it or run `pmzfs login`"


def connection_failed_message(exc: TransportError, url: str) -> str:
    """Return the one-line error for a request to ``url`` that failed below HTTP."""
    reason = exc.reason or "connection failed"
    if not exc.maybe_applied:
        return f"could not connect to {url} ({reason}); check --api-url or {API_URL_ENV} and the network"
    return f"the connection to {url} failed ({reason}); try again"
