"""Parquet: one record per row, read in batches so a large file never sits in memory whole."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow.parquet as pq

from audit.readers.base import Item, RecordReader

BATCH_ROWS = 1024


class ParquetRecordReader(RecordReader):
    name = "📒 Parquet (accounted)"
    file_kind = "Parquet"

    def read_items(self, filepath: str, source: str) -> Iterator[Item]:
        with self.data_folder.open(filepath, "rb") as handle:
            parquet = pq.ParquetFile(handle)
            present = set(parquet.schema_arrow.names)
            columns = [c for c in (self.text_key, self.id_key, "url", "metadata") if c in present]
            index = 0
            for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=columns or None):
                rows = batch.to_pylist() if columns else [{}] * batch.num_rows
                for row in rows:
                    text = row.get(self.text_key)
                    nbytes = len(text.encode("utf-8", "replace")) if isinstance(text, str) else 0
                    yield self.document_from_fields(row, source, index), nbytes
                    index += 1
