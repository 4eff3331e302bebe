"""The ``Emulator``: a premiumize API server on loopback, for tests, benchmarks and the demo."""

from __future__ import annotations

import hashlib
import logging
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import BinaryIO

from pmzfs.emulator.bodies import iter_body, multipart_boundary, parse_multipart
from pmzfs.emulator.counters import Counters
from pmzfs.emulator.errors import ServiceError, invalid_request
from pmzfs.emulator.faults import Faults
from pmzfs.emulator.handler import EmulatorHTTPServer
from pmzfs.emulator.links import LinkSigner
from pmzfs.emulator.oauth import Auth
from pmzfs.emulator.options import EmulatorOptions
from pmzfs.emulator.state import File, StateStore, validate_name
from pmzfs.emulator.transfers import Transfers
from pmzfs.emulator.uploads import UploadSlot, UploadSlots
from pmzfs.emulator.zips import Zips

log = logging.getLogger(__name__)


class _HashingWriter:
    """A binary writer that computes the SHA-256 of what passes through it."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self._out.write(data)


class Emulator:
    """A local premiumize API server with its state, faults and counters.

    ``state_dir`` None keeps the state in a temporary directory that
    ``stop`` removes.  ``port`` 0 picks a free port.  The state is opened
    at construction, so tests can seed it before ``start``.
    """

    def __init__(
        self,
        state_dir: str | Path | None = None,
        options: EmulatorOptions | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        demo_content: bool = False,
    ) -> None:
        self.options = options if options is not None else EmulatorOptions()
        self.options.validate()
        self.host = host
        self.port = port
        self._temporary_dir: Path | None = None
        if state_dir is None:
            self._temporary_dir = Path(tempfile.mkdtemp(prefix="pmzfs-emulator-"))
            state_dir = self._temporary_dir
        self.state_dir = Path(state_dir)
        self.state = StateStore(
            self.state_dir,
            name_rules=lambda: (self.options.duplicate_names, self.options.case_sensitive_names),
        )
        self.counters = Counters()
        self.faults = Faults(self.options)
        self.signer = LinkSigner(self.state.secret)
        self.uploads = UploadSlots(lambda: self.base_url)
        self.auth = Auth(self.state, self.options, lambda: self.base_url)
        self.transfers = Transfers(self)
        self.zips = Zips(self)
        self._server: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False
        if demo_content:
            from pmzfs.emulator.demo import seed_demo_content

            seed_demo_content(self.state)

    # ------------------------------------------------------------ life cycle

    def start(self) -> Emulator:
        """Bind the port and serve in background threads; return once listening."""
        if self._server is not None or self._stopped:
            raise RuntimeError("the emulator is already running or was stopped; create a new Emulator")
        self._server = EmulatorHTTPServer((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self.state.start_saver()
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="emulator-http", daemon=True
        )
        self._thread.start()
        log.info("emulator listening on %s with state in %s", self.base_url, self.state_dir)
        return self

    def stop(self) -> None:
        """Stop serving, close client connections, save the state; remove it if temporary.

        A second call does nothing.
        """
        if self._stopped:
            return
        self._stopped = True
        if self._server is not None:
            stopper = threading.Thread(target=self._server.shutdown, name="emulator-stop")
            stopper.start()
            # A connection wakes the serve loop's select(), so the loop reads
            # the shutdown request now instead of after its poll interval.
            try:
                socket.create_connection((self.host, self.port), timeout=1).close()
            except OSError:
                pass
            stopper.join()
            self._server.close_open_connections()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join()
            self._server = None
            self._thread = None
            log.info("emulator stopped")
        self.state.close()
        if self._temporary_dir is not None:
            shutil.rmtree(self._temporary_dir, ignore_errors=True)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ------------------------------------------------------------ properties

    @property
    def base_url(self) -> str:
        """The server's URL, like ``http://127.0.0.1:PORT`` (IPv6 hosts in brackets)."""
        if self._server is None and self.port == 0:
            raise RuntimeError("the emulator has no port yet; call start() first")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def api_key(self) -> str:
        return self.options.api_key

    @property
    def root_id(self) -> str:
        return self.state.root_id

    # ------------------------------------------------------------ controls for tests

    def approve_device(self, user_code: str) -> None:
        """Approve a pending OAuth device code, as a visit to /device would."""
        self.auth.decide(user_code, "approve")

    def deny_device(self, user_code: str) -> None:
        """Deny a pending OAuth device code, as a visit to /device would."""
        self.auth.decide(user_code, "deny")

    def fail_next(self, endpoint: str, code: str, count: int = 1) -> None:
        """Make the next ``count`` calls of ``endpoint`` fail with error ``code``.

        ``code`` is a documented error code, or ``"http_500"`` for an HTTP
        500 ``unknown_error`` envelope.
        """
        self.faults.fail_next(endpoint, code, count)

    # ------------------------------------------------------------ used by the handlers

    def link_for(self, file: File) -> str:
        """Return a fresh file link of ``file``, issued now."""
        return self.base_url + self.signer.link_path(file.id, file.name, int(time.time()))

    def advance_transfers(self) -> None:
        self.transfers.advance()

    def receive_upload(self, slot: UploadSlot, rfile: BinaryIO, headers) -> str:
        """Store the file of a multipart upload into the slot's folder; return its id."""
        boundary = multipart_boundary(headers.get("Content-Type"))
        temporary = self.state.new_temporary_path()
        received: dict[str, str] = {}
        try:
            with open(temporary, "wb") as out:
                writer = _HashingWriter(out)

                def open_file(field: str, filename: str) -> _HashingWriter | None:
                    if field != "file" or "name" in received:
                        return None
                    received["name"] = filename
                    return writer

                fields = parse_multipart(iter_body(rfile, headers), boundary, open_file)
            token = fields.get("token")
            if not token:
                raise invalid_request("the upload has no 'token' field")
            if token != slot.token:
                raise ServiceError("not_found", "the upload token does not belong to this upload URL")
            if "name" not in received:
                raise invalid_request("the upload has no 'file' field with a filename")
            validate_name(received["name"])
            file_id = self.state.adopt_file(
                slot.folder_id,
                received["name"],
                temporary,
                "sha256-" + writer.digest.hexdigest(),
                space_limit=self.options.space_limit,
            )
        finally:
            temporary.unlink(missing_ok=True)
        self.counters.count_upload(self.state.file(file_id).size)
        log.debug("upload stored as file %s in folder %s", file_id, slot.folder_id)
        return file_id
