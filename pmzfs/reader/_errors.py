"""The exception every read failure ends in."""

from __future__ import annotations

import errno


class ReadError(OSError):
    """A read failed; ``errno`` is the code the filesystem call returns.

    ``errno`` is EIO for a link that stays dead, a server that keeps
    failing or a response that does not match the request, and EBADF for a
    read on a closed handle.  The message names the file id, never its link.
    """

    def __init__(self, message: str, code: int = errno.EIO) -> None:
        super().__init__(code, message)

    def __str__(self) -> str:
        return self.strerror or ""
