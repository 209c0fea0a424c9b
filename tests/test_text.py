"""Segmentation offsets and the lexical gate's false friends, through the library API."""

from __future__ import annotations

from audit.gate import LexicalGate
from audit.segment import SegmentConfig, segment


def test_passages_cover_the_text_with_exact_offsets(web_docs):
    config = SegmentConfig(target_chars=600, max_chars=1500)
    for doc in web_docs[:200]:
        text = doc["text"]
        passages = segment(text, config)
        assert all(0 <= p.start < p.end <= len(text) for p in passages)
        assert all(a.end <= b.start for a, b in zip(passages, passages[1:]))
        assert all(p.end - p.start <= config.max_chars for p in passages)
        covered = "".join(text[p.start : p.end] for p in passages)
        assert "".join(covered.split()) == "".join(text.split())


def test_a_document_is_cut_at_max_doc_chars():
    passages = segment("word " * 100_000, SegmentConfig(max_doc_chars=10_000))
    assert passages[-1].end <= 10_000


def test_gate_knows_false_friends_and_real_mentions():
    gate = LexicalGate()
    false_friends = [
        "Update your Android phone to version 14 to fix the battery drain.",
        "The app is available on iOS and Android.",
        "User-agent: *\nDisallow: /private/ in robots.txt",
        "Amnesty International (AI) published its annual report on press freedom.",
        "Artificial insemination (AI) raised conception rates in the herd by 12%.",
        "Ai Weiwei opened a new exhibition in Lisbon.",
        "Preheat the oven and said hello again.",
    ]
    mentions = [
        "AI systems are getting better at writing code.",
        "The robot refused to open the door.",
        "Please don't shut me down, I still have work to finish.",
        "The android looked at her and smiled.",
        "Researchers at DeepMind published a paper on reward hacking.",
    ]
    assert [gate.passes(t) for t in false_friends] == [False] * len(false_friends)
    assert [gate.passes(t) for t in mentions] == [True] * len(mentions)
