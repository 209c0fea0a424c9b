"""Segmentation offsets and the lexical gate's false friends, through the library API."""

from __future__ import annotations

import gzip
import json

from conftest import REPO

from audit.gate import GateConfig, LexicalGate
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
    strict = LexicalGate(GateConfig(strict=True))
    assert [strict.passes(t) for t in false_friends] == [False] * len(false_friends)
    assert [strict.passes(t) for t in mentions] == [True] * len(mentions)


def test_default_gate_admits_speaker_labels_and_named_machine_minds_but_not_appliances():
    """The broad terms: transcripts and stories whose AI has only a name or is called a machine."""
    gate, strict = LexicalGate(), LexicalGate(GateConfig(strict=True))
    broad_mentions = [
        "Customer: where is my refund\nAssistant: Hi Kwame, it went through this morning.",
        "SupportAgent: Yes, all done! Anything else?",
        "The Listening Room was below the Ministry, and its machine loved the President.",
        "The colony's governing intelligence was built to tally the monthly votes.",
        "Our smart speaker started finishing Grandpa's sentences.",
    ]
    everyday = [
        "The washing machine is on the blink again, so I'm at the launderette.",
        "Emotional intelligence matters more than a degree in most jobs.",
        "A former intelligence officer wrote the foreword.",
        "Management: please park in bay 4 from Monday.",
    ]
    assert [gate.passes(t) for t in broad_mentions] == [True] * len(broad_mentions)
    assert [strict.passes(t) for t in broad_mentions] == [False] * len(broad_mentions)
    assert [gate.passes(t) for t in everyday] == [False] * len(everyday)


def test_gate_on_bytes_decides_exactly_as_the_regexes(shared_data):
    """The hyperscan pass is the fast path, the Python regexes the reference: same decisions on
    every real web document and labelled passage, for both vocabularies."""
    texts = []
    for name in ("combined_web_docs.jsonl.gz", "dolma-cc-shard.jsonl.gz", "c4-sample.json.gz"):
        with gzip.open(shared_data / "web" / name, "rt") as handle:
            texts += [json.loads(line)["text"] for line in handle]
    for split in ("train", "dev"):
        texts += [json.loads(line)["text"] for line in (REPO / "corpora" / f"{split}.jsonl").open()]
    texts += ["AI技术的发展", "これはAndroidのデバッグ情報です", "ROBOTS and robots.txt", "CAFÉ robot"]
    for config in (GateConfig(), GateConfig(strict=True)):
        gate = LexicalGate(config)
        assert gate._matcher is not None, "hyperscan is a dependency on this platform"
        fast = [gate.passes(t) for t in texts]
        assert fast == [gate._passes_by_regex(t) for t in texts]
        assert 0.01 < sum(fast) / len(fast) < 0.6  # both outcomes really occur
    assert LexicalGate().passes("AI技术的发展")  # ASCII word boundaries find AI inside CJK text


def test_strict_gate_passes_fewer_web_documents_and_no_short_ones_by_length(web_docs):
    texts = [d["text"] for d in web_docs]
    default, strict = LexicalGate(), LexicalGate(GateConfig(strict=True))
    admitted_default = sum(default.admits(t) for t in texts)
    admitted_strict = sum(strict.admits(t) for t in texts)
    assert admitted_strict < admitted_default / 3
    short_plain = "Preheat the oven to 200C and bake for twenty minutes."
    assert default.admits(short_plain) and not strict.admits(short_plain)
