"""Config file, environment and command-line precedence, and every kind of config error."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
from pathlib import Path

import pytest

import pmzfs.config as config
from pmzfs.cli import EXIT_USAGE
from pmzfs.config import (
    ConfigError,
    add_mount_options,
    cli_values_from_args,
    load_mount_options,
    mount_options_from_args,
)
from pmzfs.options import MiB, MountOptions


@pytest.fixture
def config_home(tmp_path, monkeypatch):
    """An XDG_CONFIG_HOME in tmp; no system-wide file applies."""
    monkeypatch.setattr(config, "SYSTEM_CONFIG_PATH", tmp_path / "no-system-config.toml")
    home = tmp_path / "xdg"
    (home / "pmzfs").mkdir(parents=True)
    return home


def write_config(home: Path, text: str, mode: int = 0o600) -> Path:
    path = home / "pmzfs" / "config.toml"
    path.write_text(text)
    path.chmod(mode)
    return path


def load(home: Path, cli=None, env=None, config_path=None):
    full_env = {"XDG_CONFIG_HOME": str(home)}
    full_env.update(env or {})
    return load_mount_options(cli or {}, env=full_env, config_path=config_path)


def test_defaults_without_any_source(config_home):
    options, api_key = load(config_home)
    assert options == MountOptions()
    assert api_key is None


def test_every_field_has_an_option_spec():
    fields = {field.name for field in dataclasses.fields(MountOptions)} - {"mountpoint"}
    assert fields == set(config.SPECS_BY_NAME)


def test_precedence_cli_over_env_over_file(config_home):
    write_config(config_home, "dir_cache_ttl = 10\nnegative_ttl = 1\napi_rate = 3\n")
    env = {"PMZFS_DIR_CACHE_TTL": "20", "PMZFS_NEGATIVE_TTL": "5"}

    options, _ = load(config_home, cli={"dir_cache_ttl": "30"}, env=env)
    assert options.dir_cache_ttl == 30.0
    assert options.negative_ttl == 5.0
    assert options.api_rate == 3.0

    options, _ = load(config_home, env=env)
    assert options.dir_cache_ttl == 20.0

    options, _ = load(config_home)
    assert options.dir_cache_ttl == 10.0


def test_empty_env_variable_counts_as_unset(config_home):
    write_config(config_home, "dir_cache_ttl = 10\n")
    options, _ = load(config_home, env={"PMZFS_DIR_CACHE_TTL": ""})
    assert options.dir_cache_ttl == 10.0


def test_mount_section_overrides_top_level(config_home, tmp_path):
    mountpoint = tmp_path / "media"
    write_config(
        config_home,
        'read_only = false\numask = "022"\n'
        f'[mounts."{mountpoint}"]\nread_only = true\nallow_other = true\n'
        '[mounts."/srv/other"]\numask = "077"\n',
    )

    options, _ = load(config_home, cli={"mountpoint": str(mountpoint)})
    assert options.read_only is True
    assert options.allow_other is True
    assert options.umask == 0o022
    assert options.mountpoint == mountpoint

    other, _ = load(config_home, cli={"mountpoint": str(tmp_path / "elsewhere")})
    assert other.read_only is False
    assert other.allow_other is False


def test_mount_section_matches_relative_mountpoint(config_home, tmp_path, monkeypatch):
    write_config(config_home, f'[mounts."{tmp_path}/media"]\nread_only = true\n')
    monkeypatch.chdir(tmp_path)
    options, _ = load(config_home, cli={"mountpoint": "media/"})
    assert options.read_only is True
    assert options.mountpoint == tmp_path / "media"


def test_value_forms_in_file(config_home):
    write_config(
        config_home,
        'readahead_memory = "256M"\nreadahead_max = 1048576\numask = "0o027"\n'
        'uid = "root"\ngid = 0\nallow_other = true\napi_url = "http://127.0.0.1:8080/"\n'
        "connections_per_file = 2\napi_rate = 2.5\ndir_cache_ttl = 1.5\n",
    )
    options, _ = load(config_home)
    assert options.readahead_memory == 256 * MiB
    assert options.readahead_max == MiB
    assert options.umask == 0o027
    assert options.uid == 0
    assert options.gid == 0
    assert options.allow_other is True
    assert options.api_url == "http://127.0.0.1:8080"
    assert options.connections_per_file == 2
    assert options.api_rate == 2.5
    assert options.dir_cache_ttl == 1.5


def test_value_forms_on_command_line(config_home):
    cli = {"readahead_memory": "1G", "readahead_max": "64m", "umask": "077", "uid": "0", "allow_other": True}
    options, _ = load(config_home, cli=cli)
    assert options.readahead_memory == 1024 * MiB
    assert options.readahead_max == 64 * MiB
    assert options.umask == 0o077
    assert options.uid == 0
    assert options.allow_other is True


def test_env_bool_spellings(config_home):
    for text, expected in [("1", True), ("yes", True), ("ON", True), ("0", False), ("false", False), ("off", False)]:
        options, _ = load(config_home, env={"PMZFS_READ_ONLY": text})
        assert options.read_only is expected, text


def test_paths_relative_to_config_file(config_home, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    write_config(config_home, 'cache_dir = "cache"\nlog_file = "~/pmzfs.log"\napi_key_file = "/etc/key"\n')
    options, _ = load(config_home)
    assert options.cache_dir == config_home / "pmzfs" / "cache"
    assert options.log_file == tmp_path / "home" / "pmzfs.log"
    assert options.api_key_file == Path("/etc/key")


def test_env_and_cli_paths_use_cwd(config_home, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    options, _ = load(config_home, cli={"log_file": "out.log"}, env={"PMZFS_CACHE_DIR": "c"})
    assert options.log_file == tmp_path / "out.log"
    assert options.cache_dir == tmp_path / "c"


def test_api_key_from_file_and_mount_section(config_home, tmp_path):
    mountpoint = tmp_path / "second"
    write_config(config_home, f'api_key = "top-level-key"\n[mounts."{mountpoint}"]\napi_key = "second-account-key"\n')
    _, api_key = load(config_home)
    assert api_key == "top-level-key"
    _, api_key = load(config_home, cli={"mountpoint": str(mountpoint)})
    assert api_key == "second-account-key"


def test_api_key_in_readable_file_warns(config_home, caplog):
    path = write_config(config_home, 'api_key = "readable-key-123"\n', mode=0o644)
    with caplog.at_level(logging.WARNING, logger="pmzfs.config"):
        load(config_home)
    assert f"chmod 600 {path}" in caplog.text
    assert "readable-key-123" not in caplog.text


def test_api_key_in_private_file_is_quiet(config_home, caplog):
    write_config(config_home, 'api_key = "private-key-123"\n', mode=0o600)
    with caplog.at_level(logging.WARNING, logger="pmzfs.config"):
        load(config_home)
    assert "chmod" not in caplog.text


def test_explicit_config_path_wins(config_home, tmp_path):
    write_config(config_home, "dir_cache_ttl = 10\n")
    other = tmp_path / "other.toml"
    other.write_text("dir_cache_ttl = 99\n")
    options, _ = load(config_home, config_path=str(other))
    assert options.dir_cache_ttl == 99.0
    options, _ = load(config_home, env={"PMZFS_CONFIG": str(other)})
    assert options.dir_cache_ttl == 99.0


def test_system_config_used_for_root_only(config_home, tmp_path, monkeypatch):
    system = tmp_path / "etc-config.toml"
    system.write_text("dir_cache_ttl = 42\n")
    monkeypatch.setattr(config, "SYSTEM_CONFIG_PATH", system)
    options, _ = load(config_home)
    expected = 42.0 if os.geteuid() == 0 else MountOptions().dir_cache_ttl
    assert options.dir_cache_ttl == expected

    write_config(config_home, "dir_cache_ttl = 7\n")
    options, _ = load(config_home)
    assert options.dir_cache_ttl == 7.0


def test_unknown_env_variable_warns(config_home, caplog):
    with caplog.at_level(logging.WARNING, logger="pmzfs.config"):
        load(config_home, env={"PMZFS_DIR_CACHE_TL": "5", "PMZFS_API_KEY": "x"})
    assert "PMZFS_DIR_CACHE_TL" in caplog.text
    assert "PMZFS_API_KEY" not in caplog.text.split("mount options are")[0]


# --- errors: each names the option, the value, the source and what is allowed


def config_error(home: Path, text: str | None = None, **kwargs) -> str:
    if text is not None:
        write_config(home, text)
    with pytest.raises(ConfigError) as info:
        load(home, **kwargs)
    assert info.value.exit_code == EXIT_USAGE
    return str(info.value)


def test_error_unknown_key_suggests_match(config_home):
    message = config_error(config_home, "dir_cache_tll = 5\n")
    assert "unknown option 'dir_cache_tll'" in message
    assert "config.toml" in message
    assert "did you mean 'dir_cache_ttl'" in message
    assert "api_url" in message


def test_error_unknown_key_in_mount_section(config_home):
    message = config_error(config_home, '[mounts."/mnt/x"]\nfoo = 1\n')
    assert "unknown option 'foo'" in message
    assert '[mounts."/mnt/x"]' in message


def test_error_wrong_type(config_home):
    message = config_error(config_home, 'dir_cache_ttl = "soon"\n')
    assert "'soon'" in message
    assert "dir_cache_ttl" in message
    assert "config.toml" in message
    assert "number of seconds" in message


def test_error_negative_ttl(config_home):
    message = config_error(config_home, "negative_ttl = -1\n")
    assert "-1" in message
    assert "negative_ttl" in message
    assert "0 or more" in message


def test_error_bool_as_number(config_home):
    message = config_error(config_home, "dir_cache_ttl = true\n")
    assert "True" in message
    assert "dir_cache_ttl" in message


def test_error_umask_integer(config_home):
    message = config_error(config_home, "umask = 22\n")
    assert "umask" in message
    assert "22" in message
    assert 'umask = "022"' in message


def test_error_umask_not_octal(config_home):
    message = config_error(config_home, 'umask = "089"\n')
    assert "'089'" in message
    assert "octal" in message


def test_error_unknown_section(config_home):
    message = config_error(config_home, "[cache]\ndir = 1\n")
    assert "unknown section [cache]" in message
    assert "config.toml" in message
    assert "[mounts." in message


def test_error_relative_mount_section(config_home):
    message = config_error(config_home, '[mounts."media"]\nread_only = true\n')
    assert "absolute path" in message


def test_error_invalid_toml(config_home):
    message = config_error(config_home, "dir_cache_ttl = = 5\n")
    assert "not valid TOML" in message
    assert "config.toml" in message


def test_error_missing_explicit_config(config_home, tmp_path):
    message = config_error(config_home, config_path=str(tmp_path / "absent.toml"))
    assert "absent.toml" in message
    assert "not found" in message
    message = config_error(config_home, env={"PMZFS_CONFIG": str(tmp_path / "gone.toml")})
    assert "gone.toml" in message
    assert "PMZFS_CONFIG" in message


def test_error_bad_env_value(config_home):
    message = config_error(config_home, env={"PMZFS_READ_ONLY": "maybe"})
    assert "'maybe'" in message
    assert "PMZFS_READ_ONLY" in message
    assert "true or false" in message


def test_error_bad_cli_value(config_home):
    message = config_error(config_home, cli={"readahead_memory": "12X"})
    assert "'12X'" in message
    assert "--readahead-memory" in message
    assert "128M" in message


def test_error_bad_url(config_home):
    message = config_error(config_home, cli={"api_url": "ftp://127.0.0.1"})
    assert "'ftp://127.0.0.1'" in message
    assert "http://" in message


def test_error_unknown_user_name(config_home):
    message = config_error(config_home, cli={"uid": "no-such-user-pmzfs"})
    assert "no user named 'no-such-user-pmzfs'" in message


def test_error_zero_count(config_home):
    message = config_error(config_home, 'connections_per_file = 0\n')
    assert "connections_per_file" in message
    assert "1 or more" in message


def test_error_readahead_window_above_memory(config_home):
    write_config(config_home, 'readahead_memory = "16M"\n')
    message = config_error(config_home, cli={"readahead_max": "32M"})
    assert "readahead_max (32M, from command line --readahead-max)" in message
    assert "readahead_memory (16M, from" in message
    assert "config.toml" in message


# --- argparse helper


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pmzfs mount")
    parser.add_argument("mountpoint")
    add_mount_options(parser)
    return parser


def test_parser_keeps_only_given_options():
    args = build_parser().parse_args(["/mnt/x", "--dir-cache-ttl", "5", "--allow-other", "-v"])
    values = cli_values_from_args(args)
    assert values == {"dir_cache_ttl": "5", "allow_other": True, "verbose": True, "mountpoint": "/mnt/x"}


def test_parser_no_flag_overrides_file(config_home):
    write_config(config_home, "allow_other = true\n")
    args = build_parser().parse_args(["/mnt/x", "--no-allow-other"])
    options, _ = mount_options_from_args(args, env={"XDG_CONFIG_HOME": str(config_home)})
    assert options.allow_other is False


def test_parser_config_flag(config_home, tmp_path):
    other = tmp_path / "flag.toml"
    other.write_text("api_rate = 4\n")
    args = build_parser().parse_args(["/mnt/x", "--config", str(other)])
    options, _ = mount_options_from_args(args, env={"XDG_CONFIG_HOME": str(config_home)})
    assert options.api_rate == 4.0


def test_parser_help_names_env_and_default():
    text = " ".join(build_parser().format_help().split())
    assert "--readahead-memory SIZE" in text
    assert "PMZFS_READAHEAD_MEMORY" in text
    assert "default 128M" in text
    assert "default 022" in text
    assert "--dir-cache-ttl SECONDS" in text
    assert "--no-allow-other" in text
    assert "--config FILE" in text


def test_every_option_has_flag_and_env_name():
    parser = build_parser()
    text = parser.format_help()
    for spec in config.OPTION_SPECS:
        assert spec.flag in text, spec.name
        assert spec.env_name in " ".join(text.split()), spec.name
