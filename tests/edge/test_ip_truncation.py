"""Organizations that store addresses truncated: the edge truncates before recording,
so the stream (and everything after it) never holds the full address."""

import httpx
import pytest

from core.store.advertisers import create_advertiser
from core.store.affiliates import create_affiliate
from core.store.link_configs import load_link_configs
from core.store.links import create_link
from core.store.offers import create_offer
from core.store.organizations import create_organization, update_org_data_settings
from tests.edge.conftest import BASE_URL, link, stream_records, wait_for


async def click_from(app, address: str, token: str = "tok1") -> httpx.Response:
    transport = httpx.ASGITransport(app=app, client=(address, 50000))
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        return await client.get(f"/c/{token}")


@pytest.mark.parametrize(
    ("ip_truncate", "address", "recorded"),
    [
        (True, "203.0.113.77", "203.0.113.0"),
        (True, "2001:db8:abcd:12::7", "2001:db8:abcd::"),
        (True, "::ffff:198.51.100.9", "198.51.100.0"),
        (False, "203.0.113.77", "203.0.113.77"),
        (False, "2001:db8:abcd:12::7", "2001:db8:abcd:12::7"),
    ],
)
async def test_the_stream_holds_what_the_organization_chose(edge, publish, redis, keys, ip_truncate, address, recorded):
    app, _ = edge
    await publish(link(ip_truncate=ip_truncate))

    response = await click_from(app, address)

    assert response.status_code == 302
    [record] = await stream_records(redis, keys.click_stream(0))
    assert record.ip == recorded
    raw = b"".join(fields[b"c"] for _, fields in await redis.xrange(keys.click_stream(0)))
    assert (address.encode() in raw) is not ip_truncate


async def test_organizations_are_truncated_independently(edge, publish, redis, keys):
    app, _ = edge
    await publish(
        link("private", ip_truncate=True, org_id="55555555-5555-5555-5555-555555555555"),
        link("plain"),
    )

    await click_from(app, "203.0.113.77", "private")
    await click_from(app, "203.0.113.77", "plain")

    records = await stream_records(redis, keys.click_stream(0))
    assert [(r.org_id, r.ip) for r in records] == [
        ("55555555-5555-5555-5555-555555555555", "203.0.113.0"), (link().org_id, "203.0.113.77"),
    ]


async def test_the_organization_setting_reaches_the_edge_once_republished(pool, edge, publish, redis, keys):
    app, _ = edge
    async with pool.acquire() as conn:
        org = await create_organization(conn, "Private")
        adv = await create_advertiser(conn, org.id, "Adv")
        aff = await create_affiliate(conn, org.id, "Aff")
        offer = await create_offer(conn, org.id, adv.id, "Offer", "https://shop.example/?c={click_id}")
        created = await create_link(conn, org.id, offer.id, aff.id)
        [before] = await load_link_configs(conn, str(org.id))
        await publish(before)
        await click_from(app, "203.0.113.77", created.token)

        await update_org_data_settings(conn, org.id, ip_truncate=True)
        [after] = await load_link_configs(conn, str(org.id))  # what the caller must republish
        await publish(after)

        async def reloaded():
            entry = app.runtime.cache.entries.get(created.token)
            return entry is not None and entry.config.ip_truncate

        assert await wait_for(reloaded)
        await click_from(app, "203.0.113.77", created.token)

    assert (before.ip_truncate, after.ip_truncate) == (False, True)
    records = await stream_records(redis, keys.click_stream(0))
    assert [r.ip for r in records] == ["203.0.113.77", "203.0.113.0"]
