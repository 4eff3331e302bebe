"""Helpers shared by the API client tests.

They live here, not in conftest.py, because every test directory has a
conftest module and ``from conftest import ...`` gets whichever pytest
loaded last.
"""

from __future__ import annotations

import random

from pmzfs.api import errors
from pmzfs.api._retry import RetryPolicy

# Every documented code, its exception class, and whether the client retries it.
ERROR_CODES = [
    ("link_generation_failed", errors.LinkGenerationFailed, True),
    ("transient_error", errors.TransientError, True),
    ("service_down", errors.ServiceDown, True),
    ("service_limit_reached", errors.ServiceLimitReached, False),
    ("account_limit_reached", errors.AccountLimitReached, False),
    ("rate_limit_reached", errors.RateLimitReached, True),
    ("semi_permanent_error", errors.SemiPermanentError, False),
    ("service_unsupported", errors.ServiceUnsupported, False),
    ("not_found", errors.NotFound, False),
    ("authentication_failed", errors.AuthenticationFailed, False),
    ("permission_denied", errors.PermissionDenied, False),
    ("invalid_request", errors.InvalidRequest, False),
    ("permanent_error", errors.PermanentError, False),
    ("unknown_error", errors.UnknownError, True),
]


def fast_retry(**overrides: float) -> RetryPolicy:
    """Return a retry policy with short delays, so tests under a real clock stay fast."""
    settings = dict(
        max_attempts=4,
        rate_limit_attempts=6,
        max_elapsed=30.0,
        base_delay=0.01,
        max_delay=0.05,
        rate_limit_initial=0.01,
        rate_limit_max=0.08,
    )
    settings.update(overrides)
    return RetryPolicy(**settings, rng=random.Random(1))
