"""Classifier metrics on labelled text: per-label precision/recall/F1, confusion, macro-F1, ECE."""

from __future__ import annotations

import gzip
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from audit.labels import LABELS


@dataclass
class EvalReport:
    n: int
    per_label: dict[str, dict[str, float]]  # precision, recall, f1, support
    confusion: list[list[int]]  # rows: true label, columns: predicted, in LABELS order
    macro_f1: float
    accuracy: float
    ece: float  # expected calibration error of the top-label probability, 15 equal-width bins

    def as_dict(self) -> dict:
        return asdict(self)

    def format(self) -> str:
        lines = [f"{'label':<20} {'precision':>9} {'recall':>7} {'f1':>6} {'support':>8}"]
        for label in LABELS:
            m = self.per_label[label]
            lines.append(f"{label:<20} {m['precision']:>9.3f} {m['recall']:>7.3f} {m['f1']:>6.3f} {m['support']:>8d}")
        lines.append(f"macro-F1 {self.macro_f1:.3f}   accuracy {self.accuracy:.3f}   ECE {self.ece:.3f}   n={self.n}")
        width = max(len(label) for label in LABELS)
        header = " " * (width + 2) + " ".join(f"{label[:8]:>8}" for label in LABELS)
        lines += ["", "confusion (rows: true, columns: predicted)", header]
        for label, row in zip(LABELS, self.confusion):
            lines.append(f"{label:<{width}}  " + " ".join(f"{count:>8d}" for count in row))
        return "\n".join(lines)


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> float:
    edges = np.linspace(0.0, 1.0, bins + 1)
    total = 0.0
    for low, high in zip(edges[:-1], edges[1:]):
        mask = (confidence > low) & (confidence <= high)
        if mask.any():
            total += mask.mean() * abs(confidence[mask].mean() - correct[mask].mean())
    return float(total)


def evaluate(true_labels: list[str], predicted_labels: list[str], probs: np.ndarray) -> EvalReport:
    """Metrics of predictions against truth; `probs` has one row per example in LABELS order."""
    index = {label: i for i, label in enumerate(LABELS)}
    truth = np.array([index[label] for label in true_labels])
    predicted = np.array([index[label] for label in predicted_labels])
    confusion = np.zeros((len(LABELS), len(LABELS)), dtype=int)
    np.add.at(confusion, (truth, predicted), 1)
    per_label = {}
    f1s = []
    for i, label in enumerate(LABELS):
        tp = confusion[i, i]
        precision = tp / confusion[:, i].sum() if confusion[:, i].sum() else 0.0
        recall = tp / confusion[i, :].sum() if confusion[i, :].sum() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_label[label] = {
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(f1),
            "support": int(confusion[i, :].sum()),
        }
        if confusion[i, :].sum():
            f1s.append(f1)
    top = probs[np.arange(len(predicted)), predicted] if len(predicted) else np.zeros(0)
    return EvalReport(
        n=len(truth),
        per_label=per_label,
        confusion=confusion.tolist(),
        macro_f1=float(np.mean(f1s)) if f1s else 0.0,
        accuracy=float((truth == predicted).mean()) if len(truth) else 0.0,
        ece=expected_calibration_error(top, (truth == predicted).astype(float)),
    )


def cascade_report(cascade, rows: list[dict]) -> EvalReport:
    """Metrics of a `Cascade` on labelled rows: exactly what `portrayal-audit eval` prints."""
    results = cascade.classify_many([r["text"] for r in rows])
    return evaluate([r["label"] for r in rows], [r.label for r in results], np.stack([r.probs for r in results]))


def background_flags(cascade, paths: list[Path], examples: int = 20) -> dict:
    """How many real web documents (JSONL or JSONL.gz with `text`) the cascade flags, with the
    flagged ones listed for a reader to check: the false-positive rate a scan will show."""
    documents = []
    for path in paths:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as handle:
            for number, line in enumerate(handle):
                row = json.loads(line)
                if isinstance(row.get("text"), str) and row["text"].strip():
                    documents.append((f"{path.name}#{number}", row.get("url"), row["text"]))
    results = cascade.classify_many([text for _, _, text in documents])
    flagged = [(doc, result) for doc, result in zip(documents, results) if result.flagged]
    return {
        "files": [str(p) for p in paths],
        "documents": len(documents),
        "flagged": len(flagged),
        "flagged_per_1000": round(1000 * len(flagged) / max(1, len(documents)), 3),
        "labels": {label: sum(r.label == label for r in results) for label in LABELS},
        "flagged_examples": [
            {"doc": doc, "url": url, "p_malevolent_ai": round(float(result.probs[0]), 3), "text": text[:300]}
            for (doc, url, text), result in flagged[:examples]
        ],
    }
