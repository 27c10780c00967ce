"""The delivery policy, by table: what each answer (or its absence) leads to."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from core.delivery_policy import RetryPolicy, backoff_s, decide, should_disable

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.timezone.utc)
LATER = NOW + dt.timedelta(hours=72)
POLICY = RetryPolicy(base_s=5, max_s=7200)


@pytest.mark.parametrize("status, error, verdict, gone", [
    (200, None, "delivered", False),
    (204, None, "delivered", False),
    (299, None, "delivered", False),
    (500, None, "retry", False),
    (502, None, "retry", False),
    (503, None, "retry", False),
    (408, None, "retry", False),
    (425, None, "retry", False),
    (429, None, "retry", False),
    (400, None, "dead", False),
    (401, None, "dead", False),
    (404, None, "dead", False),
    (422, None, "dead", False),
    (410, None, "dead", True),
    (301, None, "dead", False),
    (302, None, "dead", False),
    (307, None, "dead", False),
    (None, "timeout", "retry", False),
    (None, "connect", "retry", False),
    (None, "tls", "retry", False),
    (None, "protocol", "retry", False),
    (None, "unsafe_url", "retry", False),
    (None, "invalid_request", "dead", False),
])
def test_each_answer_has_its_verdict(status, error, verdict, gone):
    decision = decide(status, error, attempt=1, now=NOW, retry_until=LATER, policy=POLICY, rng=random.Random(1))
    assert (decision.verdict, decision.disables_endpoint) == (verdict, gone)
    assert (decision.next_attempt_at is not None) == (verdict == "retry")


def test_retries_back_off_exponentially_with_jitter_up_to_the_cap():
    rng = random.Random(3)
    for attempt, step in [(1, 5), (2, 10), (3, 20), (8, 640), (11, 5120), (12, 7200), (40, 7200), (1000, 7200)]:
        waits = [backoff_s(attempt, POLICY, rng) for _ in range(200)]
        assert step / 2 <= min(waits) and max(waits) <= step
        assert max(waits) - min(waits) > step / 4  # spread out, not in lockstep


def test_retries_stop_at_retry_until_and_the_last_one_is_at_it():
    near = LATER - dt.timedelta(seconds=30)
    decision = decide(503, None, attempt=20, now=near, retry_until=LATER, policy=POLICY, rng=random.Random(1))
    assert decision.next_attempt_at == LATER
    assert decide(503, None, attempt=21, now=LATER, retry_until=LATER, policy=POLICY,
                  rng=random.Random(1)).verdict == "dead"


def test_a_full_72_hours_of_failures_is_a_few_dozen_attempts():
    rng, now, attempts = random.Random(5), NOW, 0
    while True:
        attempts += 1
        decision = decide(None, "connect", attempt=attempts, now=now, retry_until=LATER, policy=POLICY, rng=rng)
        if decision.verdict == "dead":
            break
        now = decision.next_attempt_at
    assert now == LATER and 30 <= attempts <= 80


def test_retry_after_is_honoured_when_longer_than_the_backoff():
    decision = decide(429, None, attempt=1, now=NOW, retry_until=LATER, policy=POLICY, rng=random.Random(1),
                      retry_after_s=900)
    assert decision.next_attempt_at == NOW + dt.timedelta(seconds=900)


@pytest.mark.parametrize("streak, failing_for_s, disabled", [
    (99, 10 * 86400, False), (100, 23 * 3600, False), (100, 24 * 3600, True), (500, 86400 * 3, True),
    (0, 0, False),
])
def test_an_endpoint_is_disabled_only_after_many_failures_over_a_long_time(streak, failing_for_s, disabled):
    since = NOW - dt.timedelta(seconds=failing_for_s)
    assert should_disable(streak, since, NOW, RetryPolicy()) is disabled
    assert should_disable(streak, None, NOW, RetryPolicy()) is False
