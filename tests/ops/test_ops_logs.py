"""Logging set-up: journald format, timestamps, levels, repeat limiting and redaction."""

from __future__ import annotations

import io
import logging
import logging.handlers
import os
import re

import pytest

from pmzfs import redact
from pmzfs.cli import CommandError
from pmzfs.logs import JournalFormatter, RepeatLimiter, journal_priority, reset_logging, setup_logging

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")


@pytest.fixture(autouse=True)
def restore_logging():
    root = logging.getLogger()
    level = root.level
    http_levels = {name: logging.getLogger(name).level for name in ("httpx", "httpcore")}
    try:
        yield
    finally:
        reset_logging()
        root.setLevel(level)
        for name, value in http_levels.items():
            logging.getLogger(name).setLevel(value)
        logging.captureWarnings(False)


def journal_env(stream) -> dict[str, str]:
    status = os.fstat(stream.fileno())
    return {"JOURNAL_STREAM": f"{status.st_dev}:{status.st_ino}"}


def test_journal_format_has_priority_no_timestamp(tmp_path):
    # A logger outside "pmzfs", so its ERROR line is not an unexpected pmzfs error.
    with open(tmp_path / "journal", "w+") as stream:
        setup_logging(verbose=True, foreground=True, stream=stream, env=journal_env(stream))
        logger = logging.getLogger("opstest.journal")
        logger.warning("disk %s is slow", "sda")
        logger.info("mounted")
        logger.debug("details")
        logger.error("upload failed\nsecond line")
        stream.seek(0)
        lines = stream.read().splitlines()
    assert lines[0] == "<4>opstest.journal: disk sda is slow"
    assert lines[1] == "<6>opstest.journal: mounted"
    assert lines[2] == "<7>opstest.journal: details"
    assert lines[3] == "<3>opstest.journal: upload failed"
    assert lines[4] == "<3>second line"


def test_journal_stream_mismatch_uses_timestamps(tmp_path):
    with open(tmp_path / "other", "w+") as other, open(tmp_path / "stderr", "w+") as stream:
        setup_logging(foreground=True, stream=stream, env=journal_env(other))
        logging.getLogger("opstest.journal").info("mounted")
        stream.seek(0)
        line = stream.read().splitlines()[0]
    assert TIMESTAMP.match(line), line
    assert line.endswith("INFO    opstest.journal: mounted")


def test_journal_priority_table():
    assert journal_priority(logging.CRITICAL) == 2
    assert journal_priority(logging.ERROR) == 3
    assert journal_priority(logging.WARNING) == 4
    assert journal_priority(logging.INFO) == 6
    assert journal_priority(logging.DEBUG) == 7


def test_foreground_levels_without_verbose():
    stream = io.StringIO()
    setup_logging(verbose=False, foreground=True, stream=stream, env={})
    logging.getLogger("pmzfs.test_levels").debug("hidden debug")
    logging.getLogger("pmzfs.test_levels").info("shown info")
    logging.getLogger("httpx").info("HTTP Request: GET http://127.0.0.1/api/folder/list")
    logging.getLogger("httpx").warning("httpx warning")
    text = stream.getvalue()
    assert "hidden debug" not in text
    assert "shown info" in text
    assert "HTTP Request" not in text
    assert "httpx warning" in text


def test_verbose_shows_debug_hides_links():
    stream = io.StringIO()
    setup_logging(verbose=True, foreground=True, stream=stream, env={})
    logging.getLogger("pmzfs.test_levels").debug("shown debug")
    logging.getLogger("httpx").info("HTTP Request: GET http://127.0.0.1/dl/abc/1/sig/a.mkv")
    text = stream.getvalue()
    assert "shown debug" in text
    assert "/dl/abc" not in text


def test_setup_twice_keeps_one_handler():
    stream = io.StringIO()
    setup_logging(foreground=True, stream=stream, env={})
    setup_logging(foreground=True, stream=stream, env={})
    logging.getLogger("pmzfs.test_twice").info("once")
    assert stream.getvalue().count("once") == 1


def test_log_file_has_timestamps(tmp_path):
    path = tmp_path / "pmzfs.log"
    setup_logging(foreground=True, log_file=path, stream=io.StringIO(), env={})
    logging.getLogger("pmzfs.test_file").warning("to the file")
    reset_logging()
    line = path.read_text().splitlines()[0]
    assert TIMESTAMP.match(line), line
    assert "WARNING pmzfs.test_file: to the file" in line


def test_unwritable_log_file_is_clear_error(tmp_path):
    path = tmp_path / "missing-dir" / "pmzfs.log"
    with pytest.raises(CommandError) as info:
        setup_logging(foreground=True, log_file=path, stream=io.StringIO(), env={})
    assert str(path) in str(info.value)
    assert "--log-file" in str(info.value)


def test_background_without_journal_uses_syslog_or_stderr():
    stream = io.StringIO()
    setup_logging(foreground=False, stream=stream, env={})
    ours = [h for h in logging.getLogger().handlers if getattr(h, "_pmzfs_handler", False)]
    assert len(ours) == 1
    if os.path.exists("/dev/log"):
        assert isinstance(ours[0], logging.handlers.SysLogHandler)
    else:
        logging.getLogger("pmzfs.test_background").info("no syslog socket")
        assert "no syslog socket" in stream.getvalue()


def test_repeats_limited_then_summarized():
    now = [1000.0]
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    RepeatLimiter(limit=3, period=60.0, clock=lambda: now[0]).attach(handler)
    logger = logging.getLogger("pmzfs.test_repeat")
    logger.addHandler(handler)
    logger.propagate = False

    def retry(index):
        logger.warning("retrying %s", index)

    try:
        for index in range(8):
            retry(index)
        logger.warning("another message")
        now[0] += 61
        retry(99)
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    lines = stream.getvalue().splitlines()
    assert lines[:3] == ["retrying 0", "retrying 1", "retrying 2"]
    assert lines[3] == "another message"
    assert lines[4] == "suppressed 5 similar messages in the last 61 s, the last: 'retrying 7'"
    assert lines[5] == "retrying 99"
    assert len(lines) == 6


def test_repeat_limiter_installed_by_setup():
    stream = io.StringIO()
    setup_logging(foreground=True, stream=stream, env={})
    for index in range(25):
        logging.getLogger("pmzfs.test_repeat_setup").info("same template %d", index)
    assert stream.getvalue().count("same template") == 10


def test_redaction_installed_by_setup():
    secret = "ops-test-secret-key-1234"
    redact.register_secret(secret)
    stream = io.StringIO()
    setup_logging(foreground=True, stream=stream, env={})
    logging.getLogger("pmzfs.test_redact").info("using key %s", secret)
    logging.getLogger("httpx").warning("GET %s", f"http://127.0.0.1/api?apikey={secret}")
    text = stream.getvalue()
    assert secret not in text
    assert "using key ***" in text
    assert "apikey=***" in text


def test_journal_formatter_alone():
    record = logging.LogRecord("pmzfs.x", logging.WARNING, __file__, 1, "a\nb", None, None)
    assert JournalFormatter().format(record) == "<4>pmzfs.x: a\n<4>b"
