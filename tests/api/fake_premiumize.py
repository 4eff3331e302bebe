"""An in-memory premiumize service behind ``httpx.MockTransport`` for client unit tests.

It keeps folders and files in dictionaries, returns the documented
envelopes and records every request.  It also plays scripted faults: an
error envelope, an HTTP status, an exception before the request is
applied, or an exception after it was applied (the ambiguous case).
"""

from __future__ import annotations

import itertools
import json
import urllib.parse
from collections import defaultdict
from dataclasses import dataclass, field

import httpx

BASE_URL = "http://127.0.0.1:9"
UPLOAD_URL = "http://127.0.0.1:9/upload"
API_KEY = "unit-test-api-key-0123456789"


@dataclass
class Fault:
    """One scripted failure of the next request to an endpoint.

    ``kind`` is ``envelope`` (HTTP 200 error with ``code``), ``http``
    (``status`` with ``body``), ``before`` (raise ``exception`` without
    applying), ``after`` (apply the request, then raise ``exception``) or
    ``after_http`` (apply the request, then respond with ``status``).
    """

    kind: str
    code: str = ""
    status: int = 500
    body: bytes = b""
    content_type: str = "application/json"
    exception: type[Exception] = httpx.ReadTimeout
    headers: dict[str, str] = field(default_factory=dict)


def envelope(code: str) -> Fault:
    return Fault("envelope", code=code)


def http_status(status: int, body: bytes | str = b"", content_type: str = "application/json", **headers: str) -> Fault:
    raw = body.encode() if isinstance(body, str) else body
    return Fault("http", status=status, body=raw, content_type=content_type, headers=headers)


def fail_before(exception: type[Exception] = httpx.ConnectError) -> Fault:
    return Fault("before", exception=exception)


def fail_after(exception: type[Exception] = httpx.ReadTimeout) -> Fault:
    return Fault("after", exception=exception)


def status_after(status: int = 500) -> Fault:
    return Fault("after_http", status=status, body=b'{"status":"error","code":"unknown_error","message":"x"}')


class FakeService:
    """The fake service; pass ``transport`` to ``PremiumizeClient``."""

    def __init__(self, api_key: str = API_KEY) -> None:
        self.api_key = api_key
        self.requests: list[httpx.Request] = []
        self.bodies: list[bytes] = []
        self.faults: dict[str, list[Fault]] = defaultdict(list)
        self._ids = (f"id{n:04d}" for n in itertools.count(1))
        self.root_id = "root0000"
        self.folders: dict[str, dict] = {self.root_id: {"name": "My Files", "parent": None}}
        self.files: dict[str, dict] = {}
        self.tokens: dict[str, str] = {}
        self.used_tokens: list[str] = []
        # OAuth device flow: the errors returned to successive polls, then success.
        self.device_code = "device-code-secret-0001"
        self.poll_answers: list[str] = []
        self.access_token = "access-token-secret-0001"
        self.transport = httpx.MockTransport(self.handle)

    # state helpers
    def add_folder(self, name: str, parent: str | None = None) -> str:
        folder_id = next(self._ids)
        self.folders[folder_id] = {"name": name, "parent": parent or self.root_id}
        return folder_id

    def add_file(self, name: str, folder: str | None = None, size: int = 10) -> str:
        file_id = next(self._ids)
        self.files[file_id] = {"name": name, "folder": folder or self.root_id, "size": size}
        return file_id

    def fail(self, endpoint: str, *faults: Fault) -> None:
        self.faults[endpoint].extend(faults)

    def calls(self, endpoint: str) -> list[httpx.Request]:
        return [r for r in self.requests if self.endpoint_of(r) == endpoint]

    @staticmethod
    def endpoint_of(request: httpx.Request) -> str:
        path = request.url.path
        return path[len("/api/"):] if path.startswith("/api/") else path.lstrip("/")

    # request handling
    async def handle(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        self.requests.append(request)
        self.bodies.append(body)
        endpoint = self.endpoint_of(request)
        fault = self.faults[endpoint].pop(0) if self.faults[endpoint] else None
        if fault is not None:
            if fault.kind == "envelope":
                return self.error(fault.code)
            if fault.kind == "http":
                headers = {"content-type": fault.content_type, **fault.headers}
                return httpx.Response(fault.status, content=fault.body, headers=headers)
            if fault.kind == "before":
                raise fault.exception("scripted failure", request=request)
        response = self.dispatch(request, endpoint, body)
        if fault is not None and fault.kind == "after":
            raise fault.exception("scripted failure after the request was applied", request=request)
        if fault is not None and fault.kind == "after_http":
            return httpx.Response(fault.status, content=fault.body, headers={"content-type": fault.content_type})
        return response

    def params(self, request: httpx.Request, body: bytes) -> dict[str, list[str]]:
        merged = urllib.parse.parse_qs(request.url.query.decode(), keep_blank_values=True)
        if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            for key, values in urllib.parse.parse_qs(body.decode(), keep_blank_values=True).items():
                merged.setdefault(key, []).extend(values)
        return merged

    @staticmethod
    def ok(**fields: object) -> httpx.Response:
        return httpx.Response(200, json={"status": "success", **fields})

    @staticmethod
    def error(code: str, message: str = "scripted error") -> httpx.Response:
        return httpx.Response(200, json={"status": "error", "code": code, "message": message})

    def dispatch(self, request: httpx.Request, endpoint: str, body: bytes) -> httpx.Response:
        if endpoint == "upload":
            return self.upload(body)
        if endpoint == "token":
            return self.token(self.params(request, body))
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return self.error("authentication_failed", "invalid API key")
        p = {key: values[0] for key, values in self.params(request, body).items()}
        lists = self.params(request, body)
        handler = getattr(self, "do_" + endpoint.replace("/", "_"), None)
        if handler is None:
            return self.error("not_found", f"unknown endpoint {endpoint}")
        return handler(p, lists)

    def item_json(self, item_id: str) -> dict:
        if item_id in self.folders:
            return {"id": item_id, "name": self.folders[item_id]["name"], "type": "folder", "created_at": 1700000000}
        f = self.files[item_id]
        return {
            "id": item_id, "name": f["name"], "type": "file", "created_at": 1700000000,
            "size": f["size"], "mime_type": "application/octet-stream", "link": f"{BASE_URL}/dl/{item_id}",
        }

    def do_account_info(self, p, lists):
        return self.ok(customer_id="1234567", premium_until=1799999999, limit_used=0.42,
                       space_used=12345678901, booster_points=0)

    def do_folder_list(self, p, lists):
        folder_id = p.get("id") or self.root_id
        if folder_id not in self.folders:
            return self.error("not_found", "folder not found")
        folder = self.folders[folder_id]
        content = [self.item_json(i) for i, f in self.folders.items() if f["parent"] == folder_id]
        content += [self.item_json(i) for i, f in self.files.items() if f["folder"] == folder_id]
        return self.ok(name=folder["name"], folder_id=folder_id, parent_id=folder["parent"] or "",
                       breadcrumbs=[], content=content)

    def do_folder_create(self, p, lists):
        if "name" not in p:
            return self.error("invalid_request", "name is missing")
        return self.ok(id=self.add_folder(p["name"], p.get("parent_id")))

    def do_folder_rename(self, p, lists):
        if p.get("id") not in self.folders:
            return self.error("not_found", "folder not found")
        self.folders[p["id"]]["name"] = p["name"]
        return self.ok()

    def do_folder_delete(self, p, lists):
        if p.get("id") not in self.folders:
            return self.error("not_found", "folder not found")
        del self.folders[p["id"]]
        return self.ok()

    def do_folder_paste(self, p, lists):
        target = p.get("id")
        if target not in self.folders:
            return self.error("not_found", "target not found")
        for file_id in lists.get("files[]", []):
            self.files[file_id]["folder"] = target
        for folder_id in lists.get("folders[]", []):
            self.folders[folder_id]["parent"] = target
        return self.ok()

    def do_folder_uploadinfo(self, p, lists):
        token = f"upload-token-{next(self._ids)}-secret"
        self.tokens[token] = p.get("id") or self.root_id
        return self.ok(token=token, url=UPLOAD_URL)

    def do_folder_search(self, p, lists):
        found = [self.item_json(i) for i, f in {**self.folders, **self.files}.items() if p["q"] in f["name"]]
        return self.ok(name="Search Results", content=found)

    def do_item_details(self, p, lists):
        if p.get("id") not in self.files:
            return self.error("not_found", "file not found")
        f = self.files[p["id"]]
        return self.ok(id=p["id"], name=f["name"], size=f["size"], created_at=1700000000,
                       folder_id=f["folder"], mime_type="application/octet-stream", link=f"{BASE_URL}/dl/{p['id']}")

    def do_item_rename(self, p, lists):
        if p.get("id") not in self.files:
            return self.error("not_found", "file not found")
        self.files[p["id"]]["name"] = p["name"]
        return self.ok()

    def do_item_delete(self, p, lists):
        if p.get("id") not in self.files:
            return self.error("not_found", "file not found")
        del self.files[p["id"]]
        return self.ok()

    def do_item_listall(self, p, lists):
        return self.ok(files=[
            {"id": i, "name": f["name"], "path": f["name"], "size": f["size"], "created_at": 1700000000,
             "mime_type": "application/octet-stream"} for i, f in self.files.items()
        ])

    def do_transfer_create(self, p, lists):
        return self.ok(id="transfer1", name="video.mkv")

    def do_transfer_directdl(self, p, lists):
        return self.ok(content=[{"path": "Folder/video1.mkv", "size": 123, "link": f"{BASE_URL}/dl/x"}])

    def do_transfer_list(self, p, lists):
        return self.ok(transfers=[{"id": "transfer1", "name": "video.mkv", "status": "running", "progress": 0.42,
                                   "message": "Downloading", "folder_id": self.root_id, "file_id": None}])

    def do_transfer_retry(self, p, lists):
        return self.ok()

    def do_transfer_delete(self, p, lists):
        return self.ok()

    def do_transfer_clearfinished(self, p, lists):
        return self.ok()

    def do_cache_check(self, p, lists):
        items = lists.get("items[]", [])
        return self.ok(response=[i.startswith("cached") for i in items],
                       filename=[i if i.startswith("cached") else None for i in items],
                       filesize=["123" if i.startswith("cached") else 0 for i in items])

    def do_services_list(self, p, lists):
        return self.ok(cache=["a"], directdl=["b"], queue=["c"], fairusefactor={"a": 1},
                       aliases={"a": ["a.alt"]}, regexpatterns={"a": ["^x$"]}, legacy_field=1)

    def do_zip_generate(self, p, lists):
        return self.ok(location=f"{BASE_URL}/zip/archive.zip")

    def token(self, params: dict[str, list[str]]) -> httpx.Response:
        p = {key: values[0] for key, values in params.items()}
        if p.get("response_type") == "device_code":
            return httpx.Response(200, json={
                "verification_uri": f"{BASE_URL}/device", "user_code": "kpwx-3m7r",
                "device_code": self.device_code, "expires_in": 600, "interval": 5,
            })
        if p.get("grant_type") != "device_code" or p.get("code") != self.device_code:
            return httpx.Response(400, json={"error": "invalid_grant", "error_description": "unknown code"})
        if self.poll_answers:
            error = self.poll_answers.pop(0)
            return httpx.Response(400, json={"error": error, "error_description": f"scripted {error}"})
        return httpx.Response(200, json={
            "access_token": self.access_token, "token_type": "Bearer", "expires_in": 3600, "scope": "full",
        })

    def upload(self, body: bytes) -> httpx.Response:
        """Parse the multipart body just enough for tests: token, filename, content."""
        boundary = body.split(b"\r\n", 1)[0]
        parts = body.split(boundary)
        fields: dict[str, tuple[str | None, bytes]] = {}
        for part in parts[1:-1]:
            head, _, content = part[2:].partition(b"\r\n\r\n")
            content = content[:-2]
            disposition = head.split(b"\r\n")[0].decode()
            name = disposition.split('name="')[1].split('"')[0]
            filename = disposition.split('filename="')[1].split('"')[0] if "filename=" in disposition else None
            fields[name] = (filename, content)
        token = fields["token"][1].decode()
        self.used_tokens.append(token)
        folder = self.tokens.pop(token, None)
        if folder is None:
            return self.error("invalid_request", "invalid or used upload token")
        filename, content = fields["file"]
        file_id = self.add_file(filename or "upload", folder, size=len(content))
        self.files[file_id]["content"] = content
        return httpx.Response(200, content=json.dumps({"status": "success"}).encode())
