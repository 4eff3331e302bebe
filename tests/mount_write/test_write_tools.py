"""Everyday programs writing into a real mount: rsync, cp, tar, mv and an editor's save."""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from fusemount import MiB, run

pytestmark = pytest.mark.mount

LARGE_SIZE = 50 * MiB
# Seconds rsync and cp may take for the whole tree, 50 MiB file included.
COPY_TIMEOUT = 180.0


def make_source_tree(root: Path, *, large: bool) -> Path:
    """Write a tree with nested folders, empty files and unicode names; return its path."""
    rng = random.Random(7)
    files = {
        "top.txt": b"top level\n",
        "empty.txt": b"",
        "Ünïcödé 日本語 🎬.txt": "unicode name\n".encode(),
        "docs/readme.md": b"# readme\n",
        "docs/empty": b"",
        "docs/deeper/deepest/leaf.bin": rng.randbytes(70_000),
        "media/song (live).mp3": rng.randbytes(300_000),
        "media/spaces in name .txt": b"trailing space in the stem\n",
    }
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    (root / "empty folder").mkdir()
    if large:
        (root / "media" / "large.bin").write_bytes(rng.randbytes(LARGE_SIZE))
    return root


def assert_same_tree(expected: Path, actual: Path) -> None:
    result = run(["diff", "-r", str(expected), str(actual)], timeout=COPY_TIMEOUT)
    assert result.returncode == 0, result.stdout + result.stderr


def transferred_count(rsync_stats: str) -> int:
    match = re.search(r"Number of regular files transferred: ([\d,]+)", rsync_stats)
    assert match, rsync_stats
    return int(match.group(1).replace(",", ""))


def names_on_service(emu, folder_id: str) -> list[str]:
    return sorted(entry.name for entry in emu.state.children(folder_id))


def test_rsync_archive_twice(emulator, mounted, tmp_path):
    source = make_source_tree(tmp_path / "source", large=True)
    target = mounted.path / "backup"
    rsync = ["rsync", "-a", "--stats", f"{source}/", f"{target}/"]

    first = run(rsync, timeout=COPY_TIMEOUT)
    assert first.returncode == 0, first.stderr
    assert_same_tree(source, target)
    # The service has every file byte for byte, not only the mount's view of it.
    large_id = emulator.state.find("backup/media/large.bin")
    assert large_id is not None
    assert emulator.state.file_bytes(large_id) == (source / "media" / "large.bin").read_bytes()

    emulator.counters.reset()
    second = run([*rsync[:2], "--itemize-changes", *rsync[2:]], timeout=COPY_TIMEOUT)
    assert second.returncode == 0, second.stderr
    assert transferred_count(second.stdout) == 0
    assert not [line for line in second.stdout.splitlines() if line.startswith(">f")], second.stdout
    assert emulator.counters.uploads == 0


def test_rsync_delete_removes(emulator, mounted, tmp_path):
    source = make_source_tree(tmp_path / "source", large=False)
    target = mounted.path / "mirror"
    first = run(["rsync", "-a", f"{source}/", f"{target}/"], timeout=COPY_TIMEOUT)
    assert first.returncode == 0, first.stderr

    (source / "top.txt").unlink()
    shutil.rmtree(source / "docs")
    (source / "new.txt").write_bytes(b"added later\n")
    second = run(["rsync", "-a", "--delete", f"{source}/", f"{target}/"], timeout=COPY_TIMEOUT)

    assert second.returncode == 0, second.stderr
    assert_same_tree(source, target)
    mirror = emulator.state.find("mirror")
    assert "top.txt" not in names_on_service(emulator, mirror)
    assert "docs" not in names_on_service(emulator, mirror)
    assert emulator.state.find("mirror/new.txt") is not None


def test_cp_recursive(emulator, mounted, tmp_path):
    source = make_source_tree(tmp_path / "source", large=False)
    result = run(["cp", "-r", str(source), str(mounted.path / "copy")], timeout=COPY_TIMEOUT)

    assert result.returncode == 0, result.stderr
    assert_same_tree(source, mounted.path / "copy")
    assert emulator.state.find("copy/docs/deeper/deepest/leaf.bin") is not None


def test_tar_extract(emulator, mounted, tmp_path):
    source = make_source_tree(tmp_path / "source", large=False)
    archive = tmp_path / "tree.tar"
    packed = run(["tar", "-cf", str(archive), "-C", str(source), "."])
    assert packed.returncode == 0, packed.stderr
    (mounted.path / "unpacked").mkdir()

    result = run(["tar", "-xf", str(archive), "-C", str(mounted.path / "unpacked")], timeout=COPY_TIMEOUT)

    assert result.returncode == 0, result.stderr
    assert_same_tree(source, mounted.path / "unpacked")
    # tar sets each file's time, and the mount keeps it.
    leaf = "docs/deeper/deepest/leaf.bin"
    assert os.stat(mounted.path / "unpacked" / leaf).st_mtime == int(os.stat(source / leaf).st_mtime)


def test_mv_across_folders_no_upload(emulator, mounted):
    first = emulator.state.create_folder(emulator.root_id, "first")
    emulator.state.create_folder(emulator.root_id, "second")
    file_id = emulator.state.add_file(first, "movie.mkv", (2 * MiB, 3))
    sub_id = emulator.state.create_folder(first, "extras")
    emulator.state.add_file(sub_id, "trailer.mkv", b"trailer")
    emulator.counters.reset()

    moved_file = run(["mv", str(mounted.path / "first" / "movie.mkv"), str(mounted.path / "second")])
    moved_folder = run(["mv", str(mounted.path / "first" / "extras"), str(mounted.path / "second" / "bonus")])

    assert moved_file.returncode == 0, moved_file.stderr
    assert moved_folder.returncode == 0, moved_folder.stderr
    assert emulator.state.find("second/movie.mkv") == file_id
    assert emulator.state.find("second/bonus") == sub_id
    assert emulator.state.find("second/bonus/trailer.mkv") is not None
    assert names_on_service(emulator, first) == []
    assert emulator.counters.uploads == 0
    assert emulator.counters.link_requests.get(file_id, 0) == 0
    assert sorted(os.listdir(mounted.path / "second")) == ["bonus", "movie.mkv"]


def test_editor_save_by_rename(emulator, mounted):
    folder = emulator.state.create_folder(emulator.root_id, "notes")
    emulator.state.add_file(folder, "todo.txt", b"old line\n")
    target = mounted.path / "notes" / "todo.txt"
    temporary = mounted.path / "notes" / ".todo.txt.swp"

    # What editors do to save safely: write a new file, then rename it over the old one.
    with open(temporary, "wb") as file:
        file.write(b"new line\n")
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, target)

    assert target.read_bytes() == b"new line\n"
    assert os.listdir(mounted.path / "notes") == ["todo.txt"]
    entries = emulator.state.children(folder)
    assert [entry.name for entry in entries] == ["todo.txt"]
    assert emulator.state.file_bytes(entries[0].id) == b"new line\n"


def test_shell_redirect_overwrite(emulator, mounted):
    emulator.state.add_file(emulator.root_id, "log.txt", b"first\n")
    path = mounted.path / "log.txt"
    subprocess.run(f"echo second > '{path}' && echo third >> '{path}'", shell=True, check=True, timeout=60)

    assert path.read_bytes() == b"second\nthird\n"
    assert names_on_service(emulator, emulator.root_id) == ["log.txt"]
    assert emulator.state.file_bytes(emulator.state.find("log.txt")) == b"second\nthird\n"
