"""The local mtime store, alone and as the writer fills it."""

from __future__ import annotations

import sqlite3

import pytest
from writer_testing import NO_BACKGROUND_RETRIES

from pmzfs.mtimes import MTIMES_FILENAME, MtimeStore
from pmzfs.writer import WriteError, Writer

MTIME = 1_600_000_000_123_456_789


def test_store_persists_across_instances(tmp_path):
    with MtimeStore.in_cache_dir(tmp_path) as store:
        store.set("file-a", 100, MTIME)
        store.set("file-b", 7, MTIME + 1)

    with MtimeStore(tmp_path / MTIMES_FILENAME) as reopened:
        assert reopened.get("file-a", 100) == MTIME
        assert reopened.get("file-b", 7) == MTIME + 1
        assert len(reopened) == 2


def test_store_ignores_changed_size(tmp_path):
    with MtimeStore.in_cache_dir(tmp_path) as store:
        store.set("file-a", 100, MTIME)
        assert store.get("file-a", 101) is None
        assert store.get("other-id", 100) is None

    with MtimeStore.in_cache_dir(tmp_path) as reopened:
        assert reopened.get("file-a", 101) is None
        assert reopened.get("file-a", 100) == MTIME


def test_store_set_replaces_entry(tmp_path):
    with MtimeStore.in_cache_dir(tmp_path) as store:
        store.set("file-a", 100, MTIME)
        store.set("file-a", 200, MTIME + 5)
        assert store.get("file-a", 100) is None
        assert store.get("file-a", 200) == MTIME + 5

    with MtimeStore.in_cache_dir(tmp_path) as reopened:
        assert reopened.get("file-a", 200) == MTIME + 5
        assert len(reopened) == 1


def test_store_forget_persists(tmp_path):
    with MtimeStore.in_cache_dir(tmp_path) as store:
        store.set("file-a", 100, MTIME)
        store.forget("file-a")
        store.forget("never-stored")

    with MtimeStore.in_cache_dir(tmp_path) as reopened:
        assert reopened.get("file-a", 100) is None
        assert len(reopened) == 0


def test_store_replaces_damaged_database(tmp_path, caplog):
    (tmp_path / MTIMES_FILENAME).write_bytes(b"this is not an sqlite database" * 100)

    with MtimeStore.in_cache_dir(tmp_path) as store:
        assert len(store) == 0
        store.set("file-a", 1, MTIME)

    assert (tmp_path / (MTIMES_FILENAME + ".damaged")).exists()
    assert any("unreadable" in r.getMessage() for r in caplog.records)
    with sqlite3.connect(tmp_path / MTIMES_FILENAME) as db:
        assert db.execute("SELECT file_id, size, mtime_ns FROM mtimes").fetchall() == [("file-a", 1, MTIME)]


async def test_writer_stores_mtime_after_upload(client, emu, folder_id, staging_dir, tmp_path):
    with MtimeStore.in_cache_dir(tmp_path) as store:
        async with Writer(client, staging_dir, mtimes=store, retry=NO_BACKGROUND_RETRIES) as writer:
            handle = await writer.create(folder_id, "synced.txt")
            await handle.write(0, b"rsync data")
            # rsync sets the time before it closes the file.
            await handle.set_mtime(MTIME)
            first = await handle.flush()

            # Setting it again on the clean, uploaded file writes through.
            await handle.set_mtime(MTIME + 10)
            assert store.get(first.id, first.size) == MTIME + 10

            # A write after that makes the stored time of the old id useless.
            await handle.write(10, b"!")
            second = await handle.flush()
            await handle.release()

        assert store.get(first.id, first.size) is None
        assert store.get(second.id, second.size) is None

    with MtimeStore.in_cache_dir(tmp_path) as reopened:
        assert len(reopened) == 0


async def test_writer_mtime_of_pending_upload(client, emu, folder_id, staging_dir, tmp_path):
    emu.options.upload_failure = "http_500"
    with MtimeStore.in_cache_dir(tmp_path) as store:
        async with Writer(client, staging_dir, mtimes=store, retry=NO_BACKGROUND_RETRIES) as writer:
            handle = await writer.create(folder_id, "later.txt")
            await handle.write(0, b"abc")
            with pytest.raises(WriteError):
                await handle.flush()
            await handle.set_mtime(MTIME)
            await handle.release()

        # The next mount finishes the upload and stores the time with the new id.
        emu.options.upload_failure = None
        async with Writer(client, staging_dir, mtimes=store, retry=NO_BACKGROUND_RETRIES) as writer:
            await writer.upload_pending()

        listing = await client.folder_list(folder_id)
        [item] = listing.content
        assert store.get(item.id, 3) == MTIME
