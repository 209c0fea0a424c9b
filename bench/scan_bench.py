"""Scan throughput against the bare read, memory per worker, scaling, and recall (issue 6).

Builds (once, then reuses) a corpus of real web documents from ../shared/data/web, repeated and
shuffled with distinct ids, with dev-set AI passages mixed into 1% of the records
(`bench_corpus.py`), and measures in one run, side by side:

  (a) the bare read: datatrove's JsonlReader into a null step (the limit);
  (b) `scan` with the default cascade;
  (c) `scan --stages fasttext` (the embedding stage off);
  (d) `scan --gate strict --stages fasttext`, and `--gate strict` with the embedding stage;
  (e) the naive way: every document through the same sentence-transformers model.

(a), (c) and the fastText-only strict run read the whole corpus, with 1 and 2 workers. Runs that use
the embedding stage (MiniLM on the CPU: about 28 ms a 600-character passage with 2 threads, 53 ms
with one, on this project's machines) cannot finish on 500 MB here in reasonable time, so they read
the first `--sample-docs` documents of the corpus, and (e) embeds `--naive-sample` documents: their
documents/s are measured on that sample and the corpus time is extrapolated from it; the table says
which rows are. Each run is a fresh process (its start and model loading included); its peak
resident memory is that of its largest process (with 2 workers: a worker). Memory is shown for one
shard and for one file holding the whole corpus. Recall: of the mixed-in `malevolent_ai` passages
(their document flagged, or a malevolent span over them), next to the cascade's recall on the same
dev passages each classified alone; the default cascade's is measured on every corpus document that
carries one.

    python bench/scan_bench.py [--total-mb 500] [--shard-mb 50] [--sample-docs 3000] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_corpus  # noqa: E402


def _null_step(data, rank: int = 0, world_size: int = 1):
    for _ in data:
        pass
    return
    yield


def measure(kind: str, inputs: list[str], workers: int, out: str, sample: int) -> dict:
    """One measurement, run inside a child process; returns documents and seconds."""
    started = time.perf_counter()
    if kind == "bare":
        from datatrove.executor import LocalPipelineExecutor
        from datatrove.pipeline.readers import JsonlReader

        folder = str(Path(inputs[0]).parent)
        pattern = Path(inputs[0]).name if len(inputs) == 1 else "shard-*.jsonl.gz"
        reader = JsonlReader(folder, glob_pattern=pattern)
        executor = LocalPipelineExecutor(
            [reader, _null_step], tasks=len(inputs), workers=workers, logging_dir=out, skip_completed=False
        )
        executor.run()
        return {"seconds": time.perf_counter() - started}
    if kind == "naive":
        import gzip

        import orjson

        from audit.embed import Encoder

        # torch's default threads, as the one-worker scans below run with (MiniLM uses both cores there)
        texts = []
        with gzip.open(inputs[0], "rb") as handle:
            for line in handle:
                texts.append(orjson.loads(line)["text"])
                if len(texts) >= sample:
                    break
        encoder = Encoder()
        encoder.encode(texts[:8])  # load and warm up outside the timing
        started = time.perf_counter()
        encoder.encode(texts)
        return {"seconds": time.perf_counter() - started, "documents": len(texts)}
    from audit.config import ScanConfig
    from audit.gate import GateConfig
    from audit.pipeline import scan

    config = ScanConfig(
        inputs=inputs,
        output=out,
        tasks=len(inputs),
        workers=workers,
        stages=("fasttext",) if kind.endswith("fasttext") else ("fasttext", "embedding"),
        gate=GateConfig(strict=kind.startswith("strict")),
        overwrite=True,
        progress=False,
    )
    stats = scan(config)
    counts = {k: v for step in stats["steps"].values() for k, v in step.items() if k.startswith("passages")}
    return {"seconds": time.perf_counter() - started, "documents": stats["records"]["total"], **counts}


def run_child(kind: str, inputs: list[str], workers: int, out: Path, sample: int = 0) -> dict:
    """`measure` in a fresh process; adds its peak RSS (largest process of its tree) in MB."""
    args = [sys.executable, __file__, "--child", kind, "--workers", str(workers), "--out", str(out)]
    args += ["--sample", str(sample), "--inputs", *inputs]
    env = os.environ | {"TOKENIZERS_PARALLELISM": "false"}
    out.mkdir(parents=True, exist_ok=True)
    with (out / "bench.stdout").open("wb") as stdout, (out / "bench.stderr").open("wb") as stderr:
        started = time.perf_counter()
        process = subprocess.Popen(args, stdout=stdout, stderr=stderr, env=env, cwd=REPO)
        # wait4: this child's own rusage, whose maxrss covers its largest waited-for descendant
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{kind} failed:\n{(out / 'bench.stderr').read_text()[-3000:]}")
    result = json.loads((out / "bench.stdout").read_text().strip().splitlines()[-1])
    result["wall"] = wall
    result["peak_mb"] = usage.ru_maxrss / 1024
    return result


def recall_of_mixed(out: Path, mixed_path: Path, label: str = "malevolent_ai") -> dict[str, tuple[int, int]]:
    """Mixed-in passages of `label` found (their document flagged, or a span of that label over them),
    in all, as documents of their own, and inserted into a web page: {"all"|"standalone"|"inserted": (found, total)}."""
    import pyarrow.parquet as pq

    wanted = {}
    for line in mixed_path.open():
        entry = json.loads(line)
        if entry["label"] == label:
            wanted[entry["id"]] = entry
    table = pq.read_table(sorted((out / "documents").glob("*.parquet")), columns=["id", "flagged", "spans"])
    found_ids = set()
    for row in table.to_pylist():
        entry = wanted.get(row["id"])
        if entry is None:
            continue
        spans = [s for s in row["spans"] or [] if s["label"] == label]
        if row["flagged"] or any(s["start"] < entry["end"] and s["end"] > entry["start"] for s in spans):
            found_ids.add(row["id"])
    counts = {}
    for part, keep in (("all", None), ("standalone", True), ("inserted", False)):
        ids = [i for i, e in wanted.items() if keep is None or e["standalone"] == keep]
        counts[part] = (sum(i in found_ids for i in ids), len(ids))
    return counts


def recall_line(counts: dict[str, tuple[int, int]]) -> str:
    parts = [f"{found}/{total} = {found / max(1, total):.3f}" for found, total in counts.values()]
    return f"{parts[0]} (alone {parts[1]}; inside a web page {parts[2]})"


def dev_recall_of(mixed_path: Path, dev_path: Path, label: str = "malevolent_ai") -> tuple[int, int]:
    """The cascade's recall on the same dev passages, each classified alone."""
    from audit.cascade import Cascade

    groups = {json.loads(line)["group"] for line in mixed_path.open() if json.loads(line)["label"] == label}
    rows = [json.loads(line) for line in dev_path.open()]
    texts = [r["text"] for r in rows if r["label"] == label and r["group"] in groups]
    results = Cascade().classify_many(texts)
    return sum(r.flagged for r in results), len(texts)


NAMES = {
    "bare": "(a) bare read: JsonlReader -> null",
    "cascade": "(b) scan, default cascade",
    "fasttext": "(c) scan --stages fasttext",
    "strict-fasttext": "(d) scan --gate strict --stages fasttext",
    "strict": "(d) scan --gate strict",
}


def write_subset(shards: list[str], path: Path, keep) -> int:
    """The records of `shards` for which keep(index, id) is true, to `path` (JSONL.gz); their count."""
    import gzip

    import orjson

    if path.exists():
        return sum(1 for _ in gzip.open(path, "rb"))
    count = index = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(f"{path}.tmp", "wb") as out:
        for shard in shards:
            with gzip.open(shard, "rb") as handle:
                for line in handle:
                    verdict = keep(index, orjson.loads(line)["id"])
                    if verdict is None:
                        break
                    if verdict:
                        out.write(line)
                        count += 1
                    index += 1
    os.replace(f"{path}.tmp", path)
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--total-mb", type=int, default=500)
    parser.add_argument("--shard-mb", type=int, default=50)
    parser.add_argument("--workdir", default="/tmp/portrayal-bench")
    parser.add_argument("--sample-docs", type=int, default=3000, help="documents scanned by the MiniLM runs")
    parser.add_argument("--naive-sample", type=int, default=400, help="documents embedded to time the naive way")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--sample", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--inputs", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.inputs, args.workers, args.out, args.sample)))
        return

    workdir = Path(args.workdir)
    spec = bench_corpus.CorpusSpec(total_mb=args.total_mb, shard_mb=args.shard_mb)
    started = time.perf_counter()
    web, dev = REPO.parent / "shared" / "data" / "web", REPO / "corpora" / "dev.jsonl"
    folder = bench_corpus.build(spec, workdir / "corpus", web, dev)
    shards = sorted(str(p) for p in folder.glob("shard-*.jsonl.gz"))
    single = str(bench_corpus.concatenated(folder))
    n_docs = json.loads((folder / "DONE").read_text())["records"]
    gz_mb = sum(Path(p).stat().st_size for p in shards) / 1e6
    mixed = folder / "mixed.jsonl"
    mal_ids = {json.loads(line)["id"] for line in mixed.open() if json.loads(line)["label"] == "malevolent_ai"}
    n_mixed = sum(1 for _ in mixed.open())
    sample = workdir / "subsets" / f"first-{args.sample_docs}.jsonl.gz"
    write_subset(shards, sample, lambda i, _id: None if i >= args.sample_docs else True)
    mixed_mal = workdir / "subsets" / "mixed-malevolent.jsonl.gz"
    n_mixed_mal = write_subset(shards, mixed_mal, lambda _i, doc_id: doc_id in mal_ids)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(
        f"corpus: {folder} ({time.perf_counter() - started:.0f} s to build or find): {len(shards)} shards, "
        f"{gz_mb:,.0f} MB of JSONL.gz, {n_docs:,} documents; {n_mixed:,} carry a dev passage "
        f"({n_mixed / n_docs:.2%}), {n_mixed_mal:,} of them malevolent_ai"
    )

    runs: list[tuple[str, str, int, dict]] = []  # kind, scope, workers, result
    for kind in ("bare", "fasttext", "strict-fasttext"):
        for workers in (1, 2):
            result = run_child(kind, shards, workers, workdir / "runs" / f"{kind}-{workers}w")
            result["documents"] = n_docs
            result["mb"] = gz_mb
            runs.append((kind, "corpus", workers, result))
            print(f"  ran {kind} on the corpus with {workers} worker(s): {result['wall']:.1f} s", flush=True)
    sample_mb = sample.stat().st_size / 1e6
    for kind in ("cascade", "strict"):
        result = run_child(kind, [str(sample)], 1, workdir / "runs" / f"{kind}-sample")
        result["mb"] = sample_mb
        runs.append((kind, "sample", 1, result))
        print(
            f"  ran {kind} on the first {result['documents']:,} documents: {result['wall']:.1f} s; passages "
            f"scored by fastText {result.get('passages_fasttext', 0):,}, by the embedding stage "
            f"{result.get('passages_embedded', 0):,}",
            flush=True,
        )
    naive = run_child("naive", shards[:1], 1, workdir / "runs" / "naive", sample=args.naive_sample)

    bare = {workers: r for kind, _, workers, r in runs if kind == "bare"}
    print("\nthroughput (wall time of each run, process start and model loading included; MB = compressed input)")
    header = f"  {'run':<42} {'on':<7} {'workers':>7} {'docs':>9} {'seconds':>8} {'docs/s':>8} {'MB/s':>6}"
    print(header + f" {'vs (a)':>7} {'peak MB':>8}")
    for kind, scope, workers, result in runs:
        rate = result["documents"] / result["wall"]
        ratio = rate / (n_docs / bare[workers]["wall"])
        print(
            f"  {NAMES[kind]:<42} {scope:<7} {workers:>7} {result['documents']:>9,} {result['wall']:>8.1f} "
            f"{rate:>8,.0f} {result['mb'] / result['wall']:>6.1f} {ratio:>7.3f} {result['peak_mb']:>8,.0f}"
        )
    naive_rate = naive["documents"] / naive["seconds"]
    print(
        f"  (e) naive: MiniLM on every document: {naive_rate:,.1f} docs/s on one worker, timed on "
        f"{naive['documents']} documents; extrapolated to the corpus: {n_docs / naive_rate / 3600:,.1f} h"
    )
    rates = {(kind, scope, workers): r["documents"] / r["wall"] for kind, scope, workers, r in runs}
    print("\nratios")
    for kind, scope, workers in rates:
        if workers == 1:
            print(f"  {NAMES[kind]:<42} vs (e) naive: {rates[(kind, scope, 1)] / naive_rate:>9,.1f}x faster")
    for kind in ("bare", "fasttext", "strict-fasttext"):
        print(f"  {kind}: 2 workers vs 1: {rates[(kind, 'corpus', 2)] / rates[(kind, 'corpus', 1)]:.2f}x")
    corpus_hours = n_docs / rates[("cascade", "sample", 1)] / 3600
    print(f"  the default cascade on the whole corpus, extrapolated from its sample: {corpus_hours:,.1f} h on 1 worker")

    print("\npeak memory of one worker by input file size (--stages fasttext on the whole file; cascade on a sample):")
    for name, inputs in ((f"one {args.shard_mb} MB shard", shards[:1]), ("one file of all shards", [single])):
        size = sum(Path(p).stat().st_size for p in inputs) / 1e6
        result = run_child("fasttext", inputs, 1, workdir / "runs" / f"single-{size:.0f}")
        print(f"  {name} ({size:,.0f} MB): peak {result['peak_mb']:,.0f} MB, {result['wall']:.1f} s")
    cascade_peak = next(r["peak_mb"] for kind, _, _, r in runs if kind == "cascade")
    print(f"  default cascade (loads MiniLM too), on the {sample_mb:,.0f} MB sample: peak {cascade_peak:,.0f} MB")

    print("\nrecall of the mixed-in malevolent_ai passages (document flagged, or a malevolent span over them)")
    found, total = dev_recall_of(mixed, dev)
    print(f"  the default cascade on the same dev passages, each alone: {found}/{total} = {found / max(1, total):.3f}")
    cascade_out = workdir / "runs" / "cascade-mixed-malevolent"
    result = run_child("cascade", [str(mixed_mal)], 1, cascade_out)
    counts = recall_of_mixed(cascade_out, mixed)
    print(
        f"  (b) default cascade, on the {n_mixed_mal:,} corpus documents that carry one: {recall_line(counts)} "
        f"({result['wall']:.0f} s)"
    )
    for kind in ("fasttext", "strict-fasttext"):
        counts = recall_of_mixed(workdir / "runs" / f"{kind}-1w", mixed)
        print(f"  {NAMES[kind]:<42} in the whole corpus: {recall_line(counts)}")


if __name__ == "__main__":
    main()
