"""Transfers, direct links, cache checks and the services list (filled in next)."""

from __future__ import annotations

from typing import Any

from pmzfs.emulator.errors import ServiceError

SERVICES: dict[str, Any] = {}


class Transfers:
    def __init__(self, emu: Any) -> None:
        self.emu = emu

    def advance(self) -> None:
        pass

    def lookup_direct_link(self, path: str) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        raise ServiceError("permanent_error", "transfers are not implemented yet")
