"""GCRA as pure arithmetic: times are passed in, no clock, no Redis."""

from __future__ import annotations

import pytest

from core.rate_limit import RateLimitPolicy, decision, gcra_step

# 60 a minute = one request a second on average, bursts of 3.
POLICY = RateLimitPolicy(per_minute=60, burst=3)
T0 = 1_700_000_000_000.0


def run(times_ms: list[float], policy: RateLimitPolicy = POLICY) -> list[tuple[bool, int, int]]:
    """(allowed, remaining, retry_after_s) of each request at ``times_ms``."""
    tat, out = None, []
    for now in times_ms:
        allowed, tat = gcra_step(tat, now, policy)
        d = decision(allowed, tat, now, policy)
        out.append((d.allowed, d.remaining, d.retry_after_s))
    return out


def test_a_burst_passes_then_the_next_request_is_refused():
    assert run([T0] * 5) == [(True, 2, 0), (True, 1, 0), (True, 0, 0), (False, 0, 1), (False, 0, 1)]


def test_allowance_comes_back_one_interval_at_a_time():
    times = [T0, T0, T0, T0 + 999, T0 + 1000, T0 + 1000, T0 + 3000, T0 + 3000, T0 + 3000, T0 + 3000]
    assert [a for a, _, _ in run(times)] == [True, True, True, False, True, False, True, True, False, False]


def test_an_idle_caller_gets_its_whole_burst_back_and_no_more():
    times = [T0] * 3 + [T0 + 60_000] * 4
    assert [a for a, _, _ in run(times)] == [True] * 3 + [True] * 3 + [False]


def test_a_steady_caller_at_the_rate_is_never_refused():
    times = [T0 + n * 1000 for n in range(200)]
    assert all(a for a, _, _ in run(times))


def test_refusals_do_not_spend_allowance():
    # Hammering while refused must not push the recovery further away.
    times = [T0] * 3 + [T0 + n for n in range(1, 900, 10)] + [T0 + 1000]
    assert run(times)[-1][0] is True


@pytest.mark.parametrize("per_minute, burst, retry_after_s", [
    (60, 1, 1), (6, 1, 10), (1, 2, 60), (600, 1, 1), (7, 1, 9),
])
def test_retry_after_is_whole_seconds_and_at_least_one(per_minute, burst, retry_after_s):
    policy = RateLimitPolicy(per_minute=per_minute, burst=burst)
    results = run([T0] * (burst + 1), policy)
    assert results[-1] == (False, 0, retry_after_s)


def test_headers():
    tat = None
    for _ in range(3):
        allowed, tat = gcra_step(tat, T0, POLICY)
    ok = decision(allowed, tat, T0, POLICY)
    assert ok.headers(POLICY) == {
        "RateLimit-Limit": "3", "RateLimit-Remaining": "0", "RateLimit-Reset": "3", "RateLimit-Policy": "3;w=3",
    }
    allowed, tat = gcra_step(tat, T0, POLICY)
    refused = decision(allowed, tat, T0, POLICY).headers(POLICY)
    assert refused["Retry-After"] == "1" and refused["RateLimit-Remaining"] == "0"


@pytest.mark.parametrize("per_minute, burst", [(0, 1), (1, 0), (-5, 3)])
def test_a_policy_needs_a_positive_rate_and_burst(per_minute, burst):
    with pytest.raises(ValueError):
        RateLimitPolicy(per_minute=per_minute, burst=burst)
