"""Reading request bodies: Content-Length or chunked, and multipart/form-data.

Multipart bodies are parsed as they stream in with python-multipart's
``MultipartParser``, so an upload of many GB never sits in memory.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol

from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError

from pmzfs.emulator.errors import invalid_request

CHUNK_SIZE = 256 * 1024
# Largest multipart field that is not a file (token, src, ...), in bytes.
MAX_FIELD_SIZE = 64 * 1024

_PARAM = re.compile(r';\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')
# Percent escapes that browsers and httpx write into multipart names and
# filenames for a quote and control characters (the HTML form encoding).
_FORM_ESCAPE = re.compile(r"%(22|[01][0-9A-Fa-f])")


class Writable(Protocol):
    def write(self, data: bytes, /) -> object: ...


class BodyError(Exception):
    """The body ended early or its framing (chunked encoding) is broken."""


def iter_body(rfile: BinaryIO, headers) -> Iterator[bytes]:
    """Yield the request body in chunks, by Content-Length or chunked encoding.

    Without either header the body is empty.  Raises ``BodyError`` when the
    connection ends before the body does or the framing is invalid.
    """
    if "chunked" in (headers.get("Transfer-Encoding") or "").lower():
        yield from _iter_chunked(rfile)
        return
    remaining = content_length(headers) or 0
    while remaining > 0:
        chunk = rfile.read(min(CHUNK_SIZE, remaining))
        if not chunk:
            raise BodyError(f"the connection closed with {remaining} bytes of the body missing")
        remaining -= len(chunk)
        yield chunk


def content_length(headers) -> int | None:
    """Return the Content-Length header as an int, None when absent; invalid values raise invalid_request."""
    value = headers.get("Content-Length")
    if value is None:
        return None
    if not value.strip().isdigit():
        raise invalid_request(f"invalid Content-Length {value!r}")
    return int(value)


def _iter_chunked(rfile: BinaryIO) -> Iterator[bytes]:
    while True:
        line = rfile.readline(1024)
        if not line.endswith(b"\n"):
            raise BodyError("a chunk size line of the chunked body is missing or too long")
        size_text = line.split(b";")[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError as exc:
            raise BodyError(f"invalid chunk size {size_text[:20]!r}") from exc
        if size == 0:
            # Skip trailer fields up to the empty line.
            while rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                pass
            return
        remaining = size
        while remaining > 0:
            data = rfile.read(min(CHUNK_SIZE, remaining))
            if not data:
                raise BodyError("the connection closed in the middle of a chunk")
            remaining -= len(data)
            yield data
        rfile.readline(1024)


def drain_body(rfile: BinaryIO, headers) -> None:
    """Read and discard the request body so the connection can serve the next request."""
    for _ in iter_body(rfile, headers):
        pass


def parse_header_params(value: str) -> tuple[str, dict[str, str]]:
    """Split ``form-data; name="file"; filename="a b"`` into the value and its parameters.

    Quoted values lose their quotes and backslash escapes, then the HTML
    form escapes ``%22`` and ``%00``..``%1F`` are decoded.  NOTE: a file
    name that really contains ``%22`` therefore arrives as ``"``, because
    the form encoding leaves no way to tell the two apart.
    """
    head, _, rest = value.partition(";")
    params: dict[str, str] = {}
    for match in _PARAM.finditer(";" + rest):
        key, raw = match.group(1).lower(), match.group(2).strip()
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params[key] = _FORM_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), raw)
    return head.strip().lower(), params


def multipart_boundary(content_type: str | None) -> bytes:
    """Return the boundary of a multipart/form-data Content-Type or raise invalid_request."""
    kind, params = parse_header_params(content_type or "")
    if kind != "multipart/form-data" or not params.get("boundary"):
        raise invalid_request(f"expected a multipart/form-data body with a boundary, got Content-Type {content_type!r}")
    return params["boundary"].encode("latin-1", "replace")


@dataclass
class _Part:
    name: str = ""
    filename: str | None = None
    size: int = 0
    buffer: bytearray = field(default_factory=bytearray)


def parse_multipart(
    chunks: Iterator[bytes],
    boundary: bytes,
    open_file: Callable[[str, str], Writable | None],
) -> dict[str, str]:
    """Parse a multipart body, streaming file parts to the writers ``open_file`` returns.

    ``open_file(field_name, filename)`` is called for each part with a
    filename and returns a writable binary file, or None to discard the
    part.  Returns the other fields as text.  Raises invalid_request for a
    malformed body, a field over ``MAX_FIELD_SIZE`` bytes, or a name that is
    not UTF-8.
    """
    fields: dict[str, str] = {}
    header_name = bytearray()
    header_value = bytearray()
    headers: dict[str, str] = {}
    part = _Part()
    writer: list[Writable | None] = [None]

    def decode(raw: bytes | bytearray, description: str) -> str:
        try:
            return bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise invalid_request(f"the multipart {description} is not valid UTF-8") from exc

    def on_part_begin() -> None:
        nonlocal part
        headers.clear()
        part = _Part()
        writer[0] = None

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_name.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        headers[bytes(header_name).decode("latin-1").lower()] = decode(header_value, "header")
        header_name.clear()
        header_value.clear()

    def on_headers_finished() -> None:
        _, params = parse_header_params(headers.get("content-disposition", ""))
        part.name = params.get("name", "")
        part.filename = params.get("filename")
        if part.filename is not None:
            writer[0] = open_file(part.name, part.filename)

    def on_part_data(data: bytes, start: int, end: int) -> None:
        part.size += end - start
        if part.filename is not None:
            if writer[0] is not None:
                writer[0].write(data[start:end])
            return
        if part.size > MAX_FIELD_SIZE:
            raise invalid_request(f"the multipart field {part.name!r} is larger than {MAX_FIELD_SIZE} bytes")
        part.buffer.extend(data[start:end])

    def on_part_end() -> None:
        if part.filename is None and part.name:
            fields[part.name] = decode(part.buffer, f"field {part.name!r}")

    parser = MultipartParser(
        boundary,
        callbacks={
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    try:
        for chunk in chunks:
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        raise invalid_request(f"the multipart body is malformed: {exc}") from exc
    return fields
