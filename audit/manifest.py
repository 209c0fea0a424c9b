"""`manifest`: the per-document weights a data loader consumes, from a scan's documents and a policy.

`M.parquet` has one row per document (DESIGN.md's manifest contract, plus `copies` and `n_chars`);
`M.parquet.json` beside it records the policy (text and sha256), the seed, the scans' model
versions, and what the policy does per label, next to the totals. Documents are streamed from
DuckDB in batches and written as they come, so memory does not grow with the corpus.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from audit.labels import PROB_COLUMNS
from audit.policy import Policy, load_policy
from audit.scan_outputs import LABEL_TABLE, connect, create_views, load_scans
from audit.tokens import ESTIMATOR, est_tokens

MANIFEST_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("weight", pa.float64(), nullable=False),
        pa.field("label", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("copies", pa.int32(), nullable=False),
        pa.field("n_chars", pa.int32(), nullable=False),
    ]
)
META_SUFFIX = ".json"
BATCH_ROWS = 65536


def draw(doc_id: str, seed: int) -> float:
    """A uniform number in [0, 1) fixed by the document id and the seed (blake2b), so reruns agree."""
    digest = hashlib.blake2b(f"{seed}\x00{doc_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def copies(weight: float, doc_id: str, seed: int) -> int:
    """How many times a document of this weight is written: the integer part, plus one with
    probability equal to the fraction, decided by `draw` (0.3 keeps 30% of such documents; 2.5
    writes two copies of each, and a third of half of them)."""
    whole = math.floor(weight)
    return whole + (1 if draw(doc_id, seed) < weight - whole else 0)


@dataclass
class ManifestConfig:
    scans: list[str]  # scan folders whose documents/ the manifest covers
    policy: str  # a policy file, or the name of a shipped one (default, hard-removal, soft-proportional)
    output: str  # M.parquet (local or fsspec URL); the side file is M.parquet.json
    memory_limit: str = "2GB"


@dataclass
class ManifestResult:
    output: str
    meta_path: str
    meta: dict = field(default_factory=dict)


def meta_path(manifest: str) -> str:
    return manifest + META_SUFFIX


def _effect_row(docs: int, chars: int, wdocs: float, wchars: float, cdocs: int, cchars: int) -> dict:
    """One line of the policy's effect: totals, the expectation under the weights, and what is written."""
    return {
        "documents": docs,
        "chars": chars,
        "est_tokens": est_tokens(chars),
        "weighted_documents": round(wdocs, 3),
        "weighted_chars": round(wchars),
        "weighted_est_tokens": est_tokens(wchars),
        "change_documents": round(wdocs - docs, 3),
        "change_chars": round(wchars - chars),
        "change_est_tokens": est_tokens(wchars - chars),
        "written_documents": cdocs,
        "written_chars": cchars,
    }


def _effects(con, manifest_url: str) -> dict:
    """Per label: totals, and what the weights keep (expected) and `apply` writes (copies)."""
    sql = f"""
        SELECT t.label, count(m.id) AS documents, coalesce(sum(m.n_chars), 0)::BIGINT AS chars,
               coalesce(sum(m.weight), 0) AS weighted_documents,
               coalesce(sum(m.weight * m.n_chars), 0) AS weighted_chars,
               coalesce(sum(m.copies), 0)::BIGINT AS written_documents,
               coalesce(sum(m.copies * m.n_chars), 0)::BIGINT AS written_chars
        FROM {LABEL_TABLE} LEFT JOIN read_parquet('{manifest_url}') m ON m.label = t.label
        GROUP BY t.label, t.ord ORDER BY t.ord"""
    rows = con.execute(sql).fetchall()
    per_label = {label: _effect_row(*values) for label, *values in rows}
    totals = _effect_row(*(sum(values) for values in zip(*(row[1:] for row in rows))))
    reasons = con.execute(
        f"""SELECT reason, count(*) AS documents, sum(weight) AS weighted_documents, sum(copies)::BIGINT AS copies
            FROM read_parquet('{manifest_url}') GROUP BY reason ORDER BY reason"""
    ).fetchall()
    return {
        "labels": per_label,
        "total": totals,
        "reasons": [
            {"reason": r, "documents": n, "weighted_documents": round(w, 3), "written_documents": c}
            for r, n, w, c in reasons
        ],
    }


def _policy_record(policy: Policy) -> dict:
    return {
        "name": policy.name,
        "description": policy.description,
        "path": policy.path,
        "sha256": policy.sha256,
        "seed": policy.seed,
        "text": policy.text,
    }


def build_manifest(config: ManifestConfig) -> ManifestResult:
    """Write the manifest and its side file; returns what the side file says.

    The policy and the scans are checked first: an invalid policy (PolicyError) or a folder that is
    no scan (InputError) writes nothing.
    """
    policy = load_policy(config.policy)
    scans = load_scans(config.scans)
    con = connect([s.folder.fs for s in scans], config.memory_limit)
    create_views(con, scans)
    fs, path = fsspec.core.url_to_fs(config.output)
    parent = path.rsplit("/", 1)[0] if "/" in path else ""
    if parent:
        fs.makedirs(parent, exist_ok=True)
    staging = path + ".inprogress"
    query = f"SELECT id, source, label, n_chars, {', '.join(PROB_COLUMNS)} FROM documents"
    relation = con.sql(query)
    # DuckDB 2 renamed fetch_arrow_reader to to_arrow_reader
    reader = (getattr(relation, "to_arrow_reader", None) or relation.fetch_arrow_reader)(BATCH_ROWS)
    with fs.open(staging, "wb") as handle, pq.ParquetWriter(handle, MANIFEST_SCHEMA, compression="zstd") as writer:
        for batch in reader:
            weights, reasons = policy.assign(batch)
            ids = batch.column("id").to_pylist()
            counts = np.fromiter((copies(w, i, policy.seed) for w, i in zip(weights, ids)), np.int32, len(ids))
            writer.write_table(
                pa.table(
                    {
                        "id": batch.column("id"),
                        "source": batch.column("source"),
                        "weight": weights,
                        "label": batch.column("label"),
                        "reason": pa.array(reasons, pa.string()),
                        "copies": counts,
                        "n_chars": batch.column("n_chars"),
                    },
                    schema=MANIFEST_SCHEMA,
                )
            )
    fs.mv(staging, path)
    manifest_url = fs.unstrip_protocol(path).replace("'", "''")
    duplicates = con.execute(
        f"SELECT count(*) FROM (SELECT id FROM read_parquet('{manifest_url}') GROUP BY id HAVING count(*) > 1)"
    ).fetchone()[0]
    meta = {
        "manifest": config.output,
        "columns": {
            "id": "the document's id (documents.id)",
            "source": "the input file it came from",
            "weight": "0 drops, 1 keeps as is, >1 up-weights; a fraction keeps the document with that probability",
            "label": "the document's label",
            "reason": "the policy rule that set the weight (or the default)",
            "copies": "how many times `apply` writes the document: floor(weight) + (draw(id, seed) < frac(weight))",
            "n_chars": "the document's length in characters",
        },
        "policy": _policy_record(policy),
        "scans": [
            {"path": s.path, "model_version": s.model.get("version"), "threshold": s.model.get("threshold")}
            for s in scans
        ],
        "duplicate_ids": duplicates,
        "token_estimator": ESTIMATOR,
        "effect": _effects(con, manifest_url),
    }
    con.close()
    with fs.open(meta_path(path), "wt") as handle:
        json.dump(meta, handle, indent=2)
        handle.write("\n")
    return ManifestResult(output=config.output, meta_path=meta_path(config.output), meta=meta)


def load_meta(manifest: str) -> dict:
    """The side file of a manifest; raises InputError when it is missing."""
    from audit.records import InputError

    fs, path = fsspec.core.url_to_fs(manifest)
    if not fs.exists(path):
        raise InputError(f"{manifest}: no such manifest")
    if not fs.exists(meta_path(path)):
        raise InputError(
            f"{manifest}: its side file {meta_path(manifest)} is missing; rerun `portrayal-audit manifest`"
        )
    with fs.open(meta_path(path), "rt") as handle:
        return json.load(handle)


def _signed(value: float, digits: int = 0) -> str:
    return f"{value:+,.{digits}f}" if digits else f"{round(value):+,}"


def format_effect(meta: dict) -> str:
    """The plain-text table the CLI prints: what the policy removes or adds, per label."""
    effect = meta["effect"]
    policy = meta["policy"]
    lines = [
        f"policy {policy['name']} ({policy['path']}, sha256 {policy['sha256'][:12]}, seed {policy['seed']})",
        f"{'label':<20}{'documents':>12}{'change':>12}{'characters':>16}{'change':>15}{'est_tokens':>14}"
        f"{'change':>13}{'written':>12}",
    ]
    for label, row in [*effect["labels"].items(), ("total", effect["total"])]:
        lines.append(
            f"{label:<20}{row['documents']:>12,}{_signed(row['change_documents'], 1):>12}{row['chars']:>16,}"
            f"{_signed(row['change_chars']):>15}{row['est_tokens']:>14,}{_signed(row['change_est_tokens']):>13}"
            f"{row['written_documents']:>12,}"
        )
    lines.append(
        "change = expected change under the weights (sum of weight x size, minus the total); "
        "written = documents `apply` writes (copies)"
    )
    if meta.get("duplicate_ids"):
        lines.append(f"note: {meta['duplicate_ids']:,} ids occur more than once (apply matches those by source and id)")
    lines.append(f"wrote {meta['manifest']} and {meta_path(meta['manifest'])}")
    return "\n".join(lines)
