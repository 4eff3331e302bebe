"""Mount options: one record with every setting, its default and its unit.

The command line, the environment and the config file all fill the same
``MountOptions``; ``pmzfs.config`` applies their precedence (command line
over environment over file).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from pmzfs.api.client import DEFAULT_API_URL

MiB = 1024 * 1024


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pmzfs"


@dataclass
class MountOptions:
    mountpoint: Path | None = None
    # Base URL of the API; the real service unless a test or the demo sets another.
    api_url: str = DEFAULT_API_URL
    api_key_file: Path | None = None
    # Staged uploads, the local mtime store and other state that must survive a restart.
    cache_dir: Path = field(default_factory=default_cache_dir)
    # Seconds a folder listing is trusted before the next access lists it again.
    dir_cache_ttl: float = 60.0
    # Seconds a name that was not found stays remembered as missing.
    negative_ttl: float = 2.0
    allow_other: bool = False
    uid: int | None = None
    gid: int | None = None
    umask: int = 0o022
    read_only: bool = False
    foreground: bool = False
    verbose: bool = False
    log_file: Path | None = None
    # Bytes of read-ahead that all open files together may hold in memory.
    readahead_memory: int = 128 * MiB
    # Largest read-ahead window of one file, in bytes.
    readahead_max: int = 32 * MiB
    # Kernel read-ahead of the mount in bytes (its page-cache window, set in
    # /sys/class/bdi as root). The kernel's default of 128 KiB caps each
    # sequential FUSE read at that size, so every 128 KiB costs one request.
    kernel_readahead: int = 1 * MiB
    # Parallel range requests that one file's read-ahead may have open.
    connections_per_file: int = 4
    # Concurrent API requests (not file reads) and API requests per second.
    # The service publishes no limit.  rclone's premiumize backend waits at
    # least 10 ms between calls, up to 100 calls a second.  Half of that
    # leaves room for other clients of the same account.
    api_concurrency: int = 8
    api_rate: float = 50.0
