"""The edge's Prometheus metrics, cheap to update on the hot path.

Counters are plain ints and the latency histogram is a list of per-bucket counts; a
custom collector turns them into Prometheus families only when /metrics is scraped.

With several edge processes (``settings.metrics_dir`` set), each one writes its
cumulative snapshot to ``metrics_dir/edge-<pid>.json`` about once a second and at
shutdown (write to a temporary name, then rename). /metrics adds up every snapshot
file, using the live numbers for its own process. Files of processes that have exited
are kept, so counters never go backwards.
"""

from __future__ import annotations

import json
import logging
import os
from bisect import bisect_left
from pathlib import Path
from typing import Iterable

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from core.models import FALLBACK_CAPPED, FALLBACK_GEO, FALLBACK_PAUSED, FALLBACK_UNAPPROVED, REDIRECT, UNAVAILABLE

log = logging.getLogger(__name__)

# Millisecond steps around the 5 ms objective, so a p99 read from the histogram lands
# within a millisecond of the truth; bisect keeps the per-click cost the same.
LATENCY_BUCKETS_S = (
    0.00025, 0.0005, 0.001, 0.002, 0.003, 0.004, 0.005, 0.0075,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)
OUTCOMES = (REDIRECT, FALLBACK_PAUSED, FALLBACK_UNAPPROVED, FALLBACK_GEO, FALLBACK_CAPPED, UNAVAILABLE)
# Postbacks and pixel hits by outcome: "accepted", or the error code that refused them.
POSTBACK_OUTCOMES = ("accepted", "unauthorized", "invalid_postback", "payload_too_large", "unsupported_media_type",
                     "invalid_body", "method_not_allowed")
SNAPSHOT_INTERVAL_S = 1.0


class SpoolCounts:
    """What a committer could only spool, or lost, for one kind of record."""

    __slots__ = ("spooled", "lost")

    def __init__(self) -> None:
        self.spooled = 0
        self.lost = 0


class EdgeMetrics:
    """Cumulative counts of one process."""

    __slots__ = ("clicks", "latency_counts", "latency_sum_s", "spooled", "lost", "postbacks", "pixels",
                 "postback_latency_counts", "postback_latency_sum_s", "postback_spool")

    def __init__(self) -> None:
        self.clicks: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        self.latency_counts = [0] * (len(LATENCY_BUCKETS_S) + 1)  # last one is +Inf
        self.latency_sum_s = 0.0
        self.spooled = 0
        self.lost = 0
        self.postbacks: dict[str, int] = dict.fromkeys(POSTBACK_OUTCOMES, 0)
        self.pixels: dict[str, int] = {}
        self.postback_latency_counts = [0] * (len(LATENCY_BUCKETS_S) + 1)
        self.postback_latency_sum_s = 0.0
        self.postback_spool = SpoolCounts()

    def observe_postback(self, outcome: str, latency_s: float) -> None:
        self.postbacks[outcome] = self.postbacks.get(outcome, 0) + 1
        if outcome == "accepted":
            self.postback_latency_counts[bisect_left(LATENCY_BUCKETS_S, latency_s)] += 1
            self.postback_latency_sum_s += latency_s

    def observe_pixel(self, outcome: str) -> None:
        self.pixels[outcome] = self.pixels.get(outcome, 0) + 1

    def observe_click(self, outcome: str, latency_s: float) -> None:
        self.clicks[outcome] = self.clicks.get(outcome, 0) + 1
        self.latency_counts[bisect_left(LATENCY_BUCKETS_S, latency_s)] += 1
        self.latency_sum_s += latency_s

    def snapshot(self) -> dict:
        return {
            "clicks": dict(self.clicks), "latency_counts": list(self.latency_counts),
            "latency_sum_s": self.latency_sum_s, "spooled": self.spooled, "lost": self.lost,
            "postbacks": dict(self.postbacks), "pixels": dict(self.pixels),
            "postback_latency_counts": list(self.postback_latency_counts),
            "postback_latency_sum_s": self.postback_latency_sum_s,
            "postbacks_spooled": self.postback_spool.spooled, "postbacks_lost": self.postback_spool.lost,
        }


def merge_snapshots(snapshots: Iterable[dict]) -> dict:
    total = EdgeMetrics().snapshot()
    for snap in snapshots:
        for outcome, n in snap.get("clicks", {}).items():
            total["clicks"][outcome] = total["clicks"].get(outcome, 0) + n
        counts = snap.get("latency_counts", [])
        if len(counts) == len(total["latency_counts"]):
            total["latency_counts"] = [a + b for a, b in zip(total["latency_counts"], counts)]
        total["latency_sum_s"] += snap.get("latency_sum_s", 0.0)
        for name in ("spooled", "lost", "postback_latency_sum_s", "postbacks_spooled", "postbacks_lost"):
            total[name] += snap.get(name, 0)
        for name in ("postbacks", "pixels"):
            for outcome, n in snap.get(name, {}).items():
                total[name][outcome] = total[name].get(outcome, 0) + n
        counts = snap.get("postback_latency_counts", [])
        if len(counts) == len(total["postback_latency_counts"]):
            total["postback_latency_counts"] = [a + b for a, b in zip(total["postback_latency_counts"], counts)]
    return total


class SnapshotFiles:
    """The per-process snapshot files in one metrics directory."""

    def __init__(self, directory: Path, pid: int):
        self.directory = directory
        self.pid = pid
        self.path = directory / f"edge-{pid}.json"

    def write(self, metrics: EdgeMetrics) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps(metrics.snapshot()))
        os.replace(tmp, self.path)

    def read_others(self) -> list[dict]:
        snapshots = []
        for path in self.directory.glob("edge-*.json"):
            if path == self.path:
                continue
            try:
                snapshots.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                log.warning("unreadable metrics snapshot %s", path)
        return snapshots


class EdgeCollector(Collector):
    def __init__(self, metrics: EdgeMetrics, files: SnapshotFiles | None):
        self.metrics = metrics
        self.files = files

    def collect(self):
        others = self.files.read_others() if self.files is not None else []
        snap = merge_snapshots([self.metrics.snapshot(), *others])
        clicks = CounterMetricFamily("afftok_clicks", "Clicks answered by the edge, by outcome.", labels=["outcome"])
        for outcome, n in sorted(snap["clicks"].items()):
            clicks.add_metric([outcome], n)
        yield clicks
        cumulative, buckets = 0, []
        for bound, n in zip([*map(str, LATENCY_BUCKETS_S), "+Inf"], snap["latency_counts"]):
            cumulative += n
            buckets.append((bound, cumulative))
        yield HistogramMetricFamily(
            "afftok_click_latency_seconds", "Click handler start to 302 sent.",
            buckets=buckets, sum_value=snap["latency_sum_s"],
        )
        yield CounterMetricFamily("afftok_clicks_spooled", "Clicks written to the local spool while Redis was unreachable.", value=snap["spooled"])
        yield CounterMetricFamily("afftok_clicks_lost", "Clicks neither in Redis nor in the spool.", value=snap["lost"])
        postbacks = CounterMetricFamily(
            "afftok_postbacks", "Conversion postbacks answered by the edge, by outcome (accepted or the error code).",
            labels=["outcome"])
        for outcome, n in sorted(snap["postbacks"].items()):
            postbacks.add_metric([outcome], n)
        yield postbacks
        pixels = CounterMetricFamily("afftok_pixels", "Conversion pixel hits, by outcome.", labels=["outcome"])
        for outcome, n in sorted(snap["pixels"].items()):
            pixels.add_metric([outcome], n)
        yield pixels
        yield HistogramMetricFamily(
            "afftok_postback_latency_seconds", "Accepted postback: request start to 202 sent (after the durable write).",
            buckets=_cumulative(snap["postback_latency_counts"]), sum_value=snap["postback_latency_sum_s"],
        )
        yield CounterMetricFamily("afftok_postbacks_spooled", "Postbacks written to the local spool while Redis was unreachable.",
                                  value=snap["postbacks_spooled"])
        yield CounterMetricFamily("afftok_postbacks_lost", "Accepted postbacks neither in Redis nor in the spool.",
                                  value=snap["postbacks_lost"])


def _cumulative(counts: list[int]) -> list[tuple[str, int]]:
    cumulative, buckets = 0, []
    for bound, n in zip([*map(str, LATENCY_BUCKETS_S), "+Inf"], counts):
        cumulative += n
        buckets.append((bound, cumulative))
    return buckets
