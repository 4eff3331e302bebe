"""The async premiumize API client.

Every method sends exactly the parameters of the API contract and returns a
typed record from ``pmzfs.api.models`` or raises an ``APIError`` subclass.
Calls that change state verify the outcome themselves after an ambiguous
failure (a timeout or reset after the request was sent, or HTTP 5xx), so
callers never see a duplicate folder or a double delete.  See
``docs/api-client.md`` for the retry rules.
"""

from __future__ import annotations

import collections
import logging
import os
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import trio

from pmzfs import redact
from pmzfs.api._pacer import Pacer, RateLimitPause
from pmzfs.api._retry import RetryPolicy
from pmzfs.api._upload import MultipartUpload, file_size, is_safe_upload_name, placeholder_name
from pmzfs.api.errors import (
    APIError,
    AuthenticationFailed,
    InvalidRequest,
    NotFound,
    OAuthError,
    RateLimitReached,
    TransportError,
    UnexpectedRedirect,
    UnknownError,
    error_from_code,
)
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

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://www.premiumize.me"

ProgressCallback = Callable[[int, int], None]
"""Called with (bytes sent, total bytes) while an upload runs."""

# The upload endpoint's name in logs and errors; its URL is never logged
# because it may carry the upload token.
UPLOAD_ENDPOINT = "upload"

# Seconds a failed upload may spend deleting its placeholder file.
PLACEHOLDER_CLEANUP_SECONDS = 30.0

# httpx errors raised before any byte of the request reached the server.
_NOT_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


@dataclass
class _Change:
    """The check of a call that changes state, run after an ambiguous failure.

    ``verify`` lists or reads the state and returns the response to use
    when the change was applied, or None when it was not (then the request
    is sent again).  ``gone_means_done`` makes a ``not_found`` response to a
    retry count as success, for deletes.  A change with neither is never
    retried after an ambiguous failure.
    """

    verify: Callable[[], Awaitable[dict[str, Any] | None]] | None = None
    gone_means_done: bool = False


def _secret_of(credential: object | None) -> str | None:
    if credential is None:
        return None
    if isinstance(credential, str):
        return credential
    value = getattr(credential, "value", None)
    if not isinstance(value, str):
        raise TypeError("credential must be a string or a pmzfs.auth.Credential")
    return value


def check_api_url(base_url: str) -> str:
    """Return ``base_url`` without a trailing slash; raises ``ValueError`` unless it is http(s)://HOST[:PORT][/PATH]."""
    parsed = urllib.parse.urlsplit(base_url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(f"invalid API URL {base_url!r}: expected http://HOST[:PORT] or https://HOST[:PORT]")
    if parsed.query or parsed.fragment or parsed.username or parsed.password:
        raise ValueError(f"invalid API URL {base_url!r}: remove the query string, fragment or user name")
    return base_url.rstrip("/")


def _describe_url(url: str) -> str:
    """Return the scheme, host and path of ``url``, without the query string that may hold a token."""
    parsed = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parsed.scheme, parsed.netloc.rpartition("@")[2], parsed.path, "", ""))


def _transport_reason(exc: BaseException) -> str:
    """Return the operating system's reason behind an httpx transport error, such as "Connection refused".

    Under trio the errno sits in an exception group below a generic
    "all attempts to connect ... failed" error, so the chain is searched.
    """
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno:
            return os.strerror(current.errno)
        pending.extend(getattr(current, "exceptions", ()))
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                pending.append(linked)
    return redact.redact_text(str(exc)) or type(exc).__name__


class PremiumizeClient:
    """One client per account and mount.  Use as ``async with``.

    ``credential`` is an API key or OAuth access token, as a string or a
    ``pmzfs.auth.Credential``; it is sent only as an ``Authorization:
    Bearer`` header to ``base_url``.  ``transport`` replaces the network
    (tests pass an ``httpx.MockTransport``).  ``retry`` bounds retries;
    ``concurrency``, ``rate`` and ``burst`` cap API requests (uploads to an
    upload URL are not capped here).  Timeouts are in seconds: the connect
    timeout covers opening a connection, the read timeout each wait for
    response bytes, and uploads use ``upload_read_timeout`` for the wait
    after the whole file was sent.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_API_URL,
        credential: object | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
        concurrency: int = 8,
        rate: float = 10.0,
        burst: float = 20.0,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        upload_read_timeout: float = 600.0,
    ) -> None:
        self.base_url = check_api_url(base_url)
        self._secret = _secret_of(credential)
        redact.register_secret(self._secret)
        self.retry = retry or RetryPolicy()
        self.rate_limit_pause = RateLimitPause(self.retry.rate_limit_initial, self.retry.rate_limit_max)
        self.pacer = Pacer(concurrency, rate, burst, self.rate_limit_pause)
        # Requests sent (API calls and uploads, each retry counted) and their
        # failures by error code, for `pmzfs status`.
        self.calls = 0
        self.errors_by_code: collections.Counter[str] = collections.Counter()
        self._timeout = httpx.Timeout(connect=connect_timeout, read=read_timeout, write=read_timeout, pool=None)
        self._upload_timeout = httpx.Timeout(
            connect=connect_timeout, read=upload_read_timeout, write=read_timeout, pool=None
        )
        # Redirects are never followed: a redirect would carry the bearer
        # header to the host it names (see UnexpectedRedirect).
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=self._timeout,
            follow_redirects=False,
            headers={"User-Agent": "pmzfs"},
        )

    def __repr__(self) -> str:
        state = "with credential" if self._secret else "without credential"
        return f"<PremiumizeClient {self.base_url} {state}>"

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> PremiumizeClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------
    # One request

    def _auth_headers(self, endpoint: str) -> dict[str, str]:
        if not self._secret:
            raise AuthenticationFailed(
                "no API key or access token is set; run `pmzfs login` or set PMZFS_API_KEY",
                endpoint=endpoint,
            )
        return {"Authorization": f"Bearer {self._secret}"}

    async def _send(
        self,
        method: str,
        url: str,
        endpoint: str,
        *,
        paced: bool = True,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Send one request and return the parsed success payload, or raise its ``APIError``."""
        started = trio.current_time()
        if paced:
            async with self.pacer.slot() as generation:
                response = await self._request(method, url, endpoint, started, **kwargs)
        else:
            generation = None
            response = await self._request(method, url, endpoint, started, **kwargs)
        try:
            payload = self._parse(response, endpoint)
        except RateLimitReached as exc:
            self.errors_by_code[exc.code] += 1
            if generation is not None:
                self.rate_limit_pause.hit(generation)
            self._log_response(method, endpoint, response, "rate_limit_reached", started)
            raise
        except APIError as exc:
            self.errors_by_code[exc.code] += 1
            self._log_response(method, endpoint, response, exc.code, started)
            raise
        self._log_response(method, endpoint, response, "success", started)
        if paced:
            self.rate_limit_pause.success()
        return payload

    async def _request(self, method: str, url: str, endpoint: str, started: float, **kwargs: Any) -> httpx.Response:
        self.calls += 1
        try:
            return await self._http.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            self.errors_by_code[TransportError.code] += 1
            not_sent = isinstance(exc, _NOT_SENT_ERRORS)
            reason = _transport_reason(exc)
            log.debug(
                "%s %s -> %s (%s) after %.3f s", method, endpoint, type(exc).__name__, reason,
                trio.current_time() - started,
            )
            failure = "could not connect" if not_sent else "failed"
            error = TransportError(
                f"{failure} to {self.base_url if endpoint != UPLOAD_ENDPOINT else 'the upload URL'}: "
                f"{type(exc).__name__}: {reason}",
                endpoint=endpoint,
                maybe_applied=not not_sent,
                reason=reason,
            )
            raise error from None

    def _log_response(
        self, method: str, endpoint: str, response: httpx.Response, outcome: str, started: float
    ) -> None:
        log.debug(
            "%s %s -> HTTP %d %s in %.3f s",
            method, endpoint, response.status_code, outcome, trio.current_time() - started,
        )

    def _parse(self, response: httpx.Response, endpoint: str) -> dict[str, Any]:
        status = response.status_code
        if 300 <= status < 400:
            location = _describe_url(response.headers.get("location", "")) or "no location"
            raise UnexpectedRedirect(
                f"HTTP {status} redirect to {location}; pmzfs does not follow API redirects, "
                f"so check the API URL ({self.base_url})",
                endpoint=endpoint,
            )

        try:
            payload = response.json()
        except ValueError:
            payload = None
        if status >= 500:
            detail = ""
            if isinstance(payload, dict) and payload.get("message"):
                detail = f": {redact.redact_text(str(payload['message']))}"
            error: APIError = UnknownError(f"HTTP {status} server error{detail}", endpoint=endpoint)
            error.maybe_applied = True
            raise error
        if not isinstance(payload, dict):
            content_type = response.headers.get("content-type", "no content type").split(";")[0]
            error = UnknownError(
                f"HTTP {status} response body is not JSON (content type {content_type}); "
                f"check that {self.base_url} is the premiumize API",
                endpoint=endpoint,
            )
            error.maybe_applied = True
            if status >= 400:
                error.retryable = False
            raise error

        outcome = payload.get("status")
        if outcome == "success" and status < 300:
            return payload
        if outcome == "error":
            code = str(payload.get("code") or "error")
            message = redact.redact_text(str(payload.get("message") or ""))
            raise error_from_code(code, message, endpoint)
        error = UnknownError(f"HTTP {status} response without a valid status field", endpoint=endpoint)
        error.maybe_applied = True
        error.retryable = status < 400
        raise error

    # ------------------------------------------------------------------
    # Retries

    async def _call(
        self,
        method: str,
        endpoint: str,
        *,
        params: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
        files: dict[str, Any] | None = None,
        change: _Change | None = None,
    ) -> dict[str, Any]:
        """Send an API request with retries and return its success payload.

        ``change`` is None for calls that do not change state; those are
        retried after any retryable failure.  A call with ``change`` is
        retried only after a failure that shows it was not applied, or
        after ``change`` confirmed that it was not.
        """
        url = f"{self.base_url}/api/{endpoint}"
        started = trio.current_time()
        failures = 0
        rate_limited = 0
        ambiguous_before = False
        while True:
            headers = self._auth_headers(endpoint)
            try:
                return await self._send(method, url, endpoint, params=params, data=data, files=files, headers=headers)
            except APIError as exc:
                error = exc

            verify_now = False
            if change is not None:
                if ambiguous_before and change.gone_means_done and isinstance(error, NotFound):
                    log.info("%s: the earlier attempt that failed had already applied the change", endpoint)
                    return {}
                if error.maybe_applied:
                    ambiguous_before = True
                    if change.verify is None and not change.gone_means_done:
                        raise error
                    verify_now = change.verify is not None

            if not error.retryable:
                raise error
            if isinstance(error, RateLimitReached):
                rate_limited += 1
                attempts, limit = rate_limited, self.retry.rate_limit_attempts
                delay = self.rate_limit_pause.delay
            else:
                failures += 1
                attempts, limit = failures, self.retry.max_attempts
                delay = self.retry.backoff(failures)
            elapsed = trio.current_time() - started
            if attempts >= limit or elapsed + delay > self.retry.max_elapsed:
                log.debug("%s: giving up after %d attempts in %.1f s", endpoint, attempts, elapsed)
                raise error

            log.warning(
                "retrying %s in %.1f s after %s (attempt %d of %d)",
                endpoint, delay, error.code, attempts + 1, limit,
            )
            # A rate-limit pause is waited in the pacer, shared by all requests.
            if not isinstance(error, RateLimitReached):
                await trio.sleep(delay)
            if verify_now:
                assert change is not None and change.verify is not None
                result = await change.verify()
                if result is not None:
                    log.info("%s: the attempt that failed had applied the change; not sending it again", endpoint)
                    return result

    # ------------------------------------------------------------------
    # account

    async def account_info(self) -> AccountInfo:
        """Return the account's customer id, premium expiry, fair-use and space figures."""
        return AccountInfo.from_json(await self._call("GET", "account/info"))

    # ------------------------------------------------------------------
    # folders

    async def folder_list(self, id: str | None = None, *, path: str | None = None) -> FolderListing:
        """List a folder by ``id`` or by ``path`` (slash-joined from the root); neither lists the root."""
        if id is not None and path is not None:
            raise ValueError("pass either id or path to folder_list, not both")
        params: dict[str, Any] = {}
        if id is not None:
            params["id"] = id
        elif path is not None:
            params["path"] = path
        return FolderListing.from_json(await self._call("GET", "folder/list", params=params))

    async def folder_create(self, name: str, parent_id: str | None = None) -> str:
        """Create folder ``name`` in ``parent_id`` (None: the root) and return its id.

        The parent is listed first, so that after an ambiguous failure a
        folder of that name that did not exist before is recognised as the
        one this call created instead of creating a second one.
        """
        before = await self.folder_list(parent_id)
        existing = {item.id for item in before.content if item.is_folder and item.name == name}

        async def verify() -> dict[str, Any] | None:
            after = await self.folder_list(parent_id)
            for item in after.content:
                if item.is_folder and item.name == name and item.id not in existing:
                    return {"id": item.id}
            return None

        data: dict[str, Any] = {"name": name}
        if parent_id is not None:
            data["parent_id"] = parent_id
        payload = await self._call("POST", "folder/create", data=data, change=_Change(verify=verify))
        return str(payload["id"])

    async def folder_rename(self, id: str, name: str) -> None:
        """Rename folder ``id`` to ``name``."""

        async def verify() -> dict[str, Any] | None:
            listing = await self.folder_list(id)
            return {} if listing.name == name else None

        await self._call("POST", "folder/rename", data={"id": id, "name": name}, change=_Change(verify=verify))

    async def folder_delete(self, id: str) -> None:
        """Delete folder ``id`` and everything in it."""
        await self._call("POST", "folder/delete", data={"id": id}, change=_Change(gone_means_done=True))

    async def folder_paste(self, target_id: str, *, files: Sequence[str] = (), folders: Sequence[str] = ()) -> None:
        """Move the files and folders with the given ids into folder ``target_id``."""
        if not files and not folders:
            raise ValueError("folder_paste needs at least one file or folder id")
        data: dict[str, Any] = {"id": target_id}
        if files:
            data["files[]"] = list(files)
        if folders:
            data["folders[]"] = list(folders)

        async def verify() -> dict[str, Any] | None:
            listing = await self.folder_list(target_id)
            present = {item.id for item in listing.content}
            missing_files = [file_id for file_id in data.get("files[]", ()) if file_id not in present]
            missing_folders = [folder_id for folder_id in data.get("folders[]", ()) if folder_id not in present]
            if not missing_files and not missing_folders:
                return {}
            # The retry moves only what is still missing; ``_call`` sends this same dict again.
            data.pop("files[]", None)
            data.pop("folders[]", None)
            if missing_files:
                data["files[]"] = missing_files
            if missing_folders:
                data["folders[]"] = missing_folders
            return None

        await self._call("POST", "folder/paste", data=data, change=_Change(verify=verify))

    async def folder_uploadinfo(self, id: str | None = None) -> UploadInfo:
        """Return a single-use upload URL and token for folder ``id`` (None: the root)."""
        params = {"id": id} if id is not None else {}
        payload = await self._call("GET", "folder/uploadinfo", params=params)
        token = str(payload["token"])
        redact.register_secret(token, temporary=True)
        return UploadInfo(url=str(payload["url"]), token=token)

    async def folder_search(self, q: str) -> list[Item]:
        """Return the files and folders whose names match ``q``, across the whole account."""
        payload = await self._call("GET", "folder/search", params={"q": q})
        return [Item.from_json(entry) for entry in payload.get("content") or ()]

    # ------------------------------------------------------------------
    # items

    async def item_details(self, id: str) -> ItemDetails:
        """Return the metadata and a fresh link of file ``id`` (folder ids are rejected)."""
        return ItemDetails.from_json(await self._call("GET", "item/details", params={"id": id}))

    async def item_rename(self, id: str, name: str) -> None:
        """Rename file ``id`` to ``name``."""

        async def verify() -> dict[str, Any] | None:
            details = await self.item_details(id)
            return {} if details.name == name else None

        await self._call("POST", "item/rename", data={"id": id, "name": name}, change=_Change(verify=verify))

    async def item_delete(self, id: str) -> None:
        """Delete file ``id``."""
        await self._call("POST", "item/delete", data={"id": id}, change=_Change(gone_means_done=True))

    async def item_listall(self) -> list[ListedFile]:
        """Return every file of the account with its path from the root."""
        payload = await self._call("GET", "item/listall")
        return [ListedFile.from_json(entry) for entry in payload.get("files") or ()]

    # ------------------------------------------------------------------
    # uploads

    async def upload_file(
        self, folder_id: str | None, source: Path, name: str, *, progress: ProgressCallback | None = None
    ) -> str:
        """Upload the file at ``source`` as ``name`` into ``folder_id`` and return the new file's id.

        Each attempt gets a fresh token from ``folder/uploadinfo`` and
        streams the file from disk.  The service's response has no id, so the
        folder is listed before and after: the new file is the entry named
        ``name`` with the file's size that was not there before.  A name that
        a multipart header cannot carry unchanged is uploaded under a
        placeholder and then renamed.
        """
        size = file_size(source)
        upload_name = name if is_safe_upload_name(name) else placeholder_name()
        before = await self.folder_list(folder_id)
        # The listing returns the real id even for the root, which has none here.
        target_id = before.folder_id
        known_ids = {item.id for item in before.content}

        # Only max_attempts bounds the attempts: one attempt of a large file
        # may take longer than max_elapsed on its own.
        failures = 0
        while True:
            info = await self.folder_uploadinfo(target_id)
            body = MultipartUpload(info.token, source, upload_name, size, progress)
            try:
                await self._post_upload(info, body)
            except APIError as exc:
                error = exc
            else:
                file_id = await self._find_upload(target_id, upload_name, size, known_ids, wait=True)
                if file_id is None:
                    raise UnknownError(
                        f"the upload of {name!r} succeeded but no new file of {size} bytes "
                        f"with that name appeared in folder {target_id}",
                        endpoint=UPLOAD_ENDPOINT,
                    )
                break

            if error.maybe_applied:
                file_id = await self._find_upload(target_id, upload_name, size, known_ids, wait=False)
                if file_id is not None:
                    log.info("upload of %r: the attempt that failed had stored the file as %s", name, file_id)
                    break
            failures += 1
            delay = self.retry.backoff(failures)
            if not error.retryable or failures >= self.retry.max_attempts:
                raise error
            log.warning(
                "retrying the upload of %r to folder %s in %.1f s with a new token after %s (attempt %d of %d)",
                name, target_id, delay, error.code, failures + 1, self.retry.max_attempts,
            )
            await trio.sleep(delay)

        if upload_name != name:
            try:
                await self.item_rename(file_id, name)
            except APIError as exc:
                # Leave no placeholder behind: the caller sees the rename's error.
                log.warning("upload of %r: renaming placeholder %s failed (%s); deleting it", name, file_id, exc)
                # Shielded so that a cancelled upload still cleans up, but bounded in time.
                with trio.move_on_after(PLACEHOLDER_CLEANUP_SECONDS, shield=True):
                    try:
                        await self.item_delete(file_id)
                    except APIError as delete_error:
                        log.error(
                            "upload of %r: could not delete placeholder file %s named %r: %s",
                            name, file_id, upload_name, delete_error,
                        )
                raise
        return file_id

    async def _post_upload(self, info: UploadInfo, body: MultipartUpload) -> None:
        parsed = urllib.parse.urlsplit(info.url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise UnknownError(
                f"folder/uploadinfo returned an upload URL that is not http or https ({parsed.scheme or 'no'} scheme)",
                endpoint=UPLOAD_ENDPOINT,
            )
        headers = {"Content-Type": body.content_type, "Content-Length": str(body.content_length)}
        # No Authorization header: the upload URL may be another host, and
        # the single-use token in the body is its only credential.
        await self._send(
            "POST", info.url, UPLOAD_ENDPOINT, paced=False,
            content=body, headers=headers, timeout=self._upload_timeout,
        )

    async def _find_upload(
        self, folder_id: str, name: str, size: int, known_ids: set[str], *, wait: bool
    ) -> str | None:
        """Return the id of the new file ``name`` of ``size`` bytes in ``folder_id``, or None.

        With ``wait``, an upload that the service confirmed is looked for a
        few times with backoff, in case the listing lags behind.
        """
        tries = self.retry.max_attempts if wait else 1
        for attempt in range(1, tries + 1):
            listing = await self.folder_list(folder_id)
            for item in listing.content:
                if item.is_folder or item.name != name or item.id in known_ids:
                    continue
                if item.size == size:
                    return item.id
                log.warning(
                    "upload of %r: new file %s has %d bytes, expected %d; not taking it as the upload",
                    name, item.id, item.size, size,
                )
            if attempt < tries:
                await trio.sleep(self.retry.backoff(attempt))
        return None

    # ------------------------------------------------------------------
    # transfers, cache, services, zip

    async def transfer_create(
        self, src: str | None = None, *, file: Path | None = None, folder_id: str | None = None
    ) -> str:
        """Start a cloud transfer from a URL or magnet ``src``, or from a .torrent/.nzb ``file``; returns its id.

        A container source (.dlc, .ccf, .rsdf) returns links instead of a
        transfer.  Each link is then submitted on its own, and the id of the
        first transfer is returned.  A transfer is not retried after an
        ambiguous failure, because nothing identifies the transfer it may
        have started.
        """
        if (src is None) == (file is None):
            raise ValueError("pass exactly one of src and file to transfer_create")
        data: dict[str, Any] = {}
        if folder_id is not None:
            data["folder_id"] = folder_id
        files = None
        if src is not None:
            data["src"] = src
        else:
            assert file is not None
            content = await trio.Path(file).read_bytes()
            files = {"file": (file.name, content, "application/octet-stream")}
        payload = await self._call("POST", "transfer/create", data=data, files=files, change=_Change())
        if payload.get("type") == "container":
            links = [str(link) for link in payload.get("content") or ()]
            if not links:
                raise InvalidRequest("the container source contains no links", endpoint="transfer/create")
            ids = [await self.transfer_create(link, folder_id=folder_id) for link in links]
            return ids[0]
        return str(payload["id"])

    async def transfer_directdl(self, src: str) -> list[DirectLink]:
        """Return direct download links for the files of ``src`` without storing them in the cloud."""
        payload = await self._call("POST", "transfer/directdl", data={"src": src})
        return [
            DirectLink(path=str(entry.get("path", "")), size=int(entry.get("size") or 0), link=str(entry["link"]))
            for entry in payload.get("content") or ()
        ]

    async def transfer_list(self) -> list[Transfer]:
        """Return every transfer of the account, newest first."""
        payload = await self._call("GET", "transfer/list")
        return [Transfer.from_json(entry) for entry in payload.get("transfers") or ()]

    async def transfer_retry(self, id: str) -> None:
        """Queue failed transfer ``id`` again.

        Retrying a transfer that is no longer failed may be rejected, so
        after an ambiguous failure the transfer list decides: a status other
        than ``error`` means the first attempt was applied.
        """

        async def verify() -> dict[str, Any] | None:
            for transfer in await self.transfer_list():
                if transfer.id == id:
                    return {} if transfer.status != "error" else None
            return None

        await self._call("POST", "transfer/retry", data={"id": id}, change=_Change(verify=verify))

    async def transfer_delete(self, id: str) -> None:
        """Delete the record of transfer ``id``."""
        await self._call("POST", "transfer/delete", data={"id": id}, change=_Change(gone_means_done=True))

    async def transfer_clearfinished(self) -> None:
        """Remove every finished transfer from the list."""
        await self._call("POST", "transfer/clearfinished")

    async def cache_check(self, items: Sequence[str]) -> list[CacheStatus]:
        """Return whether each link, magnet or hash in ``items`` is cached, in request order."""
        if not items:
            return []
        payload = await self._call("POST", "cache/check", data={"items[]": list(items)})
        cached = payload.get("response") or []
        names = payload.get("filename") or []
        sizes = payload.get("filesize") or []
        statuses = []
        for index in range(len(items)):
            name = names[index] if index < len(names) else None
            size = sizes[index] if index < len(sizes) else 0
            statuses.append(
                CacheStatus(
                    cached=bool(cached[index]) if index < len(cached) else False,
                    filename=str(name) if name else None,
                    filesize=int(size or 0),
                )
            )
        return statuses

    async def services_list(self) -> dict:
        """Return the service metadata: ``cache``, ``directdl``, ``queue``, ``fairusefactor``, ``aliases``, ``regexpatterns``."""
        payload = await self._call("GET", "services/list")
        keys = ("cache", "directdl", "queue", "fairusefactor", "aliases", "regexpatterns")
        return {key: payload[key] for key in keys if key in payload}

    async def zip_generate(self, *, files: Sequence[str] = (), folders: Sequence[str] = ()) -> str:
        """Return the URL of a zip file holding the given files and folders."""
        if not files and not folders:
            raise ValueError("zip_generate needs at least one file or folder id")
        data: dict[str, Any] = {}
        if files:
            data["files[]"] = list(files)
        if folders:
            data["folders[]"] = list(folders)
        payload = await self._call("POST", "zip/generate", data=data)
        return str(payload["location"])

    # ------------------------------------------------------------------
    # OAuth device flow (no credential needed)

    async def device_code(self, client_id: str) -> DeviceCode:
        """Start the OAuth device flow for ``client_id`` and return the code pair to show the user."""
        failures = 0
        while True:
            try:
                payload = await self._oauth_token({"response_type": "device_code", "client_id": client_id})
                break
            except APIError as exc:
                failures += 1
                if not exc.retryable or failures >= self.retry.max_attempts:
                    raise
                delay = self.retry.backoff(failures)
                log.warning("retrying the device code request in %.1f s after %s", delay, exc.code)
                await trio.sleep(delay)
        try:
            code = DeviceCode(
                verification_uri=str(payload["verification_uri"]),
                user_code=str(payload["user_code"]),
                device_code=str(payload["device_code"]),
                expires_in=int(payload.get("expires_in") or 600),
                interval=int(payload.get("interval") or 5),
            )
        except (KeyError, TypeError, ValueError):
            raise UnknownError("the device code response lacks verification_uri, user_code or device_code",
                               endpoint="token") from None
        redact.register_secret(code.device_code, temporary=True)
        return code

    async def device_token(self, client_id: str, device_code: str) -> AccessToken:
        """Poll once for the token of an approved device code.

        Raises ``OAuthError`` whose ``code`` is ``authorization_pending``,
        ``slow_down``, ``access_denied`` or ``invalid_grant`` while the code
        is not approved or can no longer be.  One call sends one request,
        because the caller's poll loop is the retry.
        """
        payload = await self._oauth_token(
            {"grant_type": "device_code", "code": device_code, "client_id": client_id}
        )
        token = payload.get("access_token")
        if not isinstance(token, str) or not token:
            raise UnknownError("the token response has no access_token", endpoint="token")
        redact.register_secret(token)
        expires = payload.get("expires_in")
        return AccessToken(
            access_token=token,
            token_type=str(payload.get("token_type") or "Bearer"),
            expires_in=int(expires) if expires else None,
            scope=str(payload.get("scope") or ""),
        )

    async def _oauth_token(self, data: dict[str, str]) -> dict[str, Any]:
        """POST ``data`` to the OAuth ``/token`` endpoint and return its JSON response."""
        endpoint = "token"
        started = trio.current_time()
        async with self.pacer.slot():
            response = await self._request("POST", f"{self.base_url}/token", endpoint, started, data=data)
        self._log_response("POST", endpoint, response, "received", started)
        if 300 <= response.status_code < 400 or response.status_code >= 500:
            # Redirects and server errors raise exactly as on API endpoints.
            self._parse(response, endpoint)

        try:
            payload = response.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            error = UnknownError(
                f"HTTP {response.status_code} response of /token is not JSON; "
                f"check that {self.base_url} is the premiumize service",
                endpoint=endpoint,
            )
            error.retryable = response.status_code < 400
            raise error

        if payload.get("status") == "error":
            message = redact.redact_text(str(payload.get("message") or ""))
            raise error_from_code(str(payload.get("code") or "error"), message, endpoint)
        if payload.get("error"):
            raise OAuthError(
                redact.redact_text(str(payload.get("error_description") or "")),
                endpoint=endpoint,
                code=str(payload["error"]),
            )
        if response.status_code >= 400:
            error = UnknownError(f"HTTP {response.status_code} from /token without an error code", endpoint=endpoint)
            error.retryable = False
            raise error
        return payload
