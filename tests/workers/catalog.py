"""One organization with one live tracking link, written straight to Postgres."""

from __future__ import annotations

import secrets


async def create_link(pool) -> str:
    """Insert an organization, advertiser, affiliate, offer and link; return the link token."""
    token = secrets.token_urlsafe(12)
    async with pool.acquire() as conn, conn.transaction():
        org = await conn.fetchval("insert into organizations (name) values ('Org') returning id")
        adv = await conn.fetchval("insert into advertisers (org_id, name) values ($1, 'Adv') returning id", org)
        aff = await conn.fetchval("insert into affiliates (org_id, name) values ($1, 'Aff') returning id", org)
        offer = await conn.fetchval(
            "insert into offers (org_id, advertiser_id, name, destination_url)"
            " values ($1, $2, 'Offer', 'https://shop.example/?c={click_id}') returning id", org, adv)
        await conn.execute(
            "insert into links (org_id, offer_id, affiliate_id, token) values ($1, $2, $3, $4)", org, offer, aff, token)
    return token
