"""The same pipeline on a cluster: a real Ray head on 127.0.0.1, and the Slurm job array script
(run here index by index, as Slurm would, with a stand-in `scontrol`)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import read_documents, read_stats, run_cli

SLURM_ARGS = (
    *("--executor", "slurm", "--partition", "cpu-long", "--time", "03:30:00", "--cpus-per-task", "2"),
    *("--mem-per-cpu-gb", "3", "--qos", "low", "--job-name", "audit-cc", "--workers", "2"),
    *("--sbatch-arg", "account=data-team", "--sbatch-arg", "--constraint=avx2"),
    *("--venv-path", "/shared/envs/audit/bin/activate"),
)


def _split_corpus(web_docs: list[dict], folder: Path, files: int = 3, per_file: int = 60) -> Path:
    """Real C4 documents in several shards, so that tasks really are spread over workers."""
    folder.mkdir()
    for shard in range(files):
        rows = web_docs[shard * per_file : (shard + 1) * per_file]
        with (folder / f"part-{shard}.jsonl").open("w") as handle:
            for number, row in enumerate(rows):
                handle.write(json.dumps({"id": f"c4-{shard}-{number}", "text": row["text"], "url": row["url"]}) + "\n")
    return folder


def _rows_by_id(out: Path) -> list[dict]:
    return sorted(read_documents(out).to_pylist(), key=lambda row: row["id"])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def ray_head():
    """A Ray head on 127.0.0.1 with 2 CPUs, stopped afterwards."""
    pytest.importorskip("ray", reason="pip install '.[ray]' (make test does)")
    port = _free_port()
    ray = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))
    start = [ray, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus", "2"]
    start += ["--include-dashboard", "false", "--disable-usage-stats"]
    subprocess.run(start, check=True, capture_output=True, timeout=300)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([ray, "stop", "--force"], capture_output=True, timeout=300)


def test_ray_scan_equals_a_local_scan(tmp_path, web_docs, ray_head):
    corpus = _split_corpus(web_docs, tmp_path / "corpus")
    common = (str(corpus), "--tasks", "3", "--stages", "fasttext", "-q")
    run_cli("scan", *common, "--output", str(tmp_path / "local"))
    run_cli("scan", *common, "--output", str(tmp_path / "ray"), "--executor", "ray", "--ray-address", ray_head)

    assert _rows_by_id(tmp_path / "ray") == _rows_by_id(tmp_path / "local")
    stats = read_stats(tmp_path / "ray")
    assert stats["records"]["total"] == 180
    assert sorted(p.name for p in (tmp_path / "ray" / "logs" / "completions").iterdir()) == ["00000", "00001", "00002"]


def test_slurm_dry_run_writes_the_sbatch_script_without_submitting(tmp_path, web_docs):
    corpus = _split_corpus(web_docs, tmp_path / "corpus")
    out = tmp_path / "out"
    result = run_cli("scan", str(corpus), "--output", str(out), "--tasks", "3", *SLURM_ARGS, "--dry-run")
    assert "dry run, not submitted" in result.stdout

    script = (out / "logs" / "launch_script.slurm").read_text()
    directives = [line for line in script.splitlines() if line.startswith("#SBATCH")]
    assert directives == [
        "#SBATCH --cpus-per-task=2",
        "#SBATCH --mem-per-cpu=3G",
        "#SBATCH --nodes=1",
        "#SBATCH --partition=cpu-long",
        "#SBATCH --job-name=audit-cc",
        "#SBATCH --time=03:30:00",
        f"#SBATCH --output={out}/logs/slurm_logs/%A_%a.out",
        f"#SBATCH --error={out}/logs/slurm_logs/%A_%a.out",
        "#SBATCH --array=0-2%2",
        "#SBATCH --account=data-team",
        "#SBATCH --constraint=avx2",
        "#SBATCH --requeue",
        "#SBATCH --qos=low",
    ]
    assert "source /shared/envs/audit/bin/activate" in script
    assert f"srun  -l -n 1 launch_pickled_pipeline {out}/logs/executor.pik" in script
    assert not (out / "documents").exists()  # nothing ran


def test_slurm_job_array_run_index_by_index_equals_a_local_scan(tmp_path, web_docs):
    """What each array job runs (launch_pickled_pipeline on the pickled executor) really scans."""
    corpus = _split_corpus(web_docs, tmp_path / "corpus")
    out = tmp_path / "slurm"
    args = ("scan", str(corpus), "--output", str(out), "--tasks", "3", "--stages", "fasttext", *SLURM_ARGS)
    run_cli(*args, "--dry-run")
    bin_dir = tmp_path / "bin"  # datatrove asks scontrol for the node list; no Slurm here
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text("#!/bin/sh\necho localhost\n")
    (bin_dir / "scontrol").chmod(0o755)
    launcher = shutil.which("launch_pickled_pipeline") or str(Path(sys.executable).with_name("launch_pickled_pipeline"))
    for index in range(3):
        env = os.environ | {"SLURM_ARRAY_TASK_ID": str(index), "SLURM_NODELIST": "localhost"}
        env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
        subprocess.run([launcher, str(out / "logs" / "executor.pik")], env=env, check=True, capture_output=True)

    rerun = run_cli(*args, "--dry-run", "-q")  # all tasks done: nothing to submit, the stats are written
    assert "180 records" in rerun.stdout
    run_cli("scan", str(corpus), "--output", str(tmp_path / "local"), "--tasks", "3", "--stages", "fasttext", "-q")
    assert _rows_by_id(out) == _rows_by_id(tmp_path / "local")


def test_slurm_needs_a_partition(tmp_path, web_docs):
    corpus = _split_corpus(web_docs, tmp_path / "corpus")
    result = run_cli("scan", str(corpus), "--output", str(tmp_path / "out"), "--executor", "slurm", check=False)
    assert result.returncode == 2
    assert "--executor slurm needs --partition" in result.stderr
