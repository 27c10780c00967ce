"""A tenant with an offer and a link, clicks in Postgres, and postbacks on the conversions
stream exactly as the edge writes them."""

from __future__ import annotations

import datetime as dt
import secrets
import time
import uuid

import msgspec

from core.ids import new_click_id
from core.models import CONVERSION_BATCH_VERSION, PostbackRecord, postback_batch_encoder
from core.store.clicks import insert_clicks
from tests.workers.clicks import make_click


class World(msgspec.Struct, kw_only=True):
    org_id: str
    advertiser_id: str
    offer_id: str
    affiliate_id: str
    link_id: str


async def make_world(pool, *, commission: dict | None = None, caps: dict | None = None,
                     fraud_policy: dict | None = None, currency: str = "USD", window_s: int = 86_400,
                     revenue_minor: int = 500, payout_minor: int = 300) -> World:
    async with pool.acquire() as conn, conn.transaction():
        org = await conn.fetchval("insert into organizations (name) values ('Org') returning id")
        adv = await conn.fetchval("insert into advertisers (org_id, name) values ($1, 'Adv') returning id", org)
        aff = await conn.fetchval("insert into affiliates (org_id, name) values ($1, 'Aff') returning id", org)
        offer = await conn.fetchval(
            "insert into offers (org_id, advertiser_id, name, destination_url, currency, revenue_minor, payout_minor,"
            " commission, caps, fraud_policy, attribution_window_s)"
            " values ($1, $2, 'Offer', 'https://shop.example/?c={click_id}', $3, $4, $5, $6, $7, $8, $9) returning id",
            org, adv, currency, revenue_minor, payout_minor, commission, caps or {}, fraud_policy or {}, window_s)
        link = await conn.fetchval(
            "insert into links (org_id, offer_id, affiliate_id, token) values ($1, $2, $3, $4) returning id",
            org, offer, aff, secrets.token_urlsafe(12))
    return World(org_id=str(org), advertiser_id=str(adv), offer_id=str(offer), affiliate_id=str(aff),
                 link_id=str(link))


def click_of(world: World, ts_ms: int | None = None, **fields):
    return make_click(ts_ms, org_id=world.org_id, offer_id=world.offer_id, affiliate_id=world.affiliate_id,
                      link_id=world.link_id, **fields)


async def stored_click(pool, world: World, ts_ms: int | None = None, **fields):
    click = click_of(world, ts_ms, **fields)
    async with pool.acquire() as conn:
        await insert_clicks(conn, [click])
    return click


def now_ms() -> int:
    return int(time.time() * 1000)


def postback(world: World, click_id: str | None, external_id: str = "order-1", *, ts_ms: int | None = None,
             status: str = "approved", **fields) -> PostbackRecord:
    ts_ms = now_ms() if ts_ms is None else ts_ms
    values = dict(
        postback_id=new_click_id(ts_ms), ts_ms=ts_ms, org_id=world.org_id, advertiser_id=world.advertiser_id,
        source="postback", actor="postback:token", click_id=click_id, external_id=external_id, status=status,
        correlation_id=f"corr-{external_id}",
    )
    values.update(fields)
    return PostbackRecord(**values)


async def push_postbacks(redis, keys, records: list[PostbackRecord], shard: int = 0) -> str:
    fields = {b"v": CONVERSION_BATCH_VERSION, b"p": postback_batch_encoder.encode(records)}
    return (await redis.xadd(keys.conversion_stream(shard), fields)).decode()


async def conversions(pool) -> list[dict]:
    return [dict(r) for r in await pool.fetch("select * from conversions order by created_at, id")]


async def history(pool, conversion_id=None) -> list[dict]:
    rows = await pool.fetch(
        "select * from conversion_status_history where ($1::uuid is null or conversion_id = $1) order by id",
        conversion_id)
    return [dict(r) for r in rows]


async def outbox(pool) -> list[dict]:
    return [dict(r) for r in await pool.fetch("select * from outbox_events order by id")]


class Clock:
    """The worker's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.timezone.utc)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


def other_id() -> str:
    return str(uuid.uuid4())
