"""Mounting: the checks before a mount, the FUSE session's life, readiness and signals.

``check_before_mount`` runs the checks that need no network (the FUSE
device, ``fusermount3``, the mountpoint).  ``serve`` connects to the API,
checks the credential with ``account/info``, mounts, serves FUSE requests
until the filesystem is unmounted or the process gets SIGINT or SIGTERM,
and unmounts.  The writer runs for the whole life of the mount: it resumes
staged uploads at start and retries failed ones in the background, and
after the unmount pending uploads get ``UPLOAD_DRAIN_TIMEOUT`` seconds to
finish.  ``run_in_background`` forks before trio starts so the parent can
exit once a stat of the mountpoint succeeds.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import select
import shutil
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyfuse3
import trio

from pmzfs.api.client import PremiumizeClient
from pmzfs.api.errors import APIError, AuthenticationFailed, TransportError, UnknownError
from pmzfs.api.models import AccountInfo
from pmzfs.auth import (
    Credential,
    CredentialError,
    connection_failed_message,
    rejected_credential_message,
    resolve_credential,
)
from pmzfs.cli import EXIT_FAILURE, EXIT_OK, CommandError
from pmzfs.fs import Operations
from pmzfs.mtimes import MtimeStore
from pmzfs.notify import notify_extend_timeout, notify_stopping
from pmzfs.options import MountOptions
from pmzfs.reader import Reader
from pmzfs.tree import Tree
from pmzfs.writer import STAGING_SUBDIR, StagedFile, StagingLocked, Writer, is_temporary_name, staging_status

log = logging.getLogger(__name__)

FUSE_DEVICE = Path("/dev/fuse")
FUSERMOUNT = "fusermount3"
FUSE_CONF = Path("/etc/fuse.conf")

READY_TIMEOUT = 120.0
"""Seconds the parent of a background mount waits for a stat of the mountpoint to succeed."""

UPLOAD_DRAIN_TIMEOUT = 300.0
"""Seconds pending uploads get to finish after the unmount; the next mount resumes the rest."""

EXTEND_TIMEOUT_STEP = 30.0
"""Seconds of extra stop time asked of systemd at a time while uploads finish."""

_READY_MESSAGE = b"ready\n"
_ERROR_PREFIX = b"error:"


# ------------------------------------------------------------------ checks


def mount_type_at(path: Path, mountinfo: Path = Path("/proc/self/mountinfo")) -> str | None:
    """Return the filesystem type mounted at ``path`` (like ``fuse.pmzfs``), or None.

    Reads the kernel's mount table instead of calling stat, which would
    hang on a FUSE mount whose process is stuck.
    """
    target = os.path.realpath(path)
    try:
        lines = mountinfo.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
    except OSError:
        return None
    for line in lines:
        before, _, after = line.partition(" - ")
        fields = before.split(" ")
        if len(fields) < 5 or not after:
            continue
        # The mount table writes space, tab, newline and backslash as \ooo.
        mounted_at = _unescape_mountinfo(fields[4])
        if mounted_at == target:
            return after.split(" ")[0]
    return None


def _unescape_mountinfo(text: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), text)


def check_fuse() -> None:
    """Raise ``CommandError`` unless ``/dev/fuse`` exists and ``fusermount3`` is on PATH."""
    if not FUSE_DEVICE.exists():
        raise CommandError(
            f"{FUSE_DEVICE} is missing; load the FUSE kernel module with `modprobe fuse`"
            " (in a container, pass the device, e.g. docker run --device /dev/fuse)"
        )
    if shutil.which(FUSERMOUNT) is None:
        raise CommandError(f"{FUSERMOUNT} not found on PATH; install the fuse3 package (apt install fuse3)")


def check_mountpoint(mountpoint: Path, *, nonempty: bool = False) -> None:
    """Raise ``CommandError`` unless ``mountpoint`` is an empty folder that is not a mount.

    ``nonempty`` allows a folder with content, which the mount then hides.
    """
    mounted = mount_type_at(mountpoint)
    if mounted is not None:
        how = "pmzfs unmount" if mounted == "fuse.pmzfs" else "umount"
        raise CommandError(f"{mountpoint} is already a mount point ({mounted}); unmount it first: {how} {mountpoint}")
    if not mountpoint.exists():
        raise CommandError(f"mountpoint {mountpoint} does not exist; create it with: mkdir -p {mountpoint}")
    if not mountpoint.is_dir():
        raise CommandError(f"mountpoint {mountpoint} is not a folder; pass an empty folder")
    if nonempty:
        return
    try:
        with os.scandir(mountpoint) as entries:
            has_entries = next(entries, None) is not None
    except PermissionError:
        raise CommandError(f"mountpoint {mountpoint} is not readable by this user; check its owner and mode") from None
    if has_entries:
        raise CommandError(
            f"mountpoint {mountpoint} is not empty; pass an empty folder, or --nonempty to hide its content while mounted"
        )


def check_allow_other(options: MountOptions) -> None:
    """Raise ``CommandError`` when ``--allow-other`` cannot work for this user."""
    if not options.allow_other or os.geteuid() == 0:
        return
    try:
        lines = FUSE_CONF.read_text().splitlines()
    except OSError:
        lines = []
    if not any(line.strip() == "user_allow_other" for line in lines):
        raise CommandError(
            f"--allow-other needs the line user_allow_other in {FUSE_CONF} when not mounting as root;"
            " add it (as root) or mount without --allow-other"
        )


def check_before_mount(options: MountOptions, *, nonempty: bool = False) -> None:
    """Run the checks that need no network, in the order a user would fix them."""
    if options.mountpoint is None:
        raise CommandError("no mountpoint given; run: pmzfs mount MOUNTPOINT")
    check_mountpoint(options.mountpoint, nonempty=nonempty)
    check_fuse()
    check_allow_other(options)


def fuse_mount_options(options: MountOptions) -> set[str]:
    """Return the options for ``pyfuse3.init``: the kernel's mount options."""
    fuse_options = {"fsname=pmzfs", "subtype=pmzfs", "default_permissions"}
    if options.allow_other:
        fuse_options.add("allow_other")
    if options.read_only:
        fuse_options.add("ro")
    return fuse_options


def resolve(options: MountOptions, config_api_key: str | None) -> Credential:
    """Return the credential for the mount; raises ``CommandError`` when there is none."""
    try:
        return resolve_credential(
            api_key_file=options.api_key_file, config_api_key=config_api_key, api_url=options.api_url
        )
    except CredentialError as exc:
        raise CommandError(str(exc)) from None


@contextlib.contextmanager
def _quiet_api_retries(verbose: bool) -> Iterator[None]:
    # The check must print one line on failure, not one warning per retry
    # first; -v shows the retries.
    api_log = logging.getLogger("pmzfs.api")
    previous = api_log.level
    if not verbose:
        api_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        api_log.setLevel(previous)


async def check_account(client: PremiumizeClient, credential: Credential, api_url: str, verbose: bool) -> AccountInfo:
    """Call ``account/info``; raise ``CommandError`` with one clear line when it fails."""
    try:
        with _quiet_api_retries(verbose):
            return await client.account_info()
    except AuthenticationFailed as exc:
        raise CommandError(rejected_credential_message(credential, exc.code)) from None
    except TransportError as exc:
        raise CommandError(connection_failed_message(exc, api_url)) from None
    except UnknownError as exc:
        raise CommandError(f"the API at {api_url} failed ({exc}); try again later, or check --api-url") from None
    except APIError as exc:
        raise CommandError(f"account/info at {api_url} failed: {exc}") from None


# ---------------------------------------------------------------- serving


async def serve(options: MountOptions, credential: Credential, *, on_ready: Callable[[], None] | None = None) -> int:
    """Mount the account at ``options.mountpoint`` and serve it until unmounted.

    Checks the credential first (``CommandError`` on failure, before any
    mount exists).  Returns the exit code: 0 after an unmount by
    ``fusermount3 -u``, SIGINT or SIGTERM.  ``on_ready`` runs once a stat
    of the mountpoint succeeds.
    """
    mountpoint = options.mountpoint
    assert mountpoint is not None
    try:
        client = PremiumizeClient(options.api_url, credential, concurrency=options.api_concurrency, rate=options.api_rate)
    except ValueError as exc:
        raise CommandError(f"invalid API URL {options.api_url!r}: {exc}") from None

    async with client, contextlib.AsyncExitStack() as stack:
        info = await check_account(client, credential, options.api_url, options.verbose)
        tree = Tree(
            client,
            root_inode=pyfuse3.ROOT_INODE,
            dir_cache_ttl=options.dir_cache_ttl,
            negative_ttl=options.negative_ttl,
            hidden_name=is_temporary_name,
        )
        tree.set_account_info(info)
        reader = Reader(
            memory_limit=options.readahead_memory,
            max_window=options.readahead_max,
            connections_per_file=options.connections_per_file,
        )
        writer = None
        if not options.read_only:
            mtimes = stack.enter_context(_open_mtimes(options.cache_dir))
            writer = Writer(client, options.cache_dir / STAGING_SUBDIR, mtimes=mtimes, account_id=info.customer_id)
        # Before the writer starts: its first background upload reports to the tree through the operations.
        operations = Operations(tree, reader, options, writer=writer)
        await stack.enter_async_context(tree)
        await stack.enter_async_context(reader)
        if writer is None:
            _warn_staged_uploads(options.cache_dir / STAGING_SUBDIR)
        else:
            await _start_writer(stack, writer)
        return await _run_session(operations, writer, functools.partial(_status_report, operations, client), options, on_ready)


def _open_mtimes(cache_dir: Path) -> MtimeStore:
    try:
        return MtimeStore.in_cache_dir(cache_dir)
    except (OSError, sqlite3.Error) as exc:
        raise CommandError(f"cannot open the mtime store in the cache directory {cache_dir}: {exc}; pass a writable --cache-dir") from None


async def _start_writer(stack: contextlib.AsyncExitStack, writer: Writer) -> None:
    try:
        await stack.enter_async_context(writer)
    except StagingLocked as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise CommandError(
            f"cannot use the staging directory {writer.journal.directory}: {exc.strerror or exc}; pass a writable --cache-dir"
        ) from None


def _warn_staged_uploads(staging_dir: Path) -> None:
    status = staging_status(staging_dir)
    waiting = len(status.pending) + len(status.failed)
    if waiting:
        log.warning(
            "%d uploads staged in %s are not resumed by a --read-only mount; mount without --read-only to upload them",
            waiting, staging_dir,
        )


def _status_report(operations: Operations, client: PremiumizeClient) -> dict[str, Any]:
    report = operations.status()
    errors = client.errors_by_code
    report["api"] = {"calls": client.calls, "errors": sum(errors.values()), "errors_by_code": dict(errors)}
    return report


class _Shutdown:
    """The state of the process's end, which decides what a signal does."""

    def __init__(self) -> None:
        # True while pyfuse3 has a session: the first signal ends it.
        self.session_open = True
        self.signalled = False
        # trio time when the wait for pending uploads ends, while it runs.
        self.uploads_deadline: float | None = None


async def _run_session(
    operations: Operations,
    writer: Writer | None,
    get_status: Callable[[], dict],
    options: MountOptions,
    on_ready: Callable[[], None] | None,
) -> int:
    mountpoint = options.mountpoint
    assert mountpoint is not None
    try:
        pyfuse3.init(operations, os.fspath(mountpoint), fuse_mount_options(options))
    except RuntimeError as exc:
        raise CommandError(f"mounting {mountpoint} failed: {exc}; check that it is an empty folder you may write to") from None
    operations.kernel_notifications = True
    log.info("mounted %s at %s", options.api_url, mountpoint)

    shutdown = _Shutdown()
    async with trio.open_nursery() as nursery:
        # Signals are handled until the uploads are done, so a second
        # SIGTERM cannot end the process in the middle of one.
        await nursery.start(_handle_signals, shutdown)
        try:
            exit_code = await _serve_fuse(operations, mountpoint, get_status, on_ready, options.kernel_readahead)
        finally:
            shutdown.session_open = False
            operations.kernel_notifications = False
            with trio.CancelScope(shield=True):
                await operations.close_all()
            pyfuse3.close(unmount=True)
            log.info("unmounted %s", mountpoint)
        notify_stopping()
        if writer is not None:
            await _finish_uploads(writer, shutdown)
        nursery.cancel_scope.cancel()
    return exit_code


async def _serve_fuse(
    operations: Operations,
    mountpoint: Path,
    get_status: Callable[[], dict],
    on_ready: Callable[[], None] | None,
    kernel_readahead: int | None = None,
) -> int:
    exit_code = EXIT_OK
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_announce_ready, mountpoint, on_ready, kernel_readahead)
        nursery.start_soon(_serve_status, mountpoint, get_status)
        try:
            await pyfuse3.main()
        except Exception:
            log.exception("the FUSE session of %s failed; unmounting", mountpoint)
            exit_code = EXIT_FAILURE
        nursery.cancel_scope.cancel()
    return exit_code


async def _handle_signals(shutdown: _Shutdown, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started()
        async for number in signals:
            name = signal.Signals(number).name
            if shutdown.uploads_deadline is not None:
                log.info(
                    "received %s; still waiting up to %.0f s for pending uploads, then the next mount resumes the rest",
                    name, max(0.0, shutdown.uploads_deadline - trio.current_time()),
                )
            elif not shutdown.session_open:
                log.info("received %s; the filesystem is unmounted already and pmzfs exits soon", name)
            elif shutdown.signalled:
                log.info("received %s again; still unmounting", name)
            else:
                log.info("received %s; unmounting", name)
                shutdown.signalled = True
                notify_stopping()
                pyfuse3.terminate()


def _uploads_left(writer: Writer) -> list[StagedFile]:
    return [staged for staged in writer.staged_files() if staged.tracked and (staged.pending or staged.dirty)]


async def _finish_uploads(writer: Writer, shutdown: _Shutdown, timeout: float = UPLOAD_DRAIN_TIMEOUT) -> None:
    """Give pending uploads up to ``timeout`` seconds; log each one that is left for the next mount."""
    left = _uploads_left(writer)
    if not left:
        return
    log.info("waiting up to %.0f s for %d pending uploads to finish", timeout, len(left))
    shutdown.uploads_deadline = trio.current_time() + timeout
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_extend_stop_timeout)
        with trio.move_on_at(shutdown.uploads_deadline):
            await writer.upload_pending()
        nursery.cancel_scope.cancel()
    shutdown.uploads_deadline = None
    for staged in _uploads_left(writer):
        log.warning(
            "the upload of %r to folder %s did not finish; its data stays staged at %s and the next mount"
            " with this cache directory retries it",
            staged.name, staged.folder_id, staged.path,
        )


async def _extend_stop_timeout() -> None:
    # systemd kills a unit that is still stopping after TimeoutStopSec;
    # each message moves that point EXTEND_TIMEOUT_STEP seconds past now.
    while True:
        notify_extend_timeout(EXTEND_TIMEOUT_STEP)
        await trio.sleep(EXTEND_TIMEOUT_STEP / 2)


async def _announce_ready(
    mountpoint: Path, on_ready: Callable[[], None] | None, kernel_readahead: int | None = None
) -> None:
    # The stat goes through the kernel to this process's own FUSE loop, so
    # it runs in a worker thread while the loop keeps serving.
    try:
        status = await trio.to_thread.run_sync(os.stat, mountpoint, abandon_on_cancel=True)
    except OSError as exc:
        log.error("stat of the mountpoint %s failed (%s); unmounting", mountpoint, exc)
        pyfuse3.terminate()
        return
    log.debug("stat of the mountpoint %s succeeded; the mount is ready", mountpoint)
    if kernel_readahead is not None:
        set_kernel_readahead(status.st_dev, kernel_readahead)
    from pmzfs.notify import notify_ready

    notify_ready()
    if on_ready is not None:
        on_ready()


def set_kernel_readahead(device: int, size: int, sysfs: Path = Path("/sys/class/bdi")) -> bool:
    """Set the kernel read-ahead of the mount on ``device`` to ``size`` bytes; returns whether it was set.

    Needs root. Without it the kernel default stays, which only costs
    sequential read speed, so the failure is logged at DEBUG.
    """
    path = sysfs / f"{os.major(device)}:{os.minor(device)}" / "read_ahead_kb"
    try:
        path.write_text(f"{max(size // 1024, 4)}\n", encoding="ascii")
    except OSError as exc:
        log.debug("kernel read-ahead left at its default: writing %s failed: %s", path, exc)
        return False
    log.debug("kernel read-ahead set to %d KiB in %s", size // 1024, path)
    return True


async def _serve_status(mountpoint: Path, get_status: Callable[[], dict]) -> None:
    from pmzfs.status import StatusError, serve_status

    try:
        await serve_status(mountpoint, get_status)
    except (StatusError, OSError) as exc:
        log.warning("`pmzfs status %s` will not work: %s", mountpoint, exc)


# -------------------------------------------------------- background mode


def run_in_background(mount: Callable[[Callable[[], None]], int], mountpoint: Path) -> int:
    """Fork; the child runs ``mount(on_ready)``, the parent waits until it is ready.

    Call this before trio or any thread starts.  The parent returns 0 once
    the child calls ``on_ready``, or raises ``CommandError`` with the
    child's error line.  The child leaves the session and the working
    folder, points its standard streams at /dev/null and never returns.
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid > 0:
        os.close(write_fd)
        return _wait_for_child(read_fd, pid, mountpoint)

    os.close(read_fd)
    exit_code = EXIT_FAILURE
    try:
        os.setsid()
        os.chdir("/")
        _redirect_standard_streams()

        def on_ready() -> None:
            _send(write_fd, _READY_MESSAGE)

        exit_code = mount(on_ready)
    except CommandError as exc:
        _send(write_fd, _ERROR_PREFIX + f"{exc.exit_code}:{exc}\n".encode())
        exit_code = exc.exit_code
    except BaseException as exc:  # so that the finally clause below reaches os._exit
        log.exception("the background mount of %s failed", mountpoint)
        _send(write_fd, _ERROR_PREFIX + f"{EXIT_FAILURE}:the mount failed: {exc!r}\n".encode())
    finally:
        logging.shutdown()
        os._exit(exit_code)


def _send(fd: int, message: bytes) -> None:
    try:
        os.write(fd, message)
        os.close(fd)
    except OSError:
        pass  # the parent has exited, so no process reads the message


def _redirect_standard_streams() -> None:
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def _wait_for_child(read_fd: int, pid: int, mountpoint: Path) -> int:
    deadline = time.monotonic() + READY_TIMEOUT
    received = b""
    try:
        while b"\n" not in received:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CommandError(
                    f"the mount of {mountpoint} was not ready within {READY_TIMEOUT:.0f} s;"
                    f" process {pid} keeps trying, see its log (syslog or --log-file)"
                )
            readable, _, _ = select.select([read_fd], [], [], remaining)
            if not readable:
                continue
            chunk = os.read(read_fd, 4096)
            if not chunk:
                break
            received += chunk
    finally:
        os.close(read_fd)

    if received.startswith(_READY_MESSAGE):
        return EXIT_OK
    os.waitpid(pid, 0)
    if received.startswith(_ERROR_PREFIX):
        code_text, _, message = received[len(_ERROR_PREFIX) :].decode("utf-8", "replace").partition(":")
        raise CommandError(message.strip(), int(code_text) if code_text.isdigit() else EXIT_FAILURE)
    raise CommandError(
        f"the mount process exited before {mountpoint} was mounted; run the same command with --foreground to see why"
    )
