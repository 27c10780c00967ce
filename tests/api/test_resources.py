import uuid

import pytest

from tests.api.conftest import LANDING, assert_error, create_link, create_offer


async def test_create_get_and_list_advertisers_and_affiliates(client, tenant):
    for path, body in (("/v1/advertisers", {"name": "Brand"}), ("/v1/affiliates", {"name": "Pub", "email": "p@x.example"})):
        created = await client.post(path, json=body, headers=tenant.headers)
        assert created.status_code == 201, created.text
        item = created.json()
        assert item["name"] == body["name"] and item["org_id"] == tenant.org_id and item["status"] == "active"
        fetched = await client.get(f"{path}/{item['id']}", headers=tenant.headers)
        assert fetched.status_code == 200 and fetched.json() == item
        listed = (await client.get(path, headers=tenant.headers)).json()
        assert listed["data"][0] == item and len(listed["data"]) == 2  # newest first; fixture made one
        assert listed["next_cursor"] is None


async def test_offer_lifecycle_create_get_patch_list(client, tenant):
    offer = await create_offer(client, tenant, payout_minor=150, revenue_minor=250, currency="EUR",
                               geo_allow=["US", "GB", "US"], fallback_url="https://shop.example/")
    assert (offer["currency"], offer["payout_minor"], offer["geo_allow"], offer["status"]) == ("EUR", 150, ["GB", "US"], "active")
    paused = await client.patch(f"/v1/offers/{offer['id']}", json={"status": "paused", "fallback_url": None}, headers=tenant.headers)
    assert paused.status_code == 200, paused.text
    assert paused.json()["status"] == "paused" and paused.json()["fallback_url"] is None
    assert paused.json()["payout_minor"] == 150  # untouched fields stay
    got = (await client.get(f"/v1/offers/{offer['id']}", headers=tenant.headers)).json()
    assert got == paused.json()
    assert [o["id"] for o in (await client.get("/v1/offers?status=paused", headers=tenant.headers)).json()["data"]] == [offer["id"]]
    assert (await client.get("/v1/offers?status=active", headers=tenant.headers)).json()["data"] == []


async def test_offer_currency_defaults_to_the_organization_currency(client, tenant):
    assert (await create_offer(client, tenant))["currency"] == "USD"


async def test_approval_put_sets_status_and_overrides(client, tenant):
    offer = await create_offer(client, tenant, requires_approval=True)
    url = f"/v1/offers/{offer['id']}/affiliates/{tenant.affiliate_id}"
    put = await client.put(url, json={"status": "approved", "payout_minor": 99, "destination_url": LANDING + "&x=1"},
                           headers=tenant.headers)
    assert put.status_code == 200, put.text
    assert (put.json()["status"], put.json()["payout_minor"]) == ("approved", 99)
    again = await client.put(url, json={"status": "blocked"}, headers=tenant.headers)
    assert again.json()["status"] == "blocked" and again.json()["payout_minor"] is None


async def test_links_are_created_with_a_token_and_tracking_url_and_listed(client, tenant):
    offer = await create_offer(client, tenant)
    link = await create_link(client, tenant, offer["id"])
    assert len(link["token"]) >= 8 and link["tracking_url"] == f"https://go.example/c/{link['token']}"
    listed = (await client.get(f"/v1/links?offer_id={offer['id']}", headers=tenant.headers)).json()
    assert listed["data"] == [link]


async def test_lists_page_newest_first_with_a_stable_cursor(client, tenant):
    names = [f"adv {n}" for n in range(5)]
    for name in names:
        assert (await client.post("/v1/advertisers", json={"name": name}, headers=tenant.headers)).status_code == 201
    seen, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/v1/advertisers", params=params, headers=tenant.headers)).json()
        assert len(page["data"]) <= 2
        seen += [a["name"] for a in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(names)) + ["Acme advertiser"]


@pytest.mark.parametrize("path", [
    "/v1/advertisers/{advertiser}", "/v1/affiliates/{affiliate}", "/v1/offers/{offer}",
])
async def test_an_id_from_another_org_answers_exactly_like_a_missing_id(client, tenant, other, path):
    foreign = await create_offer(client, other)
    ids = {"advertiser": other.advertiser_id, "affiliate": other.affiliate_id, "offer": foreign["id"]}
    missing = {k: str(uuid.uuid4()) for k in ids}
    a = await client.get(path.format(**ids), headers=tenant.headers)
    b = await client.get(path.format(**missing), headers=tenant.headers)
    body_a, body_b = assert_error(a, 404, "not_found"), assert_error(b, 404, "not_found")
    assert body_a["message"] == body_b["message"]
    assert (await client.get(path.format(**ids), headers=other.headers)).status_code == 200


async def test_writes_naming_another_orgs_rows_are_not_found_and_change_nothing(client, pool, tenant, other):
    mine, theirs = await create_offer(client, tenant), await create_offer(client, other)
    ghost = str(uuid.uuid4())
    cases = [
        ("post", "/v1/offers", {"advertiser_id": other.advertiser_id, "name": "x", "destination_url": LANDING}),
        ("post", "/v1/links", {"offer_id": theirs["id"], "affiliate_id": tenant.affiliate_id}),
        ("post", "/v1/links", {"offer_id": mine["id"], "affiliate_id": other.affiliate_id}),
        ("patch", f"/v1/offers/{theirs['id']}", {"status": "paused"}),
        ("put", f"/v1/offers/{mine['id']}/affiliates/{other.affiliate_id}", {"status": "approved"}),
        ("put", f"/v1/offers/{theirs['id']}/affiliates/{tenant.affiliate_id}", {"status": "approved"}),
        ("patch", f"/v1/affiliates/{other.affiliate_id}", {"status": "banned"}),
    ]
    before = await _snapshot(pool)
    for method, path, body in cases:
        foreign = await client.request(method, path, json=body, headers=tenant.headers)
        missing = await client.request(method, path.replace(other.advertiser_id, ghost).replace(other.affiliate_id, ghost)
                                       .replace(theirs["id"], ghost), json=_ghosted(body, other, theirs, ghost), headers=tenant.headers)
        assert assert_error(foreign, 404, "not_found")["message"] == assert_error(missing, 404, "not_found")["message"], path
    assert await _snapshot(pool) == before


def _ghosted(body, other, theirs, ghost):
    swap = {other.advertiser_id: ghost, other.affiliate_id: ghost, theirs["id"]: ghost}
    return {k: swap.get(v, v) for k, v in body.items()}


async def _snapshot(pool):
    return await pool.fetchval(
        "select md5(string_agg(t, ',' order by t)) from ("
        " select row_to_json(o)::text t from offers o union all select row_to_json(l)::text from links l"
        " union all select row_to_json(a)::text from affiliates a union all select row_to_json(x)::text from offer_affiliates x) s"
    )
