"""`documents/` and `passages/`: Parquet tables with the schemas of `audit.schema`."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.data import Document

from audit import records
from audit.domains import registered_domain
from audit.labels import PROB_COLUMNS, UNRELATED
from audit.schema import DOCUMENT_SCHEMA, PASSAGE_SCHEMA
from audit.writers.atomic import AtomicFile
from audit.writers.tables import TableWriterStep


class ParquetTableWriter(TableWriterStep):
    extension = "parquet"
    schema: pa.Schema

    def write_batch(self, rows: list[dict]) -> None:
        if not getattr(self, "_writer", None):
            self._file = AtomicFile(self.output_folder, self.path(self.rank))
            self._writer = pq.ParquetWriter(self._file.handle, self.schema, compression="zstd")
        self._writer.write_table(pa.Table.from_pylist(rows, schema=self.schema))

    def commit(self) -> None:
        self._writer.close()
        self._writer = None
        self._file.commit()


class DocumentsWriter(ParquetTableWriter):
    """One row per readable input record."""

    name = "📄 documents/"
    table = "documents"
    schema = DOCUMENT_SCHEMA

    def rows(self, document: Document) -> list[dict]:
        if records.is_error(document):
            return []
        meta = document.metadata
        result = meta[records.RESULT]
        url = meta.get(records.URL)
        row = {
            "id": document.id,
            "source": meta[records.SOURCE],
            "url": url,
            "domain": registered_domain(url),
            "label": result.label,
            "flagged": result.flagged,
            "spans": result.spans,
            "n_chars": len(document.text),
            "status": meta[records.STATUS],
        }
        row.update(zip(PROB_COLUMNS, (float(p) for p in result.probs)))
        return [row]


class PassagesWriter(ParquetTableWriter):
    """One row per passage that is not `unrelated`, with its text, for reading and search."""

    name = "📑 passages/"
    table = "passages"
    schema = PASSAGE_SCHEMA

    def rows(self, document: Document) -> list[dict]:
        passages = document.metadata.get(records.PASSAGES)
        if not passages:
            return []
        meta = document.metadata
        out = []
        for passage in passages:
            if passage.label == UNRELATED:
                continue
            row = {
                "doc_id": document.id,
                "source": meta[records.SOURCE],
                "url": meta.get(records.URL),
                "start": passage.start,
                "end": passage.end,
                "label": passage.label,
                "text": document.text[passage.start : passage.end],
            }
            row.update(zip(PROB_COLUMNS, (float(p) for p in passage.probs)))
            out.append(row)
        return out
