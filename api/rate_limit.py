"""Per-principal rate limits, kept in Redis: ``RateLimiter.check`` and ``enforce_rate_limit``.

Each authenticated request takes one step of GCRA (``core.rate_limit``) for its
principal (the API key's id, or the dashboard user's id) in one Lua script: read, decide
and write happen atomically in Redis, one round trip, so concurrent requests of one key
cannot both spend the last allowance. Every api process shares the state; the time
comes from the api process (``clock_ms``), so api hosts should keep their clocks in
sync (a skew of d ms shifts a caller's allowance by at most d ms).

Runs after authentication (so credentials that fail never touch Redis) and before
authorization and the handler, in ``api.app.secured``; a refused request does nothing.

**Fails open.** If Redis errs or does not answer within ``api_rate_limit_timeout_ms``,
the request goes through unlimited: the failure is logged (at most once a minute) and
counted in ``afftok_api_rate_limit_failures_total``. A management API should not go down
because its limiter's store did; the edge and the database do not depend on it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

import redis.asyncio as aioredis
from prometheus_client import Counter
from redis.exceptions import RedisError
from starlette.requests import Request

from api.errors import RateLimited
from core.permissions import Principal
from core.rate_limit import RateLimitDecision, RateLimitPolicy, decision
from core.redis_keys import RedisKeys
from core.settings import Settings

log = logging.getLogger("afftok.api")

RATE_LIMIT_FAILURES = Counter(
    "afftok_api_rate_limit_failures_total", "Requests let through unlimited because the rate limiter's Redis failed."
)

# core.rate_limit.gcra_step, in Redis. KEYS[1]: the principal's TAT; ARGV: now_ms,
# interval_ms, burst. Returns {allowed, TAT kept}; the TAT as text, as Lua numbers
# would come back truncated to integers.
_GCRA_STEP = """
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
if now < new_tat - burst * interval then
    return {0, string.format('%.3f', tat)}
end
redis.call('SET', KEYS[1], string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now))
return {1, string.format('%.3f', new_tat)}
"""

ClockMs = Callable[[], float]


def wall_clock_ms() -> float:
    return time.time() * 1000


def policy_of(settings: Settings) -> RateLimitPolicy | None:
    """The configured limit; None (no limit) when ``api_rate_limit_per_minute`` is 0."""
    if settings.api_rate_limit_per_minute <= 0:
        return None
    return RateLimitPolicy(per_minute=settings.api_rate_limit_per_minute, burst=settings.api_rate_limit_burst)


def principal_key(keys: RedisKeys, principal: Principal) -> str:
    return keys.rate_limit(principal.actor_type, principal.actor_id)


class RateLimiter:
    def __init__(
        self, redis: aioredis.Redis, keys: RedisKeys, policy: RateLimitPolicy | None, *,
        timeout_ms: int, clock_ms: ClockMs = wall_clock_ms,
    ):
        self.redis = redis
        self.keys = keys
        self.policy = policy
        self.timeout_s = timeout_ms / 1000
        self.clock_ms = clock_ms
        self._step = redis.register_script(_GCRA_STEP)
        self._last_failure_log_s = -float("inf")

    @classmethod
    def from_settings(cls, settings: Settings, redis: aioredis.Redis, keys: RedisKeys, **kw) -> "RateLimiter":
        return cls(redis, keys, policy_of(settings), timeout_ms=settings.api_rate_limit_timeout_ms, **kw)

    async def check(self, principal: Principal) -> RateLimitDecision | None:
        """Spend one request of ``principal``'s allowance; None if unlimited or Redis failed."""
        if self.policy is None:
            return None
        now_ms = self.clock_ms()
        try:
            allowed, tat_ms = await asyncio.wait_for(
                self._step(keys=[principal_key(self.keys, principal)],
                           args=[f"{now_ms:.3f}", f"{self.policy.interval_ms:.6f}", self.policy.burst]),
                self.timeout_s,
            )
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            self._failed(exc)
            return None
        return decision(bool(allowed), float(tat_ms), now_ms, self.policy)

    def _failed(self, exc: BaseException) -> None:
        RATE_LIMIT_FAILURES.inc()
        now_s = time.monotonic()
        if now_s - self._last_failure_log_s >= 60:
            self._last_failure_log_s = now_s
            log.warning("rate limiter unavailable, letting requests through unlimited: %r", exc)


def rate_limiter(request: Request) -> RateLimiter:
    return request.app.state.rate_limiter


async def enforce_rate_limit(request: Request, principal: Principal) -> dict[str, str]:
    """Raise ``RateLimited`` (429) if ``principal`` is over its limit; else the headers to send."""
    limiter = rate_limiter(request)
    result = await limiter.check(principal)
    if result is None:
        return {}
    headers = result.headers(limiter.policy)
    if not result.allowed:
        raise RateLimited(
            message=f"too many requests: this credential may make {limiter.policy.per_minute} requests a minute"
            f" (bursts of {limiter.policy.burst}); retry after {result.retry_after_s} s",
            headers=headers,
        )
    return headers
