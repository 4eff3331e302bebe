"""An in-memory stand-in for the API client, for tests of ``pmzfs.tree``.

``FakeClient`` implements the few client methods the tree calls, on a dict
of folders.  It counts calls, can fail every call with a chosen ``APIError``
and can delay each call so tests can run lookups concurrently.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field

import pytest
import trio

from pmzfs.api.errors import APIError, NotFound
from pmzfs.api.models import AccountInfo, FolderListing, Item, ItemDetails
from pmzfs.tree import Tree


@dataclass
class FakeFolder:
    name: str
    parent_id: str | None
    # Keyed by "file:ID" or "folder:ID", because the two id spaces are separate.
    items: dict[str, Item] = field(default_factory=dict)


class FakeClient:
    ROOT_ID = "root-folder-id"

    def __init__(self) -> None:
        self.folders: dict[str, FakeFolder] = {self.ROOT_ID: FakeFolder("My Files", None)}
        self.calls: Counter[str] = Counter()
        self.listed_ids: list[str | None] = []
        self.failure: APIError | None = None
        self.delay = 0.0
        self.space_used = 12345
        self._ids = itertools.count(1)

    def new_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids):06d}"

    def add_folder(self, parent_id: str, name: str, *, folder_id: str | None = None) -> str:
        folder_id = folder_id or self.new_id("d")
        self.folders[folder_id] = FakeFolder(name, parent_id)
        self.folders[parent_id].items["folder:" + folder_id] = Item(id=folder_id, name=name, type="folder", created_at=1_700_000_000)
        return folder_id

    def add_file(self, parent_id: str, name: str, size: int = 100, *, file_id: str | None = None) -> str:
        file_id = file_id or self.new_id("f")
        self.folders[parent_id].items["file:" + file_id] = Item(
            id=file_id,
            name=name,
            type="file",
            created_at=1_700_000_123,
            size=size,
            link=f"http://127.0.0.1:9/{file_id}",
        )
        return file_id

    def remove(self, parent_id: str, item_id: str) -> None:
        items = self.folders[parent_id].items
        items.pop("file:" + item_id, None)
        if items.pop("folder:" + item_id, None) is not None:
            del self.folders[item_id]

    def replace(self, parent_id: str, item: Item) -> None:
        self.folders[parent_id].items[f"{item.type}:{item.id}"] = item

    async def _call(self, endpoint: str) -> None:
        self.calls[endpoint] += 1
        if self.delay:
            await trio.sleep(self.delay)
        if self.failure is not None:
            raise self.failure

    async def folder_list(self, id: str | None = None, *, path: str | None = None) -> FolderListing:
        self.listed_ids.append(id)
        await self._call("folder/list")
        folder_id = id or self.ROOT_ID
        folder = self.folders.get(folder_id)
        if folder is None:
            raise NotFound("folder not found", endpoint="folder/list")
        return FolderListing(
            folder_id=folder_id,
            name=folder.name,
            parent_id=folder.parent_id,
            breadcrumbs=(),
            content=tuple(folder.items.values()),
        )

    async def item_details(self, id: str) -> ItemDetails:
        await self._call("item/details")
        for folder_id, folder in self.folders.items():
            item = folder.items.get("file:" + id)
            if item is not None:
                return ItemDetails(
                    id=id,
                    name=item.name,
                    size=item.size,
                    created_at=item.created_at,
                    folder_id=folder_id,
                    mime_type=None,
                    link=f"http://127.0.0.1:9/{id}?fresh",
                )
        raise NotFound("file not found", endpoint="item/details")

    async def account_info(self) -> AccountInfo:
        await self._call("account/info")
        return AccountInfo(customer_id="1", premium_until=None, limit_used=0.0, space_used=self.space_used, booster_points=0)


@pytest.fixture
def client() -> FakeClient:
    return FakeClient()


@pytest.fixture
def tree(client: FakeClient) -> Tree:
    return Tree(client, root_inode=1, dir_cache_ttl=60.0, negative_ttl=2.0)
