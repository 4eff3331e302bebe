"""Measure the memory the tree uses for a full cache: run with
``.venv/bin/python tests/tree/measure_memory.py [ENTRIES]``.

Lists 100 folders of ENTRIES / 100 files each (ids, names and links of the
lengths the service uses) through a ``Tree`` whose ``max_entries`` equals
ENTRIES, and prints the bytes that tracemalloc attributes to the tree.
"""

from __future__ import annotations

import gc
import sys
import tracemalloc

import trio

from pmzfs.api.models import FolderListing, Item
from pmzfs.tree import Tree

FOLDERS = 100


class ListingClient:
    """A client that builds each listing on request, so only the tree keeps its strings."""

    def __init__(self, per_folder: int) -> None:
        self.per_folder = per_folder

    async def folder_list(self, id=None, *, path=None):
        if id is None:
            folders = tuple(
                Item(id=f"Fo{number:020d}", name=f"Folder {number}", type="folder", created_at=1_700_000_000)
                for number in range(FOLDERS)
            )
            return FolderListing("root", "My Files", None, (), folders)
        number = int(id[2:])
        items = tuple(
            Item(
                id=f"Fi{number:08d}{index:012d}",
                name=f"Some.Show.S01E{index:04d}.1080p.WEB-DL.x264-GROUP.mkv",
                type="file",
                created_at=1_700_000_000 + index,
                size=1_500_000_000 + index,
                link=f"https://cdn.example.invalid/dl/{number:08d}{index:012d}/Some.Show.S01E{index:04d}.mkv",
            )
            for index in range(self.per_folder)
        )
        return FolderListing(id, f"Folder {number}", "root", (), items)


async def measure(entries: int) -> None:
    client = ListingClient(entries // FOLDERS)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    tree = Tree(client, root_inode=1, max_entries=entries + FOLDERS)
    root = await tree.listing(1)
    for folder in list(root.entries):
        await tree.listing(folder.inode)
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    stats = tree.stats()
    print(f"{stats['listed_entries']} entries, {stats['nodes']} nodes: {used / 2**20:.1f} MiB, {used / stats['nodes']:.0f} bytes per node")


if __name__ == "__main__":
    trio.run(measure, int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
