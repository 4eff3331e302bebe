"""Single-use upload URLs and the tokens that go with them.

``folder/uploadinfo`` issues a slot: a random URL path ``/upload/<slot>``
and a token.  The first POST to the URL uses the slot up, whatever its
outcome, so a client can never retry an upload with the same token.
Slots live in memory only, so a restart drops the unused ones.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from typing import Callable

from pmzfs.emulator.state import new_id

# Seconds an unused upload slot stays valid.
SLOT_LIFETIME = 24 * 3600


@dataclass(frozen=True)
class UploadSlot:
    token: str
    folder_id: str
    issued: float


class UploadSlots:
    """The upload slots issued and not yet used."""

    def __init__(self, base_url: Callable[[], str]) -> None:
        self._base_url = base_url
        self._lock = threading.Lock()
        self._slots: dict[str, UploadSlot] = {}

    def issue(self, folder_id: str) -> tuple[str, str]:
        """Return ``(token, url)`` of a new slot that uploads into ``folder_id``."""
        slot_id = new_id()
        token = secrets.token_urlsafe(24)
        with self._lock:
            now = time.monotonic()
            for stale in [key for key, slot in self._slots.items() if now - slot.issued > SLOT_LIFETIME]:
                del self._slots[stale]
            self._slots[slot_id] = UploadSlot(token, folder_id, now)
        return token, f"{self._base_url()}/upload/{slot_id}"

    def take(self, slot_id: str) -> UploadSlot | None:
        """Remove and return a slot, or return None if it is unknown, used or expired."""
        with self._lock:
            slot = self._slots.pop(slot_id, None)
        if slot is None or time.monotonic() - slot.issued > SLOT_LIFETIME:
            return None
        return slot
