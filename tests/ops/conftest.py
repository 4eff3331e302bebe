"""Fixtures for the ops tests."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest


@pytest.fixture
def short_tmp():
    """A private temporary folder with a short path.

    A unix socket path must fit in 107 bytes, which pytest's tmp_path can exceed.
    """
    path = Path(tempfile.mkdtemp(prefix="pmzfs-ops-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
