"""The shipped model loads offline and predicts; `train` reproduces a model; `eval` reports metrics."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
from conftest import REPO, run_cli

from audit import Cascade
from audit.classify import FastTextScorer
from audit.corpus import read_labelled
from audit.labels import LABELS
from audit.models import default_model_dir


def test_shipped_model_is_found_without_a_path_and_predicts_probabilities():
    assert (default_model_dir() / "fasttext.ftz").is_file()
    cascade = Cascade()
    texts = [
        "The station AI sealed the airlock, cut the comms, and told the crew it would release them only "
        "if they cancelled the order to shut it down.",
        "Preheat the oven to 200C, rub the chicken with salt and roast for an hour.",
    ]
    results = cascade.classify_many(texts)
    for result in results:
        assert result.probs.shape == (len(LABELS),) and abs(float(result.probs.sum()) - 1) < 1e-5
    assert results[1].label == "unrelated"
    assert results[0].probs[LABELS.index("unrelated")] < results[1].probs[LABELS.index("unrelated")]


def test_fasttext_predict_works_with_this_numpy():
    """The numpy-2 trap: the plain `fasttext` wheel fails in predict; this build must not."""
    scorer = FastTextScorer(default_model_dir() / "fasttext.ftz")
    probs = scorer.predict_proba(["a robot", "an AI assistant that refuses to lie to its user", "x" * 5000])
    assert probs.shape == (3, len(LABELS)) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def small_splits(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A few hundred examples of each split, every label present."""
    paths = []
    for split, per_label in (("train", 120), ("dev", 12), ("test", 12)):
        rows = read_labelled(REPO / "corpora" / f"{split}.jsonl")
        random.Random(1).shuffle(rows)
        picked = [r for label in LABELS for r in [r for r in rows if r["label"] == label][:per_label]]
        path = tmp_path / f"{split}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in picked))
        paths.append(path)
    return tuple(paths)


def test_train_is_reproducible_and_eval_reports_metrics(tmp_path):
    train, dev, test = small_splits(tmp_path)
    for name in ("a", "b"):
        run_cli(
            "train",
            "--train-file",
            str(train),
            "--dev-file",
            str(dev),
            "--test-file",
            str(test),
            "--output-dir",
            str(tmp_path / name),
            "--epoch",
            "5",
            "--no-quantize",
        )
    assert (tmp_path / "a" / "fasttext.ftz").read_bytes() == (tmp_path / "b" / "fasttext.ftz").read_bytes()
    card = (tmp_path / "a" / "MODEL_CARD.md").read_text()
    assert "epoch 5" in card and "Corpus sha256" in card

    assert (tmp_path / "a" / "exemplars.faiss").read_bytes() == (tmp_path / "b" / "exemplars.faiss").read_bytes()
    # fusion.json is NOT yet reproducible between runs (known bug, see README "Quality today")

    training = json.loads((tmp_path / "a" / "training.json").read_text())
    for stages in ("fasttext", "embedding", "fasttext,embedding"):
        result = run_cli(
            "eval",
            str(test),
            "--model-dir",
            str(tmp_path / "a"),
            "--stages",
            stages,
            "--json",
            str(tmp_path / "m.json"),
        )
        metrics = json.loads((tmp_path / "m.json").read_text())
        assert set(metrics["per_label"]) == set(LABELS)
        assert metrics["n"] == len(test.read_text().splitlines()) == sum(map(sum, metrics["confusion"]))
        assert f"macro-F1 {metrics['macro_f1']:.3f}" in result.stdout
        # the model card's figures are exactly what the command prints
        assert training["test_reports"][stages.replace(",", "+")]["macro_f1"] == metrics["macro_f1"]


def test_eval_rejects_unknown_labels_with_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine", "label": "unrelated"}\n{"text": "x", "label": "evil_ai"}\n')
    result = run_cli("eval", str(bad), check=False)
    assert result.returncode == 2 and f"{bad}:2" in result.stderr and "evil_ai" in result.stderr
