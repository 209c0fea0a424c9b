"""Progress of a reading task: a live bar on a terminal, plain log lines elsewhere."""

from __future__ import annotations

import sys
import time

from datatrove.utils.logging import logger


def batch_bar(items: list, enabled: bool, description: str):
    """`items`, wrapped in a tqdm bar when `enabled`: for the batch loops of training and embedding."""
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=description, unit="batch", leave=False)


class Progress:
    """Counts records and bytes read by one task and reports them with their rates.

    On a terminal it draws a tqdm bar; otherwise (CI, logs, pipes) it writes a line every
    `interval` seconds, so long runs show life without flooding the log.
    """

    def __init__(self, rank: int = 0, enabled: bool = True, interval: float = 30.0, label: str = ""):
        self.rank = rank
        self.label = label
        self.enabled = enabled
        self.interval = interval
        self.records = 0
        self.bytes = 0
        self._start = time.monotonic()
        self._last_log = self._start
        self._bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(desc=f"task {rank}{label}", unit=" rec", position=rank, leave=False, dynamic_ncols=True)

    def update(self, records: int = 1, nbytes: int = 0) -> None:
        self.records += records
        self.bytes += nbytes
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(records)
            if self.records % 256 == 0:
                self._bar.set_postfix_str(f"{self._mb_per_s():.1f} MB/s", refresh=False)
            return
        now = time.monotonic()
        if now - self._last_log >= self.interval:
            self._last_log = now
            logger.info(self.summary())

    def _mb_per_s(self) -> float:
        return self.bytes / 1e6 / max(time.monotonic() - self._start, 1e-9)

    def summary(self) -> str:
        elapsed = max(time.monotonic() - self._start, 1e-9)
        return (
            f"task {self.rank}{self.label}: {self.records:,} records ({self.records / elapsed:,.0f}/s), "
            f"{self.bytes / 1e6:,.1f} MB ({self._mb_per_s():,.1f} MB/s)"
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self.enabled and self.records:
            logger.info(self.summary())
