"""Contract tests of transfers, direct links, cache checks, services and zips."""

from __future__ import annotations

import io
import zipfile

from pmzfs.emulator.content import generated_bytes
from pmzfs.emulator.testing import error_code
from pmzfs.emulator.testing import success as ok

URL = "https://examplehoster.com/files/My%20Movie.mkv"
MAGNET = "magnet:?xt=urn:btih:0123456789abcdef&dn=Some.Show.S01"


def transfers(api):
    return ok(api.get("/api/transfer/list"))["transfers"]


def test_url_transfer_finishes_into_folder(api, emulator):
    folder_id = emulator.state.create_folder(None, "Downloads")
    created = ok(api.post("/api/transfer/create", data={"src": URL, "folder_id": folder_id}))
    assert created["name"] == "My Movie.mkv"
    (transfer,) = transfers(api)
    assert transfer["id"] == created["id"]
    assert transfer["status"] == "finished"
    assert transfer["progress"] == 1.0
    assert transfer["folder_id"] == folder_id
    details = ok(api.get("/api/item/details", params={"id": transfer["file_id"]}))
    assert details["name"] == "My Movie.mkv"
    assert details["folder_id"] == folder_id


def test_transfer_content_is_deterministic(api, emulator):
    ok(api.post("/api/transfer/create", data={"src": URL}))
    ok(api.post("/api/transfer/create", data={"src": URL}))
    first, second = (entry.id for entry in emulator.state.children(emulator.root_id))
    assert emulator.state.file_bytes(first) == emulator.state.file_bytes(second)
    direct = ok(api.post("/api/transfer/directdl", data={"src": URL}))["content"]
    assert direct[0]["size"] == emulator.state.file(first).size


def test_magnet_transfer_makes_folder(api, emulator):
    ok(api.post("/api/transfer/create", data={"src": MAGNET}))
    (transfer,) = transfers(api)
    assert transfer["file_id"] is None
    listing = ok(api.get("/api/folder/list", params={"id": transfer["folder_id"]}))
    assert listing["name"] == "Some.Show.S01"
    assert listing["parent_id"] == emulator.root_id
    assert sorted(entry["name"] for entry in listing["content"]) == ["Some.Show.mkv", "Some.Show.nfo"]


def test_torrent_file_transfer(api, emulator):
    response = api.post("/api/transfer/create", files={"file": ("linux.iso.torrent", b"d8:announce3:urle")})
    assert ok(response)["name"] == "linux.iso"
    assert emulator.state.find("linux.iso/linux.mkv") is not None
    not_torrent = api.post("/api/transfer/create", files={"file": ("notes.txt", b"text")})
    assert error_code(not_torrent) == "service_unsupported"


def test_transfer_progress_by_speed(api, emulator):
    emulator.options.transfer_speed = 1.0
    ok(api.post("/api/transfer/create", data={"src": URL}))
    (transfer,) = transfers(api)
    assert transfer["status"] == "running"
    assert 0.0 <= transfer["progress"] < 1.0
    assert transfer["file_id"] is None
    emulator.options.transfer_speed = None
    (transfer,) = transfers(api)
    assert transfer["status"] == "finished"


def test_failed_transfer_retry_delete_clear(api, emulator):
    failing = ok(api.post("/api/transfer/create", data={"src": "https://examplehoster.com/fail-once.bin"}))["id"]
    finished = ok(api.post("/api/transfer/create", data={"src": URL}))["id"]
    by_id = {entry["id"]: entry for entry in transfers(api)}
    assert by_id[failing]["status"] == "error"
    assert by_id[failing]["message"]
    assert error_code(api.post("/api/transfer/retry", data={"id": finished})) == "invalid_request"
    ok(api.post("/api/transfer/retry", data={"id": failing}))
    assert {entry["status"] for entry in transfers(api)} == {"finished"}
    ok(api.post("/api/transfer/clearfinished"))
    assert transfers(api) == []
    assert error_code(api.post("/api/transfer/delete", data={"id": failing})) == "not_found"
    again = ok(api.post("/api/transfer/create", data={"src": URL}))["id"]
    ok(api.post("/api/transfer/delete", data={"id": again}))
    assert transfers(api) == []


def test_transfer_list_newest_first(api):
    first = ok(api.post("/api/transfer/create", data={"src": URL}))["id"]
    second = ok(api.post("/api/transfer/create", data={"src": MAGNET}))["id"]
    assert [entry["id"] for entry in transfers(api)] == [second, first]
    keys = {"id", "name", "status", "progress", "message", "folder_id", "file_id"}
    assert all(set(entry) == keys for entry in transfers(api))


def test_transfer_bad_sources(api, emulator):
    assert error_code(api.post("/api/transfer/create", data={})) == "invalid_request"
    assert error_code(api.post("/api/transfer/create", data={"src": "not a url"})) == "invalid_request"
    assert error_code(api.post("/api/transfer/create", data={"src": "ftp://host/file"})) == "service_unsupported"
    assert error_code(api.post("/api/transfer/create", data={"src": "file:///etc/passwd"})) == "service_unsupported"
    assert error_code(api.post("/api/transfer/create", data={"src": "magnet:?dn=x"})) == "invalid_request"
    assert error_code(api.post("/api/transfer/create", data={"src": URL, "folder_id": "nope"})) == "not_found"
    assert transfers(api) == []


def test_container_source_lists_links(api):
    response = ok(api.post("/api/transfer/create", data={"src": "https://examplehoster.com/pack.dlc"}))
    assert response["type"] == "container"
    assert len(response["content"]) == 3
    assert transfers(api) == []


def test_directdl_links_serve_content(api, anonymous):
    content = ok(api.post("/api/transfer/directdl", data={"src": MAGNET}))["content"]
    assert [entry["path"] for entry in content] == ["Some.Show.S01/Some.Show.mkv", "Some.Show.S01/Some.Show.nfo"]
    video = content[0]
    head = anonymous.head(video["link"])
    assert head.headers["Content-Length"] == str(video["size"])
    ranged = anonymous.get(video["link"], headers={"Range": "bytes=70000-70099"})
    assert ranged.status_code == 206
    assert len(ranged.content) == 100
    assert ok(api.post("/api/transfer/directdl", data={"src": MAGNET}))["content"] == content
    assert error_code(api.post("/api/transfer/directdl", data={})) == "invalid_request"


def test_directdl_link_matches_generator(api, anonymous):
    (entry,) = ok(api.post("/api/transfer/directdl", data={"src": URL}))["content"]
    body = anonymous.get(entry["link"]).content
    assert len(body) == entry["size"]
    # The same source stored by a transfer has the same bytes.
    ok(api.post("/api/transfer/create", data={"src": URL}))
    file_id = transfers(api)[0]["file_id"]
    assert anonymous.get(ok(api.get("/api/item/details", params={"id": file_id}))["link"]).content == body
    assert body[:32] != generated_bytes("other", 0, 32)


def test_cache_check_parallel_arrays(api):
    items = [URL, MAGNET, "https://exampletube.com/v/1", "not a url"]
    first = ok(api.post("/api/cache/check", data={"items[]": items}))
    second = ok(api.post("/api/cache/check", data={"items[]": items}))
    assert first == second
    assert len(first["response"]) == len(first["filename"]) == len(first["filesize"]) == 4
    for cached, filename, filesize in zip(first["response"], first["filename"], first["filesize"]):
        if cached:
            assert isinstance(filename, str)
            assert int(filesize) > 0
        else:
            assert filename is None
            assert filesize == 0
    assert first["response"][3] is False
    assert error_code(api.post("/api/cache/check", data={})) == "invalid_request"


def test_services_list_shape(api):
    services = ok(api.get("/api/services/list"))
    for key in ("cache", "directdl", "queue"):
        assert isinstance(services[key], list)
    for key in ("fairusefactor", "aliases", "regexpatterns"):
        assert isinstance(services[key], dict)


def test_zip_of_files_and_folders(api, anonymous, emulator):
    folder = emulator.state.create_folder(None, "Album")
    sub = emulator.state.create_folder(folder, "Disc 1")
    emulator.state.create_folder(folder, "Empty")
    emulator.state.add_file(sub, "track.flac", b"music")
    loose = emulator.state.add_file(None, "../../etc/passwd", b"not really")
    twin = emulator.state.add_file(None, "Album", b"a file named like the folder")
    location = ok(api.post("/api/zip/generate", data={"files[]": [loose, twin], "folders[]": [folder]}))["location"]
    assert location.startswith(emulator.base_url + "/zip/")
    assert location.endswith("/download.zip")
    response = anonymous.get(location)
    assert response.status_code == 200
    assert "Content-Disposition" not in response.headers
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert sorted(archive.namelist()) == sorted(
        ["Album", ".._.._etc_passwd", "Album (2)/", "Album (2)/Disc 1/", "Album (2)/Disc 1/track.flac", "Album (2)/Empty/"]
    )
    assert archive.read("Album (2)/Disc 1/track.flac") == b"music"
    assert archive.read(".._.._etc_passwd") == b"not really"
    ranged = anonymous.get(location, headers={"Range": "bytes=0-3"})
    assert ranged.content == b"PK\x03\x04"


def test_zip_single_folder_named_after_it(api, emulator):
    folder = emulator.state.create_folder(None, "Holiday 2024")
    location = ok(api.post("/api/zip/generate", data={"folders[]": folder}))["location"]
    assert location.endswith("/Holiday%202024.zip")


def test_zip_bad_requests(api, emulator):
    file_id = emulator.state.add_file(None, "f.txt", b"f")
    folder_id = emulator.state.create_folder(None, "d")
    assert error_code(api.post("/api/zip/generate", data={})) == "invalid_request"
    assert error_code(api.post("/api/zip/generate", data={"files[]": folder_id})) == "not_found"
    assert error_code(api.post("/api/zip/generate", data={"folders[]": file_id})) == "not_found"
