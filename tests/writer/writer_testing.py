"""Helpers shared by the writer tests: retry policies, a listener and listing checks."""

from __future__ import annotations

import random
from pathlib import Path

import trio

from pmzfs.api._retry import RetryPolicy as ClientRetryPolicy
from pmzfs.api.client import PremiumizeClient
from pmzfs.api.models import Item
from pmzfs.writer import RetryPolicy, UploadDone

# Background retries that never fire on their own during a test; tests that
# want a retry call ``Writer.upload_pending`` or pass ``QUICK_RETRIES``.
NO_BACKGROUND_RETRIES = RetryPolicy((3600.0,))
QUICK_RETRIES = RetryPolicy((0.05, 0.1, 0.2))


def fast_client_retry() -> ClientRetryPolicy:
    return ClientRetryPolicy(
        max_attempts=3,
        rate_limit_attempts=4,
        max_elapsed=20.0,
        base_delay=0.01,
        max_delay=0.03,
        rate_limit_initial=0.01,
        rate_limit_max=0.05,
        rng=random.Random(1),
    )


class RecordingListener:
    """A ``WriterListener`` that keeps every ``UploadDone`` it gets."""

    def __init__(self) -> None:
        self.done: list[UploadDone] = []

    def upload_done(self, done: UploadDone) -> None:
        self.done.append(done)




async def files_named(client: PremiumizeClient, folder_id: str, name: str) -> list[Item]:
    listing = await client.folder_list(folder_id)
    return [item for item in listing.content if item.name == name and not item.is_folder]


async def only_file(client: PremiumizeClient, folder_id: str, name: str) -> Item:
    found = await files_named(client, folder_id, name)
    assert len(found) == 1, f"expected one file named {name!r}, found {found}"
    return found[0]


async def folder_names(client: PremiumizeClient, folder_id: str) -> list[str]:
    listing = await client.folder_list(folder_id)
    return sorted(item.name for item in listing.content)


async def wait_until(predicate, *, timeout: float = 20.0, step: float = 0.02) -> None:
    """Poll ``predicate`` until it is true; fail after ``timeout`` seconds."""
    with trio.fail_after(timeout):
        while not predicate():
            await trio.sleep(step)


def staged_data_files(staging_dir: Path) -> list[Path]:
    return sorted(staging_dir.glob("*.data"))
