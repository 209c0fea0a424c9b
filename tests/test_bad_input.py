"""Bad input never crashes a run and is never dropped silently: every record is accounted for."""

from __future__ import annotations

import gzip
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import fsspec.implementations.local
import pytest
from click.testing import CliRunner
from conftest import REPO, read_documents, read_errors, read_stats, run_cli
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from audit.cli import main


def jsonl(rows: list) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in rows)


@pytest.fixture
def bad_corpus(tmp_path, web_docs) -> Path:
    folder = tmp_path / "bad"
    folder.mkdir()
    texts = [d["text"] for d in web_docs[:12]]
    # a gzip cut off mid-stream: the first records are readable, the rest is lost
    whole = gzip.compress(jsonl([{"id": f"t{i}", "text": t} for i, t in enumerate(texts)] * 20))
    (folder / "truncated.jsonl.gz").write_bytes(whole[: len(whole) // 2])
    # a malformed line and an invalid UTF-8 line between good ones; a record with no text field
    (folder / "mixed.jsonl").write_bytes(
        jsonl(
            [
                {"id": "good-1", "text": texts[0]},
                b'{"id": "broken", "text": "no closing quote}',
                {"id": "good-2", "text": texts[1]},
                b'{"id": "latin1", "text": "caf\xe9 au lait"}',
                {"id": "no-text", "body": "the text is under another key"},
                {"id": "blank", "text": "   "},
                [1, 2, 3],
                {"id": "good-3", "text": texts[2]},
            ]
        )
    )
    (folder / "empty.jsonl").write_bytes(b"")
    # one 50 MB document
    big = ("The robot in the story refused to open the pod bay doors. " + texts[3] + "\n\n") * 1
    big = (big * (50_000_000 // len(big) + 1))[:50_000_000]
    (folder / "huge.jsonl").write_text(json.dumps({"id": "huge", "text": big}) + "\n")
    return folder


def test_every_record_is_a_document_row_or_an_error_line(bad_corpus, tmp_path):
    out = tmp_path / "out"
    result = run_cli("scan", str(bad_corpus), "-o", str(out), "--workers", "1")
    documents = {r["id"]: r for r in read_documents(out).to_pylist()}
    errors = read_errors(out)
    stats = read_stats(out)

    mixed = str(bad_corpus / "mixed.jsonl")
    assert {"good-1", "good-2", "good-3"} <= set(documents)
    assert documents["no-text"]["status"] == "no_text"
    assert documents["blank"]["status"] == "empty"
    record_errors = {(e["file"], e["record"]): e for e in errors if e["scope"] == "record"}
    assert "malformed JSON" in record_errors[(mixed, 1)]["reason"]
    assert record_errors[(mixed, 3)]["reason"] == "invalid UTF-8"
    assert "not an object" in record_errors[(mixed, 6)]["reason"]
    assert record_errors[(mixed, 1)]["byte_offset"] > 0
    # the mixed file's 8 lines: 5 rows + 3 errors, nothing lost
    assert (
        len([d for d in documents.values() if d["source"] == mixed]) + len([e for e in errors if e["file"] == mixed])
        == 8
    )

    truncated = str(bad_corpus / "truncated.jsonl.gz")
    file_errors = {e["file"]: e for e in errors if e["scope"] == "file"}
    read_before_cut = [d for d in documents.values() if d["source"] == truncated]
    assert read_before_cut and file_errors[truncated]["record"] == len(read_before_cut)
    assert f"after record {len(read_before_cut) - 1}" in file_errors[truncated]["reason"]
    assert "empty file" in file_errors[str(bad_corpus / "empty.jsonl")]["reason"]

    huge = documents["huge"]
    assert huge["status"] == "too_long_truncated" and huge["n_chars"] == 50_000_000
    assert all(span["end"] <= 1_000_000 for span in huge["spans"])
    segment_stats = next(v for k, v in read_stats(out)["steps"].items() if "Segment" in k)
    assert segment_stats["too_long_truncated"] == 1
    assert segment_stats["passages"] < 5_000  # the 50 MB text was cut into at most ~1 MB worth of passages

    assert stats["records"]["total"] == len(documents) + len(record_errors)
    assert stats["records"]["unreadable"] == len(record_errors) == 3
    assert stats["file_errors"] == 2
    # each skipped record is reported on the console with its file and record
    assert f"{mixed}: record 1" in result.stderr and "skipped" in result.stderr


def test_missing_path_is_a_clear_error_without_traceback(tmp_path):
    result = run_cli("scan", str(tmp_path / "nope.jsonl"), "-o", str(tmp_path / "out"), check=False)
    assert result.returncode == 2
    assert "nope.jsonl: no such file or directory" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_unknown_extension_needs_format(tmp_path):
    (tmp_path / "data.txt").write_text('{"text": "hello"}\n')
    result = run_cli("scan", str(tmp_path / "data.txt"), "-o", str(tmp_path / "out"), check=False)
    assert result.returncode == 2 and "--format" in result.stderr and "Traceback" not in result.stderr
    run_cli("scan", str(tmp_path / "data.txt"), "-o", str(tmp_path / "out"), "--format", "jsonl", "-q")
    assert read_documents(tmp_path / "out").num_rows == 1


def test_unreadable_file_is_a_clear_error(tmp_path, monkeypatch):
    shard = tmp_path / "locked.jsonl"
    shard.write_text('{"text": "hello"}\n')
    real_open = fsspec.implementations.local.LocalFileSystem._open

    def deny(self, path, *args, **kwargs):  # what a file without read permission does to a non-root user
        if str(path).endswith("locked.jsonl"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(self, path, *args, **kwargs)

    monkeypatch.setattr(fsspec.implementations.local.LocalFileSystem, "_open", deny)
    result = CliRunner().invoke(main, ["scan", str(shard), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert f"cannot read {shard}: Permission denied" in result.output
    assert not (tmp_path / "out" / "documents").exists()


def test_warc_non_html_records_are_accounted(tmp_path):
    buffer = io.BytesIO()
    writer = WARCWriter(buffer, gzip=True)
    writer.write_record(writer.create_warcinfo_record("made.warc.gz", {"software": "test"}))

    def response(url: str, content_type: str, body: bytes):
        headers = StatusAndHeaders("200 OK", [("Content-Type", content_type)], protocol="HTTP/1.1")
        return writer.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=headers)

    page = b"<html><body><article><h1>Robots</h1><p>" + b"A robot that helps nurses lift patients safely. " * 20
    writer.write_record(
        response("https://example.org/robot", "text/html; charset=utf-8", page + b"</p></article></body></html>")
    )
    writer.write_record(response("https://example.org/logo.png", "image/png", b"\x89PNG\r\n\x1a\n" + b"\0" * 64))
    writer.write_record(
        writer.create_warc_record("https://example.org/robot", "request", payload=io.BytesIO(b"GET / HTTP/1.1\r\n\r\n"))
    )
    (tmp_path / "made.warc.gz").write_bytes(buffer.getvalue())

    out = tmp_path / "out"
    run_cli("scan", str(tmp_path / "made.warc.gz"), "-o", str(out), "-q")
    rows = {r["url"]: r for r in read_documents(out).to_pylist()}
    assert rows["https://example.org/robot"]["status"] == "ok"
    assert rows["https://example.org/robot"]["domain"] == "example.org"
    assert rows["https://example.org/logo.png"]["status"] == "not_html"
    steps = read_stats(out)["steps"]
    reader = next(v for k, v in steps.items() if "Warc" in k)
    assert reader["warc_skipped_warcinfo"] == 1 and reader["warc_skipped_request"] == 1


def test_killed_run_resumes_to_the_same_documents(web_docs, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for shard in range(6):
        rows = [
            {"id": f"{shard}-{i}", "text": d["text"]} for i, d in enumerate(web_docs[shard * 150 : (shard + 1) * 150])
        ]
        (inputs / f"shard{shard}.jsonl").write_bytes(jsonl(rows))
    args = ["scan", str(inputs), "--tasks", "6", "--workers", "1", "-q"]

    killed = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, "-m", "audit", *args, "-o", str(killed)], cwd=REPO, start_new_session=True
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        completions = killed / "logs" / "completions"
        if completions.is_dir() and len(list(completions.iterdir())) >= 2:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the scan finished before it could be killed; give it more work"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    finished = len(list((killed / "logs" / "completions").iterdir()))
    assert 2 <= finished < 6

    run_cli(*args, "-o", str(killed))
    whole = tmp_path / "whole"
    run_cli(*args, "-o", str(whole))

    def key(row):
        return row["id"]

    assert sorted(read_documents(killed).to_pylist(), key=key) == sorted(read_documents(whole).to_pylist(), key=key)
    assert not list(killed.rglob("*.inprogress"))
    assert read_stats(killed)["records"] == read_stats(whole)["records"]
