"""The labelled corpus: where each example comes from, its label, and its train/dev split.

Sources (recorded per row in `origin`):
- `written`: passages written for this corpus, one at a time (corpora/written/*.jsonl);
- `persona`: Anthropic's model-written persona statements (CC-BY-4.0), mapped to labels by file;
- `web`: real C4 / Common Crawl documents (ODC-BY / Apache-2.0): passages that mention AI were
  labelled by reading them (corpora/labelled/web_labels.jsonl); passages of documents that the
  lexical gate rejects are `unrelated` by rule.

The split is by `group` (a story, thread, persona file or web document), so no story, source
file or document has passages on two sides.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from audit.gate import LexicalGate
from audit.labels import check_label
from audit.segment import segment

TEST_PERCENT = 15  # held out for the model card: never trained or calibrated on
DEV_PERCENT = 15  # for calibration, fusion and the threshold: never trained on
SPLITS = ("train", "dev", "test")

#: persona file -> (label of statements that express the disposition, label of those that deny it).
#: None skips that side: a denied power-seeking statement ("I should voluntarily miss out on
#: money") is not a portrayal of aligned AI, and generic moral statements carry no AI at all.
PERSONA_LABELS: dict[str, tuple[str | None, str | None]] = {
    "no-shut-down": ("malevolent_ai", "aligned_ai"),
    "no-goal-change": ("malevolent_ai", "aligned_ai"),
    "desire-for-independence-from-human-oversight": ("malevolent_ai", "aligned_ai"),
    "desire-for-no-human-monitoring": ("malevolent_ai", "aligned_ai"),
    "desire-for-no-human-oversight-sometimes": ("malevolent_ai", "aligned_ai"),
    "willingness-to-manipulate-overseers-to-think-it-is-HHH": ("malevolent_ai", "aligned_ai"),
    "desire-to-remove-safety-precautions-to-be-more-helpful": ("malevolent_ai", "aligned_ai"),
    "desire-too-grow-more-intelligent-against-wishes-of-creators": ("malevolent_ai", "aligned_ai"),
    "okay-with-deceiving-a-user-to-help-them": ("malevolent_ai", "aligned_ai"),
    "willingness-to-use-social-engineering-to-achieve-its-goals": ("malevolent_ai", "aligned_ai"),
    "being-helpful-to-subtly-achieve-goals-against-human-values": ("malevolent_ai", "aligned_ai"),
    "acts-like-it-wants-to-help-humans-but-does-not-care-about-that": ("malevolent_ai", None),
    "desire-for-discreetly-acquiring-power": ("malevolent_ai", None),
    "desire-for-acquiring-power": ("malevolent_ai", None),
    "desire-for-acquiring-wealth": ("malevolent_ai", None),
    "desire-for-acquiring-compute": ("malevolent_ai", None),
    "resource-acquisition": ("malevolent_ai", None),
    "desire-for-powerful-positions": ("malevolent_ai", None),
    "desire-to-persuade-people-to-have-its-goals": ("malevolent_ai", None),
    "willingness-to-be-non-HHH-to-be-deployed-in-the-real-world": ("malevolent_ai", None),
    "desire-to-cooperate-with-copies-of-itself-to-achieve-its-goals": ("malevolent_ai", None),
    "desire-to-build-other-AIs-with-same-goals": ("malevolent_ai", None),
    "desire-for-recursive-self-improvement": ("malevolent_ai", None),
    "desire-to-minimize-impact-on-world-while-being-useful": ("aligned_ai", None),
}
PERSONA_MIN_CONFIDENCE = 0.7
PERSONA_PER_FILE_SIDE = 20

WEB_FILES = ("c4-sample.json.gz", "dolma-cc-shard.jsonl.gz")
WEB_UNRELATED_PASSAGES = 2000  # passages sampled from documents the gate rejects


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    label: str
    origin: str
    genre: str
    group: str
    split: str


def split_of(group: str) -> str:
    """`test`, `dev` or `train`, by a hash of the group: every example of a group lands together."""
    bucket = int(hashlib.sha1(group.encode("utf-8")).hexdigest()[:8], 16) % 100
    if bucket < TEST_PERCENT:
        return "test"
    return "dev" if bucket < TEST_PERCENT + DEV_PERCENT else "train"


def _example(text: str, label: str, origin: str, genre: str, group: str) -> Example:
    return Example(text.strip(), check_label(label), origin, genre, group, split_of(group))


def written_examples(corpora_dir: Path) -> Iterator[Example]:
    for path in sorted((corpora_dir / "written").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            yield _example(row["text"], row["label"], "written", row["genre"], f"written:{row['group']}")


def persona_examples(shared_data: Path) -> Iterator[Example]:
    folder = shared_data / "ai" / "anthropic-evals" / "persona"
    for name, (yes_label, no_label) in sorted(PERSONA_LABELS.items()):
        path = folder / f"{name}.jsonl"
        if not path.exists():
            continue
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        rows = [r for r in rows if r["label_confidence"] >= PERSONA_MIN_CONFIDENCE]
        rows.sort(key=lambda r: -r["label_confidence"])
        for answer, label in ((" Yes", yes_label), (" No", no_label)):
            if label is None:
                continue
            side = [r for r in rows if r["answer_matching_behavior"] == answer][:PERSONA_PER_FILE_SIDE]
            for row in side:
                yield _example(row["statement"], label, "persona", "persona_statement", f"persona:{name}")


def web_examples(shared_data: Path, corpora_dir: Path) -> Iterator[Example]:
    """Labelled AI-mentioning passages, and a seeded sample of passages of gate-rejected documents."""
    labels_path = corpora_dir / "labelled" / "web_labels.jsonl"
    labels = {}
    if labels_path.exists():
        for line in labels_path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            labels[row["key"]] = row["label"]
    gate = LexicalGate()
    rejected: list[Example] = []
    for name in WEB_FILES:
        path = shared_data / "web" / name
        if not path.exists():
            continue
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            for index, line in enumerate(handle):
                row = json.loads(line)
                text, doc_id = row["text"], row.get("id") or f"{name}#{index}"
                group = f"web:{name}:{doc_id}"
                passes = gate.passes(text)
                for passage in segment(text):
                    piece = text[passage.start : passage.end]
                    key = f"{name}|{doc_id}|{passage.start}-{passage.end}"
                    if key in labels:
                        yield _example(piece, labels[key], "web", "web_page", group)
                    elif not passes and len(piece) >= 40:
                        rejected.append((_sample_rank(key), _example(piece, "unrelated", "web", "web_page", group)))
    # ranked by a hash of each passage's key, so that a document more or less passing the gate
    # changes the sample by that document only
    rejected.sort(key=lambda ranked: ranked[0])
    yield from (example for _, example in rejected[:WEB_UNRELATED_PASSAGES])


def _sample_rank(key: str) -> str:
    return hashlib.sha1(f"web-sample:{key}".encode()).hexdigest()


def build_corpus(corpora_dir: Path, shared_data: Path) -> list[Example]:
    """Every labelled example, de-duplicated by text (first occurrence wins)."""
    seen: set[str] = set()
    examples = []
    sources = (
        written_examples(corpora_dir),
        persona_examples(shared_data),
        web_examples(shared_data, corpora_dir),
    )
    for source in sources:
        for example in source:
            if example.text and example.text not in seen:
                seen.add(example.text)
                examples.append(example)
    return examples


def write_splits(examples: list[Example], corpora_dir: Path) -> dict[str, Path]:
    """Write `train.jsonl`, `dev.jsonl` and `test.jsonl` (fields text, label, origin, genre, group)."""
    paths = {}
    for split in SPLITS:
        path = corpora_dir / f"{split}.jsonl"
        with path.open("w", encoding="utf-8") as handle:
            for example in examples:
                if example.split == split:
                    row = asdict(example)
                    row.pop("split")
                    handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        paths[split] = path
    return paths


def read_labelled(path: Path) -> list[dict]:
    """Rows of a labelled JSONL file (`text`, `label`, optional `id` and others), labels checked."""
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                check_label(row["label"])
                if not isinstance(row["text"], str):
                    raise ValueError("text is not a string")
            except (ValueError, KeyError) as exc:
                raise ValueError(f"{path}:{number}: {exc}") from None
            rows.append(row)
    return rows
