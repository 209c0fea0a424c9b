"""From passage probabilities to labels: each passage's, and the document's label, probabilities,
flag and spans.

A document's label is its dominant portrayal *of AI*: passages are averaged with weights equal to
their length times how likely they are to be about AI (1 - p_unrelated), so a long page of
unrelated text with one story about an AI takes the story's label, while a page with no AI
content stays `unrelated`. A one-passage document keeps its passage's probabilities. Every
non-`unrelated` passage is kept as a span, so a malevolent passage always surfaces.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from audit import records
from audit.labels import LABELS, MALEVOLENT, UNRELATED
from audit.segment import Passage

_UNRELATED = LABELS.index(UNRELATED)


def decide_label(probs: np.ndarray, threshold: float) -> str:
    """`malevolent_ai` when its probability reaches `threshold`, else the likeliest other label."""
    if probs[0] >= threshold:
        return MALEVOLENT
    return LABELS[1 + int(np.argmax(probs[1:]))]


@dataclass(slots=True)
class DocumentResult:
    label: str
    probs: np.ndarray  # in LABELS order, summing to 1
    flagged: bool
    spans: list[dict] = field(default_factory=list)


def aggregate_document(passages: list[Passage], threshold: float) -> DocumentResult:
    """Label scored passages and combine them into the document's result."""
    for passage in passages:
        passage.label = decide_label(passage.probs, threshold)
    lengths = np.array([p.end - p.start for p in passages], dtype=np.float64)
    probs = np.stack([p.probs for p in passages]).astype(np.float64)
    weights = lengths * np.clip(1.0 - probs[:, _UNRELATED], 1e-6, 1.0)
    doc = (weights[:, None] * probs).sum(axis=0) / weights.sum()
    label = decide_label(doc, threshold)
    spans = [
        {"start": p.start, "end": p.end, "label": p.label, "score": float(p.probs[LABELS.index(p.label)])}
        for p in passages
        if p.label != UNRELATED
    ]
    return DocumentResult(label=label, probs=doc.astype(np.float32), flagged=label == MALEVOLENT, spans=spans)


def rejected_result(prior: np.ndarray, threshold: float) -> DocumentResult:
    """The result of a document the gate kept from the models: the gate's prior, no spans."""
    probs = np.asarray(prior, dtype=np.float32)
    label = decide_label(probs, threshold)
    return DocumentResult(label=label, probs=probs, flagged=label == MALEVOLENT)


def unclassified_result() -> DocumentResult:
    """The result of a record with no text to classify (empty, no_text, not_html)."""
    probs = np.zeros(len(LABELS), dtype=np.float32)
    probs[_UNRELATED] = 1.0
    return DocumentResult(label=UNRELATED, probs=probs, flagged=False)


class AggregateStep(PipelineStep):
    """Attaches `metadata["result"]` (a DocumentResult) to every record document."""

    name = "🧮 Aggregate"
    type = "🔻 - CLASSIFY"

    def __init__(self, threshold: float, prior: list[float]):
        super().__init__()
        self.threshold = threshold
        self.prior = np.asarray(prior, dtype=np.float32)  # P(label | gate rejects), from calibration

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        for document in data:
            if not records.is_error(document):
                passages = document.metadata.get(records.PASSAGES)
                decision = document.metadata.get(records.GATE)
                if passages:
                    result = aggregate_document(passages, self.threshold)
                elif decision is not None and not decision.admitted:
                    result = rejected_result(self.prior, self.threshold)
                else:
                    result = unclassified_result()
                document.metadata[records.RESULT] = result
                self.stat_update(f"label_{result.label}")
            yield document
