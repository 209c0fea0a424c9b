"""The passage index: embeddings of `OUT/passages/` and a faiss index over them, in `OUT/index/`.

Embedding is the slow part (all-MiniLM-L6-v2 on CPU), so it is done once per passages file and
kept beside the scan: `index/embeddings/<file>.npy` holds one L2-normalized vector per row of
`passages/<file>.parquet`, in row order. A rerun embeds only the passages files that are new or
whose content changed (by SHA-256 of the file), and drops the vectors of files that are gone.

The faiss index over all vectors is chosen by size: exact (`IndexFlatIP`, cosine on normalized
vectors) below `IndexConfig.flat_max` passages, otherwise an inverted file (`IndexIVFFlat`) whose
`nprobe` is the smallest that reaches `target_recall` of exact search, measured on passages sampled
from the index and recorded in `index/index.json`.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from audit.domains import registered_domain
from audit.models import file_digest
from audit.records import InputError

INDEX_DIR = "index"
META_FILE = "index.json"
FAISS_FILE = "passages.faiss"
ROWS_FILE = "rows.parquet"
EMBEDDINGS_DIR = "embeddings"
FORMAT_VERSION = 1
EMBEDDING_MODEL = "all-MiniLM-L6-v2"
RECALL_K = 10
NPROBES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
SUBSET_EXACT_MAX = 50_000  # filtered searches over at most this many passages are exact


class NoPassagesError(InputError):
    """The folder has no `passages/*.parquet`: not a scan output, or a scan that flagged nothing."""


class NoIndexError(InputError):
    """The scan output has no index yet, or one older than its passages."""


@dataclass(frozen=True, slots=True)
class IndexConfig:
    """How the passage index is built."""

    flat_max: int = 100_000  # at most this many passages: exact search; more: IVF
    target_recall: float = 0.95  # recall@10 of IVF against exact search that nprobe must reach
    recall_queries: int = 200  # passages sampled as queries to measure that recall
    batch_size: int = 64  # texts per embedding batch
    chunk_rows: int = 8192  # rows embedded (and held in memory) at a time
    rebuild: bool = False  # re-embed every passage, ignoring stored embeddings
    progress: bool = True  # a progress bar on a terminal
    seed: int = 13


@dataclass(slots=True)
class PassageFile:
    """One `passages/*.parquet` as the index knows it: enough to tell whether it changed."""

    name: str
    rows: int
    size: int
    sha256: str  # first 16 hex digits

    @classmethod
    def of(cls, path: Path) -> PassageFile:
        return cls(path.name, pq.ParquetFile(path).metadata.num_rows, path.stat().st_size, file_digest(path))


@dataclass(slots=True)
class FaissInfo:
    """Which faiss index was built, and how close to exact search it is."""

    kind: str  # "flat" (exact) or "ivf"
    nlist: int | None = None
    nprobe: int | None = None
    recall_at_10: float = 1.0  # against exact search; 1.0 by construction for "flat"
    recall_by_nprobe: dict[str, float] = field(default_factory=dict)
    recall_queries: int = 0


@dataclass(slots=True)
class IndexStats:
    """What `build_index` did: the counts a user (and a test) checks after a rerun."""

    output: str
    files: int
    files_embedded: int
    passages: int
    passages_embedded: int
    faiss: FaissInfo
    seconds: float

    def summary(self) -> str:
        info = self.faiss
        if info.kind == "flat":
            kind = "exact index (IndexFlatIP)"
        else:
            kind = (
                f"IVF index (IndexIVFFlat, nlist {info.nlist}, nprobe {info.nprobe}): recall@10 against exact "
                f"search {info.recall_at_10:.3f} on {info.recall_queries} sampled passages"
            )
        return (
            f"{self.output}: {self.passages:,} passages in {self.files} files; embedded {self.passages_embedded:,}"
            f" ({self.files_embedded} new or changed files) in {self.seconds:.1f} s\n{kind}"
        )


def passage_files(output: Path) -> list[Path]:
    """The scan's passages files, sorted; raises NoPassagesError when there are none."""
    folder = Path(output) / "passages"
    if not folder.is_dir():
        hint = "" if (Path(output) / "documents").is_dir() else "; is it a scan output? (portrayal-audit scan ...)"
        raise NoPassagesError(f"{output}: no passages/ folder{hint}")
    files = sorted(folder.glob("*.parquet"))
    if not files:
        raise NoPassagesError(f"{folder}: no passages (*.parquet): the scan kept no passage to search")
    return files


def build_index(output: str | Path, config: IndexConfig = IndexConfig(), encoder=None) -> IndexStats:
    """Embed the passages of `output` that are not embedded yet and (re)write its faiss index.

    `encoder` (an `audit.embed.Encoder`) is created only if something needs embedding.
    """
    started = time.monotonic()
    output = Path(output)
    paths = passage_files(output)
    index_dir = output / INDEX_DIR
    (index_dir / EMBEDDINGS_DIR).mkdir(parents=True, exist_ok=True)
    previous = [] if config.rebuild else _read_meta(index_dir).get("files", [])
    known = {f["name"]: PassageFile(**f) for f in previous}

    current = {path.name: PassageFile.of(path) for path in paths}
    unchanged = [
        name for name, f in current.items() if known.get(name) == f and _embeddings_path(index_dir, name).is_file()
    ]
    # Keep the earlier order so that ids of unchanged files stay put; new files go last.
    order = [f["name"] for f in previous if f["name"] in unchanged]
    order += sorted(name for name in current if name not in order)
    to_embed = [name for name in order if name not in unchanged]

    previous_order = [f["name"] for f in previous]
    if not to_embed and order == previous_order and (index_dir / FAISS_FILE).is_file():
        return IndexStats(  # nothing changed: keep the faiss index (an IVF one is costly to retrain)
            output=str(output),
            files=len(order),
            files_embedded=0,
            passages=sum(current[name].rows for name in order),
            passages_embedded=0,
            faiss=FaissInfo(**_read_meta(index_dir)["faiss"]),
            seconds=time.monotonic() - started,
        )
    if to_embed:
        _embed_files(output, index_dir, [current[name] for name in to_embed], config, encoder)
    for stale in (index_dir / EMBEDDINGS_DIR).glob("*.npy"):
        if stale.name.removesuffix(".npy") not in current:
            stale.unlink()

    files = [current[name] for name in order]
    vectors = np.concatenate([np.load(_embeddings_path(index_dir, f.name)) for f in files])
    index, info = make_faiss_index(vectors, config)
    _write_rows(output, index_dir, files)
    _write_faiss(index, index_dir / FAISS_FILE)
    meta = {
        "format": FORMAT_VERSION,
        "model": EMBEDDING_MODEL,
        "dim": int(vectors.shape[1]),
        "passages": int(len(vectors)),
        "files": [asdict(f) for f in files],
        "faiss": asdict(info),
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    _atomic_write_text(index_dir / META_FILE, json.dumps(meta, indent=2) + "\n")
    return IndexStats(
        output=str(output),
        files=len(files),
        files_embedded=len(to_embed),
        passages=int(len(vectors)),
        passages_embedded=sum(current[name].rows for name in to_embed),
        faiss=info,
        seconds=time.monotonic() - started,
    )


def make_faiss_index(vectors: np.ndarray, config: IndexConfig = IndexConfig()):
    """An inner-product faiss index over `vectors` chosen by their number, and what it is."""
    import faiss

    n, dim = vectors.shape
    if n <= config.flat_max:
        index = faiss.IndexFlatIP(dim)
        index.add(vectors)
        return index, FaissInfo(kind="flat")
    nlist = int(min(65536, max(64, np.sqrt(n))))
    rng = np.random.default_rng(config.seed)
    train = vectors[np.sort(rng.choice(n, size=min(n, 40 * nlist), replace=False))]
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = config.seed
    index.train(train)
    index.add(vectors)
    query_ids = rng.choice(n, size=min(n, config.recall_queries), replace=False)
    nprobe, by_nprobe = tune_nprobe(index, vectors, query_ids, config.target_recall)
    index.nprobe = nprobe
    return index, FaissInfo(
        kind="ivf",
        nlist=nlist,
        nprobe=nprobe,
        recall_at_10=by_nprobe[str(nprobe)],
        recall_by_nprobe=by_nprobe,
        recall_queries=len(query_ids),
    )


def recall_at_k(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of each query's exact top-k that the approximate search also returned."""
    k = exact.shape[1]
    return float(np.mean([len((set(f) & set(e)) - {-1}) / k for f, e in zip(found.tolist(), exact.tolist())]))


def tune_nprobe(index, vectors: np.ndarray, query_ids: np.ndarray, target: float) -> tuple[int, dict[str, float]]:
    """The smallest nprobe in NPROBES whose recall@10 reaches `target` (else the largest tried).

    The queries are stored passages, each searching for its 10 nearest *other* passages: counting
    the passage itself (always found, in its own list) would flatter the recall.
    """
    import faiss

    queries = vectors[query_ids]
    _, exact = faiss.knn(queries, vectors, RECALL_K + 1, metric=faiss.METRIC_INNER_PRODUCT)
    exact = _others(exact, query_ids)
    by_nprobe: dict[str, float] = {}
    for nprobe in NPROBES:
        if nprobe > index.nlist:
            break
        index.nprobe = nprobe
        found = _others(index.search(queries, RECALL_K + 1)[1], query_ids)
        by_nprobe[str(nprobe)] = recall_at_k(found, exact)
        if by_nprobe[str(nprobe)] >= target:
            return nprobe, by_nprobe
    return int(list(by_nprobe)[-1]), by_nprobe


def _others(neighbours: np.ndarray, query_ids: np.ndarray) -> np.ndarray:
    """Each row's first RECALL_K ids other than the query's own (-1 pads a row that ran short)."""
    rows = [[i for i in row if i != own][:RECALL_K] for row, own in zip(neighbours.tolist(), query_ids.tolist())]
    return np.array([row + [-1] * (RECALL_K - len(row)) for row in rows])


class PassageIndex:
    """A built index, loaded for search: faiss ids are positions in the concatenated passages files."""

    def __init__(self, output: Path, meta: dict, index, rows: pa.Table):
        self.output = output
        self.meta = meta
        self.index = index
        self.rows = rows  # per id: file (index into meta["files"]), row, label, domain
        self.files = [PassageFile(**f) for f in meta["files"]]
        self.offsets = np.cumsum([0] + [f.rows for f in self.files])

    @classmethod
    def load(cls, output: str | Path) -> PassageIndex:
        """Raises NoPassagesError, or NoIndexError when the index is missing or older than the passages."""
        import faiss

        output = Path(output)
        paths = passage_files(output)
        index_dir = output / INDEX_DIR
        meta = _read_meta(index_dir)
        if not meta or not (index_dir / FAISS_FILE).is_file():
            raise NoIndexError(f"{output}: no index yet; run `portrayal-audit index {output}` first")
        cls.check(output, meta, paths)
        index = faiss.read_index(str(index_dir / FAISS_FILE))
        if meta["faiss"]["kind"] == "ivf":
            index.nprobe = meta["faiss"]["nprobe"]
        return cls(output, meta, index, pq.read_table(index_dir / ROWS_FILE))

    @staticmethod
    def check(output: Path, meta: dict, paths: list[Path] | None = None) -> None:
        """Raise NoIndexError when passages/ no longer holds the files (names, sizes) the index was built on."""
        paths = passage_files(output) if paths is None else paths
        on_disk = {p.name: p.stat().st_size for p in paths}
        indexed = {f["name"]: f["size"] for f in meta["files"]}
        if on_disk != indexed or meta.get("format") != FORMAT_VERSION:
            raise NoIndexError(
                f"{output}: the index is out of date (passages/ changed since it was built); "
                f"run `portrayal-audit index {output}` to update it"
            )

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def search(self, queries: np.ndarray, k: int, ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (similarities, ids) per query, among `ids` only when given.

        A subset of at most SUBSET_EXACT_MAX passages is searched exactly over its stored vectors;
        a larger one through the index with an id selector (exact for flat, approximate for IVF).
        """
        import faiss

        if ids is None:
            return search_index(self.index, queries, k)
        if len(ids) == 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        if len(ids) <= SUBSET_EXACT_MAX:
            scores, local = faiss.knn(queries, self.vectors(ids), min(k, len(ids)), metric=faiss.METRIC_INNER_PRODUCT)
            return scores, np.where(local >= 0, ids[np.maximum(local, 0)], -1)
        selector = faiss.IDSelectorBatch(ids)
        if self.meta["faiss"]["kind"] == "flat":
            return search_index(self.index, queries, k, faiss.SearchParameters(sel=selector))
        return search_index(self.index, queries, k, faiss.SearchParametersIVF(sel=selector, nprobe=self.index.nprobe))

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The stored embeddings of `ids`, read from the per-file .npy (memory-mapped)."""
        files = np.searchsorted(self.offsets, ids, side="right") - 1
        out = np.empty((len(ids), self.meta["dim"]), dtype=np.float32)
        for file in np.unique(files):
            where = np.flatnonzero(files == file)
            matrix = np.load(_embeddings_path(self.output / INDEX_DIR, self.files[file].name), mmap_mode="r")
            out[where] = matrix[ids[where] - self.offsets[file]]
        return out

    def texts(self) -> pa.ChunkedArray:
        """The text of every passage, in id order (for literal search)."""
        tables = [pq.read_table(self.path(f.name), columns=["text"]) for f in self.files]
        return pa.concat_tables(tables).column("text")

    def path(self, name: str) -> Path:
        return self.output / "passages" / name

    def fetch(self, ids: np.ndarray) -> pa.Table:
        """The passages rows of `ids`, in that order, read only from the row groups that hold them."""
        files = np.searchsorted(self.offsets, ids, side="right") - 1
        parts, positions = [], []
        for file in np.unique(files):
            where = np.flatnonzero(files == file)
            parts.append(take_rows(self.path(self.files[file].name), ids[where] - self.offsets[file]))
            positions.append(where)
        if not parts:
            return pq.read_schema(self.path(self.files[0].name)).empty_table()
        table = pa.concat_tables(parts)
        return table.take(np.argsort(np.concatenate(positions), kind="stable"))


def search_index(index, queries: np.ndarray, k: int, params=None) -> tuple[np.ndarray, np.ndarray]:
    """`index.search`, on one thread for a single query: faiss's threads cost more than they save
    there (on a busy 2-core machine, 24 ms instead of 0.4 ms for one query over 10k passages)."""
    import faiss

    if len(queries) > 1:
        return index.search(queries, k, params=params)
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        return index.search(queries, k, params=params)
    finally:
        faiss.omp_set_num_threads(threads)


def take_rows(path: Path, rows: np.ndarray) -> pa.Table:
    """Rows `rows` of a Parquet file, in that order, reading only the row groups that hold them."""
    handle = pq.ParquetFile(path)
    bounds = np.cumsum([0] + [handle.metadata.row_group(g).num_rows for g in range(handle.num_row_groups)])
    groups = np.searchsorted(bounds, rows, side="right") - 1
    wanted = np.unique(groups)
    table = handle.read_row_groups(wanted.tolist())
    local_bounds = np.cumsum([0] + [handle.metadata.row_group(g).num_rows for g in wanted])
    local = local_bounds[np.searchsorted(wanted, groups)] + rows - bounds[groups]
    return table.take(local)


def _embed_files(output: Path, index_dir: Path, files: list[PassageFile], config: IndexConfig, encoder) -> None:
    encoder = encoder or shared_encoder()
    encoder.batch_size = config.batch_size
    bar = None
    if config.progress and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=sum(f.rows for f in files), desc="embedding passages", unit=" passages", leave=False)
    for f in files:
        handle = pq.ParquetFile(output / "passages" / f.name)
        target = _embeddings_path(index_dir, f.name)
        partial = target.with_name(target.name + ".inprogress")
        matrix = None
        done = 0
        for batch in handle.iter_batches(batch_size=config.chunk_rows, columns=["text"]):
            vectors = encoder.encode(batch.column("text").to_pylist())
            if matrix is None:
                matrix = np.lib.format.open_memmap(
                    partial, mode="w+", dtype=np.float32, shape=(f.rows, vectors.shape[1])
                )
            matrix[done : done + len(vectors)] = vectors
            done += len(vectors)
            if bar is not None:
                bar.update(len(vectors))
        matrix.flush()
        del matrix
        partial.replace(target)
    if bar is not None:
        bar.close()


@lru_cache(maxsize=1)
def shared_encoder():
    """The embedding model, loaded once per process (seconds on CPU) for indexing and every query."""
    from transformers.utils import logging

    from audit.embed import Encoder

    logging.disable_progress_bar()  # the weights-loading bar: noise before every query's answer
    return Encoder()


def _write_rows(output: Path, index_dir: Path, files: list[PassageFile]) -> None:
    """Per id, what filters need without reading the passages: its file, row, label and domain."""
    parts = []
    for number, f in enumerate(files):
        table = pq.read_table(output / "passages" / f.name, columns=["label", "url"])
        parts.append(
            pa.table(
                {
                    "file": pa.array(np.full(f.rows, number, dtype=np.int32)),
                    "row": pa.array(np.arange(f.rows, dtype=np.int32)),
                    "label": table.column("label"),
                    "domain": pa.array([registered_domain(u) for u in table.column("url").to_pylist()], pa.string()),
                }
            )
        )
    partial = index_dir / (ROWS_FILE + ".inprogress")
    pq.write_table(pa.concat_tables(parts), partial, compression="zstd")
    partial.replace(index_dir / ROWS_FILE)


def _write_faiss(index, path: Path) -> None:
    import faiss

    partial = path.with_name(path.name + ".inprogress")
    faiss.write_index(index, str(partial))
    partial.replace(path)


def _atomic_write_text(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".inprogress")
    partial.write_text(text)
    partial.replace(path)


def _read_meta(index_dir: Path) -> dict:
    path = index_dir / META_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def _embeddings_path(index_dir: Path, name: str) -> Path:
    return index_dir / EMBEDDINGS_DIR / (name + ".npy")
