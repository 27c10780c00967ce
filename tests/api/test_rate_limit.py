"""Per-key rate limits (429 + Retry-After) and request body limits (413), through the real app.

The limiter's clock is injected (``FakeClock``): recovery is shown by moving it, not by
waiting.
"""

from __future__ import annotations

import asyncio
import random
import re
import uuid

import msgspec
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from prometheus_client import REGISTRY

from api.rate_limit import RateLimiter
from api.routes import ENDPOINTS
from core.permissions import Principal
from core.rate_limit import RateLimitPolicy, decision, gcra_step
from core.store.api_keys import create_api_key
from tests.api.conftest import assert_error, make_tenant

PER_MINUTE, BURST = 60, 3  # one a second, bursts of 3


class FakeClock:
    def __init__(self) -> None:
        self.now_ms = 1_700_000_000_000.0

    def __call__(self) -> float:
        return self.now_ms

    def advance(self, seconds: float) -> None:
        self.now_ms += seconds * 1000


@pytest.fixture
def api_settings(api_settings):
    return msgspec.structs.replace(api_settings, api_rate_limit_per_minute=PER_MINUTE, api_rate_limit_burst=BURST)


@pytest.fixture
def clock(app) -> FakeClock:
    fake = FakeClock()
    app.state.rate_limiter.clock_ms = fake
    return fake


async def advertiser_count(pool, tenant) -> int:
    return await pool.fetchval("select count(*) from advertisers where org_id = $1", uuid.UUID(tenant.org_id))


async def create_advertiser(client, tenant, name: str = "Limited"):
    return await client.post("/v1/advertisers", json={"name": name}, headers=tenant.headers)


async def test_the_burst_passes_then_429_with_retry_after_and_nothing_written(client, pool, tenant, clock):
    before = await advertiser_count(pool, tenant)
    for n in range(BURST):
        response = await create_advertiser(client, tenant, f"Advertiser {n}")
        assert response.status_code == 201, response.text
        assert response.headers["RateLimit-Remaining"] == str(BURST - 1 - n)
        assert response.headers["RateLimit-Limit"] == str(BURST)

    refused = await create_advertiser(client, tenant, "One too many")

    body = assert_error(refused, 429, "rate_limited")
    assert "60 requests a minute" in body["message"]
    assert refused.headers["Retry-After"] == "1"
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert await advertiser_count(pool, tenant) == before + BURST


async def test_the_limit_recovers_as_time_passes(client, tenant, clock):
    for _ in range(BURST):
        assert (await client.get("/v1/advertisers", headers=tenant.headers)).status_code == 200
    refused = await client.get("/v1/advertisers", headers=tenant.headers)
    assert refused.status_code == 429

    clock.advance(int(refused.headers["Retry-After"]))
    assert (await client.get("/v1/advertisers", headers=tenant.headers)).status_code == 200
    assert (await client.get("/v1/advertisers", headers=tenant.headers)).status_code == 429

    clock.advance(60)  # idle long enough: the whole burst is back, and no more
    statuses = [(await client.get("/v1/advertisers", headers=tenant.headers)).status_code for _ in range(BURST + 1)]
    assert statuses == [200] * BURST + [429]


async def test_each_key_has_its_own_allowance(client, pool, tenant, clock):
    async with pool.acquire() as conn:
        second = await create_api_key(conn, uuid.UUID(tenant.org_id), "second", "admin")
    for _ in range(BURST):
        await client.get("/v1/advertisers", headers=tenant.headers)
    assert (await client.get("/v1/advertisers", headers=tenant.headers)).status_code == 429

    other_key = await client.get("/v1/advertisers", headers={"Authorization": f"Bearer {second.key}"})

    assert other_key.status_code == 200, other_key.text


async def test_error_responses_carry_the_rate_limit_headers_too(client, tenant, clock):
    response = await client.get(f"/v1/offers/{uuid.uuid4()}", headers=tenant.headers)
    assert_error(response, 404)
    assert response.headers["RateLimit-Remaining"] == str(BURST - 1)


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer garbage"},
    {"Authorization": "Bearer aft_live_" + "A" * 43},  # well formed, unknown
    {"Authorization": "Basic dXNlcjpwYXNz"},
])
async def test_credentials_that_fail_never_reach_the_limiter(client, app, headers):
    calls = []
    limiter = app.state.rate_limiter
    real_check = limiter.check

    async def spy(principal):
        calls.append(principal)
        return await real_check(principal)

    limiter.check = spy
    for _ in range(BURST + 2):
        assert (await client.get("/v1/advertisers", headers=headers)).status_code == 401
    assert calls == []


async def test_redis_refusing_connections_lets_requests_through(client, app, tenant, keys):
    dead = aioredis.Redis.from_url("redis://127.0.0.1:1")  # nothing listens on port 1
    app.state.rate_limiter = RateLimiter(dead, keys, RateLimitPolicy(per_minute=1, burst=1), timeout_ms=500)
    failures = failure_count()

    statuses = [(await client.get("/v1/advertisers", headers=tenant.headers)).status_code for _ in range(3)]

    assert statuses == [200, 200, 200]
    assert failure_count() == failures + 3
    await dead.aclose()


async def test_redis_not_answering_lets_requests_through_after_the_timeout(client, app, tenant, keys):
    async def silent(reader, writer):
        await reader.read(1 << 16)  # swallow the command, never answer
        await asyncio.sleep(3600)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    hung = aioredis.Redis.from_url(f"redis://127.0.0.1:{port}")
    app.state.rate_limiter = RateLimiter(hung, keys, RateLimitPolicy(per_minute=1, burst=1), timeout_ms=50)
    failures = failure_count()
    try:
        response = await client.get("/v1/advertisers", headers=tenant.headers)
    finally:
        server.close()
        await hung.aclose()
    assert response.status_code == 200, response.text
    assert "RateLimit-Remaining" not in response.headers
    assert failure_count() == failures + 1


def failure_count() -> float:
    return REGISTRY.get_sample_value("afftok_api_rate_limit_failures_total") or 0.0


async def test_the_redis_script_takes_the_same_steps_as_the_pure_algorithm(redis, keys):
    policy = RateLimitPolicy(per_minute=7, burst=4)  # an interval that is no whole number of ms
    clock = FakeClock()
    limiter = RateLimiter(redis, keys, policy, timeout_ms=1000, clock_ms=clock)
    principal = Principal(org_id=uuid.uuid4(), role="admin", actor_type="api_key", actor_id=str(uuid.uuid4()))
    rng = random.Random(7)
    tat = None
    for _ in range(300):
        clock.advance(rng.choice([0, 0, 0.5, 3, 8.571, 20]))
        allowed, tat = gcra_step(tat, clock.now_ms, policy)
        expected = decision(allowed, tat, clock.now_ms, policy)
        assert await limiter.check(principal) == expected
    ttl_ms = await redis.pttl(keys.rate_limit(principal.actor_type, principal.actor_id))
    assert 0 < ttl_ms <= policy.burst * policy.interval_ms + 1


async def test_a_limit_of_zero_means_unlimited(app, client, tenant, keys, redis):
    app.state.rate_limiter = RateLimiter(redis, keys, None, timeout_ms=100)
    for _ in range(BURST + 2):
        response = await client.get("/v1/advertisers", headers=tenant.headers)
        assert response.status_code == 200 and "RateLimit-Limit" not in response.headers


# Body size: every route that takes a body refuses one over api_body_max_bytes (4096 here).

BODY_ROUTES = [e for e in ENDPOINTS if e.body is not None]
_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")


@pytest_asyncio.fixture
async def owner(pool):
    return await make_tenant(pool, "Owner", role="owner")


@pytest.mark.parametrize("e", BODY_ROUTES, ids=lambda e: f"{e.method} {e.path}")
@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_every_route_with_a_body_refuses_one_too_large(app, client, owner, e, declared):
    app.state.rate_limiter.policy = None  # this walks many routes with one key
    path = _PARAM.sub(lambda m: str(uuid.uuid4()), e.path)
    body = b'{"name": "' + b"x" * 5000 + b'"}'

    async def chunks():
        for i in range(0, len(body), 1000):
            yield body[i:i + 1000]

    content = body if declared else chunks()
    headers = {**owner.headers, "content-type": "application/json"}
    response = await client.request(e.method, path, content=content, headers=headers)

    assert_error(response, 413, "body_too_large")
