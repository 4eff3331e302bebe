"""A real mount while the API or the file links fail.

Whatever fails, a read returns the file's right bytes or an error (EAGAIN,
EIO), never wrong bytes, and the mount stays up.
"""

from __future__ import annotations

import errno
import os
import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import pytest
from fusemount import MiB, is_mounted, run, seed_tree

pytestmark = pytest.mark.mount

CHUNK = 64 * 1024


def read_exactly(fd: int, length: int) -> bytes:
    parts = []
    while length > 0:
        part = os.read(fd, min(length, MiB))
        if not part:
            break
        parts.append(part)
        length -= len(part)
    return b"".join(parts)


def check_read(path: Path, reference: bytes) -> tuple[str, object]:
    """Read ``path`` in chunks and compare each chunk with ``reference``.

    Returns ("ok", None), ("error", errno) for an open or read that failed,
    or ("wrong", offset) for the first chunk whose bytes differ.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        return "error", exc.errno
    try:
        offset = 0
        while True:
            try:
                chunk = os.read(fd, CHUNK)
            except OSError as exc:
                return "error", exc.errno
            if chunk != reference[offset : offset + len(chunk)]:
                return "wrong", offset
            if not chunk:
                break
            offset += len(chunk)
        if offset != len(reference):
            return "wrong", offset
        return "ok", None
    finally:
        os.close(fd)


@pytest.mark.timeout(120)
def test_read_survives_link_expiry(emulator, mount):
    slow_id = emulator.state.add_file(emulator.root_id, "slow.bin", (32 * MiB, 31))
    later_id = emulator.state.add_file(emulator.root_id, "later.bin", (2 * MiB, 32))
    slow_reference = emulator.state.file_bytes(slow_id)
    later_reference = emulator.state.file_bytes(later_id)
    emulator.options.link_expiry = 1.0
    emulator.options.link_rate = 8e6
    mounted = mount(emulator).path

    assert sorted(os.listdir(mounted)) == ["later.bin", "slow.bin"]
    emulator.counters.reset()

    fd = os.open(mounted / "slow.bin", os.O_RDONLY)
    try:
        head = read_exactly(fd, 4 * MiB)
        # Every link issued so far is dead after this sleep.
        time.sleep(2.5)
        rest = read_exactly(fd, 32 * MiB)
    finally:
        os.close(fd)
    later = (mounted / "later.bin").read_bytes()

    assert len(head) == 4 * MiB
    assert head == slow_reference[: 4 * MiB]
    assert len(rest) == 28 * MiB
    assert rest == slow_reference[4 * MiB :]
    assert later == later_reference
    # later.bin was opened 2.5 s after its link was issued, so a fresh link
    # must have been fetched, from item/details or a new listing.
    calls = emulator.counters.api_calls
    assert calls.get("item/details", 0) + calls.get("folder/list", 0) >= 1


def _storm_files(emulator) -> dict[str, bytes]:
    """Seed 24 files, each in its own folder so that each read needs its own listing."""
    storm = emulator.state.create_folder(emulator.root_id, "storm")
    references = {}
    for index in range(24):
        folder = emulator.state.create_folder(storm, f"folder-{index:02d}")
        file_id = emulator.state.add_file(folder, "part.bin", (256 * 1024 + index, 40 + index))
        references[f"folder-{index:02d}/part.bin"] = emulator.state.file_bytes(file_id)
    return references


def _read_all(folder: Path, references: dict[str, bytes], timeout: float) -> dict[str, tuple[str, object]]:
    """Read every file in 8 threads; a read still blocked after ``timeout`` seconds counts as ("hung", None)."""
    pool = ThreadPoolExecutor(max_workers=8)
    futures = {name: pool.submit(check_read, folder / name, references[name]) for name in sorted(references)}
    wait(futures.values(), timeout=timeout)
    # Threads blocked in the kernel cannot be cancelled. They end when
    # teardown unmounts, so do not wait for them here.
    pool.shutdown(wait=False, cancel_futures=True)
    return {name: future.result() if future.done() else ("hung", None) for name, future in futures.items()}


@pytest.mark.timeout(200)
@pytest.mark.parametrize("storm", ["injected", "requests_per_second"])
def test_rate_limit_storm_never_wrong_data(emulator, mount, storm):
    references = _storm_files(emulator)
    # Links die after a second, so reads keep needing item/details.
    emulator.options.link_expiry = 1.0
    mounted = mount(emulator, "--dir-cache-ttl", "1", expect_errors=True)
    folder = mounted.path / "storm"
    time.sleep(1.2)

    if storm == "injected":
        # The client pauses 1, 2, 4, 8 s after successive rate limits, so
        # four in a row on each endpoint are a storm of about 15 s.
        emulator.fail_next("folder/list", "rate_limit_reached", count=4)
        emulator.fail_next("item/details", "rate_limit_reached", count=4)
    else:
        emulator.options.requests_per_second = 3
    outcomes = _read_all(folder, references, timeout=100)

    hung = sorted(name for name, (kind, _) in outcomes.items() if kind == "hung")
    wrong = {name: offset for name, (kind, offset) in outcomes.items() if kind == "wrong"}
    bad_errors = {
        name: errno.errorcode.get(code, code)
        for name, (kind, code) in outcomes.items()
        if kind == "error" and code not in (errno.EAGAIN, errno.EIO)
    }
    assert "rate_limit_reached" in mounted.stderr(), "the storm never reached the client"
    assert hung == [], "files whose open or read was still blocked after 100 s"
    assert wrong == {}, "files whose reads returned wrong bytes, with the first bad offset"
    assert bad_errors == {}, "only EAGAIN or EIO may report a rate limit"
    assert mounted.is_running()
    assert is_mounted(mounted.path)

    # Once the storm is over, every file reads correctly again.
    emulator.options.requests_per_second = None
    emulator.faults.clear()
    outcomes = _read_all(folder, references, timeout=30)
    failed = {name: outcome for name, outcome in outcomes.items() if outcome[0] != "ok"}
    assert failed == {}, "files that still fail after the storm ended"
    assert mounted.is_running()


def _find(path: Path) -> tuple[int, set[str], str]:
    # Print "never-listed" but prune it, so its contents stay unlisted.
    never_listed = str(path / "never-listed")
    result = run(["find", str(path), "(", "-path", never_listed, "-prune", "-print", ")", "-o", "-print"], timeout=60)
    return result.returncode, {os.path.relpath(line, path) for line in result.stdout.splitlines()}, result.stderr


@pytest.mark.timeout(150)
def test_find_during_outage_keeps_known_entries(emulator, mount):
    def stat_error(path: str) -> str | None:
        try:
            os.stat(mounted.path / path)
        except OSError as exc:
            return errno.errorcode.get(exc.errno, str(exc.errno))
        return None

    spec = {
        f"show-{show}": {
            f"season-{season}": {f"episode-{episode}.mkv": (1000 * show + 100 * season + episode, episode) for episode in range(3)}
            for season in range(2)
        }
        for show in range(2)
    }
    spec["never-listed"] = {"inner": {"file.txt": b"only listed after the outage\n"}}
    seeded = seed_tree(emulator, emulator.root_id, spec)
    known_files = sorted(path for path in seeded.files if not path.startswith("never-listed/"))
    known_folders = sorted(path for path in seeded.folders if not path.startswith("never-listed/"))
    mounted = mount(emulator, "--dir-cache-ttl", "1", expect_errors=True)

    returncode, before, stderr = _find(mounted.path)
    assert returncode == 0, stderr
    assert before == {".", *known_files, *known_folders}

    emulator.fail_next("folder/list", "service_down", count=100_000)
    # Let every cached listing pass its TTL.
    time.sleep(1.5)
    returncode, during, stderr = _find(mounted.path)

    assert returncode == 0, stderr
    assert stderr == ""
    assert sorted(before - during) == [], "entries missing from find during the outage"
    assert sorted(during - before) == [], "entries find showed during the outage but not before"

    # Stat in parallel, as a file manager does.
    with ThreadPoolExecutor(max_workers=8) as pool:
        stat_errors = dict(zip([*known_files, *known_folders], pool.map(stat_error, [*known_files, *known_folders])))
    stat_failures = {path: error for path, error in stat_errors.items() if error is not None}
    assert stat_failures == {}, "known entries that stat failed on during the outage"

    # A folder never listed cannot be listed now: EIO or EAGAIN, or its true
    # contents, but never an empty folder and never ENOENT.
    try:
        never_listed = os.listdir(mounted.path / "never-listed")
    except OSError as exc:
        assert exc.errno in (errno.EIO, errno.EAGAIN), errno.errorcode.get(exc.errno)
    else:
        assert never_listed == ["inner"]
    assert mounted.is_running()
    assert is_mounted(mounted.path)

    # After the outage the folder lists, so no failure was cached as empty.
    emulator.faults.clear()
    assert os.listdir(mounted.path / "never-listed") == ["inner"]
    assert os.listdir(mounted.path / "never-listed" / "inner") == ["file.txt"]
