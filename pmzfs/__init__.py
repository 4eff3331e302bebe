"""pmzfs: a FUSE filesystem for a premiumize.me cloud account."""

__version__ = "0.1.0"
