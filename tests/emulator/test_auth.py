"""Contract tests of credentials and the OAuth device-code flow."""

from __future__ import annotations

import time

import httpx
import pytest

from pmzfs.emulator.testing import error_code
from pmzfs.emulator.testing import success as ok

CLIENT_ID = "pmzfs-test"


def start_flow(anonymous):
    response = anonymous.post("/token", data={"response_type": "device_code", "client_id": CLIENT_ID})
    assert response.status_code == 200, response.text
    return response.json()


def poll(anonymous, device_code, client_id=CLIENT_ID):
    return anonymous.post("/token", data={"grant_type": "device_code", "code": device_code, "client_id": client_id})


def oauth_error(response):
    assert response.status_code == 400, response.text
    document = response.json()
    assert document["error_description"]
    return document["error"]


def test_bearer_key_accepted(api):
    ok(api.get("/api/account/info"))


def test_legacy_apikey_parameter_accepted(anonymous, emulator):
    ok(anonymous.get("/api/account/info", params={"apikey": emulator.api_key}))
    ok(anonymous.post("/api/folder/create", data={"apikey": emulator.api_key, "name": "via body"}))


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-key"},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dGVzdC1rZXk6"},
        {"Authorization": "test-key"},
    ],
)
def test_bad_credentials_rejected(anonymous, headers):
    response = anonymous.get("/api/folder/list", headers=headers)
    assert error_code(response) == "authentication_failed"
    assert "test-key" not in response.text


def test_key_change_takes_effect(api, emulator):
    emulator.options.api_key = "rotated"
    assert error_code(api.get("/api/account/info")) == "authentication_failed"
    ok(api.get("/api/account/info", headers={"Authorization": "Bearer rotated"}))


def test_device_flow_success_token_works(anonymous, emulator):
    flow = start_flow(anonymous)
    assert flow["verification_uri"] == emulator.base_url + "/device"
    assert set(flow) == {"verification_uri", "user_code", "device_code", "expires_in", "interval"}
    assert oauth_error(poll(anonymous, flow["device_code"])) == "authorization_pending"
    emulator.approve_device(flow["user_code"])
    token = poll(anonymous, flow["device_code"])
    assert token.status_code == 200
    document = token.json()
    assert document["token_type"] == "Bearer"
    assert document["scope"] == "full"
    assert document["expires_in"] > 0
    headers = {"Authorization": f"Bearer {document['access_token']}"}
    ok(anonymous.get("/api/account/info", headers=headers))
    # The device code is used up.
    assert oauth_error(poll(anonymous, flow["device_code"])) == "invalid_grant"


def test_device_page_approves_and_denies(anonymous):
    page = anonymous.get("/device")
    assert page.status_code == 200
    assert "user_code" in page.text
    approved = start_flow(anonymous)
    assert anonymous.post("/device", data={"user_code": approved["user_code"].upper()}).status_code == 200
    assert poll(anonymous, approved["device_code"]).status_code == 200
    denied = start_flow(anonymous)
    assert anonymous.post("/device", data={"user_code": denied["user_code"], "action": "deny"}).status_code == 200
    assert oauth_error(poll(anonymous, denied["device_code"])) == "access_denied"
    assert anonymous.post("/device", data={"user_code": "zzzz-zzzz"}).status_code == 404


def test_device_flow_access_denied(anonymous, emulator):
    flow = start_flow(anonymous)
    emulator.deny_device(flow["user_code"])
    assert oauth_error(poll(anonymous, flow["device_code"])) == "access_denied"


def test_device_flow_slow_down(anonymous, emulator):
    emulator.options.device_poll_interval = 3600
    flow = start_flow(anonymous)
    assert flow["interval"] == 3600
    assert oauth_error(poll(anonymous, flow["device_code"])) == "slow_down"


def test_device_flow_invalid_grant_cases(anonymous, emulator):
    flow = start_flow(anonymous)
    assert oauth_error(poll(anonymous, "no-such-code")) == "invalid_grant"
    assert oauth_error(poll(anonymous, flow["device_code"], client_id="other-client")) == "invalid_grant"
    emulator.options.device_code_lifetime = 0
    expiring = start_flow(anonymous)
    time.sleep(0.01)
    assert oauth_error(poll(anonymous, expiring["device_code"])) == "invalid_grant"
    with pytest.raises(ValueError, match="no pending device code"):
        emulator.approve_device(expiring["user_code"])


def test_device_auto_approve(anonymous, emulator):
    emulator.options.device_auto = "approve"
    flow = start_flow(anonymous)
    assert poll(anonymous, flow["device_code"]).status_code == 200


def test_token_endpoint_bad_requests(anonymous):
    assert oauth_error(anonymous.post("/token", data={"response_type": "device_code"})) == "invalid_request"
    assert oauth_error(anonymous.post("/token", data={"response_type": "code", "client_id": "c"})) == "unsupported_response_type"
    assert oauth_error(anonymous.post("/token", data={"grant_type": "password", "client_id": "c"})) == "unsupported_grant_type"
    assert oauth_error(anonymous.post("/token", data={})) == "invalid_request"
    assert oauth_error(anonymous.get("/token")) == "invalid_request"


def test_expired_access_token_rejected(anonymous, emulator):
    emulator.options.token_lifetime = 0
    emulator.options.device_auto = "approve"
    flow = start_flow(anonymous)
    token = poll(anonymous, flow["device_code"]).json()["access_token"]
    response = anonymous.get("/api/account/info", headers={"Authorization": f"Bearer {token}"})
    assert error_code(response) == "authentication_failed"


def test_unknown_api_path_json_404(api):
    response = api.get("/api/no/such/endpoint")
    assert response.status_code == 404
    assert response.json()["status"] == "error"
    assert response.json()["code"] == "not_found"


def test_wrong_method_rejected(api):
    assert error_code(api.get("/api/folder/create", params={"name": "x"})) == "invalid_request"
    assert error_code(api.post("/api/folder/list")) == "invalid_request"
    response = api.put("/api/folder/list")
    assert error_code(response) == "invalid_request"


def test_http_client_without_keep_alive(emulator):
    headers = {"Authorization": f"Bearer {emulator.api_key}", "Connection": "close"}
    response = httpx.get(emulator.base_url + "/api/account/info", headers=headers)
    ok(response)
