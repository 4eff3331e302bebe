"""The emulator process of a run, with the dataset and an HTML index for rclone.

``python -m bench.server --work-dir DIR --sizes JSON`` runs the pmzfs
emulator in its own process, so its CPU time stays out of the measuring
process. It seeds the dataset once into ``DIR/emulator-<layout key>``,
and later runs with the same sizes reuse it. It prints the base URL as its
first stdout line. Then it reads one JSON request per stdin line and
writes one JSON reply line to stdout, until stdin closes:

- ``{"op": "configure", "api_latency": S, "link_rtt": S, "link_rate": B}``
- ``{"op": "reset"}`` sets the request counters to zero
- ``{"op": "counters"}`` returns them, plus ``index_pages``
- ``{"op": "manifest"}`` returns ``{path: {"id", "size", "link"}}``
- ``{"op": "remove_folder", "path": P}`` deletes a folder of the dataset

rclone's http backend reads a tree of HTML pages of links, which the
premiumize API does not have. ``BenchRequestHandler`` adds it under
``/bench-http/``. A folder request returns a page of links after the API
latency, like a ``folder/list`` call. A file request goes through the
emulator's own file-link code, so rclone meets the same round trips, rate
cap and byte counters as pmzfs and curl.
"""

from __future__ import annotations

import argparse
import html
import json
import logging
import shutil
import sys
import threading
import time
from http import HTTPStatus
from pathlib import Path
from urllib.parse import quote, unquote, urljoin, urlsplit

from bench import dataset
from bench.config import Sizes
from bench.video import ensure_source, grow_mp4, probe_duration
from pmzfs.emulator import Emulator, EmulatorOptions
from pmzfs.emulator.handler import RequestHandler
from pmzfs.emulator.state import File

log = logging.getLogger(__name__)

API_KEY = "bench-key"
INDEX_PREFIX = "/bench-http/"
# Written into the state folder once seeding has finished, so a run that
# was stopped halfway seeds again instead of serving half a dataset.
SEEDED_MARKER = "bench-seeded.json"


class IndexPageCounter:
    """Thread-safe count of the index pages served to rclone."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.pages = 0

    def add(self) -> None:
        with self._lock:
            self.pages += 1

    def reset(self) -> None:
        with self._lock:
            self.pages = 0


INDEX_PAGES = IndexPageCounter()


class BenchRequestHandler(RequestHandler):
    """The emulator's request handler plus the HTML index under ``/bench-http/``."""

    # NOTE: this overrides the private _dispatch of pmzfs.emulator.handler and
    # hands files to its _handle_link, so that file bytes take exactly the
    # emulator's code path. A rename there breaks this class.
    def _dispatch(self, method: str) -> None:
        path = urlsplit(self.path).path
        if not path.startswith(INDEX_PREFIX):
            super()._dispatch(method)
            return
        entry_id = self.emu.state.find(unquote(path[len(INDEX_PREFIX) :]))
        file = self.emu.state.find_file(entry_id) if entry_id is not None else None
        if file is not None:
            # A fresh signed link of the file, as folder/list would hand out.
            self.path = self.emu.signer.link_path(file.id, file.name, int(time.time()))
            super()._dispatch(method)
            return
        self._response_started = False
        self._requests_on_connection += 1
        try:
            if entry_id is None or method not in ("GET", "HEAD"):
                self._send_plain(HTTPStatus.NOT_FOUND, "not found\n")
            else:
                self._send_folder_page(entry_id)
        except (BrokenPipeError, ConnectionResetError, TimeoutError) as exc:
            log.debug("client %s went away: %s", self.address_string(), exc)
            self.close_connection = True

    def _send_folder_page(self, folder_id: str) -> None:
        INDEX_PAGES.add()
        if self.emu.options.api_latency > 0:
            time.sleep(self.emu.options.api_latency)
        links = []
        for entry in self.emu.state.children(folder_id):
            name = entry.name + ("" if isinstance(entry, File) else "/")
            links.append(f'<a href="{html.escape(quote(name))}">{html.escape(name)}</a>')
        page = "<!DOCTYPE html>\n<html><body>\n" + "<br>\n".join(links) + "\n</body></html>\n"
        self._send_plain(HTTPStatus.OK, page, "text/html; charset=utf-8")


# ---------------------------------------------------------------- seeding


def _ensure_folder(emu: Emulator, folders: dict[str, str], path: str) -> str:
    """Return the id of the folder at ``path`` under the dataset root, creating it."""
    if path in folders:
        return folders[path]
    parent, _, name = path.rpartition("/")
    parent_id = _ensure_folder(emu, folders, parent) if parent else folders[""]
    folders[path] = emu.state.create_folder(parent_id, name)
    return folders[path]


def seed_dataset(emu: Emulator, sizes: Sizes, cache_dir: Path) -> None:
    """Create every file of the dataset for ``sizes`` in the emulator's state."""
    started = time.monotonic()
    folders = {"": emu.state.create_folder(None, dataset.DATASET_ROOT)}
    for spec in dataset.file_specs(sizes):
        folder, _, name = spec.path.rpartition("/")
        folder_id = _ensure_folder(emu, folders, folder) if folder else folders[""]
        if spec.video:
            video = cache_dir / f"movie-{spec.size}.mp4"
            if not video.exists():
                grow_mp4(ensure_source(cache_dir, sizes.video_seconds), video, spec.size)
                probe_duration(video)
            emu.state.add_file(folder_id, name, video)
        else:
            emu.state.add_file(folder_id, name, (spec.size, spec.path))
    log.info("seeded the dataset in %.1f s", time.monotonic() - started)


def add_stream_file(emu: Emulator, size: int) -> None:
    """Add the sequential-read file of ``size`` bytes unless the state has it."""
    path = dataset.stream_path(size)
    if emu.state.find(f"{dataset.DATASET_ROOT}/{path}") is not None:
        return
    folders = {"": emu.state.find(dataset.DATASET_ROOT)}
    folder, _, name = path.rpartition("/")
    existing = emu.state.find(f"{dataset.DATASET_ROOT}/{folder}")
    folder_id = existing if existing is not None else _ensure_folder(emu, folders, folder)
    emu.state.add_file(folder_id, name, (size, path))
    log.info("added %s (%d bytes)", path, size)


def build_manifest(emu: Emulator) -> dict[str, dict]:
    """Map each dataset path to its file id, size and absolute link."""
    root_id = emu.state.find(dataset.DATASET_ROOT)
    manifest = {}
    for folder, file in emu.state.walk_files(root_id):
        relative = folder + file.name  # folder is "" or ends with "/"
        link = urljoin(emu.base_url + "/", emu.link_for(file))
        manifest[relative] = {"id": file.id, "size": file.size, "link": link}
    return manifest


# ---------------------------------------------------------------- control loop


def handle_request(emu: Emulator, request: dict) -> object:
    """Carry out one control request and return its result."""
    op = request.get("op")
    if op == "configure":
        emu.options.api_latency = float(request["api_latency"])
        emu.options.link_rtt = float(request["link_rtt"])
        emu.options.link_rate = request["link_rate"]
        emu.options.validate()
        return None
    if op == "reset":
        emu.counters.reset()
        INDEX_PAGES.reset()
        return None
    if op == "counters":
        return {**emu.counters.snapshot(), "index_pages": INDEX_PAGES.pages}
    if op == "manifest":
        return build_manifest(emu)
    if op == "remove_folder":
        folder_id = emu.state.find(f"{dataset.DATASET_ROOT}/{request['path']}")
        if folder_id is not None:
            emu.state.delete_folder(folder_id)
        return None
    raise ValueError(f"unknown control op {op!r}; use configure, reset, counters, manifest or remove_folder")


def serve(emu: Emulator) -> None:
    """Serve control requests from stdin until it closes."""
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            reply = {"ok": True, "result": handle_request(emu, json.loads(line))}
        except (ValueError, KeyError, TypeError) as exc:
            reply = {"ok": False, "error": str(exc)}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


def open_state(work_dir: Path, sizes: Sizes, *, discard: bool = False) -> tuple[Path, bool]:
    """Return the state folder for ``sizes`` and whether it still needs seeding."""
    state_dir = work_dir / f"emulator-{dataset.layout_key(sizes)}"
    if (state_dir / SEEDED_MARKER).exists() and not discard:
        return state_dir, False
    shutil.rmtree(state_dir, ignore_errors=True)
    state_dir.mkdir(parents=True)
    return state_dir, True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.server", description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, required=True, help="folder for the emulator state and the video cache")
    parser.add_argument("--sizes", required=True, help="the run's sizes as JSON (bench.config.Sizes)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    sizes = Sizes.from_json(json.loads(args.sizes))
    state_dir, needs_seeding = open_state(args.work_dir, sizes)
    options = EmulatorOptions(api_key=API_KEY)
    try:
        emu = Emulator(state_dir=state_dir, options=options)
    except ValueError as exc:
        # A state saved by an older emulator: seed a new one.
        log.warning("%s; seeding the dataset again", exc)
        state_dir, needs_seeding = open_state(args.work_dir, sizes, discard=True)
        emu = Emulator(state_dir=state_dir, options=options)
    if needs_seeding:
        seed_dataset(emu, sizes, args.work_dir / "video")
        emu.state.save()
        (state_dir / SEEDED_MARKER).write_text(json.dumps(sizes.to_json()))
    add_stream_file(emu, sizes.stream_size)
    emu.start()
    try:
        install_index_handler(emu)
        sys.stdout.write(emu.base_url + "\n")
        sys.stdout.flush()
        serve(emu)
    finally:
        emu.stop()
    return 0


def install_index_handler(emu: Emulator) -> None:
    """Make the running emulator's HTTP server use ``BenchRequestHandler``.

    Called before the base URL is printed, so no client connects before the swap.
    """
    # NOTE: the emulator keeps its http.server instance in the private
    # attribute _server; socketserver reads RequestHandlerClass per connection.
    server = getattr(emu, "_server", None)
    if server is None:
        raise RuntimeError("the emulator has no _server attribute; bench.server needs updating")
    server.RequestHandlerClass = BenchRequestHandler


if __name__ == "__main__":
    sys.exit(main())
