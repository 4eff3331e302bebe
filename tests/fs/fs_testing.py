"""Helpers for the handler tests: the emulator's key, short client retries,
and a stand-in for pyfuse3's ``readdir_reply`` and its token."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyfuse3

from pmzfs.api import RetryPolicy

API_KEY = "test-key"

# Short retries, so a rate limit without a cached listing fails within a
# second instead of the minutes the default policy may wait.
FAST_RETRY = RetryPolicy(
    max_attempts=2,
    rate_limit_attempts=2,
    max_elapsed=5.0,
    base_delay=0.01,
    max_delay=0.05,
    rate_limit_initial=0.01,
    rate_limit_max=0.05,
)


@dataclass
class ReplyCollector:
    """A replacement ``ReaddirToken`` that accepts ``capacity`` entries."""

    capacity: int = 1_000_000
    entries: list[tuple[bytes, pyfuse3.EntryAttributes, int]] = field(default_factory=list)

    @property
    def names(self) -> list[bytes]:
        return [name for name, _, _ in self.entries]


def collecting_readdir_reply(token: ReplyCollector, name: bytes, attributes: pyfuse3.EntryAttributes, next_id: int) -> bool:
    if len(token.entries) >= token.capacity:
        return False
    token.entries.append((name, attributes, next_id))
    return True
