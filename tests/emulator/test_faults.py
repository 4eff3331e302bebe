"""Fault injection and counters."""

from __future__ import annotations

import pytest

from pmzfs.emulator import Emulator, EmulatorOptions
from pmzfs.emulator.options import ERROR_CODES
from pmzfs.emulator.testing import error_code
from pmzfs.emulator.testing import success as ok


@pytest.mark.parametrize("code", sorted(ERROR_CODES))
def test_fail_next_every_code(api, emulator, code):
    emulator.fail_next("folder/list", code)
    assert error_code(api.get("/api/folder/list")) == code
    ok(api.get("/api/folder/list"))


def test_fail_next_count_and_other_endpoints(api, emulator):
    emulator.fail_next("folder/create", "service_down", count=2)
    ok(api.get("/api/folder/list"))
    assert error_code(api.post("/api/folder/create", data={"name": "a"})) == "service_down"
    assert error_code(api.post("/api/folder/create", data={"name": "a"})) == "service_down"
    ok(api.post("/api/folder/create", data={"name": "a"}))
    assert [entry.name for entry in emulator.state.children(emulator.root_id)] == ["a"]


def test_fail_next_http_500_envelope(api, emulator):
    emulator.fail_next("item/listall", "http_500")
    response = api.get("/api/item/listall")
    assert response.status_code == 500
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == {"status": "error", "message": "injected HTTP 500", "code": "unknown_error"}


def test_fail_next_rejects_unknown_names(emulator):
    with pytest.raises(ValueError, match="unknown endpoint"):
        emulator.fail_next("folder/lst", "service_down")
    with pytest.raises(ValueError, match="unknown error code"):
        emulator.fail_next("folder/list", "teapot")


def run_with_rates(api, emulator, calls=40):
    emulator.options.error_rates = {"folder/list": {"service_down": 0.5}}
    outcomes = []
    for _ in range(calls):
        document = api.get("/api/folder/list").json()
        outcomes.append(document.get("code", "success"))
    return outcomes


def test_error_rates_repeat_with_seed(api, emulator):
    emulator.options.seed = 7
    first = run_with_rates(api, emulator)
    assert {"success", "service_down"} == set(first)
    # A changed seed restarts the random sequence at the next draw.
    emulator.options.seed = 8
    run_with_rates(api, emulator, calls=1)
    emulator.options.seed = 7
    assert run_with_rates(api, emulator) == first


def test_error_rate_wildcard_and_http_500(api, emulator):
    emulator.options.error_rates = {"*": {"http_500": 1.0}}
    assert api.get("/api/account/info").status_code == 500
    assert api.post("/api/folder/create", data={"name": "x"}).status_code == 500
    emulator.options.error_rates = {}
    ok(api.get("/api/account/info"))


def test_rate_limit(api, emulator):
    emulator.options.requests_per_second = 3
    codes = [api.get("/api/account/info").json().get("code", "success") for _ in range(5)]
    assert codes[:3] == ["success"] * 3
    assert "rate_limit_reached" in codes[3:]
    emulator.options.requests_per_second = None
    ok(api.get("/api/account/info"))


def test_api_latency_setting_serves_normally(api, emulator):
    emulator.options.api_latency = 0.001
    ok(api.get("/api/account/info"))


def test_counters_count_and_reset(api, emulator):
    emulator.counters.reset()
    api.get("/api/folder/list")
    api.get("/api/folder/list")
    api.get("/api/item/details", params={"id": "missing"})
    assert emulator.counters.api_calls["folder/list"] == 2
    assert emulator.counters.api_calls["item/details"] == 1
    assert emulator.counters.api_calls["folder/create"] == 0
    snapshot = emulator.counters.snapshot()
    assert snapshot["api_calls"] == {"folder/list": 2, "item/details": 1}
    emulator.counters.reset()
    assert emulator.counters.api_calls["folder/list"] == 0
    assert emulator.counters.new_connections == 0


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"api_latency": -1}, "api_latency"),
        ({"link_rate": 0}, "link_rate"),
        ({"link_reset_after_fraction": 1.5}, "link_reset_after_fraction"),
        ({"upload_failure": "explode"}, "upload_failure"),
        ({"device_auto": "maybe"}, "device_auto"),
        ({"error_rates": {"folder/list": {"service_down": 2}}}, "probability"),
        ({"error_rates": {"nope": {"service_down": 0.1}}}, "unknown endpoint"),
    ],
)
def test_invalid_options_rejected(settings, message):
    with pytest.raises(ValueError, match=message):
        Emulator(options=EmulatorOptions(**settings))
