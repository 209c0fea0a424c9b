"""JSON Lines (plain, .gz, .zst): one record per line."""

from __future__ import annotations

import io
from collections.abc import Iterator

import orjson

from audit import records
from audit.readers.base import Item, RecordReader
from audit.records import ReadError


class JsonlRecordReader(RecordReader):
    name = "🐿 Jsonl (accounted)"
    file_kind = "JSONL"
    _requires_dependencies = ["orjson"]

    def read_items(self, filepath: str, source: str) -> Iterator[Item]:
        offset = 0
        index = 0
        with self.data_folder.open(filepath, "rb", compression="infer") as raw:
            # zstandard's decompression reader cannot iterate lines by itself; a buffer can
            handle = raw if hasattr(raw, "peek") else io.BufferedReader(raw)
            for line in handle:
                line_offset, offset = offset, offset + len(line)
                if not line.strip():
                    self.stat_update("blank_lines")
                    continue
                try:
                    data = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    reason = "invalid UTF-8" if "utf-8" in str(exc).lower() else f"malformed JSON: {exc}"
                    yield records.error_document(ReadError(source, index, line_offset, "record", reason)), len(line)
                    index += 1
                    continue
                if not isinstance(data, dict):
                    reason = f"record is a JSON {type(data).__name__}, not an object"
                    yield records.error_document(ReadError(source, index, line_offset, "record", reason)), len(line)
                else:
                    yield self.document_from_fields(data, source, index), len(line)
                index += 1
