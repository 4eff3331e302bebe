"""State on disk: a restart keeps folders, files, links, transfers and tokens."""

from __future__ import annotations

import json

import httpx

from pmzfs.emulator import Emulator, EmulatorOptions
from pmzfs.emulator.demo import seed_demo_content
from pmzfs.emulator.testing import emulator_for_tests
from pmzfs.emulator.testing import success as ok


def client(emu):
    return httpx.Client(base_url=emu.base_url, headers={"Authorization": f"Bearer {emu.api_key}"}, timeout=10)


def test_restart_keeps_everything(tmp_path):
    state_dir = tmp_path / "state"
    with emulator_for_tests(state_dir, device_auto="approve") as emu, client(emu) as api:
        root = emu.root_id
        folder = ok(api.post("/api/folder/create", data={"name": "Kept"}))["id"]
        later = ok(api.post("/api/folder/create", data={"name": "Later"}))["id"]
        emu.state.add_file(folder, "b.txt", b"bee")
        file_id = emu.state.add_file(later, "a.txt", b"ay")
        ok(api.post("/api/folder/paste", data={"id": folder, "files[]": file_id}))
        ok(api.post("/api/transfer/create", data={"src": "https://examplehoster.com/x.bin"}))
        flow = api.post("/token", data={"response_type": "device_code", "client_id": "c"}).json()
        grant = {"grant_type": "device_code", "code": flow["device_code"], "client_id": "c"}
        token = api.post("/token", data=grant).json()["access_token"]
        link = ok(api.get("/api/item/details", params={"id": file_id}))["link"]
        before = ok(api.get("/api/folder/list", params={"id": folder}))
        transfers_before = ok(api.get("/api/transfer/list"))
    with emulator_for_tests(state_dir) as emu, client(emu) as api:
        assert emu.root_id == root
        after = ok(api.get("/api/folder/list", params={"id": folder}))
        assert [entry["id"] for entry in after["content"]] == [entry["id"] for entry in before["content"]]
        assert [entry["name"] for entry in after["content"]] == ["b.txt", "a.txt"]
        assert emu.state.file_bytes(file_id) == b"ay"
        assert ok(api.get("/api/transfer/list")) == transfers_before
        ok(httpx.get(emu.base_url + "/api/account/info", headers={"Authorization": f"Bearer {token}"}))
        # A link keeps working after a restart on the same port; here only its path is reused.
        path = link.split("/", 3)[3]
        assert httpx.get(f"{emu.base_url}/{path}").content == b"ay"


def test_state_file_is_valid_json_after_stop(tmp_path):
    state_dir = tmp_path / "state"
    with emulator_for_tests(state_dir) as emu:
        emu.state.create_folder(None, "x")
    document = json.loads((state_dir / "state.json").read_text())
    assert [folder["name"] for folder in document["folders"]] == ["My Files", "x"]


def test_corrupt_state_reports_path(tmp_path):
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    (state_dir / "state.json").write_text("{not json")
    try:
        Emulator(state_dir=state_dir, options=EmulatorOptions())
    except ValueError as exc:
        assert str(state_dir / "state.json") in str(exc)
    else:
        raise AssertionError("a corrupt state file was accepted")


def test_temporary_state_removed_on_stop():
    emu = Emulator(options=EmulatorOptions())
    directory = emu.state_dir
    emu.start()
    emu.stop()
    assert not directory.exists()


def test_demo_content_seeds_once(tmp_path):
    state_dir = tmp_path / "state"
    with emulator_for_tests(state_dir) as emu:
        assert seed_demo_content(emu.state)
        video = emu.state.find("Movies/Test Pattern (2024).mp4")
        assert video is not None
        assert emu.state.find("Series/Show Name/Season 01/Show Name - S01E01 - Pilot.mp4") is not None
        assert emu.state.find("Large Files/random-256MiB.bin") is not None
        emu.state.delete_file(video)
    with emulator_for_tests(state_dir) as emu:
        assert not seed_demo_content(emu.state)
        assert emu.state.find("Movies/Test Pattern (2024).mp4") is None
        assert emu.state.file(emu.state.find("Large Files/random-256MiB.bin")).size == 256 * 1024 * 1024


def test_orphan_blobs_removed_on_start(tmp_path):
    state_dir = tmp_path / "state"
    with emulator_for_tests(state_dir):
        pass
    (state_dir / "blobs" / "sha256-orphan").write_bytes(b"left behind")
    with emulator_for_tests(state_dir) as emu:
        assert list(emu.state.blob_dir.iterdir()) == []


def test_stop_twice_is_harmless():
    emu = Emulator(options=EmulatorOptions())
    emu.start()
    emu.stop()
    emu.stop()
