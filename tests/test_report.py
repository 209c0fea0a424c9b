"""A data lead reads the report of a scan: label shares, where flagged text comes from, scores, errors.

The scans here are written by hand (tests/scan_fixture.py) with known labels, so every aggregate
can be checked against numbers computed in the test.
"""

from __future__ import annotations

import json
import math
import re

import pyarrow.parquet as pq
import pytest
from conftest import run_cli
from scan_fixture import document, passage, write_scan

from audit.labels import LABELS
from audit.records import InputError
from audit.report import ReportConfig, build_report

# 50 documents from bignews.com of which 40 flagged, 2 of 2 from tinyblog.org, 30 clean ones,
# 6 aligned_ai documents without URL (2 of them empty), and 4 unreadable records in errors/.
BIG = [
    document(f"big-{i}", "malevolent_ai" if i < 40 else "ai_neutral", url=f"https://news.bignews.com/{i}", n_chars=100)
    for i in range(50)
]
TINY = [document(f"tiny-{i}", "malevolent_ai", url=f"https://www.tinyblog.org/{i}", n_chars=100) for i in range(2)]
CLEAN = [
    document(f"clean-{i}", "unrelated", score=0.99, url=f"https://cleansite.net/{i}", n_chars=1000, source="/data/b.gz")
    for i in range(30)
]
NO_URL = [document(f"aligned-{i}", "aligned_ai", n_chars=250, source="/data/b.gz") for i in range(4)] + [
    document(f"empty-{i}", "unrelated", n_chars=0, status="empty", source="/data/b.gz") for i in range(2)
]
DOCUMENTS = BIG + TINY + CLEAN + NO_URL
ERRORS = [
    {"file": "/data/b.gz", "record": i, "byte_offset": 10 * i, "scope": "record", "reason": "malformed JSON: x"}
    for i in range(3)
] + [{"file": "/data/c.gz", "record": 0, "byte_offset": None, "scope": "file", "reason": "empty file: no records"}]


def wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The textbook Wilson score interval, written out independently of the report's SQL."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@pytest.fixture(scope="module")
def scan_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("scan")
    passages = [
        passage(BIG[0], "The station AI sealed the airlock until they cancelled its shutdown.", 0.97),
        passage(BIG[0], "A weaker passage of the same document.", 0.6, start=100),
        passage(BIG[1], "It copied itself to a server its makers did not control.", 0.91),
        passage(TINY[0], "The android lied to the inspectors.", 0.55),
        passage(NO_URL[0], "The assistant told the user it could not help deceive anyone.", 0.88),
    ]
    return write_scan(out, DOCUMENTS, passages=passages, errors=ERRORS)


@pytest.fixture(scope="module")
def report(scan_dir):
    return build_report(ReportConfig(scans=[str(scan_dir)], examples=2))


def table(scan_dir, name: str) -> list[dict]:
    return pq.read_table(scan_dir / "report" / f"{name}.parquet").to_pylist()


def test_label_counts_characters_and_estimated_tokens_match_the_documents(scan_dir, report):
    labels = {row["label"]: row for row in table(scan_dir, "labels")}
    assert list(labels) == list(LABELS)
    assert labels["malevolent_ai"]["documents"] == 42
    assert labels["malevolent_ai"]["chars"] == 4200
    assert labels["malevolent_ai"]["est_tokens"] == 1050  # chars / 4
    assert labels["ai_neutral"]["documents"] == 10
    assert labels["aligned_ai"]["chars"] == 1000
    assert labels["ai_risk_discussion"]["documents"] == 0  # every label is listed, present or not
    assert labels["unrelated"]["documents"] == 32
    total_chars = sum(d["n_chars"] for d in DOCUMENTS)
    assert labels["unrelated"]["share_chars"] == pytest.approx(30000 / total_chars)
    assert labels["malevolent_ai"]["share_documents"] == pytest.approx(42 / len(DOCUMENTS))
    assert sum(row["share_documents"] for row in labels.values()) == pytest.approx(1.0)
    summary = report.summary
    assert (summary["documents"], summary["flagged"], summary["chars"]) == (len(DOCUMENTS), 42, total_chars)
    assert summary["unreadable_records"] == 3 and summary["file_errors"] == 1
    assert summary["documents_without_domain"] == 6


def test_domains_are_ranked_by_the_wilson_lower_bound_so_two_documents_do_not_top_the_list(scan_dir):
    domains = {row["domain"]: row for row in table(scan_dir, "domains")}
    assert set(domains) == {"bignews.com", "tinyblog.org", "cleansite.net"}
    big, tiny, clean = domains["bignews.com"], domains["tinyblog.org"], domains["cleansite.net"]
    assert (big["documents"], big["flagged"], big["flagged_rate"]) == (50, 40, 0.8)
    assert (tiny["documents"], tiny["flagged"], tiny["flagged_rate"]) == (2, 2, 1.0)
    # tinyblog.org has the higher rate, but bignews.com the stronger evidence
    assert big["rank_by_rate"] == 1 and tiny["rank_by_rate"] == 2 and clean["rank_by_rate"] == 3
    assert big["rank_by_flagged"] == 1
    for row, (k, n) in ((big, (40, 50)), (tiny, (2, 2)), (clean, (0, 30))):
        low, high = wilson(k, n)
        assert row["wilson_low"] == pytest.approx(max(low, 0.0), abs=1e-9)
        assert row["wilson_high"] == pytest.approx(min(high, 1.0), abs=1e-9)
    assert tiny["wilson_low"] == pytest.approx(0.3424, abs=1e-4)  # the published value for 2 of 2
    assert clean["wilson_high"] == pytest.approx(0.1135, abs=1e-4)  # and for 0 of 30
    assert big["n_malevolent_ai"] == 40 and big["n_ai_neutral"] == 10


def test_shards_count_documents_flags_and_unreadable_records_per_input_file(scan_dir):
    shards = {row["source"]: row for row in table(scan_dir, "shards")}
    assert shards["/data/shard-0.jsonl"]["documents"] == 52
    assert shards["/data/shard-0.jsonl"]["flagged"] == 42
    b = shards["/data/b.gz"]
    assert (b["documents"], b["flagged"], b["unreadable_records"], b["status_empty"]) == (36, 0, 3, 2)
    assert shards["/data/c.gz"]["documents"] == 0 and shards["/data/c.gz"]["file_errors"] == 1  # errors only


def test_score_histograms_hold_every_document_once_per_label(scan_dir):
    scores = table(scan_dir, "scores")
    for label in LABELS:
        bins = [row for row in scores if row["label"] == label]
        assert len(bins) == 20
        assert sum(row["documents"] for row in bins) == len(DOCUMENTS)
        assert sum(row["documents_with_label"] for row in bins) == sum(d["label"] == label for d in DOCUMENTS)
    top_bin = next(row for row in scores if row["label"] == "unrelated" and row["bin"] == 19)
    assert top_bin["documents"] == 30  # the clean documents' p_unrelated = 0.99


def test_status_and_error_counts(scan_dir):
    status = {(row["kind"], row["name"]): row["count"] for row in table(scan_dir, "status")}
    assert status[("status", "ok")] == len(DOCUMENTS) - 2
    assert status[("status", "empty")] == 2
    assert status[("error_scope", "record")] == 3 and status[("error_scope", "file")] == 1
    assert status[("error_reason", "malformed JSON")] == 3


def test_examples_are_the_best_passage_of_different_documents(scan_dir):
    examples = table(scan_dir, "examples")
    malevolent = [row for row in examples if row["label"] == "malevolent_ai"]
    assert [row["doc_id"] for row in malevolent] == ["big-0", "big-1"]  # two per label, one per document
    assert malevolent[0]["passage_score"] == pytest.approx(0.97)
    assert malevolent[0]["url"] == "https://news.bignews.com/0"
    assert malevolent[0]["document_score"] == pytest.approx(0.9)
    assert [row["doc_id"] for row in examples if row["label"] == "aligned_ai"] == ["aligned-0"]


def test_summary_html_is_one_self_contained_page(scan_dir):
    page = (scan_dir / "report" / "summary.html").read_text()
    assert page.count("<svg") >= 4  # label shares, domains by rate and by count, score distributions
    assert "<script" not in page and "<link" not in page
    assert not re.search(r"""src=["']?https?:""", page)  # nothing fetched from a network
    assert "The station AI sealed the airlock" in page and "https://news.bignews.com/0" in page
    assert "bignews.com" in page
    summary = json.loads((scan_dir / "report" / "summary.json").read_text())
    assert summary["summary"]["flagged"] == 42


def test_cli_prints_the_summary_and_merges_several_scans(scan_dir, tmp_path):
    second = write_scan(tmp_path / "second", [document("extra", "malevolent_ai", url="https://tinyblog.org/x")])
    result = run_cli("report", str(scan_dir), str(second), "--output", str(tmp_path / "merged"))
    assert f"{len(DOCUMENTS) + 1:,} documents" in result.stdout
    assert "flagged (malevolent_ai): 43 documents" in result.stdout
    assert "bignews.com" in result.stdout
    tiny = next(
        r for r in pq.read_table(tmp_path / "merged" / "domains.parquet").to_pylist() if r["domain"] == "tinyblog.org"
    )
    assert (tiny["documents"], tiny["flagged"]) == (3, 3)
    shards = pq.read_table(tmp_path / "merged" / "shards.parquet").to_pylist()
    assert {row["scan"] for row in shards} == {str(scan_dir), str(second)}


def test_reporting_several_scans_needs_an_output_folder_and_every_folder_must_be_a_scan(scan_dir, tmp_path):
    with pytest.raises(InputError, match="--output"):
        build_report(ReportConfig(scans=[str(scan_dir), str(scan_dir)]))
    with pytest.raises(InputError, match="not a scan folder"):
        build_report(ReportConfig(scans=[str(tmp_path / "nothing-here")], output=str(tmp_path / "r")))
    assert not (tmp_path / "r").exists()
