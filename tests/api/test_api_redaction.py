"""No API key or token in logs or exception strings: the redaction filter and a whole logged session."""

from __future__ import annotations

import logging

import httpx
import pytest
import trio
from api_testing import fast_retry

from pmzfs import auth, redact
from pmzfs.api import errors
from pmzfs.api.client import PremiumizeClient
from pmzfs.api.models import UploadInfo
from pmzfs.emulator.testing import emulator_for_tests

API_KEY = "session-api-key-0123456789"


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def capture_all():
    """Capture every record of pmzfs, httpx and httpcore at DEBUG, formatted as a handler would."""
    redact.install_redaction()
    handler = _Capture()
    loggers = [logging.getLogger(name) for name in ("pmzfs", "httpx", "httpcore")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
    try:
        yield handler
    finally:
        for logger, level in zip(loggers, levels):
            logger.removeHandler(handler)
            logger.setLevel(level)


class RecordingClient(PremiumizeClient):
    """The real client, remembering each upload token it receives so the test can look for it."""

    tokens: list[str]

    async def folder_uploadinfo(self, id: str | None = None) -> UploadInfo:
        info = await super().folder_uploadinfo(id)
        self.tokens.append(info.token)
        return info


def test_filter_masks_registered_secret():
    redact.register_secret("registered-secret-value")
    record = logging.LogRecord("pmzfs.x", logging.INFO, __file__, 1, "key %s in %r", ("registered-secret-value", {"k": "registered-secret-value"}), None)
    redact.RedactingFilter().filter(record)
    assert record.getMessage() == "key *** in {'k': '***'}"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("GET /x?apikey=%s", "GET /x?apikey=***"),
        ("token=%s done", "token=*** done"),
        ("device_code=%s", "device_code=***"),
    ],
)
def test_filter_keeps_template_placeholders(template, expected):
    record = logging.LogRecord("pmzfs.x", logging.INFO, __file__, 1, template, ("abcdef123",), None)
    redact.RedactingFilter().filter(record)
    message = record.getMessage()
    assert message == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc.def-ghi", "Authorization: Bearer ***"),
        ("GET /api/x?apikey=abcdef&id=1", "GET /api/x?apikey=***&id=1"),
        ("POST /upload?token=xyz123 HTTP/1.1", "POST /upload?token=*** HTTP/1.1"),
        ('{"access_token": "tok-123456"}', '{"access_token": "***"}'),
        ("nothing secret here", "nothing secret here"),
    ],
)
def test_redact_text_patterns(text, expected):
    assert redact.redact_text(text) == expected


def test_short_values_not_registered():
    redact.register_secret("ab")
    assert redact.redact_text("ab cab") == "ab cab"


def test_temporary_secrets_bounded():
    for index in range(redact.MAX_TEMPORARY_SECRETS + 10):
        redact.register_secret(f"temporary-token-{index:05d}", temporary=True)
    assert redact.redact_text("temporary-token-00000") == "temporary-token-00000"
    assert redact.redact_text(f"temporary-token-{redact.MAX_TEMPORARY_SECRETS + 9:05d}") == "***"


def test_exception_traceback_masked(capture_all):
    redact.register_secret("traceback-secret-123")
    try:
        raise RuntimeError("failed with traceback-secret-123")
    except RuntimeError:
        logging.getLogger("pmzfs.test").debug("caught", exc_info=True)
    text = "\n".join(capture_all.lines)
    assert "traceback-secret-123" not in text
    assert "failed with ***" in text


def test_child_logger_masked(capture_all):
    redact.register_secret("child-logger-secret")
    logging.getLogger("httpcore.http11").debug("header %s", "child-logger-secret")
    logging.getLogger("pmzfs.api.client").debug("value child-logger-secret")
    assert capture_all.lines == ["httpcore.http11 DEBUG header ***", "pmzfs.api.client DEBUG value ***"]


async def test_whole_session_leaks_nothing(capture_all, tmp_path):
    secrets: list[str] = [API_KEY]
    messages: list[str] = []
    source = tmp_path / "upload.bin"
    source.write_bytes(b"payload" * 10_000)

    with emulator_for_tests(tmp_path / "emulator", api_key=API_KEY) as emu:
        async with RecordingClient(emu.base_url, None, retry=fast_retry(), rate=0) as anonymous:
            anonymous.tokens = []
            code = await anonymous.device_code("pmzfs")
            secrets.append(code.device_code)

            async def approve() -> None:
                await trio.sleep(0.2)
                emu.approve_device(code.user_code)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(approve)
                token = None
                while token is None:
                    try:
                        token = await anonymous.device_token("pmzfs", code.device_code)
                    except errors.OAuthError as exc:
                        messages += [str(exc), repr(exc)]
                        await trio.sleep(0.1)
            secrets.append(token.access_token)
            messages.append(repr(token))
            try:
                await anonymous.account_info()
            except errors.AuthenticationFailed as exc:
                messages += [str(exc), repr(exc)]

        auth.store_token(token, auth.token_path({"XDG_CONFIG_HOME": str(tmp_path)}), emu.base_url)
        credential = auth.resolve_credential(None, None, {"XDG_CONFIG_HOME": str(tmp_path)})
        messages += [str(credential), repr(credential)]

        for secret_source in (credential, API_KEY):
            async with RecordingClient(emu.base_url, secret_source, retry=fast_retry(), rate=0) as api:
                api.tokens = []
                messages.append(repr(api))
                await api.account_info()
                folder = await api.folder_create(f"Folder {len(messages)}")
                await api.folder_list(folder)
                emu.options.upload_failure = "http_500"
                emu.options.upload_failure_count = 1
                file_id = await api.upload_file(folder, source, "upload.bin")
                details = await api.item_details(file_id)
                messages.append(repr(details))
                emu.fail_next("folder/list", "http_500", count=api.retry.max_attempts)
                try:
                    await api.folder_list(folder)
                except errors.UnknownError as exc:
                    messages += [str(exc), repr(exc)]
                emu.fail_next("item/details", "not_found")
                try:
                    await api.item_details(file_id)
                except errors.NotFound as exc:
                    messages += [str(exc), repr(exc)]
                secrets.extend(api.tokens)
                assert len(api.tokens) == 2

        async with PremiumizeClient(emu.base_url, "rejected-key-0123456789", retry=fast_retry()) as wrong:
            secrets.append("rejected-key-0123456789")
            try:
                await wrong.account_info()
            except errors.AuthenticationFailed as exc:
                messages += [str(exc), repr(exc)]

    async with PremiumizeClient("http://127.0.0.1:1", API_KEY, retry=fast_retry(max_attempts=2)) as refused:
        try:
            await refused.account_info()
        except errors.TransportError as exc:
            messages += [str(exc), repr(exc)]

    log_text = "\n".join(capture_all.lines)
    # The session did log at DEBUG from all three libraries.
    assert "pmzfs.api.client DEBUG GET account/info -> HTTP 200 success" in log_text
    assert "httpx INFO HTTP Request: POST" in log_text
    assert "httpcore." in log_text
    assert "retrying" in log_text
    for secret in secrets:
        assert len(secret) >= redact.MIN_SECRET_LENGTH
        assert secret not in log_text
        for message in messages:
            assert secret not in message


async def test_httpx_request_log_masks_query_token(capture_all):
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"status": "success"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as raw:
        await raw.get("http://127.0.0.1:9/api/account/info?apikey=legacy-query-key")
    assert capture_all.lines
    assert all("legacy-query-key" not in line for line in capture_all.lines)
