"""The local store of modification times that users set (``utimensat``, ``touch -m``, ``rsync -a``).

The service keeps only a creation time, so a set mtime lives here, in an
SQLite database in the cache directory, keyed by file id and size.  A
stored time applies only while both match: an upload makes a new id and a
changed file has a new size, and either means the time no longer applies.
That is what lets a second ``rsync -a`` of unchanged files skip them all.

Every row is read into a dict when the store opens, so lookups cost no
I/O; ``set`` and ``forget`` write through.  The database runs in WAL mode
with ``synchronous=NORMAL``: a crash of pmzfs loses nothing, a power loss
may lose the last few changes, which costs a re-copy at worst.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

log = logging.getLogger(__name__)

MTIMES_FILENAME = "mtimes.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS mtimes (
    file_id TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL
) WITHOUT ROWID
"""


class MtimeStore:
    """Modification times in nanoseconds, keyed by file id and size, kept across mounts."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db, self._times = self._open()
        except sqlite3.DatabaseError as exc:
            # The times are a convenience, not user data: start over rather than fail the mount.
            damaged = self.path.with_name(self.path.name + ".damaged")
            log.warning("the mtime store %s is unreadable (%s); moved it to %s and starting empty", self.path, exc, damaged)
            self.path.replace(damaged)
            self._db, self._times = self._open()

    @classmethod
    def in_cache_dir(cls, cache_dir: Path) -> MtimeStore:
        """Open the store that a mount with ``cache_dir`` uses."""
        return cls(Path(cache_dir) / MTIMES_FILENAME)

    def _open(self) -> tuple[sqlite3.Connection, dict[str, tuple[int, int]]]:
        db = sqlite3.connect(self.path, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(_SCHEMA)
            times = {file_id: (size, mtime_ns) for file_id, size, mtime_ns in db.execute("SELECT * FROM mtimes")}
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db, times

    def get(self, file_id: str, size: int) -> int | None:
        """Return the stored mtime of ``file_id`` if it was stored for this ``size``, else None."""
        entry = self._times.get(file_id)
        if entry is None or entry[0] != size:
            return None
        return entry[1]

    def set(self, file_id: str, size: int, mtime_ns: int) -> None:
        """Store ``mtime_ns`` for ``file_id`` at ``size`` bytes, replacing any earlier entry."""
        self._times[file_id] = (size, mtime_ns)
        self._write(
            "INSERT OR REPLACE INTO mtimes (file_id, size, mtime_ns) VALUES (?, ?, ?)",
            (file_id, size, mtime_ns),
        )

    def forget(self, file_id: str) -> None:
        """Drop the entry of a file that was deleted or replaced."""
        if self._times.pop(file_id, None) is not None:
            self._write("DELETE FROM mtimes WHERE file_id = ?", (file_id,))

    def _write(self, statement: str, parameters: tuple) -> None:
        try:
            self._db.execute(statement, parameters)
        except sqlite3.Error as exc:
            # The in-memory dict still has the change for this mount.
            log.warning("could not write the mtime store %s: %s", self.path, exc)

    def __len__(self) -> int:
        return len(self._times)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> MtimeStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
