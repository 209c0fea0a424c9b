"""Files that appear under their final name only when complete.

A task writes `NAME.inprogress` and renames it to `NAME` when it finishes, so a run killed midway
leaves nothing a reader of `*.parquet` or `*.jsonl` would take as complete; the rerun overwrites it.
"""

from __future__ import annotations

from typing import IO

from datatrove.io import DataFolder

SUFFIX = ".inprogress"


class AtomicFile:
    def __init__(self, folder: DataFolder, path: str, mode: str = "wb"):
        self.folder = folder
        self.path = path
        self.handle: IO = folder.open(path + SUFFIX, mode)

    def commit(self) -> None:
        """Close and publish under the final name."""
        self.handle.close()
        self.folder.mv(self.path + SUFFIX, self.path)
