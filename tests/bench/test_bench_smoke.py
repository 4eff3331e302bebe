"""Smoke test of the benchmark harness: a quick run on small files.

It checks that every measure still runs and records numbers, not how fast
anything is (speed is for ``python -m bench`` on a quiet machine).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.mount

REPOSITORY = Path(__file__).resolve().parents[2]
# Sizes of the quick run (bench.config.QUICK_SIZES).
QUICK_STREAM_SIZE = 16 * 1024 * 1024
QUICK_LISTING_FILES = 200
QUICK_TREE_FILES = 10 * 5
QUICK_RSYNC_FILES = 20
MEASURES = ("ls", "find", "ttfb-open", "ttfb-seek", "sequential", "amplification", "random", "ffprobe", "rsync", "memory")


def _missing_requirement() -> str | None:
    if os.geteuid() != 0:
        return "the benchmark mounts FUSE filesystems and needs root"
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing"
    for tool in ("curl", "ffmpeg", "ffprobe", "fusermount3", "rsync"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """Run ``python -m bench --quick`` on loopback once; return its JSON and systems."""
    reason = _missing_requirement()
    if reason is not None:
        pytest.skip(reason)
    systems = ["direct", "pmzfs"] + (["rclone"] if shutil.which("rclone") else [])
    work = tmp_path_factory.mktemp("bench")
    output = work / "results.json"
    # Naming every measure runs each of them in loopback, the rsync one too.
    command = [
        sys.executable, "-m", "bench", "--quick", "--scenario", "loopback", "--only", ",".join(MEASURES),
        "--system", ",".join(systems), "--work-dir", str(work / "work"), "--output", str(output),
    ]
    result = subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not any((work / "work" / "mnt").glob("*/*")), "a mountpoint was left mounted or non-empty"
    return json.loads(output.read_text()), systems


def test_quick_run_records_every_measure(quick_run):
    document, systems = quick_run
    results = document["results"]["loopback"]
    errors = [
        f"{measure} on {system}: {outcome['error']}"
        for measure, by_system in results.items()
        for system, outcome in by_system.items()
        if "error" in outcome
    ]
    assert errors == []
    for measure in MEASURES:
        assert "pmzfs" in results[measure], measure


def test_quick_run_reads_whole_stream(quick_run):
    document, systems = quick_run
    sequential = document["results"]["loopback"]["sequential"]
    for system in systems:
        assert sequential[system]["bytes"] == QUICK_STREAM_SIZE, system
        assert sequential[system]["bytes_fetched"] >= QUICK_STREAM_SIZE, system


def test_quick_run_lists_whole_tree(quick_run):
    document, _ = quick_run
    results = document["results"]["loopback"]
    assert results["ls"]["pmzfs"]["cold_entries"] == QUICK_LISTING_FILES
    assert results["ls"]["pmzfs"]["warm_entries"] == QUICK_LISTING_FILES
    assert results["find"]["pmzfs"]["files"] == QUICK_TREE_FILES


def test_quick_run_counts_ffprobe_bytes(quick_run):
    document, _ = quick_run
    ffprobe = document["results"]["loopback"]["ffprobe"]["pmzfs"]
    assert ffprobe["bytes_fetched"] > 0


def test_quick_run_checks_targets(quick_run):
    document, _ = quick_run
    statuses = {verdict["status"] for verdict in document["targets"]}
    assert statuses <= {"holds", "fails", "not measured"}
    assert any(verdict["measure"] == "ffprobe" for verdict in document["targets"])


def test_quick_run_rsync_is_noop(quick_run):
    document, _ = quick_run
    rsync = document["results"]["loopback"]["rsync"]["pmzfs"]
    if "skipped" in rsync:
        pytest.skip(f"the mount is not writable: {rsync['skipped']}")
    assert rsync["first_sync_uploads"] == QUICK_RSYNC_FILES
    assert rsync["uploads"] == 0
