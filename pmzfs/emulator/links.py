"""Signed file links and the parsing of HTTP Range headers.

A link is ``/dl/<file id>/<issued at>/<signature>/<file name>``.  The
signature is an HMAC of the id and the issue time under the state's secret,
so links survive a restart, cannot be forged by changing the time, and
need no table of issued links.  The name at the end is for people and
download tools; the server ignores it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from urllib.parse import quote

_SIGNATURE_LENGTH = 24


class LinkSigner:
    """Issue and check file links and zip download URLs."""

    def __init__(self, secret: str) -> None:
        self._key = secret.encode("ascii")

    def sign_entry(self, kind: str, entry: str) -> str:
        """Return the signature of ``entry`` (any text) for URLs of ``kind``."""
        message = f"{kind}/{entry}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:_SIGNATURE_LENGTH]

    def check_entry(self, kind: str, entry: str, signature: str) -> bool:
        return hmac.compare_digest(self.sign_entry(kind, entry), signature)

    def link_path(self, file_id: str, name: str, issued: int) -> str:
        """Return the path of a file link issued at ``issued`` (Unix seconds)."""
        signature = self.sign_entry("dl", f"{file_id}/{issued}")
        segment = quote(name, safe="")
        if segment in (".", ".."):
            # HTTP clients remove literal dot segments from a path (RFC 3986,
            # section 5.2.4), which would cut the signature off the link.
            segment = segment.replace(".", "%2E")
        return f"/dl/{file_id}/{issued}/{signature}/{segment}"

    def check_link(self, file_id: str, issued: str, signature: str) -> int | None:
        """Return the issue time of a genuine file link, or None for a forged or garbled one."""
        if not issued.isdigit() or not self.check_entry("dl", f"{file_id}/{issued}", signature):
            return None
        return int(issued)


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1


class Unsatisfiable(Exception):
    """The Range header is valid but no byte of it lies in the body (HTTP 416)."""


_RANGE_SPEC = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """Return the byte range a Range header selects, or None to send the whole body.

    Supports ``bytes=a-b``, ``bytes=a-`` and ``bytes=-n``.  A header with
    several ranges selects its first range only.  A malformed header is
    ignored (the whole body is sent), as RFC 9110 allows.  Raises
    ``Unsatisfiable`` when the range starts at or beyond the end, for
    ``bytes=-0``, and for any range of an empty body.
    """
    if header is None:
        return None
    unit, _, specs = header.partition("=")
    if unit.strip().lower() != "bytes" or not specs:
        return None
    first = specs.split(",")[0]
    match = _RANGE_SPEC.match(first)
    if not match:
        return None
    start_text, end_text = match.groups()
    if start_text == "" and end_text == "":
        return None
    if start_text == "":
        suffix = int(end_text)
        if suffix == 0 or size == 0:
            raise Unsatisfiable
        return ByteRange(max(0, size - suffix), size - 1)
    start = int(start_text)
    end = int(end_text) if end_text else size - 1
    if end_text and end < start:
        return None
    if start >= size:
        raise Unsatisfiable
    return ByteRange(start, min(end, size - 1))
