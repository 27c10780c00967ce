"""Webhooks and affiliate postbacks through the api: what is saved, who may see and change
it, signing secrets shown once and rotated with a grace, and the SSRF guard at save time
(over the fake resolver of tests/api/conftest.py: *.example is public, internal.example
is 10.0.0.5)."""

from __future__ import annotations

import datetime as dt
import re
import uuid

import msgspec
import pytest
import pytest_asyncio

from api.routes import ENDPOINTS
from core.delivery_requests import CONVERSION_EVENTS, EVENT_TYPES
from core.store.affiliates import create_affiliate
from core.store.api_keys import create_api_key
from tests.api.conftest import PUBLIC_ADDRESS, assert_error, create_offer

HOOK = "https://hooks.example/afftok"
TEMPLATE = "https://hooks.example/pb?click={click_id}&payout={payout}&s1={sub1}"


async def _key(pool, org_id: str, role: str, **scope) -> dict[str, str]:
    async with pool.acquire() as conn:
        created = await create_api_key(conn, org_id, role, role, **scope)
    return {"Authorization": f"Bearer {created.key}"}


@pytest_asyncio.fixture
async def affiliate_headers(pool, tenant) -> dict[str, str]:
    return await _key(pool, tenant.org_id, "affiliate", affiliate_id=tenant.affiliate_id)


@pytest_asyncio.fixture
async def second_affiliate(pool, tenant) -> str:
    async with pool.acquire() as conn:
        return str((await create_affiliate(conn, tenant.org_id, "Second affiliate")).id)


async def _create_webhook(client, headers, **body) -> dict:
    response = await client.post("/v1/webhooks", json={"url": HOOK, **body}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def _written(pool) -> tuple:
    """Everything a refused request must leave as it was."""
    return tuple(await pool.fetchrow(
        "select (select count(*) from delivery_endpoints), (select count(*) from delivery_endpoint_secrets),"
        " (select count(*) from audit_log),"
        " (select md5(string_agg(row_to_json(e)::text, ',' order by id)) from delivery_endpoints e),"
        " (select md5(string_agg(row_to_json(d)::text, ',' order by id)) from deliveries d)"))


# Webhooks: create, read, change, delete.

async def test_a_webhook_is_created_with_a_secret_shown_once(client, pool, tenant):
    response = await client.post("/v1/webhooks", json={"url": HOOK, "description": "CRM"}, headers=tenant.headers)
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    created = response.json()
    secret = created.pop("secret")
    assert re.fullmatch(r"aft_whsec_[0-9A-Za-z]{43}", secret)
    assert created["kind"] == "webhook" and created["url"] == HOOK and created["description"] == "CRM"
    assert created["event_types"] == list(EVENT_TYPES) and created["affiliate_id"] is None
    assert (created["status"], created["disabled_reason"], created["failure_streak"]) == ("active", None, 0)
    assert await pool.fetchval("select secret from delivery_endpoint_secrets where endpoint_id = $1",
                               uuid.UUID(created["id"])) == secret

    got = await client.get(f"/v1/webhooks/{created['id']}", headers=tenant.headers)
    listed = await client.get("/v1/webhooks", headers=tenant.headers)
    secrets = await client.get(f"/v1/webhooks/{created['id']}/secrets", headers=tenant.headers)
    assert got.json() == created and listed.json()["data"] == [created]
    assert [s["last4"] for s in secrets.json()["data"]] == [secret[-4:]]
    for later in (got, listed, secrets):
        assert secret not in later.text
    audit = await pool.fetch("select before, after from audit_log where target_type = 'webhook'")
    assert len(audit) == 1 and secret not in msgspec.json.encode([dict(r) for r in audit]).decode()


async def test_a_webhook_takes_the_events_chosen(client, tenant):
    created = await _create_webhook(client, tenant.headers, event_types=["cap.reached", "conversion.approved",
                                                                         "cap.reached"])
    assert created["event_types"] == ["cap.reached", "conversion.approved"]


async def test_a_webhook_is_changed_and_deleted_with_what_it_holds(client, pool, tenant):
    created = await _create_webhook(client, tenant.headers)
    changes = {"url": "https://other.example/in", "event_types": ["conversion.created"], "description": "new"}
    response = await client.patch(f"/v1/webhooks/{created['id']}", json=changes, headers=tenant.headers)
    assert response.status_code == 200, response.text
    changed = response.json()
    assert {k: changed[k] for k in changes} == changes and changed["updated_at"] > created["updated_at"]
    await pool.execute(
        "insert into deliveries (org_id, endpoint_id, event_id, event_type, body, event_created_at, retry_until)"
        " values ($1, $2, $3, 'conversion.created', '{}', now(), now())",
        uuid.UUID(tenant.org_id), uuid.UUID(created["id"]), uuid.uuid4())

    deleted = await client.delete(f"/v1/webhooks/{created['id']}", headers=tenant.headers)
    assert deleted.status_code == 204 and deleted.content == b""
    assert_error(await client.get(f"/v1/webhooks/{created['id']}", headers=tenant.headers), 404, "not_found")
    assert_error(await client.delete(f"/v1/webhooks/{created['id']}", headers=tenant.headers), 404, "not_found")
    for table in ("delivery_endpoints", "delivery_endpoint_secrets", "deliveries"):
        assert await pool.fetchval(f"select count(*) from {table}") == 0, table


async def test_the_list_pages_newest_first(client, tenant):
    ids = [(await _create_webhook(client, tenant.headers, description=str(n)))["id"] for n in range(3)]
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/webhooks", params=params, headers=tenant.headers)).json()
        seen += [w["id"] for w in page["data"]]
        if not (cursor := page["next_cursor"]):
            break
    assert seen == list(reversed(ids))


# Signing secrets.

async def test_rotation_keeps_two_secrets_live_the_old_one_until_the_grace_ends(client, pool, tenant):
    created = await _create_webhook(client, tenant.headers)
    before = dt.datetime.now(dt.timezone.utc)
    response = await client.post(f"/v1/webhooks/{created['id']}/secrets", json={"grace_period_s": 3600},
                                 headers=tenant.headers)
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    rotated = response.json()
    assert rotated["secret"] != created["secret"] and rotated["expires_at"] is None

    listed = (await client.get(f"/v1/webhooks/{created['id']}/secrets", headers=tenant.headers)).json()["data"]
    assert [s["last4"] for s in listed] == [rotated["secret"][-4:], created["secret"][-4:]]
    assert listed[0]["expires_at"] is None
    old_expiry = dt.datetime.fromisoformat(listed[1]["expires_at"])
    assert before + dt.timedelta(seconds=3600) <= old_expiry <= before + dt.timedelta(seconds=3660)
    text = msgspec.json.encode(listed).decode()
    assert created["secret"] not in text and rotated["secret"] not in text
    audit = await pool.fetch("select after from audit_log where target_type = 'webhook_secret'")
    assert [r["after"]["last4"] for r in audit] == [rotated["secret"][-4:]]
    assert rotated["secret"] not in msgspec.json.encode([r["after"] for r in audit]).decode()


async def test_a_secret_past_its_grace_is_not_listed(client, pool, tenant):
    created = await _create_webhook(client, tenant.headers)
    response = await client.post(f"/v1/webhooks/{created['id']}/secrets", json={"grace_period_s": 0},
                                 headers=tenant.headers)
    listed = (await client.get(f"/v1/webhooks/{created['id']}/secrets", headers=tenant.headers)).json()["data"]
    assert [s["id"] for s in listed] == [response.json()["id"]]
    assert await pool.fetchval("select count(*) from delivery_endpoint_secrets") == 2


async def test_a_bad_rotation_is_refused(client, pool, tenant):
    created = await _create_webhook(client, tenant.headers)
    before = await _written(pool)
    for body in ({"grace_period_s": -1}, {"grace_period_s": 30 * 86400 + 1}, {"grace_period_s": "1h"},
                 {"grace_period_s": 1.5}, {"grace_period_s": True}, {"grace_period_s": None}, {"secret": "mine"}, [60]):
        response = await client.post(f"/v1/webhooks/{created['id']}/secrets", json=body, headers=tenant.headers)
        assert response.status_code == 422, (body, response.text)
        assert_error(response, 422, "invalid_request")
    assert await _written(pool) == before


async def test_a_postback_has_no_secrets(client, tenant):
    postback = await client.post("/v1/affiliate-postbacks", json={"url": TEMPLATE, "affiliate_id": tenant.affiliate_id},
                                 headers=tenant.headers)
    assert postback.status_code == 201 and "secret" not in postback.json()
    for response in (await client.get(f"/v1/webhooks/{postback.json()['id']}/secrets", headers=tenant.headers),
                     await client.post(f"/v1/webhooks/{postback.json()['id']}/secrets", json={},
                                       headers=tenant.headers)):
        assert_error(response, 404, "not_found")


# Affiliate postbacks.

async def test_an_affiliate_postback_defaults_to_the_conversion_events(client, tenant):
    offer = await create_offer(client, tenant)
    body = {"url": TEMPLATE, "affiliate_id": tenant.affiliate_id, "offer_id": offer["id"], "goal": "sale"}
    response = await client.post("/v1/affiliate-postbacks", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    created = response.json()
    assert (created["kind"], created["url"], created["offer_id"], created["goal"]) == (
        "postback", TEMPLATE, offer["id"], "sale")
    assert created["event_types"] == list(CONVERSION_EVENTS)
    got = await client.get(f"/v1/affiliate-postbacks/{created['id']}", headers=tenant.headers)
    assert got.json() == created
    # A postback is no webhook, and the reverse.
    assert_error(await client.get(f"/v1/webhooks/{created['id']}", headers=tenant.headers), 404)
    webhook = await _create_webhook(client, tenant.headers)
    assert_error(await client.get(f"/v1/affiliate-postbacks/{webhook['id']}", headers=tenant.headers), 404)
    assert_error(await client.delete(f"/v1/affiliate-postbacks/{webhook['id']}", headers=tenant.headers), 404)


async def test_affiliate_postbacks_are_changed_listed_by_affiliate_and_deleted(client, tenant, second_affiliate):
    mine = await client.post("/v1/affiliate-postbacks", json={"url": TEMPLATE, "affiliate_id": tenant.affiliate_id},
                             headers=tenant.headers)
    theirs = await client.post("/v1/affiliate-postbacks", json={"url": TEMPLATE, "affiliate_id": second_affiliate},
                               headers=tenant.headers)
    offer = await create_offer(client, tenant)
    path = f"/v1/affiliate-postbacks/{mine.json()['id']}"
    changed = await client.patch(path, json={"offer_id": offer["id"], "goal": "lead", "event_types": [
        "conversion.approved"], "url": "https://hooks.example/v2?c={transaction_id}"}, headers=tenant.headers)
    assert changed.status_code == 200, changed.text
    assert (changed.json()["offer_id"], changed.json()["goal"], changed.json()["event_types"]) == (
        offer["id"], "lead", ["conversion.approved"])
    cleared = await client.patch(path, json={"offer_id": None, "goal": None}, headers=tenant.headers)
    assert (cleared.json()["offer_id"], cleared.json()["goal"]) == (None, None)

    def ids(response) -> list[str]:
        return [p["id"] for p in response.json()["data"]]

    assert ids(await client.get("/v1/affiliate-postbacks", headers=tenant.headers)) == [
        theirs.json()["id"], mine.json()["id"]]
    assert ids(await client.get("/v1/affiliate-postbacks", params={"affiliate_id": second_affiliate},
                                headers=tenant.headers)) == [theirs.json()["id"]]
    assert (await client.delete(path, headers=tenant.headers)).status_code == 204
    assert ids(await client.get("/v1/affiliate-postbacks", headers=tenant.headers)) == [theirs.json()["id"]]


async def test_ids_of_another_organization_are_missing(client, tenant, other):
    offer = await create_offer(client, other)
    for body in ({"url": TEMPLATE, "affiliate_id": other.affiliate_id},
                 {"url": TEMPLATE, "affiliate_id": tenant.affiliate_id, "offer_id": offer["id"]}):
        assert_error(await client.post("/v1/affiliate-postbacks", json=body, headers=tenant.headers), 404, "not_found")
    assert_error(await client.post("/v1/webhooks", json={"url": HOOK, "affiliate_id": other.affiliate_id},
                                   headers=tenant.headers), 404, "not_found")
    theirs = await _create_webhook(client, other.headers)
    for response in (
        await client.get(f"/v1/webhooks/{theirs['id']}", headers=tenant.headers),
        await client.patch(f"/v1/webhooks/{theirs['id']}", json={"status": "disabled"}, headers=tenant.headers),
        await client.delete(f"/v1/webhooks/{theirs['id']}", headers=tenant.headers),
        await client.post(f"/v1/webhooks/{theirs['id']}/secrets", json={}, headers=tenant.headers),
    ):
        assert_error(response, 404, "not_found")
    assert (await client.get(f"/v1/webhooks/{theirs['id']}", headers=other.headers)).json() == {
        k: v for k, v in theirs.items() if k != "secret"}


# Who may do what.

async def test_an_affiliate_key_manages_its_own_endpoints_only(client, pool, tenant, affiliate_headers, second_affiliate):
    org_hook = await _create_webhook(client, tenant.headers)
    others = await _create_webhook(client, tenant.headers, affiliate_id=second_affiliate)
    own = await _create_webhook(client, affiliate_headers)  # no affiliate_id: its own, forced
    assert own["affiliate_id"] == tenant.affiliate_id
    postback = await client.post("/v1/affiliate-postbacks", json={"url": TEMPLATE}, headers=affiliate_headers)
    assert postback.status_code == 201 and postback.json()["affiliate_id"] == tenant.affiliate_id

    before = await _written(pool)
    for path, body in (("/v1/webhooks", {"url": HOOK, "affiliate_id": second_affiliate}),
                       ("/v1/affiliate-postbacks", {"url": TEMPLATE, "affiliate_id": second_affiliate})):
        assert_error(await client.post(path, json=body, headers=affiliate_headers), 403, "forbidden")
    for hidden in (org_hook, others):
        for response in (
            await client.get(f"/v1/webhooks/{hidden['id']}", headers=affiliate_headers),
            await client.get(f"/v1/webhooks/{hidden['id']}/secrets", headers=affiliate_headers),
            await client.post(f"/v1/webhooks/{hidden['id']}/secrets", json={}, headers=affiliate_headers),
            await client.patch(f"/v1/webhooks/{hidden['id']}", json={"status": "disabled"}, headers=affiliate_headers),
            await client.delete(f"/v1/webhooks/{hidden['id']}", headers=affiliate_headers),
        ):
            assert_error(response, 404, "not_found")
    assert await _written(pool) == before
    listed = (await client.get("/v1/webhooks", headers=affiliate_headers)).json()["data"]
    assert [w["id"] for w in listed] == [own["id"]]
    assert len((await client.get("/v1/webhooks", headers=tenant.headers)).json()["data"]) == 3


async def test_an_affiliate_key_names_only_offers_open_to_it(client, tenant, affiliate_headers):
    gated = await create_offer(client, tenant, name="Gated", requires_approval=True)
    open_offer = await create_offer(client, tenant, name="Open")
    refused = await client.post("/v1/affiliate-postbacks", json={"url": TEMPLATE, "offer_id": gated["id"]},
                                headers=affiliate_headers)
    assert_error(refused, 404, "not_found")
    accepted = await client.post("/v1/affiliate-postbacks", json={"url": TEMPLATE, "offer_id": open_offer["id"]},
                                 headers=affiliate_headers)
    assert accepted.status_code == 201, accepted.text
    patched = await client.patch(f"/v1/affiliate-postbacks/{accepted.json()['id']}", json={"offer_id": gated["id"]},
                                 headers=affiliate_headers)
    assert_error(patched, 404, "not_found")


@pytest.mark.parametrize(("role", "read", "write"), [
    ("owner", 200, 201), ("admin", 200, 201), ("manager", 200, 201), ("analyst", 200, 403),
    ("advertiser", 403, 403),
])
async def test_roles(client, pool, tenant, role, read, write):
    scope = {"advertiser_id": tenant.advertiser_id} if role == "advertiser" else {}
    headers = await _key(pool, tenant.org_id, role, **scope)
    for path in ("/v1/webhooks", "/v1/affiliate-postbacks", "/v1/deliveries"):
        assert (await client.get(path, headers=headers)).status_code == read, path
    response = await client.post("/v1/webhooks", json={"url": HOOK}, headers=headers)
    assert response.status_code == write, response.text
    if write == 403:
        assert_error(response, 403, "forbidden")
        assert await pool.fetchval("select count(*) from delivery_endpoints") == 0


# Bad input: 4xx with the error shape and the code that names the fault, and nothing written.

BAD_WEBHOOKS = {  # case: (body, code)
    "unknown event type": ({"url": HOOK, "event_types": ["conversion.exploded"]}, "invalid_event_type"),
    "no event types": ({"url": HOOK, "event_types": []}, "invalid_request"),
    "event types not a list": ({"url": HOOK, "event_types": "conversion.created"}, "invalid_request"),
    "event type not a string": ({"url": HOOK, "event_types": [1]}, "invalid_request"),
    "no url": ({"description": "x"}, "invalid_request"),
    "url not a string": ({"url": 5}, "invalid_request"),
    "null url": ({"url": None}, "invalid_request"),
    "relative url": ({"url": "/hook"}, "unsafe_url"),
    "javascript url": ({"url": "javascript:alert(1)"}, "unsafe_url"),
    "space in url": ({"url": "https://hooks.example/a b"}, "unsafe_url"),
    "long url": ({"url": "https://hooks.example/" + "a" * 2048}, "invalid_request"),
    "macro in a webhook": ({"url": "https://hooks.example/?c={click_id}"}, "invalid_url"),
    "offer on a webhook": ({"url": HOOK, "offer_id": str(uuid.uuid4())}, "invalid_request"),
    "goal on a webhook": ({"url": HOOK, "goal": "sale"}, "invalid_request"),
    "bad affiliate uuid": ({"url": HOOK, "affiliate_id": "aff-1"}, "invalid_request"),
    "long description": ({"url": HOOK, "description": "d" * 201}, "invalid_request"),
    "description not a string": ({"url": HOOK, "description": 5}, "invalid_request"),
    "nul in description": ({"url": HOOK, "description": "a\x00b"}, "invalid_request"),
    "status on create": ({"url": HOOK, "status": "disabled"}, "invalid_request"),
    "unknown field": ({"url": HOOK, "secret": "mine"}, "invalid_request"),
    "not an object": ([HOOK], "invalid_request"),
}
BAD_POSTBACKS = {  # case: (body, code); the tenant's affiliate_id is added unless the body names one
    "unknown macro": ({"url": "https://hooks.example/pb?x={password}"}, "invalid_url"),
    "macro in host": ({"url": "https://{sub1}.example/pb"}, "invalid_url"),
    "credentials in url": ({"url": "https://user:pw@hooks.example/pb?c={click_id}"}, "unsafe_url"),
    "url not a string": ({"url": ["https://hooks.example/pb"]}, "invalid_request"),
    "non-conversion event": ({"url": TEMPLATE, "event_types": ["cap.reached"]}, "invalid_event_type"),
    "endpoint event": ({"url": TEMPLATE, "event_types": ["conversion.approved", "endpoint.disabled"]},
                       "invalid_event_type"),
    "unknown event type": ({"url": TEMPLATE, "event_types": ["conversion.maybe"]}, "invalid_event_type"),
    "empty goal": ({"url": TEMPLATE, "goal": ""}, "invalid_request"),
    "long goal": ({"url": TEMPLATE, "goal": "g" * 101}, "invalid_request"),
    "nul in goal": ({"url": TEMPLATE, "goal": "sa\x00le"}, "invalid_request"),
    "goal not a string": ({"url": TEMPLATE, "goal": 7}, "invalid_request"),
    "bad offer uuid": ({"url": TEMPLATE, "offer_id": "offer-1"}, "invalid_request"),
    "bad affiliate uuid": ({"url": TEMPLATE, "affiliate_id": 5}, "invalid_request"),
    "unknown field": ({"url": TEMPLATE, "method": "POST"}, "invalid_request"),
}


@pytest.mark.parametrize(("body", "code"), BAD_WEBHOOKS.values(), ids=BAD_WEBHOOKS.keys())
async def test_bad_webhooks_are_refused(client, pool, tenant, body, code):
    before = await _written(pool)
    assert_error(await client.post("/v1/webhooks", json=body, headers=tenant.headers), 422, code)
    assert await _written(pool) == before


@pytest.mark.parametrize(("body", "code"), BAD_POSTBACKS.values(), ids=BAD_POSTBACKS.keys())
async def test_bad_postbacks_are_refused(client, pool, tenant, body, code):
    before = await _written(pool)
    response = await client.post("/v1/affiliate-postbacks", json={"affiliate_id": tenant.affiliate_id, **body},
                                 headers=tenant.headers)
    assert_error(response, 422, code)
    assert await _written(pool) == before


async def test_an_organization_key_must_name_the_postbacks_affiliate(client, pool, tenant):
    before = await _written(pool)
    response = await client.post("/v1/affiliate-postbacks", json={"url": TEMPLATE}, headers=tenant.headers)
    assert_error(response, 422, "affiliate_required")
    assert await _written(pool) == before


BAD_CHANGES = [  # (kind, body, code); a PATCH of either kind
    ("webhook", {"event_types": ["nope"]}, "invalid_event_type"),
    ("webhook", {"url": "http://127.0.0.1/"}, "unsafe_url"),
    ("webhook", {"url": None}, "invalid_request"),
    ("webhook", {"status": "paused"}, "invalid_request"),
    ("webhook", {"kind": "postback"}, "invalid_request"),
    ("webhook", {"offer_id": str(uuid.uuid4())}, "invalid_request"),
    ("webhook", {"affiliate_id": str(uuid.uuid4())}, "invalid_request"),
    ("webhook", {"description": "a\x00b"}, "invalid_request"),
    ("webhook", {"event_types": None}, "invalid_request"),
    ("webhook", ["status"], "invalid_request"),
    ("postback", {"event_types": ["cap.reached"]}, "invalid_event_type"),
    ("postback", {"url": "https://{sub1}.example/pb"}, "invalid_url"),
    ("postback", {"url": "http://internal.example/pb?c={click_id}"}, "unsafe_url"),
    ("postback", {"goal": ""}, "invalid_request"),
    ("postback", {"goal": "a\x00"}, "invalid_request"),
    ("postback", {"offer_id": "offer-1"}, "invalid_request"),
    ("postback", {"affiliate_id": str(uuid.uuid4())}, "invalid_request"),
    ("postback", {"status": "gone"}, "invalid_request"),
]


async def test_a_bad_change_changes_nothing(client, pool, tenant):
    ids = {"webhook": (await _create_webhook(client, tenant.headers))["id"]}
    postback = await client.post("/v1/affiliate-postbacks", json={"url": TEMPLATE, "affiliate_id": tenant.affiliate_id},
                                 headers=tenant.headers)
    ids["postback"] = postback.json()["id"]
    before = await _written(pool)
    for kind, body, code in BAD_CHANGES:
        path = f"/v1/webhooks/{ids[kind]}" if kind == "webhook" else f"/v1/affiliate-postbacks/{ids[kind]}"
        response = await client.patch(path, json=body, headers=tenant.headers)
        assert response.status_code == 422, (kind, body, response.text)
        assert_error(response, 422, code)
    assert await _written(pool) == before


# Every route of the outbound api: malformed bodies, ids that are no ids, bad list queries.

OUTBOUND = [e for e in ENDPOINTS if e.path.startswith(("/v1/webhooks", "/v1/affiliate-postbacks", "/v1/deliveries"))]
WITH_BODY = [e for e in OUTBOUND if e.body is not None]
WITH_PATH_IDS = [e for e in OUTBOUND if "{" in e.path]
LISTS = [e for e in OUTBOUND if e.method == "GET" and "{" not in e.path]
MALFORMED = [b"{", b"", b"   ", b"\xff\xfe", b"nul\x00", b'{"', b"{,}"]
BAD_LIST_QUERIES = ["limit=0", "limit=201", "limit=abc", "cursor=nope", "cursor=%%%", "cursor=" + "A" * 300, "unknown=1"]


@pytest_asyncio.fixture
async def dead_delivery(pool, client, tenant) -> dict[str, str]:
    """A webhook and a dead delivery of it: what a wrongly accepted replay or change would touch."""
    webhook = await _create_webhook(client, tenant.headers)
    delivery = await pool.fetchval(
        "insert into deliveries (org_id, endpoint_id, event_id, event_type, body, status, event_created_at,"
        " retry_until, dead_at) values ($1, $2, $3, 'conversion.created', '{}', 'dead', now(), now(), now())"
        " returning id", uuid.UUID(tenant.org_id), uuid.UUID(webhook["id"]), uuid.uuid4())
    return {"webhook_id": webhook["id"], "affiliate_postback_id": webhook["id"], "delivery_id": str(delivery)}


def _path(e, ids: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], e.path)


async def test_malformed_bodies_are_400_on_every_outbound_write(client, pool, tenant, dead_delivery):
    before = await _written(pool)
    for e in WITH_BODY:
        for raw in MALFORMED:
            response = await client.request(e.method, _path(e, dead_delivery), content=raw,
                                             headers=tenant.headers | {"content-type": "application/json"})
            assert response.status_code == 400, (e.method, e.path, raw, response.text)
            assert_error(response, 400, "malformed_json")
    assert await _written(pool) == before


async def test_ids_that_are_no_ids_are_404_on_every_outbound_route(client, pool, tenant, dead_delivery):
    before = await _written(pool)
    for e in WITH_PATH_IDS:
        for bad in ("xyz", "123", "a" * 36, "%00", "6f1a8a1e11114111811111111111111"):
            kwargs = {} if e.body is None else {"json": {}}
            response = await client.request(e.method, _path(e, dict.fromkeys(dead_delivery, bad)),
                                            headers=tenant.headers, **kwargs)
            assert response.status_code == 404, (e.method, e.path, bad, response.text)
            assert_error(response, 404, "not_found")
    assert await _written(pool) == before


async def test_bad_list_queries_are_422_on_every_outbound_list(client, tenant):
    assert {e.path for e in LISTS} == {"/v1/webhooks", "/v1/affiliate-postbacks", "/v1/deliveries"}
    for e in LISTS:
        for query in BAD_LIST_QUERIES:
            response = await client.get(f"{e.path}?{query}", headers=tenant.headers)
            assert response.status_code == 422, (e.path, query, response.text)
            assert_error(response, 422)
    for path, query in (("/v1/webhooks", f"affiliate_id={tenant.affiliate_id}"),
                        ("/v1/affiliate-postbacks", "affiliate_id=aff-1")):
        assert_error(await client.get(f"{path}?{query}", headers=tenant.headers), 422, "invalid_request")


# The SSRF guard when a URL is saved.

UNSAFE = [
    "http://127.0.0.1/", "http://2130706433/", "http://0x7f000001/", "http://0177.0.0.1/", "http://127.1/",
    "http://[::ffff:127.0.0.1]/", "http://169.254.169.254/", "http://[fd00:ec2::254]/", "http://100.100.100.200/",
    "http://192.0.0.192/", "http://user:pw@hooks.example/", "ftp://hooks.example/", "http://hooks.example:8080/",
    "http://internal.example/", "http://localhost/", "http://nowhere.invalid/",
]


@pytest.mark.parametrize("url", UNSAFE)
@pytest.mark.parametrize("kind", ["webhook", "postback", "patch"])
async def test_unsafe_urls_are_refused_when_saved(client, pool, tenant, url, kind):
    webhook = await _create_webhook(client, tenant.headers) if kind == "patch" else None
    before = await _written(pool)
    if kind == "webhook":
        response = await client.post("/v1/webhooks", json={"url": url}, headers=tenant.headers)
    elif kind == "postback":
        response = await client.post("/v1/affiliate-postbacks", json={
            "url": url + "?c={click_id}", "affiliate_id": tenant.affiliate_id}, headers=tenant.headers)
    else:
        response = await client.patch(f"/v1/webhooks/{webhook['id']}", json={"url": url}, headers=tenant.headers)
    body = assert_error(response, 422, "unsafe_url")
    assert body["message"] != "unsafe_url"  # the guard's own words
    assert await _written(pool) == before


async def test_a_name_is_judged_by_the_addresses_it_has_now(app, client, tenant):
    looked_up = []

    async def resolver(host: str, port: int) -> list[str]:
        looked_up.append((host, port))
        return {"hooks.example": [PUBLIC_ADDRESS], "split.example": [PUBLIC_ADDRESS, "10.0.0.5"]}[host]

    app.state.resources = msgspec.structs.replace(app.state.resources, resolver=resolver)
    accepted = await client.post("/v1/webhooks", json={"url": "https://hooks.example/in"}, headers=tenant.headers)
    assert accepted.status_code == 201, accepted.text
    refused = await client.post("/v1/affiliate-postbacks", json={
        "url": "https://split.example/pb?c={click_id}", "affiliate_id": tenant.affiliate_id}, headers=tenant.headers)
    assert "10.0.0.5" in assert_error(refused, 422, "unsafe_url")["message"]
    assert looked_up == [("hooks.example", 443), ("split.example", 443)]
