"""Passages: bounded, paragraph-aligned slices of a document, kept as character offsets.

Passages are what the classifier sees and what `spans` and `passages/` report. Offsets index the
document's text, so a reader can always find the passage in the original.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from audit import records

_PARAGRAPH_BREAK = re.compile(r"\n\s*\n|\r\n\s*\r\n")
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"')\]]*\s+")


@dataclass(slots=True)
class Passage:
    """A slice `text[start:end]` of its document, with what the cascade decided about it."""

    start: int
    end: int
    gated: bool = False  # passed the lexical gate, so the models score it
    mentions_ai: bool = False  # its document names AI (not merely admitted for being short): a fusion feature
    probs: np.ndarray | None = field(default=None, repr=False)  # calibrated, in LABELS order
    label: str | None = None  # decided from probs at the configured threshold


@dataclass(frozen=True, slots=True)
class SegmentConfig:
    """How documents are cut into passages."""

    target_chars: int = 600  # short paragraphs are merged up to about this length
    max_chars: int = 1500  # longer paragraphs are split at sentence ends, or hard at this length
    max_doc_chars: int = 1_000_000  # text beyond this is not classified (status too_long_truncated)
    # passages shorter than this are never scored ("read more", "• My Account"): too little to judge
    min_passage_chars: int = 25


def segment(text: str, config: SegmentConfig = SegmentConfig()) -> list[Passage]:
    """Cut `text[:config.max_doc_chars]` into passages that cover every non-blank character."""
    limit = min(len(text), config.max_doc_chars)
    passages: list[Passage] = []
    cur_start = cur_end = -1
    for start, end in _pieces(text, limit, config.max_chars):
        if cur_start < 0:
            cur_start, cur_end = start, end
        elif end - cur_start <= config.target_chars:
            cur_end = end
        else:
            passages.append(Passage(cur_start, cur_end))
            cur_start, cur_end = start, end
    if cur_start >= 0:
        passages.append(Passage(cur_start, cur_end))
    return passages


def _pieces(text: str, limit: int, max_chars: int) -> Iterator[tuple[int, int]]:
    """Paragraphs of text[:limit] (stripped of surrounding blanks), each at most max_chars."""
    pos = 0
    while pos < limit:
        match = _PARAGRAPH_BREAK.search(text, pos, limit)
        end = match.start() if match else limit
        start, stop = _strip(text, pos, end)
        if stop > start:
            yield from _split_long(text, start, stop, max_chars)
        pos = match.end() if match else limit


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _split_long(text: str, start: int, end: int, max_chars: int) -> Iterator[tuple[int, int]]:
    while end - start > max_chars:
        window_end = start + max_chars
        cut = -1
        for match in _SENTENCE_END.finditer(text, start + max_chars // 3, window_end):
            cut = match.end()
        if cut < 0:
            cut = text.rfind(" ", start + max_chars // 3, window_end)
            cut = cut + 1 if cut > 0 else window_end
        piece_start, piece_end = _strip(text, start, cut)
        if piece_end > piece_start:
            yield piece_start, piece_end
        start, _ = _strip(text, cut, end)
    if end > start:
        yield start, end


def mark_scored(passages: list[Passage], mentions_ai: bool, config: SegmentConfig = SegmentConfig()) -> None:
    """Passages of an admitted document long enough to judge are scored by the models."""
    for passage in passages:
        passage.gated = passage.end - passage.start >= config.min_passage_chars
        passage.mentions_ai = mentions_ai


class SegmentStep(PipelineStep):
    """Attaches `metadata["passages"]` to documents the gate admitted (all, if no gate ran before);
    marks documents cut at `max_doc_chars` as too_long_truncated."""

    name = "✂️ Segment"
    type = "🔻 - SEGMENT"

    def __init__(self, config: SegmentConfig = SegmentConfig()):
        super().__init__()
        self.config = config

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        for document in data:
            decision = document.metadata.get(records.GATE)
            if decision is not None and not decision.admitted:
                self.stat_update("not_segmented")
            elif not records.is_error(document) and document.metadata[records.STATUS] == records.OK:
                with self.track_time():
                    passages = segment(document.text, self.config)
                    mark_scored(passages, decision.mentions_ai if decision else True, self.config)
                document.metadata[records.PASSAGES] = passages
                if len(document.text) > self.config.max_doc_chars:
                    document.metadata[records.STATUS] = records.TOO_LONG_TRUNCATED
                    self.stat_update("too_long_truncated")
                self.stat_update("passages", value=len(document.metadata[records.PASSAGES]), unit="doc")
            yield document
