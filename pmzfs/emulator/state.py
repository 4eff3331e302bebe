"""The emulator's account state: folders, files and their contents on disk.

Metadata lives in memory and is saved as ``state.json`` in the state
directory (written to a temporary file, then renamed over the old one).
File contents live in ``blobs/`` under a name derived from the content
(its SHA-256), so files with equal content share one blob and seeding
thousands of small files writes few.  Blob names and ids come from the
store itself, never from a user-supplied name, so no name can reach a path
outside the state directory.

Saves are batched: a change marks the store dirty and a background thread
saves it at most every ``SAVE_INTERVAL`` seconds, and ``close`` saves the
rest.  A clean stop therefore loses nothing.  A killed process can lose the
changes of its last ``SAVE_INTERVAL`` seconds.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import secrets
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

from pmzfs.emulator.content import mime_type_for, write_generated
from pmzfs.emulator.errors import ServiceError, invalid_request, not_found

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
STATE_VERSION = 1
SAVE_INTERVAL = 0.2
MAX_NAME_LENGTH = 255
ROOT_NAME = "My Files"

Content = bytes | Path | tuple[int, int | str]
"""File content for ``add_file``: the bytes, a file to copy, or ``(size, seed)``."""


def new_id() -> str:
    """Return a fresh opaque id: url-safe base64 of 16 random bytes, like ``6Z2-C4dOqF8Uabvacs5ATA``."""
    return base64.urlsafe_b64encode(secrets.token_bytes(16)).rstrip(b"=").decode("ascii")


@dataclass
class Folder:
    id: str
    name: str
    parent_id: str | None
    created_at: int


@dataclass
class File:
    id: str
    name: str
    folder_id: str
    size: int
    created_at: int
    # Name of the content in blobs/: "sha256-<hex>" of the bytes, or
    # "gen-<hex>" of the seed and size of generated content.
    blob: str

    @property
    def mime_type(self) -> str:
        return mime_type_for(self.name)


def validate_name(name: Any) -> str:
    """Return ``name`` if it is a valid entry name, else raise invalid_request.

    A name is 1 to 255 characters of any kind except NUL; it may contain
    ``/``, backslashes, quotes, newlines and leading or trailing spaces.
    """
    if not isinstance(name, str) or name == "":
        raise invalid_request("name is missing or empty; send a name of 1 to 255 characters")
    if len(name) > MAX_NAME_LENGTH:
        raise invalid_request(f"name is {len(name)} characters long; the maximum is {MAX_NAME_LENGTH}")
    if "\x00" in name:
        raise invalid_request("name contains a NUL character, which names may not contain")
    return name


class StateStore:
    """Folders and files of one emulated account.

    Every public method is thread-safe.  Methods that change the tree raise
    ``ServiceError`` with the code the API returns (``not_found``,
    ``invalid_request``), so the HTTP layer and in-process seeding share
    one set of rules.
    """

    def __init__(self, directory: Path, *, name_rules: Callable[[], tuple[bool, bool]] | None = None) -> None:
        """Open or create the state in ``directory``.

        ``name_rules`` returns ``(duplicate_names, case_sensitive_names)`` of
        the live options; without it duplicates are allowed.
        """
        self.directory = Path(directory)
        self.blob_dir = self.directory / "blobs"
        self.tmp_dir = self.directory / "tmp"
        self.lock = threading.RLock()
        self._name_rules = name_rules or (lambda: (True, True))
        self._folders: dict[str, Folder] = {}
        self._files: dict[str, File] = {}
        # Child ids of each folder in insertion order (a dict used as an ordered set).
        self._children: dict[str, dict[str, None]] = {}
        # Ids of each folder's entries by exact name and count by case-folded name.
        self._by_name: dict[str, dict[str, list[str]]] = {}
        self._by_folded: dict[str, Counter[str]] = {}
        self._space_used = 0
        # Number of files that share each blob.
        self._blob_refs: Counter[str] = Counter()
        # Other components keep JSON-serializable records here (transfers,
        # OAuth tokens, flags) and call mark_dirty after a change.
        self.extra: dict[str, Any] = {}
        self.created_at = int(time.time())
        self.secret = secrets.token_hex(16)
        self._dirty = False
        self._save_lock = threading.Lock()
        self._stop_saver = threading.Event()
        self._saver: threading.Thread | None = None

        self.blob_dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.tmp_dir, ignore_errors=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        if (self.directory / STATE_FILE).exists():
            self._load()
        else:
            self.root_id = new_id()
            self._insert_folder(Folder(self.root_id, ROOT_NAME, None, self.created_at))
            self.save()
        self._remove_orphan_blobs()

    # ------------------------------------------------------------------ persistence

    def start_saver(self) -> None:
        """Start the background thread that saves changes."""
        if self._saver is None:
            self._stop_saver.clear()
            self._saver = threading.Thread(target=self._save_loop, name="emulator-state-saver", daemon=True)
            self._saver.start()

    def close(self) -> None:
        """Stop the background saver and save every pending change."""
        self._stop_saver.set()
        if self._saver is not None:
            self._saver.join()
            self._saver = None
        self.save()

    def mark_dirty(self) -> None:
        with self.lock:
            self._dirty = True

    def _save_loop(self) -> None:
        while not self._stop_saver.wait(SAVE_INTERVAL):
            if self._dirty:
                try:
                    self.save()
                except OSError:
                    log.exception("saving emulator state to %s failed", self.directory)

    def save(self) -> None:
        """Write the state to ``state.json`` atomically."""
        with self._save_lock:
            with self.lock:
                document = {
                    "version": STATE_VERSION,
                    "root_id": self.root_id,
                    "created_at": self.created_at,
                    "secret": self.secret,
                    "folders": [asdict(folder) for folder in self._folders.values()],
                    "files": [asdict(file) for file in self._files.values()],
                    "children": {folder_id: list(ids) for folder_id, ids in self._children.items()},
                    "extra": self.extra,
                }
                text = json.dumps(document, ensure_ascii=False)
                self._dirty = False
            target = self.directory / STATE_FILE
            temporary = self.tmp_dir / f"{STATE_FILE}.{new_id()}"
            # No fsync: the rename keeps the file whole after a crash of
            # the process, and the emulator need not survive a power loss.
            with open(temporary, "w", encoding="utf-8") as out:
                out.write(text)
            os.replace(temporary, target)

    def _load(self) -> None:
        path = self.directory / STATE_FILE
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            if document.get("version") != STATE_VERSION:
                raise ValueError(f"unsupported state version {document.get('version')!r}")
            self.root_id = document["root_id"]
            self.created_at = int(document["created_at"])
            self.secret = document["secret"]
            folders = [Folder(**record) for record in document["folders"]]
            files = [File(**record) for record in document["files"]]
            children: dict[str, list[str]] = document["children"]
            self.extra = document.get("extra") or {}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"cannot read emulator state {path}: {exc}; remove the directory to start afresh") from exc
        for folder in folders:
            self._folders[folder.id] = folder
            self._children[folder.id] = {}
            self._by_name[folder.id] = {}
            self._by_folded[folder.id] = Counter()
        for file in files:
            self._files[file.id] = file
            self._space_used += file.size
            self._blob_refs[file.blob] += 1
        # Link children in their saved order, so listings keep their order.
        for folder_id, entry_ids in children.items():
            for entry_id in entry_ids:
                self._link(folder_id, entry_id, self._name_of(entry_id))
        log.debug("loaded emulator state: %d folders, %d files", len(self._folders), len(self._files))

    def _remove_orphan_blobs(self) -> None:
        for blob in self.blob_dir.iterdir():
            if blob.name not in self._blob_refs:
                blob.unlink(missing_ok=True)

    # ------------------------------------------------------------------ indexes

    def _link(self, folder_id: str, entry_id: str, name: str) -> None:
        self._children[folder_id][entry_id] = None
        self._by_name[folder_id].setdefault(name, []).append(entry_id)
        self._by_folded[folder_id][name.casefold()] += 1

    def _unlink(self, folder_id: str, entry_id: str, name: str) -> None:
        del self._children[folder_id][entry_id]
        ids = self._by_name[folder_id][name]
        ids.remove(entry_id)
        if not ids:
            del self._by_name[folder_id][name]
        folded = self._by_folded[folder_id]
        folded[name.casefold()] -= 1
        if folded[name.casefold()] <= 0:
            del folded[name.casefold()]

    def _insert_folder(self, folder: Folder) -> None:
        self._folders[folder.id] = folder
        self._children[folder.id] = {}
        self._by_name[folder.id] = {}
        self._by_folded[folder.id] = Counter()
        if folder.parent_id is not None:
            self._link(folder.parent_id, folder.id, folder.name)

    def _check_name_free(self, folder_id: str, name: str, *, ignore_id: str | None = None) -> None:
        """Raise invalid_request if duplicates are off and ``name`` is taken in the folder."""
        duplicates_allowed, case_sensitive = self._name_rules()
        if duplicates_allowed:
            return
        if case_sensitive:
            holders = [entry for entry in self._by_name[folder_id].get(name, ()) if entry != ignore_id]
            conflicts = len(holders)
        else:
            conflicts = self._by_folded[folder_id].get(name.casefold(), 0)
            if ignore_id is not None and self._name_of(ignore_id).casefold() == name.casefold():
                conflicts -= 1
        if conflicts > 0:
            raise invalid_request(f"the name {name!r} is already taken in this folder; choose another name")

    def _name_of(self, entry_id: str) -> str:
        entry = self._folders.get(entry_id) or self._files.get(entry_id)
        return entry.name if entry else ""

    def _check_move_names(self, target_id: str, moving: list[Folder | File]) -> None:
        duplicates_allowed, case_sensitive = self._name_rules()
        if duplicates_allowed:
            return
        keys = [entry.name if case_sensitive else entry.name.casefold() for entry in moving]
        if len(set(keys)) != len(keys):
            raise invalid_request("two of the entries to move have the same name")
        for entry in moving:
            parent = entry.folder_id if isinstance(entry, File) else entry.parent_id
            if parent != target_id:
                self._check_name_free(target_id, entry.name)

    # ------------------------------------------------------------------ lookups

    def folder(self, folder_id: Any) -> Folder:
        """Return the folder with this id or raise not_found (also for a file id)."""
        with self.lock:
            folder = self._folders.get(folder_id) if isinstance(folder_id, str) else None
            if folder is None:
                raise not_found(f"folder {folder_id!r} not found")
            return folder

    def file(self, file_id: Any) -> File:
        """Return the file with this id or raise not_found (also for a folder id)."""
        with self.lock:
            file = self._files.get(file_id) if isinstance(file_id, str) else None
            if file is None:
                raise not_found(f"file {file_id!r} not found")
            return file

    def find_file(self, file_id: str) -> File | None:
        """Return the file with this id, or None."""
        with self.lock:
            return self._files.get(file_id)

    def is_file(self, entry_id: str) -> bool:
        with self.lock:
            return entry_id in self._files

    def children(self, folder_id: str) -> list[Folder | File]:
        """Return the entries of a folder in the order they were added or moved in."""
        with self.lock:
            self.folder(folder_id)
            return [self._folders.get(entry) or self._files[entry] for entry in self._children[folder_id]]

    def find(self, path: str) -> str | None:
        """Return the id of the entry at ``path`` (slash-joined from the root), or None.

        Empty segments are skipped, so ``""`` and ``"/"`` are the root.  With
        duplicate names the oldest entry wins.  A name that contains ``/``
        cannot be reached by path.
        """
        with self.lock:
            current = self.root_id
            for segment in (part for part in path.split("/") if part):
                if current not in self._folders:
                    return None
                ids = self._by_name[current].get(segment)
                if not ids:
                    return None
                current = ids[0]
            return current

    def path_of(self, entry_id: str) -> str:
        """Return the slash-joined path of an entry from the root (the root is "")."""
        with self.lock:
            names = []
            entry = self._files.get(entry_id) or self.folder(entry_id)
            if isinstance(entry, File):
                names.append(entry.name)
                parent = entry.folder_id
            else:
                parent = entry.id
            while parent != self.root_id:
                folder = self._folders[parent]
                names.append(folder.name)
                parent = folder.parent_id
            return "/".join(reversed(names))

    def breadcrumbs(self, folder_id: str) -> list[Folder]:
        """Return the folders from the root down to ``folder_id`` inclusive."""
        with self.lock:
            chain = [self.folder(folder_id)]
            while chain[-1].parent_id is not None:
                chain.append(self._folders[chain[-1].parent_id])
            return list(reversed(chain))

    def all_files(self) -> list[File]:
        with self.lock:
            return list(self._files.values())

    def all_folders(self) -> list[Folder]:
        with self.lock:
            return list(self._folders.values())

    def walk_files(self, folder_id: str) -> Iterator[tuple[str, File]]:
        """Yield ``(folder path, file)`` for every file under a folder.

        The folder path is relative to ``folder_id``: "" or names joined by
        "/" with a trailing "/".  The walk is a snapshot taken under the lock.
        """
        with self.lock:
            found: list[tuple[str, File]] = []
            stack = [(folder_id, "")]
            while stack:
                current, prefix = stack.pop()
                for entry in self.children(current):
                    if isinstance(entry, File):
                        found.append((prefix, entry))
                    else:
                        stack.append((entry.id, f"{prefix}{entry.name}/"))
        yield from found

    @property
    def space_used(self) -> int:
        with self.lock:
            return self._space_used

    def file_path(self, file_id: str) -> Path:
        """Return the path of a file's content on disk.

        Files with equal content share one path, so never write to it.
        """
        return self.blob_dir / self.file(file_id).blob

    def file_bytes(self, file_id: str) -> bytes:
        """Return a file's whole content."""
        return self.file_path(file_id).read_bytes()

    # ------------------------------------------------------------------ changes

    def create_folder(self, parent_id: str | None, name: str, *, check_names: bool = True) -> str:
        """Create a folder and return its id; ``parent_id`` None is the root.

        ``check_names`` False skips the duplicate-name rule, as transfers do.
        """
        validate_name(name)
        with self.lock:
            parent = self.folder(self.root_id if parent_id is None else parent_id)
            if check_names:
                self._check_name_free(parent.id, name)
            folder = Folder(new_id(), name, parent.id, int(time.time()))
            self._insert_folder(folder)
            self._dirty = True
            return folder.id

    def new_temporary_path(self) -> Path:
        """Return a fresh path in the state's temporary directory, for content being written."""
        return self.tmp_dir / new_id()

    def add_file(
        self,
        folder_id: str | None,
        name: str,
        content: Content,
        *,
        space_limit: int | None = None,
        check_names: bool = True,
    ) -> str:
        """Add a file and return its id.

        ``content`` is the bytes, a ``Path`` to copy, or ``(size, seed)`` for
        deterministic generated bytes written to disk in blocks.  With
        ``space_limit`` an addition that would exceed it raises
        account_limit_reached.  ``check_names`` False skips the
        duplicate-name rule, as transfers do.
        """
        validate_name(name)
        with self.lock:
            folder = self.folder(self.root_id if folder_id is None else folder_id)
            if check_names:
                self._check_name_free(folder.id, name)
        if isinstance(content, bytes | bytearray | memoryview):
            key = "sha256-" + hashlib.sha256(content).hexdigest()
            size = len(content)
            write: Callable[[BinaryIO], None] = lambda out: out.write(content)
        elif isinstance(content, Path):
            key, size = self._hash_file(content)
            write = lambda out: _copy_into(content, out)
        elif isinstance(content, tuple) and len(content) == 2:
            size, seed = content
            if not isinstance(size, int) or size < 0:
                raise ValueError(f"generated content size must be an int >= 0, not {size!r}")
            key = "gen-" + hashlib.sha256(f"{seed}:{size}".encode()).hexdigest()
            write = lambda out: write_generated(out, seed, size)
        else:
            raise TypeError(f"content must be bytes, a Path or (size, seed), not {type(content).__name__}")
        with self.lock:
            if self._blob_refs[key] > 0:
                return self._insert_file(folder_id, name, key, size, space_limit, check_names)
        temporary = self.new_temporary_path()
        try:
            with open(temporary, "wb") as out:
                write(out)
            return self.adopt_file(
                folder_id, name, temporary, key, space_limit=space_limit, check_names=check_names
            )
        finally:
            temporary.unlink(missing_ok=True)

    @staticmethod
    def _hash_file(path: Path) -> tuple[str, int]:
        digest = hashlib.sha256()
        size = 0
        with open(path, "rb") as source:
            while chunk := source.read(1024 * 1024):
                digest.update(chunk)
                size += len(chunk)
        return "sha256-" + digest.hexdigest(), size

    def adopt_file(
        self,
        folder_id: str | None,
        name: str,
        temporary: Path,
        blob_key: str | None = None,
        *,
        space_limit: int | None = None,
        check_names: bool = True,
    ) -> str:
        """Add a file whose content was written to ``temporary``; return its id.

        ``blob_key`` names the content (``sha256-<hex digest>``); without it
        the file is hashed.  The temporary file is moved into the store, or
        left for the caller to remove when the store already has the content.
        """
        validate_name(name)
        if blob_key is None:
            blob_key, size = self._hash_file(temporary)
        else:
            size = temporary.stat().st_size
        with self.lock:
            if self._blob_refs[blob_key] == 0:
                os.replace(temporary, self.blob_dir / blob_key)
            try:
                return self._insert_file(folder_id, name, blob_key, size, space_limit, check_names)
            finally:
                if self._blob_refs[blob_key] == 0:
                    (self.blob_dir / blob_key).unlink(missing_ok=True)

    def _insert_file(
        self, folder_id: str | None, name: str, blob_key: str, size: int, space_limit: int | None, check_names: bool
    ) -> str:
        """Record a file whose blob is in place; the caller holds the lock."""
        folder = self.folder(self.root_id if folder_id is None else folder_id)
        if check_names:
            self._check_name_free(folder.id, name)
        if space_limit is not None and self._space_used + size > space_limit:
            raise ServiceError(
                "account_limit_reached",
                f"storing {size} bytes would exceed the space limit of {space_limit} bytes",
            )
        file = File(new_id(), name, folder.id, size, int(time.time()), blob_key)
        self._files[file.id] = file
        self._blob_refs[blob_key] += 1
        self._link(folder.id, file.id, name)
        self._space_used += size
        self._dirty = True
        return file.id

    def _release_blob(self, blob_key: str) -> None:
        """Drop one reference to a blob and delete it with the last; the caller holds the lock."""
        self._blob_refs[blob_key] -= 1
        if self._blob_refs[blob_key] <= 0:
            del self._blob_refs[blob_key]
            (self.blob_dir / blob_key).unlink(missing_ok=True)

    def rename(self, entry_id: str, name: str, *, kind: str) -> None:
        """Rename a file (``kind="file"``) or a folder (``kind="folder"``)."""
        validate_name(name)
        with self.lock:
            entry: Folder | File = self.file(entry_id) if kind == "file" else self.folder(entry_id)
            parent = entry.folder_id if isinstance(entry, File) else entry.parent_id
            if parent is None:
                raise invalid_request("the root folder cannot be renamed")
            self._check_name_free(parent, name, ignore_id=entry.id)
            self._unlink(parent, entry.id, entry.name)
            entry.name = name
            self._link(parent, entry.id, name)
            self._dirty = True

    def delete_file(self, file_id: str) -> None:
        with self.lock:
            file = self.file(file_id)
            self._unlink(file.folder_id, file.id, file.name)
            del self._files[file.id]
            self._space_used -= file.size
            self._release_blob(file.blob)
            self._dirty = True

    def delete_folder(self, folder_id: str) -> None:
        """Delete a folder and everything in it."""
        with self.lock:
            folder = self.folder(folder_id)
            if folder.parent_id is None:
                raise invalid_request("the root folder cannot be deleted")
            doomed_files: list[str] = []
            stack = [folder.id]
            doomed_folders: list[str] = []
            while stack:
                current = stack.pop()
                doomed_folders.append(current)
                for entry in self._children[current]:
                    (doomed_files if entry in self._files else stack).append(entry)
            self._unlink(folder.parent_id, folder.id, folder.name)
            for file_id in doomed_files:
                file = self._files.pop(file_id)
                self._space_used -= file.size
                self._release_blob(file.blob)
            for current in doomed_folders:
                del self._folders[current], self._children[current], self._by_name[current], self._by_folded[current]
            self._dirty = True

    def move(self, target_id: str, file_ids: list[str], folder_ids: list[str]) -> None:
        """Move files and folders into a target folder, keeping their ids.

        Every id is checked before anything moves, so a bad id changes nothing.
        """
        with self.lock:
            target = self.folder(target_id)
            files = [self.file(file_id) for file_id in file_ids]
            folders = [self.folder(folder_id) for folder_id in folder_ids]
            ancestors = {crumb.id for crumb in self.breadcrumbs(target.id)}
            for folder in folders:
                if folder.parent_id is None:
                    raise invalid_request("the root folder cannot be moved")
                if folder.id in ancestors:
                    raise invalid_request(f"folder {folder.id!r} cannot be moved into itself or its own subfolder")
            moving: list[Folder | File] = [*files, *folders]
            self._check_move_names(target.id, moving)
            for entry in moving:
                parent = entry.folder_id if isinstance(entry, File) else entry.parent_id
                assert parent is not None
                self._unlink(parent, entry.id, entry.name)
                if isinstance(entry, File):
                    entry.folder_id = target.id
                else:
                    entry.parent_id = target.id
                self._link(target.id, entry.id, entry.name)
            self._dirty = True


def _copy_into(source: Path, out: BinaryIO) -> None:
    with open(source, "rb") as data:
        shutil.copyfileobj(data, out, 1024 * 1024)
