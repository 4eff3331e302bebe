"""The demo library that ``--demo-content`` seeds into an emulator.

It seeds once per state directory: a flag in the state records it, so a
restart neither duplicates the library nor brings back what a user deleted.
"""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path

from pmzfs.emulator.state import StateStore

log = logging.getLogger(__name__)

MIB = 1024 * 1024
LARGE_FILE_SIZE = 256 * MIB
LARGE_FILE_SEED = "pmzfs-demo-large"

WELCOME = """Welcome to the pmzfs demo library.

Everything here is served by the local pmzfs emulator, not by premiumize.me.
Open the videos with mpv or VLC, copy files in and out, rename and delete.
"""

SUBTITLES = """1
00:00:01,000 --> 00:00:04,000
This is the pmzfs demo video.

2
00:00:05,000 --> 00:00:09,000
It shows a test pattern and plays a 440 Hz tone.
"""


def demo_video() -> Path:
    """Return the path of the bundled 24-second H.264/AAC demo video."""
    return Path(str(resources.files("pmzfs.emulator") / "data" / "demo.mp4"))


def seed_demo_content(state: StateStore) -> bool:
    """Seed the demo library unless this state already had it; return whether it seeded."""
    with state.lock:
        if state.extra.get("demo_seeded"):
            return False
        state.extra["demo_seeded"] = True
        state.mark_dirty()
    video = demo_video()
    add_folder = state.create_folder

    movies = add_folder(None, "Movies")
    state.add_file(movies, "Test Pattern (2024).mp4", video)
    state.add_file(movies, "Ünïcödé Fïlm 日本語の映画 🎬.mp4", video)

    series = add_folder(None, "Series")
    show = add_folder(series, "Show Name")
    season = add_folder(show, "Season 01")
    state.add_file(season, "Show Name - S01E01 - Pilot.mp4", video)
    state.add_file(season, "Show Name - S01E01 - Pilot.srt", SUBTITLES.encode())
    state.add_file(season, "Show Name - S01E02 - The Second One.mp4", video)

    documents = add_folder(None, "Documents")
    state.add_file(documents, "notes with spaces.txt", b"A file name with spaces.\n")
    state.add_file(documents, "日本語のメモ.txt", "日本語のテキストファイルです。\n".encode())
    state.add_file(documents, "party 🎉 plan.md", "# Party 🎉\n\n- music\n- cake\n".encode())
    add_folder(documents, "Empty Folder")

    large = add_folder(None, "Large Files")
    state.add_file(large, "random-256MiB.bin", (LARGE_FILE_SIZE, LARGE_FILE_SEED))

    state.add_file(None, "Welcome.txt", WELCOME.encode())
    log.info("seeded the demo library into %s", state.directory)
    return True
