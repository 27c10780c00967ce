import hashlib
from core.demo import seed_demo
from core.store.api_keys import authenticate_api_key
from core.store.link_configs import load_link_configs

import datetime as dt


async def test_seed_demo_creates_a_clickable_tenant_and_reruns_reuse_it(pool):
    async with pool.acquire() as conn:
        first = await seed_demo(conn)
        [config] = await load_link_configs(conn, str(first.org_id), token=first.link_token)
        assert config.offer_status == "active" and config.affiliate_status == "approved"
        assert "{click_id}" in config.destination_url and config.fallback_url
        second = await seed_demo(conn)
        assert (second.org_id, second.offer_id, second.link_token) == (first.org_id, first.offer_id, first.link_token)
        assert second.api_key != first.api_key
        # a fresh postback token each run; only the latest works, and only its hash is stored
        assert second.postback_token != first.postback_token
        stored = await conn.fetchval("select postback_token_hash from advertisers where id = $1", first.advertiser_id)
        assert stored == hashlib.sha256(second.postback_token.encode()).digest()
        now = dt.datetime.now(dt.timezone.utc)
        for tenant in (first, second):
            assert (await authenticate_api_key(conn, tenant.api_key, now)).org_id == first.org_id
        counts = await conn.fetchrow(
            "select (select count(*) from organizations) o, (select count(*) from offers) f,"
            " (select count(*) from links) l, (select count(*) from api_keys) k"
        )
        assert tuple(counts) == (1, 1, 1, 2)
