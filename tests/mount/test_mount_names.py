"""Listings through a real mount: a huge folder, and names POSIX cannot show as they are."""

from __future__ import annotations

import errno
import os

import pytest
from fusemount import run

pytestmark = pytest.mark.mount

HUGE_COUNT = 10_000


def parse_ls_long(output: str) -> dict[str, tuple[str, int]]:
    """Parse ``ls -l --time-style=+%s`` output of one folder into {name: (mode, size)}."""
    entries = {}
    for line in output.splitlines():
        if line.startswith("total "):
            continue
        mode, _links, _owner, _group, size, _mtime, name = line.split(maxsplit=6)
        entries[name] = (mode, int(size))
    return entries


@pytest.mark.timeout(150)
def test_huge_folder_lists_with_one_call(emulator, mount):
    folder = emulator.state.create_folder(emulator.root_id, "huge")
    sizes = {}
    for index in range(HUGE_COUNT):
        name = f"entry-{index:05d}.dat"
        sizes[name] = index % 977
        emulator.state.add_file(folder, name, (sizes[name], index))
    mounted = mount(emulator).path
    # Look "huge" up in the root first, so the calls counted below are the
    # listing of "huge" alone.
    assert (mounted / "huge").is_dir()
    ls_command = ["ls", "-l", "--quoting-style=literal", "--time-style=+%s", str(mounted / "huge")]

    emulator.counters.reset()
    first = run(ls_command, timeout=120)
    first_calls = dict(emulator.counters.api_calls)

    assert first.returncode == 0, first.stderr
    assert first.stderr == ""
    entries = parse_ls_long(first.stdout)
    assert len(entries) == HUGE_COUNT
    assert sorted(entries) == sorted(sizes)
    assert {name: size for name, (_mode, size) in entries.items()} == sizes
    assert {mode for mode, _size in entries.values()} == {"-rw-r--r--"}
    assert first_calls.get("folder/list", 0) == 1, first_calls
    assert first_calls.get("item/details", 0) == 0, first_calls

    emulator.counters.reset()
    second = run(ls_command, timeout=120)
    second_calls = {endpoint: count for endpoint, count in emulator.counters.api_calls.items() if count}

    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout
    assert second_calls == {}, "a second ls -l within the listing TTL must not call the API"


# Names the service allows but a POSIX directory entry cannot hold as they are.
AWKWARD_FILES = [
    "AC/DC - Back in Black.flac",
    "AC\u2215DC - Back in Black.flac",  # a real U+2215 DIVISION SLASH, the character pmzfs shows for "/"
    ".",
    "..",
    "Ü" * 150,  # 150 characters, 300 bytes of UTF-8
    "è" * 126 + ".mkv",  # 256 bytes: one over the limit, with an extension
    "a" * 255,  # exactly 255 bytes
    "duplicate.txt",
    "duplicate.txt",
    "plain.txt",
]
SLASHED_FOLDER = "Movies/2024"


def seed_awkward_names(emulator) -> tuple[str, dict[str, bytes], dict[str, str]]:
    """Seed the awkward names; return the folder id, content by file id and name by file id."""
    folder = emulator.state.create_folder(emulator.root_id, "names")
    contents = {}
    names = {}
    for index, name in enumerate(AWKWARD_FILES):
        content = f"item {index} named {name!r}\n".encode()
        file_id = emulator.state.add_file(folder, name, content)
        contents[file_id] = content
        names[file_id] = name
    slashed = emulator.state.create_folder(folder, SLASHED_FOLDER)
    emulator.state.add_file(slashed, "inside.txt", b"inside the folder with a slash\n")
    return folder, contents, names


def shown_names(folder_path, contents: dict[str, bytes]) -> tuple[list[str], dict[str, str]]:
    """List a folder; return its names in readdir order and {shown file name: file id} by content."""
    names = os.listdir(folder_path)
    by_content = {content: file_id for file_id, content in contents.items()}
    owners = {}
    for name in names:
        path = folder_path / name
        if path.is_dir():
            continue
        try:
            owners[name] = by_content.get(path.read_bytes(), "<content of no seeded file>")
        except OSError as exc:
            owners[name] = f"<read failed: {errno.errorcode.get(exc.errno, exc.errno)}>"
    return names, owners


def reverse_listing_order(emulator, folder: str) -> None:
    """Reverse the service's listing order of ``folder``, keeping every id.

    The emulator lists entries in the order they moved in, so moving them
    out and back in reverse order reverses the listing.
    """
    holding = emulator.state.create_folder(emulator.root_id, "holding")
    entries = emulator.state.children(folder)
    files = [entry.id for entry in entries if emulator.state.is_file(entry.id)]
    folders = [entry.id for entry in entries if not emulator.state.is_file(entry.id)]
    emulator.state.move(holding, files, folders)
    for entry in reversed(entries):
        kind_files, kind_folders = ([entry.id], []) if emulator.state.is_file(entry.id) else ([], [entry.id])
        emulator.state.move(folder, kind_files, kind_folders)
    emulator.state.delete_folder(holding)
    assert [entry.id for entry in emulator.state.children(folder)] == [entry.id for entry in reversed(entries)]


@pytest.mark.timeout(120)
def test_awkward_names_stable_across_remount(emulator, mount):
    folder, contents, service_names = seed_awkward_names(emulator)
    first_mount = mount(emulator)
    names_path = first_mount.path / "names"

    names, owners = shown_names(names_path, contents)
    assert len(names) == len(AWKWARD_FILES) + 1
    assert len(set(names)) == len(names), f"shown names are not unique: {names}"
    for name in names:
        assert "/" not in name, name
        assert "\0" not in name, name
        assert len(os.fsencode(name)) <= 255, name
    assert "plain.txt" in names, "a name POSIX can hold is shown unchanged"
    assert "a" * 255 in names, "a 255-byte name is shown unchanged"
    unreadable = {name: owner for name, owner in owners.items() if owner.startswith("<")}
    assert unreadable == {}, "shown file names that do not read their item's content"
    assert sorted(owners.values()) == sorted(contents), "each shown file name reads its own item's content"
    shown_by_service_name = {service_names[file_id]: shown for shown, file_id in owners.items()}
    assert shown_by_service_name["AC\u2215DC - Back in Black.flac"] == "AC\u2215DC - Back in Black.flac"
    assert shown_by_service_name["è" * 126 + ".mkv"].endswith(".mkv"), "a shortened name keeps its extension"
    folders = [name for name in names if (names_path / name).is_dir()]
    assert len(folders) == 1
    assert os.listdir(names_path / folders[0]) == ["inside.txt"]
    assert (names_path / folders[0] / "inside.txt").read_bytes() == b"inside the folder with a slash\n"

    first_mount.assert_clean_exit()
    reverse_listing_order(emulator, folder)
    second_mount = mount(emulator, mountpoint=first_mount.path, cache_dir=first_mount.cache_dir)
    second_names, second_owners = shown_names(second_mount.path / "names", contents)

    assert sorted(second_names) == sorted(names), "names changed after a remount with the listing reversed"
    assert second_owners == owners, "a shown name reads another item after the remount"

    second_mount.assert_clean_exit()
    third_mount = mount(emulator, mountpoint=first_mount.path)
    third_names, third_owners = shown_names(third_mount.path / "names", contents)

    assert sorted(third_names) == sorted(names), "names changed after a remount with a new --cache-dir"
    assert third_owners == owners, "a shown name reads another item after a remount with a new --cache-dir"
