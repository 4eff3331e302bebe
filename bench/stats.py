"""Small statistics helpers for samples of seconds."""

from __future__ import annotations

import math
import statistics


def percentile(samples: list[float], fraction: float) -> float:
    """Return the ``fraction`` percentile (0..1) by linear interpolation."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    position = fraction * (len(ordered) - 1)
    low = math.floor(position)
    high = math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize_latencies(samples: list[float], rtt: float) -> dict[str, float | int]:
    """Summarize latency samples in seconds as milliseconds and round trips."""
    median = statistics.median(samples) if samples else math.nan
    p90 = percentile(samples, 0.9)
    summary: dict[str, float | int] = {
        "samples": len(samples),
        "median_ms": median * 1000,
        "p90_ms": p90 * 1000,
    }
    if rtt > 0:
        summary["median_rtts"] = median / rtt
        summary["p90_rtts"] = p90 / rtt
    return summary
