"""Measure the Reader against an emulator in a subprocess on loopback.

Reads one generated file sequentially in 128 KiB pieces (the size FUSE
sends) and reports MB/s, the CPU seconds this process spent per GiB, and
the time to the first byte after random seeks.  ``--mixed`` streams once
more while 16 tasks read at random offsets, and reports the peak memory
of the chunks.  The peak RSS of this process (the emulator runs in its
own) ends the report.  ``--curl`` adds one curl
download of the same link as the single-connection baseline.  The state
directory is temporary and removed at the end.

    .venv/bin/python tests/reader/bench_reader.py --size 1G
    .venv/bin/python tests/reader/bench_reader.py --size 512M --rate 25M --rtt 0.04 --curl
    .venv/bin/python tests/reader/bench_reader.py --size 1G --profile /tmp/reader.html

Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import trio

from pmzfs.emulator import Emulator
from pmzfs.reader import Reader

MiB = 1024 * 1024
FUSE_READ = 128 * 1024
API_KEY = "bench-key"
UNITS = {"K": 1024, "M": MiB, "G": 1024 * MiB}


def parse_size(text: str) -> int:
    text = text.strip().upper()
    if text and text[-1] in UNITS:
        return int(float(text[:-1]) * UNITS[text[-1]])
    return int(text)


def seed_state(state_dir: Path, size: int) -> str:
    """Create the state with one generated file of ``size`` bytes; return its id."""
    emulator = Emulator(state_dir=state_dir)
    try:
        return emulator.state.add_file(emulator.root_id, "bench.bin", (size, "bench"))
    finally:
        emulator.stop()


def start_emulator(state_dir: Path, rate: str | None, rtt: float) -> tuple[subprocess.Popen, str]:
    command = [sys.executable, "-m", "pmzfs", "emulator", "--state", str(state_dir), "--api-key", API_KEY]
    if rate:
        command += ["--link-rate", rate]
    if rtt:
        command += ["--link-rtt", str(rtt)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    base_url = process.stdout.readline().strip()
    if not base_url.startswith("http://127.0.0.1:"):
        process.terminate()
        raise SystemExit(f"the emulator did not print its URL; it printed {base_url!r}")
    return process, base_url


def fetch_link(base_url: str, file_id: str) -> str:
    request = urllib.request.Request(
        f"{base_url}/api/item/details?id={file_id}", headers={"Authorization": f"Bearer {API_KEY}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        document = json.load(response)
    return document["link"]


def curl_speed(link: str) -> float:
    output = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{speed_download}", link], capture_output=True, text=True, check=True
    ).stdout
    return float(output) / 1e6


async def read_sequential(reader: Reader, file_id: str, size: int, link: str, refresh) -> tuple[float, float]:
    handle = reader.open(file_id, size, link, refresh)
    wall = time.perf_counter()
    cpu = time.process_time()
    offset = 0
    while offset < size:
        data = await handle.read(offset, FUSE_READ)
        offset += len(data)
    wall = time.perf_counter() - wall
    cpu = time.process_time() - cpu
    await handle.close()
    return wall, cpu


async def seek_latencies(reader: Reader, file_id: str, size: int, link: str, refresh, count: int) -> list[float]:
    """Stream 8 MiB, then seek to random offsets; return the seconds to each first byte."""
    handle = reader.open(file_id, size, link, refresh)
    for offset in range(0, 8 * MiB, FUSE_READ):
        await handle.read(offset, FUSE_READ)
    rng = random.Random(5)
    latencies = []
    for _ in range(count):
        offset = rng.randrange(size - 4 * MiB) // 4096 * 4096
        began = time.perf_counter()
        await handle.read(offset, FUSE_READ)
        latencies.append(time.perf_counter() - began)
        for next_offset in range(offset + FUSE_READ, offset + 4 * MiB, FUSE_READ):
            await handle.read(next_offset, FUSE_READ)
    await handle.close()
    return latencies


async def mixed_load(reader: Reader, file_id: str, size: int, link: str, refresh) -> dict[str, object]:
    """Stream the file while 16 tasks read 128 KiB at random offsets of it; return peak memory."""
    peak = 0
    streaming = True

    async def random_reads(seed: int) -> None:
        nonlocal peak
        rng = random.Random(seed)
        handle = reader.open(file_id, size, link, refresh)
        while streaming:
            await handle.read(rng.randrange(size), FUSE_READ)
            peak = max(peak, reader.stats()["memory_in_use"])
        await handle.close()

    async with trio.open_nursery() as nursery:
        for seed in range(16):
            nursery.start_soon(random_reads, seed)
        handle = reader.open(file_id, size, link, refresh)
        for offset in range(0, size, FUSE_READ):
            await handle.read(offset, FUSE_READ)
            peak = max(peak, reader.stats()["memory_in_use"])
        await handle.close()
        streaming = False
    return {"mixed_peak_memory_in_use_mib": round(peak / MiB, 1)}


async def run(args: argparse.Namespace, base_url: str, file_id: str, size: int) -> dict[str, object]:
    link = fetch_link(base_url, file_id)

    async def refresh() -> str:
        return fetch_link(base_url, file_id)

    result: dict[str, object] = {"size": size, "rate": args.rate, "rtt": args.rtt, "connections": args.connections}
    async with Reader(connections_per_file=args.connections, max_window=args.window) as reader:
        wall, cpu = await read_sequential(reader, file_id, size, link, refresh)
        result["reader_mb_per_s"] = round(size / wall / 1e6, 1)
        result["cpu_seconds_per_gib"] = round(cpu / (size / (1024 * MiB)), 2)
        stats = reader.stats()
        result["requests"] = stats["requests"]
        result["bytes_fetched_per_byte_read"] = round(stats["bytes_fetched"] / size, 3)
        if args.seeks:
            latencies = await seek_latencies(reader, file_id, size, link, refresh, args.seeks)
            result["seek_first_byte_ms"] = sorted(round(value * 1000, 1) for value in latencies)
        if args.mixed:
            result.update(await mixed_load(reader, file_id, size, link, refresh))
    # ru_maxrss is in KiB on Linux.
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6, 1)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=parse_size, default=1024 * MiB, help="file size, e.g. 1G (default 1G)")
    parser.add_argument("--rate", help="per-connection cap of the emulator, e.g. 25M (default uncapped)")
    parser.add_argument("--rtt", type=float, default=0.0, help="round trip the emulator adds, in seconds")
    parser.add_argument("--connections", type=int, default=4, help="connections_per_file (default 4)")
    parser.add_argument("--window", type=parse_size, default=32 * MiB, help="max_window (default 32M)")
    parser.add_argument("--seeks", type=int, default=0, help="random seeks to time after the read")
    parser.add_argument("--mixed", action="store_true", help="stream once more with 16 random readers beside")
    parser.add_argument("--curl", action="store_true", help="also download once with curl")
    parser.add_argument("--profile", type=Path, help="write a pyinstrument profile of the read: text for .txt, else HTML")
    args = parser.parse_args()

    temporary = Path(tempfile.mkdtemp(prefix="pmzfs-bench-reader-"))
    process = None
    try:
        file_id = seed_state(temporary / "state", args.size)
        process, base_url = start_emulator(temporary / "state", args.rate, args.rtt)
        if args.profile:
            from pyinstrument import Profiler

            profiler = Profiler(async_mode="enabled")
            profiler.start()
        result = trio.run(run, args, base_url, file_id, args.size)
        if args.profile:
            profiler.stop()
            if args.profile.suffix == ".txt":
                args.profile.write_text(profiler.output_text(unicode=True, show_all=False))
            else:
                args.profile.write_text(profiler.output_html())
        if args.curl:
            result["curl_mb_per_s"] = round(curl_speed(fetch_link(base_url, file_id)), 1)
        print(json.dumps(result, indent=2))
    finally:
        if process is not None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
        shutil.rmtree(temporary, ignore_errors=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
