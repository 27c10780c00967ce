"""The edge's own view of its click latency, from its /metrics histogram.

hey's percentiles include hey: its goroutines share the CPUs with the server, and their
scheduling shows up in the tail. The edge times each click from handler start to 302
sent (``afftok_click_latency_seconds``). Scraping that histogram just before and just
after a load run and subtracting gives the distribution of exactly that run's clicks;
p50 and p99 are then read by linear interpolation inside a bucket, as Prometheus'
``histogram_quantile`` does, so they are only as fine as the buckets around them.
"""

from __future__ import annotations

import math
import time
import urllib.request

import msgspec
from prometheus_client.parser import text_string_to_metric_families

from edge.metrics import SNAPSHOT_INTERVAL_S

LATENCY_METRIC = "afftok_click_latency_seconds"

Buckets = dict[float, float]  # upper bound in seconds (math.inf last) -> cumulative count


class ServerLatency(msgspec.Struct, kw_only=True):
    clicks: int
    p50_ms: float | None
    p99_ms: float | None


def parse_latency_buckets(metrics_text: str) -> Buckets:
    """Cumulative bucket counts of the click latency histogram, summed over label sets."""
    buckets: Buckets = {}
    for family in text_string_to_metric_families(metrics_text):
        if family.name != LATENCY_METRIC:
            continue
        for sample in family.samples:
            if sample.name == f"{LATENCY_METRIC}_bucket":
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return dict(sorted(buckets.items()))


def bucket_deltas(before: Buckets, after: Buckets) -> Buckets:
    return {bound: count - before.get(bound, 0.0) for bound, count in after.items()}


def quantile_s(q: float, buckets: Buckets) -> float | None:
    """The ``q`` quantile of cumulative ``buckets``, linear inside its bucket; None if empty.

    The first bucket starts at 0. A quantile in the +Inf bucket is reported as the highest
    finite bound (a lower limit, as in Prometheus).
    """
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if bounds else 0.0
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for upper in bounds:
        cumulative = buckets[upper]
        if cumulative >= rank:
            if math.isinf(upper):
                return lower
            inside = cumulative - below
            return upper if inside <= 0 else lower + (upper - lower) * (rank - below) / inside
        lower, below = upper, cumulative
    return lower


def server_latency(before: Buckets, after: Buckets) -> ServerLatency:
    deltas = bucket_deltas(before, after)
    p50, p99 = quantile_s(0.5, deltas), quantile_s(0.99, deltas)
    return ServerLatency(
        clicks=round(deltas.get(math.inf, 0.0)),
        p50_ms=None if p50 is None else p50 * 1e3,
        p99_ms=None if p99 is None else p99 * 1e3,
    )


def scrape_latency_buckets(edge_url: str, timeout_s: float = 10) -> Buckets:
    """The edge's histogram once every edge process has written a fresh snapshot."""
    time.sleep(SNAPSHOT_INTERVAL_S * 1.5)  # other processes' counts reach /metrics through files written about once a second
    with urllib.request.urlopen(f"{edge_url}/metrics", timeout=timeout_s) as response:
        return parse_latency_buckets(response.read().decode())
