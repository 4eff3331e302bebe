"""Credential sources, key files, token storage and the device-code poll loop."""

from __future__ import annotations

import json
import logging
import os
import stat

import pytest
import trio
from api_testing import fast_retry
from fake_premiumize import BASE_URL, FakeService

from pmzfs import auth
from pmzfs.api.client import PremiumizeClient
from pmzfs.api.models import AccessToken


@pytest.fixture
def config_home(tmp_path):
    return {"XDG_CONFIG_HOME": str(tmp_path / "config")}


def write_key(path, text: str, mode: int = 0o600):
    path.write_text(text)
    path.chmod(mode)
    return path


def store(env, token: str = "stored-token-abcdef", expires_in: int | None = 3600):
    path = auth.token_path(env)
    auth.store_token(AccessToken(token, "Bearer", expires_in, "full"), path, BASE_URL)
    return path


def test_key_file_wins_over_everything(tmp_path, config_home):
    key_file = write_key(tmp_path / "key", "file-key-123456\n")
    store(config_home)
    env = {**config_home, "PMZFS_API_KEY": "env-key-123456"}
    credential = auth.resolve_credential(key_file, "config-key-123456", env)
    assert credential.value == "file-key-123456"
    assert credential.source == f"the API key file {key_file}"


def test_env_wins_over_config_and_token(config_home):
    store(config_home)
    env = {**config_home, "PMZFS_API_KEY": " env-key-123456 "}
    credential = auth.resolve_credential(None, "config-key-123456", env)
    assert credential.value == "env-key-123456"
    assert credential.source == "the PMZFS_API_KEY environment variable"


def test_config_wins_over_token(config_home):
    store(config_home)
    credential = auth.resolve_credential(None, "config-key-123456", config_home)
    assert credential.value == "config-key-123456"
    assert credential.source == "the config file's api_key setting"


def test_stored_token_used_last(config_home):
    path = store(config_home)
    credential = auth.resolve_credential(None, None, config_home)
    assert credential.value == "stored-token-abcdef"
    assert credential.kind == "access_token"
    assert str(path) in credential.source


def test_no_credential_says_how(config_home):
    with pytest.raises(auth.CredentialError) as caught:
        auth.resolve_credential(None, None, config_home)
    message = str(caught.value)
    assert "pmzfs login" in message
    assert "PMZFS_API_KEY" in message
    assert "--api-key-file" in message


def test_empty_env_key_rejected(config_home):
    with pytest.raises(auth.CredentialError, match="PMZFS_API_KEY is set but empty"):
        auth.resolve_credential(None, None, {**config_home, "PMZFS_API_KEY": "  "})


def test_credential_repr_hides_value():
    credential = auth.Credential("very-secret-value", "the PMZFS_API_KEY environment variable")
    assert "very-secret-value" not in repr(credential)
    assert "very-secret-value" not in str(credential)
    assert "PMZFS_API_KEY" in str(credential)


@pytest.mark.parametrize("text", ["", "   \n\t\n"])
def test_empty_key_file_names_file(tmp_path, text):
    key_file = write_key(tmp_path / "key", text)
    with pytest.raises(auth.CredentialError, match=f"API key file {key_file} is empty"):
        auth.read_key_file(key_file)


def test_missing_key_file_names_file(tmp_path):
    with pytest.raises(auth.CredentialError, match="not found"):
        auth.read_key_file(tmp_path / "absent")


def test_key_file_directory_rejected(tmp_path):
    with pytest.raises(auth.CredentialError, match="is a directory"):
        auth.read_key_file(tmp_path)


def test_key_file_with_two_words_rejected(tmp_path):
    key_file = write_key(tmp_path / "key", "one two\n")
    with pytest.raises(auth.CredentialError, match="more than one word"):
        auth.read_key_file(key_file)


def test_readable_key_file_warns(tmp_path, caplog):
    key_file = write_key(tmp_path / "key", "file-key-123456", mode=0o644)
    with caplog.at_level(logging.WARNING, logger="pmzfs.auth"):
        assert auth.read_key_file(key_file) == "file-key-123456"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"warning: API key file {key_file} is readable by group or others; run: chmod 600 {key_file}"]


def test_private_key_file_no_warning(tmp_path, caplog):
    key_file = write_key(tmp_path / "key", "file-key-123456", mode=0o600)
    with caplog.at_level(logging.WARNING, logger="pmzfs.auth"):
        auth.read_key_file(key_file)
    assert caplog.records == []


def test_token_stored_with_mode_0600(config_home):
    path = store(config_home)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(path.read_text())
    assert data["access_token"] == "stored-token-abcdef"
    assert data["api_url"] == BASE_URL
    assert [p.name for p in path.parent.iterdir()] == ["token.json"]


def test_token_replaced_atomically(config_home):
    store(config_home, token="first-token-abcdef")
    path = store(config_home, token="second-token-abcdef")
    assert json.loads(path.read_text())["access_token"] == "second-token-abcdef"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_token_path_default_home(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert auth.token_path({}) == tmp_path / ".config" / "pmzfs" / "token.json"


def test_damaged_token_file(config_home):
    path = auth.token_path(config_home)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(auth.CredentialError, match="damaged; run `pmzfs logout` and then `pmzfs login`"):
        auth.resolve_credential(None, None, config_home)


def test_expired_token_says_login(config_home):
    path = store(config_home)
    data = json.loads(path.read_text())
    data["expires_at"] = 1000
    path.write_text(json.dumps(data))
    with pytest.raises(auth.CredentialError, match="expired on 1970-01-01; run `pmzfs login` again"):
        auth.resolve_credential(None, None, config_home)


def test_delete_token(config_home):
    path = store(config_home)
    assert auth.delete_token(path) is True
    assert auth.delete_token(path) is False


async def device_client(service: FakeService) -> PremiumizeClient:
    return PremiumizeClient(BASE_URL, None, transport=service.transport, retry=fast_retry(), rate=0)


async def test_device_login_polls_until_approved(autojump_clock):
    service = FakeService()
    service.poll_answers = ["authorization_pending", "authorization_pending"]
    shown: list[str] = []
    async with await device_client(service) as client:
        token = await auth.device_login(client, "my-client", show=shown.append)
    assert token.access_token == service.access_token
    assert "kpwx-3m7r" in shown[0]
    assert f"{BASE_URL}/device" in shown[0]
    polls = [r for r in service.calls("token") if b"grant_type=device_code" in service.bodies[service.requests.index(r)]]
    assert len(polls) == 3
    assert all(b"client_id=my-client" in service.bodies[service.requests.index(r)] for r in service.calls("token"))


async def test_device_login_slow_down_adds_five(autojump_clock):
    service = FakeService()
    service.poll_answers = ["slow_down", "authorization_pending"]
    times: list[float] = []
    original = service.handle

    async def timed(request):
        times.append(trio.current_time())
        return await original(request)

    service.transport.handler = timed
    async with await device_client(service) as client:
        await auth.device_login(client, "my-client", show=lambda line: None)
    gaps = [round(b - a, 3) for a, b in zip(times, times[1:])]
    # Start, then polls 5 s apart, then 10 s apart after slow_down.
    assert gaps == [5.0, 10.0, 10.0]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [("access_denied", "denied"), ("invalid_grant", "expired"), ("unsupported_grant_type", "unsupported_grant_type")],
)
async def test_device_login_stops_on_error(autojump_clock, answer, expected):
    service = FakeService()
    service.poll_answers = [answer]
    async with await device_client(service) as client:
        with pytest.raises(auth.LoginError, match=expected):
            await auth.device_login(client, "my-client", show=lambda line: None)
    assert len(service.calls("token")) == 2


async def test_device_login_gives_up_at_expiry(autojump_clock):
    service = FakeService()
    service.poll_answers = ["authorization_pending"] * 1000
    async with await device_client(service) as client:
        with pytest.raises(auth.LoginError, match="expired before it was entered"):
            await auth.device_login(client, "my-client", show=lambda line: None)
    # 600 s of validity polled every 5 s.
    assert len(service.calls("token")) == 1 + 600 // 5


def test_config_dir_uses_xdg(config_home):
    assert auth.config_dir(config_home) == auth.token_path(config_home).parent
    assert str(auth.config_dir(config_home)).startswith(config_home["XDG_CONFIG_HOME"])
    assert os.path.basename(auth.token_path(config_home)) == "token.json"


def test_token_used_only_for_its_api_url(config_home):
    store(config_home)
    credential = auth.resolve_credential(None, None, config_home, api_url=BASE_URL + "/")
    assert credential.kind == "access_token"
    with pytest.raises(auth.CredentialError, match=f"issued by {BASE_URL}, not https://www.premiumize.me"):
        auth.resolve_credential(None, None, config_home, api_url="https://www.premiumize.me")
