"""The fastText stage: scores the passages the gate let through.

datatrove's FastTextClassifierFilter is not used: in annotate-only mode (no keep or remove labels)
it crashes, and it caches model copies keyed by path, so a retrained model at the same path is
silently stale. This step loads the model straight from its folder, once per worker.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from audit import records
from audit.labels import LABELS, MALEVOLENT
from audit.models import CALIBRATION_FILE, FASTTEXT_FILE, Calibration, resolve_model_dir

_TOKEN = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]", re.UNICODE)
_LABEL_PREFIX = "__label__"


def fasttext_text(text: str) -> str:
    """The one normalization used both to train fastText and to query it: lowercased tokens."""
    return " ".join(_TOKEN.findall(text.lower()))


def decide_label(probs: np.ndarray, threshold: float) -> str:
    """`malevolent_ai` when its probability reaches `threshold`, else the likeliest other label."""
    if probs[0] >= threshold:
        return MALEVOLENT
    return LABELS[1 + int(np.argmax(probs[1:]))]


class FastTextScorer:
    """A trained fastText model with temperature calibration, giving probabilities in LABELS order."""

    def __init__(self, model_path, temperature: float = 1.0):
        import fasttext

        fasttext.FastText.eprint = lambda *args, **kwargs: None  # silence its load-time warning
        self.model = fasttext.load_model(str(model_path))
        self.temperature = temperature
        order = {label: i for i, label in enumerate(LABELS)}
        model_labels = [label.removeprefix(_LABEL_PREFIX) for label in self.model.get_labels()]
        missing = set(LABELS) - set(model_labels)
        if missing:
            raise ValueError(f"{model_path}: model lacks labels {sorted(missing)}")
        self._order = order

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


def score_passages(scorer: FastTextScorer, text: str, passages: list, prior: np.ndarray, threshold: float) -> int:
    """Give each passage probabilities (the model's if gated, else the gate's prior) and a label.

    Returns how many passages the model scored.
    """
    gated = [p for p in passages if p.gated]
    if gated:
        for passage, row in zip(gated, scorer.predict_proba([text[p.start : p.end] for p in gated])):
            passage.probs = row
    for passage in passages:
        if passage.probs is None:
            passage.probs = prior
        passage.label = decide_label(passage.probs, threshold)
    return len(gated)


class ClassifyStep(PipelineStep):
    """Gives every passage calibrated probabilities and a label.

    Gated passages are scored by fastText; the rest take the gate's prior. Nothing is dropped:
    this step annotates, and deciding what to keep is the manifest's job.
    """

    name = "🏷 fastText classify"
    type = "🔻 - CLASSIFY"
    _requires_dependencies = [("fasttext", "fasttext-numpy2-wheel")]

    def __init__(self, model_dir: str, threshold: float):
        super().__init__()
        self.model_dir = str(resolve_model_dir(model_dir))
        self.threshold = threshold
        self._scorer: FastTextScorer | None = None
        self._calibration: Calibration | None = None

    def _load(self) -> None:
        directory = Path(self.model_dir)
        self._calibration = Calibration.load(directory / CALIBRATION_FILE)
        self._scorer = FastTextScorer(directory / FASTTEXT_FILE, self._calibration.temperature)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if self._scorer is None:
            self._load()
        prior = np.asarray(self._calibration.gate_prior, dtype=np.float32)
        for document in data:
            passages = document.metadata.get(records.PASSAGES)
            if passages:
                with self.track_time():
                    scored = score_passages(self._scorer, document.text, passages, prior, self.threshold)
                self.stat_update("passages_scored", value=scored, unit="doc")
            yield document
