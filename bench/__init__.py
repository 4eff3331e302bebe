"""Benchmark of pmzfs beside curl and rclone mount; run ``python -m bench --help``."""
