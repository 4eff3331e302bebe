"""Handlers of ``pmzfs.fs.Operations`` against the emulator: metadata,
directory snapshots, lookup counts, reads and errno mapping."""

from __future__ import annotations

import errno
import logging
import os
import stat

import pyfuse3
import pytest
import trio
from fs_testing import ReplyCollector

from pmzfs.tree import TreeError

ROOT = pyfuse3.ROOT_INODE


async def lookup(ops, parent: int, name: str | bytes) -> pyfuse3.EntryAttributes:
    if isinstance(name, str):
        name = name.encode()
    return await ops.lookup(parent, name, None)


async def read_directory(ops, inode: int, capacity: int = 1_000_000) -> ReplyCollector:
    handle = await ops.opendir(inode, None)
    token = ReplyCollector(capacity)
    try:
        await ops.readdir(handle, 0, token)
    finally:
        await ops.releasedir(handle)
    return token


def fuse_errno(info: pytest.ExceptionInfo) -> int:
    return info.value.errno


# ------------------------------------------------------------------ metadata


async def test_file_attributes(ops, emulator):
    emulator.state.add_file(emulator.root_id, "movie.mkv", b"x" * 1000)
    attributes = await lookup(ops, ROOT, "movie.mkv")

    assert stat.S_ISREG(attributes.st_mode)
    assert stat.S_IMODE(attributes.st_mode) == 0o644
    assert attributes.st_size == 1000
    assert attributes.st_nlink == 1
    assert attributes.st_uid == 1234
    assert attributes.st_gid == 5678
    assert attributes.st_blocks == 2
    assert attributes.st_blksize == 128 * 1024
    assert attributes.st_mtime_ns > 0
    assert attributes.st_mtime_ns == attributes.st_ctime_ns == attributes.st_atime_ns
    assert 0 < attributes.entry_timeout <= 60
    assert attributes.attr_timeout == attributes.entry_timeout


async def test_folder_attributes(ops, emulator):
    emulator.state.create_folder(emulator.root_id, "Movies")
    attributes = await lookup(ops, ROOT, "Movies")
    root = await ops.getattr(ROOT, None)

    assert stat.S_ISDIR(attributes.st_mode)
    assert stat.S_IMODE(attributes.st_mode) == 0o755
    assert attributes.st_nlink == 1
    assert stat.S_ISDIR(root.st_mode)
    assert root.st_ino == ROOT


async def test_umask_applies(emulator, parts, mount_options):
    from pmzfs.fs import Operations

    _, tree, reader = parts
    mount_options.umask = 0o077
    ops = Operations(tree, reader, mount_options)
    emulator.state.add_file(emulator.root_id, "private.txt", b"x")
    attributes = await lookup(ops, ROOT, "private.txt")
    assert stat.S_IMODE(attributes.st_mode) == 0o600


async def test_getattr_matches_lookup(ops, emulator):
    emulator.state.add_file(emulator.root_id, "a.txt", b"abc")
    looked_up = await lookup(ops, ROOT, "a.txt")
    attributes = await ops.getattr(looked_up.st_ino, None)
    assert attributes.st_ino == looked_up.st_ino
    assert attributes.st_size == 3


async def test_missing_name_negative_entry(ops, emulator):
    attributes = await lookup(ops, ROOT, "nothing-here")
    assert attributes.st_ino == 0
    assert attributes.entry_timeout == 2.0


async def test_unknown_inode_enoent(ops):
    with pytest.raises(pyfuse3.FUSEError) as info:
        await ops.getattr(987654321, None)
    assert fuse_errno(info) == errno.ENOENT


async def test_statfs_reports_free_space(ops):
    data = await ops.statfs(None)
    assert data.f_namemax == 255
    assert data.f_bavail > 0
    assert data.f_blocks >= data.f_bfree
    assert data.f_bavail * data.f_frsize >= 2**50


async def test_xattr_calls(ops, emulator):
    emulator.state.add_file(emulator.root_id, "a.txt", b"abc")
    inode = (await lookup(ops, ROOT, "a.txt")).st_ino
    assert await ops.listxattr(inode, None) == []
    with pytest.raises(pyfuse3.FUSEError) as info:
        await ops.getxattr(inode, b"user.test", None)
    assert fuse_errno(info) == pyfuse3.ENOATTR
    with pytest.raises(pyfuse3.FUSEError) as info:
        await ops.setxattr(inode, b"user.test", b"1", None)
    assert fuse_errno(info) == errno.ENOTSUP


# --------------------------------------------------------------- directories


async def test_readdir_lists_entries_with_attributes(ops, emulator):
    emulator.state.add_file(emulator.root_id, "a.txt", b"abc")
    emulator.state.create_folder(emulator.root_id, "sub")
    token = await read_directory(ops, ROOT)

    assert token.names[:2] == [b".", b".."]
    assert sorted(token.names[2:]) == [b"a.txt", b"sub"]
    by_name = {name: attributes for name, attributes, _ in token.entries}
    assert by_name[b"a.txt"].st_size == 3
    assert stat.S_ISDIR(by_name[b"sub"].st_mode)


async def test_large_folder_one_listing(ops, emulator):
    folder = emulator.state.create_folder(emulator.root_id, "big")
    for index in range(2000):
        emulator.state.add_file(folder, f"file-{index:04d}.bin", b"")
    big = await lookup(ops, ROOT, "big")
    emulator.counters.reset()

    token = await read_directory(ops, big.st_ino)
    for name, attributes, _ in token.entries[2:]:
        assert (await lookup(ops, big.st_ino, name)).st_ino == attributes.st_ino
        await ops.getattr(attributes.st_ino, None)

    assert len(token.entries) == 2002
    assert emulator.counters.api_calls.get("folder/list", 0) == 1


async def test_readdir_offsets_use_snapshot(ops, tree, emulator):
    for index in range(10):
        emulator.state.add_file(emulator.root_id, f"f{index}", b"")
    handle = await ops.opendir(ROOT, None)
    first = ReplyCollector(capacity=5)
    await ops.readdir(handle, 0, first)

    # The folder changes between two readdir calls of one open handle.
    emulator.state.add_file(emulator.root_id, "late", b"")
    tree.invalidate(ROOT)
    await tree.listing(ROOT)
    rest = ReplyCollector()
    await ops.readdir(handle, first.entries[-1][2], rest)
    await ops.releasedir(handle)

    names = first.names + rest.names
    assert len(names) == len(set(names)) == 12
    assert b"late" not in names
    assert b"late" in (await read_directory(ops, ROOT)).names


async def test_readdir_counts_lookups(ops, tree, emulator):
    emulator.state.add_file(emulator.root_id, "a.txt", b"abc")
    token = await read_directory(ops, ROOT)
    inode = {name: attributes.st_ino for name, attributes, _ in token.entries}[b"a.txt"]
    assert tree.node(inode).lookups == 1

    await lookup(ops, ROOT, "a.txt")
    assert tree.node(inode).lookups == 2
    # "." and ".." take no lookup reference.
    assert tree.node(ROOT).lookups == 0

    await ops.forget([(inode, 2)])
    assert tree.node(inode).lookups == 0


async def test_forget_drops_deleted_node(ops, tree, emulator):
    emulator.state.add_file(emulator.root_id, "a.txt", b"abc")
    inode = (await lookup(ops, ROOT, "a.txt")).st_ino
    emulator.state.delete_file(next(f.id for f in emulator.state.all_files() if f.name == "a.txt"))
    await tree.refresh(ROOT)

    assert (await ops.getattr(inode, None)).st_size == 3
    await ops.forget([(inode, 1)])
    with pytest.raises(pyfuse3.FUSEError) as info:
        await ops.getattr(inode, None)
    assert fuse_errno(info) == errno.ENOENT


async def test_forget_never_raises(ops):
    await ops.forget([(123456789, 5)])


async def test_opendir_on_file_enotdir(ops, emulator):
    emulator.state.add_file(emulator.root_id, "a.txt", b"abc")
    inode = (await lookup(ops, ROOT, "a.txt")).st_ino
    with pytest.raises(pyfuse3.FUSEError) as info:
        await ops.opendir(inode, None)
    assert fuse_errno(info) == errno.ENOTDIR


async def test_awkward_names_shown_and_found(ops, emulator):
    emulator.state.add_file(emulator.root_id, "AC/DC.mp3", b"1")
    emulator.state.add_file(emulator.root_id, "twin.txt", b"22")
    emulator.state.add_file(emulator.root_id, "twin.txt", b"333")
    token = await read_directory(ops, ROOT)
    names = token.names[2:]

    assert "AC\u2215DC.mp3".encode() in names
    assert names.count(b"twin.txt") == 1
    assert len(names) == 3
    for name in names:
        assert b"/" not in name
        assert (await lookup(ops, ROOT, name)).st_ino != 0


# ---------------------------------------------------------------------- reads


async def test_read_through_reader(ops, emulator):
    file_id = emulator.state.add_file(emulator.root_id, "data.bin", (3 * 1024 * 1024, 7))
    reference = emulator.state.file_bytes(file_id)
    inode = (await lookup(ops, ROOT, "data.bin")).st_ino

    info = await ops.open(inode, os.O_RDONLY, None)
    try:
        assert await ops.read(info.fh, 0, 131072) == reference[:131072]
        assert await ops.read(info.fh, 2_000_000, 4096) == reference[2_000_000:2_004_096]
        assert await ops.read(info.fh, len(reference) - 10, 4096) == reference[-10:]
        assert await ops.read(info.fh, len(reference), 4096) == b""
    finally:
        await ops.release(info.fh)


async def test_expired_link_from_newer_listing(ops, tree, emulator):
    file_id = emulator.state.add_file(emulator.root_id, "a.bin", (300_000, 3))
    reference = emulator.state.file_bytes(file_id)
    emulator.options.link_expiry = 1.0
    inode = (await lookup(ops, ROOT, "a.bin")).st_ino
    info = await ops.open(inode, os.O_RDONLY, None)
    try:
        await trio.sleep(1.5)
        # A new listing brings a new link before the reader needs one.
        await tree.refresh(ROOT)
        emulator.counters.reset()
        assert await ops.read(info.fh, 0, 4096) == reference[:4096]
    finally:
        await ops.release(info.fh)
    assert emulator.counters.api_calls.get("item/details", 0) == 0


async def test_expired_link_from_item_details(ops, emulator):
    file_id = emulator.state.add_file(emulator.root_id, "a.bin", (300_000, 3))
    reference = emulator.state.file_bytes(file_id)
    emulator.options.link_expiry = 1.0
    inode = (await lookup(ops, ROOT, "a.bin")).st_ino
    info = await ops.open(inode, os.O_RDONLY, None)
    try:
        await trio.sleep(1.5)
        assert await ops.read(info.fh, 0, 4096) == reference[:4096]
    finally:
        await ops.release(info.fh)
    assert emulator.counters.api_calls.get("item/details", 0) >= 1


async def test_keep_cache_while_unchanged(ops, emulator):
    emulator.state.add_file(emulator.root_id, "a.txt", b"abc")
    inode = (await lookup(ops, ROOT, "a.txt")).st_ino
    first = await ops.open(inode, os.O_RDONLY, None)
    await ops.release(first.fh)
    second = await ops.open(inode, os.O_RDONLY, None)
    await ops.release(second.fh)

    assert first.keep_cache is False
    assert second.keep_cache is True


async def test_open_for_writing_erofs(ops, emulator):
    emulator.state.add_file(emulator.root_id, "a.txt", b"abc")
    inode = (await lookup(ops, ROOT, "a.txt")).st_ino
    for flags in (os.O_WRONLY, os.O_RDWR):
        with pytest.raises(pyfuse3.FUSEError) as info:
            await ops.open(inode, flags, None)
        assert fuse_errno(info) == errno.EROFS


async def test_open_folder_eisdir(ops, emulator):
    emulator.state.create_folder(emulator.root_id, "sub")
    inode = (await lookup(ops, ROOT, "sub")).st_ino
    with pytest.raises(pyfuse3.FUSEError) as info:
        await ops.open(inode, os.O_RDONLY, None)
    assert fuse_errno(info) == errno.EISDIR


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda ops: ops.mkdir(ROOT, b"new", 0o755, None), errno.EROFS),
        (lambda ops: ops.create(ROOT, b"new", 0o644, os.O_WRONLY, None), errno.EROFS),
        (lambda ops: ops.unlink(ROOT, b"a.txt", None), errno.EROFS),
        (lambda ops: ops.rmdir(ROOT, b"sub", None), errno.EROFS),
        (lambda ops: ops.rename(ROOT, b"a.txt", ROOT, b"b.txt", 0, None), errno.EROFS),
        (lambda ops: ops.setattr(ROOT, None, None, None, None), errno.EROFS),
        (lambda ops: ops.write(1, 0, b"x"), errno.EBADF),
        (lambda ops: ops.symlink(ROOT, b"link", b"target", None), errno.EPERM),
        (lambda ops: ops.link(ROOT, ROOT, b"link", None), errno.EPERM),
        (lambda ops: ops.mknod(ROOT, b"node", 0o644, 0, None), errno.EPERM),
    ],
    ids=["mkdir", "create", "unlink", "rmdir", "rename", "setattr", "write", "symlink", "link", "mknod"],
)
async def test_write_calls_rejected(ops, call, expected):
    with pytest.raises(pyfuse3.FUSEError) as info:
        await call(ops)
    assert fuse_errno(info) == expected


# --------------------------------------------------------------- error mapping


async def test_deleted_folder_enoent(ops, tree, emulator):
    folder = emulator.state.create_folder(emulator.root_id, "gone")
    inode = (await lookup(ops, ROOT, "gone")).st_ino
    emulator.state.delete_folder(folder)
    tree.invalidate(inode)

    with pytest.raises(pyfuse3.FUSEError) as info:
        await ops.opendir(inode, None)
    assert fuse_errno(info) == errno.ENOENT
    assert (await lookup(ops, ROOT, "gone")).st_ino == 0


async def test_rate_limit_storm_serves_stale(ops, tree, emulator, caplog):
    emulator.state.add_file(emulator.root_id, "a.txt", b"abc")
    known = (await lookup(ops, ROOT, "a.txt")).st_ino
    tree.invalidate(ROOT)
    emulator.fail_next("folder/list", "rate_limit_reached", count=1000)

    with caplog.at_level(logging.WARNING, logger="pmzfs"):
        assert (await lookup(ops, ROOT, "a.txt")).st_ino == known
        token = await read_directory(ops, ROOT)
    assert b"a.txt" in token.names
    assert any(record.name == "pmzfs.tree" for record in caplog.records)


async def test_rate_limit_without_listing_eagain(ops, emulator):
    emulator.state.create_folder(emulator.root_id, "sub")
    sub = (await lookup(ops, ROOT, "sub")).st_ino
    emulator.fail_next("folder/list", "rate_limit_reached", count=1000)

    with pytest.raises(pyfuse3.FUSEError) as info:
        await ops.opendir(sub, None)
    assert fuse_errno(info) == errno.EAGAIN


async def test_unexpected_exception_eio_logged(ops, tree, monkeypatch, expected_errors):
    async def broken_lookup(parent_inode, name):
        raise RuntimeError("a bug")

    monkeypatch.setattr(tree, "lookup", broken_lookup)
    errors = []

    class Collect(logging.Handler):
        def emit(self, record):
            errors.append(record)

    logger = logging.getLogger("pmzfs")
    handler = Collect(level=logging.ERROR)
    logger.addHandler(handler)
    try:
        with pytest.raises(pyfuse3.FUSEError) as info:
            await lookup(ops, ROOT, "anything")
    finally:
        logger.removeHandler(handler)

    assert fuse_errno(info) == errno.EIO
    assert len(errors) == 1
    assert errors[0].name == "pmzfs.fs"
    assert errors[0].exc_info is not None
    assert "lookup" in errors[0].getMessage()


async def test_tree_error_maps_to_errno(ops, tree, monkeypatch):
    async def failing_lookup(parent_inode, name):
        raise TreeError(errno.ENOTDIR, "not a folder")

    monkeypatch.setattr(tree, "lookup", failing_lookup)
    with pytest.raises(pyfuse3.FUSEError) as info:
        await lookup(ops, ROOT, "x")
    assert fuse_errno(info) == errno.ENOTDIR
