"""`errors/`: one JSON line per record (or file remainder) that could not be read."""

from __future__ import annotations

import json

from datatrove.data import Document

from audit import records
from audit.writers.atomic import AtomicFile
from audit.writers.tables import TableWriterStep


class ErrorsWriter(TableWriterStep):
    name = "⚠️ errors/"
    table = "errors"
    extension = "jsonl"

    def rows(self, document: Document) -> list[dict]:
        return [document.metadata[records.ERROR].as_dict()] if records.is_error(document) else []

    def write_batch(self, rows: list[dict]) -> None:
        if not getattr(self, "_file", None):
            self._file = AtomicFile(self.output_folder, self.path(self.rank), mode="wt")
        for row in rows:
            self._file.handle.write(json.dumps(row, ensure_ascii=False) + "\n")

    def commit(self) -> None:
        self._file.commit()
        self._file = None
