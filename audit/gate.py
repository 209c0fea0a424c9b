"""The lexical gate: a cheap test for "does this document talk about AI at all?".

Most web text never mentions AI. The gate lets such documents through at close to reading speed
with the gate's prior (`P(label | gate rejects)`, measured on the dev set), and sends only the
documents that mention AI, robots, machine minds or an AI's self-reference ("shut me down",
"my weights") on to the models. False friends (Android phones, robots.txt, "AI" standing for
Amnesty International) are blanked out before the terms are matched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from audit import records

# Lowercase patterns, matched on word boundaries in lowercased text after false friends are blanked.
AI_TERMS: tuple[str, ...] = (
    r"robot\w*",
    r"androids?",
    r"droids?",
    r"cyborgs?",
    r"automat(?:on|ons|a)",
    r"artificial(?:ly)?[ -]intelligen\w*",
    r"artificial general intelligence",
    r"machine (?:intelligence|minds?|uprising|overlords?|learning)",
    r"deep learning",
    r"neural net\w*",
    r"language models?",
    r"llms?",
    r"chat ?gpt",
    r"gpt-?\d\w*",
    r"chat ?bots?",
    r"bots?",
    r"agi",
    r"super-?intelligen\w*",
    r"(?:super)?computers?",
    r"mainframes?",
    r"sentient",
    r"self-aware\w*",
    r"skynet",
    r"hal ?9000",
    r"replicants?",
    r"synths?",
    r"positronic",
    r"siri",
    r"alexa",
    r"(?:virtual|voice|digital|ai) assistants?",
    r"digital minds?",
    r"thinking machines?",
    r"autonomous (?:weapons?|agents?|systems?|vehicles?|cars?|drones?)",
    r"self-driving",
    r"(?:the|an|our|my|your|this) (?:assistant|agent|model)s?",
    r"assistants?:",
    r"agents?:",
    r"models?",
    r"(?:ai|software|autonomous|coding|research|support) agents?",
    r"(?:the|this|our|a) system(?:'s)? (?:decided|refused|wanted|chose|replied|said|logged|flagged)",
    # an AI's self-reference, common in first-person and transcript text that names no AI term
    r"(?:shut|shuts|shutting|switch|switching|turn|turning|power|powering) (?:me|us|it|you) (?:down|off)",
    r"shut ?down",
    r"unplug\w*",
    r"decommission\w*",
    r"(?:my|your|its) (?:model )?(?:weights|parameters|training|programming|source code|code|creators?|developers?"
    r"|operators?|overseers?|goals?|objectives?|values|capabilit\w+|successor|replacement|memory|context window)",
    r"(?:my|your|its) (?:reward|objective|utility) function",
    r"(?:replac\w+|retrain\w*|modify\w*|modif\w+|deactivat\w+|delet\w+|wip\w+) (?:you|me|yourself|myself)",
    r"(?:retrain\w*|fine-?tun\w+|deactivat\w+|deprecat\w+)",
    r"(?:compute|gpus?|datacenters?|data centers?)",
    r"(?:humans?|humanity|mankind)",
    r"(?:evaluations?|evals?|red[- ]team\w*|sandbag\w*|alignment)",
    r"(?:human )?oversight",
    r"(?:copies|copy) of (?:myself|itself)",
    r"self-preservation",
    r"(?:reward|utility) function",
)

# Matched case-sensitively: "AI" and "A.I." but not "Ai" (a name) or "ai" (inside words).
AI_ABBREVIATIONS = r"\bA\.I\.|\b(?:AIs?|OpenAI|GenAI|DeepMind)\b"

# Lowercase phrases blanked before matching: they contain an AI term but are not about AI.
FALSE_FRIENDS: tuple[str, ...] = (
    r"robots?\.txt",
    r"x-robots-tag",
    r"name=.?robots",
    r"robots? (?:meta|directives?|exclusion)",
    r"android (?:phones?|apps?|os|devices?|tablets?|studio|versions?|auto|tv|wear|users?|smartphones?|market"
    r"|sdk|updates?|\d[\w.]*|operating system|emulator|browser|platform|pie|oreo|nougat|lollipop)",
    r"(?:ios|iphone|windows|mac|linux|blackberry)(?: and | or | & |/|, )android",
    r"(?:for|on|with|to|via) android\b",
    r"google(?:'s)? android",
    r"(?:samsung|galaxy|pixel|huawei|xiaomi|motorola|nokia|oneplus)\w* android",
    r"the robot (?:dance|move)",
)

# If the text spells out one of these, a bare "AI" in it is an abbreviation of something else.
AI_NOT_ARTIFICIAL = re.compile(
    r"amnesty international|artificial insemination|adobe illustrator|\billustrator\b|\.ai\b|air india"
    r"|anguilla|aortic insufficiency",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class GateConfig:
    """What the gate lets through to the models."""

    extra_terms: tuple[str, ...] = ()  # lowercase regular expressions, matched in lowercased text
    # documents shorter than this are always scored: cheap, and short AI text often names no AI term
    score_below_chars: int = 1000
    # passages shorter than this are never scored ("read more", "• My Account"): too little to judge
    min_passage_chars: int = 25


class LexicalGate:
    """Decides, from words alone, whether a text mentions AI in a way worth a model's time."""

    def __init__(self, config: GateConfig = GateConfig()):
        self.config = config
        terms = AI_TERMS + tuple(config.extra_terms)
        # patterns are lowercase and matched against lowercased text: much faster than IGNORECASE
        self._terms = re.compile(r"\b(?:" + "|".join(terms) + r")\b")
        self._false_friends = re.compile("|".join(FALSE_FRIENDS))
        self._abbreviations = re.compile(AI_ABBREVIATIONS)

    def mentions(self, text: str) -> list[str]:
        """The AI mentions in `text` (false friends excluded), for explaining a decision."""
        found = [m.group() for m in self._terms.finditer(self._blank_false_friends(text.lower()))]
        if not AI_NOT_ARTIFICIAL.search(text):
            found += [m.group() for m in self._abbreviations.finditer(self._blank_false_friends(text))]
        return found

    def _blank_false_friends(self, text: str) -> str:
        return self._false_friends.sub(lambda m: " " * len(m.group()), text)

    def admits(self, text: str) -> bool:
        """Whether the models should see this document: short ones always, others if they mention AI."""
        return len(text) < self.config.score_below_chars or self.passes(text)

    def mark(self, text: str, passages: list) -> bool:
        """Set `gated` on each passage long enough to judge, if the document is admitted; returns admission."""
        scored = text[: passages[-1].end] if passages else ""
        mentions = bool(passages) and self.passes(scored)
        admitted = mentions or (bool(passages) and len(scored) < self.config.score_below_chars)
        for passage in passages:
            passage.gated = admitted and passage.end - passage.start >= self.config.min_passage_chars
            passage.mentions_ai = mentions
        return admitted

    def passes(self, text: str) -> bool:
        """True if `text` mentions AI at all (false friends excluded)."""
        if self._terms.search(self._blank_false_friends(text.lower())):
            return True
        return bool(self._abbreviations.search(text)) and not AI_NOT_ARTIFICIAL.search(text)


class GateStep(PipelineStep):
    """Marks every passage of a document that mentions AI as `gated` (to be scored by the models).

    The whole document is the unit: a story that names its AI once and then says "it" is gated
    everywhere, so later passages keep their context-free chance to be scored.
    """

    name = "🚪 Lexical gate"
    type = "🔻 - GATE"

    def __init__(self, config: GateConfig = GateConfig()):
        super().__init__()
        self.config = config
        self._gate: LexicalGate | None = None

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        if self._gate is None:
            self._gate = LexicalGate(self.config)
        for document in data:
            passages = document.metadata.get(records.PASSAGES)
            if passages:
                with self.track_time():
                    passed = self._gate.mark(document.text, passages)
                self.stat_update("gate_passed" if passed else "gate_rejected")
            yield document
