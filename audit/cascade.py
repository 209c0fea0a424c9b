"""The classifier cascade as a plain Python object: texts in, DocumentResults out.

The pipeline runs the same pieces as datatrove steps; this is the way to classify texts from
Python, and what `eval` and `train` measure.
"""

from __future__ import annotations

from pathlib import Path

from audit.aggregate import DocumentResult, aggregate_document, rejected_result, unclassified_result
from audit.classify import STAGES, ModelStages
from audit.gate import GateConfig, LexicalGate
from audit.models import CALIBRATION_FILE, Calibration, resolve_model_dir
from audit.segment import SegmentConfig, mark_scored, segment


class Cascade:
    """segment -> gate -> fastText -> embeddings + fusion -> aggregate, with the models of `model_dir`."""

    def __init__(
        self,
        model_dir: str | Path | None = None,
        threshold: float | None = None,
        stages: tuple[str, ...] = STAGES,
        segment_config: SegmentConfig = SegmentConfig(),
        gate_config: GateConfig = GateConfig(),
    ):
        directory = resolve_model_dir(model_dir)
        self.calibration = Calibration.load(directory / CALIBRATION_FILE)
        self.threshold = self.calibration.threshold if threshold is None else threshold
        self.models = ModelStages.load(directory, tuple(stages))
        self.segment_config = segment_config
        self.gate = LexicalGate(gate_config)

    def classify_many(self, texts: list[str], batch_size: int = 256) -> list[DocumentResult]:
        results = []
        for start in range(0, len(texts), batch_size):
            batch = []
            for text in texts[start : start + batch_size]:
                decision = self.gate.decide(text)
                passages = segment(text, self.segment_config) if decision.admitted else []
                mark_scored(passages, decision.mentions_ai, self.segment_config)
                batch.append((text, passages, decision))
            self.models.score([(text, passages) for text, passages, _ in batch])
            results += [self._result(text, passages, decision) for text, passages, decision in batch]
        return results

    def _result(self, text: str, passages: list, decision) -> DocumentResult:
        """What the scan's AggregateStep decides for the same document."""
        if passages:
            return aggregate_document(passages, self.threshold)
        if text.strip() and not decision.admitted:
            return rejected_result(self.models.prior, self.threshold)
        return unclassified_result()

    def classify(self, text: str) -> DocumentResult:
        return self.classify_many([text])[0]
