"""Keep API keys and tokens out of logs and error messages.

Every credential pmzfs handles is registered here with ``register_secret``.
``RedactingFilter`` replaces registered secrets, ``Bearer`` tokens and the
values of ``apikey=``, ``token=`` and ``access_token=`` parameters with
``***`` in each log record before any handler formats it.
``install_redaction()`` puts the filter on the loggers that can see a
request: ``pmzfs``, ``httpx`` and ``httpcore``.
"""

from __future__ import annotations

import collections
import logging
import re
import threading

MASK = "***"

# Secrets shorter than this are not registered: masking every occurrence of
# a two-letter string would garble logs and protects nothing.
MIN_SECRET_LENGTH = 6

# Single-use secrets (upload tokens, device codes) kept for masking; the
# oldest are dropped first so the registry stays bounded in a long mount.
MAX_TEMPORARY_SECRETS = 512

LOGGER_NAMES = ("pmzfs", "httpx", "httpcore")

_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[^\s'\",;]+"),
    re.compile(r"(?i)((?:apikey|api_key|token|access_token|device_code)=)[^&\s'\",;]+"),
    re.compile(r"(?i)(\"(?:access_token|token|device_code|apikey)\"\s*:\s*\")[^\"]+"),
)

_lock = threading.Lock()
_secrets: set[str] = set()
_temporary: collections.OrderedDict[str, None] = collections.OrderedDict()
# Every secret, longest first so a secret that contains another is masked
# whole; rebuilt when the registry changes, not for every log record.
_sorted: list[str] = []


def register_secret(value: str | None, *, temporary: bool = False) -> None:
    """Register ``value`` so that every later log line and message masks it.

    ``temporary`` marks a single-use secret such as an upload token, of
    which only the most recent ``MAX_TEMPORARY_SECRETS`` are kept.
    """
    global _sorted
    if not value or len(value) < MIN_SECRET_LENGTH:
        return
    with _lock:
        if value in _secrets or (temporary and value in _temporary):
            return
        if temporary:
            _temporary[value] = None
            _temporary.move_to_end(value)
            while len(_temporary) > MAX_TEMPORARY_SECRETS:
                _temporary.popitem(last=False)
        else:
            _secrets.add(value)
        _sorted = sorted(_secrets.union(_temporary), key=len, reverse=True)


def forget_secrets() -> None:
    """Drop every registered secret (for tests that check the registry)."""
    global _sorted
    with _lock:
        _secrets.clear()
        _temporary.clear()
        _sorted = []


def redact_text(text: str) -> str:
    """Return ``text`` with every registered secret and known token pattern masked."""
    for secret in _sorted:
        if secret in text:
            text = text.replace(secret, MASK)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda match: match.group(1) + MASK, text)
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that masks secrets in a record's message, arguments and traceback text."""

    def filter(self, record: logging.LogRecord) -> bool:
        # Mask the formatted message, not the template: a template such as
        # "apikey=%s" would otherwise lose its placeholder and fail to format.
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        record.msg = redact_text(message)
        record.args = ()
        if record.exc_info and not record.exc_text:
            # Format the traceback here so the masked text is what handlers print.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        return True


_filter = RedactingFilter()
_installed = False


def _is_covered(logger_name: str) -> bool:
    return any(logger_name == name or logger_name.startswith(name + ".") for name in LOGGER_NAMES)


def install_redaction() -> RedactingFilter:
    """Mask secrets in every record of the ``pmzfs``, ``httpx`` and ``httpcore`` loggers.

    A filter on a logger does not see the records of its child loggers
    (``pmzfs.api.client``, ``httpcore.http11``), so the filter runs in the
    log record factory instead, for every record whose logger name is one of
    those or below them. Every handler, including ones added later, then
    receives only masked text. Calling this again is harmless.
    """
    global _installed
    with _lock:
        if _installed:
            return _filter
        _installed = True
        previous_factory = logging.getLogRecordFactory()

    def redacting_factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = previous_factory(*args, **kwargs)
        if _is_covered(record.name):
            _filter.filter(record)
        return record

    logging.setLogRecordFactory(redacting_factory)
    return _filter
