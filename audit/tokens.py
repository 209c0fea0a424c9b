"""The token estimate of reports and manifests: characters / 4, stated once.

A scan does not tokenize (it would tie the audit to one tokenizer); four characters per token is
the usual rule of thumb for English web text with BPE tokenizers. Every column or number called
`est_tokens` is this estimate, never a count.
"""

from __future__ import annotations

import math

CHARS_PER_TOKEN = 4
ESTIMATOR = f"est_tokens = characters / {CHARS_PER_TOKEN} (rule of thumb; not a tokenizer count)"


def est_tokens(chars: float) -> int:
    """The estimate for a number of characters, rounded half up (also for a negative change)."""
    return math.floor(chars / CHARS_PER_TOKEN + 0.5)


def est_tokens_sql(chars: str) -> str:
    """The same estimate as a DuckDB expression over a column (or sum) of characters."""
    return f"CAST(floor(({chars}) / {CHARS_PER_TOKEN} + 0.5) AS BIGINT)"
