"""Behaviour switches and fault settings of the emulator.

Every field can be changed while the emulator runs: the request handlers
read them on each request, so ``emu.options.api_latency = 0.04`` applies to
the next call.  The command line fills the same record.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEMO_API_KEY = "demo-key"

# Error codes of the service that fault injection can produce.
ERROR_CODES = frozenset(
    {
        "link_generation_failed",
        "transient_error",
        "service_down",
        "service_limit_reached",
        "account_limit_reached",
        "rate_limit_reached",
        "semi_permanent_error",
        "service_unsupported",
        "not_found",
        "authentication_failed",
        "permission_denied",
        "invalid_request",
        "permanent_error",
    }
)
# Injected code that sends HTTP 500 with an ``unknown_error`` envelope.
HTTP_500 = "http_500"
INJECTABLE_CODES = ERROR_CODES | {HTTP_500}

# Failure modes of the upload URL: a connection reset or an HTTP 5xx status.
UPLOAD_FAILURE_MODES = ("reset", "http_500", "http_502", "http_503")


@dataclass
class EmulatorOptions:
    """Settings of one emulator; all faults are off by default."""

    # Credential accepted as ``Authorization: Bearer`` or ``apikey``.
    api_key: str = DEMO_API_KEY

    # Allow two entries with one name in a folder; False rejects a create,
    # rename, upload or paste onto a taken name with invalid_request.
    duplicate_names: bool = True
    # Compare names case-sensitively when duplicate_names is False.
    case_sensitive_names: bool = True

    # Seconds every API call waits before it is handled.
    api_latency: float = 0.0
    # Seconds of one round trip on file links: each link request waits one
    # round trip, and the first request of a new connection one more.
    link_rtt: float = 0.0
    # Bytes per second that one connection may receive from file links and
    # zip downloads; None is uncapped (served with sendfile).
    link_rate: float | None = None
    # Seconds after which an issued file link returns HTTP 403; None never.
    link_expiry: float | None = None

    # Probability of an injected error per endpoint and code, for example
    # {"folder/list": {"service_down": 0.5}}.  The endpoint "*" matches
    # every endpoint.  The code "http_500" sends HTTP 500.
    error_rates: dict[str, dict[str, float]] = field(default_factory=dict)
    # Seed of the random generator behind error_rates, so runs repeat.
    seed: int = 0
    # API calls accepted per second (a sliding one-second window); calls
    # beyond it get rate_limit_reached.  None is unlimited.
    requests_per_second: float | None = None

    # Reset the connection (TCP RST) in the middle of a file link body after
    # this many bytes of the body, or after this fraction (0..1) of it.
    link_reset_after_bytes: int | None = None
    link_reset_after_fraction: float | None = None
    # Link responses still to reset; None resets every response while one of
    # the two settings above is set.  Each reset counts it down.
    link_reset_count: int | None = None

    # Failure mode of the upload URL: "reset", "http_500", "http_502" or
    # "http_503"; None uploads normally.
    upload_failure: str | None = None
    # Uploads still to fail; None fails every upload while upload_failure is
    # set.  Each failure counts it down.
    upload_failure_count: int | None = None
    # Fraction (0..1) of the upload body read before a "reset" failure.
    upload_reset_after_fraction: float = 0.0

    # Bytes the account may store; an upload beyond it gets
    # account_limit_reached.  None is unlimited.
    space_limit: int | None = None

    # Bytes per second a transfer downloads; None finishes transfers at once.
    transfer_speed: float | None = None

    # Decision applied to every new device code without a visit to /device:
    # "approve", "deny" or None (wait for /device).
    device_auto: str | None = None
    # Seconds a device code stays valid and the poll interval it announces.
    device_code_lifetime: int = 600
    device_poll_interval: int = 5
    # Seconds an issued OAuth access token stays valid.
    token_lifetime: int = 30 * 24 * 3600

    # Largest API request body in bytes; a larger one gets invalid_request.
    max_api_body: int = 16 * 1024 * 1024

    def validate(self) -> None:
        """Raise ValueError naming the first setting that has an invalid value."""
        for name in ("api_latency", "link_rtt"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 seconds, not {getattr(self, name)!r}")
        for name in ("link_rate", "link_expiry", "requests_per_second", "transfer_speed"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be > 0 or None, not {value!r}")
        for name in ("link_reset_after_bytes", "link_reset_count", "upload_failure_count", "space_limit"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0 or None, not {value!r}")
        for name in ("link_reset_after_fraction", "upload_reset_after_fraction"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 1:
                raise ValueError(f"{name} must be between 0 and 1, not {value!r}")
        if self.upload_failure is not None and self.upload_failure not in UPLOAD_FAILURE_MODES:
            modes = ", ".join(UPLOAD_FAILURE_MODES)
            raise ValueError(f"upload_failure must be one of {modes}, not {self.upload_failure!r}")
        if self.device_auto not in (None, "approve", "deny"):
            raise ValueError(f"device_auto must be 'approve', 'deny' or None, not {self.device_auto!r}")
        validate_error_rates(self.error_rates)


def validate_error_rates(rates: dict[str, dict[str, float]]) -> None:
    """Raise ValueError unless ``rates`` maps endpoints to {code: probability}."""
    from pmzfs.emulator.endpoints import ENDPOINTS

    for endpoint, codes in rates.items():
        if endpoint != "*" and endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r} in error rates; use one like 'folder/list' or '*'")
        for code, probability in codes.items():
            if code not in INJECTABLE_CODES:
                raise ValueError(f"unknown error code {code!r} in error rates; use one like 'service_down' or 'http_500'")
            if not 0 <= probability <= 1:
                raise ValueError(f"probability of {code!r} on {endpoint!r} must be between 0 and 1, not {probability!r}")
