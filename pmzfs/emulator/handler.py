"""The HTTP layer: routing, the API envelope, file links and the upload URL.

One ``RequestHandler`` instance serves one TCP connection (HTTP/1.1
keep-alive) in its own thread.  No request gets a traceback or an HTML
page back.  Paths under ``/api/`` always respond with a JSON envelope, and
an unexpected exception sends HTTP 500 with an ``unknown_error`` envelope.
"""

from __future__ import annotations

import json
import logging
import socket
import sys
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pmzfs.emulator import oauth
from pmzfs.emulator.bodies import (
    BodyError,
    content_length,
    drain_body,
    iter_body,
    multipart_boundary,
    parse_multipart,
)
from pmzfs.emulator.downloads import SEND_CHUNK, ConnectionAborted, DownloadHandlerMixin
from pmzfs.emulator.endpoints import ENDPOINTS
from pmzfs.emulator.errors import ServiceError, invalid_request
from pmzfs.emulator.options import HTTP_500
from pmzfs.emulator.params import Params, UploadedPart

if TYPE_CHECKING:
    from pmzfs.emulator.server import Emulator

log = logging.getLogger(__name__)

# Bytes of an oversized API body that are read and discarded so the client
# can read the error; beyond it the connection is closed.
MAX_DRAIN = 1024 * 1024 * 1024
# Largest body of a POST to /token or /device, in bytes.
MAX_FORM_BODY = 64 * 1024
# Seconds an idle keep-alive connection stays open.
IDLE_TIMEOUT = 120


class EmulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    # The socketserver default of 5 stalls bursts of new connections, such as
    # a hundred files opened at once, for seconds.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], emulator: Emulator) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.emulator = emulator
        self.open_connections: set[socket.socket] = set()
        super().__init__(address, RequestHandler)

    def handle_error(self, request: object, client_address: tuple) -> None:
        """Log a failed connection in one line; clients that hang up are normal."""
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            log.debug("connection from %s ended: %s", client_address, error)
            return
        log.warning("connection from %s failed", client_address, exc_info=True)

    def close_open_connections(self) -> None:
        """Shut down every client connection, so blocked handler threads end."""
        for connection in list(self.open_connections):
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class RequestHandler(DownloadHandlerMixin, BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "pmzfs-emulator"
    sys_version = ""
    timeout = IDLE_TIMEOUT
    server: EmulatorHTTPServer

    # ------------------------------------------------------------ connection life

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without TCP_NODELAY,
        # Nagle's algorithm and the client's delayed ACK stall each response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.emu: Emulator = self.server.emulator
        self.emu.counters.count_connection()
        self.server.open_connections.add(self.connection)
        self._requests_on_connection = 0
        self._response_started = False

    def finish(self) -> None:
        self.server.open_connections.discard(self.connection)
        try:
            super().finish()
        except (OSError, ValueError):
            pass

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def send_response(self, code: int, message: str | None = None) -> None:
        self._response_started = True
        super().send_response(code, message)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Respond to a malformed request with a JSON envelope instead of http.server's HTML page."""
        self.close_connection = True
        # http.server treats an unparsable request line as HTTP/0.9, which
        # has no status line.  Send a full HTTP/1.1 response instead.
        self.request_version = "HTTP/1.1"
        text = message or HTTPStatus(code).phrase
        self._send_json({"status": "error", "code": "invalid_request", "message": text}, status=code)

    # ------------------------------------------------------------ dispatch

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_OPTIONS(self) -> None:
        self._dispatch("OPTIONS")

    def _dispatch(self, method: str) -> None:
        self._response_started = False
        first_on_connection = self._requests_on_connection == 0
        self._requests_on_connection += 1
        path = urlsplit(self.path).path
        try:
            if path.startswith("/api/"):
                self._handle_api(method, path[len("/api/") :])
            elif path.startswith("/dl/"):
                self._handle_link(method, path, first_on_connection)
            elif path.startswith("/zip/"):
                self._handle_zip(method, path, first_on_connection)
            elif path.startswith("/ddl/"):
                self._handle_direct_link(method, path, first_on_connection)
            elif path.startswith("/upload/"):
                self._handle_upload(method, path[len("/upload/") :])
            elif path == "/token":
                self._handle_token(method)
            elif path == "/device":
                self._handle_device(method)
            else:
                drain_body(self.rfile, self.headers)
                self._send_plain(HTTPStatus.NOT_FOUND, "not found\n")
        except ConnectionAborted:
            pass
        except (BrokenPipeError, ConnectionResetError, TimeoutError) as exc:
            log.debug("client %s went away: %s", self.address_string(), exc)
            self.close_connection = True
        except BodyError as exc:
            log.debug("unreadable request body from %s: %s", self.address_string(), exc)
            self.close_connection = True
            if not self._response_started:
                self._send_json(_error_envelope("invalid_request", str(exc)), status=400)
        except Exception:
            log.exception("internal error while handling %s %s", method, path)
            self.close_connection = True
            if not self._response_started:
                self._send_json(_error_envelope("unknown_error", "internal server error"), status=500)

    # ------------------------------------------------------------ responses

    def _send_json(self, document: dict[str, Any], *, status: int = 200, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(document, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_plain(self, status: int, text: str, content_type: str = "text/plain; charset=utf-8") -> None:
        body = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    # ------------------------------------------------------------ API

    def _read_api_params(self, method: str) -> Params:
        """Read the query and, for POST, the urlencoded or multipart body.

        After an error the rest of the body may be unread, so the
        connection is closed after the response.
        """
        try:
            return self._parse_api_params(method)
        except ServiceError:
            self.close_connection = True
            raise

    def _parse_api_params(self, method: str) -> Params:
        params = Params()
        params.add_query(urlsplit(self.path).query)
        limit = self.emu.options.max_api_body
        length = content_length(self.headers)
        if length is not None and length > MAX_DRAIN:
            self.close_connection = True
            raise invalid_request(f"the request body of {length} bytes exceeds the limit of {limit} bytes")
        content_type = self.headers.get("Content-Type") or ""
        if method == "POST" and content_type.lower().startswith("multipart/form-data"):
            self._read_multipart_params(params, content_type, limit)
            return params
        body = bytearray()
        oversized = False
        for chunk in iter_body(self.rfile, self.headers):
            if len(body) + len(chunk) > limit:
                oversized = True
                body.clear()
            elif not oversized:
                body.extend(chunk)
        if oversized:
            raise invalid_request(f"the request body exceeds the limit of {limit} bytes")
        if method == "POST" and body:
            try:
                params.add_query(body.decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise invalid_request("the request body is not valid UTF-8") from exc
        return params

    def _read_multipart_params(self, params: Params, content_type: str, limit: int) -> None:
        boundary = multipart_boundary(content_type)
        uploads: dict[str, tuple[str, bytearray]] = {}
        total = 0

        class _Buffer:
            def __init__(self, data: bytearray) -> None:
                self.data = data

            def write(self, chunk: bytes) -> None:
                nonlocal total
                total += len(chunk)
                if total > limit:
                    raise invalid_request(f"the request body exceeds the limit of {limit} bytes")
                self.data.extend(chunk)

        def open_file(name: str, filename: str) -> Any:
            uploads[name] = (filename, bytearray())
            return _Buffer(uploads[name][1])

        fields = parse_multipart(iter_body(self.rfile, self.headers), boundary, open_file)
        for key, value in fields.items():
            params.add(key, value)
        for key, (filename, data) in uploads.items():
            params.files[key] = UploadedPart(filename, bytes(data))

    def _credential(self, params: Params) -> str | None:
        header = self.headers.get("Authorization")
        if header:
            scheme, _, value = header.strip().partition(" ")
            if scheme.lower() == "bearer" and value.strip():
                return value.strip()
            return None
        return params.get("apikey")

    def _handle_api(self, method: str, endpoint: str) -> None:
        emu = self.emu
        if endpoint not in ENDPOINTS:
            drain_body(self.rfile, self.headers)
            message = f"unknown API endpoint {endpoint!r}"
            self._send_json(_error_envelope("not_found", message), status=404)
            return
        emu.counters.count_api_call(endpoint)
        if emu.options.api_latency > 0:
            time.sleep(emu.options.api_latency)
        try:
            params = self._read_api_params(method)
            emu.advance_transfers()
            fault = emu.faults.api_fault(endpoint)
            if fault == HTTP_500:
                self._send_json(_error_envelope("unknown_error", "injected HTTP 500"), status=500)
                return
            if fault is not None:
                raise ServiceError(fault, f"injected {fault} on {endpoint}")
            expected_method, function = ENDPOINTS[endpoint]
            if method != expected_method:
                raise invalid_request(f"{endpoint} expects {expected_method}, not {method}")
            credential = self._credential(params)
            if credential is None:
                raise ServiceError("authentication_failed", "missing credential; send Authorization: Bearer <api key>")
            if not emu.auth.accepts(credential):
                raise ServiceError("authentication_failed", "the API key or access token is invalid or expired")
            result = function(emu, params)
        except ServiceError as exc:
            log.debug("%s responded with error %s: %s", endpoint, exc.code, exc.message)
            self._send_json(_error_envelope(exc.code, exc.message))
            return
        self._send_json({"status": "success", **result})

    # ------------------------------------------------------------ uploads

    def _handle_upload(self, method: str, slot_id: str) -> None:
        emu = self.emu
        if method != "POST":
            drain_body(self.rfile, self.headers)
            self._send_json(_error_envelope("invalid_request", "upload with a multipart POST"), status=405)
            return
        slot = emu.uploads.take(slot_id)
        failure = emu.faults.take_upload_failure() if slot is not None else None
        if failure == "reset":
            self._reset_upload()
        if failure is not None:
            drain_body(self.rfile, self.headers)
            status = int(failure.removeprefix("http_"))
            self._send_json(_error_envelope("unknown_error", f"injected upload failure {failure}"), status=status)
            return
        try:
            if slot is None:
                drain_body(self.rfile, self.headers)
                raise ServiceError("not_found", "the upload URL is unknown or was already used; call folder/uploadinfo again")
            try:
                emu.receive_upload(slot, self.rfile, self.headers)
            except ServiceError:
                # The rest of the body may be unread.
                self.close_connection = True
                raise
        except ServiceError as exc:
            log.debug("upload to slot %s failed with %s: %s", slot_id, exc.code, exc.message)
            self._send_json(_error_envelope(exc.code, exc.message))
            return
        self._send_json({"status": "success"})

    def _reset_upload(self) -> None:
        length = content_length(self.headers) or 0
        to_read = int(length * self.emu.options.upload_reset_after_fraction)
        read = 0
        while read < to_read:
            chunk = self.rfile.read(min(SEND_CHUNK, to_read - read))
            if not chunk:
                break
            read += len(chunk)
        log.debug("resetting upload connection after %d of %d body bytes, as configured", read, length)
        self._abort()

    # ------------------------------------------------------------ OAuth

    def _read_form(self) -> Params:
        params = Params()
        params.add_query(urlsplit(self.path).query)
        if (content_length(self.headers) or 0) > MAX_FORM_BODY:
            raise invalid_request(f"the form body exceeds the limit of {MAX_FORM_BODY} bytes")
        body = b"".join(iter_body(self.rfile, self.headers))
        if len(body) > MAX_FORM_BODY:
            raise invalid_request(f"the form body exceeds the limit of {MAX_FORM_BODY} bytes")
        try:
            params.add_query(body.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise invalid_request("the request body is not valid UTF-8") from exc
        return params

    def _handle_token(self, method: str) -> None:
        try:
            if method != "POST":
                raise invalid_request("use POST for /token")
            params = self._read_form()
        except ServiceError as exc:
            self.close_connection = True
            self._send_json({"error": "invalid_request", "error_description": exc.message}, status=400)
            return
        status, document = self.emu.auth.token_endpoint(params)
        self._send_json(document, status=status, headers={"Cache-Control": "no-store"})

    def _handle_device(self, method: str) -> None:
        if method in ("GET", "HEAD"):
            drain_body(self.rfile, self.headers)
            self._send_plain(HTTPStatus.OK, oauth.DEVICE_FORM, "text/html; charset=utf-8")
            return
        try:
            params = self._read_form()
        except ServiceError as exc:
            self.close_connection = True
            self._send_plain(HTTPStatus.BAD_REQUEST, exc.message + "\n")
            return
        status, text = self.emu.auth.device_page_post(params)
        self._send_plain(status, text)


def _error_envelope(code: str, message: str) -> dict[str, str]:
    return {"status": "error", "message": message, "code": code}
