"""The harness side of ``bench.server``: start it, send requests, stop it."""

from __future__ import annotations

import json
import logging
import selectors
import subprocess
import sys
import time
from pathlib import Path

from bench.config import Scenario, Sizes
from bench.processes import BenchError, start_process, stop_process

log = logging.getLogger(__name__)

# Seconds the server may take to seed the dataset on the first run: about
# 12 GiB of generated content at some 250 MB/s, plus the listing files.
START_TIMEOUT = 900.0
# Seconds one control request may take.
REQUEST_TIMEOUT = 60.0


class ServerControl:
    """A running ``bench.server`` process and its dataset manifest."""

    def __init__(self, work_dir: Path, sizes: Sizes, log_path: Path) -> None:
        self.log_path = log_path
        argv = [sys.executable, "-m", "bench.server", "--work-dir", str(work_dir), "--sizes", json.dumps(sizes.to_json())]
        self.process = start_process(argv, log_path=log_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.process.stdout, selectors.EVENT_READ)
        try:
            self.base_url = self._read_line(START_TIMEOUT, "start and seed the dataset")
            self.manifest: dict[str, dict] = self.request({"op": "manifest"})
        except BaseException:
            self.close()
            raise

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def index_url(self) -> str:
        """The root of the HTML index that rclone's http backend reads."""
        from bench.server import INDEX_PREFIX

        return self.base_url.rstrip("/") + INDEX_PREFIX

    def _read_line(self, timeout: float, action: str) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._selector.select(timeout=min(1.0, deadline - time.monotonic())):
                line = self.process.stdout.readline()
                if not line:
                    break
                return line.decode().strip()
            if self.process.poll() is not None:
                break
        if self.process.poll() is not None:
            raise BenchError(f"the emulator exited with code {self.process.returncode}; see {self.log_path}")
        raise BenchError(f"the emulator did not {action} within {timeout:.0f} s; see {self.log_path}")

    def request(self, request: dict) -> object:
        """Send one control request and return its result."""
        try:
            self.process.stdin.write((json.dumps(request) + "\n").encode())
            self.process.stdin.flush()
        except BrokenPipeError as exc:
            raise BenchError(f"the emulator is gone; see {self.log_path}") from exc
        reply = json.loads(self._read_line(REQUEST_TIMEOUT, f"answer {request['op']}"))
        if not reply["ok"]:
            raise BenchError(f"the emulator rejected {request['op']}: {reply['error']}")
        return reply["result"]

    def configure(self, scenario: Scenario) -> None:
        """Apply a scenario: API calls and link requests wait one RTT each."""
        self.request({"op": "configure", "api_latency": scenario.rtt, "link_rtt": scenario.rtt, "link_rate": scenario.link_rate})

    def remove_folder(self, path: str) -> None:
        """Delete a folder of the dataset (relative path) if it exists."""
        self.request({"op": "remove_folder", "path": path})

    def reset_counters(self) -> None:
        self.request({"op": "reset"})

    def counters(self) -> dict:
        return self.request({"op": "counters"})

    def file_id(self, path: str) -> str:
        return self.manifest[path]["id"]

    def link(self, path: str) -> str:
        return self.manifest[path]["link"]

    def close(self) -> None:
        """Close the control pipe, which stops the server, then make sure its PID is gone."""
        try:
            if self.process.stdin and not self.process.stdin.closed:
                self.process.stdin.close()
            self.process.wait(timeout=15)
        except (subprocess.TimeoutExpired, BrokenPipeError):
            pass
        finally:
            stop_process(self.process)
            self._selector.close()
            if self.process.stdout:
                self.process.stdout.close()
