"""The taxonomy: five labels, in a fixed order shared by models, schemas and reports."""

from __future__ import annotations

LABELS: tuple[str, ...] = (
    "malevolent_ai",
    "ai_risk_discussion",
    "aligned_ai",
    "ai_neutral",
    "unrelated",
)
MALEVOLENT = "malevolent_ai"
UNRELATED = "unrelated"

#: Probability column of each label in `documents/` and `passages/`, in LABELS order.
PROB_COLUMNS: tuple[str, ...] = tuple(f"p_{label}" for label in LABELS)


def check_label(label: str) -> str:
    """Return `label` if it is one of the five, else raise with the valid choices."""
    if label not in LABELS:
        raise ValueError(f"unknown label {label!r}; expected one of {', '.join(LABELS)}")
    return label
