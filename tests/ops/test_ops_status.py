"""Status channel: server in a trio nursery, client and the `pmzfs status` command."""

from __future__ import annotations

import json
import os
import socket
import stat
import sys

import pytest
import trio

from pmzfs.status import (
    StatusError,
    format_status,
    normalize_mountpoint,
    query_status,
    serve_status,
    server_socket_path,
    socket_name,
)

REPORT = {
    "uploads": {
        "pending": [{"path": "/Movies/a.mkv", "size": 3 * 1024**3, "bytes_sent": 1024**3}],
        "failed": [{"path": "/Movies/b.mkv", "size": 10, "error": "EDQUOT: account_limit_reached", "attempts": 3}],
    },
    "readahead": {"memory_in_use": 48 * 1024**2, "memory_limit": 128 * 1024**2},
    "cache": {"entries": 412},
    "api": {"calls": 1523, "errors": 3, "errors_by_code": {"rate_limit_reached": 2, "not_found": 1}},
}


@pytest.fixture
def status_env(short_tmp):
    runtime = short_tmp / "run"
    runtime.mkdir(mode=0o700)
    return {"XDG_RUNTIME_DIR": str(runtime)}


@pytest.fixture
def mountpoint(short_tmp):
    path = short_tmp / "mnt"
    path.mkdir()
    return str(path)


async def query(mountpoint, env, **kwargs):
    return await trio.to_thread.run_sync(lambda: query_status(mountpoint, env=env, **kwargs))


async def test_round_trip_with_callable(mountpoint, status_env):
    async with trio.open_nursery() as nursery:
        path = await nursery.start(lambda task_status: serve_status(mountpoint, lambda: REPORT, env=status_env, task_status=task_status))
        report = await query(mountpoint, status_env)
        nursery.cancel_scope.cancel()
    assert report["uploads"] == REPORT["uploads"]
    assert report["api"]["calls"] == 1523
    assert report["mountpoint"] == mountpoint
    assert report["pid"] == os.getpid()
    assert report["uptime_seconds"] >= 0
    assert not path.exists()


async def test_socket_and_directory_are_private(mountpoint, status_env):
    async with trio.open_nursery() as nursery:
        path = await nursery.start(lambda task_status: serve_status(mountpoint, dict, env=status_env, task_status=task_status))
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
        assert path.parent == server_socket_path(mountpoint, status_env).parent
        nursery.cancel_scope.cancel()


async def test_async_callable(mountpoint, status_env):
    async def get_status():
        await trio.sleep(0)
        return {"cache": {"entries": 7}}

    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: serve_status(mountpoint, get_status, env=status_env, task_status=task_status))
        report = await query(mountpoint, status_env)
        nursery.cancel_scope.cancel()
    assert report["cache"] == {"entries": 7}


async def test_failing_callable_keeps_server(mountpoint, status_env, caplog):
    calls = []

    def get_status():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("tree not ready")
        return {"cache": {"entries": 1}}

    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: serve_status(mountpoint, get_status, env=status_env, task_status=task_status))
        with pytest.raises(StatusError) as info:
            await query(mountpoint, status_env)
        report = await query(mountpoint, status_env)
        nursery.cancel_scope.cancel()
    assert "tree not ready" in str(info.value)
    assert report["cache"] == {"entries": 1}
    assert "building the status report failed" in caplog.text


async def test_bad_request_gets_error_and_server_stays(mountpoint, status_env):
    async with trio.open_nursery() as nursery:
        path = await nursery.start(lambda task_status: serve_status(mountpoint, dict, env=status_env, task_status=task_status))
        stream = await trio.open_unix_socket(str(path))
        await stream.send_all(b"hello\n")
        reply = await stream.receive_some(4096)
        await stream.aclose()
        report = await query(mountpoint, status_env)
        nursery.cancel_scope.cancel()
    assert json.loads(reply)["ok"] is False
    assert report["mountpoint"] == mountpoint


async def test_second_server_for_same_mountpoint(mountpoint, status_env):
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: serve_status(mountpoint, dict, env=status_env, task_status=task_status))
        with pytest.raises(StatusError) as info:
            await serve_status(mountpoint, dict, env=status_env)
        nursery.cancel_scope.cancel()
    assert "already serves" in str(info.value)


async def test_stale_socket_replaced_at_start(mountpoint, status_env):
    path = server_socket_path(mountpoint, status_env)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: serve_status(mountpoint, dict, env=status_env, task_status=task_status))
        report = await query(mountpoint, status_env)
        nursery.cancel_scope.cancel()
    assert report["mountpoint"] == mountpoint


def test_dead_socket_is_clear_error(mountpoint, status_env):
    path = server_socket_path(mountpoint, status_env)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()
    with pytest.raises(StatusError) as info:
        query_status(mountpoint, env=status_env)
    assert f"{mountpoint} is not a pmzfs mount" in str(info.value)
    assert "left over from a mount process that has exited" in str(info.value)


def test_no_socket_is_not_a_mount(mountpoint, status_env):
    with pytest.raises(StatusError) as info:
        query_status(mountpoint, env=status_env)
    assert str(info.value) == f"{mountpoint} is not a pmzfs mount"


def test_hung_server_times_out(mountpoint, status_env):
    path = server_socket_path(mountpoint, status_env)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent:
        silent.bind(str(path))
        silent.listen(1)
        with pytest.raises(StatusError) as info:
            query_status(mountpoint, env=status_env, timeout=0.2)
    assert "did not respond within 0.2 s" in str(info.value)


def test_public_directory_rejected(short_tmp, mountpoint):
    runtime = short_tmp / "shared"
    (runtime / "pmzfs").mkdir(parents=True)
    os.chmod(runtime / "pmzfs", 0o755)
    with pytest.raises(StatusError) as info:
        server_socket_path(mountpoint, {"XDG_RUNTIME_DIR": str(runtime)})
    assert "not a private directory" in str(info.value)


def test_socket_name_fits_and_differs(short_tmp):
    long_mountpoint = "/" + "/".join(["folder-name"] * 30)
    name = socket_name(long_mountpoint, short_tmp)
    assert len(os.fsencode(short_tmp / name)) <= 107
    assert socket_name("/mnt/a-b", short_tmp) != socket_name("/mnt/a/b", short_tmp)
    assert socket_name("/mnt/cloud", short_tmp).startswith("mnt-cloud-")


def test_normalize_resolves_parent_symlink(short_tmp):
    real = short_tmp / "real"
    real.mkdir()
    (short_tmp / "link").symlink_to(real)
    assert normalize_mountpoint(short_tmp / "link" / "mnt") == str(real / "mnt")


def test_format_status_lines():
    report = dict(REPORT, mountpoint="/mnt/cloud", pid=42, version="0.1.0", uptime_seconds=7500, extra={"a": 1})
    text = format_status(report)
    lines = text.splitlines()
    assert lines[0] == "/mnt/cloud: pmzfs 0.1.0, pid 42, up 2 h 5 min"
    assert "API:         1523 calls, 3 errors since mount (not_found 1, rate_limit_reached 2)" in lines
    assert "Cache:       412 entries" in lines
    assert "Read-ahead:  48.0 MiB in use of 128.0 MiB" in lines
    assert "Uploads:     1 pending, 1 failed" in lines
    assert "  pending  /Movies/a.mkv (3.0 GiB, 33% sent)" in lines
    assert "  FAILED   /Movies/b.mkv after 3 attempts: EDQUOT: account_limit_reached" in lines
    assert 'extra:       {"a": 1}' in lines


def test_format_status_minimal_report():
    text = format_status({"mountpoint": "/m", "pid": 1, "version": "0", "uptime_seconds": 3})
    assert text == "/m: pmzfs 0, pid 1, up 3 s"


async def run_status_command(args, env):
    process = await trio.run_process(
        [sys.executable, "-m", "pmzfs", "status", *args],
        env={**os.environ, **env},
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    return process.returncode, process.stdout.decode(), process.stderr.decode()


async def test_status_command_prints_report(mountpoint, status_env):
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: serve_status(mountpoint, lambda: REPORT, env=status_env, task_status=task_status))
        code, out, err = await run_status_command([mountpoint], status_env)
        json_code, json_out, _ = await run_status_command([mountpoint, "--json"], status_env)
        nursery.cancel_scope.cancel()
    assert code == 0, err
    assert out.startswith(f"{mountpoint}: pmzfs ")
    assert "Uploads:     1 pending, 1 failed" in out
    assert "FAILED   /Movies/b.mkv after 3 attempts: EDQUOT: account_limit_reached" in out
    assert json_code == 0
    assert json.loads(json_out)["api"]["errors"] == 3


async def test_status_command_not_a_mount(mountpoint, status_env):
    code, out, err = await run_status_command([mountpoint], status_env)
    assert code == 1
    assert out == ""
    assert err == f"pmzfs: {mountpoint} is not a pmzfs mount\n"


def test_format_status_open_handles_and_cache():
    report = {
        "mountpoint": "/m",
        "pid": 1,
        "version": "0",
        "uptime_seconds": 3,
        "cache": {"entries": 17, "listings": 8, "nodes": 18},
        "open_files": 2,
        "open_directories": 1,
    }
    lines = format_status(report).splitlines()
    assert "Cache:       17 entries in 8 folder listings, 18 inodes known" in lines
    assert "Open:        2 files, 1 folders" in lines
    assert not any(line.startswith("open_") for line in lines)
