"""`report/summary.html`: one self-contained page (inline SVG plots, inline CSS, no script, no network).

It is made to be mailed or opened from a bucket: everything it shows is inside the file.
"""

from __future__ import annotations

import html
import io
import re

import matplotlib

matplotlib.use("Agg")
matplotlib.rcParams["svg.hashsalt"] = "portrayal-audit"  # the same page for the same numbers
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)
from matplotlib.ticker import MaxNLocator  # noqa: E402

from audit.labels import LABELS, MALEVOLENT, UNRELATED  # noqa: E402
from audit.report import ReportData, percent  # noqa: E402
from audit.tokens import ESTIMATOR  # noqa: E402

COLOURS = {
    "malevolent_ai": "#c0392b",
    "ai_risk_discussion": "#d68910",
    "aligned_ai": "#1e8449",
    "ai_neutral": "#2471a3",
    "unrelated": "#566573",
}
EXCERPT_CHARS = 600

CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
.muted { color: #666; font-size: .9em; }
.cards { display: flex; gap: 1em; flex-wrap: wrap; margin: 1em 0; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: .6em 1em; min-width: 12em; }
.card b { display: block; font-size: 1.5em; }
table { border-collapse: collapse; margin: .6em 0; font-size: .92em; }
th, td { padding: .25em .7em; border-bottom: 1px solid #eee; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.example { border-left: 4px solid #ccc; padding: .3em .8em; margin: .8em 0; background: #fafafa; }
.example p { white-space: pre-wrap; margin: .3em 0; }
.plot svg { max-width: 100%; height: auto; }
.warn { background: #fdecea; padding: .5em 1em; border-radius: 6px; }
"""


def _svg(fig) -> str:
    """The figure as inline SVG markup (text drawn as paths: no fonts needed to view it)."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    svg = buffer.getvalue()
    return '<div class="plot">' + svg[svg.index("<svg") :] + "</div>"


def _label_plot(data: ReportData) -> str:
    fig, ax = plt.subplots(figsize=(8, 2.8))
    labels = [row["label"] for row in data.labels]
    y = range(len(labels))
    ax.barh([i - 0.2 for i in y], [row["share_documents"] or 0 for row in data.labels], height=0.4, label="documents")
    ax.barh([i + 0.2 for i in y], [row["share_chars"] or 0 for row in data.labels], height=0.4, label="characters")
    ax.set_yticks(list(y), labels)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("share of the corpus (log scale)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    ax.set_title("Label shares")
    return _svg(fig)


def _domain_plot(rows: list[dict], by_rate: bool) -> str:
    if not rows:
        return '<p class="muted">No flagged document has a URL, so there is no domain to rank.</p>'
    rows = rows[:15]
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(rows) + 1))
    names = [f"{r['domain']} ({r['flagged']}/{r['documents']})" for r in rows]
    if by_rate:
        rates = [r["flagged_rate"] for r in rows]
        errors = [
            [r["flagged_rate"] - r["wilson_low"] for r in rows],
            [r["wilson_high"] - r["flagged_rate"] for r in rows],
        ]
        ax.barh(names, rates, xerr=errors, color=COLOURS[MALEVOLENT], alpha=0.8, capsize=3)
        ax.set_xlim(0, 1)
        ax.set_xlabel("flagged rate, with Wilson 95% interval (ranked by its lower bound)")
        ax.set_title("Top domains by flagged rate")
    else:
        ax.barh(names, [r["flagged"] for r in rows], color=COLOURS[MALEVOLENT], alpha=0.8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("flagged documents")
        ax.set_title("Top domains by flagged documents")
    ax.invert_yaxis()
    return _svg(fig)


def _score_plot(data: ReportData) -> str:
    fig, axes = plt.subplots(1, len(LABELS), figsize=(11, 2.4), sharey=True)
    for ax, label in zip(axes, LABELS):
        rows = [r for r in data.scores if r["label"] == label]
        lefts = [r["p_low"] for r in rows]
        width = rows[0]["p_high"] - rows[0]["p_low"] if rows else 0.05
        ax.bar(lefts, [r["documents"] for r in rows], width=width, align="edge", color="#bbb", label="all documents")
        ax.bar(
            lefts,
            [r["documents_with_label"] for r in rows],
            width=width,
            align="edge",
            color=COLOURS[label],
            label="labelled with it",
        )
        ax.set_yscale("symlog", linthresh=1)
        ax.set_title(f"p_{label}", fontsize=9)
        ax.set_xlim(0, 1)
    axes[0].set_ylabel("documents")
    axes[-1].legend(fontsize=7)
    return _svg(fig)


def _table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """An HTML table of `rows`: columns are (key, heading, format spec or '%' for a percentage)."""
    head = "".join(f"<th>{html.escape(title)}</th>" for _, title, _ in columns)
    body = []
    for row in rows:
        cells = []
        for key, _, spec in columns:
            value = row.get(key)
            if value is None:
                text = ""
            elif spec == "%":
                text = f"{100 * value:.1f}%"
            else:
                text = format(value, spec)
            cells.append(f"<td>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _examples(data: ReportData) -> str:
    parts = []
    for label in LABELS:
        if label == UNRELATED:
            continue
        rows = [r for r in data.examples if r["label"] == label]
        parts.append(f'<h3 style="color:{COLOURS[label]}">{label}</h3>')
        if not rows:
            parts.append('<p class="muted">No passage has this label.</p>')
        for r in rows:
            text = r["text"] if len(r["text"]) <= EXCERPT_CHARS else r["text"][:EXCERPT_CHARS] + " …"
            where = html.escape(r["url"] or r["source"])
            web = (r["url"] or "").startswith(("http://", "https://"))
            link = f'<a href="{where}">{where}</a>' if web else where
            parts.append(
                f'<div class="example" style="border-color:{COLOURS[label]}">'
                f'<div class="muted">{link} · document <code>{html.escape(r["doc_id"])}</code> · '
                f"passage p_{label} {r['passage_score']:.2f} · document p_{label} {r['document_score']:.2f} "
                f"(document labelled {r['document_label']})</div><p>{html.escape(text)}</p></div>"
            )
    return "".join(parts)


def _title_css(title: str) -> str:
    css = re.sub(r"\s+", " ", CSS)
    return f'<meta charset="utf-8"><title>{html.escape(title)}</title><style>{css}</style>'


def render_html(data: ReportData) -> str:
    """The whole page, as one string."""
    s = data.summary
    models = ", ".join(sorted({f"{m['model_version']} (threshold {m['threshold']})" for m in s["scans"]}))
    warning = (
        '<p class="warn">These scans ran with different models or thresholds: their counts are not comparable.</p>'
        if s["mixed_models"]
        else ""
    )
    cards = [
        ("documents", f"{s['documents']:,}"),
        ("characters", f"{s['chars']:,}"),
        ("est. tokens", f"{s['est_tokens']:,}"),
        ("flagged documents", f"{s['flagged']:,} ({percent(s['flagged_share_documents'])})"),
        ("flagged characters", f"{s['flagged_chars']:,} ({percent(s['flagged_share_chars'])})"),
        ("unreadable records", f"{s['unreadable_records']:,}"),
    ]
    domain_columns = [
        ("domain", "domain", ""),
        ("documents", "documents", ","),
        ("flagged", "flagged", ","),
        ("flagged_rate", "rate", "%"),
        ("wilson_low", "Wilson low", "%"),
        ("wilson_high", "Wilson high", "%"),
    ]
    return f"""<!doctype html>
<html lang="en"><head>{_title_css("portrayal-audit report")}</head><body>
<h1>How this corpus portrays AI</h1>
<p class="muted">{len(s["scans"])} scan(s): {html.escape(", ".join(m["path"] for m in s["scans"]))}<br>
model {html.escape(models)}. {html.escape(ESTIMATOR)}.</p>
{warning}
<div class="cards">{"".join(f"<div class='card'>{name}<b>{value}</b></div>" for name, value in cards)}</div>
<h2>Labels</h2>
{_label_plot(data)}
{
        _table(
            data.labels,
            [
                ("label", "label", ""),
                ("documents", "documents", ","),
                ("share_documents", "share", "%"),
                ("chars", "characters", ","),
                ("share_chars", "share", "%"),
                ("est_tokens", "est. tokens", ","),
            ],
        )
    }
<h2>Where flagged documents come from</h2>
<p class="muted">{s["domains"]:,} registered domains; {s["documents_without_domain"]:,} documents have no URL.
Ranking by rate uses the lower bound of the Wilson 95% interval, so a domain with 2 documents does not top it.</p>
{_domain_plot(data.top_by_rate, by_rate=True)}
{_table(data.top_by_rate, domain_columns)}
{_domain_plot(data.top_by_flagged, by_rate=False)}
<h2>Input shards</h2>
{
        _table(
            data.shards,
            [
                ("source", "source", ""),
                ("documents", "documents", ","),
                ("flagged", "flagged", ","),
                ("flagged_rate", "rate", "%"),
                ("chars", "characters", ","),
                ("unreadable_records", "unreadable", ","),
                ("file_errors", "file errors", ","),
            ],
        )
    }
<h2>Scores</h2>
<p class="muted">Documents by their probability of each label (grey: all documents; colour: those labelled with it).</p>
{_score_plot(data)}
<h2>Status and errors</h2>
{_table(data.status, [("kind", "kind", ""), ("name", "name", ""), ("count", "count", ",")])}
<h2>Example passages</h2>
<p class="muted">The highest-scoring passage of different documents, per label.</p>
{_examples(data)}
</body></html>
"""
