"""Write handlers of ``pmzfs.fs.Operations`` with a real writer, against the emulator.

The handlers are called as pyfuse3 would call them; the emulator's state
shows what reached the service.
"""

from __future__ import annotations

import errno
import os

import pyfuse3
import pytest
import trio
from fs_testing import ReplyCollector

from pmzfs.api.models import Item
from pmzfs.namespace import MOVING_NAME_PREFIX, staging_id_of

ROOT = pyfuse3.ROOT_INODE
WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC


class Fields:
    """A stand-in for ``pyfuse3.SetattrFields``, whose attributes are read-only."""

    def __init__(self, **changed: bool) -> None:
        for name in ("update_atime", "update_mtime", "update_ctime", "update_mode", "update_uid", "update_gid", "update_size"):
            setattr(self, name, changed.get(name, False))


@pytest.fixture
def ops(writable):
    return writable[0]


@pytest.fixture
def tree(writable):
    return writable[1]


@pytest.fixture
def writer(writable):
    return writable[2]


async def lookup(ops, parent: int, name: str | bytes) -> pyfuse3.EntryAttributes:
    if isinstance(name, str):
        name = name.encode()
    return await ops.lookup(parent, name, None)


async def names_in(ops, inode: int) -> list[bytes]:
    handle = await ops.opendir(inode, None)
    token = ReplyCollector()
    try:
        await ops.readdir(handle, 0, token)
    finally:
        await ops.releasedir(handle)
    return sorted(token.names[2:])


async def write_file(ops, parent: int, name: str, data: bytes, flags: int = WRITE_FLAGS) -> int:
    """Create ``name`` with ``data`` as open, write, close would; return its inode."""
    info, attributes = await ops.create(parent, name.encode(), 0o644, flags, None)
    try:
        await ops.write(info.fh, 0, data)
        await ops.flush(info.fh)
    finally:
        await ops.release(info.fh)
    return attributes.st_ino


def service_names(emulator, folder_id: str) -> list[str]:
    return sorted(entry.name for entry in emulator.state.children(folder_id))


def service_bytes(emulator, path: str) -> bytes:
    file_id = emulator.state.find(path)
    assert file_id is not None, f"{path} is not on the service"
    return emulator.state.file_bytes(file_id)


async def raises_errno(call) -> int:
    with pytest.raises(pyfuse3.FUSEError) as info:
        await call
    return info.value.errno


# ------------------------------------------------------------------ folders


async def test_mkdir_visible_without_listing(ops, emulator):
    attributes = await ops.mkdir(ROOT, b"new", 0o755, None)
    emulator.counters.reset()

    assert emulator.state.find("new") is not None
    assert (await lookup(ops, ROOT, "new")).st_ino == attributes.st_ino
    assert await names_in(ops, ROOT) == [b"new"]
    assert emulator.counters.api_calls["folder/list"] == 0


async def test_mkdir_taken_name_eexist(ops, emulator):
    emulator.state.create_folder(emulator.root_id, "taken")
    assert await raises_errno(ops.mkdir(ROOT, b"taken", 0o755, None)) == errno.EEXIST
    assert service_names(emulator, emulator.root_id) == ["taken"]


@pytest.mark.parametrize("duplicates", [True, False], ids=["duplicates-allowed", "duplicates-rejected"])
async def test_mkdir_name_unseen_by_cache(ops, emulator, duplicates):
    emulator.options.duplicate_names = duplicates
    await names_in(ops, ROOT)
    # Created elsewhere after the listing, which is still fresh.
    emulator.state.create_folder(emulator.root_id, "late")

    assert await raises_errno(ops.mkdir(ROOT, b"late", 0o755, None)) == errno.EEXIST
    assert service_names(emulator, emulator.root_id) == ["late"]


async def test_rmdir_empty_folder(ops, emulator):
    emulator.state.create_folder(emulator.root_id, "empty")
    await lookup(ops, ROOT, "empty")
    await ops.rmdir(ROOT, b"empty", None)

    assert emulator.state.find("empty") is None
    assert (await lookup(ops, ROOT, "empty")).st_ino == 0


async def test_rmdir_cache_says_empty(ops, emulator):
    folder = emulator.state.create_folder(emulator.root_id, "box")
    inode = (await lookup(ops, ROOT, "box")).st_ino
    assert await names_in(ops, inode) == []
    emulator.state.add_file(folder, "late.txt", b"keep me")

    assert await raises_errno(ops.rmdir(ROOT, b"box", None)) == errno.ENOTEMPTY
    assert service_names(emulator, folder) == ["late.txt"]


async def test_rmdir_staged_file_enotempty(ops, emulator):
    folder = emulator.state.create_folder(emulator.root_id, "box")
    inode = (await lookup(ops, ROOT, "box")).st_ino
    info, _ = await ops.create(inode, b"open.txt", 0o644, WRITE_FLAGS, None)
    try:
        assert await raises_errno(ops.rmdir(ROOT, b"box", None)) == errno.ENOTEMPTY
    finally:
        await ops.release(info.fh)
    assert emulator.state.find("box") == folder


async def test_rmdir_hidden_upload_enotempty(ops, emulator):
    folder = emulator.state.create_folder(emulator.root_id, "box")
    emulator.state.add_file(folder, ".pmzfs-new-0123456789abcdef.part", b"partial")
    inode = (await lookup(ops, ROOT, "box")).st_ino

    assert await names_in(ops, inode) == []
    assert await raises_errno(ops.rmdir(ROOT, b"box", None)) == errno.ENOTEMPTY


async def test_rmdir_file_enotdir(ops, emulator):
    emulator.state.add_file(emulator.root_id, "a.txt", b"x")
    assert await raises_errno(ops.rmdir(ROOT, b"a.txt", None)) == errno.ENOTDIR


# -------------------------------------------------------------------- files


async def test_create_write_close_uploads(ops, emulator, tree):
    info, attributes = await ops.create(ROOT, b"new.txt", 0o644, WRITE_FLAGS, None)
    inode = attributes.st_ino
    try:
        await ops.write(info.fh, 0, b"hello world")
        assert (await ops.getattr(inode, None)).st_size == 11
        assert emulator.counters.uploads == 0
        await ops.flush(info.fh)
    finally:
        await ops.release(info.fh)

    assert service_bytes(emulator, "new.txt") == b"hello world"
    node = tree.node(inode)
    assert node.id == emulator.state.find("new.txt")
    assert (await lookup(ops, ROOT, "new.txt")).st_ino == inode
    assert (await ops.getattr(inode, None)).st_size == 11


async def test_staged_file_listed_before_upload(ops, emulator, tree):
    info, attributes = await ops.create(ROOT, b"draft.txt", 0o644, WRITE_FLAGS, None)
    try:
        await ops.write(info.fh, 0, b"abc")
        # A fresh listing of the folder keeps the file that is only staged.
        tree.invalidate(ROOT)
        assert await names_in(ops, ROOT) == [b"draft.txt"]
        assert (await lookup(ops, ROOT, "draft.txt")).st_ino == attributes.st_ino
        assert staging_id_of(tree.node(attributes.st_ino).id) is not None
    finally:
        await ops.flush(info.fh)
        await ops.release(info.fh)
    assert emulator.state.find("draft.txt") is not None


async def test_empty_file_uploaded(ops, emulator):
    await write_file(ops, ROOT, "empty.txt", b"")
    assert service_bytes(emulator, "empty.txt") == b""


async def test_create_exclusive_existing_eexist(ops, emulator):
    emulator.state.add_file(emulator.root_id, "a.txt", b"old")
    emulator.counters.reset()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL

    assert await raises_errno(ops.create(ROOT, b"a.txt", 0o644, flags, None)) == errno.EEXIST
    assert emulator.counters.uploads == 0
    assert service_bytes(emulator, "a.txt") == b"old"


async def test_open_existing_copy_on_write(ops, emulator):
    emulator.state.add_file(emulator.root_id, "a.txt", b"0123456789")
    inode = (await lookup(ops, ROOT, "a.txt")).st_ino
    info = await ops.open(inode, os.O_RDWR, None)
    try:
        await ops.write(info.fh, 2, b"ab")
        assert await ops.read(info.fh, 0, 100) == b"01ab456789"
        await ops.flush(info.fh)
    finally:
        await ops.release(info.fh)
    assert service_bytes(emulator, "a.txt") == b"01ab456789"
    assert service_names(emulator, emulator.root_id) == ["a.txt"]


async def test_open_truncate_skips_fetch(ops, emulator):
    file_id = emulator.state.add_file(emulator.root_id, "a.txt", b"old content")
    inode = (await lookup(ops, ROOT, "a.txt")).st_ino
    info = await ops.open(inode, os.O_WRONLY | os.O_TRUNC, None)
    try:
        await ops.write(info.fh, 0, b"new")
        await ops.flush(info.fh)
    finally:
        await ops.release(info.fh)
    assert emulator.counters.link_requests.get(file_id, 0) == 0
    assert service_bytes(emulator, "a.txt") == b"new"


async def test_read_only_open_sees_staged_data(ops, emulator):
    emulator.state.add_file(emulator.root_id, "a.txt", b"service copy")
    inode = (await lookup(ops, ROOT, "a.txt")).st_ino
    writing = await ops.open(inode, os.O_WRONLY | os.O_TRUNC, None)
    try:
        await ops.write(writing.fh, 0, b"staged")
        reading = await ops.open(inode, os.O_RDONLY, None)
        try:
            assert await ops.read(reading.fh, 0, 100) == b"staged"
            # A read-only descriptor cannot write, and its close uploads nothing.
            assert await raises_errno(ops.write(reading.fh, 0, b"x")) == errno.EBADF
            await ops.flush(reading.fh)
        finally:
            await ops.release(reading.fh)
        assert emulator.counters.uploads == 0
    finally:
        await ops.flush(writing.fh)
        await ops.release(writing.fh)
    assert service_bytes(emulator, "a.txt") == b"staged"


async def test_truncate_without_handle(ops, emulator):
    emulator.state.add_file(emulator.root_id, "a.txt", b"0123456789")
    inode = (await lookup(ops, ROOT, "a.txt")).st_ino
    attributes = pyfuse3.EntryAttributes()
    attributes.st_size = 4
    result = await ops.setattr(inode, attributes, Fields(update_size=True), None, None)

    assert result.st_size == 4
    assert service_bytes(emulator, "a.txt") == b"0123"
    assert service_names(emulator, emulator.root_id) == ["a.txt"]


async def test_truncate_with_handle(ops, emulator):
    emulator.state.add_file(emulator.root_id, "a.txt", b"0123456789")
    inode = (await lookup(ops, ROOT, "a.txt")).st_ino
    info = await ops.open(inode, os.O_RDWR, None)
    attributes = pyfuse3.EntryAttributes()
    attributes.st_size = 3
    try:
        await ops.setattr(inode, attributes, Fields(update_size=True), info.fh, None)
        assert emulator.counters.uploads == 0
        await ops.flush(info.fh)
    finally:
        await ops.release(info.fh)
    assert service_bytes(emulator, "a.txt") == b"012"


async def test_mtime_kept_by_id_and_size(ops, emulator):
    emulator.state.add_file(emulator.root_id, "a.txt", b"abc")
    inode = (await lookup(ops, ROOT, "a.txt")).st_ino
    attributes = pyfuse3.EntryAttributes()
    attributes.st_mtime_ns = 1_500_000_000_123_456_789
    attributes.st_mode = 0o600
    fields = Fields(update_mtime=True, update_atime=True, update_mode=True, update_uid=True)
    result = await ops.setattr(inode, attributes, fields, None, None)

    assert result.st_mtime_ns == 1_500_000_000_123_456_789
    assert (await ops.getattr(inode, None)).st_mtime_ns == 1_500_000_000_123_456_789
    # chmod is accepted without effect.
    assert result.st_mode & 0o777 == 0o644
    assert emulator.counters.uploads == 0


async def test_mtime_of_new_file_survives_upload(ops, emulator, writer):
    info, attributes = await ops.create(ROOT, b"new.txt", 0o644, WRITE_FLAGS, None)
    times = pyfuse3.EntryAttributes()
    times.st_mtime_ns = 1_400_000_000_000_000_000
    try:
        await ops.write(info.fh, 0, b"abc")
        await ops.setattr(attributes.st_ino, times, Fields(update_mtime=True), info.fh, None)
        await ops.flush(info.fh)
    finally:
        await ops.release(info.fh)
    assert (await ops.getattr(attributes.st_ino, None)).st_mtime_ns == 1_400_000_000_000_000_000
    assert writer.mtimes.get(emulator.state.find("new.txt"), 3) == 1_400_000_000_000_000_000


async def test_unlink_service_file(ops, emulator):
    emulator.state.add_file(emulator.root_id, "a.txt", b"abc")
    await lookup(ops, ROOT, "a.txt")
    await ops.unlink(ROOT, b"a.txt", None)
    assert emulator.state.find("a.txt") is None
    assert (await lookup(ops, ROOT, "a.txt")).st_ino == 0


async def test_unlink_open_new_file(ops, emulator):
    info, _ = await ops.create(ROOT, b"scratch.tmp", 0o644, WRITE_FLAGS, None)
    try:
        await ops.write(info.fh, 0, b"abc")
        await ops.unlink(ROOT, b"scratch.tmp", None)
        assert (await lookup(ops, ROOT, "scratch.tmp")).st_ino == 0
        await ops.flush(info.fh)
    finally:
        await ops.release(info.fh)
    assert emulator.counters.uploads == 0
    assert service_names(emulator, emulator.root_id) == []


async def test_unlink_missing_enoent(ops):
    assert await raises_errno(ops.unlink(ROOT, b"nothing", None)) == errno.ENOENT


async def test_suffixed_name_acts_on_its_item(ops, emulator, tree):
    first = emulator.state.add_file(emulator.root_id, "twin.txt", b"1")
    second = emulator.state.add_file(emulator.root_id, "twin.txt", b"22")
    shown = [name for name in await names_in(ops, ROOT) if name != b"twin.txt"][0]
    plain_id = (await tree.lookup(ROOT, b"twin.txt")).id
    suffixed_id = second if plain_id == first else first

    await ops.unlink(ROOT, shown, None)
    assert [entry.id for entry in emulator.state.children(emulator.root_id)] == [plain_id]
    assert emulator.state.find_file(suffixed_id) is None


@pytest.mark.parametrize("name", [b"\xff\xfe.txt", b".pmzfs-new-0123456789abcdef.part"], ids=["not-utf8", "reserved"])
async def test_invalid_new_name_einval(ops, name):
    assert await raises_errno(ops.create(ROOT, name, 0o644, WRITE_FLAGS, None)) == errno.EINVAL
    assert await raises_errno(ops.mkdir(ROOT, name, 0o755, None)) == errno.EINVAL


async def test_upload_names_hidden(ops, emulator):
    emulator.state.add_file(emulator.root_id, ".pmzfs-old-0123456789abcdef.part", b"old")
    emulator.state.add_file(emulator.root_id, "seen.txt", b"x")
    assert await names_in(ops, ROOT) == [b"seen.txt"]
    assert (await lookup(ops, ROOT, ".pmzfs-old-0123456789abcdef.part")).st_ino == 0


async def test_symlink_link_mknod_eperm(ops, emulator):
    emulator.state.add_file(emulator.root_id, "a.txt", b"x")
    inode = (await lookup(ops, ROOT, "a.txt")).st_ino
    assert await raises_errno(ops.symlink(ROOT, b"l", b"a.txt", None)) == errno.EPERM
    assert await raises_errno(ops.link(inode, ROOT, b"l", None)) == errno.EPERM
    assert await raises_errno(ops.mknod(ROOT, b"n", 0o644, 0, None)) == errno.EPERM
    assert await raises_errno(ops.setxattr(inode, b"user.a", b"1", None)) == errno.ENOTSUP


# ------------------------------------------------------------------- rename


async def test_rename_same_folder(ops, emulator):
    file_id = emulator.state.add_file(emulator.root_id, "a.txt", b"abc")
    inode = (await lookup(ops, ROOT, "a.txt")).st_ino
    await ops.rename(ROOT, b"a.txt", ROOT, b"b.txt", 0, None)

    assert emulator.state.find("b.txt") == file_id
    assert (await lookup(ops, ROOT, "b.txt")).st_ino == inode
    assert (await lookup(ops, ROOT, "a.txt")).st_ino == 0


@pytest.mark.parametrize("duplicates", [True, False], ids=["duplicates-allowed", "duplicates-rejected"])
async def test_rename_across_folders_keeps_id(ops, emulator, duplicates):
    emulator.options.duplicate_names = duplicates
    source = emulator.state.create_folder(emulator.root_id, "from")
    target = emulator.state.create_folder(emulator.root_id, "to")
    file_id = emulator.state.add_file(source, "a.txt", b"abc")
    # The target has an entry with the source's name, but not the new name.
    emulator.state.add_file(target, "a.txt", b"other")
    source_inode = (await lookup(ops, ROOT, "from")).st_ino
    target_inode = (await lookup(ops, ROOT, "to")).st_ino
    await lookup(ops, source_inode, "a.txt")
    emulator.counters.reset()

    await ops.rename(source_inode, b"a.txt", target_inode, b"b.txt", 0, None)

    assert emulator.state.find("to/b.txt") == file_id
    assert service_names(emulator, source) == []
    assert service_names(emulator, target) == ["a.txt", "b.txt"]
    assert emulator.counters.uploads == 0
    assert not any(name.startswith(MOVING_NAME_PREFIX) for name in service_names(emulator, target))


@pytest.mark.parametrize("duplicates", [True, False], ids=["duplicates-allowed", "duplicates-rejected"])
async def test_rename_over_file_replaces(ops, emulator, duplicates):
    emulator.options.duplicate_names = duplicates
    new_id = emulator.state.add_file(emulator.root_id, "new.tmp", b"new content")
    old_id = emulator.state.add_file(emulator.root_id, "doc.txt", b"old content")
    await lookup(ops, ROOT, "doc.txt")
    await lookup(ops, ROOT, "new.tmp")

    await ops.rename(ROOT, b"new.tmp", ROOT, b"doc.txt", 0, None)

    assert service_names(emulator, emulator.root_id) == ["doc.txt"]
    assert emulator.state.find("doc.txt") == new_id
    assert emulator.state.find_file(old_id) is None
    assert await names_in(ops, ROOT) == [b"doc.txt"]


@pytest.mark.parametrize("duplicates", [True, False], ids=["duplicates-allowed", "duplicates-rejected"])
async def test_rename_over_file_other_folder(ops, emulator, duplicates):
    emulator.options.duplicate_names = duplicates
    source = emulator.state.create_folder(emulator.root_id, "from")
    target = emulator.state.create_folder(emulator.root_id, "to")
    new_id = emulator.state.add_file(source, "doc.txt", b"new")
    emulator.state.add_file(target, "doc.txt", b"old")
    source_inode = (await lookup(ops, ROOT, "from")).st_ino
    target_inode = (await lookup(ops, ROOT, "to")).st_ino
    await lookup(ops, source_inode, "doc.txt")
    await lookup(ops, target_inode, "doc.txt")

    await ops.rename(source_inode, b"doc.txt", target_inode, b"doc.txt", 0, None)

    assert [entry.id for entry in emulator.state.children(target)] == [new_id]
    assert service_names(emulator, source) == []


async def test_rename_staged_new_file(ops, emulator, tree):
    info, attributes = await ops.create(ROOT, b"draft.tmp", 0o644, WRITE_FLAGS, None)
    try:
        await ops.write(info.fh, 0, b"abc")
        await ops.rename(ROOT, b"draft.tmp", ROOT, b"final.txt", 0, None)
        assert (await lookup(ops, ROOT, "final.txt")).st_ino == attributes.st_ino
        await ops.flush(info.fh)
    finally:
        await ops.release(info.fh)
    assert service_names(emulator, emulator.root_id) == ["final.txt"]
    assert service_bytes(emulator, "final.txt") == b"abc"
    assert tree.node(attributes.st_ino).id == emulator.state.find("final.txt")


async def test_rename_folder_over_empty_folder(ops, emulator):
    source = emulator.state.create_folder(emulator.root_id, "src")
    emulator.state.add_file(source, "inside.txt", b"x")
    emptied = emulator.state.create_folder(emulator.root_id, "dst")
    await lookup(ops, ROOT, "src")
    await lookup(ops, ROOT, "dst")

    await ops.rename(ROOT, b"src", ROOT, b"dst", 0, None)

    assert emulator.state.find("dst") == source
    assert emulator.state.find("dst/inside.txt") is not None
    assert emptied not in {folder.id for folder in emulator.state.all_folders()}


async def test_rename_folder_over_nonempty(ops, emulator):
    emulator.state.create_folder(emulator.root_id, "src")
    target = emulator.state.create_folder(emulator.root_id, "dst")
    emulator.state.add_file(target, "keep.txt", b"x")
    await lookup(ops, ROOT, "src")
    await lookup(ops, ROOT, "dst")

    assert await raises_errno(ops.rename(ROOT, b"src", ROOT, b"dst", 0, None)) == errno.ENOTEMPTY
    assert service_names(emulator, target) == ["keep.txt"]


async def test_rename_kind_mismatch(ops, emulator):
    emulator.state.create_folder(emulator.root_id, "folder")
    emulator.state.add_file(emulator.root_id, "file", b"x")
    await lookup(ops, ROOT, "folder")
    await lookup(ops, ROOT, "file")

    assert await raises_errno(ops.rename(ROOT, b"file", ROOT, b"folder", 0, None)) == errno.EISDIR
    assert await raises_errno(ops.rename(ROOT, b"folder", ROOT, b"file", 0, None)) == errno.ENOTDIR
    assert service_names(emulator, emulator.root_id) == ["file", "folder"]


async def test_rename_flags(ops, emulator):
    emulator.state.add_file(emulator.root_id, "a", b"1")
    emulator.state.add_file(emulator.root_id, "b", b"2")
    await lookup(ops, ROOT, "a")
    await lookup(ops, ROOT, "b")

    noreplace = ops.rename(ROOT, b"a", ROOT, b"b", pyfuse3.RENAME_NOREPLACE, None)
    assert await raises_errno(noreplace) == errno.EEXIST
    exchange = ops.rename(ROOT, b"a", ROOT, b"b", pyfuse3.RENAME_EXCHANGE, None)
    assert await raises_errno(exchange) == errno.EINVAL
    assert service_bytes(emulator, "a") == b"1"
    assert service_bytes(emulator, "b") == b"2"

    await ops.rename(ROOT, b"a", ROOT, b"c", pyfuse3.RENAME_NOREPLACE, None)
    assert service_names(emulator, emulator.root_id) == ["b", "c"]


async def test_rename_folder_into_itself(ops, emulator):
    outer = emulator.state.create_folder(emulator.root_id, "outer")
    emulator.state.create_folder(outer, "inner")
    outer_inode = (await lookup(ops, ROOT, "outer")).st_ino
    inner_inode = (await lookup(ops, outer_inode, "inner")).st_ino

    assert await raises_errno(ops.rename(ROOT, b"outer", inner_inode, b"moved", 0, None)) == errno.EINVAL
    assert await raises_errno(ops.rename(ROOT, b"outer", outer_inode, b"moved", 0, None)) == errno.EINVAL
    assert emulator.state.find("outer/inner") is not None


# --------------------------------------------------------- tree consistency


async def test_edit_during_listing_kept(ops, emulator, tree):
    await names_in(ops, ROOT)
    tree.invalidate(ROOT)
    emulator.options.api_latency = 0.3
    item = Item(id="made-during-listing", name="fresh.txt", type="file", created_at=1_700_000_000, size=1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(tree.refresh, ROOT)
        # The folder/list call is on its way, with the folder as it is now.
        await trio.sleep(0.1)
        tree.add_entry(ROOT, item)
    emulator.options.api_latency = 0

    node = await tree.lookup(ROOT, b"fresh.txt")
    assert node is not None
    assert node.id == "made-during-listing"


async def test_status_reports_failed_upload(ops, emulator, writer):
    emulator.options.upload_failure = "http_500"
    info, _ = await ops.create(ROOT, b"new.txt", 0o644, WRITE_FLAGS, None)
    try:
        await ops.write(info.fh, 0, b"abc")
        assert await raises_errno(ops.flush(info.fh)) == errno.EIO
    finally:
        await ops.release(info.fh)

    uploads = ops.status()["uploads"]
    assert uploads["pending"] == []
    assert [entry["path"] for entry in uploads["failed"]] == ["new.txt"]
    assert uploads["failed"][0]["attempts"] == 1
    assert "500" in uploads["failed"][0]["error"]
    # The staged file is still shown, with its size.
    assert (await lookup(ops, ROOT, "new.txt")).st_size == 3


async def test_upload_quota_edquot(ops, emulator):
    emulator.options.space_limit = 10
    info, _ = await ops.create(ROOT, b"big.bin", 0o644, WRITE_FLAGS, None)
    try:
        await ops.write(info.fh, 0, b"x" * 100)
        assert await raises_errno(ops.flush(info.fh)) == errno.EDQUOT
    finally:
        await ops.release(info.fh)
    assert service_names(emulator, emulator.root_id) == []
