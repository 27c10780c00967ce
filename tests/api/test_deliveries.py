"""Deliveries through the api: reading them with their attempts, replaying them, and the
endpoint's status holding and releasing what is pending. Deliveries and attempts are
written straight to Postgres as the owner, as the delivery worker leaves them."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest
import pytest_asyncio

from core.delivery_requests import webhook_body
from core.store.affiliates import create_affiliate
from core.store.api_keys import create_api_key
from core.store.deliveries import DELIVERIES_CHANNEL, HELD
from tests.api.conftest import assert_error

HOOK = "https://hooks.example/afftok"
TEMPLATE = "https://hooks.example/pb?click={click_id}&payout={payout}"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


async def _endpoint(client, headers, kind: str = "webhook", **body) -> str:
    path, base = ("/v1/webhooks", {"url": HOOK}) if kind == "webhook" else ("/v1/affiliate-postbacks", {"url": TEMPLATE})
    response = await client.post(path, json={**base, **body}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def _delivery(pool, org_id: str, endpoint_id: str, status: str = "dead", *, event_type: str = "conversion.created",
                    body: bytes = b"{}", created_at: dt.datetime | None = None, attempts: int = 0,
                    next_attempt_at: dt.datetime | None = None) -> str:
    """A delivery as the worker leaves it (``attempts`` attempt rows with it, all 503s)."""
    now = created_at or _now()
    delivery_id = await pool.fetchval(
        "insert into deliveries (org_id, endpoint_id, event_id, event_type, body, status, attempts, event_created_at,"
        " created_at, next_attempt_at, retry_until, delivered_at, dead_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $8,"
        " $9, $8::timestamptz + interval '1 hour', case when $6 = 'delivered' then $8::timestamptz end,"
        " case when $6 = 'dead' then $8::timestamptz end)"
        " returning id",
        uuid.UUID(org_id), uuid.UUID(endpoint_id), uuid.uuid4(), event_type, body, status, attempts, now,
        next_attempt_at or now)
    for n in range(1, attempts + 1):
        await pool.execute(
            "insert into delivery_attempts (org_id, delivery_id, attempt, started_at, latency_ms, status_code, error,"
            " response_excerpt, url) values ($1, $2, $3, $4, $5, 503, null, 'try later', $6)",
            uuid.UUID(org_id), delivery_id, n, now + dt.timedelta(seconds=n), 40 + n, HOOK)
    return str(delivery_id)


async def _row(pool, delivery_id: str):
    return await pool.fetchrow("select * from deliveries where id = $1", uuid.UUID(delivery_id))


async def _held(pool, delivery_id: str) -> bool:
    """Whether the delivery waits at ``HELD`` (which asyncpg stores as 'infinity')."""
    return await pool.fetchval("select next_attempt_at = $2 from deliveries where id = $1", uuid.UUID(delivery_id), HELD)


@pytest_asyncio.fixture
async def webhook(client, tenant) -> str:
    return await _endpoint(client, tenant.headers)


# Reading.

async def test_deliveries_are_listed_newest_first_and_filtered(client, pool, tenant, webhook):
    other_hook = await _endpoint(client, tenant.headers)
    start = _now() - dt.timedelta(minutes=10)
    made = [
        await _delivery(pool, tenant.org_id, webhook, "dead", created_at=start),
        await _delivery(pool, tenant.org_id, webhook, "delivered", created_at=start + dt.timedelta(minutes=1)),
        await _delivery(pool, tenant.org_id, other_hook, "pending", event_type="cap.reached",
                        created_at=start + dt.timedelta(minutes=2)),
    ]

    async def listed(**params) -> list[str]:
        response = await client.get("/v1/deliveries", params=params, headers=tenant.headers)
        assert response.status_code == 200, response.text
        return [d["id"] for d in response.json()["data"]]

    assert await listed() == list(reversed(made))
    assert await listed(endpoint_id=webhook) == [made[1], made[0]]
    assert await listed(status="dead") == [made[0]]
    assert await listed(event_type="cap.reached") == [made[2]]
    event_id = str(await pool.fetchval("select event_id from deliveries where id = $1", uuid.UUID(made[1])))
    assert await listed(event_id=event_id) == [made[1]]
    first = (await client.get("/v1/deliveries", params={"limit": 2}, headers=tenant.headers)).json()
    rest = (await client.get("/v1/deliveries", params={"limit": 2, "cursor": first["next_cursor"]},
                             headers=tenant.headers)).json()
    assert [d["id"] for d in first["data"] + rest["data"]] == list(reversed(made)) and rest["next_cursor"] is None
    for params in ({"status": "failed"}, {"status": ""}, {"endpoint_id": "x"}, {"event_id": "x"}, {"event_type": ""},
                   {"event_type": "a\x00"}, {"event_type": "e" * 101}, {"cursor": "nope"}, {"limit": 0}, {"foo": "1"}):
        response = await client.get("/v1/deliveries", params=params, headers=tenant.headers)
        assert response.status_code == 422, (params, response.text)
        assert_error(response, 422)


async def test_a_webhook_delivery_shows_its_payload_and_every_attempt(client, pool, tenant, webhook):
    event_id = uuid.uuid4()
    body = webhook_body(event_id, "conversion.approved", uuid.UUID(tenant.org_id), _now(), {"conversion_id": "c-1"})
    delivery_id = await _delivery(pool, tenant.org_id, webhook, "dead", body=body, attempts=3)
    response = await client.get(f"/v1/deliveries/{delivery_id}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    got = response.json()
    assert (got["endpoint_kind"], got["endpoint_url"], got["status"], got["attempt_count"]) == (
        "webhook", HOOK, "dead", 3)
    assert got["payload"]["id"] == str(event_id) and got["payload"]["data"] == {"conversion_id": "c-1"}
    assert "macro_values" not in got
    assert [(a["attempt"], a["status_code"], a["response_excerpt"], a["url"]) for a in got["attempts"]] == [
        (n, 503, "try later", HOOK) for n in (1, 2, 3)]
    assert {"latency_ms", "started_at", "error"} <= set(got["attempts"][0])


async def test_a_postback_delivery_shows_its_macro_values(client, pool, tenant):
    postback = await _endpoint(client, tenant.headers, "postback", affiliate_id=tenant.affiliate_id)
    delivery_id = await _delivery(pool, tenant.org_id, postback, "delivered",
                                  body=b'{"click_id": "abc", "payout": "1.50", "sub1": null}')
    got = (await client.get(f"/v1/deliveries/{delivery_id}", headers=tenant.headers)).json()
    assert (got["endpoint_kind"], got["endpoint_url"]) == ("postback", TEMPLATE)
    assert got["macro_values"] == {"click_id": "abc", "payout": "1.50", "sub1": None} and "payload" not in got
    assert got["attempts"] == []


# Replaying one.

async def test_a_dead_delivery_is_replayed_with_a_new_retry_budget(client, pool, tenant, api_settings, webhook):
    delivery_id = await _delivery(pool, tenant.org_id, webhook, "dead", attempts=2)
    before = _now()
    response = await client.post(f"/v1/deliveries/{delivery_id}/replay", json={}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "pending" and response.json()["dead_at"] is None
    row = await _row(pool, delivery_id)
    assert row["status"] == "pending" and row["dead_at"] is None and row["attempts"] == 2
    assert before <= row["next_attempt_at"] <= _now()
    max_age = dt.timedelta(seconds=api_settings.delivery_max_age_s)
    assert before + max_age <= row["retry_until"] <= _now() + max_age
    assert await pool.fetchval("select count(*) from delivery_attempts where delivery_id = $1", row["id"]) == 2

    again = await client.post(f"/v1/deliveries/{delivery_id}/replay", json={}, headers=tenant.headers)
    assert_error(again, 409, "already_pending")
    assert await _row(pool, delivery_id) == row


async def test_a_delivered_delivery_is_sent_again(client, pool, tenant, webhook):
    delivery_id = await _delivery(pool, tenant.org_id, webhook, "delivered")
    response = await client.post(f"/v1/deliveries/{delivery_id}/replay", json={}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    row = await _row(pool, delivery_id)
    assert (row["status"], row["delivered_at"]) == ("pending", None) and row["next_attempt_at"] <= _now()


async def test_a_replay_wakes_the_sender(client, pool, tenant, webhook):
    delivery_id = await _delivery(pool, tenant.org_id, webhook, "dead")
    woken = asyncio.Event()

    def wake(*_: object) -> None:
        woken.set()

    async with pool.acquire() as listener:
        await listener.add_listener(DELIVERIES_CHANNEL, wake)
        try:
            response = await client.post(f"/v1/deliveries/{delivery_id}/replay", json={}, headers=tenant.headers)
            assert response.status_code == 200, response.text
            await asyncio.wait_for(woken.wait(), timeout=5)
        finally:
            await listener.remove_listener(DELIVERIES_CHANNEL, wake)


async def test_a_disabled_endpoints_delivery_is_not_replayed(client, pool, tenant, webhook):
    delivery_id = await _delivery(pool, tenant.org_id, webhook, "dead")
    await client.patch(f"/v1/webhooks/{webhook}", json={"status": "disabled"}, headers=tenant.headers)
    before = await _row(pool, delivery_id)
    for response in (
        await client.post(f"/v1/deliveries/{delivery_id}/replay", json={}, headers=tenant.headers),
        await client.post("/v1/deliveries/replay", json={"endpoint_id": webhook, "status": "dead"},
                          headers=tenant.headers),
    ):
        assert_error(response, 409, "endpoint_disabled")
    assert await _row(pool, delivery_id) == before


# Replaying every dead delivery of an endpoint.

async def test_every_dead_delivery_of_one_endpoint_is_replayed(client, pool, tenant, webhook):
    other_hook = await _endpoint(client, tenant.headers)
    dead = [await _delivery(pool, tenant.org_id, webhook, "dead") for _ in range(3)]
    delivered = await _delivery(pool, tenant.org_id, webhook, "delivered")
    elsewhere = await _delivery(pool, tenant.org_id, other_hook, "dead")
    untouched = {d: await _row(pool, d) for d in (delivered, elsewhere)}

    response = await client.post("/v1/deliveries/replay", json={"endpoint_id": webhook, "status": "dead"},
                                 headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"replayed": 3}
    for d in dead:
        row = await _row(pool, d)
        assert row["status"] == "pending" and row["next_attempt_at"] <= _now() and row["dead_at"] is None
    for d, row in untouched.items():
        assert await _row(pool, d) == row
    again = await client.post("/v1/deliveries/replay", json={"endpoint_id": webhook, "status": "dead"},
                              headers=tenant.headers)
    assert again.json() == {"replayed": 0}
    audit = await pool.fetch("select target_type, target_id, after from audit_log where action = 'deliveries.replay_dead'")
    assert [(r["target_type"], r["target_id"], r["after"]) for r in audit] == [
        ("delivery_endpoint", webhook, {"replayed": 3}), ("delivery_endpoint", webhook, {"replayed": 0})]


async def test_another_organizations_deliveries_are_missing(client, pool, tenant, other):
    theirs = await _endpoint(client, other.headers)
    their_delivery = await _delivery(pool, other.org_id, theirs, "dead")
    before = await _row(pool, their_delivery)
    for response in (
        await client.post("/v1/deliveries/replay", json={"endpoint_id": theirs, "status": "dead"},
                          headers=tenant.headers),
        await client.post(f"/v1/deliveries/{their_delivery}/replay", json={}, headers=tenant.headers),
        await client.get(f"/v1/deliveries/{their_delivery}", headers=tenant.headers),
    ):
        assert_error(response, 404, "not_found")
    assert await _row(pool, their_delivery) == before
    assert (await client.get("/v1/deliveries", headers=tenant.headers)).json()["data"] == []


BAD_REPLAYS = [  # (path, body); {webhook} and {delivery} name a real dead delivery and its endpoint
    ("/v1/deliveries/replay", {"endpoint_id": "x", "status": "dead"}),
    ("/v1/deliveries/replay", {"endpoint_id": 5, "status": "dead"}),
    ("/v1/deliveries/replay", {"status": "dead"}),
    ("/v1/deliveries/replay", {"endpoint_id": "{webhook}"}),
    ("/v1/deliveries/replay", {"endpoint_id": "{webhook}", "status": "delivered"}),
    ("/v1/deliveries/replay", {"endpoint_id": "{webhook}", "status": None}),
    ("/v1/deliveries/replay", {"endpoint_id": "{webhook}", "status": "dead", "limit": 10}),
    ("/v1/deliveries/replay", ["{webhook}"]),
    ("/v1/deliveries/{delivery}/replay", {"force": True}),
    ("/v1/deliveries/{delivery}/replay", []),
    ("/v1/deliveries/{delivery}/replay", "now"),
]


async def test_a_bad_replay_request_is_refused_and_replays_nothing(client, pool, tenant, webhook):
    delivery_id = await _delivery(pool, tenant.org_id, webhook, "dead")
    before = await _row(pool, delivery_id)

    def fill(value):
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fill(v) for v in value]
        return value.format(webhook=webhook, delivery=delivery_id) if isinstance(value, str) else value

    for path, body in BAD_REPLAYS:
        response = await client.post(fill(path), json=fill(body), headers=tenant.headers)
        assert response.status_code == 422, (path, body, response.text)
        assert_error(response, 422, "invalid_request")
    assert await _row(pool, delivery_id) == before
    assert await pool.fetchval("select count(*) from audit_log where action like 'deliveries.%'") == 0


# Affiliate keys: their own endpoints' deliveries only.

async def test_an_affiliate_key_sees_only_its_own_endpoints_deliveries(client, pool, tenant, webhook):
    async with pool.acquire() as conn:
        second = await create_affiliate(conn, tenant.org_id, "Second affiliate")
        key = await create_api_key(conn, tenant.org_id, "aff", "affiliate", affiliate_id=tenant.affiliate_id)
    headers = {"Authorization": f"Bearer {key.key}"}
    own_hook = await _endpoint(client, headers)
    own_postback = await _endpoint(client, headers, "postback")
    theirs = await _endpoint(client, tenant.headers, "postback", affiliate_id=str(second.id))
    mine = [await _delivery(pool, tenant.org_id, e, "dead") for e in (own_hook, own_postback)]
    hidden = [await _delivery(pool, tenant.org_id, e, "dead") for e in (webhook, theirs)]

    listed = (await client.get("/v1/deliveries", headers=headers)).json()["data"]
    assert {d["id"] for d in listed} == set(mine)
    filtered = (await client.get("/v1/deliveries", params={"endpoint_id": webhook}, headers=headers)).json()
    assert filtered["data"] == []
    for d in hidden:
        before = await _row(pool, d)
        assert_error(await client.get(f"/v1/deliveries/{d}", headers=headers), 404, "not_found")
        assert_error(await client.post(f"/v1/deliveries/{d}/replay", json={}, headers=headers), 404, "not_found")
        assert await _row(pool, d) == before
    for endpoint_id in (webhook, theirs):
        response = await client.post("/v1/deliveries/replay", json={"endpoint_id": endpoint_id, "status": "dead"},
                                     headers=headers)
        assert_error(response, 404, "not_found")
    assert (await client.get(f"/v1/deliveries/{mine[0]}", headers=headers)).status_code == 200
    replayed = await client.post("/v1/deliveries/replay", json={"endpoint_id": own_postback, "status": "dead"},
                                 headers=headers)
    assert replayed.json() == {"replayed": 1}
    everything = (await client.get("/v1/deliveries", headers=tenant.headers)).json()["data"]
    assert {d["id"] for d in everything} == set(mine + hidden)


# Disabling holds what is pending; enabling releases it and clears the streak.

async def test_disabling_holds_pending_deliveries_and_enabling_releases_them(client, pool, tenant, webhook):
    soon = _now() + dt.timedelta(minutes=5)
    pending = [await _delivery(pool, tenant.org_id, webhook, "pending", next_attempt_at=soon) for _ in range(2)]
    dead = await _delivery(pool, tenant.org_id, webhook, "dead")
    dead_row = await _row(pool, dead)

    response = await client.patch(f"/v1/webhooks/{webhook}", json={"status": "disabled"}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    endpoint = response.json()
    assert (endpoint["status"], endpoint["disabled_reason"]) == ("disabled", "manual") and endpoint["disabled_at"]
    for d in pending:
        assert await _held(pool, d)
    assert await _row(pool, dead) == dead_row
    shown = (await client.get(f"/v1/deliveries/{pending[0]}", headers=tenant.headers)).json()
    assert shown["status"] == "pending" and shown["next_attempt_at"] is None  # held

    await pool.execute("update delivery_endpoints set failure_streak = 7, failing_since = now() where id = $1",
                       uuid.UUID(webhook))
    response = await client.patch(f"/v1/webhooks/{webhook}", json={"status": "active"}, headers=tenant.headers)
    endpoint = response.json()
    assert (endpoint["status"], endpoint["disabled_reason"], endpoint["disabled_at"]) == ("active", None, None)
    assert (endpoint["failure_streak"], endpoint["failing_since"]) == (0, None)
    for d in pending:
        assert (await _row(pool, d))["next_attempt_at"] <= _now()
    assert await _row(pool, dead) == dead_row


async def test_enabling_an_endpoint_the_worker_disabled_clears_its_failure(client, pool, tenant):
    postback = await _endpoint(client, tenant.headers, "postback", affiliate_id=tenant.affiliate_id)
    held = await _delivery(pool, tenant.org_id, postback, "pending", next_attempt_at=HELD)
    await pool.execute(
        "update delivery_endpoints set status = 'disabled', disabled_reason = 'failing', disabled_at = now(),"
        " failure_streak = 120, failing_since = now() - interval '2 days' where id = $1", uuid.UUID(postback))
    shown = (await client.get(f"/v1/affiliate-postbacks/{postback}", headers=tenant.headers)).json()
    assert (shown["status"], shown["disabled_reason"], shown["failure_streak"]) == ("disabled", "failing", 120)

    same = await client.patch(f"/v1/affiliate-postbacks/{postback}", json={"status": "disabled"}, headers=tenant.headers)
    assert same.json()["disabled_reason"] == "failing"  # already disabled: nothing changes
    enabled = await client.patch(f"/v1/affiliate-postbacks/{postback}", json={"status": "active"}, headers=tenant.headers)
    assert (enabled.json()["status"], enabled.json()["failure_streak"], enabled.json()["disabled_reason"]) == (
        "active", 0, None)
    assert (await _row(pool, held))["next_attempt_at"] <= _now()
