"""systemd notifications: datagrams on a NOTIFY_SOCKET bound by the test."""

from __future__ import annotations

import os
import socket

import pytest

from pmzfs.notify import notify, notify_extend_timeout, notify_ready, notify_status, notify_stopping


@pytest.fixture
def notify_socket(short_tmp):
    path = short_tmp / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(5)
        yield sock, {"NOTIFY_SOCKET": str(path)}


def test_ready_arrives_on_socket(notify_socket):
    sock, env = notify_socket
    assert notify_ready(env=env) is True
    assert sock.recv(4096) == b"READY=1"


def test_ready_with_status(notify_socket):
    sock, env = notify_socket
    assert notify_ready("Mounted /mnt/cloud", env=env) is True
    assert sock.recv(4096) == b"READY=1\nSTATUS=Mounted /mnt/cloud"


def test_status_folds_to_one_line(notify_socket):
    sock, env = notify_socket
    assert notify_status("2 uploads\npending", env=env) is True
    assert sock.recv(4096) == b"STATUS=2 uploads pending"


def test_stopping_and_extend_timeout(notify_socket):
    sock, env = notify_socket
    assert notify_stopping("Finishing 3 uploads", env=env) is True
    assert sock.recv(4096) == b"STOPPING=1\nSTATUS=Finishing 3 uploads"
    assert notify_extend_timeout(90, env=env) is True
    assert sock.recv(4096) == b"EXTEND_TIMEOUT_USEC=90000000"


def test_abstract_socket_name():
    name = f"pmzfs-ops-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        assert notify("READY=1", env={"NOTIFY_SOCKET": "@" + name}) is True
        assert sock.recv(4096) == b"READY=1"


def test_environment_variable_default(notify_socket, monkeypatch):
    sock, env = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", env["NOTIFY_SOCKET"])
    assert notify_ready() is True
    assert sock.recv(4096) == b"READY=1"


def test_without_notify_socket_is_noop():
    assert notify_ready(env={}) is False
    assert notify_stopping(env={"NOTIFY_SOCKET": ""}) is False


def test_missing_socket_warns_and_returns_false(short_tmp, caplog):
    env = {"NOTIFY_SOCKET": str(short_tmp / "absent")}
    assert notify_ready(env=env) is False
    assert "failed to notify systemd" in caplog.text
