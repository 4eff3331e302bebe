"""System calls that change the account, through a real mount.

Each test checks what the calling program gets (return values, errno) and
what reached the service (the emulator's state and counters).
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import time

import pytest
from fusemount import run
from write_testing import FAST_MOUNT_OPTIONS

pytestmark = pytest.mark.mount

AT_FDCWD = -100
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2

_libc = ctypes.CDLL(None, use_errno=True)


def renameat2(old, new, flags: int) -> None:
    """Call renameat2(2), which Python's os module does not offer."""
    result = _libc.renameat2(AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new), flags)
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(old))


def names_on_service(emu, folder_id: str) -> list[str]:
    return sorted(entry.name for entry in emu.state.children(folder_id))


def content_on_service(emu, path: str) -> bytes:
    file_id = emu.state.find(path)
    assert file_id is not None, f"{path} is not on the service"
    return emu.state.file_bytes(file_id)


def errno_of(call, *args) -> int:
    with pytest.raises(OSError) as info:
        call(*args)
    return info.value.errno


def test_mkdir_then_listed(emulator, mounted):
    (mounted.path / "new").mkdir()

    assert os.listdir(mounted.path) == ["new"]
    assert emulator.state.find("new") is not None
    assert errno_of(os.mkdir, mounted.path / "new") == errno.EEXIST
    assert names_on_service(emulator, emulator.root_id) == ["new"]


def test_create_write_close(emulator, mounted):
    path = mounted.path / "hello.txt"
    with open(path, "wb") as file:
        file.write(b"hello")
        file.flush()
        # Written but not closed: the size is the staged one.
        assert os.stat(path).st_size == 5
        assert emulator.counters.uploads == 0

    assert content_on_service(emulator, "hello.txt") == b"hello"
    assert path.read_bytes() == b"hello"
    assert os.stat(path).st_size == 5


def test_exclusive_create_existing(emulator, mounted):
    emulator.state.add_file(emulator.root_id, "taken.txt", b"old")
    emulator.counters.reset()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL

    assert errno_of(os.open, mounted.path / "taken.txt", flags) == errno.EEXIST
    assert emulator.counters.uploads == 0
    assert content_on_service(emulator, "taken.txt") == b"old"
    assert names_on_service(emulator, emulator.root_id) == ["taken.txt"]


def test_unlink_file(emulator, mounted):
    emulator.state.add_file(emulator.root_id, "gone.txt", b"x")
    os.unlink(mounted.path / "gone.txt")

    assert emulator.state.find("gone.txt") is None
    assert os.listdir(mounted.path) == []
    assert errno_of(os.unlink, mounted.path / "gone.txt") == errno.ENOENT


def test_rmdir_nonempty_enotempty(emulator, mounted):
    folder = emulator.state.create_folder(emulator.root_id, "full")
    emulator.state.add_file(folder, "keep.txt", b"x")

    assert errno_of(os.rmdir, mounted.path / "full") == errno.ENOTEMPTY
    assert names_on_service(emulator, folder) == ["keep.txt"]


def test_rmdir_cache_claims_empty(emulator, mounted):
    folder = emulator.state.create_folder(emulator.root_id, "box")
    assert os.listdir(mounted.path / "box") == []
    # Added elsewhere after the listing, which the mount still trusts.
    emulator.state.add_file(folder, "late.txt", b"x")
    assert os.listdir(mounted.path / "box") == []

    assert errno_of(os.rmdir, mounted.path / "box") == errno.ENOTEMPTY
    assert names_on_service(emulator, folder) == ["late.txt"]


def test_rmdir_empty(emulator, mounted):
    emulator.state.create_folder(emulator.root_id, "empty")
    os.rmdir(mounted.path / "empty")
    assert emulator.state.find("empty") is None
    assert os.listdir(mounted.path) == []


def test_rename_noreplace_flag(emulator, mounted):
    emulator.state.add_file(emulator.root_id, "a", b"1")
    emulator.state.add_file(emulator.root_id, "b", b"2")

    assert errno_of(renameat2, mounted.path / "a", mounted.path / "b", RENAME_NOREPLACE) == errno.EEXIST
    renameat2(mounted.path / "a", mounted.path / "c", RENAME_NOREPLACE)
    assert names_on_service(emulator, emulator.root_id) == ["b", "c"]
    assert content_on_service(emulator, "c") == b"1"


def test_rename_exchange_einval(emulator, mounted):
    emulator.state.add_file(emulator.root_id, "a", b"1")
    emulator.state.add_file(emulator.root_id, "b", b"2")

    assert errno_of(renameat2, mounted.path / "a", mounted.path / "b", RENAME_EXCHANGE) == errno.EINVAL
    assert content_on_service(emulator, "a") == b"1"
    assert content_on_service(emulator, "b") == b"2"


def test_rename_over_file(emulator, mounted):
    emulator.state.add_file(emulator.root_id, "old.txt", b"old")
    new_id = emulator.state.add_file(emulator.root_id, "new.txt", b"new")
    os.rename(mounted.path / "new.txt", mounted.path / "old.txt")

    assert names_on_service(emulator, emulator.root_id) == ["old.txt"]
    assert emulator.state.find("old.txt") == new_id
    assert (mounted.path / "old.txt").read_bytes() == b"new"


def test_rename_kind_mismatch(emulator, mounted):
    folder = emulator.state.create_folder(emulator.root_id, "folder")
    emulator.state.add_file(emulator.root_id, "file", b"x")
    outer = emulator.state.create_folder(emulator.root_id, "outer")
    emulator.state.create_folder(outer, "inner")
    emulator.state.create_folder(emulator.root_id, "full")
    emulator.state.add_file(emulator.state.find("full"), "keep", b"x")

    assert errno_of(os.rename, mounted.path / "file", mounted.path / "folder") == errno.EISDIR
    assert errno_of(os.rename, mounted.path / "folder", mounted.path / "file") == errno.ENOTDIR
    assert errno_of(os.rename, mounted.path / "outer", mounted.path / "outer" / "inner" / "x") == errno.EINVAL
    assert errno_of(os.rename, mounted.path / "folder", mounted.path / "full") == errno.ENOTEMPTY
    assert emulator.state.find("folder") == folder
    assert emulator.state.find("outer/inner") is not None
    assert emulator.state.find("full/keep") is not None


def test_rename_folder_over_empty(emulator, mounted):
    source = emulator.state.create_folder(emulator.root_id, "src")
    emulator.state.add_file(source, "inside.txt", b"x")
    emulator.state.create_folder(emulator.root_id, "dst")
    os.rename(mounted.path / "src", mounted.path / "dst")

    assert names_on_service(emulator, emulator.root_id) == ["dst"]
    assert emulator.state.find("dst") == source
    assert os.listdir(mounted.path / "dst") == ["inside.txt"]


def test_staged_data_read_back(emulator, mounted):
    emulator.state.add_file(emulator.root_id, "doc.txt", b"0123456789")
    path = mounted.path / "doc.txt"
    with open(path, "r+b") as writing:
        writing.write(b"ab")
        writing.flush()
        with open(path, "rb") as reading:
            assert reading.read() == b"ab23456789"
    assert content_on_service(emulator, "doc.txt") == b"ab23456789"


def test_truncate_with_and_without_handle(emulator, mounted):
    emulator.state.add_file(emulator.root_id, "a.txt", b"0123456789")
    os.truncate(mounted.path / "a.txt", 4)
    assert content_on_service(emulator, "a.txt") == b"0123"

    with open(mounted.path / "a.txt", "r+b") as file:
        file.truncate(2)
    assert content_on_service(emulator, "a.txt") == b"01"
    assert os.stat(mounted.path / "a.txt").st_size == 2
    assert names_on_service(emulator, emulator.root_id) == ["a.txt"]


def test_times_kept_and_modes_accepted(emulator, mounted):
    emulator.state.add_file(emulator.root_id, "a.txt", b"abc")
    path = mounted.path / "a.txt"
    os.utime(path, ns=(1_500_000_000_000_000_000, 1_400_000_000_123_456_789))
    os.chmod(path, 0o600)
    os.chown(path, 0, 0)
    result = run(["touch", "-m", "-d", "2001-02-03 04:05:06 UTC", str(mounted.path / "b.txt")])

    assert os.stat(path).st_mtime_ns == 1_400_000_000_123_456_789
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert result.returncode == 0, result.stderr
    assert os.stat(mounted.path / "b.txt").st_mtime == 981173106
    assert content_on_service(emulator, "b.txt") == b""


def test_times_survive_remount(emulator, mount):
    emulator.state.add_file(emulator.root_id, "a.txt", b"abc")
    first = mount(emulator, *FAST_MOUNT_OPTIONS)
    os.utime(first.path / "a.txt", ns=(0, 1_300_000_000_000_000_000))
    first.assert_clean_exit()

    second = mount(emulator, *FAST_MOUNT_OPTIONS, mountpoint=first.path, cache_dir=first.cache_dir)
    assert os.stat(second.path / "a.txt").st_mtime_ns == 1_300_000_000_000_000_000


def test_unsupported_objects(emulator, mounted):
    emulator.state.add_file(emulator.root_id, "a.txt", b"x")
    path = mounted.path / "a.txt"

    assert errno_of(os.symlink, "a.txt", mounted.path / "link") == errno.EPERM
    assert errno_of(os.link, path, mounted.path / "hard") == errno.EPERM
    assert errno_of(os.mkfifo, mounted.path / "fifo") == errno.EPERM
    assert errno_of(os.setxattr, path, "user.test", b"1") == errno.ENOTSUP
    assert names_on_service(emulator, emulator.root_id) == ["a.txt"]


def test_read_only_mount_erofs(emulator, mount):
    emulator.state.add_file(emulator.root_id, "a.txt", b"x")
    emulator.state.create_folder(emulator.root_id, "dir")
    mounted = mount(emulator, *FAST_MOUNT_OPTIONS, "--read-only")
    root = mounted.path

    assert errno_of(os.mkdir, root / "new") == errno.EROFS
    assert errno_of(os.open, root / "new.txt", os.O_WRONLY | os.O_CREAT) == errno.EROFS
    assert errno_of(os.open, root / "a.txt", os.O_WRONLY) == errno.EROFS
    assert errno_of(os.unlink, root / "a.txt") == errno.EROFS
    assert errno_of(os.rmdir, root / "dir") == errno.EROFS
    assert errno_of(os.rename, root / "a.txt", root / "b.txt") == errno.EROFS
    assert errno_of(os.truncate, root / "a.txt", 0) == errno.EROFS
    assert errno_of(os.utime, root / "a.txt", (0, 0)) == errno.EROFS
    assert (root / "a.txt").read_bytes() == b"x"
    assert names_on_service(emulator, emulator.root_id) == ["a.txt", "dir"]


def test_unicode_and_slash_names(emulator, mounted):
    emulator.state.add_file(emulator.root_id, "AC/DC.mp3", b"slash")
    shown = "AC\u2215DC.mp3"
    assert os.listdir(mounted.path) == [shown]

    os.rename(mounted.path / shown, mounted.path / "Ünïcödé 日本.mp3")
    assert names_on_service(emulator, emulator.root_id) == ["Ünïcödé 日本.mp3"]
    (mounted.path / "a\u2215b.txt").write_bytes(b"real division slash")
    assert content_on_service(emulator, "a\u2215b.txt") == b"real division slash"


def test_suffixed_twin_takes_freed_name(emulator, mounted):
    if not emulator.options.duplicate_names:
        pytest.skip("two entries with one name need a service that allows duplicate names")
    emulator.state.add_file(emulator.root_id, "twin.txt", b"1")
    emulator.state.add_file(emulator.root_id, "twin.txt", b"22")
    names = sorted(os.listdir(mounted.path))
    suffixed = [name for name in names if name != "twin.txt"][0]
    kept_size = os.stat(mounted.path / suffixed).st_size

    os.unlink(mounted.path / "twin.txt")

    # The kernel drops the suffixed name from its cache within moments,
    # not after the listing's time to live, because the entry behind it now
    # has the plain name. pyfuse3 sends the invalidation from its own thread,
    # so the test allows it a bounded moment to arrive.
    assert os.listdir(mounted.path) == ["twin.txt"]
    deadline = time.monotonic() + 5
    while (mounted.path / suffixed).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert errno_of(os.stat, mounted.path / suffixed) == errno.ENOENT
    assert os.stat(mounted.path / "twin.txt").st_size == kept_size
    assert len(emulator.state.children(emulator.root_id)) == 1
