"""Reader against the emulator's real file links over loopback.

Checks count bytes and requests, never time.  Reads come in 128 KiB
pieces, the size the kernel sends through FUSE.
"""

from __future__ import annotations

import errno
import random

import pytest
import trio

from pmzfs.reader import Reader, ReadError

KiB = 1024
MiB = 1024 * KiB
FUSE_READ = 128 * KiB


async def read_range(handle, offset: int, length: int, piece: int = FUSE_READ) -> bytes:
    """Read ``length`` bytes at ``offset`` in FUSE-sized pieces, as the kernel would."""
    parts = []
    end = offset + length
    while offset < end:
        data = await handle.read(offset, min(piece, end - offset))
        if not data:
            break
        parts.append(data)
        offset += len(data)
    return b"".join(parts)


async def test_random_reads_match_file(add_file):
    file = add_file("random.bin", (24 * MiB + 12345, "random"))
    reference = file.data()
    rng = random.Random(7)
    async with Reader() as reader:
        handle = reader.open(file.id, file.size, file.link, file.refresh_link)
        for _ in range(200):
            offset = rng.randrange(file.size + 1000)
            length = rng.choice([1, 4096, FUSE_READ, 300 * KiB, 2 * MiB + 17])
            assert await handle.read(offset, length) == reference[offset : offset + length], (offset, length)
        await handle.close()
    assert file.refreshes == []


async def test_sequential_read_fetches_each_byte_once(add_file, emulator):
    file = add_file("movie.mkv", (64 * MiB + 777, "movie"))
    async with Reader() as reader:
        handle = reader.open(file.id, file.size, file.link, file.refresh_link)
        data = await read_range(handle, 0, file.size)
        await handle.close()
        stats = reader.stats()
    assert data == file.data()
    assert emulator.counters.bytes_served[file.id] == file.size
    assert stats["bytes_fetched"] == file.size
    assert stats["bytes_served"] == file.size
    assert stats["memory_in_use"] == 0


async def test_concurrent_tasks_on_one_handle(add_file):
    file = add_file("shared.bin", (32 * MiB, "shared"))
    reference = file.data()
    mismatches = []

    async def reader_task(handle, seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(12):
            offset = rng.randrange(file.size)
            length = rng.choice([FUSE_READ, MiB])
            if await read_range(handle, offset, length) != reference[offset : offset + length]:
                mismatches.append((seed, offset, length))

    async with Reader() as reader:
        handles = [reader.open(file.id, file.size, file.link, file.refresh_link) for _ in range(2)]
        async with trio.open_nursery() as nursery:
            for seed in range(16):
                nursery.start_soon(reader_task, handles[seed % 2], seed)
        for handle in handles:
            await handle.close()
        assert reader.stats()["memory_in_use"] == 0
    assert mismatches == []


async def test_sequential_tasks_on_one_file(add_file):
    file = add_file("parts.bin", (16 * MiB, "parts"))
    reference = file.data()
    part = file.size // 16
    results = {}

    async def read_part(handle, index: int) -> None:
        results[index] = await read_range(handle, index * part, part)

    async with Reader() as reader:
        handle = reader.open(file.id, file.size, file.link, file.refresh_link)
        async with trio.open_nursery() as nursery:
            for index in range(16):
                nursery.start_soon(read_part, handle, index)
        await handle.close()
    assert b"".join(results[index] for index in range(16)) == reference


async def test_hundred_files_in_parallel(add_file):
    files = [add_file(f"file{index:03}.bin", (64 * KiB + index * 9973, f"seed{index}")) for index in range(100)]
    results = {}
    # NOTE: the emulator listens with socketserver's default backlog of 5,
    # and a burst of 100 new connections then stalls some of them for
    # seconds, so at most 20 files read at one time.
    limiter = trio.CapacityLimiter(20)

    async def read_whole(handle, file) -> None:
        async with limiter:
            results[file.id] = await read_range(handle, 0, file.size)

    async with Reader() as reader:
        handles = [reader.open(file.id, file.size, file.link, file.refresh_link) for file in files]
        async with trio.open_nursery() as nursery:
            for handle, file in zip(handles, files):
                nursery.start_soon(read_whole, handle, file)
        assert reader.stats()["open_files"] == 100
        for handle in handles:
            await handle.close()
        assert reader.stats()["open_files"] == 0
    for file in files:
        assert results[file.id] == file.data(), file.id


async def test_link_expiry_mid_read(add_file, emulator):
    file = add_file("expiring.bin", (8 * MiB, "expiring"))
    reference = file.data()

    async def refresh_once() -> str:
        # Links carry their issue time in whole seconds, so a fresh link may
        # expire within a second.  Stopping the expiry keeps the test
        # independent of how fast the rest is read.
        emulator.options.link_expiry = None
        return await file.refresh_link()

    async with Reader() as reader:
        handle = reader.open(file.id, file.size, file.link, refresh_once)
        first = await read_range(handle, 0, 2 * MiB)
        emulator.options.link_expiry = 1.0
        # 2.1 s makes the current link expire for certain.
        await trio.sleep(2.1)
        rest = await read_range(handle, 2 * MiB, file.size - 2 * MiB)
        await handle.close()
        stats = reader.stats()
    assert first + rest == reference
    assert len(file.refreshes) == 1
    assert stats["link_refreshes"] == 1


async def test_resets_mid_body_are_resumed(add_file, emulator):
    file = add_file("flaky.bin", (16 * MiB, "flaky"))
    emulator.options.link_reset_after_fraction = 0.5
    emulator.options.link_reset_count = 5
    async with Reader() as reader:
        handle = reader.open(file.id, file.size, file.link, file.refresh_link)
        data = await read_range(handle, 0, file.size)
        await handle.close()
        stats = reader.stats()
    assert data == file.data()
    assert stats["retries"] == 5
    # A reset keeps the bytes before it, so nothing is fetched twice.
    assert stats["bytes_fetched"] == file.size


async def test_close_stops_downloads(add_file, emulator):
    file = add_file("slow.bin", (256 * MiB, "slow"))
    emulator.options.link_rate = 20e6
    async with Reader() as reader:
        handle = reader.open(file.id, file.size, file.link, file.refresh_link)
        await read_range(handle, 0, 6 * MiB)
        assert reader.stats()["memory_in_use"] > 0
        await handle.close()
        assert reader.stats()["memory_in_use"] == 0
        # The server counts each slice before it sends it, so one slice
        # per connection may still be counted after the close.
        await trio.sleep(0.5)
        served = emulator.counters.bytes_served[file.id]
        requests = emulator.counters.link_requests[file.id]
        await trio.sleep(1.0)
    assert emulator.counters.bytes_served[file.id] == served
    assert emulator.counters.link_requests[file.id] == requests
    assert served < 64 * MiB


async def test_random_reads_fetch_at_most_twice(add_file, emulator):
    file = add_file("big.bin", (512 * MiB, "big"))
    rng = random.Random(3)
    async with Reader() as reader:
        handle = reader.open(file.id, file.size, file.link, file.refresh_link)
        for _ in range(20):
            offset = rng.randrange(file.size - MiB) // 4096 * 4096
            await read_range(handle, offset, MiB)
        await handle.close()
        stats = reader.stats()
    assert stats["bytes_served"] == 20 * MiB
    assert emulator.counters.bytes_served[file.id] <= 2 * 20 * MiB
    assert stats["bytes_fetched"] <= 2 * 20 * MiB


async def test_probe_of_head_and_tail_is_cheap(add_file, emulator):
    """The pattern of ffprobe on an MP4 with its index at the end."""
    file = add_file("movie.mp4", (4 * 1024 * MiB, "probe"))
    async with Reader() as reader:
        handle = reader.open(file.id, file.size, file.link, file.refresh_link)
        await read_range(handle, 0, 256 * KiB)
        await read_range(handle, file.size - 4 * MiB, 4 * MiB)
        await read_range(handle, 48 * KiB, 512 * KiB)
        await read_range(handle, 200 * MiB, 256 * KiB)
        await handle.close()
    assert emulator.counters.bytes_served[file.id] <= 16 * MiB


async def test_memory_limit_is_respected(add_file):
    streamed = add_file("stream.bin", (48 * MiB, "stream"))
    others = [add_file(f"random{index}.bin", (8 * MiB, f"random{index}")) for index in range(16)]
    limit = 8 * MiB
    peak = 0

    async def stream(reader) -> None:
        nonlocal peak
        handle = reader.open(streamed.id, streamed.size, streamed.link, streamed.refresh_link)
        for offset in range(0, streamed.size, FUSE_READ):
            await handle.read(offset, FUSE_READ)
            peak = max(peak, reader.stats()["memory_in_use"] + reader.buffers.free_bytes)
        await handle.close()

    async def random_reads(reader, file, seed: int) -> None:
        nonlocal peak
        rng = random.Random(seed)
        handle = reader.open(file.id, file.size, file.link, file.refresh_link)
        for _ in range(10):
            await handle.read(rng.randrange(file.size), FUSE_READ)
            peak = max(peak, reader.stats()["memory_in_use"] + reader.buffers.free_bytes)
        await handle.close()

    async with Reader(memory_limit=limit) as reader:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stream, reader)
            for index, file in enumerate(others):
                nursery.start_soon(random_reads, reader, file, index)
        assert reader.stats()["memory_in_use"] == 0
    # Chunks and the free buffers kept for reuse share the limit.  Reads
    # that miss memory fetch their own 256 KiB even over the limit, so 17
    # readers may exceed it by that much each.
    assert peak <= limit + 17 * 256 * KiB


async def test_expired_link_that_stays_dead_is_eio(add_file, emulator):
    file = add_file("gone.bin", (MiB, "gone"))
    emulator.options.link_expiry = 0.001
    # Links carry their issue time in whole seconds.
    await trio.sleep(1.1)
    async with Reader() as reader:
        handle = reader.open(file.id, file.size, file.link, file.refresh_link)
        with pytest.raises(ReadError) as caught:
            await handle.read(0, FUSE_READ)
    assert caught.value.errno == errno.EIO
    assert len(file.refreshes) == 3
