"""A writer in a child process, for the crash tests to kill with SIGKILL.

Usage: crash_child.py BASE_URL STAGING_DIR FOLDER_ID NAME SIZE MODE

The API key comes from the environment variable PMZFS_API_KEY.  The child
stages SIZE bytes of ``pattern(SIZE)`` as NAME in FOLDER_ID.  MODE "flush"
then flushes (the test kills it during the upload); MODE "hold" prints
"written" and waits without flushing.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import trio

from pmzfs.api.client import PremiumizeClient
from pmzfs.writer import RetryPolicy, Writer


def pattern(size: int) -> bytes:
    """Return the content the child writes, so the test can compare it."""
    block = bytes(range(256)) * 256
    return (block * (size // len(block) + 1))[:size]


async def main(base_url: str, staging_dir: str, folder_id: str, name: str, size: int, mode: str) -> None:
    async with PremiumizeClient(base_url, os.environ["PMZFS_API_KEY"], rate=0) as client:
        async with Writer(client, Path(staging_dir), retry=RetryPolicy((3600.0,))) as writer:
            handle = await writer.create(folder_id, name)
            await handle.write(0, pattern(size))
            if mode == "hold":
                print("written", flush=True)
                await trio.sleep_forever()
            await handle.flush()
            print("flushed", flush=True)


if __name__ == "__main__":
    url, staging, folder, file_name, byte_count, run_mode = sys.argv[1:7]
    trio.run(main, url, staging, folder, file_name, int(byte_count), run_mode)
