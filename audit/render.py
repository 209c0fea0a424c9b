"""Terminal renderings of query results: ranked passages with their matched region, and SQL tables.

Kept apart from the CLI so that a notebook can print the same thing (`print(render.hits(table))`).
"""

from __future__ import annotations

import csv
import io
import json
import re

import pyarrow as pa

CONTEXT_CHARS = 160  # shown on each side of the matched region
CELL_CHARS = 60  # widest cell of a printed table
MARK_OPEN, MARK_CLOSE = "»", "«"
BOLD_OPEN, BOLD_CLOSE = "\x1b[1m", "\x1b[0m"


def hits(table: pa.Table, ansi: bool = False) -> str:
    """One block per passage: rank, score, label and probability, document, place, and the text with
    its matched region marked (bold on a terminal when `ansi`, else »…«)."""
    if table.num_rows == 0:
        return "no passages matched"
    several = len(set(table.column("scan").to_pylist())) > 1
    blocks = []
    for rank, row in enumerate(table.to_pylist(), 1):
        score = "" if row["score"] is None else f"score {row['score']:.3f}  "
        label_p = row[f"p_{row['label']}"]
        head = (
            f"{rank:>2}. {score}{row['label']} (p {label_p:.2f}, "
            f"p_malevolent_ai {row['p_malevolent_ai']:.2f})  {row['doc_id']} [{row['start']}:{row['end']}]"
        )
        place = row["url"] or row["source"]
        if several:
            place = f"{row['scan']}: {place}"
        blocks.append(f"{head}\n    {place}\n    {excerpt(row, ansi)}")
    return "\n\n".join(blocks)


def excerpt(row: dict, ansi: bool = False, context: int = CONTEXT_CHARS) -> str:
    """The passage text around its matched region, on one line, the region marked."""
    text = row["text"]
    if row["match_start"] is None:
        return _one_line(text[: 2 * context]) + ("…" if len(text) > 2 * context else "")
    lo, hi = row["match_start"] - row["start"], row["match_end"] - row["start"]
    opening, closing = (BOLD_OPEN, BOLD_CLOSE) if ansi else (MARK_OPEN, MARK_CLOSE)
    before = ("…" if lo > context else "") + _one_line(text[max(0, lo - context) : lo])
    after = _one_line(text[hi : hi + context]) + ("…" if len(text) - hi > context else "")
    return f"{before}{opening}{_one_line(text[lo:hi])}{closing}{after}"


def table_text(table: pa.Table, fmt: str = "table", max_rows: int = 100) -> str:
    """`table` as an aligned text table (at most `max_rows` rows), CSV, or JSON lines."""
    rows = table.to_pylist()
    if fmt == "json":
        return "\n".join(json.dumps(row, ensure_ascii=False, default=str) for row in rows)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(table.column_names)
        writer.writerows([[_csv_cell(row[name]) for name in table.column_names] for row in rows])
        return out.getvalue().rstrip("\n")
    cells = [[_cell(row[name]) for name in table.column_names] for row in rows[:max_rows]]
    widths = [max([len(name)] + [len(r[i]) for r in cells]) for i, name in enumerate(table.column_names)]
    lines = [
        "  ".join(name.ljust(w) for name, w in zip(table.column_names, widths)).rstrip(),
        "  ".join("-" * w for w in widths),
    ]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    footer = f"({len(rows)} rows" + (
        f", first {max_rows} shown; --format csv for all)" if len(rows) > max_rows else ")"
    )
    return "\n".join([*lines, footer])


def _cell(value) -> str:
    if value is None:
        return "NULL"
    text = f"{value:.4g}" if isinstance(value, float) else _one_line(str(value))
    return text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 1] + "…"


def _csv_cell(value):
    return json.dumps(value, default=str) if isinstance(value, (list, dict)) else value


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text)
