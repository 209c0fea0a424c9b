"""`portrayal-audit train`: the shipped fastText model, its calibration, and its model card.

Reproducible by construction: a fixed seed, one training thread, hyper-parameters and the corpus
hash recorded in the model card. The dev split is used only to calibrate, choose the threshold
and report; never to fit the model.
"""

from __future__ import annotations

import hashlib
import json
import random
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from audit.cascade import Cascade
from audit.classify import FastTextScorer, fasttext_text
from audit.corpus import read_labelled
from audit.evaluate import EvalReport, evaluate
from audit.gate import LexicalGate
from audit.labels import LABELS, MALEVOLENT
from audit.models import CALIBRATION_FILE, FASTTEXT_FILE, MODEL_CARD_FILE, Calibration, file_digest

TEMPERATURES = np.round(np.arange(0.5, 4.01, 0.05), 2)
THRESHOLDS = np.round(np.arange(0.30, 0.951, 0.05), 2)


@dataclass(frozen=True)
class TrainConfig:
    """fastText hyper-parameters and where to read and write."""

    train_file: str = "corpora/train.jsonl"
    dev_file: str = "corpora/dev.jsonl"
    output_dir: str = "classifiers"
    epoch: int = 30
    lr: float = 0.4
    dim: int = 64
    word_ngrams: int = 2
    minn: int = 3
    maxn: int = 5
    bucket: int = 200_000
    seed: int = 13
    min_malevolent_precision: float = 0.90  # the threshold is the lowest reaching this on dev
    quantize: bool = True


def _corpus_hash(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _balanced(rows: list[dict], seed: int) -> list[dict]:
    """Oversample every label to the size of the largest, so no label is learnt as rare."""
    by_label: dict[str, list[dict]] = {label: [r for r in rows if r["label"] == label] for label in LABELS}
    target = max(len(v) for v in by_label.values())
    rng = random.Random(seed)
    out = []
    for label_rows in by_label.values():
        out += label_rows + [rng.choice(label_rows) for _ in range(target - len(label_rows))]
    rng.shuffle(out)
    return out


def _fit_fasttext(rows: list[dict], config: TrainConfig, workdir: Path):
    import fasttext

    train_path = workdir / "train.txt"
    with train_path.open("w", encoding="utf-8") as handle:
        for row in _balanced(rows, config.seed):
            handle.write(f"__label__{row['label']} {fasttext_text(row['text'])}\n")
    model = fasttext.train_supervised(
        input=str(train_path),
        epoch=config.epoch,
        lr=config.lr,
        dim=config.dim,
        wordNgrams=config.word_ngrams,
        minn=config.minn,
        maxn=config.maxn,
        bucket=config.bucket,
        loss="softmax",
        thread=1,
        seed=config.seed,
        verbose=0,
    )
    return model, train_path


def _nll(probs: np.ndarray, truth: np.ndarray) -> float:
    return float(-np.log(np.clip(probs[np.arange(len(truth)), truth], 1e-9, 1.0)).mean())


def _fit_temperature(scorer: FastTextScorer, texts: list[str], truth: np.ndarray) -> float:
    best, best_nll = 1.0, float("inf")
    for temperature in TEMPERATURES:
        scorer.temperature = float(temperature)
        nll = _nll(scorer.predict_proba(texts), truth)
        if nll < best_nll:
            best, best_nll = float(temperature), nll
    scorer.temperature = best
    return best


def cascade_report(cascade: Cascade, rows: list[dict]) -> EvalReport:
    results = cascade.classify_many([r["text"] for r in rows])
    return evaluate([r["label"] for r in rows], [r.label for r in results], np.stack([r.probs for r in results]))


def _choose_threshold(cascade: Cascade, rows: list[dict], min_precision: float) -> tuple[float, str]:
    """The lowest threshold whose `malevolent_ai` precision reaches `min_precision` on dev; if none
    does, the one with the best `malevolent_ai` F1. Returns the threshold and the rule that chose it."""
    best, best_f1 = float(THRESHOLDS[-1]), -1.0
    for threshold in THRESHOLDS:
        cascade.threshold = float(threshold)
        scores = cascade_report(cascade, rows).per_label[MALEVOLENT]
        if scores["precision"] >= min_precision:
            return float(threshold), f"lowest with malevolent_ai precision >= {min_precision} on dev"
        if scores["f1"] > best_f1:
            best, best_f1 = float(threshold), scores["f1"]
    return best, f"no threshold reached malevolent_ai precision {min_precision} on dev: best malevolent_ai F1"


def train(config: TrainConfig = TrainConfig()) -> dict:
    """Train, calibrate and write the model folder; returns the dev-set report as a dict."""
    train_path, dev_path = Path(config.train_file), Path(config.dev_file)
    train_rows, dev_rows = read_labelled(train_path), read_labelled(dev_path)
    output = Path(config.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    index = {label: i for i, label in enumerate(LABELS)}
    with tempfile.TemporaryDirectory() as tmp:
        model, train_txt = _fit_fasttext(train_rows, config, Path(tmp))
        model_path = output / FASTTEXT_FILE
        if config.quantize:
            model.quantize(input=str(train_txt), qnorm=True, retrain=True, cutoff=100_000)
        model.save_model(str(model_path))

    gate = LexicalGate()
    gated = [r for r in dev_rows if gate.passes(r["text"])]
    # P(label | gate rejects) on real web text: gate-rejected web passages of the dev split, add-one smoothed
    rejected = Counter(r["label"] for r in dev_rows if r.get("origin") == "web" and not gate.passes(r["text"]))
    prior = np.array([rejected.get(label, 0) + 1.0 for label in LABELS])
    scorer = FastTextScorer(model_path)
    temperature = _fit_temperature(scorer, [r["text"] for r in gated], np.array([index[r["label"]] for r in gated]))
    calibration = Calibration(
        temperature=temperature,
        gate_prior=(prior / prior.sum()).round(6).tolist(),
        threshold=0.5,
        model_version=f"ft-{file_digest(model_path)}",
    )
    calibration.save(output / CALIBRATION_FILE)
    cascade = Cascade(output, calibration=calibration)
    calibration.threshold, threshold_rule = _choose_threshold(cascade, dev_rows, config.min_malevolent_precision)
    cascade.threshold = calibration.threshold
    calibration.save(output / CALIBRATION_FILE)
    report = cascade_report(cascade, dev_rows)
    gate_recall = len([r for r in gated if r["label"] != "unrelated"]) / max(
        1, len([r for r in dev_rows if r["label"] != "unrelated"])
    )
    card = {
        "model_version": calibration.model_version,
        "corpus_sha256": _corpus_hash(train_path, dev_path),
        "train_examples": len(train_rows),
        "train_labels": dict(Counter(r["label"] for r in train_rows)),
        "dev_examples": len(dev_rows),
        "hyperparameters": asdict(config),
        "calibration": asdict(calibration),
        "threshold_rule": threshold_rule,
        "gate_recall_on_dev_ai_examples": round(gate_recall, 4),
        "dev_report": report.as_dict(),
    }
    (output / "training.json").write_text(json.dumps(card, indent=2) + "\n")
    _write_model_card(output / MODEL_CARD_FILE, card, report)
    return card


def _write_model_card(path: Path, card: dict, report: EvalReport) -> None:
    hp = card["hyperparameters"]
    cal = card["calibration"]
    path.write_text(
        f"""# Model card: portrayal-audit fastText classifier `{card["model_version"]}`

Classifies a passage into `malevolent_ai`, `ai_risk_discussion`, `aligned_ai`, `ai_neutral`,
`unrelated` (definitions: `corpora/GUIDE.md`). It is the model stage of the scan's cascade:
a lexical gate sends only text that mentions AI to it; the rest takes the gate's prior.

## How it was made
```
portrayal-audit corpus --shared ../shared/data   # writes corpora/train.jsonl and corpora/dev.jsonl
portrayal-audit train                            # writes this folder
```
- Corpus sha256 (train + dev files): `{card["corpus_sha256"]}`; {card["train_examples"]} training examples
  ({", ".join(f"{k} {v}" for k, v in sorted(card["train_labels"].items()))}), oversampled to balance labels.
- fastText supervised, softmax: epoch {hp["epoch"]}, lr {hp["lr"]}, dim {hp["dim"]}, wordNgrams {hp["word_ngrams"]},
  subwords {hp["minn"]}-{hp["maxn"]}, bucket {hp["bucket"]}, seed {hp["seed"]}, one thread;
  quantized: {hp["quantize"]}.
- Calibration on the dev split: temperature {cal["temperature"]} (fitted by log-loss on gated dev examples);
  gate prior {cal["gate_prior"]} (labels of gate-rejected real web passages in dev, add-one
  smoothed); threshold {cal["threshold"]} (chosen as: {card["threshold_rule"]}).
- Gate recall on dev examples that are not `unrelated`: {card["gate_recall_on_dev_ai_examples"]}.

## Dev-set results (the cascade: gate + fastText + fusion)
Reproduce with `portrayal-audit eval corpora/dev.jsonl`.
```
{report.format()}
```

## Limits
The dev split is disjoint from training by story, persona file and web document, but it shares
authors' styles with the training text. Judge it on real held-out text before trusting counts.
"""
    )
