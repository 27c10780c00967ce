"""Roles, scopes and dashboard tokens through the api."""

import time

import jwt
import msgspec
import pytest
import pytest_asyncio

from api.app import create_app
from api.routes import ENDPOINTS
from core.permissions import ACTIONS
from core.store.advertisers import create_advertiser
from core.store.affiliates import create_affiliate
from core.store.api_keys import create_api_key
from tests.api.conftest import LANDING, assert_error, create_link, create_offer

PUBLIC_ROUTES = {("GET", "/healthz")}
SECRET = "dashboard-secret-" + "x" * 32


def test_every_route_but_the_public_ones_names_a_known_action():
    for e in ENDPOINTS:
        if (e.method, e.path) in PUBLIC_ROUTES:
            assert e.action is None
        else:
            assert e.action in ACTIONS, f"{e.method} {e.path} names no known action: {e.action!r}"


async def _key(pool, org_id, role, **scope) -> dict[str, str]:
    async with pool.acquire() as conn:
        created = await create_api_key(conn, org_id, role, role, **scope)
    return {"Authorization": f"Bearer {created.key}"}


async def _counts(pool) -> tuple:
    return tuple([
        await pool.fetchval(f"select count(*) from {t}")
        for t in ("advertisers", "affiliates", "offers", "offer_affiliates", "links", "api_keys")
    ])


# role: (status of a read, status of a write)
ROLE_ACCESS = {
    "owner": (200, 201), "admin": (200, 201), "manager": (200, 201), "analyst": (200, 403),
    "advertiser": (200, 403), "affiliate": (200, 403),
}


@pytest.mark.parametrize("role", sorted(ROLE_ACCESS))
async def test_each_role_against_a_read_and_a_write(client, pool, tenant, role):
    scope = {"advertiser": {"advertiser_id": tenant.advertiser_id}, "affiliate": {"affiliate_id": tenant.affiliate_id}}
    headers = await _key(pool, tenant.org_id, role, **scope.get(role, {}))
    read, write = ROLE_ACCESS[role]
    assert (await client.get("/v1/offers", headers=headers)).status_code == read
    before = await _counts(pool)
    body = {"advertiser_id": tenant.advertiser_id, "name": "By " + role, "destination_url": LANDING}
    response = await client.post("/v1/offers", json=body, headers=headers)
    if write == 403:
        assert_error(response, 403, "forbidden")
        assert await _counts(pool) == before
    else:
        assert response.status_code == 201, response.text


@pytest.mark.parametrize(("role", "path"), [
    ("analyst", "/v1/admin/api-keys"), ("manager", "/v1/admin/api-keys"), ("advertiser", "/v1/advertisers"),
    ("affiliate", "/v1/affiliates"),
])
async def test_roles_without_the_read_action_get_403(client, pool, tenant, role, path):
    scope = {"advertiser": {"advertiser_id": tenant.advertiser_id}, "affiliate": {"affiliate_id": tenant.affiliate_id}}
    headers = await _key(pool, tenant.org_id, role, **scope.get(role, {}))
    assert_error(await client.get(path, headers=headers), 403, "forbidden")


@pytest_asyncio.fixture
async def catalog(client, pool, tenant):
    """Two advertisers with an offer each; two affiliates; links for both affiliates."""
    async with pool.acquire() as conn:
        adv2 = await create_advertiser(conn, tenant.org_id, "Second advertiser")
        aff2 = await create_affiliate(conn, tenant.org_id, "Second affiliate")
    mine = await create_offer(client, tenant, name="Mine")
    theirs = await create_offer(client, tenant, name="Theirs", advertiser_id=str(adv2.id))
    gated = await create_offer(client, tenant, name="Gated", requires_approval=True)
    approved = await create_offer(client, tenant, name="Approved", requires_approval=True, advertiser_id=str(adv2.id))
    blocked = await create_offer(client, tenant, name="Blocked")
    for offer_id, status in ((approved["id"], "approved"), (blocked["id"], "blocked")):
        response = await client.put(
            f"/v1/offers/{offer_id}/affiliates/{tenant.affiliate_id}", json={"status": status}, headers=tenant.headers
        )
        assert response.status_code == 200, response.text
    link_mine = await create_link(client, tenant, mine["id"])
    link_theirs = await create_link(client, tenant, theirs["id"])
    response = await client.post(
        "/v1/links", json={"offer_id": mine["id"], "affiliate_id": str(aff2.id)}, headers=tenant.headers
    )
    other_affiliates_link = response.json()
    return {
        "offers": {"mine": mine, "theirs": theirs, "gated": gated, "approved": approved, "blocked": blocked},
        "links": {"mine": link_mine, "theirs": link_theirs, "other_affiliate": other_affiliates_link},
    }


def _names(page: dict, index: dict) -> set[str]:
    by_id = {v["id"]: k for k, v in index.items()}
    return {by_id[row["id"]] for row in page["data"]}


async def test_an_advertiser_key_sees_only_its_offers_and_their_links(client, pool, tenant, catalog):
    headers = await _key(pool, tenant.org_id, "advertiser", advertiser_id=tenant.advertiser_id)
    offers = (await client.get("/v1/offers", headers=headers)).json()
    assert _names(offers, catalog["offers"]) == {"mine", "gated", "blocked"}
    links = (await client.get("/v1/links", headers=headers)).json()
    assert _names(links, catalog["links"]) == {"mine", "other_affiliate"}
    assert (await client.get(f"/v1/offers/{catalog['offers']['mine']['id']}", headers=headers)).status_code == 200
    missing = assert_error(await client.get(f"/v1/offers/{catalog['offers']['theirs']['id']}", headers=headers), 404)
    assert missing["code"] == "not_found"
    # Asking for another advertiser's offers by filter still yields nothing.
    theirs_adv = catalog["offers"]["theirs"]["advertiser_id"]
    assert (await client.get(f"/v1/offers?advertiser_id={theirs_adv}", headers=headers)).json()["data"] == []


async def test_an_affiliate_key_sees_its_links_and_the_offers_open_to_it(client, pool, tenant, catalog):
    headers = await _key(pool, tenant.org_id, "affiliate", affiliate_id=tenant.affiliate_id)
    links = (await client.get("/v1/links", headers=headers)).json()
    assert _names(links, catalog["links"]) == {"mine", "theirs"}
    offers = (await client.get("/v1/offers", headers=headers)).json()
    assert _names(offers, catalog["offers"]) == {"mine", "theirs", "approved"}
    for hidden in ("gated", "blocked"):
        assert_error(await client.get(f"/v1/offers/{catalog['offers'][hidden]['id']}", headers=headers), 404)


@pytest.mark.parametrize("role", ["advertiser", "affiliate"])
async def test_scoped_keys_cannot_write_catalog_objects(client, pool, tenant, catalog, role):
    scope = {"advertiser_id": tenant.advertiser_id} if role == "advertiser" else {"affiliate_id": tenant.affiliate_id}
    headers = await _key(pool, tenant.org_id, role, **scope)
    offer_id = catalog["offers"]["mine"]["id"]
    before = await _counts(pool)
    attempts = [
        client.post("/v1/advertisers", json={"name": "x"}, headers=headers),
        client.patch(f"/v1/offers/{offer_id}", json={"name": "renamed"}, headers=headers),
        client.put(f"/v1/offers/{offer_id}/affiliates/{tenant.affiliate_id}", json={"status": "approved"}, headers=headers),
        client.post("/v1/links", json={"offer_id": offer_id, "affiliate_id": tenant.affiliate_id}, headers=headers),
    ]
    for attempt in attempts:
        assert_error(await attempt, 403, "forbidden")
    assert await _counts(pool) == before
    assert (await pool.fetchval("select name from offers where id = $1", offer_id)) == "Mine"


# Dashboard users' tokens through the api.


@pytest_asyncio.fixture
async def jwt_client(api_settings, pool):
    import httpx

    app = create_app(msgspec.structs.replace(api_settings, jwt_hs256_secret=SECRET))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as c:
            yield c


def _token(org_id: str, role: str = "analyst", secret: str = SECRET, **extra) -> dict[str, str]:
    now = int(time.time())
    payload = {
        "sub": "user-7", "aud": "authenticated", "iat": now, "exp": now + 300,
        "app_metadata": {"org_id": org_id, "role": role, **extra},
    }
    return {"Authorization": "Bearer " + jwt.encode(payload, secret, algorithm="HS256")}


async def test_a_dashboard_user_reads_its_organization_only(jwt_client, tenant, other):
    await create_offer(jwt_client, tenant, name="Ours")
    await create_offer(jwt_client, other, name="Rivals'")
    page = (await jwt_client.get("/v1/offers", headers=_token(tenant.org_id))).json()
    assert [o["name"] for o in page["data"]] == ["Ours"]


async def test_a_dashboard_user_is_bound_by_role_and_scope(jwt_client, pool, tenant):
    before = await _counts(pool)
    response = await jwt_client.post("/v1/advertisers", json={"name": "x"}, headers=_token(tenant.org_id, "analyst"))
    assert_error(response, 403, "forbidden")
    assert await _counts(pool) == before
    offer = await create_offer(jwt_client, tenant)
    async with pool.acquire() as conn:
        elsewhere = await create_advertiser(conn, tenant.org_id, "Another advertiser")
    own = _token(tenant.org_id, "advertiser", advertiser_id=tenant.advertiser_id)
    assert [o["id"] for o in (await jwt_client.get("/v1/offers", headers=own)).json()["data"]] == [offer["id"]]
    foreign = _token(tenant.org_id, "advertiser", advertiser_id=str(elsewhere.id))
    assert (await jwt_client.get("/v1/offers", headers=foreign)).json()["data"] == []
    manager = _token(tenant.org_id, "manager")
    assert (await jwt_client.post("/v1/advertisers", json={"name": "By a user"}, headers=manager)).status_code == 201


@pytest.mark.parametrize("kind", ["bad_signature", "unknown_role", "no_org", "expired"])
async def test_bad_dashboard_tokens_get_401_and_nothing_is_written(jwt_client, pool, tenant, kind):
    headers = {
        "bad_signature": _token(tenant.org_id, "admin", secret="y" * 48),
        "unknown_role": _token(tenant.org_id, "superuser"),
        "no_org": {"Authorization": "Bearer " + jwt.encode(
            {"sub": "u", "aud": "authenticated", "iat": int(time.time()), "exp": int(time.time()) + 60,
             "app_metadata": {"role": "admin"}}, SECRET, algorithm="HS256")},
        "expired": {"Authorization": "Bearer " + jwt.encode(
            {"sub": "u", "aud": "authenticated", "iat": 1, "exp": 2,
             "app_metadata": {"org_id": tenant.org_id, "role": "admin"}}, SECRET, algorithm="HS256")},
    }[kind]
    before = await _counts(pool)
    response = await jwt_client.post("/v1/advertisers", json={"name": "Sneaky"}, headers=headers)
    assert_error(response, 401, "token_expired" if kind == "expired" else "invalid_token")
    assert await _counts(pool) == before


async def test_tokens_are_refused_when_the_server_has_no_jwt_configuration(client, tenant):
    assert_error(await client.get("/v1/offers", headers=_token(tenant.org_id)), 401, "invalid_token")


async def test_an_affiliate_sees_what_it_earns_not_what_the_advertiser_pays(client, pool, tenant):
    offer = await create_offer(client, tenant, name="Priced", payout_minor=150, revenue_minor=250,
                               fallback_url="https://example.com/fallback")
    plain = await create_offer(client, tenant, name="Default payout", payout_minor=90, revenue_minor=200)
    response = await client.put(f"/v1/offers/{offer['id']}/affiliates/{tenant.affiliate_id}",
                                json={"status": "approved", "payout_minor": 175}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    headers = await _key(pool, tenant.org_id, "affiliate", affiliate_id=tenant.affiliate_id)

    seen = (await client.get(f"/v1/offers/{offer['id']}", headers=headers)).json()
    listed = {row["id"]: row for row in (await client.get("/v1/offers", headers=headers)).json()["data"]}
    for row in (seen, listed[offer["id"]]):
        assert row["payout_minor"] == 175  # its override, not the offer's 150
        assert not {"revenue_minor", "advertiser_id", "destination_url", "fallback_url"} & set(row)
    assert listed[plain["id"]]["payout_minor"] == 90

    operator = (await client.get(f"/v1/offers/{offer['id']}", headers=tenant.headers)).json()
    assert (operator["revenue_minor"], operator["payout_minor"]) == (250, 150)
    assert operator["fallback_url"] == "https://example.com/fallback"
