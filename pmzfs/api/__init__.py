"""The only code in pmzfs that talks to the premiumize API."""

from pmzfs.api._retry import RetryPolicy
from pmzfs.api.client import DEFAULT_API_URL, PremiumizeClient
from pmzfs.api.errors import APIError, errno_for

__all__ = ["DEFAULT_API_URL", "PremiumizeClient", "RetryPolicy", "APIError", "errno_for"]
