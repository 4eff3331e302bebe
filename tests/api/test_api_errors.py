"""Error envelopes, HTTP failures and transport failures: exception class and retry behaviour."""

from __future__ import annotations

import httpx
import pytest
from api_testing import ERROR_CODES, fast_retry
from fake_premiumize import API_KEY, BASE_URL, FakeService, envelope, fail_after, fail_before, http_status

from pmzfs.api import errors
from pmzfs.api.client import PremiumizeClient

@pytest.mark.parametrize(("code", "cls", "retried"), ERROR_CODES)
async def test_error_code_class_and_retry(client: PremiumizeClient, service: FakeService, code, cls, retried):
    service.fail("account/info", envelope(code))
    if retried:
        info = await client.account_info()
        assert info.customer_id == "1234567"
        assert len(service.calls("account/info")) == 2
    else:
        with pytest.raises(cls) as caught:
            await client.account_info()
        assert type(caught.value) is cls
        assert caught.value.code == code
        assert caught.value.endpoint == "account/info"
        assert len(service.calls("account/info")) == 1


@pytest.mark.parametrize(("code", "cls", "retried"), [c for c in ERROR_CODES if c[2]])
async def test_retryable_code_gives_up(client: PremiumizeClient, service: FakeService, code, cls, retried):
    service.fail("account/info", *[envelope(code)] * 20)
    with pytest.raises(cls):
        await client.account_info()
    limit = client.retry.rate_limit_attempts if code == "rate_limit_reached" else client.retry.max_attempts
    assert len(service.calls("account/info")) == limit


async def test_undocumented_code_is_plain_error(client: PremiumizeClient, service: FakeService):
    service.fail("account/info", envelope("brand_new_code"))
    with pytest.raises(errors.APIError) as caught:
        await client.account_info()
    assert type(caught.value) is errors.APIError
    assert caught.value.code == "brand_new_code"
    assert errors.errno_for(caught.value) == 5


async def test_http_500_json_envelope_retried(client: PremiumizeClient, service: FakeService):
    body = '{"status":"error","code":"unknown_error","message":"boom"}'
    service.fail("folder/list", http_status(500, body))
    listing = await client.folder_list()
    assert listing.folder_id == service.root_id
    assert len(service.calls("folder/list")) == 2


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_http_5xx_without_json_is_unknown(client: PremiumizeClient, service: FakeService, status):
    service.fail("folder/list", *[http_status(status, "<html>Bad gateway</html>", "text/html")] * 10)
    with pytest.raises(errors.UnknownError, match=f"HTTP {status} server error"):
        await client.folder_list()
    assert len(service.calls("folder/list")) == client.retry.max_attempts


async def test_html_200_is_unknown_with_clear_message(client: PremiumizeClient, service: FakeService):
    service.fail("folder/list", *[http_status(200, "<html>Login to the Wi-Fi</html>", "text/html")] * 10)
    with pytest.raises(errors.UnknownError) as caught:
        await client.folder_list()
    message = str(caught.value)
    assert "response body is not JSON (content type text/html)" in message
    assert "Wi-Fi" not in message


async def test_html_404_not_retried(client: PremiumizeClient, service: FakeService):
    service.fail("folder/list", http_status(404, "<html>Not Found</html>", "text/html"))
    with pytest.raises(errors.UnknownError, match="check that http://127.0.0.1:9 is the premiumize API"):
        await client.folder_list()
    assert len(service.calls("folder/list")) == 1


async def test_json_without_status_is_unknown(client: PremiumizeClient, service: FakeService):
    service.fail("folder/list", *[http_status(200, "{}")] * 10)
    with pytest.raises(errors.UnknownError, match="without a valid status"):
        await client.folder_list()


@pytest.mark.parametrize(
    "exception",
    [httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadTimeout, httpx.ReadError, httpx.RemoteProtocolError],
)
async def test_transport_failure_retried(client: PremiumizeClient, service: FakeService, exception):
    service.fail("folder/list", fail_before(exception), fail_before(exception))
    listing = await client.folder_list()
    assert listing.folder_id == service.root_id
    assert len(service.calls("folder/list")) == 3


async def test_transport_failure_gives_up(client: PremiumizeClient, service: FakeService):
    service.fail("folder/list", *[fail_before(httpx.ConnectError)] * 10)
    with pytest.raises(errors.TransportError) as caught:
        await client.folder_list()
    assert caught.value.maybe_applied is False
    assert "could not connect to http://127.0.0.1:9" in str(caught.value)


async def test_read_timeout_marks_maybe_applied(client: PremiumizeClient, service: FakeService):
    service.fail("folder/list", *[fail_after(httpx.ReadTimeout)] * 10)
    with pytest.raises(errors.TransportError) as caught:
        await client.folder_list()
    assert caught.value.maybe_applied is True
    assert "ReadTimeout" in str(caught.value)


async def test_total_time_bound_stops_retries(service: FakeService, autojump_clock):
    retry = fast_retry(max_attempts=100, base_delay=1.0, max_delay=1.0, max_elapsed=5.0)
    service.fail("folder/list", *[envelope("transient_error")] * 100)
    async with PremiumizeClient(BASE_URL, API_KEY, transport=service.transport, retry=retry, rate=0) as api:
        with pytest.raises(errors.TransientError):
            await api.folder_list()
    attempts = len(service.calls("folder/list"))
    assert 2 <= attempts < 100


async def test_authentication_failure_message(service: FakeService):
    async with PremiumizeClient(BASE_URL, "wrong-key-abcdef", transport=service.transport) as api:
        with pytest.raises(errors.AuthenticationFailed) as caught:
            await api.account_info()
    assert "wrong-key-abcdef" not in str(caught.value)
    assert len(service.requests) == 1
