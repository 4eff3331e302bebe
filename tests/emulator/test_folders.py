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


def test_folder_rename_and_item_rename(api, emulator):
    folder_id = emulator.state.create_folder(None, "old folder")
    file_id = emulator.state.add_file(folder_id, "old.txt", b"x")
    ok(api.post("/api/folder/rename", data={"id": folder_id, "name": "new folder"}))
    ok(api.post("/api/item/rename", data={"id": file_id, "name": "new.txt"}))
    assert emulator.state.find("new folder/new.txt") == file_id
    assert emulator.state.find("old folder") is None


def test_folder_delete_is_recursive(api, emulator, anonymous):
    top = emulator.state.create_folder(None, "top")
    middle = emulator.state.create_folder(top, "middle")
    file_id = emulator.state.add_file(middle, "deep.txt", b"deep")
    link = ok(api.get("/api/item/details", params={"id": file_id}))["link"]
    ok(api.post("/api/folder/delete", data={"id": top}))
    assert error_code(api.get("/api/folder/list", params={"id": middle})) == "not_found"
    assert error_code(api.get("/api/item/details", params={"id": file_id})) == "not_found"
    assert anonymous.get(link).status_code == 404
    assert ok(api.get("/api/account/info"))["space_used"] == 0


def test_root_cannot_be_deleted_renamed_or_moved(api, emulator):
    root = emulator.root_id
    target = emulator.state.create_folder(None, "target")
    assert error_code(api.post("/api/folder/delete", data={"id": root})) == "invalid_request"
    assert error_code(api.post("/api/folder/rename", data={"id": root, "name": "x"})) == "invalid_request"
    assert error_code(api.post("/api/folder/paste", data={"id": target, "folders[]": root})) == "invalid_request"


def test_paste_moves_and_keeps_ids(api, emulator):
    source = emulator.state.create_folder(None, "source")
    target = emulator.state.create_folder(None, "target")
    moved_folder = emulator.state.create_folder(source, "sub")
    moved_file = emulator.state.add_file(source, "a.txt", b"a")
    ok(api.post("/api/folder/paste", data={"id": target, "files[]": [moved_file], "folders[]": [moved_folder]}))
    listing = ok(api.get("/api/folder/list", params={"id": target}))
    assert {entry["id"] for entry in listing["content"]} == {moved_file, moved_folder}
    assert ok(api.get("/api/folder/list", params={"id": source}))["content"] == []
    assert ok(api.get("/api/item/details", params={"id": moved_file}))["folder_id"] == target


def test_paste_into_own_subfolder_rejected(api, emulator):
    outer = emulator.state.create_folder(None, "outer")
    inner = emulator.state.create_folder(outer, "inner")
    assert error_code(api.post("/api/folder/paste", data={"id": inner, "folders[]": outer})) == "invalid_request"
    assert error_code(api.post("/api/folder/paste", data={"id": outer, "folders[]": outer})) == "invalid_request"
    assert emulator.state.find("outer/inner") == inner


def test_paste_with_bad_id_moves_nothing(api, emulator):
    target = emulator.state.create_folder(None, "target")
    good = emulator.state.add_file(None, "good.txt", b"g")
    response = api.post("/api/folder/paste", data={"id": target, "files[]": [good, "no-such-id"]})
    assert error_code(response) == "not_found"
    assert emulator.state.file(good).folder_id == emulator.root_id


def test_paste_needs_files_or_folders(api, emulator):
    target = emulator.state.create_folder(None, "target")
    assert error_code(api.post("/api/folder/paste", data={"id": target})) == "invalid_request"


def test_indexed_array_parameters(api, emulator):
    target = emulator.state.create_folder(None, "target")
    first = emulator.state.add_file(None, "1.txt", b"1")
    second = emulator.state.add_file(None, "2.txt", b"2")
    ok(api.post("/api/folder/paste", content=f"id={target}&files[0]={first}&files[1]={second}",
                headers={"Content-Type": "application/x-www-form-urlencoded"}))
    assert len(emulator.state.children(target)) == 2


def test_search_substring_case_insensitive(api, emulator):
    folder = emulator.state.create_folder(None, "Holiday Photos")
    emulator.state.add_file(folder, "beach-HOLIDAY.jpg", b"j")
    emulator.state.add_file(None, "unrelated.txt", b"u")
    result = ok(api.get("/api/folder/search", params={"q": "holiday"}))
    assert result["name"] == "Search Results"
    assert sorted(entry["name"] for entry in result["content"]) == ["Holiday Photos", "beach-HOLIDAY.jpg"]
    file_entry = next(entry for entry in result["content"] if entry["type"] == "file")
    assert file_entry["link"].startswith(emulator.base_url)
    assert error_code(api.get("/api/folder/search")) == "invalid_request"


def test_listall_gives_paths(api, emulator):
    outer = emulator.state.create_folder(None, "outer")
    inner = emulator.state.create_folder(outer, "inner")
    deep = emulator.state.add_file(inner, "deep.mkv", b"d")
    top = emulator.state.add_file(None, "top.txt", b"t")
    files = {entry["id"]: entry for entry in ok(api.get("/api/item/listall"))["files"]}
    assert files[deep]["path"] == "outer/inner/deep.mkv"
    assert files[top]["path"] == "top.txt"
    assert set(files[deep]) == {"id", "name", "path", "size", "created_at", "mime_type"}


def test_path_lookup_misses(api, emulator):
    emulator.state.add_file(None, "file.txt", b"f")
    assert error_code(api.get("/api/folder/list", params={"path": "no/such/folder"})) == "not_found"
    assert error_code(api.get("/api/folder/list", params={"path": "file.txt"})) == "not_found"


def test_duplicates_allowed_by_default(api, emulator):
    first = ok(api.post("/api/folder/create", data={"name": "twin"}))["id"]
    second = ok(api.post("/api/folder/create", data={"name": "twin"}))["id"]
    assert first != second
    names = [entry["name"] for entry in ok(api.get("/api/folder/list"))["content"]]
    assert names == ["twin", "twin"]


def test_duplicates_rejected_when_switched_off(api, emulator):
    emulator.options.duplicate_names = False
    ok(api.post("/api/folder/create", data={"name": "taken"}))
    file_id = emulator.state.add_file(None, "file.txt", b"f")
    assert error_code(api.post("/api/folder/create", data={"name": "taken"})) == "invalid_request"
    assert error_code(api.post("/api/item/rename", data={"id": file_id, "name": "taken"})) == "invalid_request"
    # Renaming an entry to its own name is no conflict.
    ok(api.post("/api/item/rename", data={"id": file_id, "name": "file.txt"}))
    # Case differs, and names compare case-sensitively by default.
    ok(api.post("/api/folder/create", data={"name": "TAKEN"}))


def test_case_insensitive_duplicate_check(api, emulator):
    emulator.options.duplicate_names = False
    emulator.options.case_sensitive_names = False
    ok(api.post("/api/folder/create", data={"name": "Straße"}))
    assert error_code(api.post("/api/folder/create", data={"name": "STRASSE"})) == "invalid_request"
    file_id = emulator.state.add_file(None, "Readme.TXT", b"r")
    ok(api.post("/api/item/rename", data={"id": file_id, "name": "README.txt"}))


def test_duplicate_rule_on_paste_and_upload(api, emulator):
    emulator.options.duplicate_names = False
    target = emulator.state.create_folder(None, "target")
    emulator.state.add_file(target, "same.txt", b"1")
    other = emulator.state.add_file(None, "same.txt", b"2")
    response = api.post("/api/folder/paste", data={"id": target, "files[]": other})
    assert error_code(response) == "invalid_request"
    info = ok(api.get("/api/folder/uploadinfo", params={"id": target}))
    uploaded = api.post(info["url"], data={"token": info["token"]}, files={"file": ("same.txt", b"3")})
    assert error_code(uploaded) == "invalid_request"


def test_odd_names_round_trip(api, emulator):
    names = ["a/b", "back\\slash", 'quote"d', "new\nline", " padded ", "../../etc/passwd", "..", "x" * 255, "日本語 🎬"]
    for name in names:
        folder_id = ok(api.post("/api/folder/create", data={"name": name}))["id"]
        listing = ok(api.get("/api/folder/list", params={"id": folder_id}))
        assert listing["name"] == name
    listed = [entry["name"] for entry in ok(api.get("/api/folder/list"))["content"]]
    assert listed == names
    assert sorted(path.name for path in emulator.state_dir.iterdir()) == ["blobs", "state.json", "tmp"]


def test_invalid_names_rejected(api, emulator):
    file_id = emulator.state.add_file(None, "f.txt", b"f")
    for name in ["", "x" * 256, "nul\x00byte"]:
        assert error_code(api.post("/api/folder/create", data={"name": name})) == "invalid_request"
        assert error_code(api.post("/api/item/rename", data={"id": file_id, "name": name})) == "invalid_request"
    assert error_code(api.post("/api/folder/create", data={})) == "invalid_request"


def test_walk_files_relative_paths(emulator):
    top = emulator.state.create_folder(None, "top")
    inner = emulator.state.create_folder(top, "inner")
    deep = emulator.state.add_file(inner, "deep.txt", b"d")
    shallow = emulator.state.add_file(top, "shallow.txt", b"s")
    walked = {file.id: prefix for prefix, file in emulator.state.walk_files(top)}
    assert walked == {deep: "inner/", shallow: ""}
