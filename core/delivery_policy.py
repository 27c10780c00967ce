"""What happens after an outbound request: delivered, retried later, or dead-lettered.

The policy, in one place and pure (the worker passes ``now`` and a random source):

- **2xx**: delivered.
- **5xx, 408, 425, 429**, and no HTTP answer at all (connect, timeout, TLS, protocol
  failures, or an address the SSRF guard refused at send time, which may be a DNS
  change that reverts): retried with exponential backoff and jitter until the
  delivery's ``retry_until`` (72 hours after the event by default), then dead.
  A ``Retry-After`` the receiver sends is honoured when it asks for longer.
- **Other 4xx**: dead at once. The receiver looked at the request and refused it;
  sending the same bytes again cannot change its mind. Fix it, then replay.
- **3xx**: dead at once as well: redirects are never followed (the target of a redirect
  never passed the SSRF guard), so the receiver must be given its final URL.
- **410 Gone** also disables the endpoint: the receiver says it no longer exists.

An endpoint is disabled automatically once it has failed ``disable_after_failures``
attempts in a row *and* has been failing for at least ``disable_after_s``; both must
hold, so neither one slow hour nor a burst of events disables it.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Literal

import msgspec

RETRYABLE_4XX = frozenset({408, 425, 429})
PERMANENT_ERRORS = frozenset({"invalid_request"})  # the request could not be built: resending cannot help
ENDPOINT_GONE = 410
Verdict = Literal["delivered", "retry", "dead"]


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    base_s: float = 5.0  # the first retry comes after about this long
    max_s: float = 7200.0  # no wait between attempts grows past this
    disable_after_failures: int = 100
    disable_after_s: int = 24 * 3600


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    verdict: Verdict
    next_attempt_at: dt.datetime | None = None  # for "retry"
    disables_endpoint: bool = False  # a 410


def backoff_s(attempt: int, policy: RetryPolicy, rng: random.Random) -> float:
    """The wait after failed attempt ``attempt`` (1-based): doubling, capped, with jitter.

    "Equal jitter": half the step is fixed, half random, so retries of many deliveries
    that failed together spread out, yet none comes back much sooner than planned.
    """
    step = min(policy.base_s * 2 ** min(attempt - 1, 40), policy.max_s)
    return step / 2 + rng.uniform(0, step / 2)


def decide(
    status_code: int | None, error: str | None, *, attempt: int, now: dt.datetime, retry_until: dt.datetime,
    policy: RetryPolicy, rng: random.Random, retry_after_s: int | None = None,
) -> Decision:
    """The verdict on one attempt: an HTTP status, or an ``error`` kind when there was none."""
    if status_code is not None and 200 <= status_code < 300:
        return Decision(verdict="delivered")
    if status_code is None:
        retryable = error not in PERMANENT_ERRORS
    else:
        retryable = status_code >= 500 or status_code in RETRYABLE_4XX
    if not retryable:
        return Decision(verdict="dead", disables_endpoint=status_code == ENDPOINT_GONE)
    if now >= retry_until:
        return Decision(verdict="dead")
    wait_s = max(backoff_s(attempt, policy, rng), float(retry_after_s or 0))
    return Decision(verdict="retry", next_attempt_at=min(now + dt.timedelta(seconds=wait_s), retry_until))


def should_disable(failure_streak: int, failing_since: dt.datetime | None, now: dt.datetime,
                   policy: RetryPolicy) -> bool:
    """Whether an endpoint with this many failures in a row, since then, is to be disabled."""
    return (failure_streak >= policy.disable_after_failures and failing_since is not None
            and (now - failing_since).total_seconds() >= policy.disable_after_s)
