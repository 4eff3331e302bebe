"""Reads through a real mount: listings, ranges, video, parallel readers, closing.

One emulator and one mount serve the whole module.  Each test reads its
own top-level folder, so the kernel's page cache of one test cannot hide a
wrong read of another.
"""

from __future__ import annotations

import hashlib
import os
import random
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest
from fusemount import MiB, run, running_emulator, seed_tree
from media import ffprobe_summary

pytestmark = pytest.mark.mount

# A tree like the demo content: nested folders, an empty folder, empty and
# one-byte files, sizes on and just past a 4 KiB page, non-ASCII names.
TREE = {
    "Movies": {
        "Big Buck Bunny (2008).mkv": (3 * MiB + 123, 1),
        "Extras": {
            "trailer.mp4": (700_001, 2),
            "notes.txt": b"Director's cut notes\n",
        },
    },
    "Music": {
        "Ünïcödé – Song.flac": (MiB, 3),
        "empty.txt": b"",
        "one-byte.bin": b"x",
    },
    "Documents": {
        "readme.txt": b"hello\n",
        "page.bin": (4096, 4),
        "page-plus-one.bin": (4097, 5),
    },
    "Empty folder": {},
    "root file.txt": b"a file at the top of the tree\n",
}

RANGES_SIZE = 5 * MiB + 4321
PREAD_SIZE = 3 * MiB + 77
BIG_SIZE = 64 * MiB
MANY_COUNT = 100
MANY_SIZE = MiB


@pytest.fixture(scope="module")
def library(tmp_path_factory, video_file):
    """The module's emulator, seeded with one top-level folder per test."""
    with running_emulator(tmp_path_factory.mktemp("emulator-state")) as emu:
        root = emu.root_id
        seeded = SimpleNamespace(emu=emu)
        seeded.tree = seed_tree(emu, emu.state.create_folder(root, "tree"), TREE)
        ranges = emu.state.create_folder(root, "ranges")
        seeded.ranges_id = emu.state.add_file(ranges, "dd.bin", (RANGES_SIZE, 11))
        seeded.pread_id = emu.state.add_file(ranges, "pread.bin", (PREAD_SIZE, 12))
        video = emu.state.create_folder(root, "video")
        seeded.video_id = emu.state.add_file(video, "video.mp4", Path(video_file))
        big = emu.state.create_folder(root, "big")
        seeded.big_id = emu.state.add_file(big, "64MiB.bin", (BIG_SIZE, 13))
        many = emu.state.create_folder(root, "many")
        seeded.many = {
            f"file-{index:03d}.bin": emu.state.add_file(many, f"file-{index:03d}.bin", (MANY_SIZE, 1000 + index))
            for index in range(MANY_COUNT)
        }
        yield seeded


@pytest.fixture(scope="module")
def mounted(library, module_mounter) -> Path:
    """Mountpoint of the module's mount of ``library``."""
    return module_mounter(library.emu).path


def parse_ls_recursive(output: str, top: Path) -> dict[str, dict[str, tuple[str, int]]]:
    """Parse ``ls -laR --time-style=+%s`` output into {folder: {name: (mode, size)}}.

    Folders are relative to ``top`` ("" is ``top`` itself); "." and ".." are dropped.
    """
    listing: dict[str, dict[str, tuple[str, int]]] = {}
    current: dict[str, tuple[str, int]] | None = None
    for line in output.splitlines():
        if not line:
            continue
        if line.endswith(":") and line[:-1].startswith(str(top)):
            folder = os.path.relpath(line[:-1], top)
            current = listing.setdefault("" if folder == "." else folder, {})
            continue
        if line.startswith("total "):
            continue
        mode, _links, _owner, _group, size, _mtime, name = line.split(maxsplit=6)
        if name in (".", ".."):
            continue
        assert current is not None, f"ls printed an entry before a folder header: {line!r}"
        current[name] = (mode, int(size))
    return listing


def expected_listing(library) -> dict[str, dict[str, tuple[str, int | None]]]:
    state = library.emu.state
    expected: dict[str, dict[str, tuple[str, int | None]]] = {"": {}}
    for folder in library.tree.folders:
        expected[folder] = {}
    for folder in library.tree.folders:
        parent, _, name = folder.rpartition("/")
        expected[parent][name] = ("drwxr-xr-x", None)
    for path, file_id in library.tree.files.items():
        parent, _, name = path.rpartition("/")
        expected[parent][name] = ("-rw-r--r--", state.file(file_id).size)
    return expected


def test_tree_ls_recursive_lists_everything(library, mounted):
    top = mounted / "tree"
    result = run(["ls", "-laR", "--quoting-style=literal", "--time-style=+%s", str(top)])
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""

    listing = parse_ls_recursive(result.stdout, top)
    expected = expected_listing(library)
    assert sorted(listing) == sorted(expected)
    for folder, entries in expected.items():
        assert sorted(listing[folder]) == sorted(entries), f"names in {folder!r}"
        for name, (mode, size) in entries.items():
            shown_mode, shown_size = listing[folder][name]
            assert shown_mode == mode, f"mode of {folder}/{name}"
            if size is not None:
                assert shown_size == size, f"size of {folder}/{name}"


def test_tree_find_finds_every_entry(library, mounted):
    top = mounted / "tree"

    files = run(["find", str(top), "-type", "f"])
    assert files.returncode == 0, files.stderr
    found_files = {os.path.relpath(line, top) for line in files.stdout.splitlines()}
    assert found_files == set(library.tree.files)

    folders = run(["find", str(top), "-mindepth", "1", "-type", "d"])
    assert folders.returncode == 0, folders.stderr
    found_folders = {os.path.relpath(line, top) for line in folders.stdout.splitlines()}
    assert found_folders == set(library.tree.folders)


def test_tree_stat_sizes_and_modes(library, mounted):
    top = mounted / "tree"
    state = library.emu.state
    paths = [*library.tree.files, *library.tree.folders]
    result = run(["stat", "--printf", "%s\t%a\t%F\t%u\t%n\n", *(str(top / path) for path in paths)])
    assert result.returncode == 0, result.stderr

    shown = {}
    for line in result.stdout.splitlines():
        size, mode, kind, uid, name = line.split("\t", 4)
        shown[os.path.relpath(name, top)] = (int(size), mode, kind, int(uid))
    assert sorted(shown) == sorted(paths)
    for path, file_id in library.tree.files.items():
        size, mode, kind, uid = shown[path]
        assert kind in ("regular file", "regular empty file"), path
        assert size == state.file(file_id).size, path
        assert mode == "644", path
        assert uid == os.getuid(), path
    for path in library.tree.folders:
        _size, mode, kind, uid = shown[path]
        assert kind == "directory", path
        assert mode == "755", path
        assert uid == os.getuid(), path

    root = os.stat(mounted)
    assert stat.S_ISDIR(root.st_mode)
    assert stat.S_IMODE(root.st_mode) == 0o755


def test_tree_cmp_every_file(library, mounted):
    top = mounted / "tree"
    state = library.emu.state
    differing = []
    for path, file_id in library.tree.files.items():
        result = run(["cmp", str(top / path), str(state.file_path(file_id))])
        if result.returncode != 0:
            differing.append(f"{path}: {result.stdout.strip()} {result.stderr.strip()}")
    assert differing == []


@pytest.mark.parametrize(
    ("block_size", "skip", "count"),
    [
        (4096, 0, 1),
        (4096, 1, 3),
        (4096, 255, 2),  # across the 1 MiB boundary
        (4096, 700, 37),
        (4096, 1278, 5),  # across EOF
        (4096, 1281, 1),  # the last, partial block
        (4096, 1282, 1),  # past EOF
        (4096, 5000, 2),  # far past EOF
        (MiB, 2, 2),
        (1000, 3333, 7),  # blocks not aligned to pages
    ],
)
def test_dd_ranges_match_reference(library, mounted, block_size, skip, count):
    reference = library.emu.state.file_bytes(library.ranges_id)
    assert len(reference) == RANGES_SIZE
    path = mounted / "ranges" / "dd.bin"

    def dd(source: Path):
        arguments = [f"bs={block_size}", f"skip={skip}", f"count={count}", "iflag=fullblock", "status=none"]
        return run(["dd", f"if={source}", *arguments], text=False)

    result = dd(path)
    on_source = dd(library.emu.state.file_path(library.ranges_id))
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    assert on_source.returncode == 0, on_source.stderr
    start = skip * block_size
    expected = reference[start : start + count * block_size]
    assert len(result.stdout) == len(expected)
    assert result.stdout == expected
    assert result.stdout == on_source.stdout


def test_pread_random_ranges(library, mounted):
    reference = library.emu.state.file_bytes(library.pread_id)
    size = len(reference)
    lengths = [1, 7, 4095, 4096, 4097, 65536, 131072, 131073, 1_000_000]
    rng = random.Random(20240605)
    wrong = []

    fd = os.open(mounted / "ranges" / "pread.bin", os.O_RDONLY)
    try:
        for _ in range(200):
            offset = rng.randrange(0, size + 65536)
            length = rng.choice([*lengths, rng.randrange(1, 2 * MiB)])
            data = os.pread(fd, length, offset)
            if data != reference[offset : offset + length]:
                wrong.append((offset, length, len(data)))

        at_eof = os.pread(fd, 10, size)
        past_eof = os.pread(fd, 4096, size + MiB)
        across_eof = os.pread(fd, 4096, size - 10)
        assert os.fstat(fd).st_size == size
    finally:
        os.close(fd)

    assert wrong == [], f"(offset, length, returned length) of reads with wrong bytes: {wrong[:10]}"
    assert at_eof == b""
    assert past_eof == b""
    assert across_eof == reference[-10:]


def _read_ranges(fd: int, reference: bytes, seed: int, reads: int, wrong: list) -> None:
    rng = random.Random(seed)
    for _ in range(reads):
        offset = rng.randrange(0, len(reference))
        length = rng.randrange(1, 512 * 1024)
        try:
            data = os.pread(fd, length, offset)
        except OSError as exc:
            wrong.append((seed, offset, length, f"errno {exc.errno}"))
            continue
        if data != reference[offset : offset + length]:
            wrong.append((seed, offset, length, f"{len(data)} bytes, wrong"))


def test_sixteen_threads_one_big_file(library, mounted):
    reference = library.emu.state.file_bytes(library.big_id)
    path = mounted / "big" / "64MiB.bin"
    wrong: list = []

    # Even threads share one handle, odd threads open their own, as a
    # player and a thumbnailer reading the same file at once would.
    shared_fd = os.open(path, os.O_RDONLY)
    own_fds = []
    try:
        threads = []
        for index in range(16):
            if index % 2:
                fd = os.open(path, os.O_RDONLY)
                own_fds.append(fd)
            else:
                fd = shared_fd
            threads.append(threading.Thread(target=_read_ranges, args=(fd, reference, index, 24, wrong)))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        alive = [thread.name for thread in threads if thread.is_alive()]
    finally:
        for fd in [shared_fd, *own_fds]:
            os.close(fd)

    assert alive == [], "reader threads still running after 120 s"
    assert wrong == [], f"(thread, offset, length, result) of bad reads: {wrong[:10]}"
    with open(path, "rb") as whole:
        digest = hashlib.sha256(whole.read()).hexdigest()
    assert digest == hashlib.sha256(reference).hexdigest()


def test_hundred_files_in_parallel(library, mounted):
    state = library.emu.state
    expected = {name: hashlib.sha256(state.file_bytes(file_id)).hexdigest() for name, file_id in library.many.items()}

    def digest_of(name: str) -> tuple[str, str]:
        with open(mounted / "many" / name, "rb") as file:
            return name, hashlib.sha256(file.read()).hexdigest()

    with ThreadPoolExecutor(max_workers=16) as pool:
        shown = dict(pool.map(digest_of, sorted(expected)))

    assert len(shown) == MANY_COUNT
    wrong = sorted(name for name in expected if shown[name] != expected[name])
    assert wrong == []


def test_video_ffprobe_matches_source(library, mounted):
    source = library.emu.state.file_path(library.video_id)
    on_mount = ffprobe_summary(mounted / "video" / "video.mp4")
    at_source = ffprobe_summary(source)

    assert float(at_source["format"]["duration"]) > 1
    assert on_mount["format"]["duration"] == at_source["format"]["duration"]
    assert [s["codec_type"] for s in on_mount["streams"]] == [s["codec_type"] for s in at_source["streams"]]
    assert on_mount["streams"] == at_source["streams"]
    assert on_mount["format"] == at_source["format"]


def _extract_frame(video: Path, seconds: float, out: Path) -> None:
    result = run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-ss", f"{seconds:.3f}", "-i", str(video), "-frames:v", "1", str(out)],
        timeout=60,
    )
    assert result.returncode == 0, f"ffmpeg -ss {seconds} on {video}: {result.stderr}"
    assert result.stderr == "", f"ffmpeg -ss {seconds} on {video}"


def test_video_seek_extracts_frame(library, mounted, tmp_path):
    source = library.emu.state.file_path(library.video_id)
    duration = float(ffprobe_summary(source)["format"]["duration"])

    for seconds in (duration / 2, duration - 1.5):
        from_mount = tmp_path / f"mount-{seconds:.1f}.png"
        from_source = tmp_path / f"source-{seconds:.1f}.png"
        _extract_frame(mounted / "video" / "video.mp4", seconds, from_mount)
        _extract_frame(source, seconds, from_source)
        frame = from_mount.read_bytes()
        assert frame.startswith(b"\x89PNG\r\n\x1a\n"), f"frame at {seconds} s"
        assert frame == from_source.read_bytes(), f"frame at {seconds} s"


def test_video_decodes_whole_file(mounted):
    result = run(
        ["ffmpeg", "-nostdin", "-v", "error", "-xerror", "-i", str(mounted / "video" / "video.mp4"), "-f", "null", "-"],
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_close_stops_downloads(emulator, mount):
    # Capped links make a read-ahead that keeps running after close visible
    # in bytes_served: 4 connections at 4 MB/s stay far below the file size.
    emulator.options.link_rate = 4e6
    size = 48 * MiB
    file_id = emulator.state.add_file(emulator.root_id, "stream.bin", (size, 21))
    reference = emulator.state.file_bytes(file_id)
    path = mount(emulator).path / "stream.bin"

    first = open(path, "rb")
    second = open(path, "rb")
    try:
        chunks = [first.read(64 * 1024) for _ in range(8)]
        second.seek(8 * MiB)
        assert second.read(256 * 1024) == reference[8 * MiB : 8 * MiB + 256 * 1024]
    finally:
        first.close()
    try:
        # The second handle still reads after the first one closed.
        assert second.read(256 * 1024) == reference[8 * MiB + 256 * 1024 : 8 * MiB + 512 * 1024]
    finally:
        second.close()
    assert b"".join(chunks) == reference[: 512 * 1024]

    # The kernel sends RELEASE after close() returns; give it a moment.
    time.sleep(0.5)
    served_after_close = emulator.counters.bytes_served.get(file_id, 0)
    time.sleep(1.0)
    served_later = emulator.counters.bytes_served.get(file_id, 0)

    assert served_after_close > 0
    assert served_after_close < size, "the whole file was served before close, so growth cannot be seen"
    assert served_later == served_after_close


def test_kernel_readahead_set(emulator, mount):
    mounted = mount(emulator, "--kernel-readahead", "2M")
    device = os.stat(mounted.path).st_dev
    setting = Path(f"/sys/class/bdi/{os.major(device)}:{os.minor(device)}/read_ahead_kb")

    # The mount sets it right after its first stat succeeds.
    deadline = time.monotonic() + 10
    while setting.read_text().strip() != "2048" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert setting.read_text().strip() == "2048"
