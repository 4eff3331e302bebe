"""Shown names: examples of each rule, then properties over random folders."""

from __future__ import annotations

import random

import pytest

from pmzfs.names import NAME_MAX, is_valid_shown, plain_candidate, service_name, shown_names, suffixed_name

DIVISION_SLASH = "\u2215"


def shown_map(entries):
    return dict(zip((entry_id for entry_id, _ in entries), shown_names(entries)))


def test_ordinary_names_verbatim():
    entries = [("1", "movie.mkv"), ("2", "  spaces  "), ("3", 'back\\slash"quote\nline'), ("4", "ünïcödé ✓")]
    shown = shown_map(entries)
    for entry_id, name in entries:
        assert shown[entry_id] == name.encode("utf-8")


def test_slash_becomes_division_slash():
    assert shown_map([("1", "AC/DC")]) == {"1": f"AC{DIVISION_SLASH}DC".encode()}


def test_nul_replaced():
    assert shown_map([("1", "a\0b")]) == {"1": "a\u2400b".encode()}


def test_real_division_slash_wins():
    entries = [("a", "AC/DC"), ("z", f"AC{DIVISION_SLASH}DC")]
    shown = shown_map(entries)
    assert shown["z"] == f"AC{DIVISION_SLASH}DC".encode()
    assert shown["a"] == suffixed_name("AC/DC", "a")
    assert shown["a"].startswith(f"AC{DIVISION_SLASH}DC (pmzfs-".encode())


def test_duplicates_first_id_keeps_name():
    entries = [("id-b", "song.mp3"), ("id-a", "song.mp3"), ("id-c", "song.mp3")]
    shown = shown_map(entries)
    assert shown["id-a"] == b"song.mp3"
    assert shown["id-b"].startswith(b"song (pmzfs-")
    assert shown["id-b"].endswith(b").mp3")
    assert len(shown["id-b"]) == len(b"song (pmzfs-12345678).mp3")
    assert len(set(shown.values())) == 3


@pytest.mark.parametrize("name", ["", ".", ".."])
def test_reserved_names_suffixed(name):
    shown = shown_names([("x", name)])[0]
    assert is_valid_shown(shown)
    assert b"pmzfs-" in shown


def test_long_name_truncated_with_extension():
    name = "é" * 200 + ".mkv"
    shown = shown_names([("x", name)])[0]
    assert len(shown) <= NAME_MAX
    assert shown.endswith(b").mkv")
    shown.decode("utf-8")  # cut on a character boundary


def test_name_of_exactly_255_bytes_verbatim():
    name = "a" * 251 + ".txt"
    assert shown_names([("x", name)]) == [name.encode()]
    assert plain_candidate(name + "x") is None


def test_real_name_looking_suffixed_keeps_it():
    duplicate_shown = suffixed_name("song.mp3", "id-b")
    squatter = duplicate_shown.decode()
    entries = [("id-a", "song.mp3"), ("id-b", "song.mp3"), ("id-z", squatter)]
    shown = shown_map(entries)
    assert shown["id-z"] == duplicate_shown
    assert shown["id-b"] == suffixed_name("song.mp3", "id-b", 1)
    assert len(set(shown.values())) == 3


def test_service_name_rejects_invalid_utf8():
    assert service_name("a∕b".encode()) == "a∕b"
    with pytest.raises(ValueError):
        service_name(b"\xff")


# ---------------------------------------------------------------- properties

_PIECES = [
    "a", "b", "é", "✓", "/", DIVISION_SLASH, "\u2400", "\0", ".", "..", " ", ".mkv",
    " (pmzfs-", ")", "x" * 120, "日本" * 30, "\ud800",
]  # fmt: skip


def _random_name(rng: random.Random) -> str:
    return "".join(rng.choice(_PIECES) for _ in range(rng.randint(0, 6)))


def _random_folder(rng: random.Random) -> list[tuple[str, str]]:
    names = [_random_name(rng) for _ in range(rng.randint(1, 12))]
    # Reuse names often, so duplicates and near-collisions are common.
    entries = []
    for index in range(rng.randint(1, 25)):
        name = rng.choice(names) if rng.random() < 0.6 else _random_name(rng)
        entries.append((f"id{rng.randint(0, 10**6)}-{index}", name))
    return entries


@pytest.mark.parametrize("seed", range(300))
def test_encoding_properties(seed):
    rng = random.Random(seed)
    entries = _random_folder(rng)
    shown = shown_map(entries)

    values = list(shown.values())
    assert len(set(values)) == len(values), "two entries share a shown name"
    for name in values:
        assert is_valid_shown(name), name

    shuffled = entries[:]
    rng.shuffle(shuffled)
    assert shown_map(shuffled) == shown, "shown names depend on listing order"

    for entry_id, name in entries:
        needs_no_change = plain_candidate(name) == name.encode("utf-8", "surrogatepass")
        earlier_twin = any(other == name and other_id < entry_id for other_id, other in entries)
        if needs_no_change and not earlier_twin:
            assert shown[entry_id] == name.encode(), "a name needing no change was altered"
        if earlier_twin:
            assert shown[entry_id] != name.encode("utf-8", "surrogatepass")


@pytest.mark.parametrize("seed", range(100))
def test_verbatim_names_unchanged(seed):
    rng = random.Random(1000 + seed)
    plain_pieces = ["a", "b", "é", "✓", " ", ".mkv", "-", DIVISION_SLASH]
    entries = []
    seen = set()
    for index in range(rng.randint(1, 30)):
        name = "".join(rng.choice(plain_pieces) for _ in range(rng.randint(1, 8)))
        if name in seen or name in (".", ".."):
            continue
        seen.add(name)
        entries.append((f"id{index}", name))
    shown = shown_map(entries)
    for entry_id, name in entries:
        assert shown[entry_id] == name.encode()
