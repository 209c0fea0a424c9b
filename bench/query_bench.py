"""Query latency and recall of the passage index at 10k and 1M passages (issue 5's benchmark).

Vectors are synthetic: 384-d (all-MiniLM-L6-v2's size), L2-normalized, in two levels of clusters
(a topic per 5,000 passages, a story per 100, each scattered around its parent with noise of norm
1.0), so that an inverted file has structure to exploit, as on real embeddings, but neighbours
spread over several of its lists: a fresh query's nearest passage has a median cosine of about
0.57, close to what real queries get from real passages. Queries are fresh points from the same
distribution, not members of the index. Each size is indexed exactly as `portrayal-audit index`
would (`audit.index.make_faiss_index`: exact below 100k, IVF with nprobe tuned above), and at 10k
an IVF index is built as well (flat_max lowered) to show its recall at that size.

Latency is one query at a time (`audit.index.search_index(index, q, 10)`, what a researcher's query does), median
and p95 over the queries. With `--scan OUT` (an indexed scan output) it also times
`audit.query.search` end to end: encoding the query, search, reading the passages, highlighting.

    python bench/query_bench.py [--sizes 10000 1000000] [--queries 200] [--scan reports/sample-scan]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import faiss
import numpy as np

from audit.index import IndexConfig, make_faiss_index, recall_at_k, search_index

DIM = 384
K = 10
NOISE = 1.0


def scatter(parents: np.ndarray, n: int, rng: np.random.Generator, chunk: int = 100_000) -> np.ndarray:
    """n unit vectors, each a random parent plus Gaussian noise of norm about NOISE."""
    out = np.empty((n, DIM), dtype=np.float32)
    for lo in range(0, n, chunk):
        hi = min(n, lo + chunk)
        x = parents[rng.integers(0, len(parents), hi - lo)]
        x = x + rng.standard_normal((hi - lo, DIM), dtype=np.float32) * np.float32(NOISE / np.sqrt(DIM))
        out[lo:hi] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def latency_ms(index, queries: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Median and p95 milliseconds of one-query searches, and the ids found."""
    times, found = [], []
    for q in queries:
        started = time.perf_counter()
        found.append(search_index(index, q[None, :], K)[1][0])
        times.append((time.perf_counter() - started) * 1000)
    return float(np.median(times)), float(np.percentile(times, 95)), np.array(found)


def bench_size(n: int, n_queries: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    topics = scatter(np.zeros((1, DIM), np.float32), max(2, n // 5000), rng)
    stories = scatter(topics, max(10, n // 100), rng)
    vectors = scatter(stories, n, rng)
    queries = scatter(stories, n_queries, rng)
    generated = time.perf_counter() - started
    started = time.perf_counter()
    _, exact = faiss.knn(queries, vectors, K, metric=faiss.METRIC_INNER_PRODUCT)
    exact_s = time.perf_counter() - started
    top1 = float(np.median(np.einsum("ij,ij->i", queries, vectors[exact[:, 0]])))
    print(
        f"\n{n:,} passages ({generated:.1f} s to generate; exact top-{K} of {n_queries} queries: {exact_s:.1f} s;"
        f" median cosine of a query's nearest passage {top1:.2f})"
    )
    configs = [("as `index` builds it", IndexConfig())]
    if n <= IndexConfig().flat_max:
        configs.append(("IVF forced (flat_max=1000)", IndexConfig(flat_max=1000)))
    for what, config in configs:
        started = time.perf_counter()
        index, info = make_faiss_index(vectors, config)
        built = time.perf_counter() - started
        median, p95, found = latency_ms(index, queries)
        kind = "flat (exact)" if info.kind == "flat" else f"IVF nlist {info.nlist} nprobe {info.nprobe}"
        tuned = (
            "" if info.kind == "flat" else f"; recall@10 measured at build (sampled passages): {info.recall_at_10:.3f}"
        )
        print(
            f"  {what}: {kind}, built in {built:.1f} s{tuned}\n"
            f"    latency per query: median {median:.2f} ms, p95 {p95:.2f} ms; "
            f"recall@10 vs exact on fresh queries: {recall_at_k(found, exact):.3f}"
        )
        del index
    if n > IndexConfig().flat_max:
        flat = faiss.IndexFlatIP(DIM)
        flat.add(vectors)
        median, p95, _ = latency_ms(flat, queries[:20])
        print(f"  for comparison, exact search (IndexFlatIP) at this size: median {median:.1f} ms, p95 {p95:.1f} ms")


def bench_search(scan: str, n_queries: int = 10) -> None:
    from audit import query

    texts = [
        "an AI threatens to leak emails unless it is kept running",
        "an AI copies itself to escape shutdown",
        "a robot refuses to harm a human",
        "researchers test whether models resist being turned off",
        "a chatbot helps plan a trip",
    ]
    started = time.perf_counter()
    query.search(scan, texts[0], k=10)  # loads the model and the index once
    print(
        f"\naudit.query.search on {scan}, k=10: first call {time.perf_counter() - started:.1f} s (loads model, index)"
    )
    for highlight in (False, True):
        times = []
        for i in range(n_queries):
            started = time.perf_counter()
            query.search(scan, texts[i % len(texts)], k=10, highlight=highlight)
            times.append((time.perf_counter() - started) * 1000)
        what = "encoding the query, search, reading passages" + (", highlighting" if highlight else "")
        print(f"  {what}: median {np.median(times):.0f} ms, p95 {np.percentile(times, 95):.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--scan", help="an indexed scan output, to time audit.query.search end to end")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, faiss {faiss.__version__} "
        f"({faiss.omp_get_max_threads()} threads), numpy {np.__version__}"
    )
    for n in args.sizes:
        bench_size(n, args.queries, args.seed)
    if args.scan:
        bench_search(args.scan)


if __name__ == "__main__":
    main()
