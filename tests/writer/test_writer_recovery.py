"""Crash recovery: a writer killed with SIGKILL, and journals left in each state, are finished by the next writer."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from writer_testing import NO_BACKGROUND_RETRIES, folder_names, only_file, staged_data_files, wait_until
from crash_child import pattern

from pmzfs.writer import StagingLocked, Writer, is_temporary_name
from pmzfs.writer.journal import FAILED, READY, UPLOADED, Journal, Manifest, new_temporary_name

CHILD = Path(__file__).with_name("crash_child.py")
SIZE = 3 * 1024 * 1024
# API latency in seconds while a child runs: it widens the windows in which
# the tests kill the child.
CHILD_API_LATENCY = 0.3


def manifests(staging_dir: Path) -> list[dict]:
    found = []
    for path in staging_dir.glob("*.json"):
        with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
            found.append(json.loads(path.read_text("utf-8")))
    return found


@contextlib.contextmanager
def child_writer(emu, staging_dir: Path, folder_id: str, name: str, mode: str) -> Iterator[subprocess.Popen]:
    env = dict(os.environ, PMZFS_API_KEY=emu.api_key)
    command = [sys.executable, str(CHILD), emu.base_url, str(staging_dir), folder_id, name, str(SIZE), mode]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        process.stderr.close()


def kill(process: subprocess.Popen) -> None:
    assert process.poll() is None, f"the child ended by itself: {process.stderr.read().decode()[-2000:]}"
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait(timeout=10) == -signal.SIGKILL


def write_journal(staging_dir: Path, manifest: Manifest, content: bytes) -> None:
    journal = Journal(staging_dir)
    staging_dir.mkdir(parents=True, exist_ok=True)
    journal.data_path(manifest.staging_id).write_bytes(content)
    manifest.size = len(content)
    journal.save(manifest, durable=True)


async def test_kill_before_upload_lands(client, emu, folder_id, staging_dir):
    emu.options.api_latency = CHILD_API_LATENCY
    with child_writer(emu, staging_dir, folder_id, "movie.bin", "flush") as process:
        await wait_until(lambda: any(m["state"] == READY for m in manifests(staging_dir)) or process.poll() is not None)
        kill(process)
    emu.options.api_latency = 0.0

    [manifest] = manifests(staging_dir)
    assert manifest["state"] == READY
    assert emu.counters.uploads == 0
    assert await folder_names(client, folder_id) == []

    async with Writer(client, staging_dir, retry=NO_BACKGROUND_RETRIES) as writer:
        status = await writer.upload_pending()

    assert status.pending == ()
    assert status.failed == ()
    assert emu.counters.uploads == 1
    stored = await only_file(client, folder_id, "movie.bin")
    assert emu.state.file_bytes(stored.id) == pattern(SIZE)
    assert await folder_names(client, folder_id) == ["movie.bin"]
    assert staged_data_files(staging_dir) == []
    assert manifests(staging_dir) == []


async def test_kill_after_upload_landed(client, emu, folder_id, staging_dir):
    def landed() -> bool:
        return any(is_temporary_name(entry.name) for entry in emu.state.children(folder_id))

    emu.options.api_latency = CHILD_API_LATENCY
    with child_writer(emu, staging_dir, folder_id, "landed.bin", "flush") as process:
        await wait_until(lambda: landed() or process.poll() is not None)
        kill(process)
    emu.options.api_latency = 0.0

    # The child was still confirming the upload when it died.
    [manifest] = manifests(staging_dir)
    assert manifest["state"] == READY
    assert emu.counters.uploads == 1

    async with Writer(client, staging_dir, retry=NO_BACKGROUND_RETRIES) as writer:
        status = await writer.upload_pending()

    assert status.pending == ()
    assert status.failed == ()
    assert emu.counters.uploads == 1
    stored = await only_file(client, folder_id, "landed.bin")
    assert emu.state.file_bytes(stored.id) == pattern(SIZE)
    assert await folder_names(client, folder_id) == ["landed.bin"]
    assert manifests(staging_dir) == []


async def test_kill_unflushed_keeps_data_aside(client, emu, folder_id, staging_dir, caplog):
    def written() -> bool:
        return any(path.stat().st_size == SIZE for path in staging_dir.glob("*.data"))

    with child_writer(emu, staging_dir, folder_id, "draft.txt", "hold") as process:
        await wait_until(lambda: written() or process.poll() is not None)
        kill(process)

    async with Writer(client, staging_dir, retry=NO_BACKGROUND_RETRIES) as writer:
        status = await writer.upload_pending()

    assert status.pending == ()
    assert emu.counters.uploads == 0
    assert await folder_names(client, folder_id) == []
    [kept] = (staging_dir / "unflushed").iterdir()
    assert kept.name.endswith("-draft.txt")
    assert kept.read_bytes() == pattern(SIZE)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(str(kept) in message for message in warnings)


async def test_recovery_finishes_interrupted_replace(client, emu, folder_id, staging_dir):
    manifest = Manifest.new(folder_id, "doc.txt")
    manifest.upload_name = new_temporary_name("new")
    manifest.aside_name = new_temporary_name("old")
    # The crash came after the old file was renamed aside.
    old_id = emu.state.add_file(folder_id, manifest.aside_name, b"old")
    new_id = emu.state.add_file(folder_id, manifest.upload_name, b"new content")
    manifest.replaces_id = old_id
    manifest.uploaded_id = new_id
    manifest.state = UPLOADED
    write_journal(staging_dir, manifest, b"new content")

    async with Writer(client, staging_dir, retry=NO_BACKGROUND_RETRIES) as writer:
        status = await writer.upload_pending()

    assert status.pending == ()
    assert emu.counters.uploads == 0
    stored = await only_file(client, folder_id, "doc.txt")
    assert stored.id == new_id
    assert emu.state.find_file(old_id) is None
    assert await folder_names(client, folder_id) == ["doc.txt"]
    assert staged_data_files(staging_dir) == []


async def test_recovery_deletes_partial_then_uploads(client, emu, folder_id, staging_dir):
    manifest = Manifest.new(folder_id, "photo.jpg")
    manifest.upload_name = new_temporary_name("new")
    manifest.state = READY
    write_journal(staging_dir, manifest, b"J" * 4000)
    partial_id = emu.state.add_file(folder_id, manifest.upload_name, b"J" * 1500)

    async with Writer(client, staging_dir, retry=NO_BACKGROUND_RETRIES) as writer:
        await writer.upload_pending()

    assert emu.state.find_file(partial_id) is None
    assert emu.counters.uploads == 1
    stored = await only_file(client, folder_id, "photo.jpg")
    assert stored.size == 4000
    assert await folder_names(client, folder_id) == ["photo.jpg"]


async def test_recovery_retries_failed_once(client, emu, folder_id, staging_dir):
    manifest = Manifest.new(folder_id, "retry-at-mount.txt")
    manifest.upload_name = new_temporary_name("new")
    manifest.state = FAILED
    manifest.last_error = "not_found on folder/list"
    write_journal(staging_dir, manifest, b"kept")

    async with Writer(client, staging_dir, retry=NO_BACKGROUND_RETRIES) as writer:
        status = await writer.upload_pending()

    assert status.failed == ()
    stored = await only_file(client, folder_id, "retry-at-mount.txt")
    assert emu.state.file_bytes(stored.id) == b"kept"


async def test_recovery_leaves_other_account(client, emu, folder_id, staging_dir, caplog):
    manifest = Manifest.new(folder_id, "theirs.txt", account_id="someone-else")
    manifest.upload_name = new_temporary_name("new")
    manifest.state = READY
    write_journal(staging_dir, manifest, b"not ours")

    async with Writer(client, staging_dir, account_id="me", retry=NO_BACKGROUND_RETRIES) as writer:
        status = await writer.upload_pending()

    assert status.pending == ()
    assert emu.counters.uploads == 0
    assert len(staged_data_files(staging_dir)) == 1
    assert [m["name"] for m in manifests(staging_dir)] == ["theirs.txt"]
    assert any("another account" in r.getMessage() for r in caplog.records)


async def test_second_writer_on_directory_rejected(writer, client, staging_dir):
    with pytest.raises(StagingLocked) as caught:
        async with Writer(client, staging_dir):
            pass
    assert str(staging_dir) in str(caught.value)
    assert "--cache-dir" in str(caught.value)
