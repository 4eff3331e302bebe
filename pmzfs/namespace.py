"""Changes to names through the mount: mkdir, rmdir, unlink and rename.

Each change goes to the API, or to the writer for a file with a staged
version, and then edits the tree's cached listings in place, so the next
``ls`` shows it without listing the folder again.  ``Namespace`` is also
the writer's listener: it puts every confirmed upload into the tree.

Files created through the mount exist only in staging until their first
upload.  The tree shows them with a local id (``local_id``) that no
service id can equal, and ``Namespace.local_items`` adds them to every
fresh listing of their folder.  Once the upload is confirmed, the node
takes the service id and keeps its inode number.
"""

from __future__ import annotations

import errno
import logging
import secrets
import time

from pmzfs.api.errors import APIError, InvalidRequest, NotFound
from pmzfs.api.models import Item
from pmzfs.tree import Node, Tree, TreeError
from pmzfs.writer import StagedFile, UploadDone, Writer

log = logging.getLogger(__name__)

LOCAL_ID_PREFIX = "pmzfs-staged:"
"""Start of the tree id of a file that is not on the service yet; service
ids are URL-safe base64 text, which has no colon."""

MOVING_NAME_PREFIX = ".pmzfs-moving-"
"""Start of the name a file or folder gets for a move into a folder that has
an entry with its name, when the service rejects duplicate names."""


def local_id(staging_id: str) -> str:
    """Return the tree id of the staged new file with ``staging_id``."""
    return LOCAL_ID_PREFIX + staging_id


def staging_id_of(node_id: str) -> str | None:
    """Return the staging id inside a local id, or None for a service id."""
    if node_id.startswith(LOCAL_ID_PREFIX):
        return node_id[len(LOCAL_ID_PREFIX) :]
    return None


def item_of(node: Node) -> Item:
    """Return file ``node`` as the API record that the writer takes."""
    return Item(id=node.id, name=node.name, type="file", created_at=node.created_at, size=node.size, link=node.link)


def local_item(staged: StagedFile) -> Item:
    """Return the listing entry of a staged file that is not on the service yet."""
    created_at = (staged.mtime_ns or time.time_ns()) // 1_000_000_000
    return Item(id=local_id(staged.staging_id), name=staged.name, type="file", created_at=created_at, size=staged.size)


class Namespace:
    """The mount's own changes to names, applied to the service, the writer and the tree."""

    def __init__(self, tree: Tree, writer: Writer) -> None:
        self._tree = tree
        self._writer = writer
        self._client = writer.client

    # ------------------------------------------------------------ staged files

    def staged_for(self, node: Node) -> StagedFile | None:
        """Return the staged version of file ``node``, or None when it has none."""
        if node.is_dir:
            return None
        staging_id = staging_id_of(node.id)
        if staging_id is None:
            return self._writer.find(node.id)
        staged = self._writer.find_new(self._tree.parent(node).id, node.name)
        if staged is None or staged.staging_id != staging_id:
            return None
        return staged

    def local_items(self, folder_id: str) -> list[Item]:
        """Return the staged files of ``folder_id`` that are not on the service yet, as listing entries."""
        return [local_item(staged) for staged in self._writer.new_files(folder_id)]

    def has_staged_in(self, folder_id: str) -> bool:
        """Return whether a staged file, uploaded or not, belongs in folder ``folder_id``."""
        return any(staged.folder_id == folder_id for staged in self._writer.staged_files())

    def upload_done(self, done: UploadDone) -> None:
        """Put a confirmed upload into the tree (the writer's listener).

        The node made at ``create``, or the node of the replaced file, takes
        the new id and keeps its inode number.  Without either, the file is
        added to its folder's cached listing, if the tree has the folder.
        """
        tree = self._tree
        node = tree.find(False, local_id(done.staging_id))
        replaced = tree.find(False, done.replaced_id) if done.replaced_id is not None else None
        if node is None:
            node, replaced = replaced, None
        if node is not None:
            tree.replace_file(node, done.item)
            if replaced is not None and replaced is not node:
                tree.remove_entry(replaced)
            return
        folder = tree.find(True, done.folder_id)
        if folder is not None:
            tree.add_entry(folder.inode, done.item)

    # ------------------------------------------------------------ folders

    async def mkdir(self, folder: Node, shown: bytes, name: str) -> Node:
        """Create folder ``name`` in ``folder``; ``shown`` is the name the program asked for.

        Raises ``TreeError(EEXIST)`` when the name is taken, including by an
        entry that the cached listing has not seen yet: a fresh listing
        decides, because a service that allows duplicate names would create
        a second entry with the name.
        """
        tree = self._tree
        listing = await tree.refresh(folder.inode)
        if shown in listing.by_name:
            raise TreeError(errno.EEXIST, f"{name!r} already exists in folder {folder.id}")
        try:
            folder_id = await self._client.folder_create(name, folder.id)
        except InvalidRequest:
            # The service rejects duplicate names: check whether that is why.
            listing = await tree.refresh(folder.inode)
            if shown in listing.by_name:
                raise TreeError(errno.EEXIST, f"{name!r} already exists in folder {folder.id}") from None
            raise
        item = Item(id=folder_id, name=name, type="folder", created_at=int(time.time()))
        node = tree.add_entry(folder.inode, item)
        if node.shown != shown:
            # Another client took the name after the listing and the service
            # allowed a duplicate.  A local mkdir fails on a taken name, so this one does too.
            log.info("folder %r in folder %s already existed; deleting the duplicate %s", name, folder.id, folder_id)
            await self._client.folder_delete(folder_id)
            tree.remove_entry(node)
            raise TreeError(errno.EEXIST, f"{name!r} already exists in folder {folder.id}")
        return node

    async def rmdir(self, node: Node) -> None:
        """Delete the empty folder ``node``; ``TreeError(ENOTEMPTY)`` otherwise.

        ``folder/delete`` deletes a folder with everything in it, so the
        decision rests on a fresh listing, never on the cache, and on the
        writer's staged files, which a listing does not show.
        """
        await self._check_empty(node)
        try:
            await self._client.folder_delete(node.id)
        except NotFound:
            self._tree.remove_entry(node)
            raise
        self._tree.remove_entry(node)

    async def _check_empty(self, folder: Node) -> None:
        if self.has_staged_in(folder.id):
            raise TreeError(errno.ENOTEMPTY, f"folder {folder.id} has staged files")
        listing = await self._tree.refresh(folder.inode)
        if listing.entries or listing.hidden:
            raise TreeError(errno.ENOTEMPTY, f"folder {folder.id} is not empty")

    # ------------------------------------------------------------ files

    async def unlink(self, node: Node) -> None:
        """Delete file ``node``: its staged version through the writer, else ``item/delete``."""
        staged = self.staged_for(node)
        if staged is not None:
            await self._writer.unlink(staged)
        elif staging_id_of(node.id) is None:
            try:
                await self._client.item_delete(node.id)
            except NotFound:
                self._tree.remove_entry(node)
                raise
            if self._writer.mtimes is not None:
                self._writer.mtimes.forget(node.id)
        # A local node without a staged file was deleted already.
        self._tree.remove_entry(node)

    # ------------------------------------------------------------ rename

    async def rename(self, source: Node, folder: Node, name: str, target: Node | None) -> None:
        """Move ``source`` into ``folder`` as ``name``, replacing ``target`` (the entry there, or None).

        Raises ``TreeError`` with EINVAL for a folder moved into itself or
        below itself, ENOTDIR or EISDIR when a folder and a file would
        replace each other, and ENOTEMPTY for a folder over a non-empty one.
        """
        if source.is_dir and self._tree.is_ancestor_or_self(source, folder):
            raise TreeError(errno.EINVAL, f"cannot move folder {source.id} into itself or its own subfolder")
        if target is not None and source.is_dir and not target.is_dir:
            raise TreeError(errno.ENOTDIR, f"cannot replace file {target.id} with folder {source.id}")
        if target is not None and target.is_dir and not source.is_dir:
            raise TreeError(errno.EISDIR, f"cannot replace folder {target.id} with file {source.id}")

        staged = self.staged_for(source)
        if staged is not None:
            await self._rename_staged(staged, source, folder, name, target)
            return
        if staging_id_of(source.id) is not None:
            raise TreeError(errno.ENOENT, f"staged file {source.name!r} no longer exists")

        if target is not None and target.is_dir:
            await self._delete_replaced_folder(target)
            target = None
        elif target is not None:
            target_staged = self.staged_for(target)
            if target_staged is not None:
                # Its pending upload must not bring the old content back
                # later. The service copy stays until the move below has put
                # the source in its place, so a failed move loses nothing.
                await self._writer.discard(target_staged)
            if staging_id_of(target.id) is not None:
                # The target was never on the service.
                self._tree.remove_entry(target)
                target = None
        await self._move(source, folder, name, target)

    async def _rename_staged(self, staged: StagedFile, source: Node, folder: Node, name: str, target: Node | None) -> None:
        # The writer deletes a staged version of the target itself; a target
        # that exists only in staging is found by its folder and name.
        replaces = None
        if target is not None and staging_id_of(target.id) is None:
            replaces = item_of(target)
        await self._writer.rename(staged, folder.id, name, replaces=replaces)
        if target is not None:
            self._tree.remove_entry(target)
        self._tree.move_entry(source, folder.inode, name)

    async def _delete_replaced_folder(self, target: Node) -> None:
        """Delete the folder that a folder rename replaces, after making sure it is empty."""
        await self._check_empty(target)
        try:
            await self._client.folder_delete(target.id)
        except NotFound:
            pass
        self._tree.remove_entry(target)

    async def _move(self, source: Node, folder: Node, name: str, target: Node | None) -> None:
        """Move a service file or folder; ``target`` is a service file that it replaces."""
        tree = self._tree
        if folder is not tree.parent(source):
            await self._paste(source, folder)
        if target is not None:
            await self._writer.replace(folder.id, source.id, target.id, name)
            tree.remove_entry(target)
            tree.rename_entry(source, name)
        elif source.name != name:
            await self._rename_on_service(source, name)
            tree.rename_entry(source, name)

    async def _paste(self, source: Node, folder: Node) -> None:
        """Move ``source`` into ``folder`` with ``folder/paste``, which keeps its id."""
        try:
            await self._paste_once(source, folder)
            return
        except InvalidRequest as exc:
            first_error = exc
        # With duplicate names rejected, the folder has an entry with the
        # source's name: move it under a unique name, which _move then
        # replaces with the final one.
        # NOTE: if pmzfs stops between these steps, the entry keeps the
        # name MOVING_NAME_PREFIX + random hex until someone renames it.
        old_name = source.name
        moving_name = MOVING_NAME_PREFIX + secrets.token_hex(8)
        log.debug("paste of %s into folder %s failed (%s); trying again as %r", source.id, folder.id, first_error, moving_name)
        await self._rename_on_service(source, moving_name)
        self._tree.rename_entry(source, moving_name)
        try:
            await self._paste_once(source, folder)
        except APIError:
            try:
                await self._rename_on_service(source, old_name)
                self._tree.rename_entry(source, old_name)
            except APIError as restore_error:
                log.warning(
                    "could not rename %s back from %r to %r after a failed move: %s",
                    source.id, moving_name, old_name, restore_error,
                )
            raise

    async def _paste_once(self, source: Node, folder: Node) -> None:
        if source.is_dir:
            await self._client.folder_paste(folder.id, folders=[source.id])
        else:
            await self._client.folder_paste(folder.id, files=[source.id])
        self._tree.move_entry(source, folder.inode)

    async def _rename_on_service(self, node: Node, name: str) -> None:
        if node.is_dir:
            await self._client.folder_rename(node.id, name)
        else:
            await self._client.item_rename(node.id, name)
