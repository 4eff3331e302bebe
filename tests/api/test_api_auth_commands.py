"""``pmzfs login``, ``logout`` and ``account`` end to end against the emulator, in subprocesses."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import time

import pytest

from pmzfs.commands.auth import format_account, format_bytes, format_premium
from pmzfs.api.models import AccountInfo
from pmzfs.emulator.testing import emulator_for_tests

COMMAND_TIMEOUT = 60


@pytest.fixture
def emu(tmp_path):
    with emulator_for_tests(tmp_path / "emulator", api_key="cli-test-key-123456") as emulator:
        yield emulator


@pytest.fixture
def env(tmp_path, emu):
    """An environment with a private config home, the emulator's URL and no credential."""
    result = {k: v for k, v in os.environ.items() if not k.startswith("PMZFS_")}
    result["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    result["PMZFS_API_URL"] = emu.base_url
    return result


def pmzfs(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pmzfs", *args], env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT
    )


def start_login(env: dict[str, str], *args: str) -> tuple[subprocess.Popen, str]:
    """Start ``pmzfs login`` and return the process and the user code it printed."""
    process = subprocess.Popen(
        [sys.executable, "-m", "pmzfs", "login", *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert process.stdout is not None
    first_line = process.stdout.readline()
    match = re.search(r"open (\S+) and enter the code: (\S+)", first_line)
    if match is None:
        process.kill()
        out, err = process.communicate()
        pytest.fail(f"login printed no code: {first_line!r} {out!r} {err!r}")
    return process, match.group(2)


def finish(process: subprocess.Popen) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=COMMAND_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, out, err


def test_login_account_logout(env, emu):
    process, user_code = start_login(env, "--verbose")
    emu.approve_device(user_code)
    code, out, err = finish(process)
    assert code == 0, err
    token_file = os.path.join(env["XDG_CONFIG_HOME"], "pmzfs", "token.json")
    assert f"stored in {token_file}" in out
    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
    with open(token_file) as file:
        token = json.load(file)["access_token"]
    # The verbose run logged every request, and none of it shows the token.
    assert "POST token -> HTTP 200" in err
    assert token not in out + err

    account = pmzfs("account", "--verbose", env=env)
    assert account.returncode == 0, account.stderr
    assert "GET account/info -> HTTP 200 success" in account.stderr
    assert "httpcore" in account.stderr
    assert token not in account.stdout + account.stderr
    assert re.search(r"^customer id: +\S+$", account.stdout, re.M)
    assert re.search(r"^premium until: +\d{4}-\d\d-\d\d$", account.stdout, re.M)
    assert re.search(r"^space used: +[\d.]+ (B|KiB|MiB|GiB|TiB)$", account.stdout, re.M)
    assert re.search(r"^fair use used: +[\d.]+ %$", account.stdout, re.M)

    logout = pmzfs("logout", env=env)
    assert logout.returncode == 0
    assert f"removed {token_file}" in logout.stdout
    assert not os.path.exists(token_file)
    again = pmzfs("logout", env=env)
    assert again.returncode == 0
    assert "no stored token" in again.stdout


def test_login_via_device_page(env, emu):
    import httpx

    process, user_code = start_login(env, "--client-id", "custom-client")
    response = httpx.post(f"{emu.base_url}/device", data={"user_code": user_code})
    assert response.status_code == 200
    code, out, err = finish(process)
    assert code == 0, err


def test_login_denied(env, emu):
    process, user_code = start_login(env)
    emu.deny_device(user_code)
    code, out, err = finish(process)
    assert code == 1
    assert err.strip() == "pmzfs: login failed: the sign-in request was denied; run `pmzfs login` again to retry"
    assert not os.path.exists(os.path.join(env["XDG_CONFIG_HOME"], "pmzfs", "token.json"))


def test_login_code_expires(env, emu):
    emu.options.device_code_lifetime = 1
    process, _ = start_login(env)
    code, out, err = finish(process)
    assert code == 1
    assert "expired" in err
    assert "run `pmzfs login` again" in err
    assert len(err.strip().splitlines()) == 1


def test_login_connection_refused(env):
    env = {**env, "PMZFS_API_URL": "http://127.0.0.1:1"}
    result = pmzfs("login", env=env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "pmzfs: could not connect to http://127.0.0.1:1 (Connection refused); "
        "check --api-url or PMZFS_API_URL and the network"
    ]


def test_account_with_env_key(env, emu):
    result = pmzfs("account", env={**env, "PMZFS_API_KEY": emu.api_key})
    assert result.returncode == 0, result.stderr
    assert "customer id:" in result.stdout


def test_account_with_key_file(env, emu, tmp_path):
    key_file = tmp_path / "api-key"
    key_file.write_text(emu.api_key + "\n")
    key_file.chmod(0o600)
    result = pmzfs("account", "--api-key-file", str(key_file), "--api-url", emu.base_url, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_account_rejected_env_key(env):
    result = pmzfs("account", env={**env, "PMZFS_API_KEY": "wrong-key-123456"})
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "pmzfs: the API key from PMZFS_API_KEY was rejected (authentication_failed); check it or run `pmzfs login`"
    )
    assert "wrong-key-123456" not in result.stderr + result.stdout


def test_account_rejected_key_file(env, tmp_path):
    key_file = tmp_path / "api-key"
    key_file.write_text("wrong-key-123456")
    key_file.chmod(0o644)
    result = pmzfs("account", "--api-key-file", str(key_file), env=env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"pmzfs: warning: API key file {key_file} is readable by group or others; run: chmod 600 {key_file}",
        f"pmzfs: the API key from the API key file {key_file} was rejected (authentication_failed); "
        "check it or run `pmzfs login`",
    ]


def test_account_empty_key_file(env, tmp_path):
    key_file = tmp_path / "api-key"
    key_file.write_text("\n")
    result = pmzfs("account", "--api-key-file", str(key_file), env=env)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"pmzfs: API key file {key_file} is empty; put the API key from your account page in it"
    )


def test_account_without_credential(env):
    result = pmzfs("account", env=env)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "pmzfs: no API key or login token found; run `pmzfs login`, set PMZFS_API_KEY, or pass --api-key-file FILE"
    )


def test_account_connection_refused(env):
    result = pmzfs("account", "--api-url", "http://127.0.0.1:1", env={**env, "PMZFS_API_KEY": "some-key-123456"})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "pmzfs: could not connect to http://127.0.0.1:1 (Connection refused); "
        "check --api-url or PMZFS_API_URL and the network"
    ]


def test_account_invalid_url(env):
    result = pmzfs("account", "--api-url", "ftp://example", env={**env, "PMZFS_API_KEY": "some-key-123456"})
    assert result.returncode == 2
    assert "invalid API URL 'ftp://example'" in result.stderr


def test_format_account_units():
    info = AccountInfo(
        customer_id="1234567",
        premium_until=int(time.time()) + 86400 * 30,
        limit_used=0.42,
        space_used=int(11.5 * 1024**3),
        booster_points=0,
    )
    text = format_account(info)
    assert "space used:    11.5 GiB" in text
    assert "fair use used: 42.0 %" in text


def test_format_helpers():
    assert format_bytes(0) == "0 B"
    assert format_bytes(1023) == "1023 B"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(5 * 1024**4) == "5.0 TiB"
    assert format_premium(None) == "not premium"
    assert format_premium(1700000000) == "not premium (expired 2023-11-14)"
    assert format_premium(4102444800) == "2100-01-01"


def test_account_with_config_file_key(env, emu):
    config = os.path.join(env["XDG_CONFIG_HOME"], "pmzfs", "config.toml")
    os.makedirs(os.path.dirname(config))
    with open(config, "w") as file:
        file.write(f'api_key = "{emu.api_key}"\n')
    os.chmod(config, 0o600)
    result = pmzfs("account", env=env)
    assert result.returncode == 0, result.stderr
    assert "customer id:" in result.stdout


def test_env_key_beats_config_file_key(env, emu):
    config = os.path.join(env["XDG_CONFIG_HOME"], "pmzfs", "config.toml")
    os.makedirs(os.path.dirname(config))
    with open(config, "w") as file:
        file.write(f'api_key = "{emu.api_key}"\n')
    os.chmod(config, 0o600)
    result = pmzfs("account", env={**env, "PMZFS_API_KEY": "wrong-key-123456"})
    assert result.returncode == 1
    assert "PMZFS_API_KEY was rejected" in result.stderr
