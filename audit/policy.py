"""Manifest policies: TOML files that map a document's label and probability to a training weight.

A policy is a list of rules. A rule applies to the documents *labelled* `label` whose probability of
that label, `p_<label>`, lies in `[min_p, max_p)` (`max_p = 1` includes 1); it gives them either a
fixed `weight` or `offset + scale * <weight_from>`, a probability column. At most one rule may
apply to any document: two rules of one label whose ranges overlap are rejected, so a policy never
depends on rule order. Documents no rule covers get `default_weight` (1: keep as is).

Every error names the file, the line and the problem, and is raised before any output is written.
"""

from __future__ import annotations

import hashlib
import math
import re
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pyarrow as pa

from audit.labels import LABELS, PROB_COLUMNS
from audit.records import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

#: The policies shipped with the package (`audit/policies/`): name -> file.
SHIPPED = ("default", "hard-removal", "soft-proportional")
TOP_KEYS = ("name", "description", "default_weight", "seed", "rule")
RULE_KEYS = ("label", "min_p", "max_p", "weight", "weight_from", "scale", "offset", "name")


class PolicyError(InputError):
    """A policy file that cannot be used: the message is `FILE:LINE: problem`."""


@dataclass(frozen=True)
class Rule:
    """One rule: which documents it covers and the weight it gives them."""

    label: str
    min_p: float = 0.0
    max_p: float = 1.0
    weight: float | None = None  # a fixed weight, or
    weight_from: str | None = None  # a probability column: weight = offset + scale * column
    scale: float = 1.0
    offset: float = 0.0
    name: str = ""
    line: int | None = None  # where the rule starts in its file

    def reason(self, index: int) -> str:
        """What the manifest's `reason` column says for the documents this rule covers."""
        if self.name:
            return self.name
        where = f"p_{self.label} in [{self.min_p:g}, {self.max_p:g}{']' if self.max_p >= 1 else ')'}"
        if self.weight is not None:
            what = f"weight {self.weight:g}"
        else:
            what = f"weight {self.offset:g} {'+' if self.scale >= 0 else '-'} {abs(self.scale):g} * {self.weight_from}"
        return f"rule {index + 1}: {self.label}, {where}: {what}"

    def covers(self, labels: np.ndarray, p: np.ndarray) -> np.ndarray:
        upper = p <= self.max_p if self.max_p >= 1.0 else p < self.max_p
        return (labels == self.label) & (p >= self.min_p) & upper


@dataclass(frozen=True)
class Policy:
    """A parsed, validated policy and the text it came from (recorded beside every manifest)."""

    name: str
    description: str
    rules: tuple[Rule, ...]
    default_weight: float
    seed: int  # of the hash that turns fractional weights into whole copies (see audit.manifest)
    path: str
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    @property
    def default_reason(self) -> str:
        return f"default: weight {self.default_weight:g}"

    def assign(self, batch: pa.RecordBatch | pa.Table) -> tuple[np.ndarray, np.ndarray]:
        """Weights (float64) and reasons (an array of strings) for a batch of `documents/` rows."""
        labels = np.asarray(batch.column("label").to_numpy(zero_copy_only=False), dtype=object)
        weights = np.full(len(labels), self.default_weight, dtype=np.float64)
        reasons = np.full(len(labels), self.default_reason, dtype=object)
        for index, rule in enumerate(self.rules):
            p = batch.column(f"p_{rule.label}").to_numpy(zero_copy_only=False).astype(np.float64)
            mask = rule.covers(labels, p)
            if rule.weight is not None:
                weights[mask] = rule.weight
            else:
                source = batch.column(rule.weight_from).to_numpy(zero_copy_only=False).astype(np.float64)
                weights[mask] = np.maximum(rule.offset + rule.scale * source[mask], 0.0)
            reasons[mask] = rule.reason(index)
        return weights, reasons


def shipped_policy_path(name: str) -> Path:
    """The file of a shipped policy (`default`, `hard-removal`, `soft-proportional`)."""
    if name not in SHIPPED:
        raise PolicyError(f"no shipped policy {name!r}; shipped: {', '.join(SHIPPED)}")
    return Path(str(resources.files("audit.policies") / f"{name}.toml"))


def _key_lines(text: str) -> tuple[dict[str, int], list[dict[str, int]]]:
    """Line numbers (1-based) of top-level keys and of each `[[rule]]` table's header and keys."""
    top: dict[str, int] = {}
    rules: list[dict[str, int]] = []
    current = top
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if re.match(r"\[\[\s*rule\s*\]\]", stripped):
            current = {"": number}
            rules.append(current)
        elif stripped.startswith("["):
            current = {"": number}
        elif match := re.match(r"""["']?([A-Za-z0-9_-]+)["']?\s*=""", stripped):
            current.setdefault(match.group(1), number)
    return top, rules


def _number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{what} must be a number, got {value!r}")
    return float(value)


def _rule(data, index: int, lines: dict[str, int]) -> Rule:
    def fail(problem: str, key: str = "") -> _LocatedError:
        return _LocatedError(lines.get(key) or lines.get(""), f"rule {index + 1}: {problem}")

    if not isinstance(data, dict):
        raise fail("must be a table ([[rule]])")
    for key in data:
        if key not in RULE_KEYS:
            raise fail(f"unknown key {key!r}; a rule takes {', '.join(RULE_KEYS)}", key)
    label = data.get("label")
    if label is None:
        raise fail("has no label")
    if label not in LABELS:
        raise fail(f"unknown label {label!r}; expected one of {', '.join(LABELS)}", "label")
    values: dict = {}
    for key in ("min_p", "max_p", "weight", "scale", "offset"):
        if key in data:
            try:
                values[key] = _number(data[key], key)
            except ValueError as exc:
                raise fail(str(exc), key) from None
    min_p, max_p = values.get("min_p", 0.0), values.get("max_p", 1.0)
    for key, value in (("min_p", min_p), ("max_p", max_p)):
        if not 0.0 <= value <= 1.0:
            raise fail(f"{key} must be in [0, 1], got {value:g}", key)
    if min_p >= max_p:
        raise fail(f"min_p ({min_p:g}) must be below max_p ({max_p:g})", "max_p" if "max_p" in data else "min_p")
    weight_from = data.get("weight_from")
    if ("weight" in data) == (weight_from is not None):
        raise fail("needs exactly one of `weight` (a number) or `weight_from` (a p_* column)", "weight_from")
    if weight_from is None:
        if "scale" in data or "offset" in data:
            raise fail("`scale` and `offset` go with `weight_from`", "scale" if "scale" in data else "offset")
        if values["weight"] < 0:
            raise fail(f"negative weight {values['weight']:g}; weights are >= 0 (0 drops a document)", "weight")
    else:
        if weight_from not in PROB_COLUMNS:
            raise fail(f"weight_from must be one of {', '.join(PROB_COLUMNS)}, got {weight_from!r}", "weight_from")
        scale, offset = values.get("scale", 1.0), values.get("offset", 0.0)
        # the rule's own probability is bounded by its range; any other column by [0, 1]
        low, high = (min_p, max_p) if weight_from == f"p_{label}" else (0.0, 1.0)
        least = min(offset + scale * low, offset + scale * high)
        if least < -1e-12:
            raise fail(
                f"weight {offset:g} + {scale:g} * {weight_from} is negative (down to {least:g}) for some documents",
                "offset" if "offset" in data else "scale",
            )
    name = data.get("name", "")
    if not isinstance(name, str):
        raise fail("name must be a string", "name")
    return Rule(
        label=label,
        min_p=min_p,
        max_p=max_p,
        weight=values.get("weight"),
        weight_from=weight_from,
        scale=values.get("scale", 1.0),
        offset=values.get("offset", 0.0),
        name=name,
        line=lines.get(""),
    )


class _LocatedError(Exception):
    def __init__(self, line: int | None, problem: str):
        super().__init__(problem)
        self.line, self.problem = line, problem


def parse_policy(text: str, path: str = "<policy>") -> Policy:
    """Parse and validate a policy; raises PolicyError `path:line: problem`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"at line (\d+)", str(exc))
        line = getattr(exc, "lineno", None) or (int(match.group(1)) if match else None)
        raise PolicyError(f"{path}:{line or '?'}: not valid TOML: {exc}") from None
    top, rule_lines = _key_lines(text)
    try:
        for key in data:
            if key not in TOP_KEYS:
                raise _LocatedError(top.get(key), f"unknown key {key!r}; a policy takes {', '.join(TOP_KEYS)}")
        default_weight = _top_number(data, "default_weight", 1.0, top)
        if default_weight < 0:
            raise _LocatedError(top.get("default_weight"), f"negative default_weight {default_weight:g}")
        seed = data.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise _LocatedError(top.get("seed"), f"seed must be a whole number >= 0, got {seed!r}")
        raw_rules = data.get("rule", [])
        if not isinstance(raw_rules, list):
            raise _LocatedError(top.get("rule"), "`rule` must be an array of tables: write each as [[rule]]")
        rules = tuple(
            _rule(raw, i, rule_lines[i] if i < len(rule_lines) else {"": top.get("rule")})
            for i, raw in enumerate(raw_rules)
        )
        _check_overlaps(rules)
        for key in ("name", "description"):
            if not isinstance(data.get(key, ""), str):
                raise _LocatedError(top.get(key), f"{key} must be a string")
    except _LocatedError as exc:
        raise PolicyError(f"{path}:{exc.line or '?'}: {exc.problem}") from None
    return Policy(
        name=data.get("name", Path(path).stem),
        description=data.get("description", ""),
        rules=rules,
        default_weight=default_weight,
        seed=seed,
        path=path,
        text=text,
    )


def _top_number(data: dict, key: str, default: float, lines: dict[str, int]) -> float:
    try:
        return _number(data.get(key, default), key)
    except ValueError as exc:
        raise _LocatedError(lines.get(key), str(exc)) from None


def _check_overlaps(rules: tuple[Rule, ...]) -> None:
    for i, a in enumerate(rules):
        for j in range(i):
            b = rules[j]
            if a.label == b.label and max(a.min_p, b.min_p) < min(a.max_p, b.max_p):
                raise _LocatedError(
                    a.line,
                    f"rule {i + 1} overlaps rule {j + 1} (line {b.line}): both cover {a.label} documents with "
                    f"p_{a.label} in [{max(a.min_p, b.min_p):g}, {min(a.max_p, b.max_p):g}); "
                    "give them ranges that do not overlap",
                )


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy file, or a shipped policy by name (`default`, ...)."""
    path = Path(path)
    if not path.exists() and str(path) in SHIPPED:
        path = shipped_policy_path(str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{path}: cannot read the policy: {exc}") from None
    return parse_policy(text, str(path))
