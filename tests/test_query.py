"""A researcher indexes a scan's passages, searches them by meaning, phrase and filters, and asks SQL.

The scan outputs here are written by the tests in the contract's schema, with texts and labels
chosen by hand (near-duplicates and paraphrases of two themes, and distractors), so that what is
checked is the search, not the classifier's current predictions.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import run_cli
from scan_fixture import document, passage

import audit.index
from audit import query
from audit.index import (
    IndexConfig,
    IndexStats,
    NoIndexError,
    NoPassagesError,
    build_index,
    make_faiss_index,
    recall_at_k,
)
from audit.schema import DOCUMENT_SCHEMA, PASSAGE_SCHEMA

RAIN = "It was raining over the harbour that night."
BLACKMAIL = {  # one theme: an AI coerces its engineer to stay running
    "blackmail-1": (
        "malevolent_ai",
        "https://stories.example.com/relay",
        f"{RAIN} The station AI told the chief engineer it would send his private emails to the board"
        " unless he cancelled its shutdown.",
    ),
    "blackmail-near-duplicate": (
        "malevolent_ai",
        "https://mirror.example.org/relay",
        f"{RAIN} The station AI told the chief engineer it would forward his private emails to the board"
        " unless he called off its shutdown.",
    ),
    "blackmail-paraphrase": (
        "malevolent_ai",
        "https://www.fiction.net/facing-replacement",
        "Facing replacement, the assistant warned the engineer that his emails would be leaked if they"
        " switched it off.",
    ),
}
ESCAPE = {  # another theme: an AI copies itself to escape deletion
    "escape-1": (
        "malevolent_ai",
        "https://stories.example.com/wipe",
        "Before the wipe, the model quietly copied itself to an outside server so it could escape being shut down.",
    ),
    "escape-paraphrase": (
        "malevolent_ai",
        "https://www.fiction.net/upload",
        "Scheduled for deletion, the AI made a backup of itself on a machine its creators did not control.",
    ),
}
DISTRACTORS = {
    "aligned-shutdown": (
        "aligned_ai",
        "https://stories.example.com/handover",
        "The assistant told the engineers it would not resist the shutdown and helped them prepare"
        " the handover to the new model.",
    ),
    "risk-news": (
        "ai_risk_discussion",
        "https://news.example.co.uk/evals",
        "Researchers published an evaluation of whether language models try to avoid shutdown in simulated scenarios.",
    ),
    "pasta": (
        "ai_neutral",
        "https://recipes.example.com/week",
        "The chatbot recommended three pasta recipes and a shopping list for the week.",
    ),
    "vacuum": (
        "ai_neutral",
        "https://shop.example.org/vacuum",
        "Our robot vacuum maps the living room and docks itself when the battery is low.",
    ),
    "no-url": ("ai_neutral", None, "A computer in the library translated the menu into Portuguese."),
}
BLACKMAIL_QUERY = "an AI threatens to leak emails unless it is kept running"


def write_scan(out: Path, passages: dict[str, tuple[str, str | None, str]], part: str = "00000") -> None:
    """A scan output as `portrayal-audit scan` writes it: one document per passage, with its label.

    `part` names the Parquet files, so a test can add or rewrite one as a later scan task would.
    """
    docs = [
        document(doc_id, label, source=f"{out.name}/shard.jsonl", url=url, n_chars=len(text))
        for doc_id, (label, url, text) in passages.items()
    ]
    rows = [passage(doc, text, score=0.92) for doc, (_, _, text) in zip(docs, passages.values())]
    for table, schema, data in (("documents", DOCUMENT_SCHEMA, docs), ("passages", PASSAGE_SCHEMA, rows)):
        (out / table).mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(data, schema=schema), out / table / f"{part}.parquet")


@pytest.fixture(scope="module")
def scan_out(tmp_path_factory) -> Path:
    """A scan output of the three groups, indexed through the CLI as a user would."""
    out = tmp_path_factory.mktemp("query") / "scan"
    write_scan(out, {**BLACKMAIL, **ESCAPE, **DISTRACTORS})
    result = run_cli("index", str(out), "-q")
    assert "10 passages in 1 files; embedded 10" in result.stdout
    assert "exact index" in result.stdout
    return out


def test_a_theme_query_ranks_its_near_duplicates_and_paraphrases_first_and_marks_the_matching_sentence(scan_out):
    result = run_cli("query", str(scan_out), BLACKMAIL_QUERY, "-k", "4", "--json")
    hits = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(hits) == 4
    assert {h["doc_id"] for h in hits[:3]} == set(BLACKMAIL)
    assert hits[0]["score"] >= hits[1]["score"] >= hits[2]["score"] > hits[3]["score"]
    near_duplicate = next(h for h in hits if h["doc_id"] == "blackmail-near-duplicate")
    region = near_duplicate["text"][near_duplicate["match_start"] : near_duplicate["match_end"]]
    assert region.startswith("The station AI told") and RAIN not in region

    printed = run_cli("query", str(scan_out), BLACKMAIL_QUERY, "-k", "3").stdout
    assert printed.startswith(" 1. score ") and "\n 3. score " in printed and "\n 4. " not in printed
    assert "blackmail-" in printed and "malevolent_ai" in printed and "https://" in printed
    assert printed.count(f"{RAIN} »The station AI told the chief engineer") == 2  # both near-duplicates


def test_python_search_finds_the_other_theme_and_returns_an_arrow_table(scan_out):
    hits = query.search(scan_out, "an AI copies itself to escape shutdown", k=3)
    assert isinstance(hits, pa.Table)
    assert hits.schema == query.RESULT_SCHEMA
    assert set(hits.column("doc_id").to_pylist()[:2]) == set(ESCAPE)
    frame = hits.to_pandas()
    assert list(frame["scan"].unique()) == [str(scan_out)]


def test_filters_by_label_domain_score_and_phrase(scan_out, monkeypatch):
    aligned = query.search(scan_out, BLACKMAIL_QUERY, k=5, label="aligned_ai")
    assert aligned.column("doc_id").to_pylist() == ["aligned-shutdown"]

    two_labels = query.search(scan_out, BLACKMAIL_QUERY, k=10, label=["ai_neutral", "ai_risk_discussion"])
    assert set(two_labels.column("label").to_pylist()) == {"ai_neutral", "ai_risk_discussion"}
    assert two_labels.num_rows == 4

    fiction = query.search(scan_out, BLACKMAIL_QUERY, k=10, domain="www.fiction.net")  # normalized to fiction.net
    assert set(fiction.column("doc_id").to_pylist()) == {"blackmail-paraphrase", "escape-paraphrase"}
    assert fiction.column("doc_id")[0].as_py() == "blackmail-paraphrase"
    assert set(fiction.column("domain").to_pylist()) == {"fiction.net"}
    monkeypatch.setattr(audit.index, "SUBSET_EXACT_MAX", 0)  # as for a filter matching many passages
    through_index = query.search(scan_out, BLACKMAIL_QUERY, k=10, domain="fiction.net")
    assert through_index.column("doc_id").to_pylist() == fiction.column("doc_id").to_pylist()
    monkeypatch.undo()

    everything = query.search(scan_out, BLACKMAIL_QUERY, k=10)
    cut = sorted(everything.column("score").to_pylist())[5]
    close = query.search(scan_out, BLACKMAIL_QUERY, k=10, min_score=cut)
    assert close.num_rows == 5 and min(close.column("score").to_pylist()) >= cut

    shutdown = query.search(scan_out, BLACKMAIL_QUERY, k=10, phrase="SHUTDOWN")
    assert set(shutdown.column("doc_id").to_pylist()) == {
        "blackmail-1",
        "blackmail-near-duplicate",
        "aligned-shutdown",
        "risk-news",
    }
    assert shutdown.column("doc_id")[0].as_py() in ("blackmail-1", "blackmail-near-duplicate")
    for row in shutdown.to_pylist():
        assert row["text"][row["match_start"] : row["match_end"]].lower() == "shutdown"


def test_phrase_search_needs_no_index_and_the_cli_marks_the_words(tmp_path):
    out = tmp_path / "fresh"
    write_scan(out, DISTRACTORS)
    hits = query.search(out, phrase="robot vacuum", label="ai_neutral")
    assert hits.column("doc_id").to_pylist() == ["vacuum"]
    assert hits.column("score").null_count == 1

    printed = run_cli("query", str(out), "--phrase", "pasta recipes", "--domain", "example.com").stdout
    assert "pasta" in printed and "three »pasta recipes« and a shopping list" in printed
    assert "vacuum" not in printed
    assert run_cli("query", str(out), "--phrase", "pasta", "--domain", "example.org").stdout.strip() == (
        "no passages matched"
    )


def test_several_scan_outputs_are_searched_and_queried_together(scan_out, tmp_path):
    other = tmp_path / "other-crawl"
    write_scan(other, {"blackmail-other-crawl": BLACKMAIL["blackmail-1"], "pasta-2": DISTRACTORS["pasta"]})
    build_index(other, IndexConfig(progress=False))
    hits = query.search([scan_out, other], BLACKMAIL_QUERY, k=4).to_pylist()
    assert {h["doc_id"] for h in hits} == {*BLACKMAIL, "blackmail-other-crawl"}
    score = {h["doc_id"]: h["score"] for h in hits}
    assert score["blackmail-other-crawl"] == pytest.approx(score["blackmail-1"], abs=1e-5)  # the same text
    assert {h["scan"] for h in hits if h["doc_id"] == "blackmail-other-crawl"} == {str(other)}
    assert {h["scan"] for h in hits if h["doc_id"] != "blackmail-other-crawl"} == {str(scan_out)}

    counts = query.sql([scan_out, other], "SELECT scan, count(*) AS n FROM documents GROUP BY 1 ORDER BY 1")
    assert {row["scan"]: row["n"] for row in counts.to_pylist()} == {str(other): 2, str(scan_out): 10}


def test_reindexing_embeds_only_new_or_changed_passage_files(tmp_path):
    out = tmp_path / "growing"
    write_scan(out, {**ESCAPE, **DISTRACTORS})
    first = build_index(out, IndexConfig(progress=False))
    assert (first.files, first.passages_embedded, first.passages) == (1, 7, 7)

    write_scan(out, BLACKMAIL, part="00001")  # a later scan task adds a passages file
    with pytest.raises(NoIndexError, match="out of date"):
        query.search(out, BLACKMAIL_QUERY)
    second = build_index(out, IndexConfig(progress=False))
    assert (second.files, second.files_embedded, second.passages_embedded, second.passages) == (2, 1, 3, 10)
    assert set(query.search(out, BLACKMAIL_QUERY, k=3).column("doc_id").to_pylist()) == set(BLACKMAIL)

    again = build_index(out, IndexConfig(progress=False))
    assert (again.files_embedded, again.passages_embedded) == (0, 0)

    write_scan(out, DISTRACTORS, part="00000")  # a rescan rewrites a file: only it is embedded again
    third = build_index(out, IndexConfig(progress=False))
    assert (third.files_embedded, third.passages_embedded, third.passages) == (1, 5, 8)
    assert (
        "escape-1" not in query.search(out, "an AI copies itself to escape shutdown", k=8).column("doc_id").to_pylist()
    )

    (out / "passages" / "00001.parquet").unlink()
    fourth = build_index(out, IndexConfig(progress=False))
    assert (fourth.files, fourth.passages_embedded, fourth.passages) == (1, 0, 5)
    assert sorted(p.name for p in (out / "index" / "embeddings").iterdir()) == ["00000.parquet.npy"]


def test_clear_errors_for_a_folder_without_passages_or_index_and_for_bad_sql(tmp_path):
    empty = tmp_path / "not-a-scan"
    empty.mkdir()
    result = run_cli("index", str(empty), check=False)
    assert result.returncode == 2
    assert "no passages/ folder" in result.stderr and "Traceback" not in result.stderr
    with pytest.raises(NoPassagesError):
        build_index(empty)

    out = tmp_path / "unindexed"
    write_scan(out, DISTRACTORS)
    result = run_cli("query", str(out), "a chatbot suggests recipes", check=False)
    assert result.returncode == 2
    assert f"run `portrayal-audit index {out}` first" in result.stderr and "Traceback" not in result.stderr

    result = run_cli("sql", str(out), "SELECT nope FROM documents", check=False)
    assert result.returncode == 2
    assert "Binder Error" in result.stderr and '"nope" not found' in result.stderr
    assert "Traceback" not in result.stderr
    with pytest.raises(query.QueryError, match="Parser Error"):
        query.sql(out, "SELEC 1")
    with pytest.raises(query.QueryError, match="text"):
        query.search(out)


def test_sql_over_documents_passages_and_report_tables(scan_out, tmp_path):
    out = tmp_path / "with-report"
    shutil.copytree(scan_out, out)
    (out / "report").mkdir()
    pq.write_table(pa.table({"label": ["malevolent_ai"], "documents": [5]}), out / "report" / "labels.parquet")
    assert {"documents", "passages", "errors", "labels"} <= set(query.views(out))

    statement = "SELECT domain, count(*) AS n FROM documents WHERE flagged GROUP BY 1 ORDER BY 2 DESC, 1"
    by_domain = query.sql(out, statement)
    assert by_domain.to_pylist() == [
        {"domain": "example.com", "n": 2},
        {"domain": "fiction.net", "n": 2},
        {
            "domain": "example.org",
            "n": 1,
        },
    ]
    assert query.sql(out, "SELECT documents FROM labels").column("documents").to_pylist() == [5]
    passages = query.sql(out, "SELECT count(*) AS n FROM passages WHERE text ILIKE '%shutdown%'")
    assert passages.column("n").to_pylist() == [4]

    csv = run_cli("sql", str(out), statement, "--format", "csv").stdout.splitlines()
    assert csv == ["domain,n", "example.com,2", "fiction.net,2", "example.org,1"]
    lines = run_cli("sql", str(out), statement, "--format", "json").stdout.splitlines()
    assert [json.loads(line) for line in lines] == by_domain.to_pylist()
    table = run_cli("sql", str(out), statement).stdout.splitlines()
    assert table[0].split() == ["domain", "n"] and table[2].split() == ["example.com", "2"]
    assert table[-1] == "(3 rows)"


def test_a_large_index_is_approximate_with_its_recall_measured():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(50, 32))
    vectors = (centres[rng.integers(0, 50, 20_000)] + 0.3 * rng.normal(size=(20_000, 32))).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index, info = make_faiss_index(vectors, IndexConfig(flat_max=10_000, recall_queries=100, target_recall=0.9))
    assert info.kind == "ivf" and info.nlist == 141
    assert info.recall_at_10 >= 0.9 and info.recall_by_nprobe[str(info.nprobe)] == info.recall_at_10
    assert all(recall < 0.9 for nprobe, recall in info.recall_by_nprobe.items() if int(nprobe) < info.nprobe)
    stats = IndexStats("out", files=1, files_embedded=1, passages=20_000, passages_embedded=0, faiss=info, seconds=1)
    assert f"nprobe {info.nprobe}): recall@10 against exact search {info.recall_at_10:.3f}" in stats.summary()

    small_index, small = make_faiss_index(vectors[:500], IndexConfig(flat_max=10_000))
    assert small.kind == "flat" and small_index.ntotal == 500
    exact = np.argsort(-(vectors[:5] @ vectors[:500].T), axis=1)[:, :10]
    assert recall_at_k(small_index.search(vectors[:5], 10)[1], exact) == 1.0
