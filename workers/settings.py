"""The arq worker, built from ``Settings``: ``arq.run_worker(worker_settings(settings))``.

Besides arq's queue (maintenance jobs on cron), the worker process runs the click ingest
and the conversion consumers as background tasks for its whole life: started in
``on_startup`` and stopped in ``on_shutdown``, which arq runs on SIGTERM/SIGINT (its own
signal handling), after each consumer finishes the batch under way and acks what
committed. With ``worker_metrics_port`` set it serves its Prometheus metrics there.
"""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio as aioredis
from prometheus_client import start_http_server
from arq.connections import RedisSettings
from arq.cron import cron

from core.db import create_pool
from core.redis_keys import RedisKeys
from core.settings import Settings
from core.store.fraud_signals import load_datacenter_ranges
from workers.click_ingest import make_consumers
from workers.conversion_ingest import make_conversion_consumers
from workers.deliveries import start_deliveries
from workers.delivery_pruning import prune_deliveries_job
from workers.exports import expire_exports_job, run_export_job
from workers.maintenance import (
    apply_retention_job, create_click_partitions_job, resync_link_configs_job, resync_postback_auth_job,
)

log = logging.getLogger(__name__)

_LINK_SYNC_MINUTES = set(range(0, 60, 5))
_PARTITIONS_MINUTE = 7  # hourly, off the top of the hour
_RETENTION_HOUR, _RETENTION_MINUTE = 3, 17  # daily, UTC, off-peak for most networks
_RETENTION_TIMEOUT_S = 3600  # bounded deletes; each batch commits, so a timeout loses nothing
_STOP_GRACE_S = 30.0
_EXPORTS_EXPIRY_MINUTE = 23  # hourly
_DELIVERY_PRUNE_MINUTE = 41  # hourly
_JOB_TIMEOUT_S = 3600  # a background export of millions of rows takes minutes, not arq's default 300 s


def redis_keys(settings: Settings) -> RedisKeys:
    return RedisKeys(prefix=settings.redis_prefix, click_stream_shards=settings.click_stream_shards)


def worker_settings(settings: Settings) -> dict:
    """Keyword arguments for ``arq.Worker`` (``arq.run_worker`` accepts the dict)."""
    keys = redis_keys(settings)

    async def on_startup(ctx: dict) -> None:
        ctx["settings"] = settings
        ctx["keys"] = keys
        ctx["pool"] = await create_pool(settings.database_url)
        # The consumer blocks on XREADGROUP: its own connections, not arq's.
        ctx["stream_redis"] = aioredis.Redis.from_url(settings.redis_url)
        if settings.worker_metrics_port:
            ctx["metrics_server"], _thread = start_http_server(settings.worker_metrics_port, addr=settings.host)
        await start_click_ingest(ctx)
        await start_conversion_ingest(ctx)
        await start_deliveries(ctx)

    async def on_shutdown(ctx: dict) -> None:
        try:
            await asyncio.gather(
                stop_click_ingest(ctx), stop_consumers(ctx, "conversion_ingest"), stop_consumers(ctx, "deliveries"))
        finally:
            if "metrics_server" in ctx:
                await asyncio.to_thread(ctx["metrics_server"].shutdown)  # waits out its poll: not on the loop
                ctx["metrics_server"].server_close()  # release the port, not only stop serving
            if "stream_redis" in ctx:
                await ctx["stream_redis"].aclose()
            if "pool" in ctx:
                await ctx["pool"].close()

    return {
        "redis_settings": RedisSettings.from_dsn(settings.redis_url),
        "queue_name": keys.arq_queue,
        "functions": [create_click_partitions_job, resync_link_configs_job, resync_postback_auth_job, run_export_job],
        "cron_jobs": [
            cron(create_click_partitions_job, minute=_PARTITIONS_MINUTE, second=0, run_at_startup=True),
            cron(resync_link_configs_job, minute=_LINK_SYNC_MINUTES, second=0, run_at_startup=True),
            cron(resync_postback_auth_job, minute=_LINK_SYNC_MINUTES, second=0, run_at_startup=True),
            cron(apply_retention_job, hour=_RETENTION_HOUR, minute=_RETENTION_MINUTE, second=0,
                 timeout=_RETENTION_TIMEOUT_S),
            cron(expire_exports_job, minute=_EXPORTS_EXPIRY_MINUTE, second=0),
            cron(prune_deliveries_job, minute=_DELIVERY_PRUNE_MINUTE, second=0),
        ],
        "job_timeout": _JOB_TIMEOUT_S,
        "on_startup": on_startup,
        "on_shutdown": on_shutdown,
    }


async def start_click_ingest(ctx: dict) -> None:
    consumers = make_consumers(ctx["settings"], ctx["pool"], ctx["stream_redis"], ctx["keys"])
    stop = asyncio.Event()
    ctx["click_ingest"] = consumers
    ctx["click_ingest_stop"] = stop

    async def run_all() -> None:
        await asyncio.gather(*(consumer.run_forever(stop) for consumer in consumers))

    ctx["click_ingest_task"] = asyncio.create_task(run_all(), name="click-ingest")


async def start_conversion_ingest(ctx: dict) -> None:
    settings = ctx["settings"]
    consumers = make_conversion_consumers(
        settings, ctx["pool"], ctx["stream_redis"], ctx["keys"],
        datacenter=load_datacenter_ranges(settings.datacenter_cidrs_path))
    stop = asyncio.Event()
    ctx["conversion_ingest"] = consumers
    ctx["conversion_ingest_stop"] = stop

    async def run_all() -> None:
        await asyncio.gather(*(consumer.run_forever(stop) for consumer in consumers))

    ctx["conversion_ingest_task"] = asyncio.create_task(run_all(), name="conversion-ingest")


async def stop_click_ingest(ctx: dict) -> None:
    await stop_consumers(ctx, "click_ingest")


async def stop_consumers(ctx: dict, name: str) -> None:
    """Let the batch under way finish (commit, then ack); cancel only past the grace period."""
    task: asyncio.Task | None = ctx.get(f"{name}_task")
    if task is None:
        return
    ctx[f"{name}_stop"].set()
    try:
        await asyncio.wait_for(task, _STOP_GRACE_S)
    except asyncio.TimeoutError:
        # Cancelled mid-batch: nothing un-committed was acked, so redelivery covers it.
        log.warning("%s did not stop within %.0f s; cancelled", name, _STOP_GRACE_S)
