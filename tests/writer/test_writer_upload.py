"""Staging and uploading new files: flush uploads once, errors reach close(), data stays staged."""

from __future__ import annotations

import errno
import hashlib
import logging
import tracemalloc

import pytest
import trio
from writer_testing import (
    QUICK_RETRIES,
    files_named,
    folder_names,
    only_file,
    staged_data_files,
    wait_until,
)

from pmzfs.writer import WriteError, Writer, is_temporary_name, staging_status

MiB = 1024 * 1024


async def test_new_file_uploaded_on_flush(writer, client, emu, folder_id, staging_dir, listener):
    handle = await writer.create(folder_id, "notes.txt")
    assert await handle.write(0, b"hello ") == 6
    assert await handle.write(6, b"world") == 5
    assert handle.staged.size == 11

    item = await handle.flush()

    assert item is not None
    assert item.name == "notes.txt"
    assert item.size == 11
    assert item.link
    stored = await only_file(client, folder_id, "notes.txt")
    assert stored.id == item.id
    assert emu.state.file_bytes(item.id) == b"hello world"
    assert await folder_names(client, folder_id) == ["notes.txt"]
    assert [done.item.id for done in listener.done] == [item.id]
    assert listener.done[0].replaced_id is None
    assert listener.done[0].folder_id == folder_id

    await handle.release()
    assert staged_data_files(staging_dir) == []
    assert list(staging_dir.glob("*.json")) == []


async def test_empty_file_uploaded(writer, client, emu, folder_id):
    handle = await writer.create(folder_id, "empty")
    item = await handle.flush()
    await handle.release()

    assert item is not None
    assert item.size == 0
    assert emu.state.file_bytes(item.id) == b""
    assert await folder_names(client, folder_id) == ["empty"]


async def test_second_flush_uploads_nothing(writer, emu, folder_id):
    handle = await writer.create(folder_id, "once.bin")
    await handle.write(0, b"x" * 1000)
    first = await handle.flush()
    uploads_after_first = emu.counters.uploads

    second = await handle.flush()
    await handle.release()

    assert uploads_after_first == 1
    assert emu.counters.uploads == 1
    assert second == first


async def test_flush_after_more_writes_replaces(writer, client, emu, folder_id, listener):
    handle = await writer.create(folder_id, "log.txt")
    await handle.write(0, b"one\n")
    first = await handle.flush()
    await handle.write(4, b"two\n")
    second = await handle.flush()
    await handle.release()

    assert first.id != second.id
    stored = await only_file(client, folder_id, "log.txt")
    assert stored.id == second.id
    assert emu.state.file_bytes(second.id) == b"one\ntwo\n"
    assert listener.done[1].replaced_id == first.id


async def test_handles_share_content(writer, emu, folder_id):
    first = await writer.create(folder_id, "shared.txt")
    await first.write(0, b"aaaa")
    second = await writer.open_staged(first.staged)
    await second.write(2, b"bb")

    assert await first.read(0, 10) == b"aabb"
    await first.release()
    item = await second.flush()
    await second.release()

    assert emu.state.file_bytes(item.id) == b"aabb"


async def test_create_again_truncates_pending(writer, emu, folder_id):
    handle = await writer.create(folder_id, "again.txt")
    await handle.write(0, b"first version")
    again = await writer.create(folder_id, "again.txt")
    await again.write(0, b"v2")

    assert again.staged is handle.staged
    assert await handle.read(0, 100) == b"v2"
    item = await again.flush()
    await again.release()
    await handle.release()
    assert emu.state.file_bytes(item.id) == b"v2"


async def test_large_file_bounded_memory(writer, emu, folder_id):
    size = 50 * MiB
    block = bytes(range(256)) * 4096  # 1 MiB
    expected = hashlib.sha256()

    tracemalloc.start()
    try:
        handle = await writer.create(folder_id, "big.bin")
        for offset in range(0, size, len(block)):
            await handle.write(offset, block)
            expected.update(block)
        item = await handle.flush()
        await handle.release()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert item.size == size
    assert hashlib.sha256(emu.state.file_bytes(item.id)).hexdigest() == expected.hexdigest()
    # The file is 50 MiB; staging, upload and the emulator stream it in
    # pieces of at most a few MiB.
    assert peak < 16 * MiB, f"peak traced memory {peak / MiB:.1f} MiB"


async def test_progress_logged_for_long_upload(client, staging_dir, emu, folder_id, caplog):
    caplog.set_level(logging.INFO, logger="pmzfs.writer")
    async with Writer(client, staging_dir, progress_step_percent=25, progress_min_size=MiB) as writer:
        handle = await writer.create(folder_id, "progress.bin")
        await handle.write(0, b"p" * (4 * MiB))
        await handle.flush()
        await handle.release()

    messages = [record.getMessage() for record in caplog.records]
    progress = [message for message in messages if message.startswith("uploading 'progress.bin'")]
    done = [message for message in messages if message.startswith("uploaded 'progress.bin'")]
    assert len(progress) >= 3, progress
    assert "25%" in progress[0]
    assert len(done) == 1


async def test_upload_failing_once_succeeds(writer, client, emu, folder_id):
    emu.options.upload_failure = "http_500"
    emu.options.upload_failure_count = 1

    handle = await writer.create(folder_id, "retry.txt")
    await handle.write(0, b"retried content")
    item = await handle.flush()
    await handle.release()

    assert emu.options.upload_failure_count == 0
    stored = await only_file(client, folder_id, "retry.txt")
    assert stored.id == item.id
    assert emu.state.file_bytes(item.id) == b"retried content"
    assert await folder_names(client, folder_id) == ["retry.txt"]


async def test_upload_reset_at_60_percent_retried(writer, client, emu, folder_id):
    emu.options.upload_failure = "reset"
    emu.options.upload_reset_after_fraction = 0.6
    emu.options.upload_failure_count = 1
    content = bytes(range(256)) * 4096 * 3

    handle = await writer.create(folder_id, "reset.bin")
    await handle.write(0, content)
    item = await handle.flush()
    await handle.release()

    assert emu.options.upload_failure_count == 0
    assert emu.state.file_bytes(item.id) == content
    assert await folder_names(client, folder_id) == ["reset.bin"]


async def test_upload_always_failing_keeps_data(writer, client, emu, folder_id, staging_dir):
    emu.options.upload_failure = "reset"
    emu.options.upload_reset_after_fraction = 0.6
    content = b"must not be lost " * 10_000

    handle = await writer.create(folder_id, "precious.txt")
    await handle.write(0, content)
    with pytest.raises(WriteError) as caught:
        await handle.flush()
    assert caught.value.errno == errno.EIO

    # Nothing partial on the service, the data on local disk.
    assert await folder_names(client, folder_id) == []
    [data_file] = staged_data_files(staging_dir)
    assert data_file.read_bytes() == content
    status = writer.status()
    assert [entry.name for entry in status.failed] == ["precious.txt"]
    assert status.failed[0].last_error
    assert status.failed[0].staged_path == data_file
    assert status.pending == ()
    on_disk = staging_status(staging_dir)
    assert [entry.name for entry in on_disk.failed] == ["precious.txt"]
    assert on_disk.bytes_staged == len(content)

    # A second close of the unchanged file reports the same error without
    # another attempt.
    attempts = emu.counters.api_calls["folder/uploadinfo"]
    with pytest.raises(WriteError):
        await handle.flush()
    assert emu.counters.api_calls["folder/uploadinfo"] == attempts
    await handle.release()
    assert staged_data_files(staging_dir) == [data_file]

    emu.options.upload_failure = None
    status = await writer.upload_pending()

    assert status.failed == ()
    stored = await only_file(client, folder_id, "precious.txt")
    assert emu.state.file_bytes(stored.id) == content
    assert await folder_names(client, folder_id) == ["precious.txt"]
    assert staged_data_files(staging_dir) == []
    assert list(staging_dir.glob("*.json")) == []


async def test_quota_error_is_edquot(writer, client, emu, folder_id, staging_dir):
    emu.options.space_limit = emu.state.space_used + 100

    handle = await writer.create(folder_id, "too-big.bin")
    await handle.write(0, b"q" * 1000)
    with pytest.raises(WriteError) as caught:
        await handle.flush()
    await handle.release()

    assert caught.value.errno == errno.EDQUOT
    assert await folder_names(client, folder_id) == []
    assert len(staged_data_files(staging_dir)) == 1
    assert "account_limit_reached" in writer.status().failed[0].last_error

    emu.options.space_limit = None
    status = await writer.upload_pending()
    assert status.failed == ()
    assert status.pending == ()
    stored = await only_file(client, folder_id, "too-big.bin")
    assert emu.state.file_bytes(stored.id) == b"q" * 1000


async def test_partial_upload_deleted_before_retry(writer, client, emu, folder_id):
    emu.options.upload_failure = "http_500"
    handle = await writer.create(folder_id, "partial.bin")
    await handle.write(0, b"z" * 5000)
    with pytest.raises(WriteError):
        await handle.flush()
    await handle.release()
    # The service kept a truncated copy under the upload's temporary name.
    upload_name = handle.staged.manifest.upload_name
    assert is_temporary_name(upload_name)
    partial_id = emu.state.add_file(folder_id, upload_name, b"z" * 2000)

    emu.options.upload_failure = None
    status = await writer.upload_pending()

    assert status.failed == ()
    assert emu.state.find_file(partial_id) is None
    stored = await only_file(client, folder_id, "partial.bin")
    assert stored.size == 5000
    assert await folder_names(client, folder_id) == ["partial.bin"]


async def test_missing_folder_gives_up(writer, client, emu, folder_id, expected_errors):
    handle = await writer.create(folder_id, "orphan.txt")
    await handle.write(0, b"data")
    emu.state.delete_folder(folder_id)

    with pytest.raises(WriteError) as caught:
        await handle.flush()
    await handle.release()

    assert caught.value.errno == errno.ENOENT
    [entry] = writer.status().failed
    assert entry.state == "failed"
    assert entry.staged_path.read_bytes() == b"data"
    errors = [r.getMessage() for r in expected_errors]
    assert len(errors) == 1
    assert "orphan.txt" in errors[0]
    assert str(entry.staged_path) in errors[0]


async def test_temporary_names_never_left(writer, client, emu, folder_id):
    emu.options.upload_failure = "http_500"
    emu.options.upload_failure_count = 2
    handle = await writer.create(folder_id, "clean.txt")
    await handle.write(0, b"abc")
    await handle.flush()
    await handle.release()

    names = await folder_names(client, folder_id)
    assert names == ["clean.txt"]
    assert not any(is_temporary_name(name) for name in names)
    assert len(await files_named(client, folder_id, "clean.txt")) == 1


async def test_background_retry_after_fault_cleared(client, staging_dir, emu, folder_id, listener):
    emu.options.upload_failure = "reset"
    emu.options.upload_reset_after_fraction = 0.6
    content = b"eventually " * 10_000

    async with Writer(client, staging_dir, listener=listener, retry=QUICK_RETRIES) as writer:
        handle = await writer.create(folder_id, "later.txt")
        await handle.write(0, content)
        with pytest.raises(WriteError):
            await handle.flush()
        await handle.release()
        assert await folder_names(client, folder_id) == []

        emu.options.upload_failure = None
        await wait_until(lambda: len(listener.done) == 1)
        assert writer.status().failed == ()

    assert listener.done[0].item.name == "later.txt"
    assert emu.state.file_bytes(listener.done[0].item.id) == content
    assert await folder_names(client, folder_id) == ["later.txt"]
    assert staged_data_files(staging_dir) == []


async def test_cancelled_flush_resumes_once(writer, client, emu, folder_id):
    def landed() -> bool:
        return any(is_temporary_name(entry.name) for entry in emu.state.children(folder_id))

    emu.options.api_latency = 0.3
    handle = await writer.create(folder_id, "interrupted.bin")
    await handle.write(0, b"i" * 100_000)
    # Cancel the flush after the upload landed, while the client still
    # lists the folder to find it.
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(handle.flush)
            await wait_until(landed)
            scope.cancel()
    emu.options.api_latency = 0.0
    assert handle.staged.pending
    assert emu.counters.uploads == 1

    item = await handle.flush()
    await handle.release()

    assert emu.counters.uploads == 1
    stored = await only_file(client, folder_id, "interrupted.bin")
    assert stored.id == item.id
    assert await folder_names(client, folder_id) == ["interrupted.bin"]
