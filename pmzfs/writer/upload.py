"""The upload procedure of one staged file, and the replace procedure.

An upload goes to the target folder under a unique temporary name (see
``journal.new_temporary_name``), is confirmed by a folder listing that
shows it with the staged size, and is then renamed into place.  When it
replaces an older file, the old file is first renamed aside, the new one
renamed into place, and the old one deleted.  If the rename into place
fails, the old file gets its name back.  This order works whether or not
the service allows two files with one name in a folder.

Every step can run again after a crash: ``Uploader.finish`` looks at a
fresh listing to see which steps are done, using the ids and temporary
names that the manifest recorded before each step.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from pmzfs.api.errors import APIError, InvalidRequest, NotFound
from pmzfs.api.models import FolderListing, Item
from pmzfs.writer.journal import READY, UPLOADED, Manifest, new_temporary_name

if TYPE_CHECKING:
    from pmzfs.api.client import PremiumizeClient

log = logging.getLogger(__name__)

MiB = 1024 * 1024


class UploadNotConfirmed(APIError):
    """The service accepted an upload, but the folder listing does not show it with the staged size."""

    code = "upload_not_confirmed"


# Called with (folder id, file id, name) for a file on the service that must
# be deleted later because deleting it now failed.
LeftoverCallback = Callable[[str, str, str], None]
SaveCallback = Callable[[Manifest], Awaitable[None]]


class ProgressLog:
    """The progress callback of one upload: logs at INFO every ``step_percent`` or ``interval`` seconds.

    Percent steps are logged only for files of at least ``min_size`` bytes,
    so copying many small files logs one line per file.
    """

    def __init__(self, label: str, *, step_percent: int, interval: float, min_size: int) -> None:
        self.label = label
        self.step_percent = step_percent
        self.interval = interval
        self.min_size = min_size
        self._last_log = trio.current_time()
        self._next_percent = step_percent
        self._last_sent = 0

    def __call__(self, sent: int, total: int) -> None:
        if sent < self._last_sent:
            # The client started a new attempt from the beginning.
            self._next_percent = self.step_percent
        self._last_sent = sent
        if total <= 0 or sent >= total:
            return
        now = trio.current_time()
        percent = sent * 100 // total
        by_step = total >= self.min_size and percent >= self._next_percent
        if by_step or now - self._last_log >= self.interval:
            log.info("uploading %s: %d%% (%.1f of %.1f MiB)", self.label, percent, sent / MiB, total / MiB)
            self._last_log = now
            self._next_percent = (percent // self.step_percent + 1) * self.step_percent


class Uploader:
    """Runs uploads, confirmations and replaces against the API client.

    ``save`` persists a manifest durably; it is awaited before every step
    whose effect a crash recovery has to recognise.
    """

    def __init__(
        self,
        client: PremiumizeClient,
        *,
        save: SaveCallback,
        on_leftover: LeftoverCallback,
        progress_step_percent: int = 10,
        progress_interval: float = 30.0,
        progress_min_size: int = 64 * MiB,
    ) -> None:
        self.client = client
        self._save = save
        self._on_leftover = on_leftover
        self._progress_step_percent = progress_step_percent
        self._progress_interval = progress_interval
        self._progress_min_size = progress_min_size
        # Bytes of the file sent so far by each running upload, by staging id.
        self.bytes_sent: dict[str, int] = {}

    async def run(self, manifest: Manifest, source: Path, *, check_first: bool) -> Item:
        """Upload ``source`` for ``manifest`` (state READY or UPLOADED) and put it in place.

        With ``check_first``, a READY manifest first looks for an earlier
        attempt that landed under its temporary name, so a retry after a
        crash or an ambiguous failure never uploads the same data twice.
        Returns the new file as it is named after the replace.  Raises
        ``APIError`` with the manifest saved in the state to resume from.
        """
        if manifest.state == READY:
            landed = await self.find_landed(manifest) if check_first else None
            if landed is None:
                landed = await self._upload(manifest, source)
            manifest.uploaded_id = landed
            manifest.state = UPLOADED
            await self._save(manifest)
        return await self.finish(manifest)

    async def find_landed(self, manifest: Manifest) -> str | None:
        """Return the id of an earlier upload of ``manifest`` that landed complete, or None.

        Files under the manifest's temporary upload name with another size
        are partial uploads; they are deleted.
        """
        listing = await self.client.folder_list(manifest.folder_id)
        landed: str | None = None
        for item in listing.content:
            if item.is_folder or item.name != manifest.upload_name:
                continue
            if item.size == manifest.size and landed is None:
                landed = item.id
                continue
            log.warning(
                "deleting partial upload %s of %r in folder %s: %d bytes instead of %d",
                item.id, manifest.name, manifest.folder_id, item.size, manifest.size,
            )
            await self.delete(manifest.folder_id, item.id, item.name)
        return landed

    async def _upload(self, manifest: Manifest, source: Path) -> str:
        label = f"{manifest.name!r} to folder {manifest.folder_id}"
        progress = ProgressLog(
            label,
            step_percent=self._progress_step_percent,
            interval=self._progress_interval,
            min_size=self._progress_min_size,
        )
        staging_id = manifest.staging_id

        def record_progress(sent: int, total: int) -> None:
            self.bytes_sent[staging_id] = sent
            progress(sent, total)

        try:
            return await self.client.upload_file(manifest.folder_id, source, manifest.upload_name, progress=record_progress)
        except APIError as exc:
            # A failed upload may still have left a file, complete or partial.
            try:
                landed = await self.find_landed(manifest)
            except APIError as check_exc:
                log.warning(
                    "could not check folder %s for a partial upload of %r after %s: %s; checking again before the next attempt",
                    manifest.folder_id, manifest.name, exc.code, check_exc,
                )
                raise exc from None
            if landed is not None:
                log.info("the failed upload of %r had stored the file completely as %s", manifest.name, landed)
                return landed
            raise
        finally:
            self.bytes_sent.pop(staging_id, None)

    async def finish(self, manifest: Manifest) -> Item:
        """Confirm an UPLOADED manifest's file by a listing and rename it into place."""
        listing = await self.client.folder_list(manifest.folder_id)
        new = _find(listing, manifest.uploaded_id)
        if new is None or new.size != manifest.size:
            # NOTE: a listing that lags behind the upload also lands here and
            # costs a second upload; the client already waited for the file.
            found = "is missing" if new is None else f"has {new.size} bytes instead of {manifest.size}"
            if new is not None:
                await self.delete(manifest.folder_id, new.id, new.name)
            manifest.state = READY
            manifest.uploaded_id = None
            manifest.upload_name = new_temporary_name("new")
            await self._save(manifest)
            raise UploadNotConfirmed(
                f"uploaded file {new.id if new else manifest.uploaded_id} of {manifest.name!r} {found} "
                f"in the listing of folder {manifest.folder_id}",
                endpoint="folder/list",
            )
        return await self._put_in_place(manifest, listing, new, adopt_holder=True)

    async def _put_in_place(self, manifest: Manifest, listing: FolderListing, new: Item, *, adopt_holder: bool) -> Item:
        old = self._old_file(manifest, listing, new)
        if old is not None and manifest.aside_name is None:
            # Recorded before the rename, so a recovery recognises the old file by this name.
            manifest.aside_name = new_temporary_name("old")
            await self._save(manifest)
        if old is not None and old.name == manifest.name:
            await self.client.item_rename(old.id, manifest.aside_name)
        if new.name != manifest.name:
            try:
                await self.client.item_rename(new.id, manifest.name)
            except APIError as exc:
                if old is not None:
                    await self._put_back(manifest, old, new)
                elif adopt_holder and isinstance(exc, InvalidRequest):
                    return await self._replace_holder(manifest, new, exc)
                raise
        if old is not None:
            await self.delete(manifest.folder_id, old.id, manifest.aside_name or old.name)
        return Item(
            id=new.id,
            name=manifest.name,
            type="file",
            created_at=new.created_at,
            size=new.size,
            mime_type=new.mime_type,
            link=new.link,
        )

    def _old_file(self, manifest: Manifest, listing: FolderListing, new: Item) -> Item | None:
        """Return the file that the upload replaces, if it is still ours to replace."""
        if manifest.replaces_id is None or manifest.replaces_id == new.id:
            return None
        old = _find(listing, manifest.replaces_id)
        if old is None:
            log.info(
                "file %s that %r replaces is no longer in folder %s; putting the upload in place without deleting anything",
                manifest.replaces_id, manifest.name, manifest.folder_id,
            )
            return None
        if old.name not in (manifest.name, manifest.aside_name):
            log.warning(
                "file %s that %r replaces was renamed to %r by someone else; keeping it",
                old.id, manifest.name, old.name,
            )
            return None
        return old

    async def _replace_holder(self, manifest: Manifest, new: Item, exc: APIError) -> Item:
        """Replace a file that took the target name meanwhile, when the service rejects duplicate names."""
        listing = await self.client.folder_list(manifest.folder_id)
        holders = [
            item for item in listing.content
            if not item.is_folder and item.name == manifest.name and item.id != new.id
        ]
        if len(holders) != 1:
            raise exc
        holder = holders[0]
        log.warning(
            "%r in folder %s was created elsewhere as file %s while the upload ran; replacing it with %s",
            manifest.name, manifest.folder_id, holder.id, new.id,
        )
        manifest.replaces_id = holder.id
        await self._save(manifest)
        return await self._put_in_place(manifest, listing, new, adopt_holder=False)

    async def _put_back(self, manifest: Manifest, old: Item, new: Item) -> None:
        try:
            await self.client.item_rename(old.id, manifest.name)
        except APIError as exc:
            log.error(
                "could not rename file %s back from %r to %r in folder %s (%s): the old content is file %s "
                "named %r and the new content file %s named %r; the replace is retried",
                old.id, manifest.aside_name, manifest.name, manifest.folder_id, exc,
                old.id, manifest.aside_name, new.id, new.name,
            )

    async def replace(self, folder_id: str, source_id: str, target_id: str, name: str) -> None:
        """Put file ``source_id`` in place of file ``target_id`` as ``name`` in ``folder_id``.

        Both files must already be in ``folder_id``.  The target is renamed
        aside, the source renamed to ``name``, then the target deleted.  If
        the source cannot be renamed, the target gets its name back and the
        error is raised.  If only the delete fails, the target stays under
        its temporary name and is deleted later.
        """
        aside = new_temporary_name("old")
        await self.client.item_rename(target_id, aside)
        try:
            await self.client.item_rename(source_id, name)
        except APIError:
            try:
                await self.client.item_rename(target_id, name)
            except APIError as restore_exc:
                log.error(
                    "could not rename file %s back from %r to %r in folder %s (%s)",
                    target_id, aside, name, folder_id, restore_exc,
                )
            raise
        await self.delete(folder_id, target_id, aside)

    async def delete(self, folder_id: str, file_id: str, name: str) -> None:
        """Delete a file the writer no longer needs; on failure remember it for a later attempt."""
        try:
            await self.client.item_delete(file_id)
        except NotFound:
            pass
        except APIError as exc:
            log.warning("could not delete file %s (%r) in folder %s: %s; trying again later", file_id, name, folder_id, exc)
            self._on_leftover(folder_id, file_id, name)


def _find(listing: FolderListing, file_id: str | None) -> Item | None:
    if file_id is None:
        return None
    for item in listing.content:
        if item.id == file_id and not item.is_folder:
            return item
    return None
