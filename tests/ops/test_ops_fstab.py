"""The mount.pmzfs helper: fstab option translation and the command it runs."""

from __future__ import annotations

import os
import sys

import pytest

from pmzfs.commands.fstab import FstabOptionError, build_mount_command, main, translate_options


def test_mount_options_map_to_flags():
    flags, ignored = translate_options(
        "allow_other,ro,uid=0,gid=root,umask=027,cache_dir=/var/cache/pmzfs,dir_cache_ttl=120,"
        "api_key_file=/etc/pmzfs/key,config=/etc/pmzfs/config.toml,nonempty"
    )
    assert flags == [
        "--allow-other",
        "--read-only",
        "--uid", "0",
        "--gid", "root",
        "--umask", "027",
        "--cache-dir", "/var/cache/pmzfs",
        "--dir-cache-ttl", "120",
        "--api-key-file", "/etc/pmzfs/key",
        "--config", "/etc/pmzfs/config.toml",
        "--nonempty",
    ]
    assert ignored == []


def test_every_mount_option_by_name():
    flags, _ = translate_options("api_url=http://127.0.0.1:9,readahead_memory=256M,verbose,read_only=false")
    assert flags == ["--api-url", "http://127.0.0.1:9", "--readahead-memory", "256M", "--verbose", "--no-read-only"]


def test_mount_and_systemd_options_ignored():
    options = "rw,defaults,_netdev,nofail,noauto,auto,user,users,nouser,nosuid,nodev,x-systemd.automount,x-systemd.mount-timeout=30,comment=cloud"
    flags, ignored = translate_options(options)
    assert flags == []
    assert ignored == options.split(",")


def test_relative_paths_become_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    flags, _ = translate_options("config=conf.toml,log_file=pmzfs.log")
    assert flags == ["--config", str(tmp_path / "conf.toml"), "--log-file", str(tmp_path / "pmzfs.log")]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ("noexec", "unknown mount option 'noexec'; pmzfs accepts: ro, nonempty, config=, api_url="),
        ("uid=no-such-user-pmzfs", "invalid mount option 'uid=no-such-user-pmzfs': no user named"),
        ("umask=999", "invalid mount option 'umask=999': expected octal digits"),
        ("dir_cache_ttl=-5", "invalid mount option 'dir_cache_ttl=-5': expected a number of seconds"),
        ("dir_cache_ttl", "invalid mount option 'dir_cache_ttl': expected a value, as in dir_cache_ttl=VALUE"),
        ("allow_other=maybe", "invalid mount option 'allow_other=maybe': expected true or false"),
        ("config=", "invalid mount option 'config=': expected a non-empty file or folder path"),
        ("foreground", "mount option 'foreground' is not allowed in fstab"),
    ],
)
def test_option_errors_name_the_option(options, expected):
    with pytest.raises(FstabOptionError) as info:
        translate_options(options)
    assert str(info.value).startswith(expected)


def test_sloppy_skips_unknown_options():
    flags, ignored = translate_options("noexec,allow_other", sloppy=True)
    assert flags == ["--allow-other"]
    assert ignored == ["noexec"]


def test_build_mount_command():
    command = build_mount_command("/mnt/cloud", ["--allow-other"])
    assert command == [sys.executable, "-m", "pmzfs", "mount", "/mnt/cloud", "--allow-other"]


def test_fake_mount_prints_command(capsys):
    # The argument order of `mount -fv` in util-linux 2.38 (from LIBMOUNT_DEBUG=all).
    code = main(["pmzfs", "/mnt/cloud", "-f", "-v", "-o", "rw,allow_other,uid=0,_netdev,nofail", "-t", "fuse.pmzfs"])
    err = capsys.readouterr().err
    assert code == 0
    assert "ignoring options for mount(8) and systemd: rw,_netdev,nofail" in err
    assert f"running {sys.executable} -m pmzfs mount /mnt/cloud --allow-other --uid 0" in err


def test_several_option_groups_join(capsys):
    code = main(["pmzfs", "/mnt/cloud", "-o", "allow_other", "-o", "ro", "-f", "-n", "-s"])
    err = capsys.readouterr().err
    assert code == 0
    assert "--allow-other --read-only" in err


def test_unknown_option_exit_code(capsys):
    code = main(["pmzfs", "/mnt/cloud", "-o", "noexec"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("mount.pmzfs: unknown mount option 'noexec'")


def test_namespace_option_rejected(capsys):
    code = main(["pmzfs", "/mnt/cloud", "-N", "1234"])
    assert code == 1
    assert "-N" in capsys.readouterr().err


def test_relative_mountpoint_made_absolute(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    main(["pmzfs", "mnt", "-f"])
    assert f"mount {tmp_path / 'mnt'}" in capsys.readouterr().err


def test_console_script_installed():
    script = os.path.join(os.path.dirname(sys.executable), "mount.pmzfs")
    assert os.access(script, os.X_OK), f"{script} missing: run pip install -e ."
