from core.models import link_config_decoder
from tests.api.conftest import create_link, create_offer


async def _published(redis, keys, token):
    raw = await redis.hget(keys.link_configs, token)
    assert raw is not None, f"link {token} not published"
    return link_config_decoder.decode(raw)


async def test_creating_a_link_publishes_its_config(client, redis, keys, tenant):
    offer = await create_offer(client, tenant, fallback_url="https://shop.example/", geo_deny=["RU"])
    link = await create_link(client, tenant, offer["id"])
    config = await _published(redis, keys, link["token"])
    assert (config.link_id, config.offer_id, config.affiliate_id, config.org_id) == (
        link["id"], offer["id"], tenant.affiliate_id, tenant.org_id)
    assert (config.offer_status, config.affiliate_status) == ("active", "approved")
    assert config.destination_url == offer["destination_url"] and config.geo_deny == ["RU"]


async def test_pausing_the_offer_and_changing_approval_republish(client, redis, keys, tenant):
    offer = await create_offer(client, tenant)
    token = (await create_link(client, tenant, offer["id"]))["token"]
    pubsub = redis.pubsub()
    await pubsub.subscribe(keys.config_changes)
    await client.patch(f"/v1/offers/{offer['id']}", json={"status": "paused"}, headers=tenant.headers)
    assert (await _published(redis, keys, token)).offer_status == "paused"
    override = "https://other.example/x?c={click_id}"
    await client.put(f"/v1/offers/{offer['id']}/affiliates/{tenant.affiliate_id}",
                     json={"status": "rejected", "destination_url": override}, headers=tenant.headers)
    config = await _published(redis, keys, token)
    assert (config.affiliate_status, config.destination_url) == ("rejected", override)
    await client.patch(f"/v1/offers/{offer['id']}", json={"status": "active"}, headers=tenant.headers)
    await client.put(f"/v1/offers/{offer['id']}/affiliates/{tenant.affiliate_id}", json={"status": "approved"},
                     headers=tenant.headers)
    config = await _published(redis, keys, token)
    assert (config.offer_status, config.affiliate_status, config.destination_url) == ("active", "approved", offer["destination_url"])
    await client.patch(f"/v1/affiliates/{tenant.affiliate_id}", json={"status": "banned"}, headers=tenant.headers)
    assert (await _published(redis, keys, token)).affiliate_status == "blocked"
    messages = [m async for m in _drain(pubsub, 5)]
    assert len(messages) == 5  # every change told the edges
    await pubsub.aclose()


async def _drain(pubsub, wanted):
    for _ in range(20):  # the subscribe confirmation reads as None, so do not stop at the first
        m = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.05)
        if m is not None:
            yield m
            wanted -= 1
            if not wanted:
                return


async def test_startup_rewrites_redis_from_postgres(client, app, api_settings, pool, redis, keys, tenant):
    from api.app import create_app

    offer = await create_offer(client, tenant)
    token = (await create_link(client, tenant, offer["id"]))["token"]
    await redis.delete(keys.link_configs)
    await redis.hset(keys.link_configs, "stale-token", b"x")
    fresh = create_app(api_settings)
    async with fresh.router.lifespan_context(fresh):
        assert (await _published(redis, keys, token)).offer_id == offer["id"]
        assert await redis.hget(keys.link_configs, "stale-token") is None
