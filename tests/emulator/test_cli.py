"""The ``pmzfs emulator`` command as a user runs it."""

from __future__ import annotations

import signal
import subprocess
import sys

import httpx
import pytest

from pmzfs.emulator import DEMO_API_KEY


def start_command(*arguments: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pmzfs", "emulator", *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop_command(process: subprocess.Popen) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise


def test_demo_library_served(tmp_path):
    process = start_command("--port", "0", "--demo-content", "--state", str(tmp_path / "state"))
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        headers = {"Authorization": f"Bearer {DEMO_API_KEY}"}
        listing = httpx.get(f"{url}/api/folder/list", headers=headers, timeout=10).json()
        assert listing["status"] == "success"
        names = {entry["name"] for entry in listing["content"]}
        assert {"Movies", "Series", "Documents", "Large Files", "Welcome.txt"} <= names
        movies = httpx.get(f"{url}/api/folder/list", params={"path": "Movies"}, headers=headers, timeout=10).json()
        video = next(entry for entry in movies["content"] if entry["name"].endswith(".mp4"))
        head = httpx.get(video["link"], headers={"Range": "bytes=4-11"}, timeout=10)
        assert head.content == b"ftypisom"
    finally:
        assert stop_command(process) == 0


def test_sigint_exits_zero(tmp_path):
    process = start_command("--port", "0", "--api-key", "cli-key", "--reject-duplicate-names")
    try:
        url = process.stdout.readline().strip()
        headers = {"Authorization": "Bearer cli-key"}
        assert httpx.post(f"{url}/api/folder/create", data={"name": "a"}, headers=headers).json()["status"] == "success"
        second = httpx.post(f"{url}/api/folder/create", data={"name": "a"}, headers=headers).json()
        assert second["code"] == "invalid_request"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
    finally:
        stop_command(process)
    assert "cli-key" not in process.stderr.read()


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["--port", "abc"], "--port"),
        (["--api-latency", "soon"], "--api-latency"),
        (["--link-rate", "fast"], "--link-rate"),
        (["--link-reset-after-fraction", "1.5"], "--link-reset-after-fraction"),
        (["--error-rate", "folder/list:service_down"], "--error-rate"),
        (["--error-rate", "folder/list:teapot:0.5"], "teapot"),
        (["--upload-failure", "sometimes"], "--upload-failure"),
        (["--device-auto", "perhaps"], "--device-auto"),
    ],
)
def test_bad_values_exit_2(arguments, expected):
    result = subprocess.run(
        [sys.executable, "-m", "pmzfs", "emulator", *arguments], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]


def test_sizes_with_suffixes(tmp_path):
    process = start_command("--port", "0", "--link-rate", "10M", "--space-limit", "1.5GiB", "--error-rate", "*:http_500:0")
    try:
        url = process.stdout.readline().strip()
        info = httpx.get(f"{url}/api/account/info", headers={"Authorization": f"Bearer {DEMO_API_KEY}"}).json()
        assert info["status"] == "success"
    finally:
        assert stop_command(process) == 0
