"""Logging set-up for the mount process and the other commands.

``setup_logging`` picks the output from where the process runs:

- in the foreground on a terminal: stderr, with timestamps;
- under systemd (stderr is the journal stream that ``JOURNAL_STREAM``
  names): stderr without timestamps, which journald adds, and with a
  ``<N>`` syslog priority prefix on each line so the journal records the
  level (``journalctl -p warning`` works);
- in the background without the journal: the local syslog socket
  ``/dev/log`` (stderr if there is none);
- with ``log_file``: also that file, with timestamps, rotated at 10 MiB.

Every handler drops repeats beyond ``REPEAT_LIMIT`` records per
``REPEAT_PERIOD`` seconds from one logging call site, and masks
secrets with the filter from ``pmzfs.redact``.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from pmzfs.cli import CommandError
from pmzfs.redact import install_redaction

log = logging.getLogger(__name__)

REPEAT_LIMIT = 10
REPEAT_PERIOD = 60.0
LOG_FILE_MAX_BYTES = 10 * 1024 * 1024
LOG_FILE_BACKUPS = 3
SYSLOG_SOCKET = "/dev/log"

TIMESTAMP_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
JOURNAL_FORMAT = "%(name)s: %(message)s"
SYSLOG_FORMAT = "pmzfs[%(process)d]: %(levelname)s %(name)s: %(message)s"

# Loggers that log one INFO line per HTTP request: only shown with -v.
HTTP_LOGGERS = ("httpx", "httpcore")

# The priorities of syslog(3), which journald reads from a "<N>" line prefix.
_JOURNAL_PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))
_DEBUG_PRIORITY = 7

_HANDLER_MARK = "_pmzfs_handler"
_SUMMARY_MARK = "_pmzfs_repeat_summary"


def journal_priority(levelno: int) -> int:
    """Map a logging level to the syslog priority journald records (2 critical ... 7 debug)."""
    for threshold, priority in _JOURNAL_PRIORITIES:
        if levelno >= threshold:
            return priority
    return _DEBUG_PRIORITY


class JournalFormatter(logging.Formatter):
    """Formats records for journald's stdout/stderr stream: a ``<N>`` priority on every line, no timestamp."""

    def __init__(self) -> None:
        super().__init__(JOURNAL_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{journal_priority(record.levelno)}>"
        # journald makes one entry per line, so a traceback keeps its level
        # only if every line carries the prefix.
        return "\n".join(prefix + line for line in super().format(record).splitlines())


@dataclass
class _RepeatWindow:
    start: float
    count: int = 0
    suppressed: int = 0
    # The formatted text of the last record dropped, shown in the summary.
    last_suppressed: str = ""


class RepeatLimiter(logging.Filter):
    """A handler filter that passes at most ``limit`` records per ``period`` seconds for each logging call site.

    Records are grouped by logger name and the source line that logged them,
    so "upload of %s failed" counts as one kind whatever file it names. When a
    new period starts for a kind that had records dropped, the filter first
    sends one "suppressed N similar messages" record to its handler, so the
    count appears with the next message of that kind, not when the period ends.
    """

    MAX_KINDS = 1024

    def __init__(
        self,
        limit: int = REPEAT_LIMIT,
        period: float = REPEAT_PERIOD,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.limit = limit
        self.period = period
        self.clock = clock
        self.handler: logging.Handler | None = None
        self._windows: dict[tuple[str, str], _RepeatWindow] = {}

    def attach(self, handler: logging.Handler) -> None:
        """Install this filter on ``handler``, which also receives the summary records."""
        self.handler = handler
        handler.addFilter(self)

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, _SUMMARY_MARK, False):
            return True
        # The call site, not the text: the redaction filter has already
        # replaced the template with the formatted message.
        key = (record.name, f"{record.pathname}:{record.lineno}")
        now = self.clock()
        window = self._windows.get(key)
        if window is None or now - window.start >= self.period:
            if window is not None and window.suppressed:
                self._send_summary(record, window, now - window.start)
            if window is None and len(self._windows) >= self.MAX_KINDS:
                self._prune(now)
            self._windows[key] = _RepeatWindow(start=now, count=1)
            return True
        window.count += 1
        if window.count <= self.limit:
            return True
        window.suppressed += 1
        window.last_suppressed = record.getMessage()
        return False

    def _send_summary(self, record: logging.LogRecord, window: _RepeatWindow, elapsed: float) -> None:
        if self.handler is None:
            return
        summary = logging.LogRecord(
            record.name,
            record.levelno,
            record.pathname,
            record.lineno,
            "suppressed %d similar messages in the last %d s, the last: %r",
            (window.suppressed, round(elapsed), window.last_suppressed),
            None,
        )
        setattr(summary, _SUMMARY_MARK, True)
        self.handler.handle(summary)

    def _prune(self, now: float) -> None:
        # Keep memory bounded when a library logs preformatted messages,
        # each of which is a kind of its own.
        expired = [key for key, window in self._windows.items() if now - window.start >= self.period]
        for key in expired:
            del self._windows[key]
        if len(self._windows) >= self.MAX_KINDS:
            self._windows.clear()


def stream_is_journal(stream: IO[str], env: Mapping[str, str]) -> bool:
    """Tell whether ``stream`` is the journald stream that ``JOURNAL_STREAM`` ("DEV:INODE") names.

    systemd sets the variable for services whose output goes to the journal.
    Comparing device and inode, as systemd.exec(5) advises, ignores the
    variable when a child inherited it but writes elsewhere.
    """
    value = env.get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    if not device.isdigit() or not inode.isdigit():
        return False
    try:
        status = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return status.st_dev == int(device) and status.st_ino == int(inode)


def _open_log_file(path: Path) -> logging.Handler:
    try:
        return logging.handlers.RotatingFileHandler(
            path, maxBytes=LOG_FILE_MAX_BYTES, backupCount=LOG_FILE_BACKUPS, encoding="utf-8"
        )
    except OSError as exc:
        raise CommandError(f"failed to open log file {path}: {exc.strerror}; choose a writable path with --log-file") from None


def _syslog_handler() -> logging.Handler | None:
    if not os.path.exists(SYSLOG_SOCKET):
        return None
    try:
        handler = logging.handlers.SysLogHandler(
            address=SYSLOG_SOCKET, facility=logging.handlers.SysLogHandler.LOG_DAEMON
        )
    except OSError:
        return None
    handler.setFormatter(logging.Formatter(SYSLOG_FORMAT))
    return handler


def reset_logging() -> None:
    """Remove and close every handler that ``setup_logging`` installed."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _HANDLER_MARK, False):
            root.removeHandler(handler)
            handler.close()


def setup_logging(
    verbose: bool = False,
    log_file: Path | None = None,
    foreground: bool = True,
    *,
    stream: IO[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> None:
    """Configure the root logger for a pmzfs process; calling it again replaces the earlier set-up.

    ``verbose`` logs DEBUG from pmzfs, otherwise INFO. httpx and httpcore
    log WARNING only, even with ``verbose``, because their INFO line per
    request carries the whole file link, and a link's path grants access to
    the file. pmzfs's own DEBUG lines name the endpoint or file id instead.
    ``foreground`` False means the process has no terminal: its output goes
    to syslog unless stderr is the journal. ``stream`` (default
    ``sys.stderr``) and ``env`` (default ``os.environ``) exist for tests.
    Raises ``CommandError`` when ``log_file`` cannot be opened.
    """
    env = os.environ if env is None else env
    stream = sys.stderr if stream is None else stream
    reset_logging()

    handlers: list[logging.Handler] = []
    if stream_is_journal(stream, env):
        journal = logging.StreamHandler(stream)
        journal.setFormatter(JournalFormatter())
        handlers.append(journal)
    elif foreground:
        console = logging.StreamHandler(stream)
        console.setFormatter(logging.Formatter(TIMESTAMP_FORMAT))
        handlers.append(console)
    else:
        # Without a syslog socket stderr is the only place left, even if the
        # daemon pointed it at /dev/null.
        syslog = _syslog_handler()
        if syslog is None:
            syslog = logging.StreamHandler(stream)
            syslog.setFormatter(logging.Formatter(TIMESTAMP_FORMAT))
        handlers.append(syslog)
    if log_file is not None:
        file_handler = _open_log_file(log_file)
        file_handler.setFormatter(logging.Formatter(TIMESTAMP_FORMAT))
        handlers.append(file_handler)

    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for handler in handlers:
        setattr(handler, _HANDLER_MARK, True)
        RepeatLimiter().attach(handler)
        root.addHandler(handler)
    for name in HTTP_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.captureWarnings(True)
    # After the handlers exist, because the redaction filter goes on each of them.
    install_redaction()
