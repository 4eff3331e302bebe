"""The writer: opening staged files, uploads on flush, background retries and recovery.

Every change, fetch and upload of a staged file takes the file's
``trio.Lock``, so an upload always sends one consistent version.  A write
that arrives during an upload waits for the upload to end.
"""

from __future__ import annotations

import errno
import functools
import logging
import time
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import trio

from pmzfs.api.errors import APIError, InvalidRequest, NotFound, errno_for
from pmzfs.api.models import Item
from pmzfs.writer.journal import (
    CLEANUP,
    FAILED,
    PENDING_STATES,
    READY,
    UPLOADED,
    WRITING,
    Journal,
    Manifest,
    new_temporary_name,
)
from pmzfs.writer.files import RetryPolicy, StagedFile, UploadDone, WriteError, WriteHandle, WriterListener
from pmzfs.writer.staging import FetchError, StagedData, fetch_into
from pmzfs.writer.status import StagedUpload, WriterStatus, describe_manifest
from pmzfs.writer.upload import MiB, Uploader

if TYPE_CHECKING:
    from pmzfs.api.client import PremiumizeClient
    from pmzfs.mtimes import MtimeStore

log = logging.getLogger(__name__)


class Writer:
    """Stages written files in ``staging_dir`` and uploads them through ``client``.

    Use as ``async with``.  Entering locks the staging directory, loads the
    journal, moves unflushed data aside and starts a background task that
    resumes every pending upload.  Leaving stops that task, and the next
    ``Writer`` on the directory resumes whatever is still pending.
    """

    def __init__(
        self,
        client: PremiumizeClient,
        staging_dir: Path,
        *,
        http: httpx.AsyncClient | None = None,
        listener: WriterListener | None = None,
        mtimes: MtimeStore | None = None,
        account_id: str = "",
        retry: RetryPolicy = RetryPolicy(),
        progress_step_percent: int = 10,
        progress_interval: float = 30.0,
        progress_min_size: int = 64 * MiB,
    ) -> None:
        self.client = client
        self.journal = Journal(Path(staging_dir))
        self.listener = listener
        self.mtimes = mtimes
        self.account_id = account_id
        self.retry = retry
        self._progress_min_size = progress_min_size
        self._http = http
        self._own_http = http is None
        self._uploader = Uploader(
            client,
            save=self._save_durable,
            on_leftover=self._add_leftover,
            progress_step_percent=progress_step_percent,
            progress_interval=progress_interval,
            progress_min_size=progress_min_size,
        )
        self._staged: dict[str, StagedFile] = {}
        self._by_file: dict[str, StagedFile] = {}
        self._new: dict[tuple[str, str], StagedFile] = {}
        self._leftovers: dict[str, _Leftover] = {}
        self._wakeup = trio.Event()
        self._nursery: trio.Nursery | None = None

    # ------------------------------------------------------------------
    # lifetime

    async def __aenter__(self) -> Writer:
        self.journal.lock()
        try:
            if self._http is None:
                self._http = httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=15.0), follow_redirects=True)
            self._recover()
            self._nursery_manager = trio.open_nursery()
            nursery = await self._nursery_manager.__aenter__()
        except BaseException:
            await self._close()
            raise
        self._nursery = nursery
        nursery.start_soon(self._retry_loop)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        # The body's exception is not passed into the nursery, so it reaches
        # the caller as it is instead of inside an exception group.
        try:
            if self._nursery is not None:
                self._nursery.cancel_scope.cancel()
                await self._nursery_manager.__aexit__(None, None, None)
        finally:
            self._nursery = None
            self._log_pending_at_exit()
            await self._close()

    async def _close(self) -> None:
        self._close_files()
        if self._own_http and self._http is not None:
            await self._http.aclose()
            self._http = None
        self.journal.unlock()

    def _close_files(self) -> None:
        for staged in self._staged.values():
            staged.data.close()

    def _log_pending_at_exit(self) -> None:
        pending = [s for s in self._staged.values() if s.pending]
        if pending:
            log.warning(
                "stopping with %d uploads still pending in %s; the next mount with this cache directory resumes them",
                len(pending), self.journal.directory,
            )

    # ------------------------------------------------------------------
    # opening files

    async def create(self, folder_id: str, name: str) -> WriteHandle:
        """Stage a new empty file ``name`` in ``folder_id``; its first flush uploads it, even when empty.

        A staged new file of that name that is not uploaded yet is reused
        and truncated, as ``open(O_CREAT | O_TRUNC)`` does.
        """
        existing = self._new.get((folder_id, name))
        if existing is not None:
            return await self.open_staged(existing, truncate=True)
        manifest = Manifest.new(folder_id, name, account_id=self.account_id)
        manifest.modified = True
        staged = self._add(manifest, size=0, source=None)
        staged.generation = 1
        staged.mtime_ns = time.time_ns()
        return self._handle(staged)

    async def open(self, folder_id: str, item: Item, *, truncate: bool = False) -> WriteHandle:
        """Open the existing file ``item`` of ``folder_id`` for writing (copy-on-write).

        The content is fetched into staging on the first read, write or
        truncate, so an open that changes nothing downloads nothing.  With
        ``truncate`` (``O_TRUNC``) nothing is fetched at all.  A staged
        version of the file that is open or waiting for its upload is
        reused, because it is newer than the service copy.
        """
        staged = self._by_file.get(item.id)
        if staged is None:
            manifest = Manifest.new(folder_id, item.name, account_id=self.account_id, replaces_id=item.id)
            staged = self._add(manifest, size=item.size, source=item)
        return await self.open_staged(staged, truncate=truncate)

    async def open_staged(self, staged: StagedFile, *, truncate: bool = False) -> WriteHandle:
        """Open another handle on a staged file, such as a new file that is not uploaded yet."""
        if staged.discarded:
            raise WriteError(errno.ENOENT, f"{staged.name!r} was deleted")
        if staged.dropped:
            if staged.item is None:
                raise WriteError(errno.ENOENT, f"{staged.name!r} is no longer staged")
            # Its upload finished meanwhile: open the uploaded file instead.
            return await self.open(staged.folder_id, staged.item, truncate=truncate)
        handle = self._handle(staged)
        if truncate:
            try:
                await handle.truncate(0)
            except BaseException:
                await handle.release()
                raise
        return handle

    def _handle(self, staged: StagedFile) -> WriteHandle:
        staged.handles += 1
        return WriteHandle(self, staged)

    def _add(self, manifest: Manifest, *, size: int, source: Item | None) -> StagedFile:
        data = StagedData(self.journal.data_path(manifest.staging_id))
        staged = StagedFile(manifest, data, size=size, source=source)
        try:
            data.truncate(0)
            self.journal.save(manifest, durable=False)
        except OSError as exc:
            data.remove()
            raise _disk_error(exc, f"staging {manifest.name!r}") from exc
        self._staged[manifest.staging_id] = staged
        self._index(staged)
        return staged

    # ------------------------------------------------------------------
    # lookups for the filesystem layer

    def find(self, file_id: str) -> StagedFile | None:
        """Return the staged version of service file ``file_id``, or None."""
        return self._by_file.get(file_id)

    def find_new(self, folder_id: str, name: str) -> StagedFile | None:
        """Return the staged file ``name`` in ``folder_id`` that is not on the service yet, or None."""
        return self._new.get((folder_id, name))

    def new_files(self, folder_id: str) -> list[StagedFile]:
        """Return the staged files of ``folder_id`` that are not on the service yet, for listings."""
        return [staged for (folder, _), staged in self._new.items() if folder == folder_id]

    def _index(self, staged: StagedFile) -> None:
        self._unindex(staged)
        if not staged.tracked:
            return
        if staged.file_id is not None:
            self._by_file[staged.file_id] = staged
            staged.index_keys = [staged.file_id]
        else:
            key = (staged.folder_id, staged.name)
            self._new[key] = staged
            staged.index_keys = [key]

    def _unindex(self, staged: StagedFile) -> None:
        for key in staged.index_keys:
            if isinstance(key, tuple):
                if self._new.get(key) is staged:
                    del self._new[key]
            elif self._by_file.get(key) is staged:
                del self._by_file[key]
        staged.index_keys = []

    def _drop(self, staged: StagedFile) -> None:
        """Forget a staged file and delete its local copy and manifest."""
        staged.dropped = True
        self._unindex(staged)
        self._staged.pop(staged.staging_id, None)
        staged.data.remove()
        self.journal.remove(staged.staging_id)
        staged.next_retry = None

    # ------------------------------------------------------------------
    # handle operations

    async def _read(self, staged: StagedFile, offset: int, length: int) -> bytes:
        if not staged.materialized:
            async with staged.lock:
                await self._materialize(staged)
        try:
            return staged.data.read(offset, length)
        except OSError as exc:
            raise _disk_error(exc, f"reading the staged copy of {staged.name!r}") from exc

    async def _write(self, staged: StagedFile, offset: int, data: bytes) -> int:
        async with staged.lock:
            await self._materialize(staged)
            try:
                written = staged.data.write(offset, data)
            except OSError as exc:
                raise _disk_error(exc, f"writing the staged copy of {staged.name!r}") from exc
            staged._size = max(staged._size, offset + written)
            self._changed(staged)
            return written

    async def _truncate(self, staged: StagedFile, size: int) -> None:
        if size < 0:
            raise WriteError(errno.EINVAL, f"invalid size {size} for {staged.name!r}")
        async with staged.lock:
            old_size = staged.size
            # Only the bytes that remain are fetched.
            await self._materialize(staged, limit=size)
            try:
                staged.data.truncate(size)
            except OSError as exc:
                raise _disk_error(exc, f"truncating the staged copy of {staged.name!r}") from exc
            staged._size = size
            if size != old_size:
                self._changed(staged)

    async def _set_mtime(self, staged: StagedFile, mtime_ns: int) -> None:
        async with staged.lock:
            staged.mtime_ns = mtime_ns
            staged.mtime_explicit = True
            if not staged.tracked:
                return
            if not staged.dirty and not staged.pending and staged.file_id is not None:
                if self.mtimes is not None:
                    self.mtimes.set(staged.file_id, staged.size, mtime_ns)
                return
            staged.manifest.mtime_ns = mtime_ns
            self._save_quietly(staged.manifest)

    def _changed(self, staged: StagedFile) -> None:
        staged.generation += 1
        staged.mtime_ns = time.time_ns()
        staged.mtime_explicit = False
        # An unlinked file has no manifest any more and must not get one back.
        if not staged.manifest.modified and staged.tracked:
            staged.manifest.modified = True
            self._save_quietly(staged.manifest)

    async def _materialize(self, staged: StagedFile, *, limit: int | None = None) -> None:
        """Fetch the service copy into staging (called with the lock held)."""
        if staged.materialized:
            return
        source = staged.source
        assert source is not None
        length = source.size if limit is None else min(limit, source.size)

        async def refresh_link() -> str:
            details = await self.client.item_details(source.id)
            if not details.link:
                raise FetchError(f"item/details returned no link for file {source.id}")
            return details.link

        large = length >= self._progress_min_size
        if large:
            log.info("fetching %.1f MiB of %r (file %s) into staging to change it", length / MiB, source.name, source.id)
        try:
            link = source.link or await refresh_link()
            await fetch_into(staged.data, self._http, link, length, refresh_link, file_id=source.id)
        except (FetchError, APIError) as exc:
            log.warning("could not fetch file %s (%r) into staging to change it: %s", source.id, source.name, exc)
            raise WriteError(errno_for(exc), f"fetching {source.name!r} failed: {exc}") from exc
        except OSError as exc:
            raise _disk_error(exc, f"fetching {source.name!r} into staging") from exc
        staged.materialized = True
        staged._size = length
        if large:
            log.info("fetched %r (file %s) into staging", source.name, source.id)

    async def _flush(self, staged: StagedFile) -> Item | None:
        async with staged.lock:
            if staged.discarded:
                return None
            if staged.generation == staged.attempted_generation:
                # Nothing changed since the last attempt: report its result again.
                if staged.pending:
                    raise WriteError(
                        staged.last_errno,
                        f"the upload of {staged.name!r} is still pending: {staged.manifest.last_error}",
                    )
                return staged.item
            return await self._upload_locked(staged)

    async def _release(self, staged: StagedFile) -> None:
        async with staged.lock:
            staged.handles -= 1
            if staged.handles > 0:
                return
            if staged.discarded or not (staged.dirty or staged.pending):
                self._drop(staged)
                return
            staged.data.close()
            if staged.dirty and staged.generation != staged.attempted_generation:
                # Changed after its last flush (through a memory map, say):
                # upload it in the background.
                self._schedule(staged, 0.0)

    # ------------------------------------------------------------------
    # namespace changes

    async def rename(self, staged: StagedFile, folder_id: str, name: str, *, replaces: Item | None = None) -> None:
        """Move a staged file to ``name`` in ``folder_id``, over the file ``replaces`` if one is there.

        The service copy of the staged file, if it has one, moves too:
        ``folder/paste`` and ``item/rename``, or the replace procedure when
        ``replaces`` is given.  A new file that is not on the service yet
        only changes its target, and its upload will replace ``replaces``.
        A staged version of ``replaces`` is discarded first, as a rename over
        it deletes it, but its service copy stays until the replace procedure
        has moved the source into place.  A staged new file at the target
        name is deleted.
        """
        target = self.find(replaces.id) if replaces is not None else self.find_new(folder_id, name)
        if target is not None and target is not staged:
            if replaces is None:
                await self.unlink(target)
            else:
                await self.discard(target)
        async with staged.lock:
            manifest = staged.manifest
            try:
                await self._settle_for_move(staged)
                if manifest.replaces_id is not None:
                    await self._move_service_copy(staged, folder_id, name, replaces)
                elif replaces is not None:
                    manifest.replaces_id = replaces.id
            except APIError as exc:
                raise WriteError(errno_for(exc), f"renaming {staged.name!r} failed: {exc}") from exc
            manifest.folder_id = folder_id
            manifest.name = name
            if staged.tracked:
                await self._save_for_state(manifest)
                self._index(staged)

    async def _settle_for_move(self, staged: StagedFile) -> None:
        """Finish or drop a half-done upload, whose temporary files sit in the old folder."""
        manifest = staged.manifest
        if manifest.state == UPLOADED:
            await self._upload_locked(staged)
        elif manifest.state in (READY, FAILED) and manifest.attempts > 0:
            await self._drop_attempts(manifest)

    async def _move_service_copy(self, staged: StagedFile, folder_id: str, name: str, replaces: Item | None) -> None:
        file_id = staged.manifest.replaces_id
        assert file_id is not None
        if folder_id != staged.folder_id:
            await self.client.folder_paste(folder_id, files=[file_id])
        if replaces is not None:
            await self._uploader.replace(folder_id, file_id, replaces.id, name)
            if self.mtimes is not None:
                self.mtimes.forget(replaces.id)
        elif name != staged.name:
            await self.client.item_rename(file_id, name)

    async def unlink(self, staged: StagedFile) -> None:
        """Delete a staged file and its service copy; open handles keep working but never upload."""
        async with staged.lock:
            manifest = staged.manifest
            if manifest.replaces_id is not None:
                try:
                    await self.client.item_delete(manifest.replaces_id)
                except NotFound:
                    pass
                except APIError as exc:
                    raise WriteError(errno_for(exc), f"deleting {staged.name!r} failed: {exc}") from exc
                if self.mtimes is not None:
                    self.mtimes.forget(manifest.replaces_id)
            await self._discard_locked(staged)

    async def discard(self, staged: StagedFile) -> None:
        """Drop a staged version and its partial uploads, keeping the service copy it would replace.

        Open handles keep working but never upload.
        """
        async with staged.lock:
            await self._discard_locked(staged)

    async def _discard_locked(self, staged: StagedFile) -> None:
        manifest = staged.manifest
        staged.discarded = True
        if manifest.state == UPLOADED and manifest.uploaded_id is not None:
            await self._uploader.delete(manifest.folder_id, manifest.uploaded_id, manifest.upload_name or "")
        elif manifest.state in (READY, FAILED) and manifest.attempts > 0:
            try:
                await self._drop_attempts(manifest)
            except APIError as exc:
                log.warning(
                    "could not check folder %s for partial uploads of deleted %r: %s",
                    manifest.folder_id, manifest.name, exc,
                )
        self._unindex(staged)
        staged.next_retry = None
        if staged.handles == 0:
            self._drop(staged)
        else:
            self.journal.remove(staged.staging_id, data=False)

    async def replace(self, folder_id: str, source_id: str, target_id: str, name: str) -> None:
        """Put service file ``source_id`` in place of ``target_id`` as ``name`` (a rename over a file).

        Both files must be in ``folder_id``.  The target is renamed aside,
        the source renamed into place, then the target deleted.  When the
        source cannot be renamed, the target gets its name back.  Works
        whether or not the service allows two files with one name.  Raises
        ``WriteError`` with the errno of the failure.
        """
        try:
            await self._uploader.replace(folder_id, source_id, target_id, name)
        except APIError as exc:
            raise WriteError(errno_for(exc), f"replacing {name!r} failed: {exc}") from exc
        if self.mtimes is not None:
            self.mtimes.forget(target_id)

    async def set_mtime(self, staged: StagedFile, mtime_ns: int) -> None:
        """Set the modification time of a staged file that may have no open handle.

        A file with nothing left to upload stores it in the mtime store at
        once; otherwise it is stored with the next upload's file id.
        """
        await self._set_mtime(staged, mtime_ns)

    async def truncate(self, folder_id: str, item: Item, size: int) -> Item | None:
        """Truncate the service file ``item`` to ``size`` bytes (``truncate(2)`` without an open file).

        Fetches only the bytes that remain, uploads the result and returns
        the new file; raises ``WriteError`` like ``WriteHandle.flush``.
        """
        handle = await self.open(folder_id, item)
        try:
            await handle.truncate(size)
            return await handle.flush()
        finally:
            await handle.release()

    # ------------------------------------------------------------------
    # uploads

    async def _upload_locked(self, staged: StagedFile) -> Item:
        """Upload the staged content and put it in place (called with the lock held)."""
        manifest = staged.manifest
        generation = staged.generation
        previous_attempt = staged.attempted_generation
        staged.attempted_generation = generation
        started = trio.current_time()
        check_first = False
        try:
            if staged.ready_generation == generation and manifest.state in PENDING_STATES:
                # The journal contains this version already: resume its upload.
                check_first = manifest.state != UPLOADED
                if manifest.state == FAILED:
                    manifest.state = READY
            else:
                await self._mark_ready(staged)
            item = await self._uploader.run(manifest, staged.path, check_first=check_first)
        except APIError as exc:
            permanent = isinstance(exc, InvalidRequest) or (
                isinstance(exc, NotFound) and await self._folder_missing(manifest.folder_id)
            )
            self._upload_failed(staged, exc, permanent=permanent)
            raise WriteError(staged.last_errno, f"uploading {staged.name!r} failed: {exc}") from exc
        except OSError as exc:
            self._upload_failed(staged, exc)
            raise _disk_error(exc, f"uploading {staged.name!r}") from exc
        except BaseException:
            # Cancelled: the journal keeps the upload's state.  The next flush
            # tries again, and so does the background task.
            staged.attempted_generation = previous_attempt
            if staged.tracked and staged.pending:
                self._schedule(staged, self.retry.delay(1))
            raise
        self._upload_succeeded(staged, generation, item, trio.current_time() - started)
        return item

    async def _mark_ready(self, staged: StagedFile) -> None:
        """Make the current content durable and record it as READY with fresh temporary names."""
        manifest = staged.manifest
        if manifest.state == UPLOADED and manifest.uploaded_id is not None:
            # An older version landed but is not in place: it will never be.
            await self._uploader.delete(manifest.folder_id, manifest.uploaded_id, manifest.upload_name or "")
        elif manifest.state in (READY, FAILED) and manifest.attempts > 0:
            await self._drop_attempts(manifest)
        await trio.to_thread.run_sync(staged.data.sync)
        manifest.state = READY
        manifest.size = staged.size
        manifest.modified = True
        manifest.upload_name = new_temporary_name("new")
        if manifest.replaces_id is None:
            manifest.aside_name = None
        elif manifest.aside_name is None:
            # An old file set aside by an earlier attempt keeps its name, so
            # the replace still recognises it.
            manifest.aside_name = new_temporary_name("old")
        manifest.uploaded_id = None
        manifest.attempts = 0
        manifest.last_error = None
        manifest.mtime_ns = staged.mtime_ns if staged.mtime_explicit else None
        await self._save_durable(manifest)
        staged.ready_generation = staged.generation

    async def _drop_attempts(self, manifest: Manifest) -> None:
        """Delete every file that earlier failed attempts left under the manifest's upload name."""
        listing = await self.client.folder_list(manifest.folder_id)
        for item in listing.content:
            if not item.is_folder and item.name == manifest.upload_name:
                await self._uploader.delete(manifest.folder_id, item.id, item.name)

    async def _folder_missing(self, folder_id: str) -> bool:
        try:
            await self.client.folder_list(folder_id)
        except NotFound:
            return True
        except APIError:
            return False
        return False

    def _upload_failed(self, staged: StagedFile, exc: Exception, *, permanent: bool = False) -> None:
        manifest = staged.manifest
        manifest.attempts += 1
        manifest.last_error = _describe(exc)
        staged.last_errno = errno_for(exc, writing=True) if isinstance(exc, APIError) else (exc.errno or errno.EIO)
        if permanent:
            manifest.state = FAILED
            staged.next_retry = None
            log.error(
                "giving up the upload of %r to folder %s (%s): the data stays staged at %s and the next mount tries once more",
                manifest.name, manifest.folder_id, manifest.last_error, staged.path,
            )
        else:
            delay = self.retry.delay(manifest.attempts)
            log.warning(
                "upload of %r to folder %s failed (%s), attempt %d; the data stays staged at %s and is retried in %.0f s",
                manifest.name, manifest.folder_id, manifest.last_error, manifest.attempts, staged.path, delay,
            )
            self._schedule(staged, delay)
        self._save_quietly(manifest)

    def _upload_succeeded(self, staged: StagedFile, generation: int, item: Item, seconds: float) -> None:
        manifest = staged.manifest
        replaced_id = manifest.replaces_id
        log.info(
            "uploaded %r (%d bytes) to folder %s as file %s in %.1f s",
            manifest.name, item.size, manifest.folder_id, item.id, seconds,
        )
        if self.mtimes is not None:
            if replaced_id is not None and replaced_id != item.id:
                self.mtimes.forget(replaced_id)
            if manifest.mtime_ns is not None:
                self.mtimes.set(item.id, item.size, manifest.mtime_ns)

        # The uploaded file is now the one the next upload replaces.
        staged.uploaded_generation = generation
        staged.item = item
        staged.next_retry = None
        manifest.replaces_id = item.id
        manifest.state = WRITING
        manifest.modified = staged.dirty
        manifest.upload_name = manifest.aside_name = manifest.uploaded_id = None
        manifest.attempts = 0
        manifest.last_error = None
        manifest.mtime_ns = None
        self._index(staged)
        if staged.handles == 0 and not staged.dirty:
            self._drop(staged)
        else:
            self._save_quietly(manifest)

        self._notify(UploadDone(staged.staging_id, manifest.folder_id, item, replaced_id))

    def _notify(self, done: UploadDone) -> None:
        if self.listener is None:
            return
        try:
            self.listener.upload_done(done)
        except Exception:
            log.exception(
                "the listener failed to take the upload of %r (file %s in folder %s)",
                done.item.name, done.item.id, done.folder_id,
            )

    async def upload_pending(self) -> WriterStatus:
        """Try every pending upload and leftover delete once, now; return the status afterwards.

        For an unmount that waits for pending uploads, and for tests.
        """
        for staged in list(self._staged.values()):
            if staged.pending or (staged.dirty and staged.handles == 0):
                await self._retry_upload(staged)
        for leftover in list(self._leftovers.values()):
            await self._retry_leftover(leftover)
        return self.status()

    # ------------------------------------------------------------------
    # background retries

    def _schedule(self, staged: StagedFile, delay: float) -> None:
        staged.next_retry = trio.current_time() + delay
        self._wakeup.set()

    async def _retry_loop(self) -> None:
        while True:
            now = trio.current_time()
            for staged in list(self._staged.values()):
                if staged.next_retry is not None and staged.next_retry <= now:
                    await self._guarded(self._retry_upload(staged), staged.manifest)
            for leftover in list(self._leftovers.values()):
                if leftover.next_retry <= now:
                    await self._guarded(self._retry_leftover(leftover), leftover.manifest)
            due_times = [s.next_retry for s in self._staged.values() if s.next_retry is not None]
            due_times += [leftover.next_retry for leftover in self._leftovers.values()]
            with trio.move_on_at(min(due_times, default=float("inf"))):
                await self._wakeup.wait()
            self._wakeup = trio.Event()

    async def _guarded(self, retry: Awaitable[None], manifest: Manifest) -> None:
        """Await one background retry; a bug in it must not stop the retries of other files."""
        try:
            await retry
        except Exception:
            log.exception(
                "background retry of %r for folder %s failed unexpectedly; its staging id is %s",
                manifest.name, manifest.folder_id, manifest.staging_id,
            )

    async def _retry_upload(self, staged: StagedFile) -> None:
        async with staged.lock:
            staged.next_retry = None
            if not staged.tracked or staged.manifest.state == FAILED:
                return
            if not (staged.pending or staged.dirty):
                return
            log.info(
                "retrying the upload of %r to folder %s staged at %s (attempt %d)",
                staged.name, staged.folder_id, staged.path, staged.manifest.attempts + 1,
            )
            try:
                await self._upload_locked(staged)
            except WriteError:
                pass  # logged and rescheduled by _upload_failed
            finally:
                if staged.handles == 0:
                    staged.data.close()

    def _add_leftover(self, folder_id: str, file_id: str, name: str) -> None:
        manifest = Manifest.new(folder_id, name, account_id=self.account_id, replaces_id=file_id)
        manifest.state = CLEANUP
        self._save_quietly(manifest)
        self._leftovers[manifest.staging_id] = _Leftover(manifest, trio.current_time() + self.retry.delay(1))
        self._wakeup.set()

    async def _retry_leftover(self, leftover: _Leftover) -> None:
        manifest = leftover.manifest
        try:
            await self.client.item_delete(manifest.replaces_id)
        except NotFound:
            pass
        except APIError as exc:
            manifest.attempts += 1
            manifest.last_error = _describe(exc)
            leftover.next_retry = trio.current_time() + self.retry.delay(manifest.attempts)
            log.warning(
                "could not delete leftover file %s (%r) in folder %s: %s; trying again later",
                manifest.replaces_id, manifest.name, manifest.folder_id, exc,
            )
            return
        self._leftovers.pop(manifest.staging_id, None)
        self.journal.remove(manifest.staging_id)

    # ------------------------------------------------------------------
    # recovery

    def _recover(self) -> None:
        """Load the journal: resume pending uploads, move unflushed data aside."""
        manifests, orphans = self.journal.load_all()
        for orphan in orphans:
            moved_to = self.journal.set_aside(orphan, "no-manifest")
            log.warning("staged data %s has no manifest, so its target is unknown; moved it to %s", orphan.name, moved_to)
        other_accounts = 0
        for manifest in manifests:
            if self.account_id and manifest.account_id and manifest.account_id != self.account_id:
                other_accounts += 1
            elif manifest.state == CLEANUP:
                self._leftovers[manifest.staging_id] = _Leftover(manifest, trio.current_time())
            elif manifest.state == WRITING:
                self._recover_unflushed(manifest)
            else:
                self._recover_pending(manifest)
        if other_accounts:
            log.warning(
                "%d staged uploads in %s belong to another account; mount that account with this cache directory to upload them",
                other_accounts, self.journal.directory,
            )

    def _recover_unflushed(self, manifest: Manifest) -> None:
        data_path = self.journal.data_path(manifest.staging_id)
        if manifest.modified and data_path.exists():
            moved_to = self.journal.set_aside(data_path, manifest.name)
            log.warning(
                "%r in folder %s was changed but never closed or flushed before pmzfs stopped; "
                "it is not uploaded and its data is kept at %s",
                manifest.name, manifest.folder_id, moved_to,
            )
        self.journal.remove(manifest.staging_id)

    def _recover_pending(self, manifest: Manifest) -> None:
        data = StagedData(self.journal.data_path(manifest.staging_id))
        if manifest.state != UPLOADED and not data.path.exists():
            log.error(
                "the staged data of %r for folder %s is missing at %s; this upload cannot be finished",
                manifest.name, manifest.folder_id, data.path,
            )
            self.journal.remove(manifest.staging_id)
            return
        size = data.path.stat().st_size if data.path.exists() else manifest.size
        staged = StagedFile(manifest, data, size=size, source=None)
        # Version 1 is the journaled content, which is not uploaded yet.
        staged.generation = staged.ready_generation = 1
        if manifest.state == FAILED:
            manifest.state = READY
        self._staged[manifest.staging_id] = staged
        self._index(staged)
        log.info(
            "resuming the upload of %r (%d bytes) to folder %s staged at %s",
            manifest.name, size, manifest.folder_id, data.path,
        )
        self._schedule(staged, 0.0)

    # ------------------------------------------------------------------
    # status and journal helpers

    def status(self) -> WriterStatus:
        """Return pending and failed uploads and the bytes staged on local disk."""
        entries: list[StagedUpload] = []
        staged_bytes = 0
        for staged in self._staged.values():
            if staged.materialized:
                staged_bytes += staged.size
            if staged.pending:
                entries.append(describe_manifest(staged.manifest, staged.path, staged.size))
        return WriterStatus.from_entries(entries, staged_bytes)

    def bytes_sent(self, staging_id: str) -> int:
        """Return how many bytes the running upload of a staged file has sent, 0 when none runs."""
        return self._uploader.bytes_sent.get(staging_id, 0)

    def staged_files(self) -> Iterator[StagedFile]:
        """Iterate over every staged file, open or pending."""
        return iter(list(self._staged.values()))

    async def _save_durable(self, manifest: Manifest) -> None:
        await trio.to_thread.run_sync(functools.partial(self.journal.save, manifest, durable=True))

    async def _save_for_state(self, manifest: Manifest) -> None:
        if manifest.state in PENDING_STATES:
            await self._save_durable(manifest)
        else:
            self._save_quietly(manifest)

    def _save_quietly(self, manifest: Manifest) -> None:
        """Save a manifest without fsync; it only carries facts a crash may lose."""
        try:
            self.journal.save(manifest, durable=False)
        except OSError as exc:
            log.warning("could not save the staging manifest of %r: %s", manifest.name, exc)


@dataclass
class _Leftover:
    manifest: Manifest
    next_retry: float


def _disk_error(exc: OSError, action: str) -> WriteError:
    reason = exc.strerror or str(exc)
    log.warning("%s failed on the local disk: %s", action, reason)
    return WriteError(exc.errno or errno.EIO, f"{action} failed: {reason}")


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
