"""Mount options from the command line, the environment and a TOML config file.

Precedence, highest first: command line, environment (``PMZFS_<OPTION>``),
the config file's section for the mountpoint, the config file's top level,
the defaults of ``MountOptions``.

The config file is the first that exists of:

1. ``--config FILE`` or ``PMZFS_CONFIG`` (must exist);
2. ``$XDG_CONFIG_HOME/pmzfs/config.toml`` (default ``~/.config/pmzfs/config.toml``);
3. ``/etc/pmzfs/config.toml``, for root only, so a system service or an
   fstab mount finds the administrator's file without a home directory.

A file looks like this::

    api_url = "https://www.premiumize.me"
    api_key_file = "~/.config/pmzfs/api-key"
    dir_cache_ttl = 120
    readahead_memory = "256M"
    umask = "022"

    [mounts."/srv/media"]
    read_only = true
    allow_other = true

Every ``MountOptions`` field except ``mountpoint`` is a key, plus ``api_key``,
which the credentials code uses below the key file and ``PMZFS_API_KEY``.
Any invalid input raises one ``ConfigError``. It names the option, the
value, where the value came from and what is allowed, and the CLI prints it
and exits 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import logging
import math
import os
import grp
import pwd
import re
import stat
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pmzfs.cli import EXIT_USAGE, CommandError
from pmzfs.options import MountOptions
from pmzfs.redact import register_secret

log = logging.getLogger(__name__)

ENV_PREFIX = "PMZFS_"
CONFIG_ENV = "PMZFS_CONFIG"
SYSTEM_CONFIG_PATH = Path("/etc/pmzfs/config.toml")
MOUNTS_SECTION = "mounts"
API_KEY = "api_key"

# PMZFS_* variables that other parts of pmzfs (credentials, login, the
# benchmarks) read; they are not mount options.
OTHER_ENV_NAMES = frozenset({"PMZFS_API_KEY", "PMZFS_CLIENT_ID", "PMZFS_BENCH_DIR", CONFIG_ENV})

_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_SIZE_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)


class ConfigError(CommandError):
    """An invalid option value, unknown key or unreadable config file (exit code 2)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=EXIT_USAGE)


# ---------------------------------------------------------------------------
# Value parsers. Each takes a raw value (a string from the command line, the
# environment or fstab, or a TOML value from the file) and returns the typed
# value, or raises ValueError whose message states what is allowed.


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
    raise ValueError("expected true or false (also accepted: yes/no, on/off, 1/0)")


def _parse_number(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise ValueError("not a number")


def parse_seconds(value: Any) -> float:
    try:
        seconds = _parse_number(value)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError("expected a number of seconds, 0 or more, such as 60 or 2.5")
    return seconds


def parse_rate(value: Any) -> float:
    try:
        rate = _parse_number(value)
    except ValueError:
        rate = math.nan
    if not math.isfinite(rate) or rate <= 0:
        raise ValueError("expected a number greater than 0, such as 10 or 2.5")
    return rate


def parse_count(value: Any) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError("expected a whole number, 1 or more")
    return value


def parse_size(value: Any) -> int:
    """Parse a size in bytes: an integer, or a string such as "512K", "128M", "1.5G"."""
    allowed = "expected a size in bytes greater than 0, such as 134217728, 512K, 128M or 1G (K, M, G and T are powers of 1024)"
    if isinstance(value, bool):
        raise ValueError(allowed)
    if isinstance(value, int):
        size = value
    elif isinstance(value, str) and (match := _SIZE_PATTERN.match(value)):
        size = int(float(match.group(1)) * _SIZE_UNITS[match.group(2).upper()])
    else:
        raise ValueError(allowed)
    if size <= 0:
        raise ValueError(allowed)
    return size


def format_size(size: int) -> str:
    """Format a byte count in the form ``parse_size`` reads: 134217728 -> "128M"."""
    for suffix in ("T", "G", "M", "K"):
        unit = _SIZE_UNITS[suffix]
        if size >= unit and size % unit == 0:
            return f"{size // unit}{suffix}"
    return str(size)


def parse_umask(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        # TOML reads 0o022 and 18 as the same integer, and "umask = 22" almost
        # always means octal 022, so only the string form is unambiguous.
        raise ValueError('expected a string of octal digits, such as umask = "022"')
    if isinstance(value, str):
        text = value.strip().lower().removeprefix("0o")
        if re.fullmatch(r"[0-7]{1,4}", text) and int(text, 8) <= 0o777:
            return int(text, 8)
    raise ValueError("expected octal digits from 000 to 777, such as 022 or 077")


def _parse_id(value: Any, kind: str, lookup: Callable[[str], int]) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.strip():
        text = value.strip()
        if text.isdigit():
            return int(text)
        try:
            return lookup(text)
        except KeyError:
            raise ValueError(f"no {kind} named {text!r} exists on this system") from None
    raise ValueError(f"expected a numeric {kind} id (0 or more) or an existing {kind} name")


def parse_uid(value: Any) -> int:
    return _parse_id(value, "user", lambda name: pwd.getpwnam(name).pw_uid)


def parse_gid(value: Any) -> int:
    return _parse_id(value, "group", lambda name: grp.getgrnam(name).gr_gid)


def parse_url(value: Any) -> str:
    if isinstance(value, str):
        text = value.strip().rstrip("/")
        parts = urlsplit(text)
        if parts.scheme in ("http", "https") and parts.hostname and not parts.query and not parts.fragment:
            return text
    raise ValueError("expected an http:// or https:// base URL, such as https://www.premiumize.me")


def parse_path(value: Any, base_dir: Path | None = None) -> Path:
    """Parse a file or folder path, expanding ``~``; a relative path is taken from ``base_dir`` (default: the working directory)."""
    if isinstance(value, Path):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected a non-empty file or folder path")
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = (base_dir or Path.cwd()) / path
    return Path(os.path.normpath(path))


def parse_api_key(value: Any) -> str:
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise ValueError("expected the API key as a non-empty string")


# ---------------------------------------------------------------------------
# The option table: one entry per configurable MountOptions field.


@dataclass(frozen=True)
class OptionSpec:
    """The parser, flag, environment variable and help text of one mount option."""

    name: str
    parse: Callable[[Any], Any]
    metavar: str
    help: str
    is_path: bool = False
    # Shown in place of a default that is None.
    unset_text: str = "none"

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env_name(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def is_bool(self) -> bool:
        return self.parse is parse_bool


OPTION_SPECS: tuple[OptionSpec, ...] = (
    OptionSpec("api_url", parse_url, "URL", "base URL of the premiumize API"),
    OptionSpec("api_key_file", parse_path, "FILE", "file that contains only the API key", is_path=True, unset_text="none, so PMZFS_API_KEY, the config file's api_key or the token of pmzfs login is used"),
    OptionSpec("cache_dir", parse_path, "DIR", "folder for staged uploads and state kept across restarts", is_path=True),
    OptionSpec("dir_cache_ttl", parse_seconds, "SECONDS", "seconds a folder listing is trusted before it is fetched again"),
    OptionSpec("negative_ttl", parse_seconds, "SECONDS", "seconds a name that was not found stays remembered as missing"),
    OptionSpec("allow_other", parse_bool, "", "let other users (such as a media server's) access the mount"),
    OptionSpec("uid", parse_uid, "USER", "owner shown for every file: a user name or numeric id", unset_text="the mounting user"),
    OptionSpec("gid", parse_gid, "GROUP", "group shown for every file: a group name or numeric id", unset_text="the mounting user's group"),
    OptionSpec("umask", parse_umask, "OCTAL", "permission bits removed from the mode of every file and folder"),
    OptionSpec("read_only", parse_bool, "", "mount read-only: no uploads, renames or deletes"),
    OptionSpec("foreground", parse_bool, "", "stay in the foreground instead of running as a daemon"),
    OptionSpec("verbose", parse_bool, "", "log debug messages, including one line per HTTP request"),
    OptionSpec("log_file", parse_path, "FILE", "also write the log to this file, rotated at 10 MiB", is_path=True),
    OptionSpec("readahead_memory", parse_size, "SIZE", "bytes of read-ahead that all open files together may hold in memory"),
    OptionSpec("readahead_max", parse_size, "SIZE", "largest read-ahead window of one file, in bytes"),
    OptionSpec("kernel_readahead", parse_size, "SIZE", "kernel read-ahead of the mount in bytes, set only when pmzfs runs as root (128K is the kernel's default)"),
    OptionSpec("connections_per_file", parse_count, "N", "parallel range requests one file's read-ahead may have open"),
    OptionSpec("api_concurrency", parse_count, "N", "API requests (not file reads) that may run at the same time"),
    OptionSpec("api_rate", parse_rate, "PER_SECOND", "maximum API requests per second"),
)

SPECS_BY_NAME: dict[str, OptionSpec] = {spec.name: spec for spec in OPTION_SPECS}
FILE_KEYS = frozenset(SPECS_BY_NAME) | {API_KEY}


def _format_default(spec: OptionSpec) -> str:
    field = next(f for f in dataclasses.fields(MountOptions) if f.name == spec.name)
    if field.default_factory is not dataclasses.MISSING:
        default = field.default_factory()
    else:
        default = field.default
    if default is None:
        return spec.unset_text
    if spec.parse is parse_size:
        return format_size(default)
    if spec.parse is parse_umask:
        return f"{default:03o}"
    if isinstance(default, bool):
        return "on" if default else "off"
    if isinstance(default, float) and default.is_integer():
        return str(int(default))
    return str(default)


def default_value_text(name: str) -> str:
    """Return the default of option ``name`` as the docs and ``--help`` show it."""
    return _format_default(SPECS_BY_NAME[name])


# ---------------------------------------------------------------------------
# Command line


def add_mount_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--config`` and one flag per mount option to ``parser``.

    Every flag defaults to ``argparse.SUPPRESS``, so an option appears in the
    parsed namespace only when the command line gave it; pass the namespace
    to ``cli_values_from_args``. Values stay strings here and are checked by
    ``load_mount_options``, so every source reports errors the same way.
    The positional MOUNTPOINT is the caller's to add (dest ``mountpoint``).
    """
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help=f"read options from this TOML file instead of the default one (env {CONFIG_ENV})",
    )
    for spec in OPTION_SPECS:
        help_text = f"{spec.help} (env {spec.env_name}; default {_format_default(spec)})"
        names = [spec.flag]
        if spec.name == "verbose":
            names.insert(0, "-v")
        if spec.is_bool:
            parser.add_argument(
                *names,
                dest=spec.name,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=help_text,
            )
        else:
            parser.add_argument(
                *names,
                dest=spec.name,
                metavar=spec.metavar,
                default=argparse.SUPPRESS,
                help=help_text,
            )


def cli_values_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Return the mount options the command line gave (plus ``mountpoint`` if present)."""
    values = {name: getattr(args, name) for name in SPECS_BY_NAME if hasattr(args, name)}
    if getattr(args, "mountpoint", None) is not None:
        values["mountpoint"] = args.mountpoint
    return values


def mount_options_from_args(
    args: argparse.Namespace, env: Mapping[str, str] | None = None
) -> tuple[MountOptions, str | None]:
    """Build the mount options for a namespace parsed with ``add_mount_options``."""
    return load_mount_options(
        cli_values_from_args(args),
        env=os.environ if env is None else env,
        config_path=getattr(args, "config", None),
    )


# ---------------------------------------------------------------------------
# Config file


def user_config_path(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "pmzfs" / "config.toml"


def find_config_file(env: Mapping[str, str], config_path: str | os.PathLike | None = None) -> Path | None:
    """Return the config file to read, or None when no file applies.

    An explicit path (argument or ``PMZFS_CONFIG``) must exist. Otherwise the
    user's file is used if it exists, then ``/etc/pmzfs/config.toml`` for root.
    """
    explicit = config_path if config_path is not None else env.get(CONFIG_ENV) or None
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            source = "--config" if config_path is not None else CONFIG_ENV
            raise ConfigError(f"config file {path} (from {source}) not found; create it or give an existing file")
        return path
    candidates = [user_config_path(env)]
    if os.geteuid() == 0:
        candidates.append(SYSTEM_CONFIG_PATH)
    for path in candidates:
        if path.is_file():
            return path
    return None


def read_config_file(path: Path) -> dict[str, Any]:
    """Read and parse one TOML config file; syntax and read errors raise ``ConfigError``."""
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"failed to read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    sections = data.get(MOUNTS_SECTION)
    if API_KEY in data or (
        isinstance(sections, dict) and any(isinstance(s, dict) and API_KEY in s for s in sections.values())
    ):
        _warn_if_readable_by_others(path)
    return data


def _warn_if_readable_by_others(path: Path) -> None:
    mode = path.stat().st_mode
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning(
            "config file %s contains an API key and other users can read it; run: chmod 600 %s",
            path,
            path,
        )


def _unknown_key_message(key: str, where: str) -> str:
    allowed = sorted(FILE_KEYS)
    suggestion = difflib.get_close_matches(key, allowed, n=1)
    hint = f"; did you mean {suggestion[0]!r}?" if suggestion else ""
    return f"unknown option {key!r} in {where}{hint} Allowed options: {', '.join(allowed)}"


def _normalize_mountpoint(value: str | os.PathLike) -> str:
    return os.path.normpath(os.path.abspath(os.path.expanduser(os.fspath(value))))


def _file_layers(data: dict[str, Any], path: Path, mountpoint: str | None) -> list[tuple[dict[str, Any], str]]:
    """Split a parsed file into (values, description) layers, lowest precedence first."""
    top: dict[str, Any] = {}
    layers = [(top, str(path))]
    for key, value in data.items():
        if key == MOUNTS_SECTION and isinstance(value, dict):
            continue
        if isinstance(value, dict):
            raise ConfigError(
                f"unknown section [{key}] in {path}; the only section is [{MOUNTS_SECTION}.\"/path/to/mountpoint\"],"
                " other options go at the top of the file"
            )
        if key not in FILE_KEYS:
            raise ConfigError(_unknown_key_message(key, str(path)))
        top[key] = value

    sections = data.get(MOUNTS_SECTION, {})
    matched: dict[str, Any] | None = None
    matched_name = ""
    for name, section in sections.items():
        where = f'[{MOUNTS_SECTION}."{name}"] in {path}'
        if not isinstance(section, dict):
            raise ConfigError(f"{where} must be a section of options, not a single value")
        if not os.path.isabs(os.path.expanduser(name)):
            raise ConfigError(f"{where}: the mountpoint must be an absolute path such as /mnt/cloud")
        for key in section:
            if isinstance(section[key], dict):
                raise ConfigError(f"unknown section [{MOUNTS_SECTION}.\"{name}\".{key}] in {path}; sections do not nest")
            if key not in FILE_KEYS:
                raise ConfigError(_unknown_key_message(key, where))
        if mountpoint is not None and _normalize_mountpoint(name) == mountpoint:
            matched, matched_name = section, where
    if matched is not None:
        layers.append((matched, matched_name))
    return layers


# ---------------------------------------------------------------------------
# Loading


def _parse_option(spec: OptionSpec, raw: Any, source: str, base_dir: Path | None) -> Any:
    try:
        if spec.is_path:
            return parse_path(raw, base_dir)
        return spec.parse(raw)
    except ValueError as exc:
        raise ConfigError(f"invalid value {raw!r} for {source}: {exc}") from None


def _env_layer(env: Mapping[str, str]) -> dict[str, str]:
    values = {}
    for spec in OPTION_SPECS:
        raw = env.get(spec.env_name)
        # An empty variable counts as unset, as in "PMZFS_UID= pmzfs mount ...".
        if raw:
            values[spec.name] = raw
    known = {spec.env_name for spec in OPTION_SPECS} | OTHER_ENV_NAMES
    for name in env:
        if name.startswith(ENV_PREFIX) and name not in known:
            log.warning("ignoring unknown environment variable %s; mount options are: %s", name, ", ".join(sorted(known)))
    return values


def load_mount_options(
    cli_values: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
    config_path: str | os.PathLike | None = None,
) -> tuple[MountOptions, str | None]:
    """Merge defaults, config file, environment and command line into ``MountOptions``.

    ``cli_values`` contains only the options the command line gave, keyed by
    field name (as ``cli_values_from_args`` returns them), and may contain
    ``mountpoint``. Returns the options and the ``api_key`` from the config
    file, or None. Raises ``ConfigError`` for any invalid input.
    """
    env = os.environ if env is None else env
    mountpoint = cli_values.get("mountpoint")
    normalized_mountpoint = _normalize_mountpoint(mountpoint) if mountpoint is not None else None

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    api_key: str | None = None

    file_path = find_config_file(env, config_path)
    if file_path is not None:
        log.debug("reading config file %s", file_path)
        data = read_config_file(file_path)
        for layer, where in _file_layers(data, file_path, normalized_mountpoint):
            for key, raw in layer.items():
                if key == API_KEY:
                    api_key = _parse_api_key_value(raw, where)
                    continue
                spec = SPECS_BY_NAME[key]
                values[key] = _parse_option(spec, raw, f"{key} in {where}", file_path.parent)
                sources[key] = where

    for key, raw in _env_layer(env).items():
        spec = SPECS_BY_NAME[key]
        values[key] = _parse_option(spec, raw, f"{spec.env_name} (environment)", None)
        sources[key] = f"environment variable {spec.env_name}"

    for key, raw in cli_values.items():
        if key == "mountpoint":
            continue
        if key not in SPECS_BY_NAME:
            raise ValueError(f"cli_values contains {key!r}, which is not a mount option")
        spec = SPECS_BY_NAME[key]
        values[key] = _parse_option(spec, raw, spec.flag, None)
        sources[key] = f"command line {spec.flag}"

    options = MountOptions(**values)
    if mountpoint is not None:
        options.mountpoint = Path(normalized_mountpoint)
    _check_combination(options, sources)
    for key in sorted(sources):
        log.debug("option %s = %r (from %s)", key, getattr(options, key), sources[key])
    return options, api_key


def _parse_api_key_value(raw: Any, where: str) -> str:
    try:
        key = parse_api_key(raw)
    except ValueError as exc:
        raise ConfigError(f"invalid value for api_key in {where}: {exc}") from None
    register_secret(key)
    return key


def _check_combination(options: MountOptions, sources: Mapping[str, str]) -> None:
    if options.readahead_max > options.readahead_memory:
        max_from = sources.get("readahead_max", "the default")
        memory_from = sources.get("readahead_memory", "the default")
        raise ConfigError(
            f"readahead_max ({format_size(options.readahead_max)}, from {max_from}) is larger than"
            f" readahead_memory ({format_size(options.readahead_memory)}, from {memory_from});"
            " one file's window cannot exceed the memory of all files: raise readahead_memory or lower readahead_max"
        )
