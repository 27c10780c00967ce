"""Bad input: every case answers 4xx JSON {code, message, correlation_id}, never 500,
and writes nothing."""

import uuid

from tests.api.conftest import LANDING, assert_error, create_link, create_offer

LONG = "x" * 201


async def _counts(pool):
    return tuple(await pool.fetchrow(
        "select (select count(*) from advertisers), (select count(*) from affiliates), (select count(*) from offers),"
        " (select count(*) from links), (select count(*) from offer_affiliates),"
        " (select md5(string_agg(row_to_json(o)::text, ',' order by id)) from offers o)"
    ))


def _offer(tenant, **changes):
    body = {"advertiser_id": tenant.advertiser_id, "name": "Offer", "destination_url": LANDING}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


OFFER_CASES = {
    "currency lower case": dict(currency="usd"),
    "currency two letters": dict(currency="US"),
    "currency empty": dict(currency=""),
    "currency unknown": dict(currency="XYZ"),
    "negative payout": dict(payout_minor=-1),
    "float payout": dict(payout_minor=1.5),
    "float-looking integer": dict(revenue_minor=100.0),
    "string money": dict(payout_minor="100"),
    "huge money": dict(payout_minor=2**70),
    "bool money": dict(payout_minor=True),
    "long name": dict(name=LONG),
    "empty name": dict(name=""),
    "blank name": dict(name="   "),
    "nul in name": dict(name="a\x00b"),
    "javascript url": dict(destination_url="javascript:alert(1)"),
    "ftp url": dict(destination_url="ftp://files.example/x"),
    "relative url": dict(destination_url="/landing"),
    "macro in host": dict(destination_url="https://{sub1}.example/"),
    "unknown macro": dict(destination_url="https://a.example/?x={password}"),
    "credentials in url": dict(destination_url="https://user:pw@a.example/"),
    "bad fallback": dict(fallback_url="javascript:alert(1)"),
    "lower-case country": dict(geo_allow=["us"]),
    "three-letter country": dict(geo_deny=["USA"]),
    "country not a list": dict(geo_allow="US"),
    "allowed and denied": dict(geo_allow=["US"], geo_deny=["US"]),
    "unknown field": dict(owner="me"),
    "bad advertiser uuid": dict(advertiser_id="not-a-uuid"),
    "missing name": dict(name=...),
    "wrong type name": dict(name=123),
    "archived on create": dict(status="archived"),
    "window too short": dict(attribution_window_s=1),
    "null destination": dict(destination_url=None),
}


# Tables run inside one test each: one database and app per table keeps the suite fast.
async def test_bad_offer_bodies(client, pool, tenant):
    before = await _counts(pool)
    for case, changes in OFFER_CASES.items():
        response = await client.post("/v1/offers", json=_offer(tenant, **changes), headers=tenant.headers)
        assert response.status_code == 422, (case, response.text)
        assert_error(response, 422)
    assert await _counts(pool) == before


PATCH_CASES = [
    {"status": "deleted"}, {"currency": "eur"}, {"payout_minor": -5}, {"name": None}, {"destination_url": None},
    {"fallback_url": "https://{sub1}.x/"}, {"geo_allow": ["U1"]}, {"advertiser_id": str(uuid.uuid4())}, {"id": "x"},
    {"geo_deny": ["US"], "geo_allow": ["US"]},
]


async def test_bad_offer_patches_change_nothing(client, pool, tenant):
    offer = await create_offer(client, tenant, geo_allow=["US"])
    before = await _counts(pool)
    for body in PATCH_CASES:
        assert_error(await client.patch(f"/v1/offers/{offer['id']}", json=body, headers=tenant.headers), 422)
    assert await _counts(pool) == before


GENERIC_CASES = [
    ("post", "/v1/advertisers", {"name": LONG}, 422),
    ("post", "/v1/advertisers", {"name": "a", "status": "zombie"}, 422),
    ("post", "/v1/advertisers", {"name": "a", "extra": 1}, 422),
    ("post", "/v1/advertisers", ["name"], 422),
    ("post", "/v1/affiliates", {"name": "a", "email": "not-an-email"}, 422),
    ("post", "/v1/affiliates", {"name": "a", "email": "a@" + "b" * 320 + ".com"}, 422),
    ("post", "/v1/affiliates", {"name": 7}, 422),
    ("post", "/v1/links", {"offer_id": "nope", "affiliate_id": "nope"}, 422),
    ("post", "/v1/links", {"offer_id": str(uuid.uuid4())}, 422),
    ("post", "/v1/links", {"offer_id": str(uuid.uuid4()), "affiliate_id": str(uuid.uuid4()), "token": "mine"}, 422),
    ("post", "/v1/links", {"offer_id": str(uuid.uuid4()), "affiliate_id": str(uuid.uuid4())}, 404),
]


async def test_bad_bodies_per_endpoint(client, pool, tenant):
    before = await _counts(pool)
    for method, path, body, status in GENERIC_CASES:
        assert_error(await client.request(method, path, json=body, headers=tenant.headers), status)
    assert await _counts(pool) == before


APPROVAL_CASES = [
    {"status": "maybe"}, {}, {"status": "approved", "payout_minor": -1}, {"status": "approved", "payout_minor": 0.5},
    {"status": "approved", "destination_url": "javascript:alert(1)"}, {"status": "approved", "note": "x"},
]


async def test_bad_approvals(client, pool, tenant):
    offer = await create_offer(client, tenant)
    before = await _counts(pool)
    path = f"/v1/offers/{offer['id']}/affiliates/{tenant.affiliate_id}"
    for body in APPROVAL_CASES:
        assert_error(await client.put(path, json=body, headers=tenant.headers), 422)
    assert await _counts(pool) == before


async def test_malformed_and_empty_bodies_are_400(client, pool, tenant):
    before = await _counts(pool)
    for raw in (b"{", b"", b"   ", b"nul\x00", b'{"name": "a"}{', b"\xff\xfe", b'{"name": "a\\u0000"'):
        response = await client.post("/v1/advertisers", content=raw, headers=tenant.headers | {"content-type": "application/json"})
        assert_error(response, 400, "malformed_json")
    assert await _counts(pool) == before


async def test_a_huge_body_is_413_whether_declared_or_streamed(client, pool, tenant):
    before = await _counts(pool)
    big = b'{"name": "' + b"a" * 10_000 + b'"}'
    assert_error(await client.post("/v1/advertisers", content=big, headers=tenant.headers), 413, "body_too_large")

    async def chunks():
        for _ in range(10):
            yield b" " * 1000

    streamed = await client.post("/v1/advertisers", content=chunks(), headers=tenant.headers)
    assert "content-length" not in streamed.request.headers
    assert_error(streamed, 413, "body_too_large")
    assert await _counts(pool) == before


async def test_bad_uuid_paths_are_404(client, tenant):
    for path in ("/v1/offers/not-a-uuid", "/v1/offers/123", "/v1/advertisers/" + "a" * 36, "/v1/affiliates/%00",
                 "/v1/offers/6f1a8a1e11114111811111111111111"):
        assert_error(await client.get(path, headers=tenant.headers), 404, "not_found")


async def test_bad_uuid_in_write_paths_is_404_and_writes_nothing(client, pool, tenant):
    offer = await create_offer(client, tenant)
    before = await _counts(pool)
    assert_error(await client.patch("/v1/offers/xyz", json={"status": "paused"}, headers=tenant.headers), 404)
    assert_error(await client.put(f"/v1/offers/{offer['id']}/affiliates/xyz", json={"status": "approved"},
                                  headers=tenant.headers), 404)
    assert await _counts(pool) == before


async def test_bad_list_queries_are_422(client, tenant):
    for query in ("limit=0", "limit=201", "limit=abc", "cursor=%%%", "cursor=bm9wZQ", "status=gone",
                  "advertiser_id=nope", "unknown=1", "cursor=" + "A" * 300):
        assert_error(await client.get(f"/v1/offers?{query}", headers=tenant.headers), 422)


async def test_a_link_for_a_paused_offer_is_still_created(client, tenant):
    offer = await create_offer(client, tenant, status="paused")
    assert (await create_link(client, tenant, offer["id"]))["offer_id"] == offer["id"]
