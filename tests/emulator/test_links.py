"""Contract tests of file links: Range, HEAD, 416, deleted files, expiry."""

from __future__ import annotations

import pytest

from pmzfs.emulator.testing import success as ok

CONTENT = bytes(range(256)) * 40  # 10240 bytes


@pytest.fixture
def link(api, emulator):
    file_id = emulator.state.add_file(None, "data.bin", CONTENT)
    return ok(api.get("/api/item/details", params={"id": file_id}))["link"]


def test_full_body_without_range(anonymous, link):
    response = anonymous.get(link)
    assert response.status_code == 200
    assert response.content == CONTENT
    assert response.headers["Content-Length"] == str(len(CONTENT))
    assert response.headers["Accept-Ranges"] == "bytes"


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-0", 0, 0),
        ("bytes=100-199", 100, 199),
        ("bytes=10000-", 10000, 10239),
        ("bytes=-40", 10200, 10239),
        ("bytes=10200-99999", 10200, 10239),
        ("bytes=-99999", 0, 10239),
        ("bytes=5-9, 20-30", 5, 9),
    ],
)
def test_range_forms(anonymous, link, header, start, end):
    response = anonymous.get(link, headers={"Range": header})
    assert response.status_code == 206
    assert response.content == CONTENT[start : end + 1]
    assert response.headers["Content-Range"] == f"bytes {start}-{end}/{len(CONTENT)}"
    assert response.headers["Content-Length"] == str(end - start + 1)


@pytest.mark.parametrize("header", ["bytes=10240-", "bytes=20000-20010", "bytes=-0"])
def test_unsatisfiable_range_416(anonymous, link, header):
    response = anonymous.get(link, headers={"Range": header})
    assert response.status_code == 416
    assert response.headers["Content-Range"] == f"bytes */{len(CONTENT)}"


@pytest.mark.parametrize("header", ["bytes=abc", "items=0-5", "bytes=9-2", "bytes="])
def test_malformed_range_ignored(anonymous, link, header):
    response = anonymous.get(link, headers={"Range": header})
    assert response.status_code == 200
    assert response.content == CONTENT


def test_head_sends_headers_only(anonymous, link):
    response = anonymous.head(link)
    assert response.status_code == 200
    assert response.headers["Content-Length"] == str(len(CONTENT))
    assert response.content == b""
    ranged = anonymous.head(link, headers={"Range": "bytes=0-9"})
    assert ranged.status_code == 206
    assert ranged.headers["Content-Length"] == "10"


def test_link_needs_no_auth_and_counts(anonymous, link, emulator):
    file_id = emulator.state.find("data.bin")
    anonymous.get(link, headers={"Range": "bytes=0-99"})
    assert emulator.counters.link_requests[file_id] == 1
    assert emulator.counters.bytes_served[file_id] == 100


def test_empty_file_link(anonymous, api, emulator):
    file_id = emulator.state.add_file(None, "empty", b"")
    link = ok(api.get("/api/item/details", params={"id": file_id}))["link"]
    assert anonymous.get(link).content == b""
    assert anonymous.get(link, headers={"Range": "bytes=0-"}).status_code == 416


def test_deleted_file_link_404(anonymous, api, emulator, link):
    file_id = emulator.state.find("data.bin")
    ok(api.post("/api/item/delete", data={"id": file_id}))
    assert anonymous.get(link).status_code == 404


def test_forged_link_404(anonymous, link):
    forged = link.replace("/dl/", "/dl/x", 1)
    assert anonymous.get(forged).status_code == 404
    parts = link.split("/")
    parts[-3] = str(int(parts[-3]) + 1000)
    assert anonymous.get("/".join(parts)).status_code == 404
