"""The measures: each reads the dataset the way a person's tools do.

A measure is a function ``(context, subject) -> dict`` of numbers. The
subject is the system under test: ``direct`` (curl or ffprobe on the file
link itself, the limit any filesystem can reach), or a pmzfs or rclone
mount. Every loop has a sample count and a deadline, and every command
runs with a timeout.
"""

from __future__ import annotations

import os
import random
import resource
import shutil
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import dataset
from bench.config import GiB, MB, Scenario, Sizes
from bench.processes import process_cpu_seconds, process_peak_rss, run_command
from bench.stats import summarize_latencies

DIRECT = "direct"
PMZFS = "pmzfs"
RCLONE = "rclone"
SYSTEMS = (DIRECT, PMZFS, RCLONE)

# Bytes the sequential reader asks for per read() call.
SEQUENTIAL_BLOCK = 1024 * 1024
# Seconds to wait after a measure before the counters are read, so that
# requests still in flight when a file is closed are counted where they belong.
SETTLE_SECONDS = 0.3
# Bytes a player reads after a seek before it seeks again.
PLAYBACK_AFTER_SEEK = 1024 * 1024
# Upper bound of random reads per thread in the memory measure, which
# otherwise runs until the stream ends or its time is up.
MIXED_READS_PER_THREAD = 100_000


class Skipped(Exception):
    """The measure does not apply to this subject; the message gives the reason."""


@dataclass
class Subject:
    """A system under test: the dataset root inside its mount and its PID."""

    system: str
    root: Path | None = None
    pid: int | None = None


@dataclass
class Context:
    """Sizes, scenario, emulator and work folder shared by the measures of one scenario."""

    sizes: Sizes
    scenario: Scenario
    server: "ServerLike"
    work_dir: Path
    seed: int = 1


class ServerLike:
    """The emulator controls a measure uses (see ``bench.server.ServerControl``)."""

    def reset_counters(self) -> None: ...
    def counters(self) -> dict: ...
    def file_id(self, path: str) -> str: ...
    def link(self, path: str) -> str: ...


@dataclass
class Deadline:
    """A point in monotonic time after which a measure stops taking samples."""

    seconds: float
    start: float = field(default_factory=time.monotonic)

    def remaining(self) -> float:
        return max(0.0, self.start + self.seconds - time.monotonic())

    def expired(self) -> bool:
        return self.remaining() <= 0


# ---------------------------------------------------------------- helpers


def _settle_and_reset(context: Context) -> None:
    time.sleep(SETTLE_SECONDS)
    context.server.reset_counters()


def _counters_after(context: Context) -> dict:
    time.sleep(SETTLE_SECONDS)
    return context.server.counters()


def _request_counts(counters: dict) -> dict[str, int]:
    """Count API calls, index pages (rclone's listing), link requests and new TCP connections."""
    api_calls = counters.get("api_calls", {})
    return {
        "api_calls": sum(api_calls.values()),
        "folder_list_calls": api_calls.get("folder/list", 0),
        "index_pages": counters.get("index_pages", 0),
        "link_requests": sum(counters.get("link_requests", {}).values()),
        "new_connections": counters.get("new_connections", 0),
    }


def _path(subject: Subject, relative: str) -> Path:
    assert subject.root is not None
    return subject.root / relative


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _curl(url: str, deadline: Deadline, byte_range: tuple[int, int] | None = None) -> dict[str, float]:
    """Fetch ``url`` with curl on a new connection; return its byte and time counts."""
    argv = ["curl", "--silent", "--show-error", "--fail", "--output", "/dev/null",
            "--write-out", "%{size_download} %{time_starttransfer} %{time_total}"]
    if byte_range is not None:
        argv += ["--range", f"{byte_range[0]}-{byte_range[1]}"]
    argv.append(url)
    result = run_command(argv, timeout=max(1.0, deadline.remaining()))
    if result.returncode != 0:
        raise RuntimeError(f"curl failed with code {result.returncode}: {result.stderr.strip()}")
    size, first_byte, total = result.stdout.split()
    return {"bytes": int(size), "first_byte": float(first_byte), "total": float(total)}


def _random_offsets(rng: random.Random, file_size: int, read_size: int, count: int) -> list[int]:
    """Pick ``count`` distinct read-aligned offsets that leave a whole read before the end."""
    slots = max(1, (file_size - read_size) // read_size)
    picks = rng.sample(range(1, slots + 1), min(count, slots)) if slots > 1 else [0] * count
    return [slot * read_size for slot in picks]


# ---------------------------------------------------------------- sequential read


def sequential_read(context: Context, subject: Subject) -> dict:
    """Stream the whole large file once and report MB/s and CPU per GiB."""
    deadline = Deadline(context.sizes.measure_deadline)
    stream = dataset.stream_path(context.sizes.stream_size)
    _settle_and_reset(context)
    if subject.system == DIRECT:
        cpu_before = _children_cpu_seconds()
        fetched = _curl(context.server.link(stream), deadline)
        cpu_seconds = _children_cpu_seconds() - cpu_before
        seconds = fetched["total"]
        total = fetched["bytes"]
        timed_out = False
    else:
        cpu_before = process_cpu_seconds(subject.pid)
        buffer = bytearray(SEQUENTIAL_BLOCK)
        total = 0
        timed_out = False
        start = time.perf_counter()
        with open(_path(subject, stream), "rb", buffering=0) as source:
            while True:
                count = source.readinto(buffer)
                if not count:
                    break
                total += count
                if deadline.expired():
                    timed_out = True
                    break
        seconds = time.perf_counter() - start
        cpu_seconds = process_cpu_seconds(subject.pid) - cpu_before
    counters = _counters_after(context)
    gib = total / GiB
    return {
        "bytes": total,
        "seconds": seconds,
        "mb_per_s": total / MB / seconds if seconds > 0 else 0.0,
        "cpu_seconds": cpu_seconds,
        "cpu_s_per_gib": cpu_seconds / gib if gib > 0 else None,
        "bytes_fetched": counters.get("bytes_served", {}).get(context.server.file_id(stream), 0),
        "connections": counters.get("new_connections", 0),
        "timed_out": timed_out,
    }


# ---------------------------------------------------------------- time to first byte


def first_byte_after_open(context: Context, subject: Subject) -> dict:
    """Time open() plus the first read of each of a set of unopened files."""
    sizes = context.sizes
    deadline = Deadline(sizes.measure_deadline)
    paths = [dataset.open_file_path(i) for i in range(sizes.ttfb_samples)]
    if subject.system != DIRECT:
        # Look every file up first: the measure is the open and the read, not the lookup.
        for relative in paths:
            os.stat(_path(subject, relative))
    _settle_and_reset(context)
    samples: list[float] = []
    for relative in paths:
        if deadline.expired():
            break
        if subject.system == DIRECT:
            fetched = _curl(context.server.link(relative), deadline, (0, sizes.ttfb_read - 1))
            samples.append(fetched["first_byte"])
            continue
        start = time.perf_counter()
        descriptor = os.open(_path(subject, relative), os.O_RDONLY)
        try:
            os.read(descriptor, sizes.ttfb_read)
            samples.append(time.perf_counter() - start)
        finally:
            os.close(descriptor)
    result = summarize_latencies(samples, context.scenario.rtt)
    result.update(_request_counts(_counters_after(context)))
    return result


def first_byte_after_seek(context: Context, subject: Subject) -> dict:
    """Time the first read after each of a series of random seeks in one open file.

    The mount gets a player's pattern: read the start of the file, then
    seek, read, and play on for a moment before the next seek.
    """
    sizes = context.sizes
    deadline = Deadline(sizes.measure_deadline)
    rng = random.Random(context.seed)
    offsets = _random_offsets(rng, sizes.seek_file_size, sizes.ttfb_read, sizes.ttfb_samples)
    samples: list[float] = []
    _settle_and_reset(context)
    if subject.system == DIRECT:
        link = context.server.link(dataset.SEEK)
        for offset in offsets:
            if deadline.expired():
                break
            fetched = _curl(link, deadline, (offset, offset + sizes.ttfb_read - 1))
            samples.append(fetched["first_byte"])
    else:
        descriptor = os.open(_path(subject, dataset.SEEK), os.O_RDONLY)
        try:
            os.read(descriptor, sizes.ttfb_read)
            for offset in offsets:
                if deadline.expired():
                    break
                start = time.perf_counter()
                os.pread(descriptor, sizes.ttfb_read, offset)
                samples.append(time.perf_counter() - start)
                os.pread(descriptor, PLAYBACK_AFTER_SEEK, offset + sizes.ttfb_read)
        finally:
            os.close(descriptor)
    result = summarize_latencies(samples, context.scenario.rtt)
    result.update(_request_counts(_counters_after(context)))
    return result


# ---------------------------------------------------------------- random reads


def _random_readers(
    path: Path, sizes: Sizes, seed: int, deadline: Deadline, stop: threading.Event, reads_per_thread: int
) -> tuple[list[float], int, float]:
    """Run ``random_threads`` threads of random reads; return latencies, bytes and seconds."""
    latencies: list[float] = []
    totals = [0] * sizes.random_threads
    errors: list[BaseException] = []
    lock = threading.Lock()

    def reader(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        offsets = _random_offsets(rng, sizes.seek_file_size, sizes.random_read_size, reads_per_thread)
        own: list[float] = []
        try:
            descriptor = os.open(path, os.O_RDONLY)
            try:
                for offset in offsets:
                    if deadline.expired() or stop.is_set():
                        break
                    start = time.perf_counter()
                    data = os.pread(descriptor, sizes.random_read_size, offset)
                    own.append(time.perf_counter() - start)
                    totals[index] += len(data)
            finally:
                os.close(descriptor)
        except OSError as exc:
            errors.append(exc)
        with lock:
            latencies.extend(own)

    threads = [threading.Thread(target=reader, args=(i,), name=f"random-reader-{i}") for i in range(sizes.random_threads)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=deadline.remaining() + 30)
    seconds = time.perf_counter() - start
    if errors:
        raise errors[0]
    return latencies, sum(totals), seconds


def parallel_random_reads(context: Context, subject: Subject) -> dict:
    """Run 16 threads of random 128 KiB reads on one file."""
    if subject.system == DIRECT:
        raise Skipped("measured on mounts only")
    sizes = context.sizes
    deadline = Deadline(sizes.measure_deadline)
    _settle_and_reset(context)
    latencies, total, seconds = _random_readers(
        _path(subject, dataset.RANDOM), sizes, context.seed, deadline, threading.Event(), sizes.random_reads_per_thread
    )
    counters = _counters_after(context)
    summary = summarize_latencies(latencies, context.scenario.rtt)
    return {
        "threads": sizes.random_threads,
        "reads": len(latencies),
        "bytes": total,
        "seconds": seconds,
        "mb_per_s": total / MB / seconds if seconds > 0 else 0.0,
        "p50_ms": summary["median_ms"],
        "p90_ms": summary["p90_ms"],
        "bytes_fetched": counters.get("bytes_served", {}).get(context.server.file_id(dataset.RANDOM), 0),
    }


def read_amplification(context: Context, subject: Subject) -> dict:
    """Read 1 MiB at each of 20 random offsets and compare bytes fetched with bytes read."""
    if subject.system == DIRECT:
        raise Skipped("a ranged GET fetches exactly what it asks for")
    sizes = context.sizes
    deadline = Deadline(sizes.measure_deadline)
    rng = random.Random(context.seed + 7)
    offsets = _random_offsets(rng, sizes.seek_file_size, sizes.amplification_read_size, sizes.amplification_reads)
    _settle_and_reset(context)

    total = 0
    start = time.perf_counter()
    descriptor = os.open(_path(subject, dataset.AMPLIFICATION), os.O_RDONLY)
    try:
        for offset in offsets:
            if deadline.expired():
                break
            total += len(os.pread(descriptor, sizes.amplification_read_size, offset))
    finally:
        os.close(descriptor)
    seconds = time.perf_counter() - start

    # Give read-ahead that was cut short by the close time to stop, then count.
    time.sleep(1.0)
    counters = _counters_after(context)
    fetched = counters.get("bytes_served", {}).get(context.server.file_id(dataset.AMPLIFICATION), 0)
    return {
        "bytes_read": total,
        "bytes_fetched": fetched,
        "amplification": fetched / total if total else None,
        "seconds": seconds,
        "link_requests": _request_counts(counters)["link_requests"],
    }


# ---------------------------------------------------------------- ffprobe


def ffprobe_video(context: Context, subject: Subject) -> dict:
    """Run ffprobe on the large MP4 and count the bytes it made the system fetch."""
    deadline = Deadline(context.sizes.measure_deadline)
    if subject.system == DIRECT:
        target = context.server.link(dataset.VIDEO)
    else:
        target = str(_path(subject, dataset.VIDEO))
        os.stat(target)
    _settle_and_reset(context)
    start = time.perf_counter()
    result = run_command(
        ["ffprobe", "-v", "error", "-show_format", "-show_streams", target], timeout=max(1.0, deadline.remaining())
    )
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"ffprobe failed with code {result.returncode}: {result.stderr.strip()[:300]}")
    counters = _counters_after(context)
    fetched = counters.get("bytes_served", {}).get(context.server.file_id(dataset.VIDEO), 0)
    return {
        "seconds": seconds,
        "bytes_fetched": fetched,
        "mib_fetched": fetched / (1024 * 1024),
        "link_requests": _request_counts(counters)["link_requests"],
    }


# ---------------------------------------------------------------- listings


def _timed_command(argv: list[str], deadline: Deadline) -> tuple[float, str]:
    start = time.perf_counter()
    result = run_command(argv, timeout=max(1.0, deadline.remaining()))
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed with code {result.returncode}: {result.stderr.strip()[:300]}")
    return seconds, result.stdout


def list_large_folder(context: Context, subject: Subject) -> dict:
    """Run ``ls -l`` on the 10,000-file folder twice: cold, then warm."""
    if subject.system == DIRECT:
        raise Skipped("measured on mounts only")
    deadline = Deadline(context.sizes.measure_deadline)
    folder = _path(subject, dataset.LISTING_FOLDER)
    # Look the folder itself up first, so the cold count is its own listing only.
    os.stat(folder)
    result: dict[str, object] = {}
    for phase in ("cold", "warm"):
        _settle_and_reset(context)
        seconds, output = _timed_command(["ls", "-l", str(folder)], deadline)
        counts = _request_counts(_counters_after(context))
        entries = sum(1 for line in output.splitlines() if line and not line.startswith("total "))
        result[f"{phase}_seconds"] = seconds
        result[f"{phase}_entries"] = entries
        for key, value in counts.items():
            result[f"{phase}_{key}"] = value
    return result


def walk_tree(context: Context, subject: Subject) -> dict:
    """Run ``find`` over the tree of 1,000 folders and 20,000 files, cold."""
    if subject.system == DIRECT:
        raise Skipped("measured on mounts only")
    deadline = Deadline(context.sizes.measure_deadline)
    tree = _path(subject, dataset.TREE_FOLDER)
    os.stat(tree)
    _settle_and_reset(context)
    seconds, output = _timed_command(["find", str(tree), "-type", "f"], deadline)
    counts = _request_counts(_counters_after(context))
    return {"seconds": seconds, "files": len(output.splitlines()), **counts}


# ---------------------------------------------------------------- rsync


def _rsync_source(context: Context) -> Path:
    """Make (once per run) the local folder of small files that rsync copies."""
    source = context.work_dir / f"rsync-source-{context.sizes.rsync_files}"
    if source.is_dir():
        return source
    partial = source.with_name(source.name + ".part")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    rng = random.Random(context.seed)
    for index in range(context.sizes.rsync_files):
        path = partial / f"photo-{index:04d}.jpg"
        path.write_bytes(rng.randbytes(dataset.SMALL_FILE_SIZE))
        # A fixed mtime, so rsync compares the same files in every run.
        os.utime(path, (1_600_000_000 + index, 1_600_000_000 + index))
    os.replace(partial, source)
    return source


def rsync_noop(context: Context, subject: Subject) -> dict:
    """Copy a folder of 1,000 files in with ``rsync -a``, then time a second, no-op run."""
    if subject.system == DIRECT:
        raise Skipped("measured on mounts only")
    if subject.system == RCLONE:
        raise Skipped("rclone's http backend is read-only")
    source = _rsync_source(context)
    target = _path(subject, dataset.RSYNC_FOLDER)
    argv = ["rsync", "-a", f"{source}/", f"{target}/"]

    # The first copy is set-up with its own, longer deadline; its numbers
    # are recorded too, since a first sync is work people do.
    _settle_and_reset(context)
    setup = Deadline(context.sizes.setup_deadline)
    start = time.perf_counter()
    first = run_command(argv, timeout=max(1.0, setup.remaining()))
    first_seconds = time.perf_counter() - start
    if first.returncode != 0:
        first_line = (first.stderr.strip().splitlines() or ["no message"])[0]
        raise Skipped(f"the first rsync failed (code {first.returncode}: {first_line}); the mount may be read-only")
    first_counters = _counters_after(context)

    deadline = Deadline(context.sizes.measure_deadline)
    _settle_and_reset(context)
    seconds, _ = _timed_command(argv, deadline)
    counters = _counters_after(context)
    return {
        "seconds": seconds,
        "files": context.sizes.rsync_files,
        "uploads": counters.get("uploads", 0),
        **_request_counts(counters),
        "first_sync_seconds": first_seconds,
        "first_sync_uploads": first_counters.get("uploads", 0),
        "first_sync_api_calls": _request_counts(first_counters)["api_calls"],
    }


# ---------------------------------------------------------------- memory


def streaming_with_random_readers(context: Context, subject: Subject) -> dict:
    """Stream one file while 16 threads read another at random; report peak RSS.

    Both run until the stream reaches its end or ``mixed_seconds`` pass.
    """
    if subject.system == DIRECT:
        raise Skipped("measured on mounts only")
    sizes = context.sizes
    deadline = Deadline(min(sizes.mixed_seconds, sizes.measure_deadline))
    stop = threading.Event()
    streamed = [0]

    def stream() -> None:
        buffer = bytearray(SEQUENTIAL_BLOCK)
        try:
            with open(_path(subject, dataset.MIXED_STREAM), "rb", buffering=0) as source:
                while not deadline.expired():
                    count = source.readinto(buffer)
                    if not count:
                        break
                    streamed[0] += count
        finally:
            stop.set()

    streamer = threading.Thread(target=stream, name="mixed-streamer")
    start = time.perf_counter()
    streamer.start()
    try:
        latencies, random_bytes, _ = _random_readers(
            _path(subject, dataset.MIXED_RANDOM), sizes, context.seed + 3, deadline, stop, MIXED_READS_PER_THREAD
        )
    finally:
        stop.set()
        streamer.join(timeout=60)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "streamed_mb_per_s": streamed[0] / MB / seconds if seconds > 0 else 0.0,
        "random_reads": len(latencies),
        "random_mb_per_s": random_bytes / MB / seconds if seconds > 0 else 0.0,
        "random_p50_ms": statistics.median(latencies) * 1000 if latencies else None,
        "peak_rss_mb": process_peak_rss(subject.pid) / MB,
    }


@dataclass(frozen=True)
class Measure:
    """A named measure, the systems it compares and the scenarios it runs in by default."""

    name: str
    title: str
    function: Callable[[Context, Subject], dict]
    systems: tuple[str, ...]
    scenarios: tuple[str, ...] | None = None  # None: every scenario


LISTING_SCENARIOS = ("loopback", "rtt40")

MEASURES: dict[str, Measure] = {
    measure.name: measure
    for measure in (
        # Listings first: their cold numbers need folders no earlier measure touched.
        Measure("ls", "ls -l of the large folder", list_large_folder, (PMZFS, RCLONE), LISTING_SCENARIOS),
        Measure("find", "find over the tree", walk_tree, (PMZFS, RCLONE), LISTING_SCENARIOS),
        Measure("ttfb-open", "first byte after open", first_byte_after_open, SYSTEMS),
        Measure("ttfb-seek", "first byte after a seek", first_byte_after_seek, SYSTEMS),
        Measure("sequential", "sequential read", sequential_read, SYSTEMS),
        Measure("amplification", "bytes fetched per byte read, random 1 MiB reads", read_amplification, (PMZFS, RCLONE)),
        Measure("random", "parallel random 128 KiB reads", parallel_random_reads, (PMZFS, RCLONE)),
        Measure("ffprobe", "ffprobe of the large MP4", ffprobe_video, SYSTEMS),
        # One scenario only: the first copy of 1,000 files takes about 10 minutes.
        Measure("rsync", "no-op rsync -a", rsync_noop, (PMZFS, RCLONE), ("rtt40",)),
        # Last, so that the peak RSS covers everything the mount did.
        Measure("memory", "streaming plus random readers", streaming_with_random_readers, (PMZFS, RCLONE)),
    )
}
