"""Contract tests of the upload URL: single-use tokens and stored names."""

from __future__ import annotations

import httpx

from pmzfs.emulator.testing import error_code
from pmzfs.emulator.testing import success as ok


def upload(url, token, name, data):
    return httpx.post(url, data={"token": token}, files={"file": (name, data)}, timeout=10)


def test_upload_stores_file_under_filename(api, emulator):
    info = ok(api.get("/api/folder/uploadinfo"))
    assert info["url"].startswith(emulator.base_url + "/upload/")
    response = upload(info["url"], info["token"], "Ünïcödé \"quoted\" report.txt", b"payload")
    assert response.status_code == 200
    assert response.json() == {"status": "success"}
    file_id = emulator.state.find("Ünïcödé \"quoted\" report.txt")
    assert file_id is not None
    assert emulator.state.file_bytes(file_id) == b"payload"
    assert emulator.counters.uploads == 1
    assert emulator.counters.upload_bytes == 7


def test_upload_into_folder(api, emulator):
    folder_id = emulator.state.create_folder(None, "Inbox")
    info = ok(api.get("/api/folder/uploadinfo", params={"id": folder_id}))
    ok(upload(info["url"], info["token"], "a.txt", b"a"))
    assert emulator.state.find("Inbox/a.txt") is not None


def test_upload_token_reuse_rejected(api, emulator):
    info = ok(api.get("/api/folder/uploadinfo"))
    ok(upload(info["url"], info["token"], "first.txt", b"1"))
    assert error_code(upload(info["url"], info["token"], "second.txt", b"2")) == "not_found"
    assert emulator.state.find("second.txt") is None


def test_upload_wrong_token_rejected(api, emulator):
    info = ok(api.get("/api/folder/uploadinfo"))
    assert error_code(upload(info["url"], "not-the-token", "x.txt", b"x")) == "not_found"
    assert emulator.state.find("x.txt") is None
