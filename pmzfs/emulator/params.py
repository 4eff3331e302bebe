"""Request parameters of an API call, from the query string and the body."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from pmzfs.emulator.errors import invalid_request

# ``files[]`` and the PHP-style indexed form ``files[0]`` both name an array.
_ARRAY_KEY = re.compile(r"^(?P<name>[^\[\]]+)\[(?P<index>\d*)\]$")


@dataclass
class UploadedPart:
    """A multipart field that carried a file."""

    filename: str
    data: bytes


@dataclass
class Params:
    """Parameters of one request.

    A plain parameter given twice keeps its last value, as PHP does.  Arrays
    are sent as ``name[]=a&name[]=b`` (or ``name[0]=a``) and read with
    ``array("name")``.
    """

    values: dict[str, str] = field(default_factory=dict)
    arrays: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, UploadedPart] = field(default_factory=dict)

    def add(self, key: str, value: str) -> None:
        match = _ARRAY_KEY.match(key)
        if match:
            self.arrays.setdefault(match["name"], []).append(value)
        else:
            self.values[key] = value

    def add_query(self, text: str) -> None:
        """Add the pairs of a query string or urlencoded body; invalid UTF-8 raises invalid_request."""
        try:
            pairs = parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict")
        except UnicodeDecodeError as exc:
            raise invalid_request(f"parameters are not valid UTF-8: {exc.reason} at byte {exc.start}") from exc
        except ValueError as exc:
            raise invalid_request(f"parameters cannot be parsed: {exc}") from exc
        for key, value in pairs:
            self.add(key, value)

    def get(self, name: str) -> str | None:
        return self.values.get(name)

    def require(self, name: str) -> str:
        """Return a non-empty parameter or raise invalid_request naming it."""
        value = self.values.get(name)
        if value is None or value == "":
            raise invalid_request(f"the parameter {name!r} is missing or empty")
        return value

    def array(self, name: str) -> list[str]:
        return list(self.arrays.get(name, ()))
