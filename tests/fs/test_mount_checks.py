"""The checks ``pmzfs mount`` runs before mounting, without mounting."""

from __future__ import annotations

import os
import socket

import pytest
from fs_testing import API_KEY, FAST_RETRY

from pmzfs.api import PremiumizeClient
from pmzfs.auth import Credential
from pmzfs.cli import CommandError
from pmzfs.mount import check_account, check_mountpoint, fuse_mount_options, mount_type_at, set_kernel_readahead
from pmzfs.options import MountOptions


def test_missing_mountpoint_named(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(CommandError) as info:
        check_mountpoint(missing)
    assert str(missing) in str(info.value)
    assert "mkdir -p" in str(info.value)


def test_file_mountpoint_rejected(tmp_path):
    file = tmp_path / "file"
    file.write_text("x")
    with pytest.raises(CommandError) as info:
        check_mountpoint(file)
    assert "not a folder" in str(info.value)


def test_nonempty_mountpoint_needs_flag(tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(CommandError) as info:
        check_mountpoint(tmp_path)
    assert "--nonempty" in str(info.value)
    check_mountpoint(tmp_path, nonempty=True)


def test_empty_mountpoint_accepted(tmp_path):
    check_mountpoint(tmp_path)


def test_mount_type_read_from_table(tmp_path):
    target = tmp_path / "with space"
    target.mkdir()
    escaped = str(target).replace(" ", "\\040")
    table = tmp_path / "mountinfo"
    table.write_text(
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
        f"47 22 0:42 / {escaped} rw,nosuid,nodev,relatime shared:2 - fuse.pmzfs pmzfs rw,user_id=0,group_id=0\n"
    )
    assert mount_type_at(target, table) == "fuse.pmzfs"
    assert mount_type_at(tmp_path, table) is None


def test_fuse_options_follow_mount_options():
    assert fuse_mount_options(MountOptions()) == {"fsname=pmzfs", "subtype=pmzfs", "default_permissions"}
    options = fuse_mount_options(MountOptions(allow_other=True, read_only=True))
    assert "allow_other" in options
    assert "ro" in options


async def test_rejected_key_one_line(emulator):
    credential = Credential("wrong-key-123", "the PMZFS_API_KEY environment variable")
    async with PremiumizeClient(emulator.base_url, credential, retry=FAST_RETRY) as client:
        with pytest.raises(CommandError) as info:
            await check_account(client, credential, emulator.base_url, verbose=False)
    message = str(info.value)
    assert "wrong-key-123" not in message
    assert "API key" in message
    assert "PMZFS_API_KEY" in message
    assert "was rejected (authentication_failed)" in message
    assert "\n" not in message


async def test_unreachable_api_names_url():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    credential = Credential(API_KEY, "the test")
    async with PremiumizeClient(url, credential, retry=FAST_RETRY) as client:
        with pytest.raises(CommandError) as info:
            await check_account(client, credential, url, verbose=False)
    message = str(info.value)
    assert message.count(url) == 1
    assert message.startswith(f"could not connect to {url} (")
    assert "check --api-url" in message


def test_kernel_readahead_written_in_kib(tmp_path):
    device = os.makedev(0, 77)
    folder = tmp_path / "0:77"
    folder.mkdir()
    assert set_kernel_readahead(device, 1024 * 1024, sysfs=tmp_path) is True
    assert (folder / "read_ahead_kb").read_text() == "1024\n"


def test_kernel_readahead_failure_is_quiet(tmp_path):
    assert set_kernel_readahead(os.makedev(0, 78), 1024 * 1024, sysfs=tmp_path) is False
