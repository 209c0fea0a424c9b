"""Scan outputs written by hand, in the contract's schema, with labels and scores the test chooses.

Reports and manifests are checked on these, so that what is tested is the aggregation and the
weighting, not the current classifier's predictions.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from audit.domains import registered_domain
from audit.labels import LABELS, MALEVOLENT
from audit.schema import DOCUMENT_SCHEMA, PASSAGE_SCHEMA


def probabilities(label: str, score: float) -> dict[str, float]:
    """`p_<label> = score`, the rest shared evenly by the other four labels."""
    rest = (1.0 - score) / (len(LABELS) - 1)
    return {f"p_{name}": score if name == label else rest for name in LABELS}


def document(
    doc_id: str,
    label: str,
    *,
    score: float = 0.9,
    source: str = "/data/shard-0.jsonl",
    url: str | None = None,
    n_chars: int = 400,
    status: str = "ok",
    probs: dict[str, float] | None = None,
) -> dict:
    """One `documents/` row."""
    return {
        "id": doc_id,
        "source": source,
        "url": url,
        "domain": registered_domain(url),
        "label": label,
        **(probs or probabilities(label, score)),
        "flagged": label == MALEVOLENT,
        "spans": [],
        "n_chars": n_chars,
        "status": status,
    }


def passage(doc: dict, text: str, score: float, start: int = 0) -> dict:
    """One `passages/` row of `doc`, labelled like it, with `p_<label> = score`."""
    return {
        "doc_id": doc["id"],
        "source": doc["source"],
        "url": doc["url"],
        "start": start,
        "end": start + len(text),
        "label": doc["label"],
        **probabilities(doc["label"], score),
        "text": text,
    }


def write_scan(
    out: Path,
    documents: list[dict],
    passages: Sequence[dict] = (),
    errors: Sequence[dict] = (),
    model_version: str = "test-model",
    threshold: float = 0.5,
    files: int = 2,
) -> Path:
    """A scan folder: documents/ split over `files` Parquet files, passages/, errors/, stats.json."""
    (out / "documents").mkdir(parents=True)
    for index in range(files):
        rows = documents[index::files]
        if rows:
            pq.write_table(
                pa.Table.from_pylist(rows, schema=DOCUMENT_SCHEMA), out / "documents" / f"{index:05d}.parquet"
            )
    if passages:
        (out / "passages").mkdir()
        pq.write_table(pa.Table.from_pylist(list(passages), schema=PASSAGE_SCHEMA), out / "passages" / "00000.parquet")
    if errors:
        (out / "errors").mkdir()
        (out / "errors" / "00000.jsonl").write_text("".join(json.dumps(e) + "\n" for e in errors))
    stats = {"records": {"documents": len(documents)}, "model": {"version": model_version, "threshold": threshold}}
    (out / "stats.json").write_text(json.dumps(stats))
    return out
