"""Shown names: how the names of one folder's entries appear in the mount.

The service allows names that a POSIX directory cannot hold: ``/`` or NUL
inside a name, names longer than 255 bytes, the names ``.``, ``..`` and the
empty name, and two entries with one name in a folder.  ``shown_names``
maps every entry of a folder to a name that POSIX can hold, so that:

- a name that needs no change is shown byte for byte (its UTF-8 encoding);
- every entry gets exactly one shown name, and no two entries of a folder
  share one, so a shown name leads back to exactly one entry;
- the result depends only on the set of (id, name) pairs of the folder, not
  on the order of the listing, so it is the same across remounts.

The rules, applied to each folder as a whole:

1. Base name: ``/`` becomes U+2215 DIVISION SLASH, NUL becomes U+2400
   SYMBOL FOR NULL, and a lone surrogate (text that is not valid Unicode)
   becomes U+FFFD.  A name that needed one of these replacements is
   *transformed*.
2. A base name that is empty, ``.`` or ``..``, or longer than 255 bytes,
   always gets a suffix (rule 4).
3. Every other base name is a candidate for being shown as it is.  Entries
   whose candidates are equal form a group, and one entry per group keeps
   the candidate: an entry whose name was not transformed wins over a
   transformed one, and among those the entry whose id sorts first wins.
   So a real U+2215 in a name keeps its name, and an entry whose ``/`` was
   replaced gives way to it.
4. Every other entry, in the order of its id, gets the first name of the
   sequence ``STEM (pmzfs-HASH)EXT`` that no entry has yet.  HASH is the
   first 8, then 16, 32 and 64 hex digits of the SHA-256 of the id, and
   then the 64 digits followed by ``-1``, ``-2``, ...  EXT is a short
   extension (a dot and 1 to 15 characters, at most 16 bytes, no space or
   dot, not at the start of the name), kept so media players still
   recognise the file type.  STEM is the rest of the base name, cut on a
   UTF-8 character boundary so the whole name fits in 255 bytes.  An empty
   base name gives ``(pmzfs-HASH)``.

Names of rule 3 are all assigned before any name of rule 4, so a real name
that happens to look like a suffixed one still keeps its name.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

NAME_MAX = 255
"""Maximum length of a name, in bytes, that Linux filesystems accept."""

SLASH_REPLACEMENT = "\u2215"
NUL_REPLACEMENT = "\u2400"
SURROGATE_REPLACEMENT = "\ufffd"

_SUFFIX_TAG = "pmzfs-"
_HASH_LENGTHS = (8, 16, 32, 64)
_EXTENSION = re.compile(r"\.[^.\s]{1,15}\Z")
_EXTENSION_MAX_BYTES = 16
_SURROGATE = re.compile("[\ud800-\udfff]")
_ALWAYS_SUFFIXED = ("", ".", "..")


def base_name(name: str) -> tuple[str, bool]:
    """Return ``name`` with ``/``, NUL and lone surrogates replaced, and
    whether anything was replaced."""
    base = name.replace("/", SLASH_REPLACEMENT).replace("\0", NUL_REPLACEMENT)
    base = _SURROGATE.sub(SURROGATE_REPLACEMENT, base)
    return base, base != name


def plain_candidate(name: str) -> bytes | None:
    """Return the shown name that ``name`` gets when no other entry of its
    folder competes for it, or None when the name always gets a suffix."""
    base, _ = base_name(name)
    if base in _ALWAYS_SUFFIXED:
        return None
    encoded = base.encode("utf-8")
    if len(encoded) > NAME_MAX:
        return None
    return encoded


def suffixed_name(name: str, entry_id: str, attempt: int = 0) -> bytes:
    """Return the ``attempt``-th suffixed shown name of an entry (rule 4)."""
    base, _ = base_name(name)
    digest = hashlib.sha256(entry_id.encode("utf-8", "surrogatepass")).hexdigest()
    if attempt < len(_HASH_LENGTHS):
        tag = digest[: _HASH_LENGTHS[attempt]]
    else:
        tag = f"{digest}-{attempt - len(_HASH_LENGTHS) + 1}"

    stem, extension = _split_extension(base)
    suffix = f"({_SUFFIX_TAG}{tag})" if not stem else f" ({_SUFFIX_TAG}{tag})"
    tail = (suffix + extension).encode("utf-8")
    stem_bytes = _truncate_utf8(stem.encode("utf-8"), NAME_MAX - len(tail))
    return stem_bytes + tail


def shown_names(entries: Sequence[tuple[str, str]]) -> list[bytes]:
    """Return the shown name of each ``(id, name)`` entry of one folder, in
    the order of ``entries``.

    The result is unique within the folder, valid as a POSIX name (no ``/``
    or NUL, not ``.`` or ``..``, 1 to 255 bytes) and independent of the
    order of ``entries``.  Ids should be unique; entries with equal ids and
    names still get distinct shown names.
    """
    return assign_names(entries)[0]


def assign_names(entries: Sequence[tuple[str, str]]) -> tuple[list[bytes], int]:
    """Return ``shown_names(entries)`` and how many of them got a suffix."""
    shown: list[bytes | None] = [None] * len(entries)
    groups: dict[bytes, list[tuple[bool, str, str, int]]] = {}
    suffixed: list[int] = []

    for index, (entry_id, name) in enumerate(entries):
        candidate = plain_candidate(name)
        if candidate is None:
            suffixed.append(index)
            continue
        transformed = base_name(name)[1]
        groups.setdefault(candidate, []).append((transformed, entry_id, name, index))

    taken: set[bytes] = set()
    for candidate, members in groups.items():
        members.sort()
        shown[members[0][-1]] = candidate
        taken.add(candidate)
        suffixed.extend(member[-1] for member in members[1:])

    # The id decides the order, and the name breaks ties between equal ids,
    # so the outcome does not depend on the order of the listing.
    suffixed.sort(key=lambda index: (entries[index][0], entries[index][1]))
    for index in suffixed:
        entry_id, name = entries[index]
        attempt = 0
        candidate = suffixed_name(name, entry_id, attempt)
        while candidate in taken:
            attempt += 1
            candidate = suffixed_name(name, entry_id, attempt)
        shown[index] = candidate
        taken.add(candidate)

    return shown, len(suffixed)  # type: ignore[return-value]


def service_name(shown: bytes) -> str:
    """Return the service name for a name that a program creates in the mount.

    The name is sent as it is, so ``mkdir 'a∕b'`` creates a folder whose name
    contains U+2215.  Raises ``ValueError`` when ``shown`` is not valid UTF-8,
    because the service stores names as UTF-8 text.
    """
    return shown.decode("utf-8")


def is_valid_shown(name: bytes) -> bool:
    """Return whether ``name`` is a name a POSIX directory can hold."""
    return 0 < len(name) <= NAME_MAX and b"/" not in name and b"\0" not in name and name not in (b".", b"..")


def _split_extension(base: str) -> tuple[str, str]:
    match = _EXTENSION.search(base)
    if match is None or match.start() == 0:
        return base, ""
    extension = match.group()
    if len(extension.encode("utf-8")) > _EXTENSION_MAX_BYTES:
        return base, ""
    return base[: match.start()], extension


def _truncate_utf8(data: bytes, limit: int) -> bytes:
    """Cut ``data`` to at most ``limit`` bytes without splitting a character."""
    if len(data) <= limit:
        return data
    cut = limit
    # Continuation bytes of UTF-8 have the bit pattern 10xxxxxx.
    while cut > 0 and (data[cut] & 0xC0) == 0x80:
        cut -= 1
    return data[:cut]
