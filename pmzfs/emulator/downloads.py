"""Serving file links, zip downloads and direct links: Range, latency, rate cap, resets.

``DownloadHandlerMixin`` is part of ``RequestHandler``; it uses the
handler's connection, headers and ``send_*`` methods.
"""

from __future__ import annotations

import email.utils
import logging
import socket
import struct
import time
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from pmzfs.emulator.bodies import drain_body
from pmzfs.emulator.content import iter_generated
from pmzfs.emulator.links import ByteRange, Unsatisfiable, parse_range

if TYPE_CHECKING:
    from pmzfs.emulator.server import Emulator

log = logging.getLogger(__name__)

SEND_CHUNK = 64 * 1024
SENDFILE_SLICE = 8 * 1024 * 1024


class ConnectionAborted(Exception):
    """The handler reset the connection on purpose (a fault)."""


class DownloadHandlerMixin:
    """GET and HEAD of ``/dl/``, ``/zip/`` and ``/ddl/`` paths."""

    emu: Emulator

    def _abort(self) -> None:
        """Reset the connection: SO_LINGER 0 makes close() send a TCP RST."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass
        raise ConnectionAborted

    def _wait_link_latency(self, first_on_connection: bool) -> None:
        rtt = self.emu.options.link_rtt
        if rtt > 0:
            time.sleep(rtt * (2 if first_on_connection else 1))

    def _handle_link(self, method: str, path: str, first_on_connection: bool) -> None:
        drain_body(self.rfile, self.headers)
        parts = path.split("/")
        emu = self.emu
        issued = None
        if len(parts) >= 5:
            issued = emu.signer.check_link(parts[2], parts[3], parts[4])
        file = emu.state.find_file(parts[2]) if issued is not None else None
        self._wait_link_latency(first_on_connection)
        if file is None:
            self._send_plain(HTTPStatus.NOT_FOUND, "file not found\n")
            return
        emu.counters.count_link_request(file.id)
        expiry = emu.options.link_expiry
        if expiry is not None and time.time() - issued > expiry:
            self._send_plain(HTTPStatus.FORBIDDEN, "link expired; get a fresh link from the API\n")
            return
        if method not in ("GET", "HEAD"):
            self._send_plain(HTTPStatus.METHOD_NOT_ALLOWED, "use GET or HEAD\n")
            return
        self._serve_file(
            emu.state.blob_dir / file.blob,
            file.size,
            file.mime_type,
            etag=f'"{file.id}-{file.size}"',
            modified=file.created_at,
            count_as=file.id,
        )

    def _handle_zip(self, method: str, path: str, first_on_connection: bool) -> None:
        drain_body(self.rfile, self.headers)
        found = self.emu.zips.lookup(path)
        self._wait_link_latency(first_on_connection)
        if found is None:
            self._send_plain(HTTPStatus.NOT_FOUND, "zip not found\n")
            return
        if method not in ("GET", "HEAD"):
            self._send_plain(HTTPStatus.METHOD_NOT_ALLOWED, "use GET or HEAD\n")
            return
        zip_path, zip_id = found
        size = zip_path.stat().st_size
        self._serve_file(zip_path, size, "application/zip", etag=f'"{zip_id}"', modified=None, count_as=None)

    def _handle_direct_link(self, method: str, path: str, first_on_connection: bool) -> None:
        drain_body(self.rfile, self.headers)
        found = self.emu.transfers.lookup_direct_link(path)
        self._wait_link_latency(first_on_connection)
        if found is None:
            self._send_plain(HTTPStatus.NOT_FOUND, "link not found\n")
            return
        if method not in ("GET", "HEAD"):
            self._send_plain(HTTPStatus.METHOD_NOT_ALLOWED, "use GET or HEAD\n")
            return
        seed, size, mime_type = found
        self._serve_generated(seed, size, mime_type)

    def _send_range_headers(
        self, size: int, content_type: str, *, etag: str | None, modified: int | None
    ) -> ByteRange | None:
        """Send the status line and headers of a ranged body; return the range, or None for 416."""
        try:
            byte_range = parse_range(self.headers.get("Range"), size)
        except Unsatisfiable:
            self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            return None
        if byte_range is None:
            byte_range = ByteRange(0, size - 1)
            self.send_response(HTTPStatus.OK)
        else:
            self.send_response(HTTPStatus.PARTIAL_CONTENT)
            self.send_header("Content-Range", f"bytes {byte_range.start}-{byte_range.end}/{size}")
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(byte_range.length))
        self.send_header("Accept-Ranges", "bytes")
        if etag:
            self.send_header("ETag", etag)
        if modified is not None:
            self.send_header("Last-Modified", email.utils.formatdate(modified, usegmt=True))
        self.end_headers()
        return byte_range

    def _serve_file(
        self, path: Path, size: int, content_type: str, *, etag: str | None, modified: int | None, count_as: str | None
    ) -> None:
        try:
            source = open(path, "rb")
        except FileNotFoundError:
            # Deleted between the lookup and the open.
            self._send_plain(HTTPStatus.NOT_FOUND, "file not found\n")
            return
        with source:
            byte_range = self._send_range_headers(size, content_type, etag=etag, modified=modified)
            if byte_range is None or self.command == "HEAD":
                return
            reset_at = self.emu.faults.take_link_reset(byte_range.length) if count_as else None
            self._send_body(source, byte_range, reset_at, count_as)

    def _send_body(self, source: BinaryIO, byte_range: ByteRange, reset_at: int | None, count_as: str | None) -> None:
        """Send ``byte_range`` of ``source``, capped in rate or cut by a reset when set."""
        counters = self.emu.counters
        position = byte_range.start
        remaining = byte_range.length if reset_at is None else reset_at
        # Bytes are counted before they are sent, so they are already in the
        # counter when a client has read the body.  NOTE: a client that disconnects
        # mid-send leaves up to one slice counted but not delivered.
        if self.emu.options.link_rate is None and reset_at is None:
            while remaining > 0:
                piece = min(remaining, SENDFILE_SLICE)
                if count_as:
                    counters.count_bytes_served(count_as, piece)
                sent = self.connection.sendfile(source, position, piece)
                if count_as and sent < piece:
                    counters.count_bytes_served(count_as, sent - piece)
                if sent == 0:
                    raise BrokenPipeError("sendfile sent nothing")
                position += sent
                remaining -= sent
            return
        source.seek(position)
        while remaining > 0:
            chunk = source.read(min(remaining, SEND_CHUNK))
            if not chunk:
                raise BrokenPipeError(f"{source.name} is shorter than its recorded size")
            if count_as:
                counters.count_bytes_served(count_as, len(chunk))
            self._send_throttled(chunk)
            remaining -= len(chunk)
        if reset_at is not None:
            log.debug("resetting link connection after %d body bytes, as configured", reset_at)
            self._abort()

    def _send_throttled(self, chunk: bytes) -> None:
        """Send ``chunk``, sleeping afterwards so the connection stays under ``link_rate``."""
        rate = self.emu.options.link_rate
        if rate is None:
            self.wfile.write(chunk)
            return
        # Pieces of about 1/20 s keep the rate smooth for small caps too.
        piece = max(1024, int(rate / 20))
        for start in range(0, len(chunk), piece):
            data = chunk[start : start + piece]
            began = time.monotonic()
            self.wfile.write(data)
            delay = len(data) / rate - (time.monotonic() - began)
            if delay > 0:
                time.sleep(delay)

    def _serve_generated(self, seed: str, size: int, mime_type: str) -> None:
        byte_range = self._send_range_headers(size, mime_type, etag=f'"{seed}-{size}"', modified=None)
        if byte_range is None or self.command == "HEAD":
            return
        for chunk in iter_generated(seed, byte_range.start, byte_range.length):
            self._send_throttled(chunk)
