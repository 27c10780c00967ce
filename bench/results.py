"""Everything one ``bench.run`` measured, the targets it is held to, and where it is kept."""

from __future__ import annotations

from pathlib import Path

import msgspec

from bench.click_lag import ClickLag
from bench.edge_latency import ServerLatency
from bench.ingest_capacity import IngestCapacity
from bench.load_result import LoadResult
from bench.machine import Machine
from bench.postbacks import PostbackLag, PostbackPeak
from bench.tenant_timing import MISSING, OTHER_ORG, TenantTiming

RESULTS_DIR = Path(__file__).resolve().parent / "results"

EDGE, BARE, NGINX = "edge", "bare Starlette", "nginx"

EDGE_VS_BARE_MIN = 0.6
HALF_PEAK_P99_MAX_MS = 5.0
CLICK_LAG_P99_MAX_MS = 1000.0
INGEST_VS_EDGE_MIN = 3.0
# |median(other org's id) - median(missing id)| for GET /v1/offers/{id}, one request in
# flight: well under a Postgres index probe's worth, so a difference this small is no tell.
TENANT_MEDIAN_DIFF_MAX_MS = 0.2
POSTBACK_VS_CLICK_MIN = 0.5
POSTBACK_LAG_P99_MAX_MS = 1000.0


class Check(msgspec.Struct, kw_only=True):
    name: str
    target: str
    measured: str
    passed: bool


class BenchResults(msgspec.Struct, kw_only=True):
    machine: Machine
    cpu_busy_before_pct: float  # other load on the machine just before the run
    duration_s: float
    rounds: int
    peak: dict[str, LoadResult]  # the median round of each target
    peak_rounds: dict[str, list[LoadResult]]
    half_peak: LoadResult  # as the visitor sees it: what the check holds to
    half_peak_server: ServerLatency | None = None  # the same clicks as the edge timed them
    half_peak_bare: LoadResult  # the same rate against bare Starlette: the load tool's floor
    click_lag: ClickLag
    ingest: IngestCapacity
    tenant_timing: TenantTiming
    postback_peak: PostbackPeak | None = None
    postback_lag: PostbackLag | None = None
    checks: list[Check] = []

    @property
    def clicks_answered(self) -> int:
        return self.half_peak.status_counts.get("302", 0)


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} ms"


def _half_peak_p99(results: BenchResults) -> str:
    """hey's p99, which the check holds to, with the edge's own histogram beside it."""
    server = results.half_peak_server
    server_p99 = _ms(server.p99_ms if server else None)
    return f"{_ms(results.half_peak.p99_ms)} by hey (server-side histogram {server_p99})"


def _tenant_check(timing: TenantTiming) -> Check:
    low, high = timing.median_diff_ci_ms
    statuses = " vs ".join(
        "/".join(f"{status}×{count:,}" for status, count in timing.groups[group].statuses.items()) for group in (MISSING, OTHER_ORG)
    )
    body = "one body" if len(timing.distinct_bodies) == 1 else f"{len(timing.distinct_bodies)} different bodies"
    if timing.own_offer_status != 200:  # the route itself is broken: two 404s prove nothing
        body += f"; own offer answered {timing.own_offer_status}, not 200"
    return Check(
        name="cross-tenant id indistinguishable from a missing one",
        target=f"same 404 and body, Δ median within ±{TENANT_MEDIAN_DIFF_MAX_MS:g} ms",
        measured=f"{statuses}, {body}; Δ median {timing.median_diff_ms:+.3f} ms (95 % CI {low:+.3f} to {high:+.3f})",
        passed=timing.same_answer and timing.own_offer_status == 200 and abs(timing.median_diff_ms) <= TENANT_MEDIAN_DIFF_MAX_MS,
    )


def evaluate(results: BenchResults) -> list[Check]:
    edge, bare = results.peak[EDGE].rps, results.peak[BARE].rps
    lag, ingest = results.click_lag, results.ingest
    return [
        Check(name="edge throughput vs bare Starlette", target=f"≥ {EDGE_VS_BARE_MIN}×",
              measured=f"{edge / bare:.2f}× ({edge:,.0f} / {bare:,.0f} rps)", passed=edge >= EDGE_VS_BARE_MIN * bare),
        Check(name=f"edge p99 at half peak ({results.half_peak.rps:,.0f} rps)", target=f"≤ {HALF_PEAK_P99_MAX_MS:g} ms",
              measured=_half_peak_p99(results), passed=results.half_peak.p99_ms <= HALF_PEAK_P99_MAX_MS),
        Check(name="click → row p99", target=f"≤ {CLICK_LAG_P99_MAX_MS:g} ms",
              measured=f"{_ms(lag.p99_ms)} (p50 {_ms(lag.p50_ms)}, max {_ms(lag.max_ms)})",
              passed=lag.p99_ms is not None and lag.p99_ms <= CLICK_LAG_P99_MAX_MS),
        Check(name="302s answered = rows in Postgres", target="equal",
              measured=f"{results.clicks_answered:,} / {lag.rows:,}", passed=results.clicks_answered == lag.rows),
        Check(name="one ingest worker vs edge peak", target=f"≥ {INGEST_VS_EDGE_MIN:g}×",
              measured=f"{ingest.clicks_per_s / edge:.2f}× ({ingest.clicks_per_s:,.0f} clicks/s)",
              passed=ingest.inserted == ingest.clicks and ingest.clicks_per_s >= INGEST_VS_EDGE_MIN * edge),
        _tenant_check(results.tenant_timing),
        *_postback_checks(results),
    ]


def _postback_checks(results: BenchResults) -> list[Check]:
    peak, lag, clicks = results.postback_peak, results.postback_lag, results.peak[EDGE].rps
    if peak is None or lag is None:
        return []
    return [
        Check(name="postback accept peak vs click peak", target=f"≥ {POSTBACK_VS_CLICK_MIN}×",
              measured=f"{peak.run.rps / clicks:.2f}× ({peak.run.rps:,.0f} / {clicks:,.0f} rps)",
              passed=peak.run.rps >= POSTBACK_VS_CLICK_MIN * clicks),
        Check(name="peak postbacks: 202s → conversion rows", target="rows ≥ 202s, none lost",
              measured=f"{peak.rows:,} rows / {peak.accepted:,} 202s", passed=peak.accepted > 0 and peak.rows >= peak.accepted),
        Check(name=f"postback → row p99 ({lag.sent:,} postbacks, paced)", target=f"≤ {POSTBACK_LAG_P99_MAX_MS:g} ms",
              measured=f"{_ms(lag.p99_ms)} (p50 {_ms(lag.p50_ms)}, max {_ms(lag.max_ms)})",
              passed=lag.p99_ms is not None and lag.p99_ms <= POSTBACK_LAG_P99_MAX_MS),
        Check(name="paced postbacks: each 202 is one row", target="0 missing, 0 extra, all 202",
              measured=f"{lag.accepted:,} 202s of {lag.sent:,}; {lag.rows:,} rows; {lag.missing} missing, "
                       f"{lag.unexpected} extra",
              passed=lag.accepted == lag.sent and lag.missing == 0 and lag.unexpected == 0 and lag.rows == lag.accepted),
    ]


def save(results: BenchResults, name: str = "latest.json") -> Path:
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / name
    path.write_bytes(msgspec.json.format(msgspec.json.encode(results), indent=2))
    return path
