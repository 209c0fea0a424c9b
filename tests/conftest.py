"""Shared fixtures: the real data beside the repo, and helpers to run the CLI and read outputs."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SAMPLE = REPO / "corpora" / "sample"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"{SHARED_DATA} is missing: the tests read real documents from ../shared/data")
    return SHARED_DATA


@pytest.fixture(scope="session")
def web_docs(shared_data) -> list[dict]:
    with gzip.open(shared_data / "web" / "c4-sample.json.gz", "rt") as handle:
        return [json.loads(line) for line in handle]


def run_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run `portrayal-audit ARGS` as a user would, in a fresh process."""
    result = subprocess.run(
        [sys.executable, "-m", "audit", *args], capture_output=True, text=True, cwd=REPO, timeout=900
    )
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result


def read_documents(out: Path):
    """All rows of `out/documents/` as one Arrow table."""
    return pq.read_table(sorted((out / "documents").glob("*.parquet")))


def read_errors(out: Path) -> list[dict]:
    rows = []
    for path in sorted((out / "errors").glob("*.jsonl")):
        rows += [json.loads(line) for line in path.read_text().splitlines()]
    return rows


def read_stats(out: Path) -> dict:
    return json.loads((out / "stats.json").read_text())
