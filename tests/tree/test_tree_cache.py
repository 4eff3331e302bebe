"""The listing cache of ``pmzfs.tree``: TTL, negative entries, one call per
folder under concurrency, stale listings on failure and bounded memory."""

from __future__ import annotations

import errno
import logging

import pytest
import trio

from pmzfs.api.errors import NotFound, RateLimitReached, ServiceDown
from pmzfs.api.models import Item
from pmzfs.tree import STALE_WAIT_AFTER_FAILURE, Node, Tree, TreeError, hashed_inode


async def test_large_folder_costs_one_listing(tree, client):
    folder_id = client.add_folder(client.ROOT_ID, "big")
    for index in range(10_000):
        client.add_file(folder_id, f"file-{index:05d}.bin")

    folder = await tree.lookup(tree.root_inode, b"big")
    listing = await tree.listing(folder.inode)
    for index in range(10_000):
        node = await tree.lookup(folder.inode, f"file-{index:05d}.bin".encode())
        assert node is not None
        assert await tree.getattr_node(node.inode) is node

    assert len(listing.entries) == 10_000
    assert client.calls["folder/list"] == 2  # the root and "big", once each


async def test_root_listed_without_id(tree, client):
    client.add_file(client.ROOT_ID, "a.txt")
    await tree.lookup(tree.root_inode, b"a.txt")
    tree.invalidate(tree.root_inode)
    await tree.lookup(tree.root_inode, b"a.txt")

    assert client.listed_ids == [None, None]
    assert tree.root.id == client.ROOT_ID


async def test_listing_expires_after_ttl(tree, client, mock_clock):
    client.add_file(client.ROOT_ID, "a.txt", size=10)
    node = await tree.lookup(tree.root_inode, b"a.txt")
    assert node.size == 10

    client.replace(client.ROOT_ID, Item(id=node.id, name="a.txt", type="file", created_at=1, size=20))
    mock_clock.jump(59)
    assert (await tree.getattr_node(node.inode)).size == 10
    assert client.calls["folder/list"] == 1

    mock_clock.jump(2)
    assert (await tree.getattr_node(node.inode)).size == 20
    assert client.calls["folder/list"] == 2


async def test_entry_timeout_follows_listing_age(tree, client, mock_clock):
    client.add_file(client.ROOT_ID, "a.txt")
    node = await tree.lookup(tree.root_inode, b"a.txt")
    assert tree.entry_timeout(node) == pytest.approx(60.0)

    mock_clock.jump(45)
    assert tree.entry_timeout(node) == pytest.approx(15.0)

    mock_clock.jump(30)
    assert tree.entry_timeout(node) == 0.0


async def test_missing_name_trusted_briefly(tree, client, mock_clock):
    client.add_file(client.ROOT_ID, "a.txt")
    assert await tree.lookup(tree.root_inode, b"b.txt") is None
    assert await tree.lookup(tree.root_inode, b"b.txt") is None
    assert client.calls["folder/list"] == 1

    client.add_file(client.ROOT_ID, "b.txt")
    mock_clock.jump(1)
    assert await tree.lookup(tree.root_inode, b"b.txt") is None
    assert client.calls["folder/list"] == 1

    mock_clock.jump(1.5)
    assert await tree.lookup(tree.root_inode, b"b.txt") is not None
    assert client.calls["folder/list"] == 2


async def test_known_name_needs_no_refresh(tree, client, mock_clock):
    client.add_file(client.ROOT_ID, "a.txt")
    await tree.lookup(tree.root_inode, b"a.txt")
    mock_clock.jump(30)
    assert await tree.lookup(tree.root_inode, b"a.txt") is not None
    assert client.calls["folder/list"] == 1


async def test_concurrent_lookups_share_one_call(tree, client, autojump_clock):
    folder_id = client.add_folder(client.ROOT_ID, "shared")
    for index in range(50):
        client.add_file(folder_id, f"f{index}")
    folder = await tree.lookup(tree.root_inode, b"shared")
    client.calls.clear()
    client.delay = 1.0
    results = {}

    async def look(index: int) -> None:
        results[index] = await tree.lookup(folder.inode, f"f{index}".encode())

    async with trio.open_nursery() as nursery:
        for index in range(50):
            nursery.start_soon(look, index)

    assert client.calls["folder/list"] == 1
    assert all(results[index] is not None for index in range(50))
    assert tree.stats()["fetches_in_flight"] == 0


async def test_concurrent_failure_reaches_every_caller(tree, client, autojump_clock):
    client.delay = 1.0
    client.failure = ServiceDown("down", endpoint="folder/list")
    errors = []

    async def look() -> None:
        try:
            await tree.lookup(tree.root_inode, b"x")
        except ServiceDown as exc:
            errors.append(exc)

    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(look)

    assert len(errors) == 5
    assert client.calls["folder/list"] == 1


async def test_cancelled_listing_lets_waiter_retry(tree, client, autojump_clock):
    client.add_file(client.ROOT_ID, "a.txt")
    client.delay = 1.0
    found = []

    async def waiter() -> None:
        found.append(await tree.lookup(tree.root_inode, b"a.txt"))

    async with trio.open_nursery() as nursery:
        with trio.move_on_after(0.5):
            first = trio.CancelScope()

            async def leader() -> None:
                with first:
                    await tree.lookup(tree.root_inode, b"a.txt")

            nursery.start_soon(leader)
            await trio.sleep(0.1)
            nursery.start_soon(waiter)
            await trio.sleep(0.1)
            first.cancel()

    assert found and found[0] is not None
    assert client.calls["folder/list"] == 2


async def test_stale_listing_served_on_failure(tree, client, mock_clock, caplog):
    file_id = client.add_file(client.ROOT_ID, "a.txt")
    node = await tree.lookup(tree.root_inode, b"a.txt")
    client.remove(client.ROOT_ID, file_id)
    client.failure = RateLimitReached("slow down", endpoint="folder/list")
    mock_clock.jump(120)

    with caplog.at_level(logging.WARNING, logger="pmzfs.tree"):
        assert await tree.lookup(tree.root_inode, b"a.txt") is node
        assert await tree.lookup(tree.root_inode, b"missing") is None
        listing = await tree.listing(tree.root_inode)
    assert [entry.name for entry in listing.entries] == ["a.txt"]
    assert client.calls["folder/list"] == 2
    warnings = [r for r in caplog.records if r.name == "pmzfs.tree" and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "rate_limit_reached" in warnings[0].getMessage()


async def test_stale_listing_retried_after_interval(tree, client, mock_clock):
    file_id = client.add_file(client.ROOT_ID, "a.txt")
    await tree.lookup(tree.root_inode, b"a.txt")
    client.failure = ServiceDown("down", endpoint="folder/list")
    mock_clock.jump(61)
    await tree.listing(tree.root_inode)
    mock_clock.jump(tree.stale_retry_interval - 1)
    await tree.listing(tree.root_inode)
    assert client.calls["folder/list"] == 2

    mock_clock.jump(2)
    client.failure = None
    client.remove(client.ROOT_ID, file_id)
    assert await tree.lookup(tree.root_inode, b"a.txt") is None
    assert client.calls["folder/list"] == 3


async def test_failure_without_listing_raises(tree, client):
    client.failure = ServiceDown("down", endpoint="folder/list")
    with pytest.raises(ServiceDown):
        await tree.lookup(tree.root_inode, b"a.txt")


async def test_refresh_never_serves_stale(tree, client):
    await tree.listing(tree.root_inode)
    client.failure = ServiceDown("down", endpoint="folder/list")
    with pytest.raises(ServiceDown):
        await tree.refresh(tree.root_inode)


async def test_getattr_keeps_node_while_service_down(tree, client, mock_clock):
    client.add_file(client.ROOT_ID, "a.txt", size=7)
    node = await tree.lookup(tree.root_inode, b"a.txt")
    tree.remember(node)
    client.failure = ServiceDown("down", endpoint="folder/list")
    mock_clock.jump(300)
    assert (await tree.getattr_node(node.inode)).size == 7


async def test_removed_name_disappears_after_listing(tree, client, mock_clock):
    file_id = client.add_file(client.ROOT_ID, "a.txt")
    node = await tree.lookup(tree.root_inode, b"a.txt")
    client.remove(client.ROOT_ID, file_id)
    mock_clock.jump(61)
    assert await tree.lookup(tree.root_inode, b"a.txt") is None
    assert node.listed is False
    with pytest.raises(TreeError):
        tree.node(node.inode)


async def test_folder_not_found_dropped(tree, client, mock_clock):
    folder_id = client.add_folder(client.ROOT_ID, "gone")
    folder = await tree.lookup(tree.root_inode, b"gone")
    tree.remember(folder)
    await tree.listing(folder.inode)
    client.remove(client.ROOT_ID, folder_id)
    mock_clock.jump(61)

    with pytest.raises(NotFound):
        await tree.listing(folder.inode)
    root = await tree.listing(tree.root_inode)
    assert b"gone" not in root.by_name
    assert tree.stats()["listings"] == 1


async def test_lookup_in_file_is_enotdir(tree, client):
    client.add_file(client.ROOT_ID, "a.txt")
    node = await tree.lookup(tree.root_inode, b"a.txt")
    with pytest.raises(TreeError) as info:
        await tree.lookup(node.inode, b"x")
    assert info.value.errno == errno.ENOTDIR


async def test_dot_and_dotdot_lookups(tree, client):
    client.add_folder(client.ROOT_ID, "sub")
    sub = await tree.lookup(tree.root_inode, b"sub")
    assert await tree.lookup(sub.inode, b".") is sub
    assert await tree.lookup(sub.inode, b"..") is tree.root
    assert await tree.lookup(tree.root_inode, b"..") is tree.root


async def test_account_info_cached(tree, client, mock_clock):
    assert (await tree.account_info()).space_used == 12345
    await tree.account_info()
    assert client.calls["account/info"] == 1

    mock_clock.jump(61)
    client.failure = ServiceDown("down", endpoint="account/info")
    assert (await tree.account_info()).space_used == 12345
    assert client.calls["account/info"] == 2


async def test_fresh_link_updates_node(tree, client):
    client.add_file(client.ROOT_ID, "a.txt")
    node = await tree.lookup(tree.root_inode, b"a.txt")
    link = await tree.fresh_link(node)
    assert link.endswith("?fresh")
    assert node.link == link


# ------------------------------------------------------------ memory bound


async def test_listings_bounded_by_max_entries(client):
    tree = Tree(client, root_inode=1, max_entries=1000)
    folder_ids = []
    for number in range(20):
        folder_id = client.add_folder(client.ROOT_ID, f"dir{number}")
        folder_ids.append(folder_id)
        for index in range(200):
            client.add_file(folder_id, f"f{index}")

    for number in range(20):
        folder = await tree.lookup(tree.root_inode, f"dir{number}".encode())
        await tree.listing(folder.inode)
        stats = tree.stats()
        assert stats["listed_entries"] <= 1000
        assert stats["nodes"] <= 1000 + 1

    assert tree.stats()["listings"] < 20


async def test_single_large_listing_kept(client):
    tree = Tree(client, root_inode=1, max_entries=100)
    for index in range(500):
        client.add_file(client.ROOT_ID, f"f{index}")
    listing = await tree.listing(tree.root_inode)
    assert len(listing.entries) == 500
    assert tree.stats()["listed_entries"] == 500


async def test_forget_drops_unreferenced_nodes(client):
    tree = Tree(client, root_inode=1, max_entries=300)
    first = client.add_folder(client.ROOT_ID, "first")
    for index in range(200):
        client.add_file(first, f"f{index}")
    second = client.add_folder(client.ROOT_ID, "second")
    for index in range(200):
        client.add_file(second, f"g{index}")

    first_node = await tree.lookup(tree.root_inode, b"first")
    kept = await tree.lookup(first_node.inode, b"f7")
    tree.remember(kept)
    second_node = await tree.lookup(tree.root_inode, b"second")
    await tree.listing(second_node.inode)  # evicts the listing of "first"

    assert tree.node(kept.inode) is kept
    assert kept.listed is False
    tree.forget(kept.inode, 1)
    with pytest.raises(TreeError):
        tree.node(kept.inode)


async def test_pinned_nodes_survive_eviction(client):
    tree = Tree(client, root_inode=1, max_entries=300)
    first = client.add_folder(client.ROOT_ID, "first")
    for index in range(200):
        client.add_file(first, f"f{index}")
    second = client.add_folder(client.ROOT_ID, "second")
    for index in range(200):
        client.add_file(second, f"g{index}")

    first_node = await tree.lookup(tree.root_inode, b"first")
    snapshot = tuple((await tree.listing(first_node.inode)).entries)
    tree.pin(snapshot)
    second_node = await tree.lookup(tree.root_inode, b"second")
    await tree.listing(second_node.inode)

    assert all(tree.node(node.inode) is node for node in snapshot)
    tree.unpin(snapshot)
    for node in snapshot:
        with pytest.raises(TreeError):
            tree.node(node.inode)


# --------------------------------------------------------------- inodes


async def test_inode_stable_across_drop(client, mock_clock):
    tree = Tree(client, root_inode=1, max_entries=10)
    file_id = client.add_file(client.ROOT_ID, "a.txt")
    first = await tree.lookup(tree.root_inode, b"a.txt")
    inode = first.inode
    tree.invalidate(tree.root_inode)
    client.remove(client.ROOT_ID, file_id)
    await tree.listing(tree.root_inode)
    with pytest.raises(TreeError):
        tree.node(inode)

    client.add_file(client.ROOT_ID, "renamed.txt", file_id=file_id)
    tree.invalidate(tree.root_inode)
    again = await tree.lookup(tree.root_inode, b"renamed.txt")
    assert again.inode == inode
    assert inode == hashed_inode((False, file_id))


async def test_folder_and_file_ids_separate(tree, client):
    client.add_folder(client.ROOT_ID, "dir", folder_id="same-id")
    client.add_file(client.ROOT_ID, "file", file_id="same-id")
    folder = await tree.lookup(tree.root_inode, b"dir")
    file = await tree.lookup(tree.root_inode, b"file")
    assert folder.inode != file.inode
    assert folder.is_dir and not file.is_dir


async def test_inode_collision_resolved_stably(tree, client):
    file_id = client.add_file(client.ROOT_ID, "a.txt")
    # Occupy the hashed inode number of a.txt with another node.
    squatter = Node(inode=hashed_inode((False, file_id)), is_dir=False, id="other", parent=1, name="x", shown=b"x")
    squatter.lookups = 1
    tree._register(squatter)

    node = await tree.lookup(tree.root_inode, b"a.txt")
    assert node.inode != squatter.inode
    inode = node.inode

    tree.forget(squatter.inode, 1)
    tree.invalidate(tree.root_inode)
    client.remove(client.ROOT_ID, file_id)
    await tree.listing(tree.root_inode)
    client.add_file(client.ROOT_ID, "a.txt", file_id=file_id)
    tree.invalidate(tree.root_inode)
    assert (await tree.lookup(tree.root_inode, b"a.txt")).inode == inode


# ------------------------------------------------- listing in the background


@pytest.fixture
async def running_tree(client):
    async with Tree(client, root_inode=1, dir_cache_ttl=60.0, negative_ttl=2.0, stale_wait=2.0) as tree:
        yield tree


async def test_slow_refresh_serves_stale(running_tree, client, autojump_clock, caplog):
    tree = running_tree
    file_id = client.add_file(client.ROOT_ID, "a.txt")
    await tree.listing(tree.root_inode)
    await trio.sleep(61)
    client.remove(client.ROOT_ID, file_id)
    client.add_file(client.ROOT_ID, "b.txt")
    client.delay = 30.0

    with caplog.at_level(logging.WARNING, logger="pmzfs.tree"):
        start = trio.current_time()
        assert await tree.lookup(tree.root_inode, b"a.txt") is not None
        waited = trio.current_time() - start
        # A second caller does not wait again for the same slow call.
        assert await tree.lookup(tree.root_inode, b"a.txt") is not None
    assert waited == pytest.approx(tree.stale_wait)
    assert trio.current_time() - start == pytest.approx(tree.stale_wait)
    assert client.calls["folder/list"] == 2
    assert any("has not finished" in record.getMessage() for record in caplog.records)

    # The call ends 30 s after it started; the name "a.txt" missing from its
    # listing is then trusted for negative_ttl seconds.
    await trio.sleep(29)
    assert await tree.lookup(tree.root_inode, b"a.txt") is None
    assert await tree.lookup(tree.root_inode, b"b.txt") is not None
    assert client.calls["folder/list"] == 2


async def test_slow_first_listing_waited_for(running_tree, client, autojump_clock):
    tree = running_tree
    client.add_file(client.ROOT_ID, "a.txt")
    client.delay = 30.0
    start = trio.current_time()
    assert await tree.lookup(tree.root_inode, b"a.txt") is not None
    assert trio.current_time() - start == pytest.approx(30.0)


async def test_background_failure_serves_stale(running_tree, client, autojump_clock):
    tree = running_tree
    client.add_file(client.ROOT_ID, "a.txt")
    await tree.listing(tree.root_inode)
    await trio.sleep(61)
    client.failure = ServiceDown("down", endpoint="folder/list")
    assert await tree.lookup(tree.root_inode, b"a.txt") is not None


async def test_background_failure_without_listing(running_tree, client, autojump_clock):
    tree = running_tree
    client.failure = ServiceDown("down", endpoint="folder/list")
    with pytest.raises(ServiceDown):
        await tree.lookup(tree.root_inode, b"a.txt")


async def test_refresh_waits_despite_stale(running_tree, client, autojump_clock):
    tree = running_tree
    await tree.listing(tree.root_inode)
    client.add_file(client.ROOT_ID, "new.txt")
    client.delay = 30.0
    listing = await tree.refresh(tree.root_inode)
    assert b"new.txt" in listing.by_name


async def test_stale_retry_backs_off(tree, client, mock_clock):
    await tree.listing(tree.root_inode)
    client.failure = ServiceDown("down", endpoint="folder/list")
    mock_clock.jump(61)
    await tree.listing(tree.root_inode)
    assert client.calls["folder/list"] == 2

    # The second failure doubles the wait before the next attempt.
    mock_clock.jump(tree.stale_retry_interval + 0.1)
    await tree.listing(tree.root_inode)
    assert client.calls["folder/list"] == 3
    mock_clock.jump(tree.stale_retry_interval + 0.1)
    await tree.listing(tree.root_inode)
    assert client.calls["folder/list"] == 3
    mock_clock.jump(tree.stale_retry_interval)
    await tree.listing(tree.root_inode)
    assert client.calls["folder/list"] == 4


async def test_refresh_after_failure_waits_briefly(running_tree, client, autojump_clock):
    tree = running_tree
    client.add_file(client.ROOT_ID, "a.txt")
    await tree.listing(tree.root_inode)
    await trio.sleep(61)
    client.failure = ServiceDown("down", endpoint="folder/list")
    await tree.listing(tree.root_inode)
    await trio.sleep(tree.stale_retry_interval + 1)

    # The next attempt is slow too: a lookup waits far less than stale_wait.
    client.delay = 30.0
    start = trio.current_time()
    assert await tree.lookup(tree.root_inode, b"a.txt") is not None
    assert trio.current_time() - start == pytest.approx(STALE_WAIT_AFTER_FAILURE)
