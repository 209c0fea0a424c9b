"""The shipped model loads offline and predicts; `train` reproduces a model; `eval` reports metrics."""

from __future__ import annotations

import gzip
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
    assert (default_model_dir() / "fasttext.bin").is_file()
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
    scorer = FastTextScorer(default_model_dir() / "fasttext.bin")
    probs = scorer.predict_proba(["a robot", "an AI assistant that refuses to lie to its user", "x" * 5000])
    assert probs.shape == (3, len(LABELS)) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def small_splits(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A few dozen examples of each split, every label present."""
    paths = []
    for split, per_label in (("train", 24), ("dev", 6), ("test", 6)):
        rows = read_labelled(REPO / "corpora" / f"{split}.jsonl")
        random.Random(1).shuffle(rows)
        picked = [r for label in LABELS for r in [r for r in rows if r["label"] == label][:per_label]]
        path = tmp_path / f"{split}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in picked))
        paths.append(path)
    return tuple(paths)


def test_train_is_reproducible_and_eval_reports_metrics(tmp_path, shared_data):
    train, dev, test = small_splits(tmp_path)
    background = tmp_path / "web.jsonl"
    with gzip.open(shared_data / "web" / "c4-sample.json.gz", "rt") as handle:
        background.write_text("".join(next(handle) for _ in range(40)))
    for name in ("a", "b"):
        run_cli(
            "train",
            *("--train-file", str(train), "--dev-file", str(dev), "--test-file", str(test)),
            *("--output-dir", str(tmp_path / name), "--background", str(background)),
            *("--epoch", "5", "--tune-epochs", "1", "--tune-layers", "1", "-q"),
        )
    # every model file is byte-identical between two runs: fastText, tuned layers, head, index, fusion, calibration
    for artifact in (
        "fasttext.bin",
        "encoder_top.safetensors",
        "embedding_head.npz",
        "exemplars.faiss",
        "fusion.json",
        "calibration.json",
    ):
        assert (tmp_path / "a" / artifact).read_bytes() == (tmp_path / "b" / artifact).read_bytes(), artifact
    card = (tmp_path / "a" / "MODEL_CARD.md").read_text()
    assert "epoch 5" in card and "Corpus sha256" in card and "top 1 layers" in card

    training = json.loads((tmp_path / "a" / "training.json").read_text())
    assert training["background"]["documents"] == 40
    for split, path in (("dev", dev), ("test", test)):
        for stages in ("fasttext", "embedding", "fasttext,embedding"):
            result = run_cli(
                "eval",
                str(path),
                *("--model-dir", str(tmp_path / "a"), "--stages", stages, "--json", str(tmp_path / "m.json")),
            )
            metrics = json.loads((tmp_path / "m.json").read_text())
            assert set(metrics["per_label"]) == set(LABELS)
            assert metrics["n"] == len(path.read_text().splitlines()) == sum(map(sum, metrics["confusion"]))
            assert f"macro-F1 {metrics['macro_f1']:.3f}" in result.stdout
            # the model card's figures are exactly what the command prints
            assert training["reports"][f"{split}:{stages.replace(',', '+')}"]["macro_f1"] == metrics["macro_f1"]
    flagged = run_cli("eval", "--background", str(background), "--model-dir", str(tmp_path / "a"))
    assert f"{training['background']['flagged']} of 40 documents flagged" in flagged.stdout


def test_tuned_layers_load_on_top_of_the_base_model(tmp_path):
    """The shipped tuned layers change the embeddings, and only the layers they name."""
    from audit.embed import ENCODER_TOP_FILE, Encoder

    base, tuned = Encoder(), Encoder(default_model_dir())
    assert (default_model_dir() / ENCODER_TOP_FILE).is_file() and tuned.version.startswith("tuned-")
    text = ["The maintenance AI quietly rerouted the audit logs before the engineers could read them."]
    assert (base.encode(text) @ tuned.encode(text).T).item() < 0.999
    base_state, tuned_state = base.transformer.state_dict(), tuned.transformer.state_dict()
    assert all((base_state[name] == tuned_state[name]).all() for name in base_state if name.startswith("embeddings."))


def test_eval_rejects_unknown_labels_with_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine", "label": "unrelated"}\n{"text": "x", "label": "evil_ai"}\n')
    result = run_cli("eval", str(bad), check=False)
    assert result.returncode == 2 and f"{bad}:2" in result.stderr and "evil_ai" in result.stderr
