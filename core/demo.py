"""A demo tenant so a fresh ``afftok up`` has something to click.

``seed_demo`` is safe to run on every start: the first run creates the "Demo Network"
organization with one advertiser, affiliate, active offer, approval and tracking link;
later runs reuse them. Every run creates a fresh API key and a fresh postback token for
the demo advertiser (replacing the previous token), because both secrets are shown only
once. The caller publishes link configs and postback credentials after the transaction
commits.
"""

from __future__ import annotations

import uuid

import asyncpg
import msgspec

from core.store.advertisers import create_advertiser
from core.store.affiliates import create_affiliate
from core.store.api_keys import create_api_key
from core.store.links import create_link
from core.store.offers import create_offer, set_offer_approval
from core.store.postback_secrets import issue_postback_token
from core.store.organizations import create_organization, find_organization_by_name

DEMO_ORG_NAME = "Demo Network"
DEMO_DESTINATION = "https://example.com/landing?click_id={click_id}&sub1={sub1}&sub2={sub2}"
DEMO_FALLBACK = "https://example.com/unavailable"
_SEED_LOCK = 0x_AF_DE_30  # serializes concurrent seeders


class DemoTenant(msgspec.Struct, frozen=True, kw_only=True):
    org_id: uuid.UUID
    advertiser_id: uuid.UUID
    affiliate_id: uuid.UUID
    offer_id: uuid.UUID
    link_id: uuid.UUID
    link_token: str
    api_key: str  # the full secret, shown once
    postback_token: str  # the demo advertiser's, shown once


async def _first_id(conn: asyncpg.Connection, table: str, org_id: uuid.UUID) -> uuid.UUID | None:
    return await conn.fetchval(f"select id from {table} where org_id = $1 order by created_at, id limit 1", org_id)


async def seed_demo(conn: asyncpg.Connection) -> DemoTenant:
    async with conn.transaction():
        await conn.execute("select pg_advisory_xact_lock($1)", _SEED_LOCK)
        org = await find_organization_by_name(conn, DEMO_ORG_NAME)
        org_id = org.id if org else (await create_organization(conn, DEMO_ORG_NAME)).id
        advertiser_id = await _first_id(conn, "advertisers", org_id) or (
            await create_advertiser(conn, org_id, "Demo Advertiser")).id
        affiliate_id = await _first_id(conn, "affiliates", org_id) or (
            await create_affiliate(conn, org_id, "Demo Affiliate", email="affiliate@example.com")).id
        offer_id = await _first_id(conn, "offers", org_id)
        if offer_id is None:
            offer = await create_offer(
                conn, org_id, advertiser_id, "Demo Offer", DEMO_DESTINATION, fallback_url=DEMO_FALLBACK,
                currency="USD", payout_minor=150, revenue_minor=250,
            )
            offer_id = offer.id
            await set_offer_approval(conn, org_id, offer_id, affiliate_id, "approved")
        link = await conn.fetchrow(
            "select id, token from links where org_id = $1 order by created_at, id limit 1", org_id
        )
        if link is None:
            created = await create_link(conn, org_id, offer_id, affiliate_id)
            link_id, token = created.id, created.token
        else:
            link_id, token = link["id"], link["token"]
        key = await create_api_key(conn, org_id, "demo")
        postback_token = await issue_postback_token(conn, org_id, advertiser_id)
    return DemoTenant(
        org_id=org_id, advertiser_id=advertiser_id, affiliate_id=affiliate_id, offer_id=offer_id,
        link_id=link_id, link_token=token, api_key=key.key, postback_token=postback_token.token,
    )
