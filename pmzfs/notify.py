"""systemd service notifications (sd_notify) without a library.

A ``Type=notify`` unit sets ``NOTIFY_SOCKET`` to an AF_UNIX datagram
socket; each notification is one datagram of ``KEY=VALUE`` lines
(sd_notify(3)). A name starting with "@" is in the abstract namespace.
Without ``NOTIFY_SOCKET`` every function here does nothing, so the mount
code can call them unconditionally.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)

# A full datagram queue would otherwise block the caller and trio's event
# loop with it. systemd reads the socket promptly, so only a stuck manager
# reaches this bound.
SEND_TIMEOUT = 2.0


def _socket_address(env: Mapping[str, str]) -> str | None:
    address = env.get("NOTIFY_SOCKET", "")
    if not address:
        return None
    if address.startswith("@"):
        return "\0" + address[1:]
    if address.startswith("/"):
        return address
    # NOTE: the "vsock:CID:PORT" addresses of systemd 253 and later are not supported.
    log.debug("NOTIFY_SOCKET %r is not a unix socket path; notifications are off", address)
    return None


def notify(state: str, env: Mapping[str, str] | None = None) -> bool:
    """Send ``state`` (newline-separated ``KEY=VALUE`` lines) to systemd.

    Returns True when the datagram was sent, and False when there is no
    ``NOTIFY_SOCKET`` or sending failed. A failure is logged as a warning and
    not raised, because a lost notification must not stop the mount.
    """
    address = _socket_address(os.environ if env is None else env)
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.settimeout(SEND_TIMEOUT)
            sock.sendto(state.encode("utf-8"), address)
    except OSError as exc:
        log.warning("failed to notify systemd at %s: %s", address.replace("\0", "@"), exc)
        return False
    return True


def _status_line(status: str) -> str:
    # STATUS= ends at the newline, so a message must stay on one line.
    return "STATUS=" + " ".join(status.split())


def notify_ready(status: str | None = None, env: Mapping[str, str] | None = None) -> bool:
    """Tell systemd the service is ready; call it only once the mount responds to requests."""
    lines = ["READY=1"]
    if status:
        lines.append(_status_line(status))
    return notify("\n".join(lines), env)


def notify_status(status: str, env: Mapping[str, str] | None = None) -> bool:
    """Set the one-line status ``systemctl status`` shows."""
    return notify(_status_line(status), env)


def notify_stopping(status: str | None = None, env: Mapping[str, str] | None = None) -> bool:
    """Tell systemd the service is shutting down (STOPPING=1)."""
    lines = ["STOPPING=1"]
    if status:
        lines.append(_status_line(status))
    return notify("\n".join(lines), env)


def notify_extend_timeout(seconds: float, env: Mapping[str, str] | None = None) -> bool:
    """Ask systemd for ``seconds`` more before its start or stop timeout (systemd 236 and later).

    Meant for shutdown while pending uploads finish, so that a large upload
    is not killed by ``TimeoutStopSec``.
    """
    return notify(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}", env)
