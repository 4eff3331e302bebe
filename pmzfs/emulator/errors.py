"""The exception that emulator code raises to send an error envelope."""

from __future__ import annotations


class ServiceError(Exception):
    """A business error, sent as HTTP 200 ``{"status": "error", ...}``.

    ``code`` is one of the service's documented error codes and ``message``
    the human-readable text sent with it.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def invalid_request(message: str) -> ServiceError:
    return ServiceError("invalid_request", message)


def not_found(message: str) -> ServiceError:
    return ServiceError("not_found", message)
