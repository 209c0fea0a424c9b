"""A training engineer turns a scan into per-document weights with a policy, then writes the reweighted
corpus and checks it against the manifest.

The scans are written by hand (tests/scan_fixture.py) over a real input corpus written by the test, so
the weights and counts are known; one test runs the whole chain on a real scan.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import read_documents, run_cli
from scan_fixture import document, probabilities, write_scan

from audit import ScanConfig, scan
from audit.apply import ApplyConfig, apply_manifest, check_output
from audit.manifest import ManifestConfig, build_manifest, copies
from audit.policy import SHIPPED, PolicyError, load_policy, parse_policy
from audit.records import InputError
from audit.report import ReportConfig, build_report

LABEL_OF = ["malevolent_ai", "aligned_ai", "unrelated", "ai_neutral"]  # by record index mod 4


def corpus_records(n: int) -> list[dict]:
    return [{"id": f"doc-{i}", "text": f"Document {i}. " + "word " * (i % 7 + 1), "url": None} for i in range(n)]


def scan_of(records: list[dict], source: Path, out: Path, score=lambda i: 0.9) -> Path:
    """A scan folder whose documents are `records` of `source`, labelled by LABEL_OF."""
    docs = [
        document(
            r["id"],
            LABEL_OF[i % 4],
            source=str(source),
            n_chars=len(r["text"]),
            probs=probabilities(LABEL_OF[i % 4], score(i)),
        )
        for i, r in enumerate(records)
    ]
    return write_scan(out, docs, model_version="model-under-test", threshold=0.45)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """400 JSONL.gz records (plus a malformed line and a record no scan saw) and a scan of the 400."""
    root = tmp_path_factory.mktemp("corpus")
    records = corpus_records(400)
    source = root / "input" / "shard.jsonl.gz"
    source.parent.mkdir()
    with gzip.open(source, "wt") as handle:
        for i, record in enumerate(records):
            handle.write(json.dumps(record) + "\n")
            if i == 10:
                handle.write('{"id": "broken", "text": \n')  # unreadable: counted, never fatal
        handle.write(json.dumps({"id": "late-addition", "text": "Not in the scan."}) + "\n")
    scan = scan_of(records, source, root / "scan", score=lambda i: (i % 10) / 10 + 0.05)
    return {"root": root, "records": records, "source": source, "scan": scan}


def write_policy(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return path


# --- policies -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SHIPPED)
def test_the_shipped_policies_are_valid_and_documented(name):
    policy = load_policy(name)
    assert policy.name == name and policy.description
    assert policy.text.lstrip().startswith("#")  # each file explains itself
    assert all(rule.label == "malevolent_ai" or rule.weight_from or rule.weight >= 1 for rule in policy.rules)


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        (
            '[[rule]]\nlabel = "malevolent_ai"\nweight = 0\n\n[[rule]]\nlabel = "evil_ai"\nweight = 0\n',
            6,
            "unknown label",
        ),
        ('[[rule]]\nlabel = "malevolent_ai"\nweight = -0.5\n', 3, "negative weight"),
        (
            '[[rule]]\nlabel = "aligned_ai"\nmin_p = 0.5\nweight = 2\n\n'
            '[[rule]]\nlabel = "aligned_ai"\nmax_p = 0.6\nweight = 3\n',
            6,
            "rule 2 overlaps rule 1 (line 1)",
        ),
        ('name = "oops\n[[rule]]\n', 1, "not valid TOML"),
        ('[[rule]]\nlabel = "malevolent_ai"\n\nweight = 0\nthreshold = 0.5\n', 5, "unknown key 'threshold'"),
        ('[[rule]]\nlabel = "malevolent_ai"\nweight = 1\nweight_from = "p_malevolent_ai"\n', 4, "exactly one of"),
        ('[[rule]]\nlabel = "malevolent_ai"\nweight_from = "p_malevolent_ai"\noffset = 1\nscale = -2\n', 4, "negative"),
        ("default_weight = -1\n", 1, "negative default_weight"),
        ('[[rule]]\nlabel = "ai_neutral"\nmin_p = 0.7\nmax_p = 0.2\nweight = 1\n', 4, "must be below max_p"),
    ],
)
def test_invalid_policies_are_rejected_naming_the_line_and_the_problem(text, line, problem):
    with pytest.raises(PolicyError) as error:
        parse_policy(text, "bad.toml")
    assert str(error.value).startswith(f"bad.toml:{line}: ")
    assert problem in str(error.value)


def test_ranges_that_only_touch_do_not_overlap():
    policy = parse_policy(
        '[[rule]]\nlabel = "aligned_ai"\nmax_p = 0.8\nweight = 1\n\n'
        '[[rule]]\nlabel = "aligned_ai"\nmin_p = 0.8\nweight = 2\n'
    )
    assert [(r.min_p, r.max_p) for r in policy.rules] == [(0.0, 0.8), (0.8, 1.0)]


def test_an_invalid_policy_writes_nothing(corpus, tmp_path):
    policy = write_policy(tmp_path, '[[rule]]\nlabel = "malevolent_ai"\nweight = -1\n')
    result = run_cli(
        "manifest", str(corpus["scan"]), "--policy", str(policy), "--output", str(tmp_path / "m.parquet"), check=False
    )
    assert result.returncode == 2
    assert f"{policy}:3: rule 1: negative weight -1" in result.stderr
    assert not list(tmp_path.glob("m.parquet*"))


# --- manifests ------------------------------------------------------------------------------------


def test_a_manifest_gives_each_document_the_weight_its_rule_says(corpus, tmp_path):
    policy = write_policy(
        tmp_path,
        """name = "mixed"
seed = 7
[[rule]]
label = "malevolent_ai"
weight = 0.25
[[rule]]
label = "aligned_ai"
max_p = 0.5
weight = 1.5
[[rule]]
label = "aligned_ai"
min_p = 0.5
weight = 2.5
name = "clear aligned_ai"
""",
    )
    output = tmp_path / "m.parquet"
    meta = build_manifest(ManifestConfig(scans=[str(corpus["scan"])], policy=str(policy), output=str(output))).meta
    rows = pq.read_table(output).to_pylist()
    assert len(rows) == 400 and {r["id"] for r in rows} == {r["id"] for r in corpus["records"]}
    assert pq.read_schema(output).names == ["id", "source", "weight", "label", "reason", "copies", "n_chars"]
    by_id = {r["id"]: r for r in rows}
    for i in range(400):
        row = by_id[f"doc-{i}"]
        p = (i % 10) / 10 + 0.05
        expected = {"malevolent_ai": 0.25, "aligned_ai": 1.5 if p < 0.5 else 2.5}.get(LABEL_OF[i % 4], 1.0)
        assert row["weight"] == expected and row["label"] == LABEL_OF[i % 4]
        assert row["copies"] in (math.floor(expected), math.floor(expected) + 1)
        assert row["copies"] == copies(expected, row["id"], 7)
    assert by_id["doc-1"]["reason"] == "rule 2: aligned_ai, p_aligned_ai in [0, 0.5): weight 1.5"
    assert by_id["doc-9"]["reason"] == "clear aligned_ai"  # p_aligned_ai 0.95
    assert by_id["doc-2"]["reason"] == "default: weight 1"
    kept = sum(r["copies"] for r in rows if r["label"] == "malevolent_ai")
    assert 10 <= kept <= 40  # about a quarter of 100 (binomial, p = 0.25: 25 +- 4.3)

    # the side file records the policy, the model and what the policy does
    assert meta["policy"]["sha256"] == hashlib.sha256(policy.read_bytes()).hexdigest()
    assert meta["policy"]["seed"] == 7 and meta["scans"][0]["model_version"] == "model-under-test"
    effect = meta["effect"]["labels"]
    malevolent_chars = sum(r["n_chars"] for r in rows if r["label"] == "malevolent_ai")
    assert effect["malevolent_ai"]["documents"] == 100
    assert effect["malevolent_ai"]["change_documents"] == -75.0
    assert effect["malevolent_ai"]["change_chars"] == round(-0.75 * malevolent_chars)
    assert effect["malevolent_ai"]["change_est_tokens"] == math.floor(-0.75 * malevolent_chars / 4 + 0.5)
    assert effect["unrelated"]["change_documents"] == 0
    assert effect["aligned_ai"]["change_documents"] > 0  # up-weighted
    assert meta["effect"]["total"]["written_documents"] == sum(r["copies"] for r in rows)
    assert json.loads(Path(str(output) + ".json").read_text()) == meta


def test_soft_policy_weights_fall_with_p_malevolent_ai(corpus, tmp_path):
    output = tmp_path / "soft.parquet"
    build_manifest(ManifestConfig(scans=[str(corpus["scan"])], policy="soft-proportional", output=str(output)))
    scan_rows = {r["id"]: r for r in read_documents(corpus["scan"]).to_pylist()}
    for row in pq.read_table(output).to_pylist():
        doc = scan_rows[row["id"]]
        if row["label"] in ("malevolent_ai", "ai_neutral"):
            assert row["weight"] == pytest.approx(1 - doc["p_malevolent_ai"], abs=1e-6)
        elif row["label"] == "unrelated":
            assert row["weight"] == 1.0


def test_cli_prints_what_the_policy_removes_next_to_the_totals(corpus, tmp_path):
    result = run_cli(
        "manifest", str(corpus["scan"]), "--policy", "hard-removal", "--output", str(tmp_path / "hard.parquet")
    )
    line = next(line for line in result.stdout.splitlines() if line.startswith("malevolent_ai"))
    assert line.split()[1:3] == ["100", "-100.0"]
    total = next(line for line in result.stdout.splitlines() if line.startswith("total"))
    assert total.split()[1] == "400" and total.split()[-1] == "300"  # 300 documents written
    assert "hard-removal" in result.stdout


# --- apply ----------------------------------------------------------------------------------------


def read_jsonl_gz(folder: Path) -> list[str]:
    lines = []
    for path in sorted(folder.glob("*.jsonl.gz")):
        with gzip.open(path, "rt") as handle:
            lines += handle.read().splitlines()
    return lines


@pytest.fixture(scope="module")
def manifest(corpus):
    path = corpus["root"] / "weights.parquet"
    policy = corpus["root"] / "policy.toml"
    policy.write_text(
        'seed = 3\n[[rule]]\nlabel = "malevolent_ai"\nweight = 0.3\n[[rule]]\nlabel = "aligned_ai"\nweight = 2.5\n'
    )
    build_manifest(ManifestConfig(scans=[str(corpus["scan"])], policy=str(policy), output=str(path)))
    return path


def test_apply_writes_each_document_as_often_as_the_manifest_says_and_the_same_twice(corpus, manifest, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    for out in (first, second):
        config = ApplyConfig(manifest=str(manifest), inputs=[str(corpus["source"])], output=str(out), progress=False)
        assert apply_manifest(config).check.ok
    assert read_jsonl_gz(first) == read_jsonl_gz(second)  # reproducible, record for record

    written: dict[str, int] = {}
    for line in read_jsonl_gz(first):
        record = json.loads(line)
        written[record["id"]] = written.get(record["id"], 0) + 1
    expected = {r["id"]: r["copies"] for r in pq.read_table(manifest).to_pylist()}
    assert {k: v for k, v in expected.items() if v} == {k: v for k, v in written.items() if k in expected}
    assert written["late-addition"] == 1  # not in the manifest: kept, once
    assert "broken" not in written
    texts = {json.loads(line)["id"]: json.loads(line)["text"] for line in read_jsonl_gz(first)}
    assert texts["doc-1"] == corpus["records"][1]["text"]

    account = json.loads((first / "apply.json").read_text())
    assert account["counters"]["unreadable"] == 1 and account["counters"]["not_in_manifest"] == 1
    assert account["check"]["ok"] and account["check"]["written_documents"] == sum(expected.values()) + 1
    assert account["check"]["per_label"]["aligned_ai"]["written"] == sum(
        c for r in pq.read_table(manifest).to_pylist() if r["label"] == "aligned_ai" for c in [r["copies"]]
    )


def test_the_check_fails_when_the_output_does_not_match_the_manifest(corpus, manifest, tmp_path):
    out = tmp_path / "out"
    config = ApplyConfig(manifest=str(manifest), inputs=[str(corpus["source"])], output=str(out), progress=False)
    assert apply_manifest(config).check.ok
    assert check_output(str(manifest), str(out)).ok
    shard = next(out.glob("*.jsonl.gz"))
    with gzip.open(shard, "rt") as handle:
        lines = handle.read().splitlines()
    with gzip.open(shard, "wt") as handle:
        handle.write("\n".join(lines[1:]) + "\n")  # lose one record
    result = run_cli("apply", str(manifest), "--check-only", "--output", str(out), check=False)
    assert result.returncode == 1
    assert "CHECK FAILED: 1 ids were written a number of times other than the manifest expects" in result.stdout

    with pytest.raises(InputError, match="--overwrite"):
        apply_manifest(config)  # an output folder is never mixed with an earlier one


def test_apply_keeps_parquet_input_as_parquet(tmp_path):
    records = corpus_records(40)
    source = tmp_path / "input" / "part.parquet"
    source.parent.mkdir()
    pq.write_table(pa.Table.from_pylist(records), source)
    scan = scan_of(records, source, tmp_path / "scan")
    run_cli("manifest", str(scan), "--policy", "hard-removal", "--output", str(tmp_path / "m.parquet"))
    result = run_cli("apply", str(tmp_path / "m.parquet"), str(source), "--output", str(tmp_path / "out"), "-q")
    assert "check passed" in result.stdout
    table = pq.read_table(next((tmp_path / "out").glob("*.parquet")))
    assert table.num_rows == 30  # the 10 malevolent_ai documents dropped
    assert set(table.column_names) >= {"text", "id", "metadata"}


def test_the_whole_chain_on_a_real_scan(web_docs, tmp_path):
    source = tmp_path / "web.jsonl"
    source.write_text("".join(json.dumps(d) + "\n" for d in web_docs[:40]))
    scan_dir = str(tmp_path / "scan")
    scan(ScanConfig(inputs=[str(source)], output=scan_dir, stages=("fasttext",), progress=False))
    summary = build_report(ReportConfig(scans=[scan_dir])).summary
    assert summary["documents"] == 40 and (tmp_path / "scan" / "report" / "summary.html").is_file()
    assert sum(row["documents"] for row in summary["labels"].values()) == 40
    build_manifest(ManifestConfig(scans=[scan_dir], policy="default", output=str(tmp_path / "m.parquet")))
    manifest_rows = pq.read_table(tmp_path / "m.parquet").to_pylist()
    assert len(manifest_rows) == read_documents(tmp_path / "scan").num_rows == 40
    config = ApplyConfig(manifest=str(tmp_path / "m.parquet"), inputs=[str(source)], output=str(tmp_path / "out"))
    result = apply_manifest(config)
    assert result.check.ok  # the scan's sources and ids are what apply reads back
    assert result.counters["in_manifest"] == 40 and result.counters["not_in_manifest"] == 0
    assert len(read_jsonl_gz(tmp_path / "out")) == sum(r["copies"] for r in manifest_rows)
