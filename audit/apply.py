"""`apply`: write the reweighted corpus a manifest describes, and check it against the manifest.

The inputs are read with the project's accounted readers (a bad record is counted, never fatal),
each document is written `copies(weight, id, seed)` times (see `audit.manifest`), and datatrove's
own writers write the result in the input's format: JSONL inputs as `.jsonl.gz`, Parquet as
Parquet, WARC/WET as `.jsonl.gz` of the extracted text. Documents the manifest does not name are
kept once and counted. The same command twice writes the same records: every decision is a hash.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.data import Document, DocumentsPipeline
from datatrove.io import DataFolder, get_datafolder
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.writers import JsonlWriter, ParquetWriter

from audit import records
from audit.executors import console_logging, make_executor
from audit.inputs import InputGroup, resolve_inputs
from audit.labels import LABELS
from audit.manifest import copies, load_meta
from audit.readers import READERS
from audit.records import InputError
from audit.scan_outputs import connect, sql_list
from audit.stats import pipeline_counters

RESULT_FILE = "apply.json"
#: What `apply` counts (apply.json's `counters`): records read, and what the reweighting did with them.
COUNTERS = ("input_files", "records", "unreadable", "in_manifest", "not_in_manifest", "dropped", "written")
NOT_IN_MANIFEST = "(not in manifest)"
OUTPUT_SCHEMA = pa.schema(
    [
        pa.field("text", pa.string()),
        pa.field("id", pa.string()),
        pa.field(
            "metadata",
            pa.struct(
                [
                    pa.field("url", pa.string()),
                    pa.field("source", pa.string()),
                    pa.field("weight", pa.float64()),
                    pa.field("copy", pa.int32()),
                    pa.field("in_manifest", pa.bool_()),
                ]
            ),
        ),
    ]
)
#: Output file extension of each input format.
OUTPUT_EXTENSION = {"jsonl": "jsonl.gz", "warc": "jsonl.gz", "wet": "jsonl.gz", "parquet": "parquet"}


@dataclass
class ApplyConfig:
    manifest: str  # M.parquet (its side file M.parquet.json gives the seed)
    inputs: list[str]  # the corpus the manifest's scan read: files, directories, globs
    output: str  # folder for the reweighted corpus
    format: str | None = None
    text_key: str = "text"
    id_key: str = "id"
    workers: int | None = None
    overwrite: bool = False
    progress: bool = True


@dataclass
class ApplyCheck:
    """The written corpus against the manifest's expectation, document by document."""

    ok: bool
    expected_documents: int  # sum of the manifest's copies, plus one per document it does not name
    written_documents: int
    mismatched_ids: int  # ids written a number of times other than expected
    per_label: dict[str, dict[str, int]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


@dataclass
class ApplyResult:
    output: str
    folders: list[str]
    counters: dict[str, int]
    check: ApplyCheck


def _adapter(self, document: Document) -> dict:
    """The output record: datatrove's text/id/metadata, with the reweighting's provenance."""
    meta = document.metadata
    return {
        "text": document.text,
        "id": document.id,
        "metadata": {
            "url": meta.get(records.URL),
            "source": meta[records.SOURCE],
            "weight": meta["weight"],
            "copy": meta["copy"],
            "in_manifest": meta["in_manifest"],
        },
    }


class ReweightStep(PipelineStep):
    """Repeats or drops each document as many times as its manifest weight says; counts everything."""

    type = "⚖️ - REWEIGHT"
    name = "⚖️ Reweight (manifest)"

    def __init__(self, manifest: str, seed: int):
        super().__init__()
        self.manifest = manifest
        self.seed = seed

    def _load(self) -> tuple[dict[str, float], dict[tuple[str, str], float]]:
        """Weights by id; by (source, id) only for ids the manifest holds more than once."""
        by_id: dict[str, float] = {}
        duplicated: set[str] = set()
        for doc_id, weight in self._rows("id", "weight"):
            if doc_id in by_id:
                duplicated.add(doc_id)
            by_id[doc_id] = weight
        by_key: dict[tuple[str, str], float] = {}
        if duplicated:
            for doc_id, source, weight in self._rows("id", "source", "weight"):
                if doc_id in duplicated:
                    by_key[(source, doc_id)] = weight
        return by_id, by_key

    def _rows(self, *columns: str):
        with fsspec.open(self.manifest, "rb") as handle:
            for batch in pq.ParquetFile(handle).iter_batches(columns=list(columns)):
                yield from zip(*(batch.column(c).to_pylist() for c in columns))

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        by_id, by_key = self._load()
        for document in data:
            with self.track_time():
                if records.is_error(document):
                    self.stat_update("unreadable")
                    continue
                source = document.metadata[records.SOURCE]
                weight = by_key.get((source, document.id), by_id.get(document.id))
                if weight is None:
                    self.stat_update("not_in_manifest")
                    n = 1
                else:
                    self.stat_update("in_manifest")
                    n = copies(weight, document.id, self.seed)
                    if n == 0:
                        self.stat_update("dropped")
                self.stat_update("written", value=n)
            for k in range(n):
                metadata = {**document.metadata, "weight": 1.0 if weight is None else weight, "copy": k}
                metadata["in_manifest"] = weight is not None
                yield Document(text=document.text, id=document.id, metadata=metadata)


def _writer(fmt: str, folder: str):
    if OUTPUT_EXTENSION[fmt] == "parquet":
        return ParquetWriter(folder, output_filename="${rank}.parquet", adapter=_adapter, schema=OUTPUT_SCHEMA)
    return JsonlWriter(folder, output_filename="${rank}.jsonl.gz", compression="gzip", adapter=_adapter)


def _group_folders(output: str, groups: list[InputGroup]) -> list[str]:
    if len(groups) == 1:
        return [output]
    formats = [g.format for g in groups]
    names = [f if formats.count(f) == 1 else f"{f}-{i}" for i, f in enumerate(formats)]
    return [f"{output.rstrip('/')}/{name}" for name in names]


def _output_files(folder: DataFolder, extension: str) -> list[str]:
    files = [f for f in folder.list_files() if f.endswith("." + extension) and not f.startswith("logs/")]
    return [folder.fs.unstrip_protocol(folder.resolve_paths(f)) for f in sorted(files)]


def verify(manifest: str, folders: list[str], counters: dict[str, int]) -> ApplyCheck:
    """Compare what `folders` hold with the manifest: every id must be written exactly `copies` times
    (once for a document the manifest does not name), and the totals per label must agree."""
    parts = []
    for folder_path in folders:
        folder = get_datafolder(folder_path)
        jsonl = _output_files(folder, "jsonl.gz")
        parquet = _output_files(folder, "parquet")
        if jsonl:
            columns = "{'id': 'VARCHAR'}"
            parts.append(
                f"SELECT id FROM read_json({sql_list(jsonl)}, format = 'newline_delimited', columns = {columns})"
            )
        if parquet:
            parts.append(f"SELECT id FROM read_parquet({sql_list(parquet)})")
    con = connect([fsspec.core.url_to_fs(manifest)[0], *(get_datafolder(f).fs for f in folders)])
    written_ids = " UNION ALL ".join(parts) if parts else "SELECT NULL::VARCHAR AS id WHERE false"
    rows = con.execute(
        f"""WITH o AS (SELECT id, count(*) AS written FROM ({written_ids}) GROUP BY id),
                 m AS (SELECT id, sum(copies) AS expected, any_value(label) AS label
                       FROM read_parquet({sql_list([manifest])}) GROUP BY id)
            SELECT coalesce(m.label, '{NOT_IN_MANIFEST}') AS label,
                   coalesce(sum(m.expected), 0)::BIGINT AS expected, coalesce(sum(o.written), 0)::BIGINT AS written,
                   count(*) FILTER (WHERE coalesce(m.expected, 1) != coalesce(o.written, 0)) AS mismatched
            FROM m FULL OUTER JOIN o USING (id) GROUP BY 1"""
    ).fetchall()
    manifest_rows = con.execute(f"SELECT count(*) FROM read_parquet({sql_list([manifest])})").fetchone()[0]
    con.close()
    found = {label: (expected, written, mismatched) for label, expected, written, mismatched in rows}
    per_label = {}
    for label in (*LABELS, NOT_IN_MANIFEST):
        expected, written, _ = found.get(label, (0, 0, 0))
        if label == NOT_IN_MANIFEST:
            expected = counters.get("not_in_manifest", 0)
        per_label[label] = {"expected": int(expected), "written": int(written)}
    mismatched = sum(int(m) for _, _, m in found.values())
    expected_total = sum(v["expected"] for v in per_label.values())
    written_total = sum(v["written"] for v in per_label.values())
    problems = []
    read = counters.get("in_manifest", 0)
    if read < manifest_rows:
        problems.append(
            f"{manifest_rows - read:,} of the manifest's {manifest_rows:,} documents were not in the input: "
            "apply the manifest to the corpus its scan read"
        )
    if mismatched:
        problems.append(f"{mismatched:,} ids were written a number of times other than the manifest expects")
    for label, counts in per_label.items():
        if counts["expected"] != counts["written"]:
            problems.append(f"{label}: expected {counts['expected']:,} documents, wrote {counts['written']:,}")
    return ApplyCheck(
        ok=not problems,
        expected_documents=expected_total,
        written_documents=written_total,
        mismatched_ids=mismatched,
        per_label=per_label,
        problems=problems,
    )


def _counters(folders: list[str]) -> dict[str, int]:
    """The reweight step's and readers' counters, summed over every task of every output folder."""
    totals = dict.fromkeys(COUNTERS, 0)
    for folder in folders:
        for step, values in pipeline_counters(get_datafolder(folder)).items():
            for key, value in values.items():
                if key != "seconds" and ("REWEIGHT" in step or key in ("records", "input_files")):
                    totals[key] = totals.get(key, 0) + int(value)
    return totals


def apply_manifest(config: ApplyConfig) -> ApplyResult:
    """Write the reweighted corpus into `config.output` and check it; returns the counts and the check.

    Raises InputError, before writing, for a missing manifest or side file, unusable inputs, or an
    output folder that already holds files (unless `overwrite`).
    """
    console_logging("INFO" if config.progress else "ERROR")
    meta = load_meta(config.manifest)
    seed = int(meta["policy"]["seed"])
    inputs = resolve_inputs(config.inputs, config.format)
    output = get_datafolder(config.output)
    if output.exists("") and output.list_files():
        if not config.overwrite:
            raise InputError(f"{config.output} already holds files; pass --overwrite to replace them")
        output.rm("", recursive=True)
    folders = _group_folders(config.output, inputs.groups)
    for group, folder in zip(inputs.groups, folders):
        reader = READERS[group.format](
            DataFolder(path=group.root, fs=group.fs),
            files=group.paths,
            text_key=config.text_key,
            id_key=config.id_key,
            progress=config.progress,
        )
        pipeline = [reader, ReweightStep(config.manifest, seed), _writer(group.format, folder)]
        tasks = len(group.paths)
        make_executor(
            "local",
            pipeline,
            tasks=tasks,
            workers=max(1, min(config.workers or os.cpu_count() or 1, tasks)),
            logging_dir=f"{folder.rstrip('/')}/logs",
            console_level="INFO" if config.progress else "ERROR",
        ).run()
    counters = _counters(folders)
    check = verify(config.manifest, folders, counters)
    result = ApplyResult(output=config.output, folders=folders, counters=counters, check=check)
    with get_datafolder(config.output).open(RESULT_FILE, "wt") as handle:
        record = {"manifest": config.manifest, "seed": seed, "inputs": config.inputs, **asdict(result)}
        json.dump(record, handle, indent=2)
    return result


def check_output(manifest: str, output: str) -> ApplyCheck:
    """Re-run the check of an earlier `apply` into `output` (reads its apply.json)."""
    folder = get_datafolder(output)
    if not folder.exists(RESULT_FILE):
        raise InputError(f"{output}: no {RESULT_FILE}; is this the output of `portrayal-audit apply`?")
    with folder.open(RESULT_FILE, "rt") as handle:
        previous = json.load(handle)
    return verify(manifest, previous["folders"], previous["counters"])


def format_apply(result: ApplyResult) -> str:
    """The plain-text account the CLI prints."""
    c, check = result.counters, result.check
    lines = [
        f"read {c['records']:,} documents ({c['unreadable']:,} unreadable records skipped): "
        f"{c['in_manifest']:,} in the manifest ({c['dropped']:,} dropped), "
        f"{c['not_in_manifest']:,} not in it (kept once)",
        f"{'label':<20}{'expected':>10}{'written':>10}",
    ]
    for label, counts in check.per_label.items():
        lines.append(f"{label:<20}{counts['expected']:>10,}{counts['written']:>10,}")
    lines.append(f"{'total':<20}{check.expected_documents:>10,}{check.written_documents:>10,}")
    lines.append(format_check(check))
    if check.ok:
        lines.append(f"wrote {', '.join(result.folders)}")
    return "\n".join(lines)


def format_check(check: ApplyCheck) -> str:
    """`check passed`, or one CHECK FAILED line per problem."""
    if check.ok:
        return "check passed: every id written as often as the manifest expects"
    return "\n".join(f"CHECK FAILED: {problem}" for problem in check.problems)
