"""Where the shipped models live and what their calibration file says.

The models ship in the repository's `classifiers/` folder, installed as the package data
`audit.classifiers`, so `scan` finds them with no path from the user. `--model-dir` (or the
environment variable PORTRAYAL_AUDIT_MODEL_DIR) points elsewhere, e.g. at a freshly trained model.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

from audit.labels import LABELS
from audit.records import InputError

FASTTEXT_FILE = "fasttext.bin"  # fastText's own format, quantized or not
CALIBRATION_FILE = "calibration.json"
MODEL_CARD_FILE = "MODEL_CARD.md"


@dataclass
class Calibration:
    """What training measured on the dev set and the classifier needs at scan time."""

    temperature: float = 1.0  # fastText log-probabilities are divided by this (temperature scaling)
    gate_prior: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0, 0.0, 1.0])  # P(label | gate rejects)
    threshold: float = 0.5  # default p_malevolent_ai at which a passage or document is flagged
    embed_below: float = 0.9  # gated passages with fastText p_unrelated below this go to the embedding stage
    labels: list[str] = field(default_factory=lambda: list(LABELS))
    model_version: str = "untrained"

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> Calibration:
        data = json.loads(path.read_text())
        calibration = cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
        if tuple(calibration.labels) != LABELS:
            raise ValueError(f"{path}: labels {calibration.labels} do not match this version's {list(LABELS)}")
        return calibration


def default_model_dir() -> Path:
    """The model folder used when the user names none."""
    if env := os.environ.get("PORTRAYAL_AUDIT_MODEL_DIR"):
        return Path(env)
    return Path(str(resources.files("audit.classifiers")))


def resolve_model_dir(model_dir: str | Path | None) -> Path:
    """`model_dir`, or the shipped one; raises InputError naming what is missing."""
    directory = Path(model_dir) if model_dir else default_model_dir()
    for name in (FASTTEXT_FILE, CALIBRATION_FILE):
        if not (directory / name).is_file():
            raise InputError(
                f"model folder {directory} has no {name}; train one with `portrayal-audit train` or pass --model-dir"
            )
    return directory


def file_digest(path: Path) -> str:
    """Short sha256 of a file: names a model version and keys caches, so a retrained model is never stale."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]
