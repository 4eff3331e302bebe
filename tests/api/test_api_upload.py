"""Uploads: fresh token per attempt, streamed body, id found by listing, retries without duplicates."""

from __future__ import annotations

import httpx
import pytest
from fake_premiumize import API_KEY, FakeService, envelope, fail_after, fail_before, http_status

from pmzfs.api import errors
from pmzfs.api._upload import CHUNK_SIZE, is_safe_upload_name
from pmzfs.api.client import PremiumizeClient


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "video.mkv"
    path.write_bytes(bytes(range(256)) * 4000)
    return path


def upload_requests(service: FakeService) -> list[httpx.Request]:
    return service.calls("upload")


async def test_upload_returns_new_file_id(client: PremiumizeClient, service: FakeService, source):
    folder = service.add_folder("Movies")
    file_id = await client.upload_file(folder, source, "video.mkv")
    stored = service.files[file_id]
    assert stored["name"] == "video.mkv"
    assert stored["folder"] == folder
    assert stored["content"] == source.read_bytes()


async def test_upload_request_shape(client: PremiumizeClient, service: FakeService, source):
    await client.upload_file(None, source, "video.mkv")
    request = upload_requests(service)[0]
    body = service.bodies[service.requests.index(request)]
    assert "authorization" not in request.headers
    assert int(request.headers["content-length"]) == len(body)
    assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert b'name="token"' in body
    assert b'filename="video.mkv"' in body
    assert API_KEY.encode() not in body


async def test_upload_to_root_uses_listed_root_id(client: PremiumizeClient, service: FakeService, source):
    file_id = await client.upload_file(None, source, "video.mkv")
    assert service.files[file_id]["folder"] == service.root_id
    assert service.calls("folder/uploadinfo")[0].url.params["id"] == service.root_id


async def test_upload_streams_in_chunks(client: PremiumizeClient, service: FakeService, source):
    calls: list[tuple[int, int]] = []
    await client.upload_file(None, source, "video.mkv", progress=lambda sent, total: calls.append((sent, total)))
    size = source.stat().st_size
    assert len(calls) == -(-size // CHUNK_SIZE)
    assert calls[-1] == (size, size)
    assert all(total == size for _, total in calls)
    assert [sent for sent, _ in calls] == sorted(sent for sent, _ in calls)


async def test_upload_empty_file(client: PremiumizeClient, service: FakeService, tmp_path):
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    calls: list[tuple[int, int]] = []
    file_id = await client.upload_file(None, empty, "empty", progress=lambda sent, total: calls.append((sent, total)))
    assert service.files[file_id]["size"] == 0
    assert calls == [(0, 0)]


@pytest.mark.parametrize("fault", [fail_before(httpx.ConnectError), envelope("transient_error"), http_status(503)])
async def test_upload_retry_uses_new_token(client: PremiumizeClient, service: FakeService, source, fault):
    service.fail("upload", fault)
    file_id = await client.upload_file(None, source, "video.mkv")
    assert [f["name"] for f in service.files.values()] == ["video.mkv"]
    assert service.files[file_id]["size"] == source.stat().st_size
    assert len(service.calls("folder/uploadinfo")) == 2
    tokens = [
        service.bodies[service.requests.index(r)].split(b'name="token"\r\n\r\n')[1].split(b"\r\n")[0]
        for r in upload_requests(service)
    ]
    assert len(tokens) == 2
    assert tokens[0] != tokens[1]


async def test_upload_timeout_after_store_no_duplicate(client: PremiumizeClient, service: FakeService, source):
    service.fail("upload", fail_after(httpx.ReadTimeout))
    file_id = await client.upload_file(None, source, "video.mkv")
    assert list(service.files) == [file_id]
    assert len(upload_requests(service)) == 1


async def test_upload_picks_new_among_duplicates(client: PremiumizeClient, service: FakeService, source):
    size = source.stat().st_size
    old_id = service.add_file("video.mkv", size=size)
    file_id = await client.upload_file(None, source, "video.mkv")
    assert file_id != old_id
    assert service.files[file_id]["content"] == source.read_bytes()


async def test_upload_ignores_wrong_size(client: PremiumizeClient, service: FakeService, source):
    # The first attempt times out after a server stored a truncated file.
    service.fail("upload", fail_before(httpx.ReadTimeout))
    service.add_file("video.mkv", size=3)
    file_id = await client.upload_file(None, source, "video.mkv")
    assert service.files[file_id]["size"] == source.stat().st_size


async def test_upload_permanent_error_raises(client: PremiumizeClient, service: FakeService, source):
    service.fail("upload", envelope("account_limit_reached"))
    with pytest.raises(errors.AccountLimitReached):
        await client.upload_file(None, source, "video.mkv")
    assert len(upload_requests(service)) == 1


async def test_upload_gives_up_after_attempts(client: PremiumizeClient, service: FakeService, source):
    service.fail("upload", *[fail_before(httpx.ConnectError)] * 20)
    with pytest.raises(errors.TransportError, match="upload URL"):
        await client.upload_file(None, source, "video.mkv")
    assert len(upload_requests(service)) == client.retry.max_attempts


@pytest.mark.parametrize("name", ['say "hi".txt', "a/b.txt", "back\\slash", "100%.txt", " lead", "trail ", "new\nline"])
async def test_upload_unsafe_name_renamed(client: PremiumizeClient, service: FakeService, source, name):
    file_id = await client.upload_file(None, source, name)
    assert service.files[file_id]["name"] == name
    assert len(service.calls("item/rename")) == 1


async def test_upload_unicode_name_sent_directly(client: PremiumizeClient, service: FakeService, source):
    assert is_safe_upload_name("Amélie 東京.mkv")
    file_id = await client.upload_file(None, source, "Amélie 東京.mkv")
    assert service.files[file_id]["name"] == "Amélie 東京.mkv"
    assert service.calls("item/rename") == []


async def test_upload_missing_source_raises(client: PremiumizeClient, tmp_path):
    with pytest.raises(FileNotFoundError):
        await client.upload_file(None, tmp_path / "missing", "x")


async def test_upload_rename_failure_deletes_placeholder(client: PremiumizeClient, service: FakeService, source):
    service.fail("item/rename", envelope("invalid_request"))
    with pytest.raises(errors.InvalidRequest):
        await client.upload_file(None, source, 'quote " name')
    assert service.files == {}
    assert len(service.calls("item/delete")) == 1
