"""Calls that change state: retried only when not applied, verified after ambiguous failures."""

from __future__ import annotations

import httpx
import pytest
from fake_premiumize import FakeService, envelope, fail_after, fail_before, status_after

from pmzfs.api import errors
from pmzfs.api.client import PremiumizeClient


def folders_named(service: FakeService, name: str) -> list[str]:
    return [folder_id for folder_id, folder in service.folders.items() if folder["name"] == name]


@pytest.mark.parametrize("fault", [fail_after(httpx.ReadTimeout), fail_after(httpx.RemoteProtocolError), status_after(500)])
async def test_folder_create_timeout_no_duplicate(client: PremiumizeClient, service: FakeService, fault):
    service.fail("folder/create", fault)
    new_id = await client.folder_create("Photos")
    assert folders_named(service, "Photos") == [new_id]
    assert len(service.calls("folder/create")) == 1


async def test_folder_create_skips_existing_duplicate(client: PremiumizeClient, service: FakeService):
    old_id = service.add_folder("Photos")
    service.fail("folder/create", fail_after(httpx.ReadTimeout))
    new_id = await client.folder_create("Photos")
    assert new_id != old_id
    assert sorted(folders_named(service, "Photos")) == sorted([old_id, new_id])
    assert len(service.calls("folder/create")) == 1


async def test_folder_create_resent_when_not_applied(client: PremiumizeClient, service: FakeService):
    # A read timeout that happened before the server applied the request.
    service.fail("folder/create", fail_before(httpx.ReadTimeout))
    new_id = await client.folder_create("Photos")
    assert folders_named(service, "Photos") == [new_id]
    assert len(service.calls("folder/create")) == 2


@pytest.mark.parametrize("fault", [fail_before(httpx.ConnectError), envelope("transient_error"), envelope("rate_limit_reached")])
async def test_folder_create_retried_when_not_sent(client: PremiumizeClient, service: FakeService, fault):
    service.fail("folder/create", fault)
    new_id = await client.folder_create("Photos")
    assert folders_named(service, "Photos") == [new_id]
    assert len(service.calls("folder/create")) == 2
    # Only the listing taken before the call: a clear failure needs no check.
    assert len(service.calls("folder/list")) == 1


async def test_folder_delete_timeout_not_found_is_done(client: PremiumizeClient, service: FakeService):
    folder = service.add_folder("Old")
    service.fail("folder/delete", fail_after(httpx.ReadTimeout))
    await client.folder_delete(folder)
    assert folder not in service.folders
    assert len(service.calls("folder/delete")) == 2


async def test_folder_delete_not_found_first_raises(client: PremiumizeClient, service: FakeService):
    with pytest.raises(errors.NotFound):
        await client.folder_delete("missing")
    assert len(service.calls("folder/delete")) == 1


async def test_item_delete_timeout_not_found_is_done(client: PremiumizeClient, service: FakeService):
    file_id = service.add_file("a")
    service.fail("item/delete", status_after(502))
    await client.item_delete(file_id)
    assert file_id not in service.files
    assert len(service.calls("item/delete")) == 2


async def test_item_delete_not_found_first_raises(client: PremiumizeClient, service: FakeService):
    with pytest.raises(errors.NotFound):
        await client.item_delete("missing")


async def test_item_rename_timeout_checks_name(client: PremiumizeClient, service: FakeService):
    file_id = service.add_file("a")
    service.fail("item/rename", fail_after(httpx.ReadTimeout))
    await client.item_rename(file_id, "b")
    assert service.files[file_id]["name"] == "b"
    assert len(service.calls("item/rename")) == 1
    assert len(service.calls("item/details")) == 1


async def test_item_rename_resent_when_name_unchanged(client: PremiumizeClient, service: FakeService):
    file_id = service.add_file("a")
    service.fail("item/rename", fail_before(httpx.ReadTimeout))
    await client.item_rename(file_id, "b")
    assert service.files[file_id]["name"] == "b"
    assert len(service.calls("item/rename")) == 2


async def test_folder_rename_timeout_checks_name(client: PremiumizeClient, service: FakeService):
    folder = service.add_folder("a")
    service.fail("folder/rename", fail_after(httpx.ReadTimeout))
    await client.folder_rename(folder, "b")
    assert service.folders[folder]["name"] == "b"
    assert len(service.calls("folder/rename")) == 1


async def test_folder_paste_timeout_checks_target(client: PremiumizeClient, service: FakeService):
    target = service.add_folder("Target")
    file_id = service.add_file("a")
    service.fail("folder/paste", fail_after(httpx.ReadTimeout))
    await client.folder_paste(target, files=[file_id])
    assert service.files[file_id]["folder"] == target
    assert len(service.calls("folder/paste")) == 1


async def test_folder_paste_resends_missing_only(client: PremiumizeClient, service: FakeService):
    target = service.add_folder("Target")
    moved = service.add_file("moved")
    stays = service.add_file("stays")
    folder = service.add_folder("Sub")
    # Simulate a server that moved one file before the connection broke.
    service.files[moved]["folder"] = target
    service.fail("folder/paste", fail_before(httpx.ReadTimeout))
    await client.folder_paste(target, files=[moved, stays], folders=[folder])
    assert service.files[stays]["folder"] == target
    assert service.folders[folder]["parent"] == target
    retry_body = service.bodies[service.requests.index(service.calls("folder/paste")[1])]
    assert b"moved" not in retry_body
    assert service.files[moved]["name"] == "moved"


async def test_transfer_create_not_retried_after_timeout(client: PremiumizeClient, service: FakeService):
    service.fail("transfer/create", fail_after(httpx.ReadTimeout))
    with pytest.raises(errors.TransportError):
        await client.transfer_create("magnet:?xt=urn:btih:abc")
    assert len(service.calls("transfer/create")) == 1


async def test_transfer_create_retried_after_connect_error(client: PremiumizeClient, service: FakeService):
    service.fail("transfer/create", fail_before(httpx.ConnectError))
    assert await client.transfer_create("magnet:?xt=urn:btih:abc") == "transfer1"
    assert len(service.calls("transfer/create")) == 2


async def test_permanent_error_on_change_not_retried(client: PremiumizeClient, service: FakeService):
    service.fail("folder/create", envelope("invalid_request"))
    with pytest.raises(errors.InvalidRequest):
        await client.folder_create("x")
    assert len(service.calls("folder/create")) == 1


async def test_transfer_retry_timeout_checks_status(client: PremiumizeClient, service: FakeService):
    # The fake lists transfer1 as running, so the first attempt counts as applied.
    service.fail("transfer/retry", fail_after(httpx.ReadTimeout))
    await client.transfer_retry("transfer1")
    assert len(service.calls("transfer/retry")) == 1
    assert len(service.calls("transfer/list")) == 1
