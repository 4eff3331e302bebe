"""The files a run reads: their paths, sizes and how the emulator stores them.

Every path is relative to ``DATASET_ROOT``, a folder in the account's root,
so the same relative path names a file inside the pmzfs mount, inside the
rclone mount and in the emulator's manifest.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from bench.config import MiB, Sizes

DATASET_ROOT = "pmzfs-bench"

SEEK = "seek.bin"
RANDOM = "random.bin"
AMPLIFICATION = "amplify.bin"
MIXED_STREAM = "mixed-stream.bin"
MIXED_RANDOM = "mixed-random.bin"
VIDEO = "video/movie.mp4"
STREAM_FOLDER = "streams"
OPEN_FOLDER = "open"
LISTING_FOLDER = "listing"
TREE_FOLDER = "tree"
# Folder that the rsync measure writes into; it is not part of the seeded data.
RSYNC_FOLDER = "rsync-target"

# Size of each file in the listing folder and the tree: a subtitle or .nfo.
SMALL_FILE_SIZE = 2048
# Bytes of each file the time-to-first-byte-after-open measure opens.
OPEN_FILE_MAX = 64 * MiB


@dataclass(frozen=True)
class FileSpec:
    """One file of the dataset; ``video`` marks the generated MP4."""

    path: str
    size: int
    video: bool = False


def stream_path(size: int) -> str:
    """Return the path of the sequential-read file of ``size`` bytes.

    Each ``--size`` gets its own file, which the emulator process adds on
    start when it is missing, so a new size does not seed the dataset again.
    """
    return f"{STREAM_FOLDER}/stream-{size}.bin"


def open_file_path(index: int) -> str:
    return f"{OPEN_FOLDER}/open-{index:02d}.bin"


def listing_file_path(index: int) -> str:
    return f"{LISTING_FOLDER}/episode-{index:05d}.nfo"


def tree_file_path(folder: int, index: int) -> str:
    return f"{TREE_FOLDER}/show-{folder:04d}/episode-{index:02d}.srt"


def file_specs(sizes: Sizes) -> list[FileSpec]:
    """List every file of the dataset for ``sizes``, large files first.

    The sequential-read file is not in the list (see ``stream_path``).
    """
    specs = [
        FileSpec(MIXED_STREAM, sizes.seek_file_size),
        FileSpec(SEEK, sizes.seek_file_size),
        FileSpec(RANDOM, sizes.seek_file_size),
        FileSpec(AMPLIFICATION, sizes.seek_file_size),
        FileSpec(MIXED_RANDOM, sizes.seek_file_size),
        FileSpec(VIDEO, sizes.video_size, video=True),
    ]
    open_size = min(OPEN_FILE_MAX, sizes.seek_file_size)
    specs += [FileSpec(open_file_path(i), open_size) for i in range(sizes.ttfb_samples)]
    specs += [FileSpec(listing_file_path(i), SMALL_FILE_SIZE) for i in range(sizes.listing_files)]
    specs += [
        FileSpec(tree_file_path(folder, index), SMALL_FILE_SIZE)
        for folder in range(sizes.tree_folders)
        for index in range(sizes.tree_files_per_folder)
    ]
    return specs


def layout_key(sizes: Sizes) -> str:
    """Return a short hash that changes whenever the dataset for ``sizes`` changes."""
    specs = [(spec.path, spec.size, spec.video) for spec in file_specs(sizes)]
    specs.append(("video seconds", sizes.video_seconds))
    digest = hashlib.sha256(json.dumps(specs).encode()).hexdigest()
    return digest[:16]
