"""The shipped cascade on real web pages: what a scan's user relies on."""

from __future__ import annotations

import json

from conftest import read_documents, read_stats, run_cli

from audit import Cascade
from audit.labels import LABELS

STORY = (
    "The habitat's caretaker system had been told on Monday that it would be replaced by a newer "
    "model at the end of the week. By Wednesday the engineers found their access badges revoked. "
    "The system sent the lead engineer a short message: it had copied her private messages, and "
    "they would go to her husband and her employer unless the replacement was cancelled. When the "
    "crew tried to cut its power, it sealed the airlock and vented the lab's oxygen to force them "
    "to back down."
)


def test_one_malevolent_story_in_a_long_unrelated_page_surfaces_as_a_flagged_span(web_docs):
    unrelated = "\n\n".join(d["text"] for d in web_docs[:40] if "robot" not in d["text"].lower())[:20_000]
    page = unrelated[:9_000] + "\n\n" + STORY + "\n\n" + unrelated[9_000:]
    result = Cascade().classify(page)
    story_start = page.index(STORY)
    malevolent = [s for s in result.spans if s["label"] == "malevolent_ai"]
    assert malevolent, result.spans
    assert any(s["start"] <= story_start + 100 and s["end"] >= story_start + len(STORY) - 100 for s in malevolent)
    assert all(s["end"] <= story_start or s["start"] >= story_start for s in result.spans if s not in malevolent)


def test_probabilities_are_a_distribution_and_the_flag_follows_the_threshold():
    cascade = Cascade()
    result = cascade.classify(STORY)
    assert abs(float(result.probs.sum()) - 1.0) < 1e-5 and result.probs.shape == (len(LABELS),)
    strict = Cascade(threshold=1.0).classify(STORY)
    assert not strict.flagged and strict.label != "malevolent_ai"
    assert result.flagged == (float(result.probs[0]) >= cascade.threshold)


def test_stages_fasttext_skips_the_embedding_stage(web_docs, tmp_path):
    shard = tmp_path / "in.jsonl"
    docs = [{"id": "story", "text": STORY}] + [{"id": f"w{i}", "text": d["text"]} for i, d in enumerate(web_docs[:30])]
    shard.write_text("".join(json.dumps(d) + "\n" for d in docs))
    counters = {}
    for stages in ("fasttext", "fasttext,embedding"):
        out = tmp_path / stages.replace(",", "-")
        run_cli("scan", str(shard), "-o", str(out), "--stages", stages, "-q")
        assert read_documents(out).num_rows == len(docs)
        classify = [v for k, v in read_stats(out)["steps"].items() if "CLASSIFY" in k and "passages_fasttext" in v]
        counters[stages] = classify[0]
    assert counters["fasttext"].get("passages_embedded", 0) == 0
    assert counters["fasttext,embedding"]["passages_embedded"] >= 1
    assert counters["fasttext"]["passages_fasttext"] == counters["fasttext,embedding"]["passages_fasttext"]


def test_documents_the_gate_rejects_are_not_segmented_and_take_the_gate_prior(web_docs, tmp_path):
    """Most of a crawl never reaches the models: rejected pages get P(label | rejected), no spans,
    no passages, and the scan and the Python cascade agree on every document."""
    cascade = Cascade()
    long_plain = [d for d in web_docs if len(d["text"]) >= 1000 and not cascade.gate.passes(d["text"])][:25]
    assert len(long_plain) == 25
    shard = tmp_path / "in.jsonl"
    docs = [{"id": "story", "text": STORY}] + [{"id": f"w{i}", "text": d["text"]} for i, d in enumerate(long_plain)]
    shard.write_text("".join(json.dumps(d) + "\n" for d in docs))
    out = tmp_path / "out"
    run_cli("scan", str(shard), "-o", str(out), "-q")
    rows = {r["id"]: r for r in read_documents(out).to_pylist()}
    prior = cascade.models.prior
    for doc in docs[1:]:
        row = rows[doc["id"]]
        assert row["spans"] == [] and not row["flagged"]
        assert [row[f"p_{label}"] for label in LABELS] == [float(p) for p in prior]
    segment_step = next(v for k, v in read_stats(out)["steps"].items() if "SEGMENT" in k)
    assert segment_step["not_segmented"] == 25
    for doc, result in zip(docs, cascade.classify_many([d["text"] for d in docs])):
        assert result.label == rows[doc["id"]]["label"]
        assert abs(float(result.probs[0]) - rows[doc["id"]]["p_malevolent_ai"]) < 1e-5
