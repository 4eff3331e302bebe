"""The API methods: one function per endpoint, from parameters to a response.

Each function takes the emulator and the request's ``Params`` and returns
the fields of a success envelope, or raises ``ServiceError`` for an error
envelope.  ``ENDPOINTS`` maps each path under ``/api/`` to its HTTP method
and function.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pmzfs.emulator.errors import invalid_request, not_found
from pmzfs.emulator.params import Params
from pmzfs.emulator.state import File, Folder

if TYPE_CHECKING:
    from pmzfs.emulator.server import Emulator

Response = dict[str, Any]
Handler = Callable[["Emulator", Params], Response]

PREMIUM_SECONDS = 365 * 24 * 3600


def _entry_json(emu: Emulator, entry: Folder | File) -> Response:
    if isinstance(entry, Folder):
        return {"id": entry.id, "name": entry.name, "type": "folder", "created_at": entry.created_at}
    return {
        "id": entry.id,
        "name": entry.name,
        "type": "file",
        "created_at": entry.created_at,
        "size": entry.size,
        "mime_type": entry.mime_type,
        "link": emu.link_for(entry),
    }


# ---------------------------------------------------------------- account


def account_info(emu: Emulator, params: Params) -> Response:
    digest = hashlib.sha256(emu.state.root_id.encode()).hexdigest()
    return {
        "customer_id": str(int(digest[:8], 16) % 10_000_000),
        "premium_until": emu.state.created_at + PREMIUM_SECONDS,
        "limit_used": 0.0,
        "space_used": emu.state.space_used,
        "booster_points": 0,
    }


# ---------------------------------------------------------------- folders


def folder_list(emu: Emulator, params: Params) -> Response:
    state = emu.state
    folder_id = params.get("id")
    path = params.get("path")
    if folder_id:
        folder = state.folder(folder_id)
    elif path:
        found = state.find(path)
        if found is None or state.is_file(found):
            raise not_found(f"no folder at path {path!r}")
        folder = state.folder(found)
    else:
        folder = state.folder(state.root_id)
    with state.lock:
        content = [_entry_json(emu, entry) for entry in state.children(folder.id)]
        crumbs = [{"id": crumb.id, "name": crumb.name} for crumb in state.breadcrumbs(folder.id)]
    return {
        "name": folder.name,
        "parent_id": folder.parent_id,
        "folder_id": folder.id,
        "breadcrumbs": crumbs,
        "content": content,
    }


def folder_create(emu: Emulator, params: Params) -> Response:
    name = params.get("name")
    parent_id = params.get("parent_id") or None
    return {"id": emu.state.create_folder(parent_id, name)}  # type: ignore[arg-type]


def folder_rename(emu: Emulator, params: Params) -> Response:
    emu.state.rename(params.require("id"), params.get("name"), kind="folder")  # type: ignore[arg-type]
    return {}


def folder_delete(emu: Emulator, params: Params) -> Response:
    emu.state.delete_folder(params.require("id"))
    return {}


def folder_paste(emu: Emulator, params: Params) -> Response:
    target = params.require("id")
    files = params.array("files")
    folders = params.array("folders")
    if not files and not folders:
        raise invalid_request("send at least one of files[] or folders[]")
    emu.state.move(target, files, folders)
    return {}


def folder_uploadinfo(emu: Emulator, params: Params) -> Response:
    folder_id = params.get("id") or emu.state.root_id
    emu.state.folder(folder_id)
    token, url = emu.uploads.issue(folder_id)
    return {"token": token, "url": url}


def folder_search(emu: Emulator, params: Params) -> Response:
    query = params.require("q").casefold()
    state = emu.state
    with state.lock:
        matches: list[Folder | File] = [
            folder for folder in state.all_folders() if folder.parent_id is not None and query in folder.name.casefold()
        ]
        matches += [file for file in state.all_files() if query in file.name.casefold()]
        content = [_entry_json(emu, entry) for entry in matches]
    return {"name": "Search Results", "content": content}


# ---------------------------------------------------------------- items


def item_details(emu: Emulator, params: Params) -> Response:
    file = emu.state.file(params.require("id"))
    return {
        "id": file.id,
        "name": file.name,
        "size": file.size,
        "created_at": file.created_at,
        "folder_id": file.folder_id,
        "mime_type": file.mime_type,
        "link": emu.link_for(file),
    }


def item_rename(emu: Emulator, params: Params) -> Response:
    emu.state.rename(params.require("id"), params.get("name"), kind="file")  # type: ignore[arg-type]
    return {}


def item_delete(emu: Emulator, params: Params) -> Response:
    emu.state.delete_file(params.require("id"))
    return {}


def item_listall(emu: Emulator, params: Params) -> Response:
    state = emu.state
    with state.lock:
        files = [
            {
                "id": file.id,
                "name": file.name,
                "path": state.path_of(file.id),
                "size": file.size,
                "created_at": file.created_at,
                "mime_type": file.mime_type,
            }
            for file in state.all_files()
        ]
    return {"files": files}


# ---------------------------------------------------------------- transfers, cache, services, zip


def transfer_create(emu: Emulator, params: Params) -> Response:
    return emu.transfers.create(params)


def transfer_directdl(emu: Emulator, params: Params) -> Response:
    return emu.transfers.directdl(params.require("src"))


def transfer_list(emu: Emulator, params: Params) -> Response:
    return {"transfers": emu.transfers.list()}


def transfer_retry(emu: Emulator, params: Params) -> Response:
    emu.transfers.retry(params.require("id"))
    return {}


def transfer_delete(emu: Emulator, params: Params) -> Response:
    emu.transfers.delete(params.require("id"))
    return {}


def transfer_clearfinished(emu: Emulator, params: Params) -> Response:
    emu.transfers.clear_finished()
    return {}


def cache_check(emu: Emulator, params: Params) -> Response:
    return emu.transfers.cache_check(params.array("items"))


def services_list(emu: Emulator, params: Params) -> Response:
    from pmzfs.emulator.transfers import SERVICES

    return dict(SERVICES)


def zip_generate(emu: Emulator, params: Params) -> Response:
    files = params.array("files")
    folders = params.array("folders")
    if not files and not folders:
        raise invalid_request("send at least one of files[] or folders[]")
    return {"location": emu.zips.generate(files, folders)}


ENDPOINTS: dict[str, tuple[str, Handler]] = {
    "account/info": ("GET", account_info),
    "folder/list": ("GET", folder_list),
    "folder/create": ("POST", folder_create),
    "folder/rename": ("POST", folder_rename),
    "folder/delete": ("POST", folder_delete),
    "folder/paste": ("POST", folder_paste),
    "folder/uploadinfo": ("GET", folder_uploadinfo),
    "folder/search": ("GET", folder_search),
    "item/details": ("GET", item_details),
    "item/rename": ("POST", item_rename),
    "item/delete": ("POST", item_delete),
    "item/listall": ("GET", item_listall),
    "transfer/create": ("POST", transfer_create),
    "transfer/directdl": ("POST", transfer_directdl),
    "transfer/list": ("GET", transfer_list),
    "transfer/retry": ("POST", transfer_retry),
    "transfer/delete": ("POST", transfer_delete),
    "transfer/clearfinished": ("POST", transfer_clearfinished),
    "cache/check": ("POST", cache_check),
    "services/list": ("GET", services_list),
    "zip/generate": ("POST", zip_generate),
}
