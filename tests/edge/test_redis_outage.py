"""The edge across a Redis outage, on a Redis of its own (the suite's is shared)."""

import asyncio

import httpx
import pytest_asyncio
import redis.asyncio as aioredis

from afftok.servers import RedisServer, free_port
from core.models import click_batch_decoder
from core.redis_keys import RedisKeys
from core.settings import load_settings
from core.store.link_configs import publish_links
from edge.app import create_app, running
from edge.spool import decode_records
from tests.edge.conftest import link, stream_records, wait_for


@pytest_asyncio.fixture
async def own_redis(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()


def outage_settings(url, tmp_path):
    return load_settings({}, redis_url=url, redis_prefix="outage", data_dir=tmp_path / "data",
                         spool_fsync=True, spool_replay_interval_ms=100, redis_write_timeout_ms=200)


def spooled_click_ids(spool_dir) -> list[str]:
    ids = []
    for path in spool_dir.glob("edge-*"):
        payloads, _ = decode_records(path.read_bytes())
        ids.extend(r.click_id for p in payloads for r in click_batch_decoder.decode(p))
    return ids


async def test_clicks_survive_a_redis_restart(own_redis, tmp_path):
    keys = RedisKeys("outage")
    settings = outage_settings(own_redis.url, tmp_path)
    admin = aioredis.Redis.from_url(own_redis.url)
    await publish_links(admin, keys, [link()])
    await admin.aclose()
    app = create_app(settings)
    async with running(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://e") as client:
        before = await client.get("/c/tok1")
        assert before.status_code == 302
        own_redis.stop()

        responses = await asyncio.gather(*(client.get(f"/c/tok1?sub1={i}") for i in range(50)))
        assert {r.status_code for r in responses} == {302}
        answered = {r.cookies["afftok_cid"] for r in responses}
        assert set(spooled_click_ids(settings.spool_dir)) == answered
        assert (await client.get("/readyz")).status_code == 503
        metrics = (await client.get("/metrics")).text
        assert "afftok_clicks_spooled_total 50.0" in metrics

        restarted = RedisServer(own_redis.data_dir, port=own_redis.port).start()  # same port, empty data
        check = aioredis.Redis.from_url(own_redis.url)
        try:
            async def replayed():
                return not list(settings.spool_dir.glob("edge-*"))

            assert await wait_for(replayed, timeout_s=10)
            stored = [r.click_id for r in await stream_records(check, keys.click_stream(0))]
            assert sorted(stored) == sorted(answered)  # the first click went to the old, lost server
            after = await client.get("/c/tok1")  # still served from memory, now straight to Redis
            assert after.status_code == 302
            assert await wait_for(lambda: _contains(check, keys, after.cookies["afftok_cid"]))
        finally:
            await check.aclose()
            restarted.stop()


async def _contains(client, keys, click_id):
    return click_id in {r.click_id for r in await stream_records(client, keys.click_stream(0))}


async def test_edge_starts_without_redis_and_catches_up(tmp_path):
    port = free_port()
    settings = outage_settings(f"redis://127.0.0.1:{port}/0", tmp_path)
    app = create_app(settings)
    async with running(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://e") as client:
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 503
        assert (await client.get("/c/tok1")).status_code == 404
        server = RedisServer(tmp_path / "late-redis", port=port).start()
        try:
            admin = aioredis.Redis.from_url(server.url)
            await publish_links(admin, RedisKeys("outage"), [link()])
            await admin.aclose()

            async def ready():
                return (await client.get("/readyz")).status_code == 200

            assert await wait_for(ready, timeout_s=10)
            assert await wait_for(lambda: _is_redirect(client), timeout_s=10)
        finally:
            server.stop()


async def _is_redirect(client):
    return (await client.get("/c/tok1")).status_code == 302
