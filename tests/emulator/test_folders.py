"""Contract tests of account/info, folder/* and item/* over real HTTP."""

from __future__ import annotations

from pmzfs.emulator.testing import error_code
from pmzfs.emulator.testing import success as ok


def test_account_info_fields(api, emulator):
    emulator.state.add_file(None, "a.bin", b"x" * 1000)
    info = ok(api.get("/api/account/info"))
    assert isinstance(info["customer_id"], str)
    assert isinstance(info["premium_until"], int)
    assert isinstance(info["limit_used"], float)
    assert info["space_used"] == 1000
    assert info["booster_points"] == 0


def test_root_listing_gives_root_id(api, emulator):
    listing = ok(api.get("/api/folder/list"))
    assert listing["folder_id"] == emulator.root_id
    assert listing["parent_id"] is None
    assert listing["breadcrumbs"] == [{"id": emulator.root_id, "name": listing["name"]}]
    assert listing["content"] == []


def test_create_then_list_by_id_and_path(api, emulator):
    movies = ok(api.post("/api/folder/create", data={"name": "Movies"}))["id"]
    inner = ok(api.post("/api/folder/create", data={"name": "Ünïcödé 日本 🎬", "parent_id": movies}))["id"]
    file_id = emulator.state.add_file(inner, "clip.mkv", b"abc")

    by_id = ok(api.get("/api/folder/list", params={"id": inner}))
    by_path = ok(api.get("/api/folder/list", params={"path": "Movies/Ünïcödé 日本 🎬"}))
    assert by_id["folder_id"] == by_path["folder_id"] == inner
    assert by_id["parent_id"] == movies
    assert [crumb["id"] for crumb in by_id["breadcrumbs"]] == [emulator.root_id, movies, inner]
    (entry,) = by_id["content"]
    assert entry["id"] == file_id
    assert entry["type"] == "file"
    assert entry["size"] == 3
    assert entry["mime_type"] == "video/x-matroska"
    assert isinstance(entry["created_at"], int)
    assert entry["link"].startswith(emulator.base_url + "/dl/")


def test_item_details_fields(api, emulator):
    file_id = emulator.state.add_file(None, "notes.txt", b"hello")
    details = ok(api.get("/api/item/details", params={"id": file_id}))
    assert details["id"] == file_id
    assert details["name"] == "notes.txt"
    assert details["size"] == 5
    assert details["folder_id"] == emulator.root_id
    assert details["mime_type"] == "text/plain"
    assert details["link"].startswith(emulator.base_url)


def test_folder_id_rejected_as_file_id(api, emulator):
    folder_id = emulator.state.create_folder(None, "Docs")
    file_id = emulator.state.add_file(None, "a.txt", b"a")
    assert error_code(api.get("/api/item/details", params={"id": folder_id})) == "not_found"
    assert error_code(api.get("/api/folder/list", params={"id": file_id})) == "not_found"
    assert error_code(api.post("/api/item/delete", data={"id": folder_id})) == "not_found"
    assert error_code(api.post("/api/folder/delete", data={"id": file_id})) == "not_found"
