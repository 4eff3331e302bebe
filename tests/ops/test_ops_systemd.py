"""The shipped systemd units pass `systemd-analyze verify` and keep their key settings."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT_DIR = Path(__file__).resolve().parents[2] / "systemd"
SYSTEM_UNIT = UNIT_DIR / "system" / "pmzfs@.service"
USER_UNIT = UNIT_DIR / "user" / "pmzfs@.service"
# The units name the install location of pmzfs; verify checks that the
# program exists, so the test points them at this virtualenv's pmzfs.
INSTALLED_PMZFS = {SYSTEM_UNIT: "/usr/local/bin/pmzfs", USER_UNIT: "%h/.local/bin/pmzfs"}

needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed (Debian package systemd)",
)


def local_copy(unit: Path, directory: Path) -> Path:
    pmzfs = Path(sys.executable).with_name("pmzfs")
    assert pmzfs.exists(), f"{pmzfs} missing: run pip install -e ."
    text = unit.read_text()
    assert INSTALLED_PMZFS[unit] in text
    copy = directory / unit.name
    copy.write_text(text.replace(INSTALLED_PMZFS[unit], str(pmzfs)))
    return directory / "pmzfs@mnt-cloud.service"


def verify(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["systemd-analyze", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


@needs_analyze
def test_system_unit_verifies(short_tmp):
    instance = local_copy(SYSTEM_UNIT, short_tmp)
    result = verify(["verify", str(instance)])
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


@needs_analyze
def test_user_unit_verifies(short_tmp):
    runtime = short_tmp / "runtime"
    runtime.mkdir(mode=0o700)
    instance = local_copy(USER_UNIT, short_tmp)
    result = verify(["--user", "verify", str(instance)], env={"XDG_RUNTIME_DIR": str(runtime)})
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


@pytest.mark.parametrize("unit", [SYSTEM_UNIT, USER_UNIT], ids=["system", "user"])
def test_unit_key_settings(unit):
    lines = unit.read_text().splitlines()
    pmzfs = INSTALLED_PMZFS[unit]
    assert "Type=notify" in lines
    assert f"ExecStart={pmzfs} mount %f --foreground" in lines
    assert f"ExecStop={pmzfs} unmount %f" in lines
    assert lines.index(f"ExecStop={pmzfs} unmount %f") + 1 == lines.index(
        "ExecStop=/bin/sh -c 'while kill -0 \"$MAINPID\" 2>/dev/null; do sleep 1; done'"
    )
    assert "Restart=on-failure" in lines
    assert "RestartPreventExitStatus=2" in lines
    assert "After=network-online.target" in lines
    assert "TimeoutStopSec=15min" in lines
    for sandboxing in ("PrivateTmp=", "ProtectSystem=", "ProtectHome=", "PrivateMounts="):
        assert not any(line.startswith(sandboxing) for line in lines), sandboxing
