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


def small_split(tmp_path: Path) -> tuple[Path, Path]:
    rows = read_labelled(REPO / "corpora" / "train.jsonl")
    random.Random(1).shuffle(rows)
    picked = []
    for label in LABELS:
        picked += [r for r in rows if r["label"] == label][:40]
    train, dev = tmp_path / "train.jsonl", tmp_path / "dev.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in picked[::2] + picked[1::4]))
    dev.write_text("".join(json.dumps(r) + "\n" for r in picked[3::4]))
    return train, dev


def test_train_is_reproducible_and_eval_reports_metrics(tmp_path):
    train, dev = small_split(tmp_path)
    for name in ("a", "b"):
        run_cli(
            "train",
            "--train-file",
            str(train),
            "--dev-file",
            str(dev),
            "--output-dir",
            str(tmp_path / name),
            "--epoch",
            "5",
            "--no-quantize",
        )
    assert (tmp_path / "a" / "fasttext.ftz").read_bytes() == (tmp_path / "b" / "fasttext.ftz").read_bytes()
    card = (tmp_path / "a" / "MODEL_CARD.md").read_text()
    assert "epoch 5" in card and "Corpus sha256" in card

    result = run_cli("eval", str(dev), "--model-dir", str(tmp_path / "a"), "--json", str(tmp_path / "m.json"))
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert set(metrics["per_label"]) == set(LABELS)
    assert metrics["n"] == len(dev.read_text().splitlines())
    assert sum(map(sum, metrics["confusion"])) == metrics["n"]
    assert f"macro-F1 {metrics['macro_f1']:.3f}" in result.stdout
    training = json.loads((tmp_path / "a" / "training.json").read_text())
    assert training["dev_report"]["macro_f1"] == metrics["macro_f1"]  # the card's figure is the command's


def test_eval_rejects_unknown_labels_with_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine", "label": "unrelated"}\n{"text": "x", "label": "evil_ai"}\n')
    result = run_cli("eval", str(bad), check=False)
    assert result.returncode == 2 and f"{bad}:2" in result.stderr and "evil_ai" in result.stderr
