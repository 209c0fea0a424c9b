"""Fusion of the fastText and embedding stages into calibrated probabilities.

A multinomial logistic regression over [log p_fastText, log p_kNN, top similarity], stacked on
out-of-fold predictions over the training split (fastText trained without the example's fold, kNN
without the example's group), so it learns how far to trust each stage on text neither has seen.
Stored as plain weights and applied with numpy at scan time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FUSION_FILE = "fusion.json"
_EPS = 1e-4


def features(fasttext_probs: np.ndarray, knn_probs: np.ndarray, top_similarity: np.ndarray) -> np.ndarray:
    return np.hstack([np.log(fasttext_probs + _EPS), np.log(knn_probs + _EPS), top_similarity.reshape(-1, 1)]).astype(
        np.float64
    )


@dataclass
class FusionModel:
    coef: np.ndarray  # (n_labels, n_features)
    intercept: np.ndarray  # (n_labels,)

    def predict_proba(self, fasttext_probs: np.ndarray, knn_probs: np.ndarray, top_similarity: np.ndarray):
        logits = features(fasttext_probs, knn_probs, top_similarity) @ self.coef.T + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        return (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)

    @classmethod
    def fit(cls, fasttext_probs, knn_probs, top_similarity, truth: np.ndarray, n_labels: int, c: float = 1.0):
        from sklearn.linear_model import LogisticRegression

        x = features(fasttext_probs, knn_probs, top_similarity)
        model = LogisticRegression(C=c, max_iter=2000)
        model.fit(x, truth)
        coef = np.zeros((n_labels, x.shape[1]))
        intercept = np.full(n_labels, -20.0)  # a label absent from the fitting data is never predicted
        coef[model.classes_] = model.coef_
        intercept[model.classes_] = model.intercept_
        return cls(coef=coef, intercept=intercept)

    def save(self, directory: Path) -> None:
        data = {"coef": self.coef.round(6).tolist(), "intercept": self.intercept.round(6).tolist()}
        (directory / FUSION_FILE).write_text(json.dumps(data) + "\n")

    @classmethod
    def load(cls, directory: Path) -> FusionModel:
        data = json.loads((directory / FUSION_FILE).read_text())
        return cls(coef=np.array(data["coef"]), intercept=np.array(data["intercept"]))
