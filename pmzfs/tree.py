"""Metadata of the mount: the inode table and the cache of folder listings.

The tree turns inode numbers and shown names into service ids and back.  It
lists folders with ``folder/list`` through a cache with a time to live, and
serves lookups and attributes from those listings, so ``ls -l`` of a folder
costs one API call however many entries it has.  It imports nothing from
pyfuse3: ``pmzfs.fs`` turns its records into FUSE replies.

Consistency rules (``docs/semantics.md`` has the full model):

- A listing is trusted for ``dir_cache_ttl`` seconds after it was fetched.
- A name missing from a listing is trusted as missing for ``negative_ttl``
  seconds after the listing was fetched. A lookup of a missing name in an
  older listing lists the folder again.
- Only a successful listing removes a name.  When listing again fails, the
  previous listing stays in use, a warning is logged (at most once per
  ``WARNING_INTERVAL`` seconds), and the next attempt waits
  ``stale_retry_interval`` seconds, doubling with each further failure up
  to ``STALE_RETRY_MAX``.  When listing again takes longer than
  ``stale_wait`` seconds (the client retries during a rate limit), or
  longer than ``STALE_WAIT_AFTER_FAILURE`` after a failed refresh, the
  previous listing is used while the call goes on in the background.
  Without a previous listing the API error is raised.
- ``not_found`` for a folder drops its listing and its entry in its parent.

Inode numbers come from a hash of the id, so an id keeps its inode number
for the whole mount and across remounts.  Memory stays bounded: cached
listings hold at most ``max_entries`` entries together (least recently used
listings are dropped first), and a node is dropped once no cached listing,
no open directory handle and no kernel lookup refers to it.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import trio

from pmzfs.api.errors import APIError, NotFound
from pmzfs.api.models import AccountInfo, FolderListing, Item
from pmzfs.names import assign_names, plain_candidate

log = logging.getLogger(__name__)

DEFAULT_MAX_ENTRIES = 100_000
"""Entries that all cached listings together may hold before eviction."""

STALE_RETRY_INTERVAL = 5.0
"""Seconds between attempts to list a folder again while a stale listing is in use."""

STALE_WAIT = 2.0
"""Seconds a lookup waits for ``folder/list`` before it uses the previous listing."""

STALE_RETRY_MAX = 60.0
"""Seconds between refresh attempts at most, after repeated failures."""

STALE_WAIT_AFTER_FAILURE = 0.5
"""Seconds a lookup waits for a refresh when the previous refresh failed.

Long enough for a quick response once the service is back, short enough
that a ``find`` over many folders during an outage is not slowed much."""

ACCOUNT_INFO_TTL = 60.0
"""Seconds an ``account/info`` response is trusted (only ``statfs`` uses it)."""

WARNING_INTERVAL = 30.0
"""Seconds between two warnings about serving stale metadata."""

# Inode numbers stay below 2**53 so that programs that hold them in a double
# (JavaScript's fs.stat, for one) still tell them apart.
_INODE_LIMIT = 2**53
_FIRST_INODE = 2

Key = tuple[bool, str]
"""(is a folder, id): folder ids and file ids live in separate key spaces."""


class TreeError(Exception):
    """A metadata request that fails with ``errno`` (ENOENT, ENOTDIR, EIO)."""

    def __init__(self, errno_value: int, message: str) -> None:
        super().__init__(message)
        self.errno = errno_value


@dataclass(slots=True, eq=False)
class Node:
    """One file or folder of the mount, keyed by its inode number."""

    inode: int
    is_dir: bool
    id: str
    parent: int
    name: str
    shown: bytes
    size: int = 0
    created_at: int = 0
    link: str | None = field(default=None, repr=False)
    # References that keep the node in the table: kernel lookups, open
    # directory handles whose snapshot contains it, and the parent's listing.
    lookups: int = 0
    pins: int = 0
    listed: bool = False
    # (id, size) when the file was last opened; decides FileInfo.keep_cache.
    opened_version: tuple[str, int] | None = None

    @property
    def key(self) -> Key:
        return (self.is_dir, self.id)


@dataclass(slots=True, eq=False)
class Listing:
    """A cached ``folder/list`` result with its shown names."""

    folder_id: str
    entries: list[Node]
    by_name: dict[bytes, Node]
    fetched_at: float
    # While a stale listing is in use, the time of the next refresh attempt.
    retry_at: float = -math.inf
    # Refresh attempts that failed in a row since this listing was fetched.
    failures: int = 0
    # Entries whose shown name has a suffix; zero allows cheap in-place edits.
    suffixed: int = 0
    # Service entries left out because ``Tree.hidden_name`` matched their name.
    hidden: int = 0


@dataclass(slots=True, eq=False)
class _Fetch:
    """One ``folder/list`` call in flight that other lookups wait for."""

    done: trio.Event = field(default_factory=trio.Event)
    listing: Listing | None = None
    error: Exception | None = None
    # Set once a caller stopped waiting for it; later callers do not wait.
    slow: bool = False
    # Entries this mount changed while the call ran, by key: the node that
    # must be in the listing, or None for one that must not.  The response
    # may predate those changes, so they win over it.
    touched: dict[Key, Node | None] = field(default_factory=dict)


class _WarningLimiter:
    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._next = -math.inf
        self._suppressed = 0

    def warn(self, now: float, message: str, *args: object) -> None:
        if now < self._next:
            self._suppressed += 1
            return
        if self._suppressed:
            message += " (%d similar warnings suppressed)"
            args = (*args, self._suppressed)
        log.warning(message, *args)
        self._next = now + self._interval
        self._suppressed = 0


def hashed_inode(key: Key) -> int:
    """Return the inode number of ``key`` unless another key already uses it."""
    is_dir, entry_id = key
    space = b"folder\0" if is_dir else b"file\0"
    digest = hashlib.blake2b(space + entry_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return _FIRST_INODE + int.from_bytes(digest, "big") % (_INODE_LIMIT - _FIRST_INODE)


class Tree:
    """The inode table and folder listing cache of one mount.

    ``client`` needs ``folder_list``, ``item_details`` and ``account_info``
    of ``pmzfs.api.PremiumizeClient``.  All methods run in one trio thread.

    Three hooks connect the tree to the write side; each may be set after
    construction and defaults to doing nothing:

    - ``hidden_name(name)``: service entries whose name it accepts are left
      out of listings (the writer's temporary upload names).
    - ``local_entries(folder_id)``: entries that exist only on this machine
      (staged files not uploaded yet), added to every listing of the folder.
    - ``on_shown_change(folder_inode, old_shown)``: called when an in-place
      edit gives an entry another shown name, so the kernel's entry cache
      can drop the old name.
    """

    def __init__(
        self,
        client: object,
        *,
        root_inode: int = 1,
        dir_cache_ttl: float = 60.0,
        negative_ttl: float = 2.0,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        stale_retry_interval: float = STALE_RETRY_INTERVAL,
        stale_wait: float = STALE_WAIT,
        hidden_name: Callable[[str], bool] | None = None,
    ) -> None:
        self._client = client
        self.root_inode = root_inode
        self.dir_cache_ttl = dir_cache_ttl
        self.negative_ttl = negative_ttl
        self.max_entries = max_entries
        self.stale_retry_interval = stale_retry_interval
        self.stale_wait = stale_wait
        self.hidden_name = hidden_name
        self.local_entries: Callable[[str], Iterable[Item]] | None = None
        self.on_shown_change: Callable[[int, bytes], None] | None = None
        self._nursery: trio.Nursery | None = None
        self._nursery_manager: Any = None

        self.root = Node(
            inode=root_inode, is_dir=True, id="", parent=root_inode, name="", shown=b"", created_at=int(time.time())
        )
        self._nodes: dict[int, Node] = {root_inode: self.root}
        self._inode_by_key: dict[Key, int] = {}
        # Keys whose inode number is not their hashed one (after a collision
        # or a replaced file id), kept for the whole mount so they stay stable.
        self._assigned: dict[Key, int] = {}
        self._reserved: set[int] = set()

        self._listings: OrderedDict[int, Listing] = OrderedDict()
        self._listed_total = 0
        self._fetches: dict[int, _Fetch] = {}
        self._stale_warnings = _WarningLimiter(WARNING_INTERVAL)

        self._account: AccountInfo | None = None
        self._account_valid_until = -math.inf

    async def __aenter__(self) -> Tree:
        """Start the nursery that runs ``folder/list`` calls in the background.

        Without it (in unit tests) each call runs in the task that needs it,
        and callers wait for the client's retries to end.
        """
        self._nursery_manager = trio.open_nursery()
        self._nursery = await self._nursery_manager.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        nursery, self._nursery = self._nursery, None
        nursery.cancel_scope.cancel()
        await self._nursery_manager.__aexit__(None, None, None)

    # ----------------------------------------------------------------- nodes

    def node(self, inode: int) -> Node:
        """Return the node of ``inode``; raises ``TreeError(ENOENT)`` if unknown."""
        node = self._nodes.get(inode)
        if node is None:
            raise TreeError(errno.ENOENT, f"inode {inode} is not known")
        return node

    def remember(self, node: Node) -> None:
        """Count one kernel lookup of ``node`` (a lookup or readdirplus reply)."""
        node.lookups += 1
        if self._nodes.get(node.inode) is not node:
            self._register(node)

    def forget(self, inode: int, count: int) -> None:
        """Lower the kernel lookup count of ``inode`` by ``count``."""
        node = self._nodes.get(inode)
        if node is None:
            return
        node.lookups = max(0, node.lookups - count)
        self._maybe_drop(node)

    def pin(self, nodes: Iterable[Node]) -> None:
        """Keep ``nodes`` in the table while an open directory handle lists them."""
        for node in nodes:
            node.pins += 1

    def unpin(self, nodes: Iterable[Node]) -> None:
        """Release the references that ``pin`` took."""
        for node in nodes:
            node.pins -= 1
            self._maybe_drop(node)

    def entry_timeout(self, node: Node) -> float:
        """Return how long the kernel may cache ``node``'s entry and attributes.

        That is the time the parent's listing stays fresh, so the kernel's
        cache and this one expire together.  Zero for a stale listing.
        """
        if node is self.root:
            return self.dir_cache_ttl
        return self.folder_timeout(node.parent)

    def folder_timeout(self, inode: int) -> float:
        """Return the seconds the cached listing of folder ``inode`` stays fresh."""
        listing = self._listings.get(inode)
        if listing is None:
            return 0.0
        return max(0.0, listing.fetched_at + self.dir_cache_ttl - trio.current_time())

    def parent(self, node: Node) -> Node:
        """Return the folder that contains ``node`` (the root for the root)."""
        return self._nodes.get(node.parent, self.root)

    def find(self, is_dir: bool, entry_id: str) -> Node | None:
        """Return the node of the folder or file with id ``entry_id``, if the tree has one."""
        inode = self._inode_by_key.get((is_dir, entry_id))
        return None if inode is None else self._nodes.get(inode)

    def is_ancestor_or_self(self, folder: Node, node: Node) -> bool:
        """Return whether ``folder`` is ``node`` itself or one of the folders above it."""
        current = node
        # Bounded by the node count, so a damaged parent chain cannot loop forever.
        for _ in range(len(self._nodes) + 1):
            if current is folder:
                return True
            if current is self.root:
                return False
            current = self.parent(current)
        return False

    def stats(self) -> dict[str, int]:
        """Return counts for memory checks: nodes, listings, listed entries."""
        return {
            "nodes": len(self._nodes),
            "listings": len(self._listings),
            "listed_entries": self._listed_total,
            "fetches_in_flight": len(self._fetches),
        }

    # ---------------------------------------------------------- read path

    async def lookup(self, parent_inode: int, name: bytes) -> Node | None:
        """Return the entry shown as ``name`` in folder ``parent_inode``, or
        None when the folder has no such entry.

        Lists the folder when its listing is older than ``dir_cache_ttl``,
        or when ``name`` is missing and the listing is older than
        ``negative_ttl``.  Raises ``APIError`` when listing fails and no
        earlier listing exists, ``TreeError`` for an unknown inode or a file.
        """
        folder = self._folder(parent_inode)
        if name == b".":
            return folder
        if name == b"..":
            return self.parent(folder)

        listing = await self.listing(parent_inode)
        node = listing.by_name.get(name)
        if node is not None or not self._miss_needs_refresh(listing):
            return node
        listing = await self._fetch(folder, allow_stale=True)
        return listing.by_name.get(name)

    async def getattr_node(self, inode: int) -> Node:
        """Return the node of ``inode`` with attributes no older than the TTL.

        A node whose parent listing is cached but expired gets its parent
        listed again.  A node no longer in any cached listing keeps its last
        attributes: only a lookup, which the kernel sends before any path
        operation, decides whether its name still exists.
        """
        node = self.node(inode)
        if node is self.root or not node.listed or node.parent not in self._nodes:
            return node
        await self.listing(node.parent)
        return node

    async def listing(self, inode: int) -> Listing:
        """Return the listing of folder ``inode``, listing it when expired.

        When the folder cannot be listed, a previous listing is returned
        instead (see the module docstring).  Raises ``NotFound`` when the
        folder no longer exists and ``APIError`` when listing fails without
        a previous listing.
        """
        folder = self._folder(inode)
        cached = self._listings.get(inode)
        if cached is not None:
            now = trio.current_time()
            if now < cached.fetched_at + self.dir_cache_ttl or now < cached.retry_at:
                self._listings.move_to_end(inode)
                return cached
        return await self._fetch(folder, allow_stale=True)

    async def refresh(self, inode: int) -> Listing:
        """List folder ``inode`` now, whatever its cache age.

        For decisions that must not rest on the cache, such as whether a
        folder is empty before deleting it: raises the ``APIError`` instead
        of returning a stale listing.
        """
        return await self._fetch(self._folder(inode), allow_stale=False)

    def invalidate(self, inode: int) -> None:
        """Mark the listing of folder ``inode`` expired, keeping it for stale use."""
        listing = self._listings.get(inode)
        if listing is not None:
            listing.fetched_at = -math.inf
            listing.retry_at = -math.inf

    async def fresh_link(self, node: Node) -> str:
        """Fetch a new download link for file ``node`` via ``item/details``."""
        details = await self._client.item_details(node.id)
        if not details.link:
            raise TreeError(errno.EIO, f"item/details returned no link for file {node.id}")
        node.link = details.link
        return details.link

    async def account_info(self) -> AccountInfo:
        """Return ``account/info``, cached for ``ACCOUNT_INFO_TTL`` seconds.

        When the call fails, the last response is returned (with a warning);
        without one the ``APIError`` is raised.
        """
        now = trio.current_time()
        if self._account is not None and now < self._account_valid_until:
            return self._account
        try:
            info = await self._client.account_info()
        except APIError as exc:
            if self._account is None:
                raise
            self._stale_warnings.warn(now, "account/info failed, using the previous answer: %s", exc)
            self._account_valid_until = now + self.stale_retry_interval
            return self._account
        self.set_account_info(info)
        return info

    def set_account_info(self, info: AccountInfo) -> None:
        """Store an ``account/info`` response that the caller fetched."""
        self._account = info
        self._account_valid_until = trio.current_time() + ACCOUNT_INFO_TTL

    # ------------------------------------------------ updates after our writes

    def add_entry(self, parent_inode: int, item: Item) -> Node:
        """Add ``item``, which this mount just created, to folder ``parent_inode``.

        Updates the cached listing in place (if the folder has one), so the
        new entry is visible without listing the folder again.  Returns the
        node; its shown name may carry a suffix when the name is taken.
        """
        known = self._inode_by_key.get((item.is_folder, item.id))
        if known is not None:
            self._detach(self._nodes[known])
        node = self._node_for_item(item, parent_inode)
        self._attach(node, parent_inode)
        return node

    def remove_entry(self, node: Node) -> None:
        """Remove ``node``, which this mount just deleted, from its folder's listing.

        The node stays in the table while the kernel still refers to it.  A
        folder's own cached listing is dropped with it.
        """
        self._detach(node)
        if node.is_dir:
            self._drop_listing(node.inode)
        self._maybe_drop(node)

    def rename_entry(self, node: Node, new_name: str) -> None:
        """Give ``node`` the service name ``new_name`` within its folder."""
        self.move_entry(node, node.parent, new_name)

    def move_entry(self, node: Node, new_parent_inode: int, new_name: str | None = None) -> None:
        """Move ``node`` to folder ``new_parent_inode``, optionally renaming it.

        The node keeps its inode number, because moves keep ids.
        """
        self._detach(node)
        if new_name is not None:
            node.name = new_name
        self._attach(node, new_parent_inode)
        self._maybe_drop(node)

    def replace_file(self, node: Node, item: Item) -> None:
        """Point file ``node`` at ``item``, a new upload that replaced its content.

        The node keeps its inode number, so open handles and the kernel's
        entry stay valid, and takes the new id, name, size, time and link.
        """
        if node.is_dir or item.is_folder:
            raise ValueError("replace_file works on files only")
        old_key = node.key
        new_key: Key = (False, item.id)
        other_inode = self._inode_by_key.get(new_key)
        if other_inode is not None and other_inode != node.inode:
            # A listing already showed the new file under its own node: that
            # node gives way, because the kernel refers to the content as ``node``.
            other = self._nodes[other_inode]
            self._detach(other)
            del self._inode_by_key[new_key]
            self._maybe_drop(other)

        self._detach(node)
        if self._inode_by_key.get(old_key) == node.inode:
            del self._inode_by_key[old_key]
        self._assigned.pop(old_key, None)
        node.id = item.id
        self._inode_by_key[new_key] = node.inode
        if hashed_inode(new_key) != node.inode:
            self._assigned[new_key] = node.inode
        self._reserved = set(self._assigned.values())
        self._update_from_item(node, item)
        self._attach(node, node.parent)

    # ------------------------------------------------------------ internals

    def _folder(self, inode: int) -> Node:
        node = self.node(inode)
        if not node.is_dir:
            raise TreeError(errno.ENOTDIR, f"inode {inode} is a file")
        return node

    def _miss_needs_refresh(self, listing: Listing) -> bool:
        now = trio.current_time()
        return now >= listing.fetched_at + self.negative_ttl and now >= listing.retry_at

    async def _fetch(self, folder: Node, *, allow_stale: bool) -> Listing:
        """List ``folder``, sharing one ``folder/list`` call among concurrent callers.

        Inside ``async with tree`` the call runs in the tree's nursery. A
        caller that may use a previous listing then waits at most
        ``stale_wait`` seconds for it, because the client's retries during a
        rate limit can take minutes, and ``ls`` should not hang that long.
        """
        while True:
            pending = self._fetches.get(folder.inode)
            if pending is None:
                pending = _Fetch()
                self._fetches[folder.inode] = pending
                if self._nursery is not None:
                    self._nursery.start_soon(self._run_fetch, folder, pending)
                else:
                    await self._run_fetch(folder, pending)

            cached = self._listings.get(folder.inode)
            if allow_stale and self._nursery is not None and cached is not None:
                if pending.slow:
                    wait = 0.0
                elif cached.failures:
                    wait = min(self.stale_wait, STALE_WAIT_AFTER_FAILURE)
                else:
                    wait = self.stale_wait
                with trio.move_on_after(wait):
                    await pending.done.wait()
                if not pending.done.is_set():
                    pending.slow = True
                    return self._stale_while_slow(folder)
            else:
                await pending.done.wait()

            if pending.listing is not None:
                return pending.listing
            if pending.error is not None:
                return self._stale_or_raise(folder, pending.error, allow_stale)
            # The call was cancelled before it finished: list again.

    async def _run_fetch(self, folder: Node, pending: _Fetch) -> None:
        try:
            # The root is listed without an id, as the API documents.
            result = await self._client.folder_list(None if folder is self.root else folder.id)
        except NotFound as exc:
            pending.error = exc
            self._forget_folder(folder)
        except APIError as exc:
            pending.error = exc
            self._note_failure(folder, exc)
        except Exception as exc:
            # Kept for the callers, which raise it (pmzfs.fs logs it with
            # its stack), so a bug cannot end the tree's nursery.
            pending.error = exc
        else:
            pending.listing = self._install(folder, result, pending.touched)
        finally:
            del self._fetches[folder.inode]
            pending.done.set()

    def _note_failure(self, folder: Node, exc: APIError) -> None:
        cached = self._listings.get(folder.inode)
        if cached is None:
            return
        now = trio.current_time()
        # Back off while the failures go on, so a long outage costs few calls.
        cached.failures += 1
        backoff = self.stale_retry_interval * 2 ** min(cached.failures - 1, 16)
        cached.retry_at = now + min(backoff, max(STALE_RETRY_MAX, self.stale_retry_interval))
        self._stale_warnings.warn(
            now,
            "folder/list failed for folder %s, using its listing from %.0f s ago: %s",
            folder.id or "(root)",
            now - cached.fetched_at,
            exc,
        )

    def _stale_while_slow(self, folder: Node) -> Listing:
        cached = self._listings[folder.inode]
        now = trio.current_time()
        self._stale_warnings.warn(
            now,
            "folder/list for folder %s has not finished after %.0f s, using its listing from %.0f s ago",
            folder.id or "(root)",
            self.stale_wait,
            now - cached.fetched_at,
        )
        return cached

    def _stale_or_raise(self, folder: Node, exc: Exception, allow_stale: bool) -> Listing:
        cached = self._listings.get(folder.inode)
        if isinstance(exc, NotFound) or not isinstance(exc, APIError) or not allow_stale or cached is None:
            raise exc
        return cached

    def _install(self, folder: Node, result: FolderListing, touched: dict[Key, Node | None]) -> Listing:
        """Store a fresh listing of ``folder`` and update its entries' nodes.

        Entries with hidden names are left out and local entries added.
        ``touched`` contains the edits this mount made while the call ran: they
        are newer than the response, so they replace what it reports about
        those entries.
        """
        if folder is self.root and not folder.id:
            self._set_root_id(result.folder_id)
        items = [item for item in result.content if not self._is_hidden(item.name)]
        hidden = len(result.content) - len(items)
        if self.local_entries is not None:
            service_ids = {item.id for item in items}
            items.extend(item for item in self.local_entries(folder.id) if item.id not in service_ids)

        nodes: list[Node] = []
        for item in items:
            if (item.is_folder, item.id) not in touched:
                nodes.append(self._node_for_item(item, folder.inode))
        for node in touched.values():
            if node is not None and node.parent == folder.inode and self._nodes.get(node.inode) is node:
                nodes.append(node)
        shown, suffixed = assign_names([(node.id, node.name) for node in nodes])

        by_name: dict[bytes, Node] = {}
        for node, name in zip(nodes, shown):
            node.shown = name
            node.listed = True
            by_name[name] = node

        listing = Listing(folder.id, nodes, by_name, trio.current_time(), suffixed=suffixed, hidden=hidden)
        old = self._listings.pop(folder.inode, None)
        self._listings[folder.inode] = listing
        self._listed_total += len(nodes)
        if old is not None:
            self._listed_total -= len(old.entries)
            self._unlist_missing(old, listing, folder.inode)
        self._evict()
        return listing

    def _is_hidden(self, name: str) -> bool:
        return self.hidden_name is not None and self.hidden_name(name)

    def _set_root_id(self, root_id: str) -> None:
        self.root.id = root_id
        key = self.root.key
        self._inode_by_key[key] = self.root_inode
        self._assigned[key] = self.root_inode
        self._reserved.add(self.root_inode)

    def _unlist_missing(self, old: Listing, new: Listing, folder_inode: int) -> None:
        for node in old.entries:
            if node.parent == folder_inode and new.by_name.get(node.shown) is not node:
                node.listed = False
                self._maybe_drop(node)

    def _evict(self) -> None:
        # The newest listing is last and is never evicted, even when it alone
        # has more than max_entries entries, because readdir needs it.
        while self._listed_total > self.max_entries and len(self._listings) > 1:
            inode = next(iter(self._listings))
            self._drop_listing(inode)

    def _drop_listing(self, inode: int) -> None:
        listing = self._listings.pop(inode, None)
        if listing is None:
            return
        self._listed_total -= len(listing.entries)
        for node in listing.entries:
            if node.parent == inode and node.listed:
                node.listed = False
                self._maybe_drop(node)

    def _forget_folder(self, folder: Node) -> None:
        log.info("folder %s no longer exists; dropping it from the cache", folder.id)
        self._drop_listing(folder.inode)
        if folder is not self.root:
            self._detach(folder)
            self._maybe_drop(folder)

    def _node_for_item(self, item: Item, parent_inode: int) -> Node:
        key: Key = (item.is_folder, item.id)
        inode = self._inode_by_key.get(key)
        if inode is not None:
            node = self._nodes[inode]
        else:
            node = Node(inode=self._allocate(key), is_dir=item.is_folder, id=item.id, parent=parent_inode, name="", shown=b"")
            self._register(node)
        node.parent = parent_inode
        self._update_from_item(node, item)
        return node

    @staticmethod
    def _update_from_item(node: Node, item: Item) -> None:
        node.name = item.name
        node.size = item.size
        node.created_at = item.created_at
        if item.link:
            node.link = item.link

    def _allocate(self, key: Key) -> int:
        assigned = self._assigned.get(key)
        if assigned is not None and assigned not in self._nodes:
            return assigned
        hashed = hashed_inode(key)
        inode = hashed
        while inode in self._nodes or inode == self.root_inode or inode in self._reserved:
            inode = inode + 1 if inode + 1 < _INODE_LIMIT else _FIRST_INODE
        if inode != hashed:
            log.debug("inode number %d of %r is taken; using %d", hashed, key, inode)
            self._assigned[key] = inode
            self._reserved.add(inode)
        return inode

    def _register(self, node: Node) -> None:
        self._nodes[node.inode] = node
        self._inode_by_key[node.key] = node.inode

    def _maybe_drop(self, node: Node) -> None:
        if node is self.root or node.lookups > 0 or node.pins > 0 or node.listed:
            return
        if self._nodes.get(node.inode) is node:
            del self._nodes[node.inode]
        if self._inode_by_key.get(node.key) == node.inode:
            del self._inode_by_key[node.key]

    def _detach(self, node: Node) -> None:
        """Remove ``node`` from its parent's cached listing, if it is there."""
        self._note_edit(node.parent, node.key, None)
        listing = self._listings.get(node.parent)
        node.listed = False
        if listing is None or listing.by_name.get(node.shown) is not node:
            return
        listing.entries.remove(node)
        del listing.by_name[node.shown]
        self._listed_total -= 1
        if listing.suffixed:
            # Another entry may now get the name without its suffix.
            self._rename_all(listing, node.parent)

    def _attach(self, node: Node, parent_inode: int) -> None:
        """Add ``node`` to the cached listing of ``parent_inode``, if there is one."""
        node.parent = parent_inode
        self._note_edit(parent_inode, node.key, node)
        listing = self._listings.get(parent_inode)
        if listing is None:
            node.shown = assign_names([(node.id, node.name)])[0][0]
            return
        node.listed = True
        listing.entries.append(node)
        self._listed_total += 1
        candidate = plain_candidate(node.name)
        if candidate is not None and candidate not in listing.by_name:
            # Same result as renaming the whole folder, because no entry has
            # this name or competes for it, so no other shown name changes.
            node.shown = candidate
            listing.by_name[candidate] = node
        else:
            self._rename_all(listing, parent_inode)
        self._evict()

    def _note_edit(self, folder_inode: int, key: Key, node: Node | None) -> None:
        """Record an in-place edit for a ``folder/list`` call of the folder still in flight."""
        pending = self._fetches.get(folder_inode)
        if pending is not None:
            pending.touched[key] = node

    def _rename_all(self, listing: Listing, folder_inode: int) -> None:
        shown, listing.suffixed = assign_names([(node.id, node.name) for node in listing.entries])
        old_names = listing.by_name
        listing.by_name = {}
        for node, name in zip(listing.entries, shown):
            node.shown = name
            listing.by_name[name] = node
        if self.on_shown_change is None:
            return
        # The kernel may still hold an entry under a name that now belongs
        # to another node or to none.
        for old_name, node in old_names.items():
            if listing.by_name.get(old_name) is not node:
                self.on_shown_change(folder_inode, old_name)
