"""The chunk buffer pool: reuse only when no view of a buffer is left."""

from __future__ import annotations

import gc

from pmzfs.reader._buffers import GRANULE, BufferPool
from pmzfs.reader._chunk import Chunk

MiB = 1024 * 1024


def test_released_buffer_is_reused():
    pool = BufferPool(keep=16 * MiB)
    view = pool.take(MiB)
    view[:3] = b"abc"
    pool.give(view)
    again = pool.take(MiB)
    assert (pool.allocated, pool.reused) == (1, 1)
    assert len(again) == MiB


def test_sizes_round_up_to_shared_capacities():
    pool = BufferPool(keep=16 * MiB)
    pool.give(pool.take(MiB - 100))
    view = pool.take(MiB - GRANULE + 1)
    assert len(view) == MiB - GRANULE + 1
    assert pool.reused == 1


def test_live_view_blocks_reuse():
    pool = BufferPool(keep=16 * MiB)
    view = pool.take(MiB)
    view[:5] = b"hello"
    returned_to_kernel = view[:5]
    pool.give(view)
    other = pool.take(MiB)
    other[:5] = b"XXXXX"
    assert bytes(returned_to_kernel) == b"hello"
    assert (pool.allocated, pool.reused) == (2, 0)
    del returned_to_kernel
    gc.collect()
    pool.take(MiB)
    assert pool.reused == 1


def test_free_buffers_beyond_keep_are_unmapped():
    pool = BufferPool(keep=2 * MiB)
    views = [pool.take(MiB) for _ in range(4)]
    for view in views:
        pool.give(view)
    assert pool.free_bytes == 2 * MiB
    pool.clear()
    assert pool.free_bytes == 0


def test_chunk_view_outlives_release():
    pool = BufferPool(keep=16 * MiB)
    chunk = Chunk(1000, 1000 + MiB, None, readahead=False, pool=pool)
    chunk.append(b"x" * MiB)
    view = chunk.slice(1000, 1010)
    chunk.drop()
    chunk.release_buffer()
    reused = Chunk(0, MiB, None, readahead=False, pool=pool)
    reused.append(b"y" * MiB)
    assert bytes(view) == b"x" * 10
    assert pool.reused == 0


def test_trim_unmaps_the_oldest_free_buffers():
    pool = BufferPool(keep=16 * MiB)
    views = [pool.take(MiB) for _ in range(4)]
    for view in views:
        pool.give(view)
    pool.trim(MiB + 1)
    assert pool.free_bytes == MiB
    pool.trim(0)
    assert pool.free_bytes == 0


def test_reuse_of_larger_buffer():
    pool = BufferPool(keep=16 * MiB)
    pool.give(pool.take(2 * MiB))
    pool.give(pool.take(8 * MiB))
    assert len(pool.take(MiB)) == MiB
    assert pool.reused == 1
    assert pool.free_bytes == 8 * MiB
    pool.take(MiB)
    assert pool.reused == 1
