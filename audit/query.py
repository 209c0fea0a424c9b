"""Researcher queries over one or more scan outputs: search passages by meaning or literal phrase, and SQL.

```python
from audit import query

hits = query.search("reports/sample-scan", "an AI threatens to leak emails unless it is kept running", k=5)
hits.to_pandas()[["doc_id", "label", "score", "text"]]
query.sql("reports/sample-scan", "SELECT label, count(*) AS n FROM documents GROUP BY 1").to_pandas()
```

Both return pyarrow Tables (`.to_pandas()` for a dataframe). Semantic search needs the index that
`portrayal-audit index OUT` (`audit.index.build_index`) builds; a phrase alone does not.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from audit.domains import registered_domain
from audit.index import INDEX_DIR, META_FILE, PassageIndex, passage_files, shared_encoder
from audit.labels import PROB_COLUMNS, check_label
from audit.records import InputError
from audit.schema import PASSAGE_SCHEMA
from audit.segment import _SENTENCE_END, _strip  # the segmenter's own sentence ends and trimming

Outputs = str | Path | Sequence[str | Path]

#: Columns of `search`'s result, best first: the scan folder (`scan`, as in the SQL views), the
#: passage's identity and scores, the query's
#: similarity (`score`, cosine; null for a phrase-only search), the matched region as document
#: offsets (`match_start`, `match_end`: the most similar sentence, or the phrase) and the text.
RESULT_SCHEMA = pa.schema(
    [
        pa.field("scan", pa.string()),
        *(PASSAGE_SCHEMA.field(name) for name in ("doc_id", "source", "url")),
        pa.field("domain", pa.string()),
        *(PASSAGE_SCHEMA.field(name) for name in ("start", "end", "label", *PROB_COLUMNS)),
        pa.field("score", pa.float32()),
        pa.field("match_start", pa.int32()),
        pa.field("match_end", pa.int32()),
        PASSAGE_SCHEMA.field("text"),
    ]
)


class QueryError(InputError):
    """A query that cannot run (bad SQL, contradictory options); the message says why."""


def search(
    outputs: Outputs,
    text: str | None = None,
    *,
    k: int = 10,
    label: str | Iterable[str] | None = None,
    domain: str | Iterable[str] | None = None,
    min_score: float | None = None,
    phrase: str | None = None,
    highlight: bool = True,
) -> pa.Table:
    """The `k` passages of `outputs` most similar in meaning to `text`, best first (RESULT_SCHEMA).

    Filters: `label` and `domain` (one or several; domains as registered domains, e.g. `example.co.uk`),
    `min_score` (cosine similarity to `text`), `phrase` (case-insensitive literal substring). With
    `phrase` and no `text`, the passages containing it are returned in scan order. `highlight=False`
    skips finding the matched region (embedding the top passages' sentences: most of a query's time).
    Raises NoPassagesError / NoIndexError (audit.index) and QueryError, all InputError.
    """
    if not text and not phrase:
        raise QueryError("give a query text, a phrase, or both")
    if min_score is not None and not text:
        raise QueryError("min_score is a similarity to the query text: give a text too")
    if k < 1:
        raise QueryError(f"k must be at least 1, got {k}")
    labels = {check_label(name) for name in _as_list(label)} or None
    domains = {registered_domain(d) or d.lower() for d in _as_list(domain)} or None
    folders = _folders(outputs)
    if not text:
        return _highlight(_phrase_only(folders, k, labels, domains, phrase), None, phrase)
    indexes = [_load_index(folder) for folder in folders]  # every error before the model loads
    query = _encode([text])
    parts = [_semantic(index, query, k, labels, domains, phrase, min_score) for index in indexes]
    table = pa.concat_tables(parts)
    table = table.take(pc.sort_indices(table, [("score", "descending")])[:k])
    return _highlight(table, query[0], phrase) if highlight else table


def connect(outputs: Outputs):
    """A DuckDB connection with views `documents`, `passages`, `errors` and one per `OUT/report/<name>.parquet`.

    Each view is the union (by column name) over `outputs`, with a column `scan` naming the folder.
    """
    from audit.scan_outputs import connect as duckdb_connect
    from audit.scan_outputs import create_views, load_scans, sql_list

    scans = load_scans([str(o) for o in _outputs_list(outputs)])
    con = duckdb_connect([scan.folder.fs for scan in scans])
    create_views(con, scans)
    reports: dict[str, list[str]] = {}
    for scan in scans:
        if scan.folder.isdir("report"):
            for path in sorted(p for p in scan.folder.list_files("report") if p.endswith(".parquet")):
                name = path.rsplit("/", 1)[-1].removesuffix(".parquet")
                url = scan.folder.fs.unstrip_protocol(scan.folder.resolve_paths(path))
                reports.setdefault(name, []).append(
                    f"SELECT *, {sql_list([scan.path])[1:-1]} AS scan FROM read_parquet({sql_list([url])})"
                )
    for name, parts in reports.items():
        if name not in RESERVED_VIEWS:
            view = '"' + name.replace('"', '""') + '"'
            con.execute(f"CREATE OR REPLACE VIEW {view} AS " + " UNION ALL BY NAME ".join(parts))
    return con


RESERVED_VIEWS = ("documents", "passages", "errors")


def sql(outputs: Outputs, query: str) -> pa.Table:
    """Run a DuckDB `query` over the views of `connect(outputs)`; raises QueryError with DuckDB's message."""
    import duckdb

    con = connect(outputs)
    try:
        relation = con.sql(query)
        if relation is None:  # a statement that returns no rows
            return pa.table({})
        to_arrow = getattr(relation, "to_arrow_table", None) or relation.fetch_arrow_table  # DuckDB >= 1.4 / older
        return to_arrow()
    except duckdb.Error as exc:
        raise QueryError(f"SQL: {exc}") from None
    finally:
        con.close()


def views(outputs: Outputs) -> list[str]:
    """Names of the views `sql` offers on `outputs`."""
    con = connect(outputs)
    try:
        names = con.sql("SELECT table_name FROM information_schema.tables ORDER BY 1").fetchall()
        return [name for (name,) in names if not name.startswith("_")]  # `_...`: helpers of the views
    finally:
        con.close()


def sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence or line of `text`, blanks trimmed: the unit a match is shown in."""
    bounds, pos = [], 0
    for match in _SENTENCE_BREAK.finditer(text):
        bounds.append(_strip(text, pos, match.start()))
        pos = match.end()
    bounds.append(_strip(text, pos, len(text)))
    return [(s, e) for s, e in bounds if e > s]


_SENTENCE_BREAK = re.compile(f"{_SENTENCE_END.pattern}|\\n+")


def _semantic(
    index: PassageIndex,
    query: np.ndarray,
    k: int,
    labels: set[str] | None,
    domains: set[str] | None,
    phrase: str | None,
    min_score: float | None,
) -> pa.Table:
    mask = _mask(index.rows.column("label"), index.rows.column("domain"), labels, domains)
    if phrase:
        mask = _and(mask, pc.match_substring(index.texts(), phrase, ignore_case=True))
    ids = None if mask is None else np.flatnonzero(mask.to_numpy(zero_copy_only=False))
    scores, found = index.search(query, k, ids)
    keep = found[0] >= 0
    if min_score is not None:
        keep &= scores[0] >= min_score
    passages = index.fetch(found[0][keep])
    return _results(passages, index.output, pa.array(scores[0][keep], pa.float32()))


def _phrase_only(
    folders: list[Path], k: int, labels: set[str] | None, domains: set[str] | None, phrase: str
) -> pa.Table:
    """Passages containing `phrase` (and passing the filters), in scan order: no index needed."""
    parts, found = [], 0
    for folder in folders:
        for path in passage_files(folder):
            table = pq.read_table(path)
            domain = pa.array([registered_domain(u) for u in table.column("url").to_pylist()], pa.string())
            mask = _and(
                _mask(table.column("label"), domain, labels, domains),
                pc.match_substring(table.column("text"), phrase, ignore_case=True),
            )
            table = table.filter(mask).slice(0, k - found)
            parts.append(_results(table, folder, pa.nulls(table.num_rows, pa.float32())))
            found += table.num_rows
            if found >= k:
                return pa.concat_tables(parts)
    return pa.concat_tables(parts) if parts else RESULT_SCHEMA.empty_table()


def _results(passages: pa.Table, output: Path, scores: pa.Array) -> pa.Table:
    n = passages.num_rows
    columns = {
        "scan": pa.array([str(output)] * n, pa.string()),
        "domain": pa.array([registered_domain(u) for u in passages.column("url").to_pylist()], pa.string()),
        "score": scores,
        "match_start": pa.nulls(n, pa.int32()),
        "match_end": pa.nulls(n, pa.int32()),
    }
    return pa.table(
        [columns[name] if name in columns else passages.column(name) for name in RESULT_SCHEMA.names],
        schema=RESULT_SCHEMA,
    )


def _highlight(table: pa.Table, query: np.ndarray | None, phrase: str | None) -> pa.Table:
    """Fill match_start/match_end: the phrase's first occurrence, else the sentence most similar to the query."""
    texts, starts = table.column("text").to_pylist(), table.column("start").to_pylist()
    regions: list[tuple[int, int] | None] = []
    if phrase:
        pattern = re.compile(re.escape(phrase), re.IGNORECASE)
        for passage in texts:
            found = pattern.search(passage)
            regions.append(found.span() if found else None)
    elif texts:
        spans = [sentences(passage) or [(0, len(passage))] for passage in texts]
        flat = [passage[s:e] for passage, bounds in zip(texts, spans) for s, e in bounds]
        similarity = _encode(flat) @ query
        pos = 0
        for bounds in spans:
            regions.append(bounds[int(np.argmax(similarity[pos : pos + len(bounds)]))])
            pos += len(bounds)
    match_start = [None if r is None else start + r[0] for r, start in zip(regions, starts)]
    match_end = [None if r is None else start + r[1] for r, start in zip(regions, starts)]
    table = table.set_column(
        table.schema.get_field_index("match_start"), "match_start", pa.array(match_start, pa.int32())
    )
    return table.set_column(table.schema.get_field_index("match_end"), "match_end", pa.array(match_end, pa.int32()))


def _encode(texts: list[str]) -> np.ndarray:
    """Embed a query's few texts on one torch thread: on a busy 2-core machine, 25 ms instead of
    750 ms for the query itself (more threads fight over the cores instead of sharing the work)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return shared_encoder().encode(texts)
    finally:
        torch.set_num_threads(threads)


def _mask(label, domain, labels: set[str] | None, domains: set[str] | None) -> pa.ChunkedArray | None:
    mask = None
    if labels:
        mask = pc.is_in(label, value_set=pa.array(sorted(labels)))
    if domains:
        mask = _and(mask, pc.fill_null(pc.is_in(domain, value_set=pa.array(sorted(domains))), False))
    return mask


def _and(left, right):
    return right if left is None else pc.and_(left, right)


def _as_list(value: str | Iterable[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _outputs_list(outputs: Outputs) -> list[str | Path]:
    return [outputs] if isinstance(outputs, (str, Path)) else list(outputs)


def _folders(outputs: Outputs) -> list[Path]:
    folders = [Path(o) for o in _outputs_list(outputs)]
    if not folders:
        raise QueryError("name at least one scan output folder")
    for folder in folders:
        if not folder.is_dir():
            raise InputError(f"{folder}: no such folder")
    return folders


_INDEXES: dict[Path, tuple[int, PassageIndex]] = {}


def _load_index(folder: Path) -> PassageIndex:
    """Load once per process (and again when the index is rebuilt), so repeated searches are fast."""
    meta = folder / INDEX_DIR / META_FILE
    stamp = meta.stat().st_mtime_ns if meta.is_file() else -1
    cached = _INDEXES.get(folder.resolve())
    if cached and cached[0] == stamp:
        PassageIndex.check(folder, cached[1].meta)
        return cached[1]
    index = PassageIndex.load(folder)
    _INDEXES[folder.resolve()] = (stamp, index)
    return index
