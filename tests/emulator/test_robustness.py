"""Bad, hostile and malformed input gets a documented error response, and the emulator keeps serving."""

from __future__ import annotations

import json
import socket

import pytest

from pmzfs.emulator import endpoints
from pmzfs.emulator.testing import error_code
from pmzfs.emulator.testing import success as ok


def raw_request(emulator, data: bytes) -> bytes:
    """Send raw bytes and return everything the server sends back before it closes the connection."""
    with socket.create_connection((emulator.host, emulator.port), timeout=10) as connection:
        connection.sendall(data)
        connection.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def json_body(raw: bytes) -> dict:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"application/json" in head, head
    return json.loads(body)


@pytest.fixture(autouse=True)
def still_serving(api):
    yield
    ok(api.get("/api/account/info"))


def test_invalid_utf8_query(api):
    assert error_code(api.get("/api/folder/list?path=%FF%FE")) == "invalid_request"


def test_invalid_utf8_body(api):
    response = api.post(
        "/api/folder/create", content=b"name=\xff\xfe", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert error_code(response) == "invalid_request"


def test_nul_in_name_parameter(api):
    assert error_code(api.post("/api/folder/create", content=b"name=a%00b",
                               headers={"Content-Type": "application/x-www-form-urlencoded"})) == "invalid_request"


@pytest.mark.parametrize("value", ["../../etc/passwd", "/", "..", "%2e%2e", "a" * 5000, "\\x00"])
def test_hostile_ids_not_found(api, value):
    assert error_code(api.get("/api/item/details", params={"id": value})) == "not_found"
    assert error_code(api.get("/api/folder/list", params={"id": value})) == "not_found"


def test_traversal_path_not_found(api):
    assert error_code(api.get("/api/folder/list", params={"path": "../../etc"})) == "not_found"


def test_empty_parameters(api):
    assert error_code(api.get("/api/item/details", params={"id": ""})) == "invalid_request"
    assert error_code(api.post("/api/item/rename", data={"id": "", "name": "x"})) == "invalid_request"
    assert error_code(api.post("/api/folder/delete", data={})) == "invalid_request"
    assert error_code(api.get("/api/folder/search", params={"q": ""})) == "invalid_request"


def test_oversized_api_body(api, emulator):
    emulator.options.max_api_body = 1024
    response = api.post("/api/folder/create", data={"name": "x" * 5000})
    assert error_code(response) == "invalid_request"
    multipart = api.post("/api/transfer/create", files={"file": ("big.torrent", b"x" * 5000)})
    assert error_code(multipart) == "invalid_request"


def test_huge_body_is_drained(api):
    body = b"name=" + b"x" * (20 * 1024 * 1024)
    response = api.post("/api/folder/create", content=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert error_code(response) == "invalid_request"


def test_malformed_multipart(api):
    response = api.post(
        "/api/transfer/create",
        content=b"--b\r\nthis is not a part header\r\n\r\n",
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert error_code(response) == "invalid_request"
    no_boundary = api.post("/api/transfer/create", content=b"x", headers={"Content-Type": "multipart/form-data"})
    assert error_code(no_boundary) == "invalid_request"


def test_invalid_content_length(emulator):
    raw = raw_request(emulator, b"POST /api/folder/create HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
    assert json_body(raw)["code"] == "invalid_request"


def test_truncated_body(emulator):
    raw = raw_request(
        emulator,
        b"POST /api/folder/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: 100\r\n\r\nname=short",
    )
    assert json_body(raw)["status"] == "error"


def test_garbage_request_line(emulator):
    raw = raw_request(emulator, b"THIS IS NOT HTTP\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 400")
    assert json_body(raw)["status"] == "error"


def test_overlong_request_line(emulator):
    raw = raw_request(emulator, b"GET /api/folder/list?id=" + b"a" * 70000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 414")
    assert json_body(raw)["status"] == "error"


def test_bad_chunked_encoding(emulator):
    raw = raw_request(
        emulator,
        b"POST /api/folder/create HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n",
    )
    assert json_body(raw)["code"] == "invalid_request"


def test_unknown_http_method(emulator):
    raw = raw_request(emulator, b"BREW /api/folder/list HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 501")
    assert json_body(raw)["status"] == "error"


def test_internal_failure_sends_500_envelope(api, monkeypatch, expected_errors):
    def broken(emu, params):
        raise RuntimeError("boom")

    monkeypatch.setitem(endpoints.ENDPOINTS, "account/info", ("GET", broken))
    response = api.get("/api/account/info")
    assert response.status_code == 500
    assert response.json() == {"status": "error", "message": "internal server error", "code": "unknown_error"}
    assert "boom" not in response.text
