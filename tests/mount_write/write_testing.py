"""Settings and helpers shared by the write tests on real mounts."""

import json
from pathlib import Path

FAST_MOUNT_OPTIONS = ("--api-rate", "1000")
"""Options every write test mounts with: no pacing of API calls, so a
test's time goes into the work it checks."""


def manifest_states(cache_dir: Path) -> list[str]:
    """Return the states of the writer's journal entries in ``cache_dir``."""
    states = []
    for path in (cache_dir / "staging").glob("*.json"):
        try:
            states.append(json.loads(path.read_text())["state"])
        except (OSError, ValueError, KeyError):
            continue  # replaced while being read
    return states
