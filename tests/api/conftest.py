"""API test fixtures: the real app (lifespan included) over real Postgres and Redis."""

from __future__ import annotations

import httpx
import msgspec
import pytest
import pytest_asyncio

from api.app import create_app
from core.outbound_targets import UnsafeTarget
from core.store.advertisers import create_advertiser
from core.store.affiliates import create_affiliate
from core.store.api_keys import create_api_key
from core.store.organizations import create_organization


class Tenant(msgspec.Struct, kw_only=True):
    org_id: str
    key: str
    advertiser_id: str
    affiliate_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


async def make_tenant(pool, name: str, role: str = "admin") -> Tenant:
    async with pool.acquire() as conn:
        org = await create_organization(conn, name)
        key = await create_api_key(conn, org.id, "tests", role)
        adv = await create_advertiser(conn, org.id, f"{name} advertiser")
        aff = await create_affiliate(conn, org.id, f"{name} affiliate")
    return Tenant(org_id=str(org.id), key=key.key, advertiser_id=str(adv.id), affiliate_id=str(aff.id))


PUBLIC_ADDRESS = "93.184.216.34"
RESOLVED = {"internal.example": ["10.0.0.5"]}  # besides: every other *.example name is PUBLIC_ADDRESS


async def fake_resolver(host: str, port: int) -> list[str]:
    """DNS for the api's SSRF guard without a network: names under .example are public,
    but for those ``RESOLVED`` points elsewhere; any other name does not resolve."""
    if host in RESOLVED:
        return RESOLVED[host]
    if host.endswith(".example"):
        return [PUBLIC_ADDRESS]
    raise UnsafeTarget(message=f"{host} does not resolve")


@pytest.fixture
def api_settings(settings):
    return msgspec.structs.replace(settings, public_edge_url="https://go.example", api_body_max_bytes=4096)


@pytest_asyncio.fixture
async def app(api_settings, pool):
    app = create_app(api_settings, resolver=fake_resolver)
    async with app.router.lifespan_context(app):
        yield app


@pytest_asyncio.fixture
async def client(app):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as c:
        yield c


@pytest_asyncio.fixture
async def tenant(pool) -> Tenant:
    return await make_tenant(pool, "Acme")


@pytest_asyncio.fixture
async def other(pool) -> Tenant:
    return await make_tenant(pool, "Rival")


LANDING = "https://shop.example/landing?cid={click_id}&s1={sub1}"


async def create_offer(client, tenant: Tenant, **overrides) -> dict:
    body = {"advertiser_id": tenant.advertiser_id, "name": "Summer sale", "destination_url": LANDING, **overrides}
    response = await client.post("/v1/offers", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def create_link(client, tenant: Tenant, offer_id: str) -> dict:
    response = await client.post(
        "/v1/links", json={"offer_id": offer_id, "affiliate_id": tenant.affiliate_id}, headers=tenant.headers
    )
    assert response.status_code == 201, response.text
    return response.json()


def assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"code", "message", "correlation_id"}, body
    assert body["message"] and body["correlation_id"] == response.headers["x-request-id"]
    if code is not None:
        assert body["code"] == code, body
    return body
