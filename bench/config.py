"""Scenarios and sizes of a benchmark run."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
MB = 1_000_000


@dataclass(frozen=True)
class Scenario:
    """Network conditions that the emulator imposes on every request."""

    name: str
    description: str
    # Round-trip time in seconds: a request on a reused connection waits one
    # round trip before its first byte, a request on a new connection two.
    rtt: float
    # Bytes per second that one file-link connection may send; None is no cap.
    link_rate: float | None

    @property
    def rtt_ms(self) -> float:
        return self.rtt * 1000


# One TCP connection carries at most one receive window per round trip.
# 6 MiB is Linux's default maximum receive window (the third value of
# net.ipv4.tcp_rmem), so over 40 ms one connection moves about 157 MB/s.
# The emulator's delay alone would let a connection run at loopback speed
# after its first byte, whatever the round-trip time.
TCP_WINDOW = 6 * MiB

SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        Scenario("loopback", "plain loopback", rtt=0.0, link_rate=None),
        Scenario("rtt40", "40 ms RTT, one 6 MiB TCP window per round trip", rtt=0.040, link_rate=TCP_WINDOW / 0.040),
        Scenario("rtt40-cap25", "40 ms RTT, 25 MB/s per connection", rtt=0.040, link_rate=25 * MB),
    )
}


@dataclass(frozen=True)
class Sizes:
    """How much data and how many samples each measure uses."""

    # Bytes of the file that the sequential read measure streams.
    stream_size: int = 1 * GiB
    # Bytes of the MP4 that ffprobe opens; its moov atom sits at the end.
    video_size: int = 4 * GiB
    # Seconds of video in that MP4: ten minutes make a moov box of a few
    # hundred KiB, closer to a film's than a clip of seconds would.
    video_seconds: int = 600
    # Bytes of each file that the seek and random-read measures open.
    seek_file_size: int = 1 * GiB
    # Samples of time to first byte, after open and after a seek.
    ttfb_samples: int = 20
    # Bytes that the time-to-first-byte measures read per sample.
    ttfb_read: int = 128 * KiB
    # Threads, reads per thread and read size of the parallel random reads.
    random_threads: int = 16
    random_reads_per_thread: int = 32
    random_read_size: int = 128 * KiB
    # Files in the folder that `ls -l` lists.
    listing_files: int = 10_000
    # Folders, and files in each, of the tree that `find` walks.
    tree_folders: int = 1_000
    tree_files_per_folder: int = 20
    # Files that the no-op `rsync -a` compares.
    rsync_files: int = 1_000
    # Reads, and bytes per read, of the read amplification measure.
    amplification_reads: int = 20
    amplification_read_size: int = 1 * MiB
    # Seconds the streaming-plus-random-readers memory measure runs at most.
    mixed_seconds: float = 20.0
    # Seconds any one measure of one target may take before it is stopped.
    measure_deadline: float = 600.0
    # Seconds the untimed set-up of a measure may take: the first rsync of
    # the rsync files into the mount, about 0.6 s per file at 40 ms RTT.
    setup_deadline: float = 1800.0

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Sizes:
        return cls(**data)


FULL_SIZES = Sizes()

# Small enough that a whole run over every scenario takes well under a minute:
# the smoke test uses these, and so does `--quick` on the command line.
QUICK_SIZES = Sizes(
    stream_size=16 * MiB,
    video_size=24 * MiB,
    video_seconds=20,
    seek_file_size=16 * MiB,
    ttfb_samples=4,
    random_threads=4,
    random_reads_per_thread=4,
    listing_files=200,
    tree_folders=10,
    tree_files_per_folder=5,
    rsync_files=20,
    amplification_reads=4,
    mixed_seconds=2.0,
    measure_deadline=60.0,
    setup_deadline=120.0,
)
