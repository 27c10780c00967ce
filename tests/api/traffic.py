"""Clicks for listing and export tests: one organization, two advertisers' offers, two
affiliates' links, clicks written as the ingest worker writes them (insert_clicks)."""

from __future__ import annotations

import datetime as dt

import msgspec

from core.ids import new_click_id
from core.models import ClickRecord
from core.store.affiliates import create_affiliate
from core.store.advertisers import create_advertiser
from core.store.api_keys import create_api_key
from core.store.clicks import insert_clicks
from tests.api.conftest import Tenant, create_offer

NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
EVIL_SUB1 = ["=HYPERLINK(\"http://evil.example\",\"x\")", "+1+2", "-3", "@SUM(A1)", "\tx", "\rx", 'a,"b"\nc']


class Traffic(msgspec.Struct, kw_only=True):
    offer_id: str  # the tenant's advertiser's
    other_offer_id: str  # the second advertiser's
    other_advertiser_id: str
    other_affiliate_id: str
    link_id: str  # the tenant's affiliate on offer_id
    other_link_id: str  # the other affiliate on other_offer_id
    clicks: list[ClickRecord]
    advertiser_headers: dict[str, str]
    affiliate_headers: dict[str, str]


def click_at(at: dt.datetime, org_id: str, offer_id: str, affiliate_id: str, link_id: str, **fields) -> ClickRecord:
    ts_ms = int(at.timestamp() * 1000)
    values = dict(
        click_id=new_click_id(ts_ms), ts_ms=ts_ms, org_id=org_id, offer_id=offer_id, affiliate_id=affiliate_id,
        link_id=link_id, outcome="redirect", sub1="s1", ip="203.0.113.7", user_agent="Mozilla/5.0", country="DE",
        device_type="desktop",
    )
    return ClickRecord(**{**values, **fields})


async def store_clicks(pool, records: list[ClickRecord]) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await insert_clicks(conn, records)


async def make_traffic(client, pool, tenant: Tenant) -> Traffic:
    async with pool.acquire() as conn:
        adv2 = str((await create_advertiser(conn, tenant.org_id, "Second advertiser")).id)
        aff2 = str((await create_affiliate(conn, tenant.org_id, "Second affiliate")).id)
        adv_key = await create_api_key(conn, tenant.org_id, "adv", "advertiser", advertiser_id=tenant.advertiser_id)
        aff_key = await create_api_key(conn, tenant.org_id, "aff", "affiliate", affiliate_id=tenant.affiliate_id)
    offer = await create_offer(client, tenant)
    other = await create_offer(client, tenant, advertiser_id=adv2, name="Other")
    links = []
    for offer_id, affiliate_id in ((offer["id"], tenant.affiliate_id), (other["id"], aff2)):
        response = await client.post("/v1/links", json={"offer_id": offer_id, "affiliate_id": affiliate_id},
                                     headers=tenant.headers)
        assert response.status_code == 201, response.text
        links.append(response.json()["id"])
    mine = (tenant.org_id, offer["id"], tenant.affiliate_id, links[0])
    theirs = (tenant.org_id, other["id"], aff2, links[1])
    clicks = [
        click_at(NOW - dt.timedelta(minutes=10 + i), *(mine if i % 3 else theirs), sub1=f"s{i % 4}",
                 country=("DE", "FR")[i % 2], device_type=("desktop", "mobile")[i % 2])
        for i in range(30)
    ]
    clicks += [click_at(NOW - dt.timedelta(hours=2, minutes=i), *mine, sub1=s) for i, s in enumerate(EVIL_SUB1)]
    clicks.append(click_at(NOW - dt.timedelta(days=3), *mine, outcome="fallback_geo", sub1=None, ip=None))
    await store_clicks(pool, clicks)
    return Traffic(
        offer_id=offer["id"], other_offer_id=other["id"], other_advertiser_id=adv2, other_affiliate_id=aff2,
        link_id=links[0], other_link_id=links[1], clicks=clicks,
        advertiser_headers={"Authorization": f"Bearer {adv_key.key}"},
        affiliate_headers={"Authorization": f"Bearer {aff_key.key}"},
    )


def newest_first(records: list[ClickRecord]) -> list[ClickRecord]:
    return sorted(records, key=lambda r: (r.ts_ms, r.click_id), reverse=True)


def in_last_day(records: list[ClickRecord]) -> list[ClickRecord]:
    since = (NOW - dt.timedelta(hours=24)).timestamp() * 1000
    return [r for r in records if r.ts_ms >= since]
