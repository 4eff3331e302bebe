"""A stand-in for pyfuse3's ``readdir_reply`` and its token, for handler tests."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyfuse3


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
