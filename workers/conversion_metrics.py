"""The conversion worker's Prometheus metrics, in the process's default registry: the
worker process (``workers.settings``) serves them on ``settings.worker_metrics_port``."""

from __future__ import annotations

import datetime as dt

from prometheus_client import Counter, Histogram

CONVERSIONS = Counter(
    "afftok_conversions", "Conversion changes stored by the worker, by the status they took and why "
    "(reason empty: none; invalid_transition: a postback's move the lifecycle refused, nothing stored).",
    ["status", "reason"],
)
UNCHANGED = Counter("afftok_conversion_repeats", "Postbacks that repeated a stored status (no-ops).")
WAITING = Counter("afftok_conversion_waits", "Postbacks put (back) to wait for their click.")
DEAD_LETTERS = Counter("afftok_conversion_dead_letters",
                       "Conversion stream entries (and waiting postbacks) dead-lettered.")
BATCHES = Counter("afftok_conversion_batches", "Conversion batch transactions committed.")
LAG = Histogram(
    "afftok_conversion_lag_seconds", "Postback accepted at the edge to its conversion committed.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900),
)


class ConversionMetrics:
    def __init__(self) -> None:
        self.dead_lettered = 0

    def observe(self, applied, committed_at: dt.datetime) -> None:
        """One committed batch: what it stored, and each new conversion's lag."""
        BATCHES.inc()
        for (status, reason), n in applied.conversions.items():
            CONVERSIONS.labels(status, reason).inc(n)
        if applied.unchanged:
            UNCHANGED.inc(applied.unchanged)
        if applied.waiting:
            WAITING.inc(applied.waiting)
        for received in applied.received:
            LAG.observe(max(0.0, (committed_at - received).total_seconds()))

    def dead_letter(self, n: int) -> None:
        self.dead_lettered += n
        DEAD_LETTERS.inc(n)
