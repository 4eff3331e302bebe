"""The pyfuse3 ``Operations`` class: each FUSE call goes to the tree, the reader or the writer.

The class is thin on purpose: ``pmzfs.tree`` answers metadata questions,
``pmzfs.reader`` serves file content, ``pmzfs.writer`` stages and uploads
written files, ``pmzfs.namespace`` changes names, and this module turns
their records into FUSE replies and their errors into errno values.
``docs/semantics.md`` lists every call with the API request behind it and
its errors.

Without a writer (``--read-only``) calls that would change the account
return EROFS.  ``symlink``, ``link`` and ``mknod`` always return EPERM,
because the service has no such objects, and ``setxattr`` and
``removexattr`` ENOTSUP.
"""

from __future__ import annotations

import errno
import functools
import itertools
import logging
import os
import stat
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import pyfuse3

from pmzfs.api.errors import APIError, NotFound, errno_for
from pmzfs.namespace import Namespace, item_of, local_item, staging_id_of
from pmzfs.options import MountOptions
from pmzfs.reader import Reader, ReadError
from pmzfs.tree import Node, Tree, TreeError
from pmzfs.writer import StagedFile, WriteError, WriteHandle, Writer, is_temporary_name

log = logging.getLogger(__name__)

BLOCK_SIZE = 128 * 1024
"""``st_blksize`` and ``f_bsize``: the size of the pieces the kernel reads in."""

FRAGMENT_SIZE = 4096
"""``f_frsize``: the unit of ``f_blocks``, ``f_bfree`` and ``f_bavail``."""

REPORTED_FREE_SPACE = 2**50
"""Free bytes ``statfs`` reports (1 PiB).  The API returns the space used but
no quota, and tools such as ``cp`` and file managers refuse to copy onto a
filesystem that looks full."""

REPORTED_FILE_SLOTS = 10**9
"""``f_files`` and ``f_ffree``: the service has no limit on the number of items."""

_Handler = TypeVar("_Handler", bound=Callable[..., Any])


def _describe_arguments(arguments: tuple[Any, ...]) -> str:
    # RequestContext and ReaddirToken objects add nothing useful to a log line.
    shown = [repr(value) for value in arguments if isinstance(value, (int, bytes, str, float))]
    return ", ".join(shown)


def fuse_handler(method: _Handler) -> _Handler:
    """Wrap a handler so that it raises nothing but ``pyfuse3.FUSEError``.

    Any other exception would end ``pyfuse3.main()`` and with it the mount,
    so an ``APIError`` becomes the errno of ``errno_for``, a ``ReadError``,
    ``TreeError`` or ``WriteError`` its own errno, and anything else EIO
    after logging the stack trace.
    """
    name = method.__name__

    @functools.wraps(method)
    async def wrapper(self: Operations, *arguments: Any) -> Any:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s(%s)", name, _describe_arguments(arguments))
        try:
            return await method(self, *arguments)
        except pyfuse3.FUSEError:
            raise
        except APIError as exc:
            code = errno_for(exc)
            if isinstance(exc, NotFound):
                log.debug("%s: %s", name, exc)
            else:
                log.warning("%s(%s) failed, returning %s: %s", name, _describe_arguments(arguments), errno.errorcode.get(code, code), exc)
            raise pyfuse3.FUSEError(code) from None
        except (ReadError, TreeError, WriteError) as exc:
            log.debug("%s(%s) failed: %s", name, _describe_arguments(arguments), exc)
            raise pyfuse3.FUSEError(exc.errno or errno.EIO) from None
        except Exception:
            log.exception("%s(%s) failed with an unexpected error; returning EIO", name, _describe_arguments(arguments))
            raise pyfuse3.FUSEError(errno.EIO) from None

    return wrapper  # type: ignore[return-value]


@dataclass(slots=True)
class _OpenDirectory:
    inode: int
    # The listing at opendir time, so readdir offsets stay valid while the
    # cached listing changes.
    entries: tuple[Node, ...]


@dataclass(slots=True)
class _OpenFile:
    # A reader handle, or a writer handle for a file opened for writing or
    # one whose staged version is newer than the service copy.
    handle: Any
    writable: bool


class Operations(pyfuse3.Operations):
    """The FUSE request handlers of one mount.

    With a ``writer`` the mount is writable: the constructor makes the
    writer report uploads to the tree and the tree list staged files that
    are not uploaded yet.
    """

    supports_dot_lookup = True
    enable_writeback_cache = False

    def __init__(self, tree: Tree, reader: Reader, options: MountOptions, *, writer: Writer | None = None) -> None:
        super().__init__()
        self._tree = tree
        self._reader = reader
        self._writer = writer
        self._namespace: Namespace | None = None
        if writer is not None:
            self._namespace = Namespace(tree, writer)
            writer.listener = self._namespace
            tree.local_entries = self._namespace.local_items
            tree.on_shown_change = self._invalidate_entry
        self._mountpoint = options.mountpoint
        self._uid = options.uid if options.uid is not None else os.getuid()
        self._gid = options.gid if options.gid is not None else os.getgid()
        self._dir_mode = stat.S_IFDIR | (0o755 & ~options.umask)
        self._file_mode = stat.S_IFREG | (0o644 & ~options.umask)
        self._negative_ttl = options.negative_ttl
        self._handles = itertools.count(1)
        self._directories: dict[int, _OpenDirectory] = {}
        # File handle -> its open file; read() looks it up on every call.
        self._files: dict[int, _OpenFile] = {}
        # Set by the mount once a FUSE session exists; unit tests have none.
        self.kernel_notifications = False

    # --------------------------------------------------------------- helpers

    def _attributes(self, node: Node, timeout: float) -> pyfuse3.EntryAttributes:
        attributes = pyfuse3.EntryAttributes()
        attributes.st_ino = node.inode
        attributes.generation = 0
        time_ns = node.created_at * 1_000_000_000
        if node.is_dir:
            attributes.st_mode = self._dir_mode
            attributes.st_size = 0
        else:
            attributes.st_mode = self._file_mode
            attributes.st_size, time_ns, timeout = self._file_state(node, time_ns, timeout)
        attributes.entry_timeout = timeout
        attributes.attr_timeout = timeout

        # Folders get 1 link as well, so GNU find does not count subfolders
        # from st_nlink (its leaf optimisation) and lists every folder.
        attributes.st_nlink = 1
        attributes.st_uid = self._uid
        attributes.st_gid = self._gid
        attributes.st_rdev = 0
        attributes.st_blksize = BLOCK_SIZE
        attributes.st_blocks = (attributes.st_size + 511) // 512
        attributes.st_atime_ns = time_ns
        attributes.st_mtime_ns = time_ns
        attributes.st_ctime_ns = time_ns
        return attributes

    def _file_state(self, node: Node, time_ns: int, timeout: float) -> tuple[int, int, float]:
        """Return the size, modification time and cache timeout of file ``node``.

        A staged version is newer than the listing and changes with every
        write, so its size counts and the kernel must not cache it.  A
        time set through the mount counts while the file keeps its id and size.
        """
        staged = self._namespace.staged_for(node) if self._namespace is not None else None
        size = node.size
        if staged is not None:
            size = staged.size
            timeout = 0.0
        if staged is not None and staged.mtime_ns is not None:
            time_ns = staged.mtime_ns
        elif self._writer is not None and self._writer.mtimes is not None:
            stored = self._writer.mtimes.get(node.id, node.size)
            if stored is not None:
                time_ns = stored
        return size, time_ns, timeout

    def _require_writer(self) -> tuple[Writer, Namespace]:
        if self._writer is None or self._namespace is None:
            raise pyfuse3.FUSEError(errno.EROFS)
        return self._writer, self._namespace

    async def _folder(self, inode: int) -> Node:
        """Return folder ``inode`` with its service id, listing it first if the id is not known yet."""
        folder = self._tree.node(inode)
        if not folder.is_dir:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        if not folder.id:
            # Only the root lacks an id, until its first listing.
            await self._tree.listing(inode)
        return folder

    @staticmethod
    def _new_name(name: bytes) -> str:
        """Return the service name for a name a program creates; EINVAL when it cannot be one."""
        try:
            text = name.decode("utf-8")
        except UnicodeDecodeError:
            log.info("rejecting the name %r: it is not valid UTF-8, which the service stores names in", name)
            raise pyfuse3.FUSEError(errno.EINVAL) from None
        if is_temporary_name(text):
            # The mount hides such names, so an entry with one would vanish.
            log.info("rejecting the name %r: pmzfs reserves it for uploads in progress", text)
            raise pyfuse3.FUSEError(errno.EINVAL)
        return text

    def _invalidate_entry(self, folder_inode: int, name: bytes) -> None:
        # Called from inside handlers, where invalidate_entry could wait for
        # the very handler that calls it.  invalidate_entry_async sends the
        # notification from pyfuse3's own thread once the handler is done.
        if self.kernel_notifications:
            pyfuse3.invalidate_entry_async(folder_inode, name, ignore_enoent=True)

    def status(self) -> dict[str, Any]:
        """Return the counters that ``pmzfs status`` shows for this mount."""
        tree_stats = self._tree.stats()
        reader_stats = self._reader.stats()
        report: dict[str, Any] = {
            "cache": {
                "entries": tree_stats["listed_entries"],
                "nodes": tree_stats["nodes"],
                "listings": tree_stats["listings"],
            },
            "readahead": {
                "memory_in_use": reader_stats.get("memory_in_use", 0),
                "memory_limit": self._reader.memory_limit,
            },
            "open_files": len(self._files),
            "open_directories": len(self._directories),
        }
        if self._writer is not None:
            report["uploads"] = self._upload_status(self._writer)
        return report

    def _upload_status(self, writer: Writer) -> dict[str, Any]:
        status = writer.status()
        pending = [
            {"path": self._upload_path(upload.folder_id, upload.name), "size": upload.size,
             "bytes_sent": writer.bytes_sent(upload.staging_id)}
            for upload in status.pending
        ]
        failed = [
            {"path": self._upload_path(upload.folder_id, upload.name), "size": upload.size,
             "error": upload.last_error or f"state {upload.state}", "attempts": upload.attempts}
            for upload in status.failed
        ]
        return {"pending": pending, "failed": failed, "bytes_staged": status.bytes_staged}

    def _upload_path(self, folder_id: str, name: str) -> str:
        """Return the path in the mount of file ``name`` in ``folder_id``, or the folder id when the tree has no node for it."""
        folder = self._tree.find(True, folder_id)
        if folder is None:
            return f"(folder {folder_id})/{name}"
        parts = [name]
        while folder is not self._tree.root and len(parts) < 4096:
            parts.append(os.fsdecode(folder.shown))
            folder = self._tree.parent(folder)
        relative = "/".join(reversed(parts))
        return f"{self._mountpoint}/{relative}" if self._mountpoint is not None else relative

    async def close_all(self) -> None:
        """Close every open file and directory handle, after the FUSE loop ended.

        A writer handle with unflushed changes leaves them to the writer,
        which uploads them in the background.
        """
        files = list(self._files.values())
        self._files.clear()
        for open_file in files:
            try:
                await self._close_handle(open_file)
            except WriteError as exc:
                log.warning("closing a file at unmount failed: %s", exc)
        for directory in self._directories.values():
            self._tree.unpin(directory.entries)
        self._directories.clear()

    @staticmethod
    async def _close_handle(open_file: _OpenFile) -> None:
        if isinstance(open_file.handle, WriteHandle):
            await open_file.handle.release()
        else:
            await open_file.handle.close()

    # ------------------------------------------------------------- metadata

    @fuse_handler
    async def lookup(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        node = await self._tree.lookup(parent_inode, name)
        if node is None:
            # An entry with inode 0 makes the kernel cache the miss for
            # entry_timeout seconds; ENOENT would not be cached.
            missing = pyfuse3.EntryAttributes()
            missing.st_ino = 0
            missing.entry_timeout = self._negative_ttl
            return missing
        self._tree.remember(node)
        return self._attributes(node, self._tree.entry_timeout(node))

    @fuse_handler
    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        node = await self._tree.getattr_node(inode)
        return self._attributes(node, self._tree.entry_timeout(node))

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        # forget must not raise at all, not even FUSEError.
        if log.isEnabledFor(logging.DEBUG):
            log.debug("forget(%d inodes)", len(inode_list))
        try:
            for inode, count in inode_list:
                self._tree.forget(inode, count)
        except Exception:
            log.exception("forget of %d inodes failed", len(inode_list))

    @fuse_handler
    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        info = await self._tree.account_info()
        data = pyfuse3.StatvfsData()
        data.f_bsize = BLOCK_SIZE
        data.f_frsize = FRAGMENT_SIZE
        free_blocks = REPORTED_FREE_SPACE // FRAGMENT_SIZE
        data.f_blocks = -(-max(info.space_used, 0) // FRAGMENT_SIZE) + free_blocks
        data.f_bfree = free_blocks
        data.f_bavail = free_blocks
        data.f_files = REPORTED_FILE_SLOTS
        data.f_ffree = REPORTED_FILE_SLOTS
        data.f_favail = REPORTED_FILE_SLOTS
        data.f_namemax = 255
        return data

    @fuse_handler
    async def access(self, inode: int, mode: int, ctx: pyfuse3.RequestContext) -> bool:
        # With the default_permissions mount option the kernel checks access
        # itself and never calls this; it is here for mounts without it.
        self._tree.node(inode)
        if mode & os.W_OK and self._writer is None:
            raise pyfuse3.FUSEError(errno.EROFS)
        return True

    @fuse_handler
    async def getxattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> bytes:
        self._tree.node(inode)
        raise pyfuse3.FUSEError(pyfuse3.ENOATTR)

    @fuse_handler
    async def listxattr(self, inode: int, ctx: pyfuse3.RequestContext) -> Sequence[bytes]:
        self._tree.node(inode)
        return []

    @fuse_handler
    async def setxattr(self, inode: int, name: bytes, value: bytes, ctx: pyfuse3.RequestContext) -> None:
        raise pyfuse3.FUSEError(errno.ENOTSUP)

    @fuse_handler
    async def removexattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        raise pyfuse3.FUSEError(errno.ENOTSUP)

    @fuse_handler
    async def readlink(self, inode: int, ctx: pyfuse3.RequestContext) -> bytes:
        raise pyfuse3.FUSEError(errno.EINVAL)

    @fuse_handler
    async def setattr(self, inode: int, attr: pyfuse3.EntryAttributes, fields: pyfuse3.SetattrFields, fh: int | None, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        writer, namespace = self._require_writer()
        node = self._tree.node(inode)
        open_file = self._files.get(fh) if fh is not None else None
        handle = open_file.handle if open_file is not None and open_file.writable else None
        if fields.update_size:
            if node.is_dir:
                raise pyfuse3.FUSEError(errno.EISDIR)
            await self._truncate(writer, namespace, node, handle, attr.st_size)
        if fields.update_mtime and not node.is_dir:
            await self._set_mtime(writer, namespace, node, handle, attr.st_mtime_ns)
        # Mode, owner, atime and the times of folders are accepted without
        # effect: the service stores none of them, and rsync -a, cp -a and
        # tar set them on every file.
        return self._attributes(node, self._tree.entry_timeout(node))

    async def _truncate(self, writer: Writer, namespace: Namespace, node: Node, handle: WriteHandle | None, size: int) -> None:
        if handle is not None:
            await handle.truncate(size)
            return
        staged = namespace.staged_for(node)
        if staged is not None:
            await self._truncate_staged(writer, staged, size)
        elif staging_id_of(node.id) is not None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        elif size != node.size:
            await writer.truncate(self._tree.parent(node).id, item_of(node), size)

    @staticmethod
    async def _truncate_staged(writer: Writer, staged: StagedFile, size: int) -> None:
        handle = await writer.open_staged(staged)
        try:
            await handle.truncate(size)
            if staged.handles == 1:
                # No program has the file open, so no close() will upload it.
                await handle.flush()
        finally:
            await handle.release()

    async def _set_mtime(self, writer: Writer, namespace: Namespace, node: Node, handle: WriteHandle | None, mtime_ns: int) -> None:
        if handle is not None:
            await handle.set_mtime(mtime_ns)
            return
        staged = namespace.staged_for(node)
        if staged is not None:
            await writer.set_mtime(staged, mtime_ns)
        elif staging_id_of(node.id) is not None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        elif writer.mtimes is not None:
            writer.mtimes.set(node.id, node.size, mtime_ns)

    # ----------------------------------------------------------- directories

    @fuse_handler
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        listing = await self._tree.listing(inode)
        entries = tuple(listing.entries)
        self._tree.pin(entries)
        handle = next(self._handles)
        self._directories[handle] = _OpenDirectory(inode, entries)
        return handle

    @fuse_handler
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        directory = self._directories[fh]
        tree = self._tree
        folder = tree.node(directory.inode)
        timeout = tree.folder_timeout(directory.inode)

        # Offsets: 1 follows ".", 2 follows "..", and N + 3 follows entry N.
        # The kernel takes no lookup reference for "." and "..".
        if start_id == 0:
            if not pyfuse3.readdir_reply(token, b".", self._attributes(folder, timeout), 1):
                return
            start_id = 1
        if start_id == 1:
            if not pyfuse3.readdir_reply(token, b"..", self._attributes(tree.parent(folder), timeout), 2):
                return
            start_id = 2

        entries = directory.entries
        for index in range(start_id - 2, len(entries)):
            node = entries[index]
            if not pyfuse3.readdir_reply(token, node.shown, self._attributes(node, timeout), index + 3):
                return
            # readdirplus: each entry the kernel accepted is a lookup.
            tree.remember(node)

    @fuse_handler
    async def releasedir(self, fh: int) -> None:
        directory = self._directories.pop(fh, None)
        if directory is not None:
            self._tree.unpin(directory.entries)

    @fuse_handler
    async def fsyncdir(self, fh: int, datasync: bool) -> None:
        return None

    @fuse_handler
    async def mkdir(self, parent_inode: int, name: bytes, mode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        _, namespace = self._require_writer()
        folder = await self._folder(parent_inode)
        new_name = self._new_name(name)
        if await self._tree.lookup(parent_inode, name) is not None:
            raise pyfuse3.FUSEError(errno.EEXIST)
        node = await namespace.mkdir(folder, name, new_name)
        self._tree.remember(node)
        return self._attributes(node, self._tree.entry_timeout(node))

    @fuse_handler
    async def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        _, namespace = self._require_writer()
        node = await self._existing(parent_inode, name)
        if not node.is_dir:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        await namespace.rmdir(node)

    @fuse_handler
    async def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        _, namespace = self._require_writer()
        node = await self._existing(parent_inode, name)
        if node.is_dir:
            raise pyfuse3.FUSEError(errno.EISDIR)
        await namespace.unlink(node)

    @fuse_handler
    async def rename(self, parent_inode_old: int, name_old: bytes, parent_inode_new: int, name_new: bytes, flags: int, ctx: pyfuse3.RequestContext) -> None:
        _, namespace = self._require_writer()
        if flags & pyfuse3.RENAME_EXCHANGE:
            # The API has no atomic exchange, and two renames in a row could
            # leave the pair half-swapped.
            raise pyfuse3.FUSEError(errno.EINVAL)
        source = await self._existing(parent_inode_old, name_old)
        folder = await self._folder(parent_inode_new)
        new_name = self._new_name(name_new)
        target = await self._tree.lookup(parent_inode_new, name_new)
        if target is source:
            return
        if target is not None and flags & pyfuse3.RENAME_NOREPLACE:
            raise pyfuse3.FUSEError(errno.EEXIST)
        await namespace.rename(source, folder, new_name, target)

    async def _existing(self, parent_inode: int, name: bytes) -> Node:
        node = await self._tree.lookup(parent_inode, name)
        if node is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return node

    # ------------------------------------------------------------------ files

    @fuse_handler
    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        node = self._tree.node(inode)
        if node.is_dir:
            raise pyfuse3.FUSEError(errno.EISDIR)
        if flags & os.O_ACCMODE != os.O_RDONLY or flags & os.O_TRUNC:
            writer, namespace = self._require_writer()
            handle = await self._open_for_writing(writer, namespace, node, truncate=bool(flags & os.O_TRUNC))
            return self._add_file(node, handle, writable=True)

        staged = self._namespace.staged_for(node) if self._namespace is not None else None
        if staged is not None:
            # The staged content is newer than the service copy.
            assert self._writer is not None
            return self._add_file(node, await self._writer.open_staged(staged), writable=False)

        link = node.link or await self._tree.fresh_link(node)
        handle = self._reader.open(node.id, node.size, link, self._link_refresher(node, link))
        fh = next(self._handles)
        self._files[fh] = _OpenFile(handle, writable=False)

        # The kernel keeps cached pages across opens only while the content
        # is the same: same file id (ids change when content is replaced)
        # and same size as at the previous open.
        version = (node.id, node.size)
        keep_cache = node.opened_version == version
        node.opened_version = version
        return pyfuse3.FileInfo(fh=fh, keep_cache=keep_cache)

    def _add_file(self, node: Node, handle: WriteHandle, *, writable: bool) -> pyfuse3.FileInfo:
        fh = next(self._handles)
        self._files[fh] = _OpenFile(handle, writable=writable)
        # Pages cached from an earlier version must not be served.
        node.opened_version = None
        return pyfuse3.FileInfo(fh=fh, keep_cache=False)

    async def _open_for_writing(self, writer: Writer, namespace: Namespace, node: Node, *, truncate: bool) -> WriteHandle:
        staged = namespace.staged_for(node)
        if staged is not None:
            return await writer.open_staged(staged, truncate=truncate)
        if staging_id_of(node.id) is not None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        # Copy-on-write: the content is fetched on the first change unless truncated.
        return await writer.open(self._tree.parent(node).id, item_of(node), truncate=truncate)

    def _link_refresher(self, node: Node, link: str) -> Callable[[], Awaitable[str]]:
        """Return the reader's callback for a new link when ``link`` stops working.

        When a listing fetched since then brought a new link, the callback
        returns it without a request. Otherwise it calls ``item/details``.
        """
        handed_out = link

        async def refresh_link() -> str:
            nonlocal handed_out
            if node.link and node.link != handed_out:
                handed_out = node.link
            else:
                handed_out = await self._tree.fresh_link(node)
            return handed_out

        return refresh_link

    @fuse_handler
    async def create(self, parent_inode: int, name: bytes, mode: int, flags: int, ctx: pyfuse3.RequestContext) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        writer, namespace = self._require_writer()
        folder = await self._folder(parent_inode)
        new_name = self._new_name(name)
        node = await self._tree.lookup(parent_inode, name)
        if node is not None:
            # The kernel's entry cache missed a file the listing has.
            if flags & os.O_EXCL:
                raise pyfuse3.FUSEError(errno.EEXIST)
            if node.is_dir:
                raise pyfuse3.FUSEError(errno.EISDIR)
            handle = await self._open_for_writing(writer, namespace, node, truncate=bool(flags & os.O_TRUNC))
        else:
            handle = await writer.create(folder.id, new_name)
            node = self._tree.add_entry(parent_inode, local_item(handle.staged))
        info = self._add_file(node, handle, writable=True)
        self._tree.remember(node)
        return info, self._attributes(node, self._tree.entry_timeout(node))

    @fuse_handler
    async def read(self, fh: int, off: int, size: int) -> bytes | memoryview:
        # pyfuse3 takes any buffer; a view of a chunk saves a copy.
        return await self._open_file(fh).handle.read(off, size)

    @fuse_handler
    async def write(self, fh: int, off: int, buf: bytes) -> int:
        open_file = self._open_file(fh)
        if not open_file.writable:
            raise pyfuse3.FUSEError(errno.EBADF)
        return await open_file.handle.write(off, buf)

    @fuse_handler
    async def flush(self, fh: int) -> None:
        # close() returns what this returns, so the upload runs here.
        open_file = self._open_file(fh)
        if open_file.writable:
            await open_file.handle.flush()

    @fuse_handler
    async def fsync(self, fh: int, datasync: bool) -> None:
        open_file = self._open_file(fh)
        if open_file.writable:
            await open_file.handle.fsync()

    @fuse_handler
    async def release(self, fh: int) -> None:
        open_file = self._files.pop(fh, None)
        if open_file is not None:
            await self._close_handle(open_file)

    def _open_file(self, fh: int) -> _OpenFile:
        open_file = self._files.get(fh)
        if open_file is None:
            raise pyfuse3.FUSEError(errno.EBADF)
        return open_file

    # ------------------------------------------- calls the service cannot do

    @fuse_handler
    async def mknod(self, parent_inode: int, name: bytes, mode: int, rdev: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        raise pyfuse3.FUSEError(errno.EPERM)

    @fuse_handler
    async def symlink(self, parent_inode: int, name: bytes, target: bytes, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        raise pyfuse3.FUSEError(errno.EPERM)

    @fuse_handler
    async def link(self, inode: int, new_parent_inode: int, new_name: bytes, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        raise pyfuse3.FUSEError(errno.EPERM)
