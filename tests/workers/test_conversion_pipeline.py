"""Clicks and postbacks through the real edge, both workers and Postgres: every postback
answered 202 is one conversion row, every refused one is none, and the credentials the
api publishes are the ones the edge checks."""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs, urlsplit

import msgspec

from core.store.link_configs import load_link_configs, publish_links
from core.store.postback_credentials import sync_all_postback_auth
from core.store.postback_secrets import issue_postback_token
from tests.edge.conftest import edge, edge_settings  # noqa: F401 (fixtures)
from tests.workers.conversions import make_world
from workers.conversion_ingest import ConversionIngest


async def test_every_202_is_one_conversion_and_every_refusal_none(pool, redis, keys, edge, make_consumer, settings):
    app, client = edge
    world = await make_world(pool)
    async with pool.acquire() as conn:
        token = (await issue_postback_token(conn, uuid.UUID(world.org_id), uuid.UUID(world.advertiser_id))).token
        await publish_links(redis, keys, await load_link_configs(conn, world.org_id))
        await sync_all_postback_auth(conn, redis, keys)
    await app.runtime.cache.reload_all()
    await app.runtime.postback_auth.reload_all()
    link = (await pool.fetchrow("select token from links where id = $1", uuid.UUID(world.link_id)))["token"]

    click_ids = []
    for _ in range(40):
        response = await client.get(f"/c/{link}")
        click_ids.append(parse_qs(urlsplit(response.headers["location"]).query)["c"][0])

    accepted, refused = [], 0
    for n in range(200):
        params = {"token": token, "click_id": click_ids[n % 40], "external_id": f"order-{n}",
                  "amount": "19.99", "currency": "USD"}
        if n % 10 == 0:
            params["amount"] = "19.999"  # refused: 422
        if n % 17 == 0:
            params["token"] = "aft_pb_wrong"  # refused: 401
        response = await client.get("/postback", params=params)
        if response.status_code == 202:
            accepted.append(f"order-{n}")
            if n % 7 == 0:  # the advertiser retries: still one conversion
                assert (await client.get("/postback", params=params)).status_code == 202
        else:
            assert response.status_code in (401, 422), response.text
            refused += 1
    assert refused and accepted

    await make_consumer().drain()  # clicks into Postgres
    worker = ConversionIngest(msgspec.structs.replace(settings, conversion_batch_max_wait_ms=10), pool, redis, keys,
                              consumer="p1")
    await worker.drain()
    rows = await pool.fetch("select external_id, status, click_id, payout_minor, sale_amount_minor from conversions")
    assert sorted(r["external_id"] for r in rows) == sorted(accepted)
    assert {r["status"] for r in rows} == {"approved"}
    assert {r["sale_amount_minor"] for r in rows} == {1999}
    assert {r["click_id"] for r in rows} <= set(click_ids)
