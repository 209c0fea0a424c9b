"""The classifier cascade as a plain Python object: text in, DocumentResult out.

The pipeline runs the same pieces as datatrove steps; this is the way to classify a handful of
texts from Python, and what `eval` and `train` measure.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from audit.classify import FastTextScorer, score_passages
from audit.fuse import DocumentResult, fuse_document, unclassified_result
from audit.gate import GateConfig, LexicalGate
from audit.models import CALIBRATION_FILE, FASTTEXT_FILE, Calibration, resolve_model_dir
from audit.segment import SegmentConfig, segment


class Cascade:
    """segment -> gate -> fastText -> fuse, with the models of `model_dir` (default: shipped)."""

    def __init__(
        self,
        model_dir: str | Path | None = None,
        threshold: float | None = None,
        segment_config: SegmentConfig = SegmentConfig(),
        gate_config: GateConfig = GateConfig(),
        calibration: Calibration | None = None,
    ):
        directory = resolve_model_dir(model_dir)
        self.calibration = calibration or Calibration.load(directory / CALIBRATION_FILE)
        self.threshold = self.calibration.threshold if threshold is None else threshold
        self.scorer = FastTextScorer(directory / FASTTEXT_FILE, self.calibration.temperature)
        self.segment_config = segment_config
        self.gate = LexicalGate(gate_config)
        self.prior = np.asarray(self.calibration.gate_prior, dtype=np.float32)

    def classify(self, text: str) -> DocumentResult:
        passages = segment(text, self.segment_config)
        if not passages:
            return unclassified_result()
        passed = self.gate.passes(text[: passages[-1].end])
        for passage in passages:
            passage.gated = passed
        score_passages(self.scorer, text, passages, self.prior, self.threshold)
        return fuse_document(passages, self.threshold)

    def classify_many(self, texts: list[str]) -> list[DocumentResult]:
        return [self.classify(text) for text in texts]
