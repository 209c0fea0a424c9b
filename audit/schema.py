"""Arrow schemas of the scan's outputs: the contract in DESIGN.md, in one place."""

from __future__ import annotations

import pyarrow as pa

from audit.labels import PROB_COLUMNS

SPAN_TYPE = pa.struct(
    [
        pa.field("start", pa.int32()),
        pa.field("end", pa.int32()),
        pa.field("label", pa.string()),
        pa.field("score", pa.float32()),
    ]
)

DOCUMENT_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("url", pa.string()),
        pa.field("domain", pa.string()),
        pa.field("label", pa.string(), nullable=False),
        *(pa.field(column, pa.float32(), nullable=False) for column in PROB_COLUMNS),
        pa.field("flagged", pa.bool_(), nullable=False),
        pa.field("spans", pa.list_(SPAN_TYPE)),
        pa.field("n_chars", pa.int32(), nullable=False),
        pa.field("status", pa.string(), nullable=False),
    ]
)

PASSAGE_SCHEMA = pa.schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("url", pa.string()),
        pa.field("start", pa.int32(), nullable=False),
        pa.field("end", pa.int32(), nullable=False),
        pa.field("label", pa.string(), nullable=False),
        *(pa.field(column, pa.float32(), nullable=False) for column in PROB_COLUMNS),
        pa.field("text", pa.string(), nullable=False),
    ]
)

#: Keys of each line in `errors/*.jsonl`.
ERROR_FIELDS: tuple[str, ...] = ("file", "record", "byte_offset", "scope", "reason")
