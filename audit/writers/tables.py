"""Base of the pass-through writer steps: each turns documents into rows of one output table."""

from __future__ import annotations

from abc import abstractmethod

from datatrove.data import Document, DocumentsPipeline
from datatrove.io import DataFolderLike, get_datafolder
from datatrove.pipeline.base import PipelineStep


class TableWriterStep(PipelineStep):
    """Writes `rows(document)` of every document to `<output>/<table>/<rank>.<ext>`, atomically.

    The documents flow on unchanged, so several writers can follow one another. A task that
    produces no rows writes no file.
    """

    type = "💽 - WRITER"
    table: str = ""
    extension: str = ""

    def __init__(self, output_folder: DataFolderLike, batch_rows: int = 4096):
        super().__init__()
        self.output_folder = get_datafolder(output_folder)
        self.batch_rows = batch_rows

    @abstractmethod
    def rows(self, document: Document) -> list[dict]:
        """The rows this document contributes (often none)."""

    @abstractmethod
    def write_batch(self, rows: list[dict]) -> None: ...

    @abstractmethod
    def commit(self) -> None: ...

    def path(self, rank: int) -> str:
        return f"{self.table}/{rank:05d}.{self.extension}"

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        self.rank = rank
        self._opened = False
        pending: list[dict] = []
        for document in data:
            with self.track_time():
                new_rows = self.rows(document)
                if new_rows:
                    pending.extend(new_rows)
                    self.stat_update(f"{self.table}_rows", value=len(new_rows))
                if len(pending) >= self.batch_rows:
                    self.write_batch(pending)
                    self._opened = True
                    pending = []
            yield document
        if pending:
            self.write_batch(pending)
            self._opened = True
        if self._opened:
            self.commit()
