"""Sample the pmzfs process with py-spy while a measure runs (``--profile``).

The samples go to a raw (collapsed stack) file beside the run's logs, and
the measure's result gets the functions that used the most samples, so a
failed target comes with a first idea of where the time goes. py-spy
pauses the process for each sample unless ``--nonblocking`` is given, and
even then it costs CPU, so numbers of a profiled run are for diagnosis only.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from bench.processes import start_process, stop_process

log = logging.getLogger(__name__)

# Samples per second; py-spy's default.
SAMPLE_RATE = 100
# Functions listed in a result, by self samples.
TOP_FUNCTIONS = 12


def py_spy_path() -> str | None:
    """Return the py-spy program beside this Python, or the one on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    if beside.exists():
        return str(beside)
    return shutil.which("py-spy")


def summarize_raw(path: Path) -> dict:
    """Count samples per innermost function (self) and per function anywhere on the stack (total)."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count

    def top(counter: collections.Counter[str]) -> list[list]:
        return [[frame, round(100 * count / samples, 1)] for frame, count in counter.most_common(TOP_FUNCTIONS)]

    if samples == 0:
        return {"samples": 0}
    return {"samples": samples, "top_self_percent": top(own), "top_total_percent": top(total)}


@contextlib.contextmanager
def recording(pid: int, output: Path, log_path: Path) -> Iterator[dict]:
    """Record ``pid`` with py-spy for the duration of the block; fill the yielded dict with a summary."""
    summary: dict = {}
    program = py_spy_path()
    if program is None:
        summary["error"] = "py-spy is not installed; pip install py-spy (the bench extra of pyproject.toml)"
        yield summary
        return
    argv = [program, "record", "--pid", str(pid), "--format", "raw", "--output", str(output),
            "--rate", str(SAMPLE_RATE), "--nonblocking", "--function"]
    process = start_process(argv, log_path=log_path)
    try:
        yield summary
    finally:
        # SIGINT makes py-spy stop sampling and write its output file.
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                stop_process(process)
        if output.exists():
            summary.update(file=str(output), **summarize_raw(output))
        else:
            summary["error"] = f"py-spy wrote no profile (exit code {process.returncode}); see {log_path}"
