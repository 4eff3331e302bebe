"""Zip downloads (filled in next)."""

from __future__ import annotations

from typing import Any

from pmzfs.emulator.errors import ServiceError


class Zips:
    def __init__(self, emu: Any) -> None:
        self.emu = emu

    def lookup(self, path: str) -> None:
        return None

    def generate(self, files: list[str], folders: list[str]) -> str:
        raise ServiceError("permanent_error", "zip/generate is not implemented yet")
