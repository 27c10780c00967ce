"""Postbacks across a real Redis outage, on a Redis of its own (the suite's is shared):
every 202 is spooled while Redis is down and replayed into the conversions stream once
it is back, and credentials stay in memory though the restarted Redis lost them."""

import asyncio

import httpx
import pytest_asyncio
import redis.asyncio as aioredis

from afftok.servers import RedisServer
from core.models import postback_batch_decoder
from core.redis_keys import RedisKeys
from core.settings import load_settings
from edge.app import create_app, running
from edge.spool import decode_records
from tests.edge.conftest import wait_for
from tests.edge.test_postback import GOOD, publish_auth


@pytest_asyncio.fixture
async def own_redis(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    try:
        yield server
    finally:
        server.stop()


def spooled_external_ids(spool_dir) -> list[str]:
    ids = []
    for path in spool_dir.glob("edge-*"):
        payloads, _ = decode_records(path.read_bytes())
        ids.extend(r.external_id for p in payloads for r in postback_batch_decoder.decode(p))
    return ids


async def stream_external_ids(client, stream: str) -> list[str]:
    return [r.external_id for _id, fields in await client.xrange(stream)
            for r in postback_batch_decoder.decode(fields[b"p"])]


async def test_postbacks_survive_a_redis_restart(own_redis, tmp_path):
    keys = RedisKeys("pb-outage")
    settings = load_settings({}, redis_url=own_redis.url, redis_prefix="pb-outage", data_dir=tmp_path / "data",
                             spool_fsync=True, spool_replay_interval_ms=100, redis_write_timeout_ms=200)
    admin = aioredis.Redis.from_url(own_redis.url)
    await publish_auth(admin, keys)
    await admin.aclose()
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 1))
    async with running(app), httpx.AsyncClient(transport=transport, base_url="http://e") as client:
        assert (await client.get("/postback", params={**GOOD, "external_id": "before"})).status_code == 202
        own_redis.stop()

        sent = [f"down-{n}" for n in range(20)]
        responses = await asyncio.gather(*(client.get("/postback", params={**GOOD, "external_id": e}) for e in sent))
        assert {r.status_code for r in responses} == {202}
        assert sorted(spooled_external_ids(settings.conversion_spool_dir)) == sorted(sent)
        assert not list(settings.spool_dir.glob("edge-*"))  # clicks have their own spool
        assert "afftok_postbacks_spooled_total 20.0" in (await client.get("/metrics")).text

        restarted = RedisServer(own_redis.data_dir, port=own_redis.port).start()  # same port, empty data
        check = aioredis.Redis.from_url(own_redis.url)
        try:
            async def replayed():
                return not list(settings.conversion_spool_dir.glob("edge-*"))

            assert await wait_for(replayed, timeout_s=10)
            stream = keys.conversion_stream(0)
            assert sorted(await stream_external_ids(check, stream)) == sorted(sent)  # "before" was on the lost server
            after = await client.get("/postback", params={**GOOD, "external_id": "after"})
            assert after.status_code == 202  # the credentials outlived Redis' data

            async def arrived():
                return "after" in await stream_external_ids(check, stream)

            assert await wait_for(arrived, timeout_s=10)
        finally:
            await check.aclose()
            restarted.stop()
