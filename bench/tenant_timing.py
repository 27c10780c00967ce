"""Tenant isolation, timed: another organization's id must answer like an id that does not exist.

A second organization with an advertiser and an offer is created through the owner
connection (the core store functions; the owner is a superuser, so row-level security
does not stand in the way). Then, with the demo organization's key, ``GET /v1/offers/{id}``
for random UUIDs that exist nowhere and for the other organization's offer, shuffled
together, one request in flight over one keep-alive connection so no queue blurs the
figures. Every answer is kept: status, body without ``correlation_id``, and the time
from sending the request to having read the whole body.
"""

from __future__ import annotations

import random
import statistics
import time
import uuid

import httpx
import msgspec

from core.db import connect
from core.store.advertisers import create_advertiser
from core.store.offers import create_offer
from core.store.organizations import create_organization

MISSING, OTHER_ORG = "missing id", "other org's id"
OTHER_ORG_NAME = "Bench Other Network"
WARMUP_REQUESTS = 50  # per group, discarded: the connection, the api's caches, the planner
BOOTSTRAP_RESAMPLES = 1000


class GroupLatency(msgspec.Struct, kw_only=True):
    requests: int
    statuses: dict[str, int]  # status code -> count
    p50_ms: float
    p90_ms: float
    p99_ms: float


class TenantTiming(msgspec.Struct, kw_only=True):
    requests_per_group: int
    own_offer_status: int  # control: the demo key reading its own offer (200 when the route works)
    groups: dict[str, GroupLatency]  # MISSING, OTHER_ORG
    distinct_bodies: list[dict]  # every body seen in both groups, correlation_id removed
    median_diff_ms: float  # other org's median minus the missing ids' median
    median_diff_ci_ms: tuple[float, float]  # 95 % percentile bootstrap interval

    @property
    def same_answer(self) -> bool:
        """Every answer in both groups was a 404 with one and the same body."""
        statuses = {s for group in self.groups.values() for s in group.statuses}
        return statuses == {"404"} and len(self.distinct_bodies) == 1


async def create_other_org_offer(database_url: str) -> uuid.UUID:
    conn = await connect(database_url)
    try:
        async with conn.transaction():
            org = await create_organization(conn, OTHER_ORG_NAME)
            advertiser = await create_advertiser(conn, org.id, "Bench Other Advertiser")
            offer = await create_offer(conn, org.id, advertiser.id, "Bench Other Offer", "https://example.org/other")
        return offer.id
    finally:
        await conn.close()


async def _own_offer_id(database_url: str, org_id: str) -> uuid.UUID:
    conn = await connect(database_url)
    try:
        return await conn.fetchval("select id from offers where org_id = $1::uuid order by created_at limit 1", org_id)
    finally:
        await conn.close()


def _body_shape(content: bytes) -> dict:
    try:
        body = msgspec.json.decode(content)
    except msgspec.DecodeError:
        return {"<not json>": content.decode(errors="replace")}
    if isinstance(body, dict):
        body.pop("correlation_id", None)
        return body
    return {"<not an object>": body}


def _percentiles(samples_ms: list[float]) -> tuple[float, float, float]:
    cuts = statistics.quantiles(samples_ms, n=100, method="inclusive")
    return cuts[49], cuts[89], cuts[98]


def median_diff_interval(a_ms: list[float], b_ms: list[float], rng: random.Random) -> tuple[float, float]:
    """95 % percentile-bootstrap interval of median(b) - median(a)."""
    diffs = sorted(
        statistics.median(rng.choices(b_ms, k=len(b_ms))) - statistics.median(rng.choices(a_ms, k=len(a_ms)))
        for _ in range(BOOTSTRAP_RESAMPLES)
    )
    return diffs[int(0.025 * len(diffs))], diffs[int(0.975 * len(diffs)) - 1]


async def _time_requests(client: httpx.AsyncClient, plan: list[tuple[str, str]]) -> list[tuple[str, int, dict, float]]:
    answers = []
    for group, offer_id in plan:
        start_ns = time.perf_counter_ns()
        response = await client.get(f"/v1/offers/{offer_id}")
        elapsed_ms = (time.perf_counter_ns() - start_ns) / 1e6
        answers.append((group, response.status_code, _body_shape(response.content), elapsed_ms))
    return answers


def _plan(other_offer_id: uuid.UUID, requests_per_group: int, rng: random.Random) -> list[tuple[str, str]]:
    plan = [(MISSING, str(uuid.UUID(int=rng.getrandbits(128), version=4))) for _ in range(requests_per_group)]
    plan += [(OTHER_ORG, str(other_offer_id))] * requests_per_group
    rng.shuffle(plan)
    return plan


async def measure_tenant_timing(
    api_url: str, database_url: str, api_key: str, org_id: str, *, requests_per_group: int, seed: int | None = None,
) -> TenantTiming:
    rng = random.Random(seed)
    other_offer_id = await create_other_org_offer(database_url)
    own_offer_id = await _own_offer_id(database_url, org_id)
    headers = {"Authorization": f"Bearer {api_key}"}
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(base_url=api_url, headers=headers, limits=limits, timeout=10) as client:
        own_status = (await client.get(f"/v1/offers/{own_offer_id}")).status_code
        await _time_requests(client, _plan(other_offer_id, WARMUP_REQUESTS, rng))
        answers = await _time_requests(client, _plan(other_offer_id, requests_per_group, rng))
    return _summarize(answers, requests_per_group, own_status, rng)


def _summarize(answers: list[tuple[str, int, dict, float]], requests_per_group: int, own_status: int, rng: random.Random) -> TenantTiming:
    samples: dict[str, list[float]] = {MISSING: [], OTHER_ORG: []}
    statuses: dict[str, dict[str, int]] = {MISSING: {}, OTHER_ORG: {}}
    bodies: list[dict] = []
    for group, status, body, elapsed_ms in answers:
        samples[group].append(elapsed_ms)
        statuses[group][str(status)] = statuses[group].get(str(status), 0) + 1
        if body not in bodies:
            bodies.append(body)
    groups = {}
    for group, ms in samples.items():
        p50, p90, p99 = _percentiles(ms)
        groups[group] = GroupLatency(requests=len(ms), statuses=statuses[group], p50_ms=p50, p90_ms=p90, p99_ms=p99)
    return TenantTiming(
        requests_per_group=requests_per_group, own_offer_status=own_status, groups=groups, distinct_bodies=bodies,
        median_diff_ms=statistics.median(samples[OTHER_ORG]) - statistics.median(samples[MISSING]),
        median_diff_ci_ms=median_diff_interval(samples[MISSING], samples[OTHER_ORG], rng),
    )

