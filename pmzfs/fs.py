"""The pyfuse3 ``Operations`` class: each FUSE call goes to the tree or the reader.

The class is thin on purpose: ``pmzfs.tree`` answers metadata questions,
``pmzfs.reader`` serves file content, and this module turns their records
into FUSE replies and their errors into errno values.  ``docs/semantics.md``
lists every call with the API request behind it and its errors.

The mount is read-only for now: calls that would change the account return
EROFS, except ``symlink``, ``link`` and ``mknod`` (EPERM, because the
service has no such objects) and ``setxattr``/``removexattr`` (ENOTSUP).
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
from pmzfs.options import MountOptions
from pmzfs.reader import Reader, ReadError
from pmzfs.tree import Node, Tree, TreeError

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
    so an ``APIError`` becomes the errno of ``errno_for``, a ``ReadError``
    or ``TreeError`` its own errno, and anything else EIO after logging the
    stack trace.
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
        except (ReadError, TreeError) as exc:
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


class Operations(pyfuse3.Operations):
    """The FUSE request handlers of one mount."""

    supports_dot_lookup = True
    enable_writeback_cache = False

    def __init__(self, tree: Tree, reader: Reader, options: MountOptions) -> None:
        super().__init__()
        self._tree = tree
        self._reader = reader
        self._uid = options.uid if options.uid is not None else os.getuid()
        self._gid = options.gid if options.gid is not None else os.getgid()
        self._dir_mode = stat.S_IFDIR | (0o755 & ~options.umask)
        self._file_mode = stat.S_IFREG | (0o644 & ~options.umask)
        self._negative_ttl = options.negative_ttl
        self._handles = itertools.count(1)
        self._directories: dict[int, _OpenDirectory] = {}
        # File handle -> the reader's handle; read() looks it up on every call.
        self._files: dict[int, Any] = {}

    # --------------------------------------------------------------- helpers

    def _attributes(self, node: Node, timeout: float) -> pyfuse3.EntryAttributes:
        attributes = pyfuse3.EntryAttributes()
        attributes.st_ino = node.inode
        attributes.generation = 0
        attributes.entry_timeout = timeout
        attributes.attr_timeout = timeout
        if node.is_dir:
            attributes.st_mode = self._dir_mode
            attributes.st_size = 0
        else:
            attributes.st_mode = self._file_mode
            attributes.st_size = node.size
        # Folders get 1 link as well, so GNU find does not count subfolders
        # from st_nlink (its leaf optimisation) and lists every folder.
        attributes.st_nlink = 1
        attributes.st_uid = self._uid
        attributes.st_gid = self._gid
        attributes.st_rdev = 0
        attributes.st_blksize = BLOCK_SIZE
        attributes.st_blocks = (attributes.st_size + 511) // 512
        time_ns = node.created_at * 1_000_000_000
        attributes.st_atime_ns = time_ns
        attributes.st_mtime_ns = time_ns
        attributes.st_ctime_ns = time_ns
        return attributes

    def status(self) -> dict[str, Any]:
        """Return the counters that ``pmzfs status`` shows for this mount."""
        tree_stats = self._tree.stats()
        reader_stats = self._reader.stats()
        return {
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

    async def close_all(self) -> None:
        """Close every reader handle still open, after the FUSE loop ended."""
        handles = list(self._files.values())
        self._files.clear()
        for handle in handles:
            await handle.close()
        for directory in self._directories.values():
            self._tree.unpin(directory.entries)
        self._directories.clear()

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
        if mode & os.W_OK:
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

    # ------------------------------------------------------------------ files

    @fuse_handler
    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        node = self._tree.node(inode)
        if node.is_dir:
            raise pyfuse3.FUSEError(errno.EISDIR)
        if flags & os.O_ACCMODE != os.O_RDONLY or flags & os.O_TRUNC:
            raise pyfuse3.FUSEError(errno.EROFS)

        link = node.link or await self._tree.fresh_link(node)
        handle = self._reader.open(node.id, node.size, link, self._link_refresher(node, link))
        fh = next(self._handles)
        self._files[fh] = handle

        # The kernel keeps cached pages across opens only while the content
        # is the same: same file id (ids change when content is replaced)
        # and same size as at the previous open.
        version = (node.id, node.size)
        keep_cache = node.opened_version == version
        node.opened_version = version
        return pyfuse3.FileInfo(fh=fh, keep_cache=keep_cache)

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
    async def read(self, fh: int, off: int, size: int) -> bytes:
        return await self._files[fh].read(off, size)

    @fuse_handler
    async def flush(self, fh: int) -> None:
        return None

    @fuse_handler
    async def fsync(self, fh: int, datasync: bool) -> None:
        return None

    @fuse_handler
    async def release(self, fh: int) -> None:
        handle = self._files.pop(fh, None)
        if handle is not None:
            await handle.close()

    # ------------------------------------------- calls that change the account

    @fuse_handler
    async def setattr(self, inode: int, attr: pyfuse3.EntryAttributes, fields: pyfuse3.SetattrFields, fh: int | None, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        raise pyfuse3.FUSEError(errno.EROFS)

    @fuse_handler
    async def mknod(self, parent_inode: int, name: bytes, mode: int, rdev: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        raise pyfuse3.FUSEError(errno.EPERM)

    @fuse_handler
    async def mkdir(self, parent_inode: int, name: bytes, mode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        raise pyfuse3.FUSEError(errno.EROFS)

    @fuse_handler
    async def create(self, parent_inode: int, name: bytes, mode: int, flags: int, ctx: pyfuse3.RequestContext) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        raise pyfuse3.FUSEError(errno.EROFS)

    @fuse_handler
    async def write(self, fh: int, off: int, buf: bytes) -> int:
        raise pyfuse3.FUSEError(errno.EROFS)

    @fuse_handler
    async def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        raise pyfuse3.FUSEError(errno.EROFS)

    @fuse_handler
    async def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        raise pyfuse3.FUSEError(errno.EROFS)

    @fuse_handler
    async def rename(self, parent_inode_old: int, name_old: bytes, parent_inode_new: int, name_new: bytes, flags: int, ctx: pyfuse3.RequestContext) -> None:
        raise pyfuse3.FUSEError(errno.EROFS)

    @fuse_handler
    async def symlink(self, parent_inode: int, name: bytes, target: bytes, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        raise pyfuse3.FUSEError(errno.EPERM)

    @fuse_handler
    async def link(self, inode: int, new_parent_inode: int, new_name: bytes, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        raise pyfuse3.FUSEError(errno.EPERM)
