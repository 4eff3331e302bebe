"""Copy-on-write of existing files, truncate, rename and unlink of staged files, and the replace procedure."""

from __future__ import annotations

import dataclasses
import errno
import time

import pytest
from writer_testing import files_named, folder_names, only_file, staged_data_files

from pmzfs.writer import WriteError

OLD = b"old content of the document\n"


@pytest.fixture(params=[True, False], ids=["duplicates-allowed", "duplicates-rejected"])
def duplicate_names(request, emu) -> bool:
    emu.options.duplicate_names = request.param
    return request.param


async def seed(client, emu, folder_id, name, content):
    file_id = emu.state.add_file(folder_id, name, content)
    for item in (await client.folder_list(folder_id)).content:
        if item.id == file_id:
            return item
    raise AssertionError(f"seeded file {file_id} is not listed")


async def test_cow_replaces_old_file(writer, client, emu, folder_id, listener, duplicate_names):
    old = await seed(client, emu, folder_id, "doc.txt", OLD)

    handle = await writer.open(folder_id, old)
    assert emu.counters.bytes_served[old.id] == 0
    await handle.write(4, b"NEW")
    assert await handle.read(0, 100) == b"old NEW" + OLD[7:]
    item = await handle.flush()
    await handle.release()

    assert emu.counters.bytes_served[old.id] == len(OLD)
    stored = await only_file(client, folder_id, "doc.txt")
    assert stored.id == item.id
    assert item.id != old.id
    assert emu.state.file_bytes(item.id) == b"old NEW" + OLD[7:]
    assert emu.state.find_file(old.id) is None
    assert await folder_names(client, folder_id) == ["doc.txt"]
    assert listener.done[-1].replaced_id == old.id
    assert writer.find(old.id) is None


async def test_cow_truncate_skips_fetch(writer, client, emu, folder_id, duplicate_names):
    old = await seed(client, emu, folder_id, "report.txt", OLD)

    handle = await writer.open(folder_id, old, truncate=True)
    await handle.write(0, b"fresh")
    item = await handle.flush()
    await handle.release()

    assert emu.counters.bytes_served[old.id] == 0
    assert emu.state.file_bytes(item.id) == b"fresh"
    assert len(await files_named(client, folder_id, "report.txt")) == 1


async def test_open_without_change_uploads_nothing(writer, client, emu, folder_id, staging_dir):
    old = await seed(client, emu, folder_id, "same.txt", OLD)

    handle = await writer.open(folder_id, old)
    assert await handle.flush() is None
    await handle.release()

    assert emu.counters.uploads == 0
    assert emu.counters.bytes_served[old.id] == 0
    assert (await only_file(client, folder_id, "same.txt")).id == old.id
    assert staged_data_files(staging_dir) == []


async def test_truncate_fetches_only_prefix(writer, client, emu, folder_id):
    old = await seed(client, emu, folder_id, "cut.txt", OLD)

    item = await writer.truncate(folder_id, old, 3)

    assert emu.counters.bytes_served[old.id] == 3
    assert emu.state.file_bytes(item.id) == b"old"
    assert (await only_file(client, folder_id, "cut.txt")).id == item.id


async def test_truncate_extends_with_zeros(writer, client, emu, folder_id):
    old = await seed(client, emu, folder_id, "grow.txt", b"abc")

    item = await writer.truncate(folder_id, old, 6)

    assert emu.state.file_bytes(item.id) == b"abc\0\0\0"


async def test_fetch_resumes_after_reset(writer, client, emu, folder_id):
    content = bytes(range(256)) * 8192  # 2 MiB
    old = await seed(client, emu, folder_id, "video.bin", content)
    emu.options.link_reset_after_fraction = 0.5
    emu.options.link_reset_count = 1

    handle = await writer.open(folder_id, old)
    await handle.write(len(content), b"tail")
    item = await handle.flush()
    await handle.release()

    assert emu.options.link_reset_count == 0
    assert emu.state.file_bytes(item.id) == content + b"tail"
    # One request was reset, the second resumed; a wrong resume offset
    # would show in the content above.
    assert emu.counters.link_requests[old.id] == 2
    assert emu.counters.bytes_served[old.id] <= len(content) * 1.5


async def test_fetch_refreshes_expired_link(writer, client, emu, folder_id):
    listed = await seed(client, emu, folder_id, "stale-link.txt", OLD)
    emu.options.link_expiry = 10.0
    issued_long_ago = int(time.time()) - 100
    old = dataclasses.replace(listed, link=emu.base_url + emu.signer.link_path(listed.id, listed.name, issued_long_ago))

    handle = await writer.open(folder_id, old)
    await handle.write(0, b"N")
    item = await handle.flush()
    await handle.release()

    assert emu.counters.api_calls["item/details"] == 1
    assert emu.state.file_bytes(item.id) == b"N" + OLD[1:]


async def test_reopen_pending_sees_staged_content(writer, client, emu, folder_id):
    old = await seed(client, emu, folder_id, "draft.txt", OLD)
    emu.options.upload_failure = "http_500"

    handle = await writer.open(folder_id, old)
    await handle.truncate(0)
    await handle.write(0, b"second draft")
    with pytest.raises(WriteError):
        await handle.flush()
    await handle.release()

    again = await writer.open(folder_id, old)
    assert again.staged is handle.staged
    assert await again.read(0, 100) == b"second draft"
    await again.release()

    emu.options.upload_failure = None
    await writer.upload_pending()
    stored = await only_file(client, folder_id, "draft.txt")
    assert emu.state.file_bytes(stored.id) == b"second draft"


async def test_name_taken_meanwhile_is_replaced(writer, client, emu, folder_id):
    emu.options.duplicate_names = False
    handle = await writer.create(folder_id, "race.txt")
    await handle.write(0, b"ours")
    other = emu.state.add_file(folder_id, "race.txt", b"theirs")

    item = await handle.flush()
    await handle.release()

    assert emu.state.find_file(other) is None
    stored = await only_file(client, folder_id, "race.txt")
    assert stored.id == item.id
    assert emu.state.file_bytes(item.id) == b"ours"


async def test_rename_pending_new_file(writer, client, emu, folder_id, listener):
    handle = await writer.create(folder_id, ".partial.tmp")
    await handle.write(0, b"payload")
    await writer.rename(handle.staged, folder_id, "final.txt")

    assert writer.find_new(folder_id, ".partial.tmp") is None
    assert writer.find_new(folder_id, "final.txt") is handle.staged
    item = await handle.flush()
    await handle.release()

    assert await folder_names(client, folder_id) == ["final.txt"]
    assert emu.state.file_bytes(item.id) == b"payload"


async def test_rename_open_file_to_other_folder(writer, client, emu, folder_id, duplicate_names):
    other_folder = emu.state.create_folder(emu.root_id, "Archive")
    old = await seed(client, emu, folder_id, "moving.txt", OLD)

    handle = await writer.open(folder_id, old)
    await handle.write(0, b"MOV")
    await writer.rename(handle.staged, other_folder, "moved.txt")
    item = await handle.flush()
    await handle.release()

    assert await folder_names(client, folder_id) == []
    assert await folder_names(client, other_folder) == ["moved.txt"]
    assert emu.state.file_bytes(item.id) == b"MOV" + OLD[3:]


async def test_rename_new_file_over_existing(writer, client, emu, folder_id, duplicate_names):
    target = await seed(client, emu, folder_id, "target.txt", OLD)
    handle = await writer.create(folder_id, "source.tmp")
    await handle.write(0, b"replacement")

    await writer.rename(handle.staged, folder_id, "target.txt", replaces=target)
    assert writer.find(target.id) is handle.staged
    item = await handle.flush()
    await handle.release()

    assert await folder_names(client, folder_id) == ["target.txt"]
    assert emu.state.find_file(target.id) is None
    assert emu.state.file_bytes(item.id) == b"replacement"


async def test_unlink_pending_upload(writer, client, emu, folder_id, staging_dir):
    emu.options.upload_failure = "http_500"
    handle = await writer.create(folder_id, "unwanted.txt")
    await handle.write(0, b"bye")
    with pytest.raises(WriteError):
        await handle.flush()
    await handle.release()

    await writer.unlink(handle.staged)
    emu.options.upload_failure = None
    status = await writer.upload_pending()

    assert status.failed == ()
    assert status.pending == ()
    assert staged_data_files(staging_dir) == []
    assert await folder_names(client, folder_id) == []
    assert writer.find_new(folder_id, "unwanted.txt") is None


async def test_unlink_open_file_deletes_service_copy(writer, client, emu, folder_id, staging_dir):
    old = await seed(client, emu, folder_id, "gone.txt", OLD)
    handle = await writer.open(folder_id, old)
    await handle.write(0, b"changes")

    await writer.unlink(handle.staged)
    # The open handle still works but never uploads or journals.
    await handle.write(7, b"!")
    assert await handle.read(0, 8) == b"changes!"
    assert await handle.flush() is None
    assert list(staging_dir.glob("*.json")) == []
    await handle.release()

    assert emu.state.find_file(old.id) is None
    assert await folder_names(client, folder_id) == []
    assert emu.counters.uploads == 0
    assert staged_data_files(staging_dir) == []


async def test_replace_procedure(writer, client, emu, folder_id, duplicate_names):
    source = await seed(client, emu, folder_id, ".rsync-tmp", b"new")
    target = await seed(client, emu, folder_id, "file.txt", b"old")

    await writer.replace(folder_id, source.id, target.id, "file.txt")

    stored = await only_file(client, folder_id, "file.txt")
    assert stored.id == source.id
    assert emu.state.find_file(target.id) is None
    assert await folder_names(client, folder_id) == ["file.txt"]


async def test_replace_failure_restores_target(writer, client, emu, folder_id):
    source = await seed(client, emu, folder_id, ".tmp", b"new")
    target = await seed(client, emu, folder_id, "keep.txt", b"old")
    emu.state.delete_file(source.id)

    with pytest.raises(WriteError) as caught:
        await writer.replace(folder_id, source.id, target.id, "keep.txt")

    assert caught.value.errno == errno.ENOENT
    stored = await only_file(client, folder_id, "keep.txt")
    assert stored.id == target.id
    assert await folder_names(client, folder_id) == ["keep.txt"]


async def test_released_handle_rejects_writes(writer, folder_id):
    handle = await writer.create(folder_id, "closed.txt")
    await handle.flush()
    await handle.release()

    with pytest.raises(WriteError) as caught:
        await handle.write(0, b"late")
    assert caught.value.errno == errno.EBADF


async def test_failed_rename_over_staged_target_keeps_it(writer, client, emu, folder_id, duplicate_names):
    target = await seed(client, emu, folder_id, "target.txt", OLD)
    source = await seed(client, emu, folder_id, "source.txt", b"source")
    target_handle = await writer.open(folder_id, target)
    await target_handle.write(0, b"unsaved")
    source_handle = await writer.open(folder_id, source)
    await source_handle.write(0, b"SOURCE")
    await source_handle.flush()

    emu.fail_next("item/rename", "permission_denied", count=10)
    with pytest.raises(WriteError):
        await writer.rename(source_handle.staged, folder_id, "target.txt", replaces=target)
    emu.faults.clear()

    # The rename failed, so the target's service copy must still be there.
    assert emu.state.file_bytes(target.id) == OLD
    await target_handle.release()
    await source_handle.release()
