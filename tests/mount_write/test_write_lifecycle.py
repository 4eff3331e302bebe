"""The end of a writable mount: SIGTERM while uploads are pending, and what is left for the next mount."""

from __future__ import annotations

import errno
import json
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from fusemount import MiB, command_env, pmzfs_command, run
from write_testing import FAST_MOUNT_OPTIONS, manifest_states

pytestmark = pytest.mark.mount

WAIT_DEADLINE = 30.0


def wait_for(condition, what: str, deadline: float = WAIT_DEADLINE) -> None:
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            pytest.fail(f"{what} did not happen within {deadline} s")
        time.sleep(0.05)


def test_sigterm_during_close_upload(emulator, mount, tmp_path):
    mounted = mount(emulator, *FAST_MOUNT_OPTIONS)
    data = random.Random(3).randbytes(2 * MiB)
    source = tmp_path / "data.bin"
    source.write_bytes(data)
    emulator.options.api_latency = 0.5
    copy = subprocess.Popen(
        ["cp", str(source), str(mounted.path / "data.bin")],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        wait_for(lambda: "ready" in manifest_states(mounted.cache_dir), "the flush")
        mounted.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        exit_code = mounted.send_signal(signal.SIGTERM)
    finally:
        copy.wait(timeout=60)

    assert exit_code == 0, mounted.stderr()
    # The close that was uploading still got its result.
    assert copy.returncode == 0, copy.stderr.read()
    assert emulator.state.file_bytes(emulator.state.find("data.bin")) == data
    assert [entry.name for entry in emulator.state.children(emulator.root_id)] == ["data.bin"]
    assert mounted.stderr().count("received SIGTERM") == 2
    assert manifest_states(mounted.cache_dir) == []


def test_sigterm_while_pending_uploads_finish(emulator, mount):
    mounted = mount(emulator, *FAST_MOUNT_OPTIONS)
    emulator.options.space_limit = 100
    data = random.Random(4).randbytes(1000)
    with pytest.raises(OSError) as info:
        with open(mounted.path / "later.bin", "wb") as file:
            file.write(data)
    assert info.value.errno == errno.EDQUOT

    # Space again, but a slow service: the upload waits for the unmount.
    emulator.options.space_limit = None
    emulator.options.api_latency = 0.7
    mounted.process.send_signal(signal.SIGTERM)
    wait_for(lambda: "pending uploads to finish" in mounted.stderr(), "the wait for uploads")
    exit_code = mounted.send_signal(signal.SIGTERM)

    stderr = mounted.stderr()
    assert exit_code == 0, stderr
    assert "still waiting up to" in stderr
    assert emulator.state.file_bytes(emulator.state.find("later.bin")) == data
    assert manifest_states(mounted.cache_dir) == []


def test_unfinished_upload_left_for_next_mount(emulator, mount):
    first = mount(emulator, *FAST_MOUNT_OPTIONS)
    emulator.options.space_limit = 100
    data = random.Random(5).randbytes(1000)
    with pytest.raises(OSError):
        with open(first.path / "waiting.bin", "wb") as file:
            file.write(data)
    first.assert_clean_exit()

    stderr = first.stderr()
    assert "did not finish" in stderr
    assert "'waiting.bin'" in stderr
    assert "ready" in manifest_states(first.cache_dir) or "failed" in manifest_states(first.cache_dir)
    assert emulator.state.find("waiting.bin") is None

    emulator.options.space_limit = None
    second = mount(emulator, *FAST_MOUNT_OPTIONS, cache_dir=first.cache_dir)
    wait_for(lambda: emulator.state.find("waiting.bin") is not None, "the upload at the next mount")
    assert emulator.state.file_bytes(emulator.state.find("waiting.bin")) == data
    assert (second.path / "waiting.bin").read_bytes() == data


def test_status_shows_failed_upload(emulator, mount, tmp_path):
    mounted = mount(emulator, *FAST_MOUNT_OPTIONS)
    emulator.options.space_limit = 100
    with pytest.raises(OSError):
        with open(mounted.path / "full.bin", "wb") as file:
            file.write(b"x" * 1000)

    env = command_env(tmp_path / "home", emulator.base_url, emulator.api_key)
    result = run(pmzfs_command("status", str(mounted.path), "--json"), env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)

    failed = report["uploads"]["failed"]
    assert [entry["path"] for entry in failed] == [f"{mounted.path}/full.bin"]
    assert "account_limit_reached" in failed[0]["error"]
    assert failed[0]["attempts"] >= 1
    assert report["api"]["calls"] > 0
    assert report["api"]["errors_by_code"]["account_limit_reached"] >= 1


def test_systemd_told_of_stop(emulator, mount, monkeypatch):
    # A unix socket path must fit in 107 bytes, which tmp_path can exceed.
    directory = Path(tempfile.mkdtemp(prefix="pmzfs-notify-", dir="/tmp"))
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify_socket:
            notify_socket.bind(str(directory / "notify"))
            monkeypatch.setenv("NOTIFY_SOCKET", str(directory / "notify"))
            mounted = mount(emulator, *FAST_MOUNT_OPTIONS)
            emulator.options.space_limit = 100
            with pytest.raises(OSError):
                with open(mounted.path / "later.bin", "wb") as file:
                    file.write(b"y" * 1000)
            emulator.options.space_limit = None
            emulator.options.api_latency = 0.3

            exit_code = mounted.send_signal(signal.SIGTERM)
            notify_socket.setblocking(False)
            messages = []
            while True:
                try:
                    messages.append(notify_socket.recv(4096).decode())
                except BlockingIOError:
                    break
    finally:
        shutil.rmtree(directory, ignore_errors=True)

    assert exit_code == 0, mounted.stderr()
    lines = [line for message in messages for line in message.splitlines()]
    assert "READY=1" in lines
    assert "STOPPING=1" in lines
    assert "EXTEND_TIMEOUT_USEC=30000000" in lines
    assert lines.index("STOPPING=1") < lines.index("EXTEND_TIMEOUT_USEC=30000000")
    assert emulator.state.find("later.bin") is not None
