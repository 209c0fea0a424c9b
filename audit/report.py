"""`report`: what a data lead reads after a scan: how much portrays AI how, where it comes from.

Every aggregate is one DuckDB query over the scans' Parquet files (several scan folders are read as
one corpus), written straight to `report/*.parquet`, so memory stays bounded however many documents
the scans hold; only the small aggregates are read back, for `summary.json`, `summary.html` and the
terminal summary.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb
from datatrove.io import get_datafolder

from audit.labels import LABELS, MALEVOLENT, UNRELATED
from audit.records import STATUSES, InputError
from audit.scan_outputs import LABEL_TABLE, ScanOutput, connect, create_views, load_scans, sql_list, values_table
from audit.tokens import CHARS_PER_TOKEN, ESTIMATOR, est_tokens, est_tokens_sql

REPORT_DIR = "report"
TABLES = ("labels", "domains", "shards", "scores", "status", "examples")
Z_95 = 1.959963984540054  # two-sided 95% normal quantile of the Wilson score interval


@dataclass
class ReportConfig:
    """What `report` reads and how much of it the summaries show."""

    scans: list[str]  # scan folders (local or fsspec URLs); several are reported as one corpus
    output: str | None = None  # default: SCAN/report for a single scan
    top: int = 20  # domains and shards listed in the HTML page and the terminal
    bins: int = 20  # score histogram bins over [0, 1]
    examples: int = 3  # example passages per label
    memory_limit: str = "2GB"  # DuckDB spills to disk beyond this

    def output_folder(self) -> str:
        if self.output:
            return self.output
        if len(self.scans) != 1:
            raise InputError("several scans are reported together into one folder: pass --output")
        return self.scans[0].rstrip("/") + "/" + REPORT_DIR


@dataclass
class ReportData:
    """The small aggregates read back for the summaries (the full tables are in the Parquet files)."""

    summary: dict
    labels: list[dict] = field(default_factory=list)
    top_by_flagged: list[dict] = field(default_factory=list)
    top_by_rate: list[dict] = field(default_factory=list)
    shards: list[dict] = field(default_factory=list)
    scores: list[dict] = field(default_factory=list)
    status: list[dict] = field(default_factory=list)
    examples: list[dict] = field(default_factory=list)


def _score_of(label_column: str, prefix: str = "") -> str:
    """`p_<label>` of the label named in `label_column`, as one SQL expression."""
    cases = " ".join(f"WHEN '{label}' THEN {prefix}p_{label}" for label in LABELS)
    return f"CASE {label_column} {cases} END"


def _wilson(k: str, n: str, sign: str) -> str:
    z2 = Z_95 * Z_95
    p = f"({k} / {n})"
    spread = f"{Z_95} * sqrt({p} * (1 - {p}) / {n} + {z2} / (4 * {n} * {n}))"
    return f"(({p} + {z2} / (2 * {n})) {sign} {spread}) / (1 + {z2} / {n})"


def queries(config: ReportConfig) -> dict[str, str]:
    """The SQL of each report table, over the views `documents`, `passages` and `errors`."""
    label_counts = ", ".join(f"count(*) FILTER (WHERE label = '{label}') AS n_{label}" for label in LABELS)
    status_counts = ", ".join(f"count(*) FILTER (WHERE status = '{status}') AS status_{status}" for status in STATUSES)
    return {
        "labels": f"""
            WITH total AS (SELECT count(*) AS docs, coalesce(sum(n_chars), 0)::BIGINT AS chars FROM documents)
            SELECT t.label, count(d.label) AS documents, coalesce(sum(d.n_chars), 0)::BIGINT AS chars,
                   {est_tokens_sql("coalesce(sum(d.n_chars), 0)::BIGINT")} AS est_tokens,
                   count(d.label) / nullif(any_value(total.docs), 0) AS share_documents,
                   coalesce(sum(d.n_chars), 0)::BIGINT / nullif(any_value(total.chars), 0) AS share_chars
            FROM {LABEL_TABLE} LEFT JOIN documents d ON d.label = t.label CROSS JOIN total
            GROUP BY t.label, t.ord ORDER BY t.ord""",
        "domains": f"""
            WITH d AS (
                SELECT domain, count(*)::DOUBLE AS n, count(*) FILTER (WHERE flagged) AS k,
                       sum(n_chars)::BIGINT AS chars,
                       coalesce(sum(n_chars) FILTER (WHERE flagged), 0)::BIGINT AS flagged_chars,
                       {label_counts}
                FROM documents WHERE domain IS NOT NULL GROUP BY domain),
            w AS (SELECT *, {_wilson("k", "n", "-")} AS wilson_low, {_wilson("k", "n", "+")} AS wilson_high FROM d)
            SELECT domain, n::BIGINT AS documents, k AS flagged, k / n AS flagged_rate,
                   greatest(wilson_low, 0) AS wilson_low, least(wilson_high, 1) AS wilson_high,
                   chars, flagged_chars, {est_tokens_sql("chars")} AS est_tokens,
                   {", ".join(f"n_{label}" for label in LABELS)},
                   row_number() OVER (ORDER BY k DESC, wilson_low DESC, domain) AS rank_by_flagged,
                   row_number() OVER (ORDER BY wilson_low DESC, k DESC, domain) AS rank_by_rate
            FROM w ORDER BY rank_by_rate""",
        "shards": f"""
            WITH d AS (
                SELECT scan, source, count(*) AS documents, sum(n_chars)::BIGINT AS chars,
                       count(*) FILTER (WHERE flagged) AS flagged, {label_counts}, {status_counts}
                FROM documents GROUP BY scan, source),
            e AS (
                SELECT scan, file AS source, count(*) FILTER (WHERE scope = 'record') AS unreadable_records,
                       count(*) FILTER (WHERE scope = 'file') AS file_errors
                FROM errors GROUP BY scan, file)
            SELECT scan, source, coalesce(documents, 0) AS documents, coalesce(chars, 0) AS chars,
                   {est_tokens_sql("coalesce(chars, 0)")} AS est_tokens, coalesce(flagged, 0) AS flagged,
                   flagged / nullif(documents, 0) AS flagged_rate,
                   {", ".join(f"coalesce(n_{label}, 0) AS n_{label}" for label in LABELS)},
                   {", ".join(f"coalesce(status_{status}, 0) AS status_{status}" for status in STATUSES)},
                   coalesce(unreadable_records, 0) AS unreadable_records, coalesce(file_errors, 0) AS file_errors
            FROM d FULL OUTER JOIN e USING (scan, source) ORDER BY flagged DESC, documents DESC, scan, source""",
        "scores": f"""
            WITH u AS (
                UNPIVOT (SELECT label AS doc_label, {", ".join(f"p_{label}" for label in LABELS)} FROM documents)
                ON {", ".join(f"p_{label}" for label in LABELS)} INTO NAME col VALUE p),
            b AS (SELECT substr(col, 3) AS label, least(floor(p * {config.bins}), {config.bins - 1})::INT AS bin,
                         doc_label FROM u),
            grid AS (SELECT t.label, t.ord, g.range::INT AS bin FROM {LABEL_TABLE} CROSS JOIN range({config.bins}) g)
            SELECT grid.label, grid.bin, grid.bin / {config.bins} AS p_low, (grid.bin + 1) / {config.bins} AS p_high,
                   count(b.label) AS documents,
                   count(b.label) FILTER (WHERE b.doc_label = grid.label) AS documents_with_label
            FROM grid LEFT JOIN b ON b.label = grid.label AND b.bin = grid.bin
            GROUP BY grid.label, grid.ord, grid.bin ORDER BY grid.ord, grid.bin""",
        "status": f"""
            SELECT kind, name, count FROM (
                SELECT 'status' AS kind, 0 AS kind_ord, t.name, t.ord, count(d.status) AS count
                FROM {values_table([(s, i) for i, s in enumerate(STATUSES)], "name, ord")}
                     LEFT JOIN documents d ON d.status = t.name GROUP BY t.name, t.ord
                UNION ALL
                SELECT 'error_scope', 1, t.name, t.ord, count(e.scope)
                FROM {values_table([("record", 0), ("file", 1)], "name, ord")}
                     LEFT JOIN errors e ON e.scope = t.name GROUP BY t.name, t.ord
                UNION ALL
                SELECT 'error_reason', 2, split_part(reason, ':', 1), 0, count(*) FROM errors GROUP BY 3)
            ORDER BY kind_ord, ord, count DESC, name""",
        "examples": f"""
            WITH p AS (
                SELECT scan, doc_id, source, url, start, "end", label, text, {_score_of("label")} AS passage_score
                FROM passages WHERE label != '{UNRELATED}'
                QUALIFY row_number() OVER (PARTITION BY scan, label, source, doc_id
                                           ORDER BY passage_score DESC, start) = 1),
            top AS (
                SELECT *, row_number() OVER (PARTITION BY label ORDER BY passage_score DESC, doc_id, start) AS rank
                FROM p QUALIFY rank <= {config.examples})
            SELECT top.label, top.rank, top.doc_id, top.source, top.url, top.start, top."end", top.passage_score,
                   d.label AS document_label, {_score_of("top.label", "d.")} AS document_score, top.text
            FROM top LEFT JOIN documents d ON d.id = top.doc_id AND d.source = top.source AND d.scan = top.scan
            ORDER BY list_position({sql_list(list(LABELS))}, top.label), top.rank""",
    }


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict]:
    result = con.execute(sql)
    names = [c[0] for c in result.description]
    return [dict(zip(names, row)) for row in result.fetchall()]


def _summary(con: duckdb.DuckDBPyConnection, scans: list[ScanOutput], labels: list[dict]) -> dict:
    totals = _rows(
        con,
        """SELECT count(*) AS documents, coalesce(sum(n_chars), 0)::BIGINT AS chars,
                   count(*) FILTER (WHERE flagged) AS flagged,
                   coalesce(sum(n_chars) FILTER (WHERE flagged), 0)::BIGINT AS flagged_chars,
                   count(*) FILTER (WHERE domain IS NULL) AS documents_without_domain,
                   count(DISTINCT domain) AS domains, count(DISTINCT (scan, source)) AS shards
            FROM documents""",
    )[0]
    errors = _rows(
        con,
        """SELECT count(*) FILTER (WHERE scope = 'record') AS unreadable_records,
                  count(*) FILTER (WHERE scope = 'file') AS file_errors FROM errors""",
    )[0]
    documents, chars = totals["documents"], totals["chars"]
    models = sorted({(s.model.get("version"), s.model.get("threshold")) for s in scans}, key=str)
    return {
        "scans": [
            {"path": s.path, "model_version": s.model.get("version"), "threshold": s.model.get("threshold")}
            for s in scans
        ],
        "mixed_models": len(models) > 1,
        **totals,
        "est_tokens": est_tokens(chars),
        **errors,
        "flagged_share_documents": totals["flagged"] / documents if documents else None,
        "flagged_share_chars": totals["flagged_chars"] / chars if chars else None,
        "labels": {row["label"]: {k: v for k, v in row.items() if k != "label"} for row in labels},
        "token_estimator": ESTIMATOR,
        "wilson": "95% Wilson score interval of the flagged rate; domains are ranked by its lower bound",
    }


def _publish(staging: Path, output: str) -> None:
    """Copy the staged files into `output` (local or fsspec), each replacing its earlier version."""
    destination = get_datafolder(output)
    for name in sorted(p.name for p in staging.iterdir()):
        with (staging / name).open("rb") as source, destination.open(name, "wb") as target:
            shutil.copyfileobj(source, target, 1 << 20)


def build_report(config: ReportConfig) -> ReportData:
    """Write the report tables, summary.json and summary.html; returns the small aggregates.

    Raises InputError, before writing anything, for a folder that holds no scan.
    """
    scans = load_scans(config.scans)
    output = config.output_folder()
    from audit.summary_html import render_html  # matplotlib: imported only once the inputs are known good

    con = connect([s.folder.fs for s in scans], config.memory_limit)
    create_views(con, scans)
    with tempfile.TemporaryDirectory(prefix="portrayal-report-") as tmp:
        staging = Path(tmp)
        for table, sql in queries(config).items():
            target = str(staging / f"{table}.parquet").replace("'", "''")
            con.execute(f"COPY ({sql}) TO '{target}' (FORMAT parquet, COMPRESSION zstd)")

        con.execute("SET preserve_insertion_order = true")  # read the small tables back in their written order

        def read(table: str, where: str = "true", order: str = "") -> list[dict]:
            path = str(staging / f"{table}.parquet").replace("'", "''")
            return _rows(con, f"SELECT * FROM read_parquet('{path}') WHERE {where} {order}")

        labels = read("labels")
        data = ReportData(
            summary=_summary(con, scans, labels),
            labels=labels,
            top_by_flagged=read(
                "domains", f"rank_by_flagged <= {config.top} AND flagged > 0", "ORDER BY rank_by_flagged"
            ),
            top_by_rate=read("domains", f"rank_by_rate <= {config.top} AND flagged > 0", "ORDER BY rank_by_rate"),
            shards=read("shards", order=f"LIMIT {config.top}"),
            scores=read("scores"),
            status=read("status"),
            examples=read("examples"),
        )
        (staging / "summary.json").write_text(json.dumps(asdict(data), indent=2, default=str) + "\n")
        (staging / "summary.html").write_text(render_html(data), encoding="utf-8")
        _publish(staging, output)
    con.close()
    data.summary["output"] = output
    return data


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def format_summary(data: ReportData, top: int = 5) -> str:
    """The plain-text summary the CLI prints."""
    s = data.summary
    models = ", ".join(sorted({f"{m['model_version']} at threshold {m['threshold']}" for m in s["scans"]}))
    lines = [
        f"{len(s['scans'])} scan(s), model {models}"
        + (" (MIXED MODELS: compare with care)" if s["mixed_models"] else ""),
        f"{s['documents']:,} documents, {s['chars']:,} characters "
        f"(~{s['est_tokens']:,} est. tokens = chars/{CHARS_PER_TOKEN}); "
        f"{s['unreadable_records']:,} unreadable records, {s['file_errors']:,} file errors",
        f"flagged ({MALEVOLENT}): {s['flagged']:,} documents ({percent(s['flagged_share_documents'])}), "
        f"{s['flagged_chars']:,} characters ({percent(s['flagged_share_chars'])})",
        "",
        f"{'label':<20}{'documents':>12}{'share':>8}{'characters':>16}{'share':>8}{'est_tokens':>14}",
    ]
    for row in data.labels:
        lines.append(
            f"{row['label']:<20}{row['documents']:>12,}{percent(row['share_documents']):>8}"
            f"{row['chars']:>16,}{percent(row['share_chars']):>8}{row['est_tokens']:>14,}"
        )
    lines.append("")
    if data.top_by_rate:
        lines.append(f"top domains by flagged rate (ranked by the Wilson 95% lower bound; {s['domains']:,} domains):")
        for row in data.top_by_rate[:top]:
            lines.append(
                f"  {row['domain']:<32}{row['flagged']:>5,} of {row['documents']:<6,}{percent(row['flagged_rate']):>7}"
                f"  [{percent(row['wilson_low'])}, {percent(row['wilson_high'])}]"
            )
    else:
        lines.append(f"no flagged document has a domain ({s['documents_without_domain']:,} documents have no URL)")
    lines.append(f"wrote {s['output']}/: {', '.join(f'{t}.parquet' for t in TABLES)}, summary.json, summary.html")
    return "\n".join(lines)
