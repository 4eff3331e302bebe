"""The status channel of a mount: a unix socket server in the mount process and its client.

Why a socket and not a control file inside the mount: a hidden file in the
mount would show up in ``find``, in Plex and Jellyfin library scans and in
``rsync --delete`` runs, and with ``allow_other`` every user could read it.
A socket with mode 0600 in a 0700 runtime directory is reachable only by
the user who mounted, and it stays out of the mounted tree. Its client can
also give up after a timeout instead of blocking in the kernel on a stuck
mount.

Location: ``$XDG_RUNTIME_DIR/pmzfs/`` when that variable is set, otherwise
``/run/pmzfs/`` for root, ``/run/user/UID/pmzfs/`` when it exists, and
``/tmp/pmzfs-UID/`` as the last resort. The client looks in all of them.
The file name is the mountpoint path with "/" turned into "-", shortened to
fit, plus a hash of the full path.

Protocol: the client sends one JSON line ``{"command": "status"}``; the
server replies with one JSON line ``{"ok": true, "status": REPORT}`` (or
``{"ok": false, "error": TEXT}``) and closes the connection.

REPORT is the dict returned by the mount's callable, merged over
``mountpoint``, ``pid``, ``version``, ``started_at`` (Unix time) and
``uptime_seconds``, which the server fills in. The formatter understands::

    uploads:   {"pending": [{"path", "size", "bytes_sent"?}],
                "failed": [{"path", "size"?, "error", "attempts"?}]}
    readahead: {"memory_in_use": bytes, "memory_limit": bytes}
    cache:     {"entries": int, ...}
    api:       {"calls": int, "errors": int, "errors_by_code"?: {code: int}}

Other keys are printed as they are.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import socket
import stat
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import trio

from pmzfs import __version__
from pmzfs.cli import CommandError

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
REQUEST_TIMEOUT = 5.0
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
MAX_REQUEST_BYTES = 4096
# sun_path in struct sockaddr_un is 108 bytes including the final NUL.
MAX_SOCKET_PATH_BYTES = 107
MOUNT_TYPES = ("fuse.pmzfs",)
FSNAME = "pmzfs"

StatusCallable = Callable[[], "Mapping[str, Any] | Awaitable[Mapping[str, Any]]"]


class StatusError(CommandError):
    """The status channel failed: no mount, a dead mount process, a timeout or an invalid response."""


# ---------------------------------------------------------------------------
# Where the socket lives


def normalize_mountpoint(mountpoint: str | os.PathLike) -> str:
    """Return the absolute mountpoint path with its parent folder's symlinks resolved.

    The mountpoint itself is not resolved: that would stat the root of the
    mount, and inside the mount process that call would wait for the very
    event loop that serves it.
    """
    path = os.path.abspath(os.fspath(mountpoint))
    parent, name = os.path.split(path)
    return os.path.join(os.path.realpath(parent), name) if name else path


def socket_name(mountpoint: str, directory: Path) -> str:
    """Return the socket file name for ``mountpoint`` that fits in ``directory``."""
    digest = hashlib.sha256(mountpoint.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    readable = re.sub(r"[^A-Za-z0-9._-]", "_", mountpoint.strip("/").replace("/", "-"))
    room = MAX_SOCKET_PATH_BYTES - len(os.fsencode(directory)) - len(f"/-{digest}.sock")
    readable = readable[: max(room, 0)]
    return f"{readable}-{digest}.sock" if readable else f"{digest}.sock"


def candidate_dirs(env: Mapping[str, str] | None = None) -> list[Path]:
    """Return the runtime directories a status socket may be in, the server's choice first."""
    env = os.environ if env is None else env
    uid = os.geteuid()
    candidates = []
    if env.get("XDG_RUNTIME_DIR"):
        candidates.append(Path(env["XDG_RUNTIME_DIR"]) / "pmzfs")
    if uid == 0:
        candidates.append(Path("/run/pmzfs"))
    user_runtime = Path(f"/run/user/{uid}")
    if user_runtime.is_dir():
        candidates.append(user_runtime / "pmzfs")
    candidates.append(Path(f"/tmp/pmzfs-{uid}"))
    unique: list[Path] = []
    for path in candidates:
        if path not in unique:
            unique.append(path)
    return unique


def _prepare_dir(directory: Path) -> None:
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        status = os.lstat(directory)
    except OSError as exc:
        raise StatusError(f"failed to create status directory {directory}: {exc.strerror}") from None
    # A directory another user owns or can write to (possible under /tmp)
    # could hand the client a socket that is not ours.
    if not stat.S_ISDIR(status.st_mode) or status.st_uid != os.geteuid() or status.st_mode & 0o077:
        raise StatusError(
            f"status directory {directory} is not a private directory of this user (expected mode 0700,"
            f" owner uid {os.geteuid()}); remove it or set XDG_RUNTIME_DIR"
        )


def server_socket_path(mountpoint: str | os.PathLike, env: Mapping[str, str] | None = None) -> Path:
    """Return the socket path the mount process serves for ``mountpoint``, creating its directory."""
    directory = candidate_dirs(env)[0]
    _prepare_dir(directory)
    normalized = normalize_mountpoint(mountpoint)
    path = directory / socket_name(normalized, directory)
    if len(os.fsencode(path)) > MAX_SOCKET_PATH_BYTES:
        raise StatusError(
            f"status socket path {path} is longer than {MAX_SOCKET_PATH_BYTES} bytes; set XDG_RUNTIME_DIR to a shorter directory"
        )
    return path


# ---------------------------------------------------------------------------
# Server


async def serve_status(
    mountpoint: str | os.PathLike,
    get_status: StatusCallable,
    *,
    env: Mapping[str, str] | None = None,
    task_status: trio.TaskStatus[Path] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve status reports for ``mountpoint`` until cancelled; start it with ``nursery.start``.

    ``get_status`` is called for each request and returns a JSON-serializable
    dict (it may be async). ``nursery.start`` returns the socket path. The
    socket is removed when the task is cancelled. Raises ``StatusError`` if
    another live process already serves this mountpoint. Failures while
    serving one client are logged and never end the server.
    """
    normalized = normalize_mountpoint(mountpoint)
    path = server_socket_path(normalized, env)
    await _remove_stale_socket(path, normalized)

    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        await sock.bind(os.fspath(path))
        # The directory is 0700, so no other user can connect before this chmod.
        os.chmod(path, 0o600)
        bound_inode = os.stat(path).st_ino
        sock.listen(16)
    except OSError as exc:
        sock.close()
        raise StatusError(f"failed to open status socket {path}: {exc.strerror}") from None

    started_monotonic = time.monotonic()
    started_at = time.time()

    def base_report() -> dict[str, Any]:
        return {
            "mountpoint": normalized,
            "pid": os.getpid(),
            "version": __version__,
            "started_at": started_at,
            "uptime_seconds": time.monotonic() - started_monotonic,
        }

    async def handle(stream: trio.SocketStream) -> None:
        await _serve_client(stream, get_status, base_report)

    log.debug("serving status for %s on %s", normalized, path)
    task_status.started(path)
    try:
        await trio.serve_listeners(handle, [trio.SocketListener(sock)])
    finally:
        _unlink_if_ours(path, bound_inode)


async def _remove_stale_socket(path: Path, mountpoint: str) -> None:
    if not path.exists():
        return
    probe = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with trio.move_on_after(1.0):
            await probe.connect(os.fspath(path))
            raise StatusError(f"another pmzfs process already serves {mountpoint} (status socket {path})")
    except OSError:
        pass
    finally:
        probe.close()
    log.info("removing stale status socket %s left by an earlier mount process", path)
    path.unlink(missing_ok=True)


def _unlink_if_ours(path: Path, inode: int) -> None:
    try:
        if os.stat(path).st_ino == inode:
            path.unlink()
    except OSError:
        pass


async def _serve_client(
    stream: trio.SocketStream,
    get_status: StatusCallable,
    base_report: Callable[[], dict[str, Any]],
) -> None:
    try:
        with trio.move_on_after(REQUEST_TIMEOUT):
            request = await _receive_line(stream, MAX_REQUEST_BYTES)
            response = await _build_response(request, get_status, base_report)
            await stream.send_all(json.dumps(response, default=str).encode("utf-8") + b"\n")
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    except Exception:
        # One bad client or report must not end the mount's nursery.
        log.warning("status request failed", exc_info=True)
    finally:
        await trio.aclose_forcefully(stream)


async def _receive_line(stream: trio.SocketStream, limit: int) -> bytes:
    data = b""
    while b"\n" not in data and len(data) <= limit:
        chunk = await stream.receive_some(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\n", 1)[0]


async def _build_response(
    request: bytes,
    get_status: StatusCallable,
    base_report: Callable[[], dict[str, Any]],
) -> dict[str, Any]:
    try:
        command = json.loads(request).get("command")
    except (ValueError, AttributeError):
        return {"ok": False, "version": PROTOCOL_VERSION, "error": "invalid request: expected a JSON object line"}
    if command != "status":
        return {"ok": False, "version": PROTOCOL_VERSION, "error": f"unknown command {command!r}; expected 'status'"}
    try:
        result = get_status()
        if isinstance(result, Awaitable):
            result = await result
        report = base_report()
        report.update(result)
    except Exception as exc:
        log.warning("building the status report failed: %s", exc, exc_info=True)
        return {"ok": False, "version": PROTOCOL_VERSION, "error": f"the mount failed to build its status report: {exc}"}
    return {"ok": True, "version": PROTOCOL_VERSION, "status": report}


# ---------------------------------------------------------------------------
# Client


def find_pmzfs_mount(mountpoint: str, mountinfo: Path = Path("/proc/self/mountinfo")) -> bool:
    """Tell whether /proc/self/mountinfo lists a pmzfs FUSE mount at ``mountpoint``."""
    try:
        lines = mountinfo.read_text().splitlines()
    except OSError:
        return False
    for line in lines:
        before, _, after = line.partition(" - ")
        fields = before.split()
        tail = after.split()
        if len(fields) < 5 or len(tail) < 2:
            continue
        # mountinfo escapes space, tab, newline and backslash as octal.
        path = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
        fstype, source = tail[0], tail[1]
        if path == mountpoint and (fstype in MOUNT_TYPES or (fstype.startswith("fuse") and source == FSNAME)):
            return True
    return False


def _existing_sockets(mountpoint: str, env: Mapping[str, str] | None) -> list[Path]:
    found = []
    for directory in candidate_dirs(env):
        path = directory / socket_name(mountpoint, directory)
        if path.exists():
            found.append(path)
    return found


def query_status(
    mountpoint: str | os.PathLike,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = REQUEST_TIMEOUT,
) -> dict[str, Any]:
    """Ask the mount process serving ``mountpoint`` for its report (blocking; for the CLI).

    Raises ``StatusError`` with a message for the user when ``mountpoint`` is
    not a pmzfs mount, its process has exited or does not respond within
    ``timeout`` seconds, or the socket is not accessible.
    """
    shown = os.fspath(mountpoint)
    normalized = normalize_mountpoint(mountpoint)
    sockets = _existing_sockets(normalized, env)
    if not sockets and os.path.isdir(normalized):
        # The path given may be a symlink to the mountpoint.
        resolved = os.path.realpath(normalized)
        if resolved != normalized:
            normalized = resolved
            sockets = _existing_sockets(normalized, env)
    if not sockets:
        if find_pmzfs_mount(normalized):
            searched = ", ".join(str(d) for d in candidate_dirs(env))
            raise StatusError(
                f"{shown} is a pmzfs mount, but no status socket for it exists in {searched};"
                " run pmzfs status as the user who mounted it"
            )
        raise StatusError(f"{shown} is not a pmzfs mount")

    last_error: StatusError | None = None
    for path in sockets:
        try:
            return _request(path, shown, normalized, timeout)
        except StatusError as exc:
            last_error = exc
    assert last_error is not None
    raise last_error


def _request(path: Path, shown: str, mountpoint: str, timeout: float) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(os.fspath(path))
            sock.sendall(json.dumps({"command": "status"}).encode("utf-8") + b"\n")
            data = _receive_all(sock)
        except TimeoutError:
            raise StatusError(
                f"the mount process of {shown} did not respond within {timeout:g} s (status socket {path}); it may be busy or hung"
            ) from None
        except OSError as exc:
            raise _connection_error(exc, path, shown, mountpoint) from None
    try:
        response = json.loads(data)
    except ValueError:
        raise StatusError(f"invalid status response from {path}: not JSON") from None
    if not isinstance(response, dict):
        raise StatusError(f"invalid status response from {path}: not a JSON object")
    if not response.get("ok"):
        raise StatusError(f"the mount process of {shown} returned an error: {response.get('error', 'no message')}")
    report = response.get("status")
    if not isinstance(report, dict):
        raise StatusError(f"invalid status response from {path}: no report")
    return report


def _receive_all(sock: socket.socket) -> bytes:
    chunks = []
    size = 0
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_MESSAGE_BYTES:
            break
    return b"".join(chunks)


def _connection_error(exc: OSError, path: Path, shown: str, mountpoint: str) -> StatusError:
    if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
        if find_pmzfs_mount(mountpoint):
            return StatusError(
                f"the pmzfs process of {shown} has exited but the mount remains"
                f" ('Transport endpoint is not connected'); unmount it with: fusermount3 -u {shown}"
            )
        return StatusError(
            f"{shown} is not a pmzfs mount: status socket {path} is left over from a mount process that has exited"
        )
    if exc.errno == errno.EACCES:
        return StatusError(f"permission denied on status socket {path}; run pmzfs status as the user who mounted {shown}")
    return StatusError(f"failed to reach the mount process of {shown} at {path}: {exc.strerror or exc}")


# ---------------------------------------------------------------------------
# Human-readable report


def format_bytes(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def format_duration(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {seconds} s"
    return f"{seconds} s"


_KNOWN_KEYS = {
    "mountpoint",
    "pid",
    "version",
    "started_at",
    "uptime_seconds",
    "uploads",
    "readahead",
    "cache",
    "api",
    "open_files",
    "open_directories",
}


def format_status(report: Mapping[str, Any]) -> str:
    """Render a status report as the lines ``pmzfs status`` prints."""
    lines = [
        f"{report.get('mountpoint', '?')}: pmzfs {report.get('version', '?')}, pid {report.get('pid', '?')},"
        f" up {format_duration(report.get('uptime_seconds', 0))}"
    ]
    lines.extend(_format_api(report.get("api")))
    lines.extend(_format_cache(report.get("cache")))
    lines.extend(_format_readahead(report.get("readahead")))
    if "open_files" in report or "open_directories" in report:
        lines.append(
            f"{'Open:':<13}{report.get('open_files', 0)} files, {report.get('open_directories', 0)} folders"
        )
    lines.extend(_format_uploads(report.get("uploads")))
    for key in sorted(set(report) - _KNOWN_KEYS):
        lines.append(f"{key + ':':<13}{json.dumps(report[key], default=str)}")
    return "\n".join(lines)


def _format_api(api: Any) -> list[str]:
    if not isinstance(api, Mapping):
        return []
    text = f"{api.get('calls', 0)} calls, {api.get('errors', 0)} errors since mount"
    by_code = api.get("errors_by_code")
    if isinstance(by_code, Mapping) and by_code:
        text += " (" + ", ".join(f"{code} {count}" for code, count in sorted(by_code.items())) + ")"
    return [f"{'API:':<13}{text}"]


def _format_cache(cache: Any) -> list[str]:
    if not isinstance(cache, Mapping):
        return []
    text = f"{cache.get('entries', 0)} entries"
    if "listings" in cache:
        text += f" in {cache['listings']} folder listings"
    if "nodes" in cache:
        text += f", {cache['nodes']} inodes known"
    others = [f"{key} {value}" for key, value in cache.items() if key not in ("entries", "listings", "nodes")]
    return [f"{'Cache:':<13}{', '.join([text, *others])}"]


def _format_readahead(readahead: Any) -> list[str]:
    if not isinstance(readahead, Mapping):
        return []
    text = f"{format_bytes(readahead.get('memory_in_use', 0))} in use"
    if "memory_limit" in readahead:
        text += f" of {format_bytes(readahead['memory_limit'])}"
    return [f"{'Read-ahead:':<13}{text}"]


def _format_uploads(uploads: Any) -> list[str]:
    if not isinstance(uploads, Mapping):
        return []
    pending = uploads.get("pending") or []
    failed = uploads.get("failed") or []
    lines = [f"{'Uploads:':<13}{len(pending)} pending, {len(failed)} failed"]
    for item in pending:
        size = item.get("size")
        detail = format_bytes(size) if isinstance(size, (int, float)) else "size unknown"
        sent = item.get("bytes_sent")
        if isinstance(sent, (int, float)) and isinstance(size, (int, float)) and size > 0:
            detail += f", {100 * sent / size:.0f}% sent"
        lines.append(f"  pending  {item.get('path', '?')} ({detail})")
    for item in failed:
        attempts = item.get("attempts")
        tries = f" after {attempts} attempts" if attempts else ""
        lines.append(f"  FAILED   {item.get('path', '?')}{tries}: {item.get('error', 'no error message')}")
    return lines
