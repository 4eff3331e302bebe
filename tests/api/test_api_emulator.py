"""The client against the emulator: every endpoint, injected errors, rate limits and upload faults."""

from __future__ import annotations

import pytest
import trio
from api_testing import ERROR_CODES, fast_retry

from pmzfs.api import errors
from pmzfs.api.client import PremiumizeClient
from pmzfs.emulator.testing import emulator_for_tests




@pytest.fixture
def emu(tmp_path):
    with emulator_for_tests(tmp_path / "emulator") as emulator:
        yield emulator


@pytest.fixture
async def api(emu):
    async with PremiumizeClient(emu.base_url, emu.api_key, retry=fast_retry(), rate=0) as client:
        yield client


async def test_account_and_listing(api: PremiumizeClient, emu):
    info = await api.account_info()
    assert info.customer_id
    listing = await api.folder_list()
    assert listing.folder_id == emu.root_id


async def test_folder_lifecycle(api: PremiumizeClient, emu):
    parent = await api.folder_create("Parent")
    child = await api.folder_create("Child", parent)
    listing = await api.folder_list(parent)
    assert [(item.id, item.name, item.type) for item in listing.content] == [(child, "Child", "folder")]
    by_path = await api.folder_list(path="Parent/Child")
    assert by_path.folder_id == child
    await api.folder_rename(child, "Renamed")
    assert (await api.folder_list(child)).name == "Renamed"
    await api.folder_paste(emu.root_id, folders=[child])
    root_names = {item.name for item in (await api.folder_list()).content}
    assert root_names == {"Parent", "Renamed"}
    found = await api.folder_search("Renamed")
    assert [item.id for item in found] == [child]
    await api.folder_delete(parent)
    await api.folder_delete(child)
    assert (await api.folder_list()).content == ()


async def test_file_lifecycle(api: PremiumizeClient, emu, tmp_path):
    source = tmp_path / "clip.bin"
    source.write_bytes(b"0123456789" * 50_000)
    folder = await api.folder_create("Uploads")
    progress: list[int] = []
    file_id = await api.upload_file(folder, source, "clip.bin", progress=lambda sent, total: progress.append(sent))
    assert progress[-1] == source.stat().st_size
    details = await api.item_details(file_id)
    assert details.name == "clip.bin"
    assert details.size == source.stat().st_size
    assert details.folder_id == folder
    assert details.link
    await api.item_rename(file_id, "clip renamed.bin")
    assert (await api.item_details(file_id)).name == "clip renamed.bin"
    await api.folder_paste(emu.root_id, files=[file_id])
    listed = await api.item_listall()
    assert [(f.id, f.path) for f in listed] == [(file_id, "clip renamed.bin")]
    await api.item_delete(file_id)
    with pytest.raises(errors.NotFound):
        await api.item_details(file_id)


async def test_upload_awkward_names(api: PremiumizeClient, tmp_path):
    source = tmp_path / "x"
    source.write_bytes(b"abc")
    for name in ['quote " name', "slash/name", "back\\slash", "50% off", " spaced ", "Amélie 東京.mkv"]:
        file_id = await api.upload_file(None, source, name)
        assert (await api.item_details(file_id)).name == name


async def test_upload_info_token_single_use(api: PremiumizeClient):
    first = await api.folder_uploadinfo()
    second = await api.folder_uploadinfo()
    assert first.token != second.token


async def test_transfer_and_misc_endpoints(api: PremiumizeClient):
    transfer_id = await api.transfer_create("https://files.example/video.mkv")
    transfers = await api.transfer_list()
    assert transfer_id in [t.id for t in transfers]
    with pytest.raises(errors.InvalidRequest):
        await api.transfer_retry(transfer_id)
    links = await api.transfer_directdl("https://files.example/video.mkv")
    assert links
    assert links[0].link
    statuses = await api.cache_check(["https://files.example/video.mkv", "https://nowhere.invalid/x"])
    assert len(statuses) == 2
    services = await api.services_list()
    assert "directdl" in services
    await api.transfer_delete(transfer_id)
    await api.transfer_clearfinished()
    assert transfer_id not in [t.id for t in await api.transfer_list()]
    folder = await api.folder_create("Zipped")
    location = await api.zip_generate(folders=[folder])
    assert location.startswith("http://127.0.0.1")


async def test_transfer_retry_failed(api: PremiumizeClient):
    transfer_id = await api.transfer_create("https://files.example/fail-once.mkv")
    statuses = {t.id: t.status for t in await api.transfer_list()}
    assert statuses[transfer_id] == "error"
    await api.transfer_retry(transfer_id)
    statuses = {t.id: t.status for t in await api.transfer_list()}
    assert statuses[transfer_id] != "error"


async def test_transfer_create_container(api: PremiumizeClient):
    transfer_id = await api.transfer_create("https://files.example/links.dlc")
    ids = [t.id for t in await api.transfer_list()]
    assert transfer_id in ids
    assert len(ids) == 3


async def test_transfer_create_from_torrent(api: PremiumizeClient, tmp_path):
    torrent = tmp_path / "pack.torrent"
    torrent.write_bytes(b"d4:infod4:name4:packee")
    transfer_id = await api.transfer_create(file=torrent)
    assert transfer_id in [t.id for t in await api.transfer_list()]


@pytest.mark.parametrize(("code", "cls", "retried"), ERROR_CODES)
async def test_injected_error_codes(api: PremiumizeClient, emu, code, cls, retried):
    injected = "http_500" if code == "unknown_error" else code
    emu.fail_next("folder/list", injected)
    if retried:
        await api.folder_list()
        assert emu.counters.api_calls["folder/list"] == 2
    else:
        with pytest.raises(cls) as caught:
            await api.folder_list()
        assert caught.value.code == code
        assert emu.counters.api_calls["folder/list"] == 1


async def test_rate_limit_storm_against_emulator(api: PremiumizeClient, emu):
    emu.options.requests_per_second = 10
    retry = fast_retry(rate_limit_attempts=30, rate_limit_initial=0.2, rate_limit_max=1.0, max_elapsed=120)
    done: list[str] = []
    async with PremiumizeClient(emu.base_url, emu.api_key, retry=retry, concurrency=8, rate=0) as client:

        async def one() -> None:
            done.append((await client.folder_list()).folder_id)

        async with trio.open_nursery() as nursery:
            for _ in range(30):
                nursery.start_soon(one)
        hits = client.rate_limit_pause.hits
    assert len(done) == 30
    assert hits > 0
    assert emu.counters.api_calls["folder/list"] == 30 + hits


@pytest.mark.parametrize("mode", ["reset", "http_500", "http_503"])
async def test_upload_retry_new_token(api: PremiumizeClient, emu, tmp_path, mode):
    source = tmp_path / "retry.bin"
    source.write_bytes(b"x" * 300_000)
    emu.options.upload_failure = mode
    emu.options.upload_failure_count = 1
    emu.options.upload_reset_after_fraction = 0.5
    file_id = await api.upload_file(None, source, "retry.bin")
    names = [item.name for item in (await api.folder_list()).content]
    assert names == ["retry.bin"]
    assert (await api.item_details(file_id)).size == 300_000
    assert emu.counters.api_calls["folder/uploadinfo"] == 2
    assert emu.counters.uploads == 1


async def test_upload_over_quota_raises(api: PremiumizeClient, emu, tmp_path):
    source = tmp_path / "big.bin"
    source.write_bytes(b"x" * 5000)
    emu.options.space_limit = 1000
    with pytest.raises(errors.AccountLimitReached):
        await api.upload_file(None, source, "big.bin")
    assert errors.errno_for(errors.AccountLimitReached(), writing=True) == 122


async def test_duplicates_rejected_mode(api: PremiumizeClient, emu, tmp_path):
    emu.options.duplicate_names = False
    await api.folder_create("Same")
    with pytest.raises(errors.InvalidRequest):
        await api.folder_create("Same")


async def test_device_flow_in_process(api: PremiumizeClient, emu):
    code = await api.device_code("pmzfs")
    with pytest.raises(errors.OAuthError) as pending:
        await api.device_token("pmzfs", code.device_code)
    assert pending.value.code == "authorization_pending"
    emu.approve_device(code.user_code)
    token = await api.device_token("pmzfs", code.device_code)
    assert token.access_token not in repr(token)
    async with PremiumizeClient(emu.base_url, token.access_token) as with_token:
        assert (await with_token.account_info()).customer_id


async def test_connection_refused_not_applied():
    async with PremiumizeClient("http://127.0.0.1:1", "some-key-123", retry=fast_retry(max_attempts=2)) as client:
        with pytest.raises(errors.TransportError) as caught:
            await client.account_info()
    assert caught.value.maybe_applied is False
    assert caught.value.reason == "Connection refused"
