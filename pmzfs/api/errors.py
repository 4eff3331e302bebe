"""Exceptions for premiumize API failures, grouped by retry semantics.

The groups follow the service's documentation: transient errors may succeed
on an immediate retry, semi-permanent ones after a wait or a change to the
account, permanent ones never.  ``UnknownError`` covers HTTP 500 envelopes
and failures below HTTP (resets, timeouts).  ``errno_for`` is the single
place that maps an exception to the errno a filesystem call returns.
"""

from __future__ import annotations

import errno


class APIError(Exception):
    """A request to the premiumize API failed.

    ``code`` is the service's error code string, ``message`` its
    human-readable text and ``endpoint`` the API path, such as
    ``folder/list``.  None of them ever contains a credential.
    """

    code = "api_error"
    retryable = False
    # True when the request may have been applied although it failed (a
    # timeout after sending, HTTP 5xx); the client sets it per failure.
    maybe_applied = False

    def __init__(self, message: str = "", *, endpoint: str = "", code: str | None = None) -> None:
        if code is not None:
            self.code = code
        self.message = message
        self.endpoint = endpoint
        super().__init__(message)

    def __str__(self) -> str:
        where = f" on {self.endpoint}" if self.endpoint else ""
        text = f": {self.message}" if self.message else ""
        return f"{self.code}{where}{text}"


class TransientError(APIError):
    """An error that an immediate retry may fix."""

    code = "transient_error"
    retryable = True


class LinkGenerationFailed(TransientError):
    code = "link_generation_failed"


class SemiPermanentError(APIError):
    """An error that needs a wait, more quota or an upgrade before a retry."""

    code = "semi_permanent_error"


class ServiceDown(SemiPermanentError):
    code = "service_down"
    retryable = True


class ServiceLimitReached(SemiPermanentError):
    code = "service_limit_reached"


class AccountLimitReached(SemiPermanentError):
    code = "account_limit_reached"


class RateLimitReached(SemiPermanentError):
    code = "rate_limit_reached"
    retryable = True


class PermanentError(APIError):
    """An error that the same request will always get."""

    code = "permanent_error"


class ServiceUnsupported(PermanentError):
    code = "service_unsupported"


class NotFound(PermanentError):
    code = "not_found"


class AuthenticationFailed(PermanentError):
    code = "authentication_failed"


class PermissionDenied(PermanentError):
    code = "permission_denied"


class InvalidRequest(PermanentError):
    code = "invalid_request"


class UnknownError(APIError):
    """HTTP 5xx, an unreadable response, or a failure below HTTP."""

    code = "unknown_error"
    retryable = True


class TransportError(UnknownError):
    """The connection failed, was reset or timed out before a full response.

    ``maybe_applied`` is true when the request may have reached the server,
    so a call that changes state must check the state before a retry.
    """

    code = "transport_error"

    def __init__(self, message: str = "", *, endpoint: str = "", maybe_applied: bool = True, reason: str = "") -> None:
        super().__init__(message, endpoint=endpoint)
        self.maybe_applied = maybe_applied
        # The low-level cause without the URL, such as "Connection refused".
        self.reason = reason


class UnexpectedRedirect(APIError):
    """The API returned an HTTP redirect, which the client never follows.

    Following it would send the credential to whatever host the redirect
    names, and a redirect usually means a wrong ``--api-url``.
    """

    code = "unexpected_redirect"


class OAuthError(APIError):
    """An OAuth ``/token`` call returned an error.

    ``code`` is the OAuth error string: ``authorization_pending``,
    ``slow_down``, ``access_denied``, ``invalid_grant`` or another.
    """

    code = "oauth_error"


_CLASSES: dict[str, type[APIError]] = {
    cls.code: cls
    for cls in (
        TransientError,
        LinkGenerationFailed,
        SemiPermanentError,
        ServiceDown,
        ServiceLimitReached,
        AccountLimitReached,
        RateLimitReached,
        PermanentError,
        ServiceUnsupported,
        NotFound,
        AuthenticationFailed,
        PermissionDenied,
        InvalidRequest,
        UnknownError,
    )
}


def error_from_code(code: str, message: str, endpoint: str) -> APIError:
    """Build the exception for an error envelope's ``code``.

    A code the documentation does not list becomes a plain ``APIError``
    carrying that code, which ``errno_for`` maps to EIO.
    """
    cls = _CLASSES.get(code)
    if cls is None:
        return APIError(message, endpoint=endpoint, code=code)
    return cls(message, endpoint=endpoint)


def errno_for(exc: BaseException, *, writing: bool = False) -> int:
    """Return the errno that a filesystem call reports for ``exc``.

    ``writing`` selects EDQUOT for quota errors, which only writes can hit.
    """
    if isinstance(exc, NotFound):
        return errno.ENOENT
    if isinstance(exc, (AuthenticationFailed, PermissionDenied)):
        return errno.EACCES
    if isinstance(exc, InvalidRequest):
        return errno.EINVAL
    if isinstance(exc, RateLimitReached):
        return errno.EAGAIN
    if isinstance(exc, (AccountLimitReached, ServiceLimitReached)):
        return errno.EDQUOT if writing else errno.EIO
    return errno.EIO
