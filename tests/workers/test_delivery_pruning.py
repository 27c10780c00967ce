"""The hourly prune: old finished deliveries (with attempts), old dispatched events and
expired secrets go; pending deliveries stay however old; a second run deletes nothing."""

from __future__ import annotations

import datetime as dt

from tests.workers.conversions import make_world
from tests.workers.deliveries import Clock, add_endpoint, add_events, local_policy, worker_parts
from workers.delivery_pruning import prune_deliveries


async def test_prune_keeps_pending_and_recent_rows(pool, settings):
    world = await make_world(pool)
    endpoint = await add_endpoint(pool, world, "webhook", "http://hooks.example/")
    dispatcher, _ = worker_parts(settings, pool, Clock(), local_policy())
    await add_events(pool, world, 4)
    await dispatcher.dispatch_once()
    old = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=40)
    ids = [r["id"] for r in await pool.fetch("select id from deliveries order by event_id")]
    await pool.execute("update deliveries set status = 'delivered', delivered_at = $2 where id = $1", ids[0], old)
    await pool.execute("update deliveries set status = 'dead', dead_at = $2 where id = $1", ids[1], old)
    await pool.execute("update deliveries set status = 'delivered', delivered_at = now() where id = $1", ids[2])
    await pool.execute("update deliveries set created_at = $2 where id = $1", ids[3], old)  # pending, old
    await pool.execute(
        "insert into delivery_attempts (org_id, delivery_id, attempt, started_at, latency_ms, url)"
        " select org_id, id, 1, now(), 5, 'http://hooks.example/' from deliveries")
    await pool.execute("update outbox_events set dispatched_at = $1", old)
    await pool.execute(
        "insert into delivery_endpoint_secrets (org_id, endpoint_id, secret, expires_at)"
        " select org_id, id, repeat('s', 40), now() - interval '1 hour' from delivery_endpoints where id = $1", endpoint)

    now = dt.datetime.now(dt.timezone.utc)
    assert await prune_deliveries(pool, now, 30) == {"deliveries": 2, "outbox_events": 4, "webhook_secrets": 1}
    assert {r["id"] for r in await pool.fetch("select id from deliveries")} == {ids[2], ids[3]}
    assert await pool.fetchval("select count(*) from delivery_attempts") == 2
    assert await pool.fetchval("select count(*) from delivery_endpoint_secrets") == 1
    assert await prune_deliveries(pool, now, 30) == {"deliveries": 0, "outbox_events": 0, "webhook_secrets": 0}
