"""Rate limiting by GCRA (the generic cell rate algorithm), as pure arithmetic.

A limit is ``per_minute`` requests a minute on average, with up to ``burst`` at once.
The whole state of one caller is one number, the *theoretical arrival time* (TAT, in
milliseconds): the moment its full burst would be available again if it stopped now.
Each allowed request pushes the TAT ``interval_ms`` further; a request is refused when
it would put the TAT more than ``burst`` intervals ahead of now. No window boundary
exists, so no caller gets twice the limit across one.

``gcra_step`` is the definition; ``api.rate_limit`` runs the same step atomically in
Redis (one Lua script per request) and uses ``decision`` to describe the result, so the
two stay one algorithm. Times are plain numbers passed in: tests choose ``now_ms``.
"""

from __future__ import annotations

import math

import msgspec


class RateLimitPolicy(msgspec.Struct, frozen=True, kw_only=True):
    per_minute: int
    burst: int

    def __post_init__(self) -> None:
        if self.per_minute < 1 or self.burst < 1:
            raise ValueError("a rate limit needs per_minute >= 1 and burst >= 1")

    @property
    def interval_ms(self) -> float:
        """The time one request's allowance takes to come back."""
        return 60_000 / self.per_minute


class RateLimitDecision(msgspec.Struct, frozen=True, kw_only=True):
    allowed: bool
    limit: int  # the most requests allowed at once (the burst)
    remaining: int  # requests allowed right now, after this one
    reset_s: int  # seconds until the full burst is available again
    retry_after_s: int  # seconds to wait before retrying; 0 when allowed

    def headers(self, policy: RateLimitPolicy) -> dict[str, str]:
        """``RateLimit-*`` headers (IETF httpapi draft), plus ``Retry-After`` when refused."""
        out = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_s),
            "RateLimit-Policy": f"{policy.burst};w={math.ceil(policy.burst * policy.interval_ms / 1000)}",
        }
        if not self.allowed:
            out["Retry-After"] = str(self.retry_after_s)
        return out


def gcra_step(tat_ms: float | None, now_ms: float, policy: RateLimitPolicy) -> tuple[bool, float]:
    """One request at ``now_ms`` against stored ``tat_ms`` (None: a new caller).

    Returns whether it is allowed and the TAT to keep (unchanged when refused).
    """
    tat = now_ms if tat_ms is None else max(tat_ms, now_ms)
    new_tat = tat + policy.interval_ms
    if now_ms < new_tat - policy.burst * policy.interval_ms:
        return False, tat
    return True, new_tat


def decision(allowed: bool, tat_ms: float, now_ms: float, policy: RateLimitPolicy) -> RateLimitDecision:
    """Describe the outcome of a step that left ``tat_ms`` stored."""
    interval = policy.interval_ms
    ahead_ms = max(0.0, tat_ms - now_ms)  # how far the caller has drawn on its burst
    remaining = max(0, math.floor((policy.burst * interval - ahead_ms) / interval + 1e-9))
    if allowed:
        retry_after_s = 0
    else:  # until one more interval fits within the burst
        retry_after_s = max(1, math.ceil((ahead_ms + interval - policy.burst * interval) / 1000))
    return RateLimitDecision(
        allowed=allowed, limit=policy.burst, remaining=remaining,
        reset_s=math.ceil(ahead_ms / 1000), retry_after_s=retry_after_s,
    )
