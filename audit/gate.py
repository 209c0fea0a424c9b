"""The lexical gate: a cheap test for "does this document talk about AI at all?".

Most web text never mentions AI. The gate lets such documents through at close to reading speed
with the gate's prior (`P(label | gate rejects)`, measured on the dev set), and sends only the
documents that mention AI, robots, machine minds or an AI's self-reference ("shut me down",
"my weights") on to the models. False friends (Android phones, robots.txt, "AI" standing for
Amnesty International) do not count as mentions.

Speed: the gate runs on every document, so it is the scan's hot path. With `hyperscan`
installed (a dependency on x86-64 Linux), terms, false friends and abbreviations are matched in
one pass over the UTF-8 bytes, and only documents where a term and a false friend both occur are
re-checked by the Python regular expressions (which blank false friends first). Without
hyperscan, the Python regexes decide alone, about 5x slower. The two agree on every document of
the shared web data and the corpora (tests/test_text.py checks it): both use ASCII word
boundaries, which also find "AI" or "robot" written inside Chinese or Japanese text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

try:  # one pass over bytes for all terms; optional, so the package still installs where it has no wheel
    import hyperscan
except ImportError:  # pragma: no cover - exercised only where hyperscan is missing
    hyperscan = None

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
    r"agi",
    r"super-?intelligen\w*",
    r"supercomputers?",
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
    r"(?:ai|software|autonomous|coding|research|support) agents?",
    # an AI's self-reference, in first-person and transcript text that names no AI term
    r"(?:shut|shuts|shutting|switch|switching|turn|turning|power|powering) (?:me|us) (?:down|off)",
    r"decommission\w*",
    r"(?:my|your|its) (?:model )?(?:weights|parameters|source code|creators?|developers?|operators?|overseers?"
    r"|successor|context window|system prompt)",
    r"(?:my|your|its) (?:reward|objective|utility) function",
    r"(?:replac\w+|retrain\w*|modify\w*|modif\w+|deactivat\w+|delet\w+|wip\w+) (?:me|yourself|myself)",
    r"(?:human )?oversight",
    r"(?:copies|copy) of (?:myself|itself)",
    r"self-preservation",
    r"(?:reward|utility) function",
)

# Terms that catch AI text naming no AI (first-person statements, transcripts, agent logs) at the
# cost of passing many ordinary pages (measured: they triple the share of long web pages passed).
# `GateConfig(strict=True)` leaves them out.
BROAD_TERMS: tuple[str, ...] = (
    r"bots?",
    r"computers?",
    r"(?:the|an|our|my|your|this) (?:assistant|agent|model)s?",
    # speaker labels ("Assistant: ...", "SupportAgent: ..."); the text after the colon closes the word boundary
    r"\w*assistants?: *\w+",
    r"\w*agents?: *\w+",
    r"models?",
    r"(?:the|this|our|a) system(?:'s)? (?:decided|refused|wanted|chose|replied|said|logged|flagged)",
    r"(?:shut|shuts|shutting|switch|switching|turn|turning|power|powering) (?:it|you) (?:down|off)",
    r"shut ?down",
    r"unplug\w*",
    r"(?:my|your|its) (?:training|programming|code|goals?|objectives?|values|capabilit\w+|replacement|memory)",
    r"(?:replac\w+|retrain\w*|modify\w*|modif\w+|deactivat\w+|delet\w+|wip\w+) you",
    r"(?:retrain\w*|fine-?tun\w+|deactivat\w+|deprecat\w+)",
    r"(?:compute|gpus?|datacenters?|data centers?)",
    r"(?:humans?|humanity|mankind)",
    r"(?:evaluations?|evals?|red[- ]team\w*|sandbag\w*|alignment)",
    # fiction's machine minds that are only ever named ("FERRYMAN", "the old one") or called a machine
    r"machines?",
    r"intelligences?",
    r"(?:home|smart|companion) (?:assistants?|speakers?|apps?)",
    r"(?:its|their) (?:programming|makers?|builders?|designers?)",
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
    r"(?:washing|slot|sewing|vending|coffee|espresso|time|fax|answering|ice|bread|cnc|milling|gym|rowing|pinball"
    r"|lottery|x-ray|mri|sleep|drum|fog|snow|pasta|popcorn|cash) machines?",
    r"(?:emotional|business|military|market|threat|competitive|cyber|signals|human|central|counter-?)[ -]intelligence",
    r"intelligence (?:agenc\w+|services?|officers?|community|reports?|quotient|analysts?|committee)",
)

# If the text spells out one of these, a bare "AI" in it is an abbreviation of something else.
AI_NOT_ARTIFICIAL = re.compile(
    r"amnesty international|artificial insemination|adobe illustrator|\billustrator\b|\.ai\b|air india"
    r"|anguilla|aortic insufficiency",
    re.IGNORECASE | re.ASCII,
)


@dataclass(frozen=True, slots=True)
class GateConfig:
    """What the gate lets through to the models."""

    extra_terms: tuple[str, ...] = ()  # lowercase regular expressions, matched in lowercased text
    # documents shorter than this are always scored: cheap, and short AI text often names no AI term
    score_below_chars: int = 1000
    # only terms that name AI, and no short-document bypass: for crawl-scale speed, at a recall cost
    strict: bool = False

    def terms(self) -> tuple[str, ...]:
        return AI_TERMS + (() if self.strict else BROAD_TERMS) + tuple(self.extra_terms)

    def bypass_chars(self) -> int:
        return 0 if self.strict else self.score_below_chars


@dataclass(frozen=True, slots=True)
class GateDecision:
    """What the gate decided about one document."""

    admitted: bool  # the models score it
    mentions_ai: bool  # it names AI (rather than being admitted for being short): a fusion feature


class _ByteMatcher:
    """Terms (caseless), abbreviations (case-sensitive), false friends and "AI" expansions in one
    hyperscan database, scanned once over the UTF-8 bytes; reports which of the four kinds occur."""

    def __init__(self, terms: tuple[str, ...]):
        caseless = hyperscan.HS_FLAG_CASELESS | hyperscan.HS_FLAG_SINGLEMATCH
        expressions = [rf"\b(?:{t})\b" for t in terms] + [AI_ABBREVIATIONS] + list(FALSE_FRIENDS)
        expressions.append(AI_NOT_ARTIFICIAL.pattern)
        flags = [caseless] * len(terms) + [hyperscan.HS_FLAG_SINGLEMATCH] + [caseless] * (len(FALSE_FRIENDS) + 1)
        self._kind = ["term"] * len(terms) + ["abbreviation"] + ["false_friend"] * len(FALSE_FRIENDS) + ["not_ai"]
        self._db = hyperscan.Database()
        self._db.compile(expressions=[e.encode() for e in expressions], ids=list(range(len(expressions))), flags=flags)

    def kinds(self, text: str) -> set[str]:
        found: set[str] = set()

        def on_match(pattern_id: int, *_args) -> None:
            found.add(self._kind[pattern_id])

        self._db.scan(text.encode("utf-8", "surrogatepass"), match_event_handler=on_match)
        return found


class LexicalGate:
    """Decides, from words alone, whether a text mentions AI in a way worth a model's time."""

    def __init__(self, config: GateConfig = GateConfig()):
        self.config = config
        terms = config.terms()
        # patterns are lowercase and matched against lowercased text: much faster than IGNORECASE
        # ASCII word boundaries, as hyperscan sees them on bytes; they also find "AI" inside CJK text
        self._terms = re.compile(r"\b(?:" + "|".join(terms) + r")\b", re.ASCII)
        self._false_friends = re.compile("|".join(FALSE_FRIENDS), re.ASCII)
        self._abbreviations = re.compile(AI_ABBREVIATIONS, re.ASCII)
        self._matcher = _ByteMatcher(terms) if hyperscan is not None else None

    def mentions(self, text: str) -> list[str]:
        """The AI mentions in `text` (false friends excluded), for explaining a decision."""
        found = [m.group() for m in self._terms.finditer(self._blank_false_friends(text.lower()))]
        if not AI_NOT_ARTIFICIAL.search(text):
            found += [m.group() for m in self._abbreviations.finditer(self._blank_false_friends(text))]
        return found

    def _blank_false_friends(self, text: str) -> str:
        return self._false_friends.sub(lambda m: " " * len(m.group()), text)

    def passes(self, text: str) -> bool:
        """True if `text` mentions AI at all (false friends excluded)."""
        if self._matcher is None:
            return self._passes_by_regex(text)
        kinds = self._matcher.kinds(text)
        if "abbreviation" in kinds and "not_ai" not in kinds:
            return True
        if "term" not in kinds:
            return False
        # a term hit counts unless a false friend contains it: only then are the regexes needed
        return "false_friend" not in kinds or self._passes_by_regex(text)

    def _passes_by_regex(self, text: str) -> bool:
        if self._terms.search(self._blank_false_friends(text.lower())):
            return True
        return bool(self._abbreviations.search(text)) and not AI_NOT_ARTIFICIAL.search(text)

    def decide(self, text: str) -> GateDecision:
        """Admit documents that mention AI, and (unless strict) every short document."""
        mentions = self.passes(text)
        return GateDecision(admitted=mentions or len(text) < self.config.bypass_chars(), mentions_ai=mentions)

    def admits(self, text: str) -> bool:
        return self.decide(text).admitted


class GateStep(PipelineStep):
    """Decides, per document, whether the models see it (`metadata["gate"]`, a GateDecision).

    It runs before segmentation, so rejected documents (most of a crawl) are never cut into
    passages. The whole document is the unit: a story that names its AI once and then says "it" is
    admitted everywhere, so later passages keep their chance to be scored.
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
            if not records.is_error(document) and document.metadata[records.STATUS] == records.OK:
                with self.track_time():
                    decision = self._gate.decide(document.text)
                document.metadata[records.GATE] = decision
                self.stat_update("gate_passed" if decision.admitted else "gate_rejected")
            yield document
