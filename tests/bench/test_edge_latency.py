"""The server-side latency view: histogram text in, bucket deltas and interpolated percentiles out."""

import math

import pytest

from bench.edge_latency import bucket_deltas, parse_latency_buckets, quantile_s, server_latency

BEFORE = """\
# TYPE afftok_click_latency_seconds histogram
afftok_click_latency_seconds_bucket{le="0.001"} 10.0
afftok_click_latency_seconds_bucket{le="0.002"} 10.0
afftok_click_latency_seconds_bucket{le="0.005"} 10.0
afftok_click_latency_seconds_bucket{le="+Inf"} 10.0
afftok_click_latency_seconds_count 10.0
afftok_click_latency_seconds_sum 0.005
# TYPE afftok_clicks counter
afftok_clicks_total{outcome="redirect"} 10.0
"""

# Two label sets (say, two edge instances) are summed bucket by bucket.
AFTER = """\
# TYPE afftok_click_latency_seconds histogram
afftok_click_latency_seconds_bucket{instance="a",le="0.001"} 40.0
afftok_click_latency_seconds_bucket{instance="a",le="0.002"} 80.0
afftok_click_latency_seconds_bucket{instance="a",le="0.005"} 90.0
afftok_click_latency_seconds_bucket{instance="a",le="+Inf"} 90.0
afftok_click_latency_seconds_bucket{instance="b",le="0.001"} 20.0
afftok_click_latency_seconds_bucket{instance="b",le="0.002"} 20.0
afftok_click_latency_seconds_bucket{instance="b",le="0.005"} 119.0
afftok_click_latency_seconds_bucket{instance="b",le="+Inf"} 120.0
"""


def test_deltas_are_this_runs_clicks_summed_over_label_sets():
    deltas = bucket_deltas(parse_latency_buckets(BEFORE), parse_latency_buckets(AFTER))
    assert deltas == {0.001: 50.0, 0.002: 90.0, 0.005: 199.0, math.inf: 200.0}


@pytest.mark.parametrize(("q", "buckets", "expected_s"), [
    # 100 clicks, 50 under 1 ms, 50 between 1 and 2 ms: the median is the 1 ms bound.
    (0.5, {0.001: 50, 0.002: 100, math.inf: 100}, 0.001),
    # p99: 49 of the 50 clicks inside (1, 2] ms -> 1 + 49/50 ms.
    (0.99, {0.001: 50, 0.002: 100, math.inf: 100}, 0.00198),
    # The first bucket starts at 0.
    (0.5, {0.001: 100, math.inf: 100}, 0.0005),
    # In the +Inf bucket: the highest finite bound, a lower limit.
    (0.99, {0.001: 50, 0.005: 90, math.inf: 100}, 0.005),
    # Empty buckets before the quantile's bucket are skipped.
    (0.5, {0.001: 0, 0.002: 0, 0.004: 10, math.inf: 10}, 0.003),
])
def test_quantile_interpolates_inside_its_bucket(q, buckets, expected_s):
    assert quantile_s(q, buckets) == pytest.approx(expected_s)


def test_no_clicks_means_no_percentiles():
    assert quantile_s(0.99, {0.001: 0, math.inf: 0}) is None
    same = parse_latency_buckets(BEFORE)
    latency = server_latency(same, same)
    assert (latency.clicks, latency.p50_ms, latency.p99_ms) == (0, None, None)


def test_server_latency_in_ms():
    latency = server_latency(parse_latency_buckets(BEFORE), parse_latency_buckets(AFTER))
    assert latency.clicks == 200
    # p99 of 200: rank 198, in (2, 5] ms where the cumulative count goes 90 -> 199.
    assert latency.p99_ms == pytest.approx(2 + 3 * (198 - 90) / 109)
