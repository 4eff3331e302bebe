"""A large MP4 that ffprobe can parse, made in seconds and cached.

ffmpeg writes an MP4 as ``ftyp``, an 8-byte ``free`` box, ``mdat`` and then
``moov`` (the index) at the end, as a remux does without ``faststart``.
To reach several GiB without encoding hours of video, the builder grows
the ``mdat`` box. It turns ``free`` plus the 32-bit ``mdat`` header into
one 64-bit ``mdat`` header of the same 16 bytes, as ffmpeg itself does for
files over 4 GiB, so every sample keeps its offset. Then it appends zero
filler after the real samples, as a hole in a sparse file that takes
almost no disk space. ffprobe must read the header at the start and the
``moov`` box at the end, as it does for a real remux.
"""

from __future__ import annotations

import logging
import os
import struct
import subprocess
from pathlib import Path

log = logging.getLogger(__name__)



class VideoError(Exception):
    """The video could not be generated or does not parse."""


def _boxes(data: bytes) -> list[tuple[int, bytes, int, int]]:
    """Parse top-level boxes into (offset, type, header size, total size)."""
    boxes = []
    offset = 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        header = 8
        if size == 1:
            (size,) = struct.unpack(">Q", data[offset + 8 : offset + 16])
            header = 16
        elif size == 0:
            size = len(data) - offset
        if size < header:
            raise VideoError(f"invalid MP4 box {kind!r} of {size} bytes at offset {offset}")
        boxes.append((offset, kind, header, size))
        offset += size
    return boxes


def make_source(path: Path, seconds: int) -> None:
    """Encode a small test video of ``seconds`` with ffmpeg (no faststart)."""
    command = [
        "ffmpeg", "-nostdin", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=24",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", str(seconds),
        "-c:v", "libx264", "-preset", "ultrafast", "-crf", "40", "-g", "48",
        "-c:a", "aac", "-b:a", "16k",
        str(path),
    ]
    try:
        subprocess.run(command, check=True, timeout=300, capture_output=True)
    except FileNotFoundError as exc:
        raise VideoError("ffmpeg is not installed; install the Debian package ffmpeg") from exc
    except subprocess.CalledProcessError as exc:
        raise VideoError(f"ffmpeg failed: {exc.stderr.decode(errors='replace').strip()}") from exc


def grow_mp4(source: Path, target: Path, size: int) -> None:
    """Write ``source`` to ``target`` with its mdat box grown to make ``size`` bytes."""
    data = source.read_bytes()
    if size < len(data):
        raise VideoError(f"video size {size} is smaller than the source video ({len(data)} bytes)")
    boxes = _boxes(data)
    kinds = [kind for _, kind, _, _ in boxes]
    if b"mdat" not in kinds or b"moov" not in kinds:
        raise VideoError(f"{source} has no mdat or moov box")
    index = kinds.index(b"mdat")
    mdat_offset, _, mdat_header, mdat_size = boxes[index]
    if kinds.index(b"moov") < index:
        raise VideoError(f"{source} has its moov box before mdat; encode it without faststart")

    filler = size - len(data)
    if mdat_header == 16:
        header_offset = mdat_offset
    elif index > 0 and kinds[index - 1] == b"free" and boxes[index - 1][3] == 8:
        header_offset = mdat_offset - 8
    else:
        raise VideoError(f"{source} has no 8-byte free box before a 32-bit mdat box")
    payload_offset = mdat_offset + mdat_header
    payload_end = mdat_offset + mdat_size
    new_mdat_size = 16 + (payload_end - payload_offset) + filler

    partial = target.with_name(target.name + ".part")
    with open(partial, "wb") as out:
        out.write(data[:header_offset])
        out.write(struct.pack(">I4sQ", 1, b"mdat", new_mdat_size))
        out.write(data[payload_offset:payload_end])
        # Seeking past the end leaves a hole: the filler reads as zeros.
        out.seek(payload_end + filler)
        out.write(data[payload_end:])
    if partial.stat().st_size != size:
        raise VideoError(f"grown video is {partial.stat().st_size} bytes, expected {size}")
    os.replace(partial, target)


def probe_duration(path: Path) -> float:
    """Return the duration in seconds that ffprobe reads from ``path``."""
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, timeout=60,
    )
    if result.returncode != 0:
        raise VideoError(f"ffprobe cannot parse {path}: {result.stderr.strip()}")
    try:
        return float(result.stdout.strip())
    except ValueError as exc:
        raise VideoError(f"ffprobe printed no duration for {path}: {result.stdout!r}") from exc


def ensure_source(cache_dir: Path, seconds: int) -> Path:
    """Return the cached source video of ``seconds`` in ``cache_dir``, encoding it first if needed."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    source = cache_dir / f"source-{seconds}s.mp4"
    if not source.exists():
        log.info("encoding a %d s test video into %s", seconds, source)
        partial = cache_dir / f"partial-{source.name}"
        make_source(partial, seconds)
        os.replace(partial, source)
    return source
