"""In-place updates of cached listings after this mount's own changes, and
shown names inside listings."""

from __future__ import annotations

import random

import pytest

from pmzfs.api.models import Item
from pmzfs.names import shown_names
from pmzfs.tree import TreeError


def file_item(file_id: str, name: str, size: int = 5) -> Item:
    return Item(id=file_id, name=name, type="file", created_at=1_700_000_500, size=size, link=f"http://127.0.0.1:9/{file_id}")


async def test_duplicate_names_lead_to_right_item(tree, client):
    first = client.add_file(client.ROOT_ID, "song.mp3", file_id="id-a")
    second = client.add_file(client.ROOT_ID, "song.mp3", file_id="id-b")
    slashed = client.add_file(client.ROOT_ID, "AC/DC.mp3", file_id="id-c")
    listing = await tree.listing(tree.root_inode)

    assert (await tree.lookup(tree.root_inode, b"song.mp3")).id == first
    other = [node for node in listing.entries if node.id == second][0]
    assert other.shown != b"song.mp3"
    assert (await tree.lookup(tree.root_inode, other.shown)).id == second
    assert (await tree.lookup(tree.root_inode, "AC\u2215DC.mp3".encode())).id == slashed
    assert await tree.lookup(tree.root_inode, b"AC/DC.mp3") is None


async def test_add_entry_without_listing_call(tree, client):
    await tree.listing(tree.root_inode)
    node = tree.add_entry(tree.root_inode, file_item("new-id", "new.txt"))

    assert await tree.lookup(tree.root_inode, b"new.txt") is node
    assert node.listed
    assert client.calls["folder/list"] == 1


async def test_add_duplicate_gets_suffix(tree, client):
    client.add_file(client.ROOT_ID, "a.txt", file_id="id-m")
    await tree.listing(tree.root_inode)
    later = tree.add_entry(tree.root_inode, file_item("id-z", "a.txt"))
    earlier = tree.add_entry(tree.root_inode, file_item("id-a", "a.txt"))

    assert earlier.shown == b"a.txt"
    assert later.shown.startswith(b"a (pmzfs-")
    listing = await tree.listing(tree.root_inode)
    assert len(listing.by_name) == 3


async def test_remove_entry_frees_name_for_twin(tree, client):
    client.add_file(client.ROOT_ID, "a.txt", file_id="id-a")
    client.add_file(client.ROOT_ID, "a.txt", file_id="id-b")
    listing = await tree.listing(tree.root_inode)
    first = listing.by_name[b"a.txt"]
    tree.remove_entry(first)

    twin = await tree.lookup(tree.root_inode, b"a.txt")
    assert twin.id == "id-b"
    assert await tree.lookup(tree.root_inode, first.shown) is twin


async def test_removed_node_kept_while_kernel_knows_it(tree, client):
    client.add_file(client.ROOT_ID, "a.txt")
    node = await tree.lookup(tree.root_inode, b"a.txt")
    tree.remember(node)
    tree.remove_entry(node)
    assert tree.node(node.inode) is node
    assert await tree.lookup(tree.root_inode, b"a.txt") is None
    tree.forget(node.inode, 1)
    with pytest.raises(TreeError):
        tree.node(node.inode)


async def test_rename_entry_in_place(tree, client):
    client.add_file(client.ROOT_ID, "old.txt")
    node = await tree.lookup(tree.root_inode, b"old.txt")
    inode = node.inode
    tree.remember(node)
    tree.rename_entry(node, "new.txt")

    assert await tree.lookup(tree.root_inode, b"old.txt") is None
    assert await tree.lookup(tree.root_inode, b"new.txt") is node
    assert node.inode == inode
    assert client.calls["folder/list"] == 1


async def test_move_entry_between_folders(tree, client):
    target_id = client.add_folder(client.ROOT_ID, "target")
    client.add_file(client.ROOT_ID, "a.txt")
    node = await tree.lookup(tree.root_inode, b"a.txt")
    target = await tree.lookup(tree.root_inode, b"target")
    await tree.listing(target.inode)
    calls = client.calls["folder/list"]
    tree.remember(node)
    tree.move_entry(node, target.inode, "b.txt")

    assert await tree.lookup(tree.root_inode, b"a.txt") is None
    assert await tree.lookup(target.inode, b"b.txt") is node
    assert node.parent == target.inode
    assert client.calls["folder/list"] == calls
    assert target_id


async def test_replace_file_keeps_inode(tree, client):
    client.add_file(client.ROOT_ID, "a.txt", size=5, file_id="old-id")
    node = await tree.lookup(tree.root_inode, b"a.txt")
    inode = node.inode
    tree.remember(node)
    tree.replace_file(node, file_item("new-id", "a.txt", size=9))

    assert node.inode == inode
    assert node.id == "new-id"
    assert node.size == 9
    assert await tree.lookup(tree.root_inode, b"a.txt") is node

    # A later listing of the folder shows the new id under the same inode.
    client.remove(client.ROOT_ID, "old-id")
    client.add_file(client.ROOT_ID, "a.txt", size=9, file_id="new-id")
    await tree.refresh(tree.root_inode)
    assert (await tree.lookup(tree.root_inode, b"a.txt")).inode == inode


async def test_replace_file_merges_listed_node(tree, client):
    client.add_file(client.ROOT_ID, "a.txt", file_id="old-id")
    node = await tree.lookup(tree.root_inode, b"a.txt")
    tree.remember(node)
    # A refresh already shows the upload's new id before replace_file runs.
    client.add_file(client.ROOT_ID, "a.txt", file_id="new-id")
    await tree.refresh(tree.root_inode)
    tree.replace_file(node, file_item("new-id", "a.txt"))

    listing = await tree.listing(tree.root_inode)
    assert [entry.id for entry in listing.entries].count("new-id") == 1
    assert await tree.lookup(tree.root_inode, b"a.txt") is node


@pytest.mark.parametrize("seed", range(40))
async def test_in_place_names_match_full_listing(tree, client, seed):
    rng = random.Random(seed)
    names = ["a.txt", "a.txt", "b/c", "b\u2215c", "x" * 300, "", "song.mp3"]
    for index in range(rng.randint(0, 6)):
        client.add_file(client.ROOT_ID, rng.choice(names), file_id=f"seed-{index}")
    listing = await tree.listing(tree.root_inode)

    counter = 0
    for _ in range(30):
        action = rng.choice(["add", "remove", "rename"])
        if action == "add" or not listing.entries:
            counter += 1
            tree.add_entry(tree.root_inode, file_item(f"new-{counter:03d}", rng.choice(names)))
        elif action == "remove":
            tree.remove_entry(rng.choice(listing.entries))
        else:
            tree.rename_entry(rng.choice(listing.entries), rng.choice(names))

        listing = await tree.listing(tree.root_inode)
        expected = shown_names([(node.id, node.name) for node in listing.entries])
        assert [node.shown for node in listing.entries] == expected
        assert listing.by_name == {node.shown: node for node in listing.entries}
        assert tree.stats()["listed_entries"] == len(listing.entries)
