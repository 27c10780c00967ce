"""Link configuration: read from Postgres, published to Redis for the edge.

Postgres is the source of truth. After every change that affects a link, the api calls
``publish_links`` (a change to the organization's data settings affects all of its
links); the edge keeps the hash in memory and reloads what the change
channel names. ``sync_all_links`` rewrites the whole hash (start-up, repair) and tells
every edge to reload.

A link's ``click_capped_until_ms`` is computed here from ``click_counters`` as of
``now`` (default: the database's clock): the end of the current UTC day or month whose
counter, the offer's or the link affiliate's, is at or past its limit in
``offers.caps`` (the later end if both), else 0. It changes when a counter reaches its
limit, which the click ingest worker publishes, and when the caps change, which the api
publishes like any offer change; it needs no publish when a period ends (the edge
compares it with each click's clock).
"""

from __future__ import annotations

from typing import Sequence

import datetime as dt

import asyncpg
import redis.asyncio as aioredis

from core.models import LinkConfig, link_config_encoder
from core.redis_keys import RedisKeys

_SELECT = """
select l.token, l.id::text as link_id, l.org_id::text as org_id, l.offer_id::text as offer_id,
       l.affiliate_id::text as affiliate_id, o.status as offer_status,
       case
           when a.status <> 'active' then 'blocked'
           when oa.status is not null then oa.status
           when o.requires_approval then 'pending'
           else 'approved'
       end as affiliate_status,
       coalesce(oa.destination_url, o.destination_url) as destination_url,
       o.fallback_url,
       array(select rtrim(c) from unnest(o.geo_allow) c) as geo_allow,
       array(select rtrim(c) from unnest(o.geo_deny) c) as geo_deny,
       org.ip_truncate,
       case when o.caps = '{{}}'::jsonb then 0 else coalesce((
           select (extract(epoch from max(p.period_end)::timestamp at time zone 'UTC') * 1000)::bigint
           from (values
               ('00000000-0000-0000-0000-000000000000'::uuid, o.caps -> 'offer'),
               (l.affiliate_id, coalesce(o.caps -> 'affiliate_overrides' -> l.affiliate_id::text,
                                         o.caps -> 'per_affiliate'))
           ) as w (affiliate_id, limits)
           cross join (values
               ('day', clock.today, clock.today + 1, 'daily_clicks'),
               ('month', clock.month, (clock.month + interval '1 month')::date, 'monthly_clicks')
           ) as p (period, period_start, period_end, limit_name)
           where (w.limits ->> p.limit_name)::bigint <= coalesce((
               select k.clicks from click_counters k
               where k.org_id = l.org_id and k.offer_id = l.offer_id and k.affiliate_id = w.affiliate_id
                 and k.period = p.period and k.period_start = p.period_start), 0)
       ), 0) end as click_capped_until_ms
from links l
join organizations org on org.id = l.org_id
join offers o on o.org_id = l.org_id and o.id = l.offer_id
join affiliates a on a.org_id = l.org_id and a.id = l.affiliate_id
left join offer_affiliates oa on oa.offer_id = l.offer_id and oa.affiliate_id = l.affiliate_id
cross join (
    select (t at time zone 'UTC')::date as today, date_trunc('month', t at time zone 'UTC')::date as month
    from (select coalesce({now}::timestamptz, now()) as t) as n
) as clock
"""

_SELECT_SOME = _SELECT.format(now="$5") + (
    " where l.org_id = $1::uuid and ($2::uuid is null or l.offer_id = $2::uuid)"
    " and ($3::uuid is null or l.affiliate_id = $3::uuid) and ($4::text is null or l.token = $4)"
)
_SELECT_ALL = _SELECT.format(now="$1")


def _to_config(row: asyncpg.Record) -> LinkConfig:
    return LinkConfig(**dict(row))


async def load_link_configs(
    conn: asyncpg.Connection, org_id: str, *, offer_id: str | None = None,
    affiliate_id: str | None = None, token: str | None = None, now: dt.datetime | None = None,
) -> list[LinkConfig]:
    """The configs of one organization's links, optionally narrowed; caps as of ``now``."""
    rows = await conn.fetch(_SELECT_SOME, org_id, offer_id, affiliate_id, token, now)
    return [_to_config(r) for r in rows]


async def publish_links(redis: aioredis.Redis, keys: RedisKeys, configs: Sequence[LinkConfig]) -> None:
    if not configs:
        return
    mapping = {c.token: link_config_encoder.encode(c) for c in configs}
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(keys.link_configs, mapping=mapping)
        pipe.publish(keys.config_changes, link_config_encoder.encode(list(mapping)))
        await pipe.execute()


async def sync_all_links(
    conn: asyncpg.Connection, redis: aioredis.Redis, keys: RedisKeys, *, now: dt.datetime | None = None,
) -> int:
    """Make the Redis hash equal to Postgres for every organization; return the link count."""
    configs = [_to_config(r) for r in await conn.fetch(_SELECT_ALL, now)]
    wanted = {c.token: link_config_encoder.encode(c) for c in configs}
    present = {k.decode() if isinstance(k, bytes) else k for k in await redis.hkeys(keys.link_configs)}
    async with redis.pipeline(transaction=True) as pipe:
        if wanted:
            pipe.hset(keys.link_configs, mapping=wanted)
        stale = present - set(wanted)
        if stale:
            pipe.hdel(keys.link_configs, *stale)
        pipe.publish(keys.config_changes, link_config_encoder.encode([]))
        await pipe.execute()
    return len(configs)
