"""Credentials: the API key, OAuth device codes and the access tokens they yield.

The device flow follows RFC 8628 as the service documents it.  ``POST
/token`` with ``response_type=device_code`` issues a code pair.  Polls with
``grant_type=device_code`` get HTTP 400 with ``authorization_pending``,
``slow_down``, ``access_denied`` or ``invalid_grant`` until the user
approves at ``/device``, and then the access token.  Pending device codes
live in memory; issued access tokens are saved (as SHA-256 digests) with
the state, so they survive a restart.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Callable

from pmzfs.emulator.options import EmulatorOptions

if TYPE_CHECKING:
    from pmzfs.emulator.params import Params
    from pmzfs.emulator.state import StateStore

# Letters and digits that cannot be mistaken for each other when typed.
_USER_CODE_ALPHABET = "bcdfghjkmnpqrstvwxz23456789"

DEVICE_FORM = """<!doctype html>
<html><head><meta charset="utf-8"><title>pmzfs emulator: connect a device</title></head>
<body>
<h1>Connect a device</h1>
<form method="post" action="/device">
<label>Code shown on the device: <input name="user_code" autofocus></label>
<button name="action" value="approve">Approve</button>
<button name="action" value="deny">Deny</button>
</form>
</body></html>
"""


@dataclass
class DeviceCode:
    device_code: str
    user_code: str
    client_id: str
    expires_at: float  # time.monotonic()
    interval: int
    last_poll: float  # time.monotonic() of the issue or of the last poll
    decision: str | None = None  # "approve", "deny" or None while pending


def _normalize_user_code(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _oauth_error(error: str, description: str) -> tuple[int, dict[str, Any]]:
    return HTTPStatus.BAD_REQUEST, {"error": error, "error_description": description}


class Auth:
    """Checks credentials and runs the OAuth device-code flow."""

    def __init__(self, store: StateStore, options: EmulatorOptions, base_url: Callable[[], str]) -> None:
        self._store = store
        self._options = options
        self._base_url = base_url
        self._lock = threading.Lock()
        self._device_codes: dict[str, DeviceCode] = {}

    # ------------------------------------------------------------ credentials

    def accepts(self, credential: str) -> bool:
        """Return whether ``credential`` is the API key or an unexpired access token."""
        if hmac.compare_digest(credential.encode("utf-8"), self._options.api_key.encode("utf-8")):
            return True
        with self._store.lock:
            tokens: dict[str, float] = self._store.extra.get("access_tokens", {})
            expires_at = tokens.get(_digest(credential))
        return expires_at is not None and time.time() < expires_at

    def issue_access_token(self) -> tuple[str, int]:
        """Create and save an access token; return it with its lifetime in seconds."""
        token = secrets.token_urlsafe(32)
        lifetime = self._options.token_lifetime
        now = time.time()
        with self._store.lock:
            tokens = self._store.extra.setdefault("access_tokens", {})
            for digest in [key for key, expiry in tokens.items() if expiry <= now]:
                del tokens[digest]
            tokens[_digest(token)] = now + lifetime
            self._store.mark_dirty()
        return token, lifetime

    # ------------------------------------------------------------ device flow

    def token_endpoint(self, params: Params) -> tuple[int, dict[str, Any]]:
        """Handle a POST to /token and return the HTTP status and JSON document."""
        response_type = params.get("response_type")
        grant_type = params.get("grant_type")
        if response_type is not None:
            if response_type != "device_code":
                return _oauth_error("unsupported_response_type", f"response_type {response_type!r} is not supported; use device_code")
            return self._start_device_flow(params)
        if grant_type is None:
            return _oauth_error("invalid_request", "send response_type=device_code or grant_type=device_code")
        if grant_type != "device_code":
            return _oauth_error("unsupported_grant_type", f"grant_type {grant_type!r} is not supported; use device_code")
        return self._poll(params)

    def _start_device_flow(self, params: Params) -> tuple[int, dict[str, Any]]:
        client_id = params.get("client_id")
        if not client_id:
            return _oauth_error("invalid_request", "the parameter 'client_id' is missing")
        options = self._options
        user_code = "-".join("".join(secrets.choice(_USER_CODE_ALPHABET) for _ in range(4)) for _ in range(2))
        now = time.monotonic()
        code = DeviceCode(
            device_code=secrets.token_urlsafe(32),
            user_code=user_code,
            client_id=client_id,
            expires_at=now + options.device_code_lifetime,
            interval=options.device_poll_interval,
            last_poll=now,
            decision=options.device_auto,
        )
        with self._lock:
            for stale in [key for key, entry in self._device_codes.items() if entry.expires_at < now]:
                del self._device_codes[stale]
            self._device_codes[code.device_code] = code
        document = {
            "verification_uri": f"{self._base_url()}/device",
            "user_code": code.user_code,
            "device_code": code.device_code,
            "expires_in": options.device_code_lifetime,
            "interval": code.interval,
        }
        return HTTPStatus.OK, document

    def _poll(self, params: Params) -> tuple[int, dict[str, Any]]:
        device_code = params.get("code") or params.get("device_code")
        client_id = params.get("client_id")
        now = time.monotonic()
        with self._lock:
            code = self._device_codes.get(device_code or "")
            if code is None or code.client_id != client_id:
                return _oauth_error("invalid_grant", "the device code is unknown or belongs to another client_id")
            if now > code.expires_at:
                del self._device_codes[code.device_code]
                return _oauth_error("invalid_grant", "the device code has expired; request a new one")
            too_soon = now - code.last_poll < code.interval
            code.last_poll = now
            if too_soon:
                return _oauth_error("slow_down", f"polled sooner than the interval of {code.interval} seconds")
            if code.decision is None:
                return _oauth_error("authorization_pending", "the user has not entered the code yet")
            if code.decision == "deny":
                return _oauth_error("access_denied", "the user denied the request")
            del self._device_codes[code.device_code]
        token, lifetime = self.issue_access_token()
        document = {"access_token": token, "token_type": "Bearer", "expires_in": lifetime, "scope": "full"}
        return HTTPStatus.OK, document

    def decide(self, user_code: str, decision: str) -> None:
        """Approve (``"approve"``) or deny (``"deny"``) a pending device code.

        Raises ValueError for an unknown or expired code.
        """
        requested = _normalize_user_code(user_code)
        now = time.monotonic()
        with self._lock:
            for code in self._device_codes.values():
                if _normalize_user_code(code.user_code) == requested and now <= code.expires_at:
                    code.decision = decision
                    return
        raise ValueError(f"no pending device code {user_code!r}; it is unknown, used or expired")

    def device_page_post(self, params: Params) -> tuple[int, str]:
        """Approve or deny the user_code of a POST to /device; return the HTTP status and page text."""
        user_code = params.get("user_code") or ""
        action = (params.get("action") or "approve").lower()
        if action not in ("approve", "deny"):
            return HTTPStatus.BAD_REQUEST, f"unknown action {action!r}; use approve or deny\n"
        try:
            self.decide(user_code, action)
        except ValueError as exc:
            return HTTPStatus.NOT_FOUND, f"{exc}\n"
        return HTTPStatus.OK, "Device approved.\n" if action == "approve" else "Device denied.\n"
