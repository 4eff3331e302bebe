"""The multipart body of an upload, streamed from disk.

httpx's own ``files=`` support reads the file with blocking calls inside
the event loop and has no progress hook, so the body is built here as an
async byte stream with an exact ``Content-Length``.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import trio

CHUNK_SIZE = 256 * 1024

# Names that a multipart header carries unchanged through every server:
# no quote, backslash, slash (servers strip directory parts), percent sign
# (HTML5 form encoding writes a quote as %22, so servers may decode it),
# control characters, or leading and trailing spaces.  Other names are
# uploaded under a placeholder and renamed afterwards.
_UNSAFE_NAME = re.compile(r'["\\/%\x00-\x1f\x7f]|^\s|\s$')


def is_safe_upload_name(name: str) -> bool:
    """Return whether ``name`` can be sent as the multipart filename as it is."""
    return bool(name) and name not in (".", "..") and not _UNSAFE_NAME.search(name)


def placeholder_name() -> str:
    """Return a unique ASCII name to upload under before renaming to the real name."""
    return f".pmzfs-upload-{secrets.token_hex(8)}.part"


class MultipartUpload:
    """A ``multipart/form-data`` body with a ``token`` field and one ``file`` field.

    Iterate it once per attempt: each iteration reopens the file and reads
    it in ``CHUNK_SIZE`` pieces in a worker thread, calling ``progress``
    with (bytes of the file sent, file size) after each piece.
    """

    def __init__(
        self,
        token: str,
        source: Path,
        filename: str,
        size: int,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.boundary = secrets.token_hex(16)
        self.source = source
        self.size = size
        self.progress = progress
        self._head = (
            f"--{self.boundary}\r\n"
            'Content-Disposition: form-data; name="token"\r\n\r\n'
            f"{token}\r\n"
            f"--{self.boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode("utf-8")
        self._tail = f"\r\n--{self.boundary}--\r\n".encode("ascii")

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    @property
    def content_length(self) -> int:
        return len(self._head) + self.size + len(self._tail)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self._head
        sent = 0
        async with await trio.open_file(self.source, "rb") as file:
            while sent < self.size:
                chunk = await file.read(min(CHUNK_SIZE, self.size - sent))
                if not chunk:
                    raise OSError(f"{self.source} shrank to {sent} bytes while it was uploaded (expected {self.size})")
                sent += len(chunk)
                yield chunk
                if self.progress is not None:
                    self.progress(sent, self.size)
        if self.size == 0 and self.progress is not None:
            self.progress(0, 0)
        yield self._tail


def file_size(source: Path) -> int:
    """Return the size of ``source`` in bytes."""
    return os.stat(source).st_size
