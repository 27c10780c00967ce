"""One organization with a row in every tenant table, written straight to Postgres as the owner.

Ids are keyed by the names the api uses for them in paths and bodies (``offer_id``...).
"""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg

from core import api_keys
from core.ids import new_click_id
from core.store.partitions import ensure_daily_partitions
from core.store.stats_rollups import NEW_CLICKS_TABLE, roll_up_new_clicks

# Every table seeded here, and the column that names its organization.
SEEDED_TABLES = {
    "organizations": "id", "advertisers": "org_id", "affiliates": "org_id", "offers": "org_id",
    "offer_affiliates": "org_id", "links": "org_id", "api_keys": "org_id", "clicks": "org_id",
    "audit_log": "org_id", "advertiser_signing_secrets": "org_id", "conversions": "org_id",
    "conversion_status_history": "org_id", "export_jobs": "org_id", "delivery_endpoints": "org_id",
    "delivery_endpoint_secrets": "org_id", "deliveries": "org_id", "delivery_attempts": "org_id",
}


async def seed_organization(conn: asyncpg.Connection, name: str) -> dict[str, str]:
    """Return the new rows' ids (as strings) and ``key``, the secret of its API key ``key_id``."""
    org = await conn.fetchval("insert into organizations (name) values ($1) returning id", name)
    adv = await conn.fetchval("insert into advertisers (org_id, name) values ($1, $2) returning id", org, f"{name} adv")
    aff = await conn.fetchval("insert into affiliates (org_id, name) values ($1, $2) returning id", org, f"{name} aff")
    offer = await conn.fetchval(
        "insert into offers (org_id, advertiser_id, name, destination_url)"
        " values ($1, $2, $3, 'https://shop.example/?c={click_id}') returning id", org, adv, f"{name} offer")
    await conn.execute(
        "insert into offer_affiliates (org_id, offer_id, affiliate_id) values ($1, $2, $3)", org, offer, aff)
    link = await conn.fetchval(
        "insert into links (org_id, offer_id, affiliate_id, token) values ($1, $2, $3, $4) returning id",
        org, offer, aff, uuid.uuid4().hex)
    key = api_keys.generate_key()
    key_id = await conn.fetchval(
        "insert into api_keys (org_id, name, prefix, last4, key_hash) values ($1, 'seeded', $2, $3, $4) returning id",
        org, api_keys.display_prefix(key), api_keys.last4(key), api_keys.hash_key(key))
    now_ms = int(dt.datetime.now(dt.timezone.utc).timestamp() * 1000)
    now = dt.datetime.fromtimestamp(now_ms / 1000, dt.timezone.utc)  # the time the click id carries
    await ensure_daily_partitions(conn, "clicks", [now.date()])
    click_id = new_click_id(now_ms)
    await conn.execute(
        "insert into clicks (click_id, clicked_at, org_id, offer_id, affiliate_id, link_id, outcome, ip)"
        " values ($1, $2, $3, $4, $5, $6, 'redirect', '203.0.113.7')",
        click_id, now, org, offer, aff, link)
    async with conn.transaction():  # and into the stats rollups, as the ingest worker does
        await conn.execute(NEW_CLICKS_TABLE)
        await conn.execute(
            "insert into clicks_new (click_id, clicked_at, org_id, offer_id, affiliate_id, ip)"
            " values ($1, $2, $3, $4, $5, '203.0.113.7')", click_id, now, org, offer, aff)
        await roll_up_new_clicks(conn)
    await conn.execute(
        "insert into audit_log (org_id, actor_type, actor_id, action, target_type, target_id)"
        " values ($1, 'api_key', $2, 'advertisers.create', 'advertiser', $3)", org, str(key_id), str(adv))
    secret_id = await conn.fetchval(
        "insert into advertiser_signing_secrets (org_id, advertiser_id, secret) values ($1, $2, $3) returning id",
        org, adv, "s" * 40)
    external_id = f"order-{uuid.uuid4().hex[:12]}"
    conversion_id = await conn.fetchval(
        "insert into conversions (org_id, advertiser_id, click_id, clicked_at, offer_id, affiliate_id, link_id,"
        " external_id, status, revenue_minor, payout_minor, currency, source, postback_id, received_at)"
        " values ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', 250, 150, 'USD', 'postback', $3, $4) returning id",
        org, adv, click_id, now, offer, aff, link, external_id)
    await conn.execute(
        "insert into conversion_status_history (org_id, conversion_id, to_status, actor) values ($1, $2, 'pending', 'system')",
        org, conversion_id)
    export_id = await conn.fetchval(
        "insert into export_jobs (id, org_id, kind, format, request, actor, status, rows_written, rows_total,"
        " started_at, finished_at, expires_at) values ($1, $2, 'clicks', 'csv', $3, 'system', 'done', 1, 1,"
        " $4, $4, $4::timestamptz + interval '1 day') returning id",
        uuid.uuid4(), org, {"kind": "clicks", "format": "csv", "filters": {}}, now)
    outbound = await _seed_outbound(conn, org, aff, offer, now)
    ids = {"org_id": org, "advertiser_id": adv, "affiliate_id": aff, "offer_id": offer, "link_id": link,
           "key_id": key_id, "click_id": click_id, "secret_id": secret_id, "conversion_id": conversion_id,
           "external_id": external_id, "export_id": export_id, **outbound,
           "target_id": adv, "actor_id": key_id}  # the audit row's (its filters are named so)
    return {**{k: str(v) for k, v in ids.items()}, "key": key}


async def _seed_outbound(conn: asyncpg.Connection, org: uuid.UUID, aff: uuid.UUID, offer: uuid.UUID,
                         now: dt.datetime) -> dict[str, uuid.UUID]:
    """The organization's own webhook with a secret and a dead delivery (one attempt), and
    an affiliate postback for the offer; ``endpoint_id`` is the delivery's (the webhook)."""
    webhook = await conn.fetchval(
        "insert into delivery_endpoints (org_id, kind, url, event_types)"
        " values ($1, 'webhook', 'https://hooks.example/afftok', '{conversion.created}') returning id", org)
    postback = await conn.fetchval(
        "insert into delivery_endpoints (org_id, kind, affiliate_id, offer_id, url, event_types)"
        " values ($1, 'postback', $2, $3, 'https://hooks.example/pb?c={click_id}', '{conversion.approved}')"
        " returning id", org, aff, offer)
    webhook_secret = await conn.fetchval(
        "insert into delivery_endpoint_secrets (org_id, endpoint_id, secret) values ($1, $2, $3) returning id",
        org, webhook, "aft_whsec_" + "w" * 43)
    event_id = uuid.uuid4()
    delivery = await conn.fetchval(
        "insert into deliveries (org_id, endpoint_id, event_id, event_type, body, status, attempts, event_created_at,"
        " retry_until, last_attempt_at, last_status_code, dead_at) values ($1, $2, $3, 'conversion.created', $4,"
        " 'dead', 1, $5, $5, $5, 404, $5) returning id",
        org, webhook, event_id, b'{"type": "conversion.created"}', now)
    await conn.execute(
        "insert into delivery_attempts (org_id, delivery_id, attempt, started_at, latency_ms, status_code,"
        " response_excerpt, url) values ($1, $2, 1, $3, 12, 404, 'not here', 'https://hooks.example/afftok')",
        org, delivery, now)
    return {"webhook_id": webhook, "affiliate_postback_id": postback, "webhook_secret_id": webhook_secret,
            "endpoint_id": webhook, "delivery_id": delivery, "event_id": event_id}
