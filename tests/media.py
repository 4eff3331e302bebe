"""Test videos: the emulator's demo video, or one that ffmpeg generates.

``ffprobe_summary`` returns what players read from a container, so a test
can compare a file on a mount with its source.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

# The emulator's demo content ships this video once it exists.
DEMO_VIDEO = Path(__file__).resolve().parent.parent / "pmzfs" / "emulator" / "data" / "demo.mp4"

VIDEO_SECONDS = 10


def ffmpeg_missing() -> str | None:
    """Return why videos cannot be made or probed here, or None when they can."""
    for program in ("ffmpeg", "ffprobe"):
        if shutil.which(program) is None:
            return f"{program} is not installed"
    return None


def make_test_video(path: Path, seconds: int = VIDEO_SECONDS) -> Path:
    """Write an H.264/AAC MP4 of ``seconds`` with a keyframe every second.

    The moov atom stays at the end of the file (no faststart), so a player
    must seek to the end first, as with many real downloads.
    """
    command = [
        "ffmpeg", "-nostdin", "-v", "error", "-y",
        "-f", "lavfi", "-i", f"testsrc=duration={seconds}:size=320x240:rate=25",
        "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
        "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
        "-g", "25", "-keyint_min", "25", "-sc_threshold", "0",
        "-c:a", "aac", "-b:a", "64k",
        "-shortest", str(path),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg failed to generate {path}: {result.stderr.strip()}")
    return path


def source_video(directory: Path) -> Path:
    """Return the demo video if the emulator ships one, else generate one in ``directory``."""
    if DEMO_VIDEO.is_file():
        return DEMO_VIDEO
    return make_test_video(directory / "generated.mp4")


def ffprobe_summary(path: Path) -> dict:
    """Return ffprobe's format and stream records of ``path`` without its file name."""
    command = [
        "ffprobe", "-v", "error", "-print_format", "json",
        "-show_format", "-show_streams", str(path),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise AssertionError(f"ffprobe {path} exited {result.returncode}: {result.stderr.strip()}")
    probe = json.loads(result.stdout)
    probe["format"].pop("filename", None)
    return probe
