"""Fusion of the cascade's stages into calibrated probabilities.

A multinomial logistic regression over [log p_fastText, log p_head, log p_kNN, top similarity,
whether the document names AI], fitted on the dev split: text none of the stages was trained on,
so it learns how far to trust each one on unseen text, and its output is calibrated there.
Stored as plain weights and applied with numpy at scan time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FUSION_FILE = "fusion.json"
_EPS = 1e-4


def features(fasttext_probs, head_probs, knn_probs, top_similarity, mentions_ai) -> np.ndarray:
    """The fusion's inputs. `mentions_ai` (1 if the passage's document names AI, 0 if it reached the
    models only for being short) lets it learn how rarely text that never names AI portrays it."""
    columns = [np.log(p.astype(np.float64) + _EPS) for p in (fasttext_probs, head_probs, knn_probs)]
    scalars = [np.asarray(v, dtype=np.float64).reshape(-1, 1) for v in (top_similarity, mentions_ai)]
    return np.hstack([*columns, *scalars])


@dataclass
class FusionModel:
    coef: np.ndarray  # (n_labels, n_features)
    intercept: np.ndarray  # (n_labels,)

    def predict_proba(self, fasttext_probs, head_probs, knn_probs, top_similarity, mentions_ai) -> np.ndarray:
        x = features(fasttext_probs, head_probs, knn_probs, top_similarity, mentions_ai)
        logits = x @ self.coef.T + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        return (probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)

    @classmethod
    def fit(cls, inputs: tuple, truth: np.ndarray, n_labels: int, c: float = 1.0) -> FusionModel:
        """`inputs`: the five arguments of `features`, for the fitting examples."""
        from sklearn.linear_model import LogisticRegression

        x = features(*inputs)
        model = LogisticRegression(C=c, max_iter=5000, tol=1e-8)  # lbfgs to a tight tolerance: reproducible
        model.fit(x, truth)
        coef = np.zeros((n_labels, x.shape[1]))
        intercept = np.full(n_labels, -20.0)  # a label absent from the fitting data is never predicted
        coef[model.classes_] = model.coef_
        intercept[model.classes_] = model.intercept_
        return cls(coef=coef.round(6), intercept=intercept.round(6))

    def save(self, directory: Path) -> None:
        data = {"coef": self.coef.tolist(), "intercept": self.intercept.tolist()}
        (directory / FUSION_FILE).write_text(json.dumps(data) + "\n")

    @classmethod
    def load(cls, directory: Path) -> FusionModel:
        data = json.loads((directory / FUSION_FILE).read_text())
        return cls(coef=np.array(data["coef"]), intercept=np.array(data["intercept"]))
