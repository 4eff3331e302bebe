"""Typed records for API responses.

Each ``from_json`` reads only the fields the documentation lists, because
the service marks every other field as legacy or experimental.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


def _int(value: Any, default: int = 0) -> int:
    if value is None or value == "":
        return default
    return int(value)


@dataclass(frozen=True, slots=True)
class AccountInfo:
    customer_id: str
    premium_until: int | None
    limit_used: float
    space_used: int
    booster_points: int

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AccountInfo:
        premium = data.get("premium_until")
        return cls(
            customer_id=str(data.get("customer_id", "")),
            premium_until=int(premium) if premium else None,
            limit_used=float(data.get("limit_used") or 0.0),
            space_used=_int(data.get("space_used")),
            booster_points=_int(data.get("booster_points")),
        )


@dataclass(frozen=True, slots=True)
class Item:
    """One entry of a folder listing or search result."""

    id: str
    name: str
    type: Literal["file", "folder"]
    created_at: int
    size: int = 0
    mime_type: str | None = None
    link: str | None = field(default=None, repr=False)

    @property
    def is_folder(self) -> bool:
        return self.type == "folder"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Item:
        kind = "folder" if data.get("type") == "folder" else "file"
        return cls(
            id=str(data["id"]),
            name=str(data["name"]),
            type=kind,
            created_at=_int(data.get("created_at")),
            size=_int(data.get("size")) if kind == "file" else 0,
            mime_type=data.get("mime_type") if kind == "file" else None,
            link=data.get("link") if kind == "file" else None,
        )


@dataclass(frozen=True, slots=True)
class Breadcrumb:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class FolderListing:
    folder_id: str
    name: str
    parent_id: str | None
    breadcrumbs: tuple[Breadcrumb, ...]
    content: tuple[Item, ...]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FolderListing:
        return cls(
            folder_id=str(data["folder_id"]),
            name=str(data.get("name", "")),
            parent_id=str(data["parent_id"]) if data.get("parent_id") else None,
            breadcrumbs=tuple(
                Breadcrumb(id=str(b["id"]), name=str(b["name"])) for b in data.get("breadcrumbs") or ()
            ),
            content=tuple(Item.from_json(entry) for entry in data.get("content") or ()),
        )


@dataclass(frozen=True, slots=True)
class ItemDetails:
    id: str
    name: str
    size: int
    created_at: int
    folder_id: str | None
    mime_type: str | None
    link: str | None = field(repr=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ItemDetails:
        return cls(
            id=str(data["id"]),
            name=str(data["name"]),
            size=_int(data.get("size")),
            created_at=_int(data.get("created_at")),
            folder_id=str(data["folder_id"]) if data.get("folder_id") else None,
            mime_type=data.get("mime_type"),
            link=data.get("link"),
        )


@dataclass(frozen=True, slots=True)
class ListedFile:
    """One entry of ``item/listall``: a file with its path from the root."""

    id: str
    name: str
    path: str
    size: int
    created_at: int
    mime_type: str | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ListedFile:
        return cls(
            id=str(data["id"]),
            name=str(data["name"]),
            path=str(data.get("path", "")),
            size=_int(data.get("size")),
            created_at=_int(data.get("created_at")),
            mime_type=data.get("mime_type"),
        )


@dataclass(frozen=True, slots=True)
class UploadInfo:
    """A single-use upload URL and its token; the token is never shown in a repr."""

    url: str = field(repr=False)
    token: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Transfer:
    id: str
    name: str
    status: str
    progress: float
    message: str
    folder_id: str | None
    file_id: str | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Transfer:
        return cls(
            id=str(data["id"]),
            name=str(data.get("name", "")),
            status=str(data.get("status", "")),
            progress=float(data.get("progress") or 0.0),
            message=str(data.get("message") or ""),
            folder_id=str(data["folder_id"]) if data.get("folder_id") else None,
            file_id=str(data["file_id"]) if data.get("file_id") else None,
        )


@dataclass(frozen=True, slots=True)
class DirectLink:
    path: str
    size: int
    link: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class CacheStatus:
    """One entry of ``cache/check``, in request order."""

    cached: bool
    filename: str | None
    filesize: int


@dataclass(frozen=True, slots=True)
class DeviceCode:
    verification_uri: str
    user_code: str
    device_code: str = field(repr=False)
    expires_in: int
    interval: int


@dataclass(frozen=True, slots=True)
class AccessToken:
    access_token: str = field(repr=False)
    token_type: str
    expires_in: int | None
    scope: str
