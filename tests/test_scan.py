"""A user scans real corpora and reads the contract's outputs."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from conftest import SAMPLE, read_documents, read_stats, run_cli
from warcio.archiveiterator import ArchiveIterator

from audit.labels import LABELS, PROB_COLUMNS
from audit.schema import DOCUMENT_SCHEMA, PASSAGE_SCHEMA

CONTRACT_COLUMNS = [
    "id",
    "source",
    "url",
    "domain",
    "label",
    *PROB_COLUMNS,
    "flagged",
    "spans",
    "n_chars",
    "status",
]


def count_jsonl_records(path: Path) -> int:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as handle:
        return sum(1 for line in handle if line.strip())


def count_warc_documents(folder: Path) -> int:
    """Responses, resources and conversions: the WARC records that are documents."""
    total = 0
    for path in folder.iterdir():
        with path.open("rb") as handle:
            total += sum(r.rec_type in ("response", "resource", "conversion") for r in ArchiveIterator(handle))
    return total


def test_scan_of_shared_web_data_has_contract_columns_and_one_row_per_record(shared_data, tmp_path):
    web = shared_data / "web"
    out = tmp_path / "out"
    result = run_cli(
        "scan",
        str(web / "combined_web_docs.jsonl.gz"),
        str(web / "dolma-cc-shard.jsonl.gz"),
        str(web / "warc"),
        "--output",
        str(out),
        "--workers",
        "2",
    )
    documents = read_documents(out)
    assert documents.column_names == CONTRACT_COLUMNS
    assert documents.schema.equals(DOCUMENT_SCHEMA, check_metadata=False)
    jsonl_records = count_jsonl_records(web / "combined_web_docs.jsonl.gz") + count_jsonl_records(
        web / "dolma-cc-shard.jsonl.gz"
    )
    rows = documents.to_pylist()
    assert len([r for r in rows if not r["source"].endswith((".warc.gz", ".wet.gz"))]) == jsonl_records
    warc_rows = [r for r in rows if r["source"].endswith((".warc.gz", ".wet.gz"))]
    assert len(warc_rows) == count_warc_documents(web / "warc")
    assert len({r["id"] for r in rows}) == len(rows)
    for row in rows:
        assert row["label"] in LABELS
        assert abs(sum(row[c] for c in PROB_COLUMNS) - 1.0) < 1e-4
        assert row["flagged"] == (row["label"] == "malevolent_ai")
        assert row["n_chars"] >= 0
    with_url = [r for r in rows if r["url"]]
    assert with_url and all(r["domain"] for r in with_url if r["url"].startswith("http"))
    stats = read_stats(out)
    assert stats["records"]["total"] == len(rows) == stats["records"]["documents"]
    assert sum(stats["labels"].values()) == len(rows)
    read_by_readers = sum(step.get("records", 0) for name, step in stats["steps"].items() if "READER" in name)
    assert read_by_readers == len(rows)
    assert "documents" in result.stdout and "records" in result.stdout


def test_demo_sample_corpus_scans_with_passages_and_spans(tmp_path):
    out = tmp_path / "demo"
    run_cli("scan", str(SAMPLE), "--output", str(out), "--workers", "1", "--quiet")
    documents = read_documents(out).to_pylist()
    flagged = [d for d in documents if d["flagged"]]
    assert flagged, "the sample corpus holds malevolent-AI stories; some must be flagged"
    passages = pq.read_table(sorted((out / "passages").glob("*.parquet")))
    assert passages.schema.equals(PASSAGE_SCHEMA, check_metadata=False)
    assert "unrelated" not in set(passages.column("label").to_pylist())
    for doc in flagged[:5]:
        assert any(span["label"] == "malevolent_ai" for span in doc["spans"])
    for row in passages.to_pylist()[:50]:
        assert row["end"] - row["start"] == len(row["text"])


def test_parquet_input_with_custom_text_and_id_keys(web_docs, tmp_path):
    table = pa.table({"body": [d["text"] for d in web_docs[:40]] + [None], "doc": [f"d{i}" for i in range(41)]})
    pq.write_table(table, tmp_path / "shard.parquet")
    out = tmp_path / "out"
    run_cli("scan", str(tmp_path / "shard.parquet"), "-o", str(out), "--text-key", "body", "--id-key", "doc", "-q")
    rows = {r["id"]: r for r in read_documents(out).to_pylist()}
    assert set(rows) == {f"d{i}" for i in range(41)}
    assert rows["d40"]["status"] == "no_text"
    assert rows["d0"]["status"] == "ok" and rows["d0"]["n_chars"] == len(web_docs[0]["text"])


def test_zstd_jsonl_and_limit(web_docs, tmp_path):
    import zstandard

    lines = "".join(json.dumps({"id": f"z{i}", "text": d["text"]}) + "\n" for i, d in enumerate(web_docs[:30]))
    (tmp_path / "part.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(lines.encode()))
    run_cli("scan", str(tmp_path / "part.jsonl.zst"), "-o", str(tmp_path / "all"), "-q")
    assert read_documents(tmp_path / "all").num_rows == 30
    run_cli("scan", str(tmp_path / "part.jsonl.zst"), "-o", str(tmp_path / "five"), "--limit", "5", "-q")
    assert sorted(read_documents(tmp_path / "five").column("id").to_pylist()) == [f"z{i}" for i in range(5)]


def test_rerun_resumes_and_refuses_to_mix_other_settings(web_docs, tmp_path):
    shard = tmp_path / "in.jsonl"
    shard.write_text("".join(json.dumps({"id": str(i), "text": d["text"]}) + "\n" for i, d in enumerate(web_docs[:30])))
    out = tmp_path / "out"
    run_cli("scan", str(shard), "-o", str(out), "-q")
    first = sorted(read_documents(out).to_pylist(), key=lambda r: r["id"])
    second_run = run_cli("scan", str(shard), "-o", str(out))
    assert "1 of 1 tasks already finished, skipping them" in second_run.stderr
    assert sorted(read_documents(out).to_pylist(), key=lambda r: r["id"]) == first
    mixed = run_cli("scan", str(shard), "-o", str(out), "--threshold", "0.33", check=False)
    assert mixed.returncode == 2 and "--overwrite" in mixed.stderr and "Traceback" not in mixed.stderr
    run_cli("scan", str(shard), "-o", str(out), "--threshold", "0.33", "--overwrite", "-q")
    assert read_stats(out)["model"]["threshold"] == 0.33


def test_fsspec_urls_for_input_and_output(web_docs):
    import fsspec
    from click.testing import CliRunner

    from audit.cli import main

    fs = fsspec.filesystem("memory")
    with fs.open("/corpus/part-0.jsonl", "w") as handle:
        handle.write(
            "".join(json.dumps({"id": f"m{i}", "text": d["text"]}) + "\n" for i, d in enumerate(web_docs[:25]))
        )
    result = CliRunner().invoke(main, ["scan", "memory://corpus/", "-o", "memory://scan-out", "--workers", "1", "-q"])
    assert result.exit_code == 0, result.output
    paths = fs.glob("/scan-out/documents/*.parquet")
    with fs.open(paths[0], "rb") as handle:
        table = pq.read_table(handle)
    assert sorted(table.column("id").to_pylist()) == sorted(f"m{i}" for i in range(25))
    assert json.loads(fs.cat("/scan-out/stats.json"))["records"]["total"] == 25
