"""Contract tests of the upload URL: single-use tokens and stored names."""

from __future__ import annotations

import httpx
import pytest

from pmzfs.emulator.content import write_generated

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


def test_upload_large_file_streams_to_disk(api, emulator, tmp_path):
    source = tmp_path / "large.bin"
    with open(source, "wb") as out:
        write_generated(out, "upload", 24 * 1024 * 1024 + 3)
    info = ok(api.get("/api/folder/uploadinfo"))
    with open(source, "rb") as data:
        ok(httpx.post(info["url"], data={"token": info["token"]}, files={"file": ("large.bin", data)}, timeout=60))
    file_id = emulator.state.find("large.bin")
    assert emulator.state.file_path(file_id).read_bytes() == source.read_bytes()
    assert ok(api.get("/api/item/details", params={"id": file_id}))["size"] == source.stat().st_size


def test_upload_chunked_body(api, emulator):
    info = ok(api.get("/api/folder/uploadinfo"))
    boundary = "x-boundary"
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"token\"\r\n\r\n{info['token']}\r\n"
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"chunked.txt\"\r\n"
        "Content-Type: text/plain\r\n\r\nchunked body\r\n"
        f"--{boundary}--\r\n"
    ).encode()

    def pieces():
        for start in range(0, len(body), 7):
            yield body[start : start + 7]

    response = httpx.post(info["url"], content=pieces(), headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert response.request.headers.get("Transfer-Encoding") == "chunked"
    ok(response)
    assert emulator.state.file_bytes(emulator.state.find("chunked.txt")) == b"chunked body"


def test_upload_odd_filenames(api, emulator):
    names = ["back\\slash.txt", "new\nline.txt", "tab\there.txt", "日本語 🎬.txt", " padded .txt", "a/b.txt", "C:\\dir.txt"]
    for name in names:
        info = ok(api.get("/api/folder/uploadinfo"))
        ok(upload(info["url"], info["token"], name, name.encode()))
    stored = {entry.name: entry.id for entry in emulator.state.children(emulator.root_id)}
    assert sorted(stored) == sorted(names)
    for name in names:
        assert emulator.state.file_bytes(stored[name]) == name.encode()


def test_upload_missing_parts_rejected(api, emulator):
    info = ok(api.get("/api/folder/uploadinfo"))
    no_token = httpx.post(info["url"], files={"file": ("a.txt", b"a")})
    assert error_code(no_token) == "invalid_request"
    info = ok(api.get("/api/folder/uploadinfo"))
    no_file = httpx.post(info["url"], data={"token": info["token"]}, files={"other": ("a.txt", b"a")})
    assert error_code(no_file) == "invalid_request"
    info = ok(api.get("/api/folder/uploadinfo"))
    not_multipart = httpx.post(info["url"], data={"token": info["token"]})
    assert error_code(not_multipart) == "invalid_request"
    info = ok(api.get("/api/folder/uploadinfo"))
    empty_name = upload(info["url"], info["token"], "", b"a")
    assert error_code(empty_name) == "invalid_request"
    assert emulator.state.children(emulator.root_id) == []
    assert emulator.counters.uploads == 0


def test_upload_url_needs_post(api):
    info = ok(api.get("/api/folder/uploadinfo"))
    response = httpx.get(info["url"])
    assert response.status_code == 405
    assert response.json()["status"] == "error"


def test_upload_into_deleted_folder(api, emulator):
    folder_id = emulator.state.create_folder(None, "gone")
    info = ok(api.get("/api/folder/uploadinfo", params={"id": folder_id}))
    emulator.state.delete_folder(folder_id)
    assert error_code(upload(info["url"], info["token"], "a.txt", b"a")) == "not_found"


def test_uploadinfo_unknown_folder(api, emulator):
    file_id = emulator.state.add_file(None, "f.txt", b"f")
    assert error_code(api.get("/api/folder/uploadinfo", params={"id": "nope"})) == "not_found"
    assert error_code(api.get("/api/folder/uploadinfo", params={"id": file_id})) == "not_found"


def test_upload_beyond_space_limit(api, emulator):
    emulator.state.add_file(None, "existing.bin", b"x" * 600)
    emulator.options.space_limit = 1000
    info = ok(api.get("/api/folder/uploadinfo"))
    assert error_code(upload(info["url"], info["token"], "too-big.bin", b"y" * 401)) == "account_limit_reached"
    info = ok(api.get("/api/folder/uploadinfo"))
    ok(upload(info["url"], info["token"], "fits.bin", b"y" * 400))
    assert ok(api.get("/api/account/info"))["space_used"] == 1000


def test_upload_failure_http_5xx_then_recovers(api, emulator):
    emulator.options.upload_failure = "http_503"
    emulator.options.upload_failure_count = 2
    for _ in range(2):
        info = ok(api.get("/api/folder/uploadinfo"))
        response = upload(info["url"], info["token"], "a.txt", b"a")
        assert response.status_code == 503
        assert response.json()["code"] == "unknown_error"
        # The failed attempt used the token up.
        assert error_code(upload(info["url"], info["token"], "a.txt", b"a")) == "not_found"
    info = ok(api.get("/api/folder/uploadinfo"))
    ok(upload(info["url"], info["token"], "a.txt", b"a"))
    assert [entry.name for entry in emulator.state.children(emulator.root_id)] == ["a.txt"]


def test_upload_failure_reset_at_fraction(api, emulator):
    emulator.options.upload_failure = "reset"
    emulator.options.upload_reset_after_fraction = 0.5
    info = ok(api.get("/api/folder/uploadinfo"))
    with pytest.raises(httpx.TransportError):
        upload(info["url"], info["token"], "reset.bin", b"z" * (4 * 1024 * 1024))
    assert emulator.state.children(emulator.root_id) == []
    assert list(emulator.state.tmp_dir.iterdir()) == []
    emulator.options.upload_failure = None
    info = ok(api.get("/api/folder/uploadinfo"))
    ok(upload(info["url"], info["token"], "after.bin", b"ok"))


def test_equal_uploads_share_one_blob(api, emulator):
    for name in ("one.bin", "two.bin"):
        info = ok(api.get("/api/folder/uploadinfo"))
        ok(upload(info["url"], info["token"], name, b"same content"))
    one = emulator.state.find("one.bin")
    two = emulator.state.find("two.bin")
    assert emulator.state.file_path(one) == emulator.state.file_path(two)
    ok(api.post("/api/item/delete", data={"id": one}))
    assert emulator.state.file_bytes(two) == b"same content"
    ok(api.post("/api/item/delete", data={"id": two}))
    assert list(emulator.state.blob_dir.iterdir()) == []
