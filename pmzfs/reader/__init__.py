"""Range reads against file links with read-ahead, bounded memory and cheap seeks.

```python
async with Reader(memory_limit=..., max_window=..., connections_per_file=...) as reader:
    handle = reader.open(file_id, size, link, refresh_link)
    data = await handle.read(offset, length)
    await handle.close()
```

docs/reading.md describes the read-ahead policy and its measured cost.
"""

from pmzfs.reader._errors import ReadError
from pmzfs.reader._fetch import RetryLimits
from pmzfs.reader._reader import Reader, ReadHandle

__all__ = ["ReadError", "ReadHandle", "Reader", "RetryLimits"]
