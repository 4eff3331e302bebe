"""The write side of pmzfs: staging, upload on close, and never losing data.

docs/writing.md describes the interface the filesystem layer calls and the
guarantees behind it.
"""

from pmzfs.writer.core import Writer
from pmzfs.writer.files import RetryPolicy, StagedFile, UploadDone, WriteError, WriteHandle, WriterListener
from pmzfs.writer.journal import StagingLocked, is_temporary_name
from pmzfs.writer.status import StagedUpload, WriterStatus, staging_status

STAGING_SUBDIR = "staging"
"""The staging directory's name inside ``MountOptions.cache_dir``."""

__all__ = [
    "STAGING_SUBDIR",
    "RetryPolicy",
    "StagedFile",
    "StagedUpload",
    "StagingLocked",
    "UploadDone",
    "WriteError",
    "WriteHandle",
    "Writer",
    "WriterListener",
    "WriterStatus",
    "is_temporary_name",
    "staging_status",
]
