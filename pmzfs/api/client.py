"""The async premiumize API client (interface; the API helper fills in the bodies).

Every method sends exactly the parameters of the API contract and returns a
typed record from ``pmzfs.api.models`` or raises an ``APIError`` subclass.
Calls that change state verify the outcome themselves after an ambiguous
failure (a timeout or reset after the request was sent), so callers never
see a duplicate folder or a double delete.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import httpx

from pmzfs.api.models import (
    AccessToken,
    AccountInfo,
    CacheStatus,
    DeviceCode,
    DirectLink,
    FolderListing,
    Item,
    ItemDetails,
    ListedFile,
    Transfer,
    UploadInfo,
)

DEFAULT_API_URL = "https://www.premiumize.me"

ProgressCallback = Callable[[int, int], None]
"""Called with (bytes sent, total bytes) while an upload runs."""


class PremiumizeClient:
    """One client per account and mount.  Use as ``async with``."""

    def __init__(
        self,
        base_url: str = DEFAULT_API_URL,
        credential: "object | None" = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> PremiumizeClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # account
    async def account_info(self) -> AccountInfo: raise NotImplementedError

    # folders
    async def folder_list(self, id: str | None = None, *, path: str | None = None) -> FolderListing: raise NotImplementedError
    async def folder_create(self, name: str, parent_id: str | None = None) -> str: raise NotImplementedError
    async def folder_rename(self, id: str, name: str) -> None: raise NotImplementedError
    async def folder_delete(self, id: str) -> None: raise NotImplementedError
    async def folder_paste(self, target_id: str, *, files: Sequence[str] = (), folders: Sequence[str] = ()) -> None: raise NotImplementedError
    async def folder_uploadinfo(self, id: str | None = None) -> UploadInfo: raise NotImplementedError
    async def folder_search(self, q: str) -> list[Item]: raise NotImplementedError

    # items
    async def item_details(self, id: str) -> ItemDetails: raise NotImplementedError
    async def item_rename(self, id: str, name: str) -> None: raise NotImplementedError
    async def item_delete(self, id: str) -> None: raise NotImplementedError
    async def item_listall(self) -> list[ListedFile]: raise NotImplementedError

    # uploads: uploadinfo, then a streamed multipart POST; returns the new file's id
    async def upload_file(
        self, folder_id: str | None, source: Path, name: str, *, progress: ProgressCallback | None = None
    ) -> str: raise NotImplementedError

    # transfers, cache, services, zip
    async def transfer_create(self, src: str | None = None, *, file: Path | None = None, folder_id: str | None = None) -> str: raise NotImplementedError
    async def transfer_directdl(self, src: str) -> list[DirectLink]: raise NotImplementedError
    async def transfer_list(self) -> list[Transfer]: raise NotImplementedError
    async def transfer_retry(self, id: str) -> None: raise NotImplementedError
    async def transfer_delete(self, id: str) -> None: raise NotImplementedError
    async def transfer_clearfinished(self) -> None: raise NotImplementedError
    async def cache_check(self, items: Sequence[str]) -> list[CacheStatus]: raise NotImplementedError
    async def services_list(self) -> dict: raise NotImplementedError
    async def zip_generate(self, *, files: Sequence[str] = (), folders: Sequence[str] = ()) -> str: raise NotImplementedError

    # OAuth device flow (no credential needed)
    async def device_code(self, client_id: str) -> DeviceCode: raise NotImplementedError
    async def device_token(self, client_id: str, device_code: str) -> AccessToken: raise NotImplementedError
