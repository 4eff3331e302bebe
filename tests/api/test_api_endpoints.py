"""Each client method sends the contract's method, path and parameters and parses the response."""

from __future__ import annotations

import urllib.parse

import httpx
import pytest
from fake_premiumize import API_KEY, BASE_URL, FakeService

from pmzfs.api.client import PremiumizeClient
from pmzfs.api.errors import AuthenticationFailed
from pmzfs.api.models import AccountInfo, FolderListing


def form(service: FakeService, index: int = -1) -> dict[str, list[str]]:
    return urllib.parse.parse_qs(service.bodies[index].decode(), keep_blank_values=True)


def query(service: FakeService, index: int = -1) -> dict[str, list[str]]:
    return urllib.parse.parse_qs(service.requests[index].url.query.decode(), keep_blank_values=True)


async def test_account_info_parses_record(client: PremiumizeClient, service: FakeService):
    info = await client.account_info()
    assert isinstance(info, AccountInfo)
    assert info.customer_id == "1234567"
    assert info.space_used == 12345678901
    request = service.requests[-1]
    assert request.method == "GET"
    assert request.url.path == "/api/account/info"


async def test_requests_use_bearer_header_only(client: PremiumizeClient, service: FakeService):
    await client.account_info()
    request = service.requests[-1]
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert "apikey" not in str(request.url)
    assert API_KEY not in str(request.url)


async def test_folder_list_root_sends_no_id(client: PremiumizeClient, service: FakeService):
    listing = await client.folder_list()
    assert isinstance(listing, FolderListing)
    assert listing.folder_id == service.root_id
    assert query(service) == {}


async def test_folder_list_by_id_and_path(client: PremiumizeClient, service: FakeService):
    folder = service.add_folder("Movies")
    service.add_file("a.mkv", folder, size=5)
    listing = await client.folder_list(folder)
    assert query(service) == {"id": [folder]}
    assert [item.name for item in listing.content] == ["a.mkv"]
    assert listing.content[0].size == 5
    await client.folder_list(path="Movies/Sub")
    assert query(service) == {"path": ["Movies/Sub"]}


async def test_folder_list_rejects_id_and_path(client: PremiumizeClient):
    with pytest.raises(ValueError, match="either id or path"):
        await client.folder_list("x", path="y")


async def test_folder_create_posts_form(client: PremiumizeClient, service: FakeService):
    parent = service.add_folder("Parent")
    new_id = await client.folder_create("New", parent)
    assert service.folders[new_id] == {"name": "New", "parent": parent}
    request = service.calls("folder/create")[0]
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert form(service) == {"name": ["New"], "parent_id": [parent]}


async def test_folder_create_in_root_omits_parent(client: PremiumizeClient, service: FakeService):
    new_id = await client.folder_create("Top")
    assert service.folders[new_id]["parent"] == service.root_id
    assert form(service) == {"name": ["Top"]}


async def test_folder_rename_and_delete(client: PremiumizeClient, service: FakeService):
    folder = service.add_folder("Old")
    await client.folder_rename(folder, "New name")
    assert form(service) == {"id": [folder], "name": ["New name"]}
    assert service.folders[folder]["name"] == "New name"
    await client.folder_delete(folder)
    assert form(service) == {"id": [folder]}
    assert folder not in service.folders


async def test_folder_paste_sends_bracket_arrays(client: PremiumizeClient, service: FakeService):
    target = service.add_folder("Target")
    file_a = service.add_file("a")
    file_b = service.add_file("b")
    folder = service.add_folder("Sub")
    await client.folder_paste(target, files=[file_a, file_b], folders=[folder])
    assert form(service) == {"id": [target], "files[]": [file_a, file_b], "folders[]": [folder]}
    assert service.files[file_a]["folder"] == target
    assert service.folders[folder]["parent"] == target


async def test_folder_paste_needs_ids(client: PremiumizeClient):
    with pytest.raises(ValueError, match="at least one"):
        await client.folder_paste("target")


async def test_folder_uploadinfo_hides_token(client: PremiumizeClient, service: FakeService):
    info = await client.folder_uploadinfo()
    assert info.token.startswith("upload-token-")
    assert info.url.endswith("/upload")
    assert info.token not in repr(info)
    assert query(service) == {}


async def test_folder_search_returns_items(client: PremiumizeClient, service: FakeService):
    service.add_file("holiday.mkv")
    service.add_folder("holiday photos")
    items = await client.folder_search("holiday")
    assert query(service) == {"q": ["holiday"]}
    assert sorted((item.name, item.type) for item in items) == [
        ("holiday photos", "folder"),
        ("holiday.mkv", "file"),
    ]


async def test_item_details_rename_delete(client: PremiumizeClient, service: FakeService):
    file_id = service.add_file("a.mkv", size=77)
    details = await client.item_details(file_id)
    assert details.size == 77
    assert details.link is not None
    assert query(service) == {"id": [file_id]}
    await client.item_rename(file_id, "b.mkv")
    assert form(service) == {"id": [file_id], "name": ["b.mkv"]}
    assert service.files[file_id]["name"] == "b.mkv"
    await client.item_delete(file_id)
    assert form(service) == {"id": [file_id]}
    assert file_id not in service.files


async def test_item_listall(client: PremiumizeClient, service: FakeService):
    service.add_file("a", size=3)
    files = await client.item_listall()
    assert [(f.name, f.size) for f in files] == [("a", 3)]


async def test_transfer_endpoints(client: PremiumizeClient, service: FakeService):
    assert await client.transfer_create("magnet:?xt=urn:btih:abc", folder_id="f1") == "transfer1"
    assert form(service) == {"src": ["magnet:?xt=urn:btih:abc"], "folder_id": ["f1"]}
    links = await client.transfer_directdl("https://host.example/file")
    assert form(service) == {"src": ["https://host.example/file"]}
    assert links[0].path == "Folder/video1.mkv"
    transfers = await client.transfer_list()
    assert transfers[0].progress == pytest.approx(0.42)
    await client.transfer_retry("transfer1")
    assert form(service) == {"id": ["transfer1"]}
    await client.transfer_delete("transfer1")
    assert form(service) == {"id": ["transfer1"]}
    await client.transfer_clearfinished()
    assert service.requests[-1].url.path == "/api/transfer/clearfinished"


async def test_transfer_create_from_torrent_file(client: PremiumizeClient, service: FakeService, tmp_path):
    torrent = tmp_path / "x.torrent"
    torrent.write_bytes(b"d4:infod4:name1:xee")
    assert await client.transfer_create(file=torrent) == "transfer1"
    request = service.calls("transfer/create")[0]
    assert request.headers["content-type"].startswith("multipart/form-data")
    assert b'filename="x.torrent"' in service.bodies[-1]


async def test_transfer_create_needs_one_source(client: PremiumizeClient):
    with pytest.raises(ValueError, match="exactly one"):
        await client.transfer_create()


async def test_cache_check_parallel_arrays(client: PremiumizeClient, service: FakeService):
    statuses = await client.cache_check(["cached-a", "b"])
    assert form(service) == {"items[]": ["cached-a", "b"]}
    assert statuses[0].cached is True
    assert statuses[0].filesize == 123
    assert statuses[1].cached is False
    assert statuses[1].filename is None


async def test_services_list_drops_undocumented(client: PremiumizeClient):
    services = await client.services_list()
    assert services["cache"] == ["a"]
    assert "legacy_field" not in services
    assert "status" not in services


async def test_zip_generate(client: PremiumizeClient, service: FakeService):
    location = await client.zip_generate(files=["a"], folders=["b"])
    assert location.endswith("archive.zip")
    assert form(service) == {"files[]": ["a"], "folders[]": ["b"]}


async def test_missing_credential_fails_locally(service: FakeService):
    async with PremiumizeClient(BASE_URL, None, transport=service.transport) as api:
        with pytest.raises(AuthenticationFailed, match="pmzfs login"):
            await api.account_info()
    assert service.requests == []


async def test_invalid_base_url_rejected():
    with pytest.raises(ValueError, match="invalid API URL 'ftp://x'"):
        PremiumizeClient("ftp://x", "key")


async def test_client_repr_hides_key(client: PremiumizeClient):
    assert API_KEY not in repr(client)
    assert "with credential" in repr(client)


async def test_credential_object_accepted(service: FakeService):
    class Holder:
        value = API_KEY

    async with PremiumizeClient(BASE_URL, Holder(), transport=service.transport) as api:
        await api.account_info()
    assert service.requests[-1].headers["authorization"] == f"Bearer {API_KEY}"


async def test_no_redirect_followed(service: FakeService):
    transport = httpx.MockTransport(
        lambda request: httpx.Response(301, headers={"location": "https://elsewhere.example/api/x?apikey=1"})
    )
    async with PremiumizeClient(BASE_URL, API_KEY, transport=transport) as api:
        with pytest.raises(Exception) as info:
            await api.account_info()
    assert info.value.code == "unexpected_redirect"
    assert "https://elsewhere.example/api/x" in str(info.value)
    assert "apikey=1" not in str(info.value)
