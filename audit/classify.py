"""The model stages of the cascade: fastText on gated passages, then the embedding stage on the
passages fastText leaves uncertain or not `unrelated`, fused into calibrated probabilities.

datatrove's FastTextClassifierFilter is not used: in annotate-only mode (no keep or remove labels)
it crashes, and it caches model copies keyed by path, so a retrained model at the same path is
silently stale. Models here load straight from their folder, once per worker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from audit import records
from audit.labels import LABELS, UNRELATED
from audit.models import CALIBRATION_FILE, FASTTEXT_FILE, Calibration, resolve_model_dir

_TOKEN = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]", re.UNICODE)
_LABEL_PREFIX = "__label__"
_UNRELATED = LABELS.index(UNRELATED)

STAGES = ("fasttext", "embedding")


def fasttext_text(text: str) -> str:
    """The one normalization used both to train fastText and to query it: lowercased tokens."""
    return " ".join(_TOKEN.findall(text.lower()))


class FastTextScorer:
    """A trained fastText model with temperature calibration, giving probabilities in LABELS order."""

    def __init__(self, model_path, temperature: float = 1.0):
        import fasttext

        fasttext.FastText.eprint = lambda *args, **kwargs: None  # silence its load-time warning
        self.model = fasttext.load_model(str(model_path))
        self.temperature = temperature
        model_labels = [label.removeprefix(_LABEL_PREFIX) for label in self.model.get_labels()]
        missing = set(LABELS) - set(model_labels)
        if missing:
            raise ValueError(f"{model_path}: model lacks labels {sorted(missing)}")
        self._order = {label: i for i, label in enumerate(LABELS)}

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """Calibrated probabilities, shape (len(texts), 5)."""
        if not texts:
            return np.zeros((0, len(LABELS)), dtype=np.float32)
        labels, probs = self.model.predict([fasttext_text(t) for t in texts], k=len(LABELS))
        out = np.full((len(texts), len(LABELS)), 1e-6, dtype=np.float64)
        for row, (row_labels, row_probs) in enumerate(zip(labels, probs)):
            for label, p in zip(row_labels, row_probs):
                out[row, self._order[label.removeprefix(_LABEL_PREFIX)]] = max(float(p), 1e-6)
        logits = np.log(out) / self.temperature
        logits -= logits.max(axis=1, keepdims=True)
        calibrated = np.exp(logits)
        calibrated /= calibrated.sum(axis=1, keepdims=True)
        return calibrated.astype(np.float32)


@dataclass
class ModelStages:
    """The loaded models of the enabled stages, and the gate's prior for passages they never see."""

    fasttext: FastTextScorer | None
    embedding: object | None  # audit.embed.EmbeddingScorer, imported lazily (torch is heavy)
    prior: np.ndarray
    embed_below: float  # passages whose fastText p_unrelated is below this go to the embedding stage

    @classmethod
    def load(cls, model_dir: str | Path | None, stages: tuple[str, ...] = STAGES) -> ModelStages:
        unknown = set(stages) - set(STAGES)
        if unknown or not stages:
            raise ValueError(f"stages must be a non-empty subset of {', '.join(STAGES)}; got {', '.join(stages)}")
        directory = resolve_model_dir(model_dir)
        calibration = Calibration.load(directory / CALIBRATION_FILE)
        fasttext_scorer = None
        if "fasttext" in stages:
            fasttext_scorer = FastTextScorer(directory / FASTTEXT_FILE, calibration.temperature)
        embedding = None
        if "embedding" in stages:
            from audit.embed import EmbeddingScorer

            embedding = EmbeddingScorer(directory, fused="fasttext" in stages)
        return cls(fasttext_scorer, embedding, np.asarray(calibration.gate_prior, np.float32), calibration.embed_below)

    def score(self, items: list[tuple[str, list]]) -> dict[str, int]:
        """Give every passage of `items` (text, passages) its probabilities; returns stage counts."""
        gated = [(text, p) for text, passages in items for p in passages if p.gated]
        candidates = gated
        if self.fasttext is not None and gated:
            for (_, passage), row in zip(gated, self.fasttext.predict_proba([t[p.start : p.end] for t, p in gated])):
                passage.probs = row
            candidates = [(t, p) for t, p in gated if p.probs[_UNRELATED] < self.embed_below]
        if self.embedding is None:
            candidates = []
        if candidates:
            texts = [t[p.start : p.end] for t, p in candidates]
            previous = np.stack([p.probs for _, p in candidates]) if self.fasttext is not None else None
            mentions = np.array([p.mentions_ai for _, p in candidates], dtype=np.float64)
            for (_, passage), row in zip(candidates, self.embedding.predict_proba(texts, previous, mentions)):
                passage.probs = row
        for _, passages in items:
            for passage in passages:
                if passage.probs is None:
                    passage.probs = self.prior
        return {"passages_fasttext": len(gated) if self.fasttext else 0, "passages_embedded": len(candidates)}


class ClassifyStep(PipelineStep):
    """Gives every passage calibrated probabilities, in batches of documents.

    Nothing is dropped: this step annotates, and deciding what to keep is the manifest's job.
    """

    name = "🏷 Classify (fastText + embeddings)"
    type = "🔻 - CLASSIFY"
    _requires_dependencies = [("fasttext", "fasttext-numpy2-wheel")]

    def __init__(self, model_dir: str, stages: tuple[str, ...] = STAGES, batch_documents: int = 256):
        super().__init__()
        self.model_dir = str(resolve_model_dir(model_dir))
        self.stages = tuple(stages)
        self.batch_documents = batch_documents
        self._models: ModelStages | None = None

    def _flush(self, batch: list[Document]) -> list[Document]:
        with self.track_time(unit="batch"):
            items = [(d.text, d.metadata[records.PASSAGES]) for d in batch if d.metadata.get(records.PASSAGES)]
            for name, count in self._models.score(items).items():
                self.stat_update(name, value=count, unit="batch")
        return batch

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if self._models is None:
            self._models = ModelStages.load(self.model_dir, self.stages)
        batch: list[Document] = []
        for document in data:
            batch.append(document)
            if len(batch) >= self.batch_documents:
                yield from self._flush(batch)
                batch = []
        if batch:
            yield from self._flush(batch)
