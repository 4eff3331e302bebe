"""Contract tests of file links: Range, HEAD, 416, deleted files, expiry."""

from __future__ import annotations

import time

import httpx
import pytest

from pmzfs.emulator.content import generated_bytes

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


def test_expired_link_403_fresh_link_works(anonymous, api, emulator):
    file_id = emulator.state.add_file(None, "old.bin", b"old content")
    emulator.options.link_expiry = 60
    issued_long_ago = int(time.time()) - 3600
    stale = emulator.base_url + emulator.signer.link_path(file_id, "old.bin", issued_long_ago)
    assert anonymous.get(stale).status_code == 403
    fresh = ok(api.get("/api/item/details", params={"id": file_id}))["link"]
    assert anonymous.get(fresh).content == b"old content"
    listed = ok(api.get("/api/folder/list"))["content"][0]["link"]
    assert anonymous.get(listed).status_code == 200
    emulator.options.link_expiry = None
    assert anonymous.get(stale).status_code == 200


def test_link_reset_after_bytes_once(anonymous, link, emulator):
    emulator.options.link_reset_after_bytes = 1000
    emulator.options.link_reset_count = 1
    with pytest.raises(httpx.TransportError):
        anonymous.get(link)
    assert emulator.options.link_reset_count == 0
    assert anonymous.get(link).content == CONTENT


def test_link_reset_after_fraction_streams_prefix(emulator, link):
    emulator.options.link_reset_after_fraction = 0.5
    received = bytearray()
    with httpx.Client(timeout=10) as client, pytest.raises(httpx.TransportError):
        with client.stream("GET", link) as response:
            assert response.headers["Content-Length"] == str(len(CONTENT))
            for chunk in response.iter_raw():
                received.extend(chunk)
    assert bytes(received) == CONTENT[: len(CONTENT) // 2]


def test_rate_capped_link_serves_exact_bytes(anonymous, link, emulator):
    emulator.options.link_rate = 1024 * 1024
    response = anonymous.get(link, headers={"Range": "bytes=100-5099"})
    assert response.status_code == 206
    assert response.content == CONTENT[100:5100]


def test_link_rtt_keeps_content_correct(anonymous, link, emulator):
    emulator.options.link_rtt = 0.001
    assert anonymous.get(link).content == CONTENT


def test_keep_alive_reuses_connection(link, emulator):
    emulator.counters.reset()
    with httpx.Client(timeout=10) as client:
        for _ in range(3):
            assert client.get(link, headers={"Range": "bytes=0-9"}).status_code == 206
    assert emulator.counters.new_connections == 1
    assert emulator.counters.link_requests[emulator.state.find("data.bin")] == 3


def test_large_generated_file_ranges(anonymous, api, emulator):
    size = 5 * 1024 * 1024 + 17
    file_id = emulator.state.add_file(None, "big.bin", (size, "seed-1"))
    link = ok(api.get("/api/item/details", params={"id": file_id}))["link"]
    expected_tail = generated_bytes("seed-1", size - 1000, 1000)
    assert anonymous.get(link, headers={"Range": "bytes=-1000"}).content == expected_tail
    middle = anonymous.get(link, headers={"Range": "bytes=65530-65545"}).content
    assert middle == generated_bytes("seed-1", 65530, 16)
    assert emulator.state.file_bytes(file_id)[65530:65546] == middle


def test_zip_and_unknown_paths_404(anonymous):
    assert anonymous.get("/zip/nope/x.zip").status_code == 404
    assert anonymous.get("/nothing-here").status_code == 404
    assert anonymous.get("/dl/").status_code == 404
    assert anonymous.get("/ddl/x/y/z").status_code == 404


@pytest.mark.parametrize("name", [".", "..", "..."])
def test_dot_names_link_works(api, anonymous, emulator, name):
    file_id = emulator.state.add_file(None, name, CONTENT)
    link = ok(api.get("/api/item/details", params={"id": file_id}))["link"]

    response = anonymous.get(link, headers={"Range": "bytes=0-9"})

    assert response.status_code == 206
    assert response.content == CONTENT[:10]
