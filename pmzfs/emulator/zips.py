"""Zip downloads: ``zip/generate`` writes a real zip and serves it at ``location``.

The zip is complete when the call returns, as the service documents.  Its
URL is ``/zip/<zip id>/<filename>.zip``; the file name is only in the URL
path (no Content-Disposition).  Zips are stored in ``zips/`` of the state
directory and removed after ``ZIP_LIFETIME`` seconds.

Entry names inside the zip: a selected file is stored under its name and
a selected folder under its name with its contents below it.  Because a
zip entry name is a path, ``/`` and ``\\`` in a name become ``_`` and the
names ``.`` and ``..`` become ``_.`` and ``_..``, so no entry can point
outside the folder it is extracted into.  A name already used in the zip
gets `` (2)``, `` (3)``... before its extension.
"""

from __future__ import annotations

import re
import shutil
import time
import zipfile
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import quote

from pmzfs.emulator.errors import not_found
from pmzfs.emulator.state import new_id

if TYPE_CHECKING:
    from pmzfs.emulator.server import Emulator
    from pmzfs.emulator.state import File

ZIP_LIFETIME = 24 * 3600
_ZIP_ID = re.compile(r"^[A-Za-z0-9_-]{22}$")


def safe_entry_name(name: str) -> str:
    """Return ``name`` as one path component that cannot leave its folder."""
    name = name.replace("/", "_").replace("\\", "_")
    if name in (".", ".."):
        name = "_" + name
    return name


def _unique(path: str, used: set[str]) -> str:
    if path not in used:
        used.add(path)
        return path
    pure = PurePosixPath(path)
    number = 2
    while True:
        candidate = str(pure.with_name(f"{pure.stem} ({number}){pure.suffix}"))
        if candidate not in used:
            used.add(candidate)
            return candidate
        number += 1


class Zips:
    """Generates and finds zip downloads."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.directory = emu.state_dir / "zips"

    def generate(self, file_ids: list[str], folder_ids: list[str]) -> str:
        """Write a zip of the files and folders and return its URL."""
        state = self.emu.state
        entries: list[tuple[str, File | None]] = []  # (path in zip, file or None for a directory)
        used: set[str] = set()
        with state.lock:
            files = [state.file(file_id) for file_id in file_ids]
            folders = [state.folder(folder_id) for folder_id in folder_ids]
            for file in files:
                entries.append((_unique(safe_entry_name(file.name), used), file))
            for folder in folders:
                top = _unique(safe_entry_name(folder.name), used)
                entries.append((top + "/", None))
                entries.extend(self._folder_entries(folder.id, top, used))
        if len(files) + len(folders) == 1:
            filename = safe_entry_name((files or folders)[0].name) + ".zip"
        else:
            filename = "download.zip"
        zip_id = new_id()
        self.directory.mkdir(exist_ok=True)
        self._remove_old_zips()
        target = self.directory / f"{zip_id}.zip"
        try:
            self._write(target, entries)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        return f"{self.emu.base_url}/zip/{zip_id}/{quote(filename, safe='')}"

    def _folder_entries(self, folder_id: str, prefix: str, used: set[str]) -> list[tuple[str, File | None]]:
        from pmzfs.emulator.state import File

        entries: list[tuple[str, File | None]] = []
        for child in self.emu.state.children(folder_id):
            path = _unique(f"{prefix}/{safe_entry_name(child.name)}", used)
            if isinstance(child, File):
                entries.append((path, child))
            else:
                entries.append((path + "/", None))
                entries.extend(self._folder_entries(child.id, path, used))
        return entries

    def _write(self, target: Path, entries: list[tuple[str, File | None]]) -> None:
        with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
            for path, file in entries:
                if file is None:
                    archive.writestr(zipfile.ZipInfo(path, time.gmtime()[:6]), b"")
                    continue
                info = zipfile.ZipInfo(path, time.gmtime(max(file.created_at, 315532800))[:6])
                info.file_size = file.size
                try:
                    source = open(self.emu.state.blob_dir / file.blob, "rb")
                except FileNotFoundError:
                    raise not_found(f"file {file.id!r} was deleted while the zip was written") from None
                with source, archive.open(info, "w", force_zip64=file.size > 2**31) as out:
                    shutil.copyfileobj(source, out, 1024 * 1024)

    def _remove_old_zips(self) -> None:
        cutoff = time.time() - ZIP_LIFETIME
        for old in self.directory.glob("*.zip"):
            if old.stat().st_mtime < cutoff:
                old.unlink(missing_ok=True)

    def lookup(self, path: str) -> tuple[Path, str] | None:
        """Return ``(zip file, zip id)`` for a ``/zip/<id>/<name>`` path, or None."""
        parts = path.split("/")
        if len(parts) < 4 or not _ZIP_ID.match(parts[2]):
            return None
        candidate = self.directory / f"{parts[2]}.zip"
        return (candidate, parts[2]) if candidate.is_file() else None
