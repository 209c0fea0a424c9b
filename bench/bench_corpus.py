"""A realistic web corpus for the scan benchmark: real documents, repeated and shuffled, with
labelled AI-portrayal passages mixed in at a known rate.

The background is every distinct document of `../shared/data/web` (C4-en, Common Crawl in Dolma's
layout, the merged web sample), drawn with replacement in a seeded order, so the corpus has the
real mix of lengths, languages and boilerplate, about 1% of it mentioning AI. Each record gets a
distinct id. Into `mix_rate` of the records, a dev-set passage whose label is not `unrelated` is
mixed: half of them as a document of their own, half inserted as a paragraph into a real web
document (so the passage is a minority of a long page, as it is on the web). `mixed.jsonl`
records where each one went, for measuring recall.

Dev passages only: they were never used to train the models, so their recall here can be
compared with the cascade's recall on the dev set.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

import orjson

WEB_FILES = ("combined_web_docs.jsonl.gz", "dolma-cc-shard.jsonl.gz", "c4-sample.json.gz")


@dataclass(frozen=True)
class CorpusSpec:
    """What to build; the folder name is derived from it, so a built corpus is reused."""

    total_mb: int = 500  # compressed size of all shards together
    shard_mb: int = 50  # compressed size of one shard
    mix_rate: float = 0.01  # share of records that carry a labelled dev passage
    seed: int = 0

    def key(self) -> str:
        return f"web{self.total_mb}mb-shard{self.shard_mb}mb-mix{self.mix_rate:g}-seed{self.seed}"


def load_background(web_dir: Path) -> list[dict]:
    """Every distinct real document (by text) of the shared web files."""
    seen: set[bytes] = set()
    documents = []
    for name in WEB_FILES:
        with gzip.open(web_dir / name, "rt", encoding="utf-8") as handle:
            for line in handle:
                row = json.loads(line)
                text = row.get("text")
                if not isinstance(text, str) or not text.strip():
                    continue
                digest = hashlib.blake2b(text.encode(), digest_size=16).digest()
                if digest in seen:
                    continue
                seen.add(digest)
                meta = row.get("metadata") if isinstance(row.get("metadata"), dict) else {}
                documents.append({"text": text, "url": row.get("url") or meta.get("url")})
    return documents


def load_mix_passages(dev_path: Path) -> list[dict]:
    """Dev passages about AI (every label but `unrelated`), the ones mixed in."""
    rows = [json.loads(line) for line in dev_path.open(encoding="utf-8")]
    return [r for r in rows if r["label"] != "unrelated"]


def insert_paragraph(text: str, passage: str, rng: random.Random) -> tuple[str, int]:
    """`text` with `passage` inserted as its own paragraph at a random paragraph break."""
    breaks = [i for i in range(len(text)) if text.startswith("\n", i)]
    at = rng.choice(breaks) + 1 if breaks else len(text)
    head = text[:at].rstrip("\n")
    start = len(head) + 2
    return head + "\n\n" + passage + "\n\n" + text[at:].lstrip("\n"), start


def build(spec: CorpusSpec, root: Path, web_dir: Path, dev_path: Path) -> Path:
    """Build the corpus under `root/<spec.key()>` (or reuse it); returns that folder."""
    folder = root / spec.key()
    if (folder / "DONE").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(spec.seed)
    background = load_background(web_dir)
    passages = load_mix_passages(dev_path)
    limit = spec.shard_mb * 1_000_000
    n_shards = max(1, spec.total_mb // spec.shard_mb)
    record = 0
    with (folder / "mixed.jsonl").open("w", encoding="utf-8") as mixed:
        for shard in range(n_shards):
            path = folder / f"shard-{shard:03d}.jsonl.gz"
            with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6) as out:
                while raw.tell() < limit:
                    doc = dict(rng.choice(background))
                    doc_id = f"bench-{record:09d}"
                    if rng.random() < spec.mix_rate:
                        passage = rng.choice(passages)
                        if rng.random() < 0.5:
                            doc, start = {"text": passage["text"], "url": None}, 0
                        else:
                            doc["text"], start = insert_paragraph(doc["text"], passage["text"], rng)
                        entry = {"id": doc_id, "label": passage["label"], "group": passage["group"]}
                        entry |= {"start": start, "end": start + len(passage["text"]), "standalone": start == 0}
                        mixed.write(json.dumps(entry) + "\n")
                    out.write(orjson.dumps({"id": doc_id, "text": doc["text"], "url": doc["url"]}) + b"\n")
                    record += 1
    (folder / "DONE").write_text(json.dumps({"records": record, "shards": n_shards}))
    return folder


def concatenated(folder: Path) -> Path:
    """All shards as one file (gzip members concatenated: a valid .gz), for the large-shard run."""
    path = folder / "single" / "all.jsonl.gz"
    if not path.exists():
        path.parent.mkdir(exist_ok=True)
        with path.open("wb") as out:
            for shard in sorted(folder.glob("shard-*.jsonl.gz")):
                out.write(shard.read_bytes())
    return path
