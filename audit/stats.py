"""`stats.json`: what a scan read, wrote and could not read, counted from its outputs.

Counting from the output files (not from in-memory counters) keeps the numbers right after a
resumed run, where some tasks ran in an earlier process.
"""

from __future__ import annotations

import json
from collections import Counter

import pyarrow.dataset as ds
from datatrove.io import DataFolder
from datatrove.utils.stats import PipelineStats

from audit.labels import LABELS
from audit.records import STATUSES


def table_files(folder: DataFolder, table: str, extension: str) -> list[str]:
    """Finished files of one output table (`*.inprogress` excluded), relative to `folder`."""
    if not folder.isdir(table):
        return []
    return sorted(p for p in folder.list_files(table) if p.endswith(f".{extension}"))


def count_documents(folder: DataFolder) -> dict:
    labels: Counter = Counter()
    statuses: Counter = Counter()
    flagged = chars = rows = 0
    files = table_files(folder, "documents", "parquet")
    if files:
        dataset = ds.dataset([folder.resolve_paths(f) for f in files], format="parquet", filesystem=folder.fs)
        for batch in dataset.to_batches(columns=["label", "status", "flagged", "n_chars"]):
            data = batch.to_pydict()
            rows += batch.num_rows
            labels.update(data["label"])
            statuses.update(data["status"])
            flagged += sum(data["flagged"])
            chars += sum(data["n_chars"])
    return {
        "rows": rows,
        "chars": chars,
        "flagged": flagged,
        "labels": {label: labels.get(label, 0) for label in LABELS},
        "status": {status: statuses.get(status, 0) for status in STATUSES},
    }


def count_rows(folder: DataFolder, table: str) -> int:
    files = table_files(folder, table, "parquet")
    if not files:
        return 0
    return ds.dataset([folder.resolve_paths(f) for f in files], format="parquet", filesystem=folder.fs).count_rows()


def count_errors(folder: DataFolder) -> dict:
    scopes: Counter = Counter()
    examples: list[dict] = []
    for path in table_files(folder, "errors", "jsonl"):
        with folder.open(path, "rt") as handle:
            for line in handle:
                error = json.loads(line)
                scopes[error["scope"]] += 1
                if len(examples) < 20:
                    examples.append(error)
    return {"records": scopes.get("record", 0), "files": scopes.get("file", 0), "examples": examples}


def pipeline_counters(folder: DataFolder) -> dict:
    """Per-step counters and times, summed over the tasks' datatrove stats files."""
    total = PipelineStats()
    for path in sorted(folder.list_files("logs/stats")) if folder.isdir("logs/stats") else []:
        with folder.open(path, "rt") as handle:
            total = total + PipelineStats.from_json(json.load(handle))
    steps: dict[str, dict] = {}
    for step in total.stats:
        merged = steps.setdefault(step.name, {"seconds": 0.0})  # e.g. the WARC and WET readers share a name
        merged["seconds"] = round(merged["seconds"] + step.time_stats.total, 3)
        for key, value in step.stats.to_dict().items():
            merged[key] = merged.get(key, 0) + (value if isinstance(value, (int, float)) else value.get("total", 0))
    return steps


def summarize(folder: DataFolder, extra: dict) -> dict:
    """Count the scan in `folder` and write `stats.json`; returns what it wrote."""
    documents = count_documents(folder)
    errors = count_errors(folder)
    summary = {
        "records": {
            "total": documents["rows"] + errors["records"],
            "documents": documents["rows"],
            "unreadable": errors["records"],
        },
        "file_errors": errors["files"],
        "flagged": documents["flagged"],
        "chars": documents["chars"],
        "labels": documents["labels"],
        "status": documents["status"],
        "passages": count_rows(folder, "passages"),
        "error_examples": errors["examples"],
        "steps": pipeline_counters(folder),
        **extra,
    }
    with folder.open("stats.json", "wt") as handle:
        json.dump(summary, handle, indent=2, ensure_ascii=False)
    return summary
