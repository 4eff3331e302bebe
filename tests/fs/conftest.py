"""The ``Operations`` class called directly, against an in-process emulator.

No kernel is involved: a test calls the handlers as pyfuse3 would, with the
real API client, tree and reader talking to the emulator on 127.0.0.1.
``readdir_reply`` is the one pyfuse3 function replaced (see ``fs_testing.py``),
because its real token only exists inside a FUSE request.
"""

from __future__ import annotations

import pyfuse3
import pytest

from pmzfs.api import PremiumizeClient
from pmzfs.auth import Credential
from pmzfs.emulator import Emulator, EmulatorOptions
from pmzfs.fs import Operations
from pmzfs.mtimes import MtimeStore
from pmzfs.options import MountOptions
from pmzfs.reader import Reader
from pmzfs.tree import Tree
from pmzfs.writer import RetryPolicy, Writer, is_temporary_name
from fs_testing import API_KEY, FAST_RETRY, collecting_readdir_reply

# Background retries that never fire on their own during a test.
NO_BACKGROUND_RETRIES = RetryPolicy((3600.0,))

@pytest.fixture(autouse=True)
def fake_readdir_reply(monkeypatch):
    monkeypatch.setattr(pyfuse3, "readdir_reply", collecting_readdir_reply)


@pytest.fixture
def emulator(tmp_path):
    with Emulator(state_dir=tmp_path / "emulator", options=EmulatorOptions(api_key=API_KEY)) as emu:
        yield emu


@pytest.fixture
def mount_options():
    return MountOptions(uid=1234, gid=5678, umask=0o022, dir_cache_ttl=60.0, negative_ttl=2.0)


@pytest.fixture
async def parts(emulator, mount_options):
    """(operations, tree, reader) of one mount of ``emulator``."""
    client = PremiumizeClient(emulator.base_url, Credential(API_KEY, "the test"), retry=FAST_RETRY)
    tree = Tree(
        client,
        root_inode=pyfuse3.ROOT_INODE,
        dir_cache_ttl=mount_options.dir_cache_ttl,
        negative_ttl=mount_options.negative_ttl,
        stale_wait=0.5,
    )
    reader = Reader(memory_limit=8 * 1024 * 1024, max_window=1024 * 1024)
    async with client, tree, reader:
        operations = Operations(tree, reader, mount_options)
        try:
            yield operations, tree, reader
        finally:
            await operations.close_all()


@pytest.fixture
def ops(parts):
    return parts[0]


@pytest.fixture
def tree(parts):
    return parts[1]


@pytest.fixture
async def writable(emulator, mount_options, tmp_path):
    """(operations, tree, writer) of one writable mount of ``emulator``."""
    client = PremiumizeClient(emulator.base_url, Credential(API_KEY, "the test"), retry=FAST_RETRY, rate=0)
    tree = Tree(
        client,
        root_inode=pyfuse3.ROOT_INODE,
        dir_cache_ttl=mount_options.dir_cache_ttl,
        negative_ttl=mount_options.negative_ttl,
        stale_wait=0.5,
        hidden_name=is_temporary_name,
    )
    reader = Reader(memory_limit=8 * 1024 * 1024, max_window=1024 * 1024)
    with MtimeStore.in_cache_dir(tmp_path / "cache") as mtimes:
        writer = Writer(client, tmp_path / "cache" / "staging", mtimes=mtimes, retry=NO_BACKGROUND_RETRIES)
        operations = Operations(tree, reader, mount_options, writer=writer)
        async with client, tree, reader, writer:
            try:
                yield operations, tree, writer
            finally:
                await operations.close_all()
