"""Retry bounds and backoff delays for API requests."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long the client retries a failed request.

    A request stops at whichever bound it reaches first: ``max_attempts``
    for transient failures, ``rate_limit_attempts`` for
    ``rate_limit_reached`` responses, or ``max_elapsed`` seconds since the
    first attempt.  Delays are in seconds.
    """

    max_attempts: int = 5
    rate_limit_attempts: int = 10
    max_elapsed: float = 90.0
    # Exponential backoff with full jitter: the n-th retry waits a random
    # time between 0 and min(max_delay, base_delay * 2**(n-1)).
    base_delay: float = 0.5
    max_delay: float = 10.0
    # The shared pause after rate_limit_reached starts at this many seconds,
    # doubles with each further hit and halves back after successes.
    rate_limit_initial: float = 1.0
    rate_limit_max: float = 20.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.rate_limit_attempts < 1:
            raise ValueError("max_attempts and rate_limit_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0 or self.max_elapsed < 0:
            raise ValueError("retry delays and max_elapsed must not be negative")

    def backoff(self, retry_number: int) -> float:
        """Return the delay before retry ``retry_number`` (1 for the first retry)."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (retry_number - 1))
        return self.rng.uniform(0.0, ceiling)
