"""Settings shared by the write tests on real mounts."""

FAST_MOUNT_OPTIONS = ("--api-rate", "1000")
"""Options every write test mounts with: no pacing of API calls, so a
test's time goes into the work it checks."""
