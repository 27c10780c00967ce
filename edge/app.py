"""The edge application: ``create_app(settings)`` returns the ASGI app.

A tiny dispatcher sends ``/c/...`` straight to the raw click handler, ``/postback``
and the pixel paths to theirs (``edge.postback_handler``, ``edge.pixel_handler``), and everything else
(health, metrics, lifespan) to a small Starlette app. Start-up and shutdown live
in ``EdgeRuntime``; the ASGI lifespan runs them, and tests (whose ASGI transport runs
no lifespan) use ``async with running(app)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
from pathlib import Path

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from core.devices import warm_up as warm_up_device_rules
from core.geo import load_country_database
from core.redis_keys import RedisKeys
from core.settings import Settings
from edge.click_handler import CLICK_PATH_PREFIX, make_click_handler, send_error
from edge.committer import POSTBACKS, GroupCommitter
from edge.config_cache import ConfigCache
from edge.metrics import SNAPSHOT_INTERVAL_S, EdgeCollector, EdgeMetrics, SnapshotFiles
from edge.postback_auth import PostbackAuthCache
from edge.pixel_handler import PIXEL_GIF_PATH, PIXEL_JS_PATH, make_pixel_handler
from edge.postback_handler import POSTBACK_PATH, make_postback_handler
from edge.routes import make_routes_app
from edge.spool import Spool
from edge.spool_replay import run_spool_replay

log = logging.getLogger(__name__)

GC_THRESHOLDS = (50_000, 20, 20)  # fewer gen-0 collections: measured faster on the click path
_CONVERSION_PATHS = (POSTBACK_PATH, PIXEL_GIF_PATH, PIXEL_JS_PATH)


class EdgeRuntime:
    """The process-wide parts of the edge and their start/stop order."""

    def __init__(self, settings: Settings):
        self.settings = settings
        timeout_s = settings.redis_write_timeout_ms / 1000
        self.redis = aioredis.Redis.from_url(settings.redis_url, socket_connect_timeout=timeout_s)
        keys = RedisKeys(settings.redis_prefix, settings.click_stream_shards)
        shard = os.getpid() % max(1, settings.click_stream_shards)
        self.stream = keys.click_stream(shard)
        self.conversion_stream = keys.conversion_stream(shard)
        self.metrics = EdgeMetrics()
        self.snapshots = SnapshotFiles(Path(settings.metrics_dir), os.getpid()) if settings.metrics_dir else None
        self.spool = Spool(settings.spool_dir, fsync=settings.spool_fsync)
        self.cache = ConfigCache(self.redis, keys, lookup_timeout_s=timeout_s)
        self.committer = GroupCommitter(
            self.redis, self.stream, self.spool, self.metrics, batch_max=settings.click_batch_max,
            write_timeout_s=timeout_s, redis_retry_after_s=settings.spool_replay_interval_ms / 1000,
        )
        self.postback_auth = PostbackAuthCache(self.redis, keys)
        self.postback_spool = Spool(settings.conversion_spool_dir, fsync=settings.spool_fsync)
        self.postback_committer = GroupCommitter(
            self.redis, self.conversion_stream, self.postback_spool, self.metrics.postback_spool,
            batch_max=settings.postback_batch_max, write_timeout_s=timeout_s,
            redis_retry_after_s=settings.spool_replay_interval_ms / 1000, fmt=POSTBACKS,
        )
        self._tasks: list[asyncio.Task] = []
        self._gc_thresholds: tuple[int, int, int] | None = None

    async def start(self) -> None:
        await asyncio.to_thread(load_country_database)
        await asyncio.to_thread(warm_up_device_rules)
        self._tasks = [
            asyncio.create_task(self.cache.follow_changes(), name="edge-config"),
            asyncio.create_task(run_spool_replay(
                self.spool, self.redis, self.stream, interval_s=self.settings.spool_replay_interval_ms / 1000,
                ping_timeout_s=self.settings.redis_write_timeout_ms / 1000,
            ), name="edge-spool-replay"),
            asyncio.create_task(self.postback_auth.follow_changes(), name="edge-postback-auth"),
            asyncio.create_task(run_spool_replay(
                self.postback_spool, self.redis, self.conversion_stream,
                interval_s=self.settings.spool_replay_interval_ms / 1000,
                ping_timeout_s=self.settings.redis_write_timeout_ms / 1000, fmt=POSTBACKS,
            ), name="edge-postback-spool-replay"),
        ]
        if self.snapshots is not None:
            self._tasks.append(asyncio.create_task(self._write_snapshots(), name="edge-metrics"))
        await self._wait_for_first_load(timeout_s=2.0)
        gc.collect()
        gc.freeze()  # start-up objects leave the collector's view for good
        self._gc_thresholds = gc.get_threshold()
        gc.set_threshold(*GC_THRESHOLDS)

    async def stop(self) -> None:
        await self.committer.drain()
        await self.postback_committer.drain()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await asyncio.to_thread(self.spool.close)
        await asyncio.to_thread(self.postback_spool.close)
        if self.snapshots is not None:
            await asyncio.to_thread(self.snapshots.write, self.metrics)
        await self.redis.aclose()
        if self._gc_thresholds is not None:
            gc.unfreeze()
            gc.set_threshold(*self._gc_thresholds)

    async def _wait_for_first_load(self, timeout_s: float) -> None:
        """Give the link config and postback credential loads a moment (a postback that
        arrives before its credentials are in memory is refused); if Redis is away,
        start anyway and keep trying."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self.cache.first_attempt_done.wait()
                await self.postback_auth.first_attempt_done.wait()
        if not self.cache.loaded:
            log.warning("starting without link configs: Redis is not answering yet")
        if not self.postback_auth.loaded:
            log.warning("starting without postback credentials: postbacks are refused until they load")

    async def _write_snapshots(self) -> None:
        while True:
            await asyncio.sleep(SNAPSHOT_INTERVAL_S)
            try:
                await asyncio.to_thread(self.snapshots.write, self.metrics)
            except OSError:
                log.exception("could not write the metrics snapshot")


class EdgeApp:
    """The ASGI callable: clicks to the raw handler, the rest to Starlette."""

    def __init__(self, settings: Settings):
        self.runtime = EdgeRuntime(settings)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(EdgeCollector(self.runtime.metrics, self.runtime.snapshots))
        self.routes = make_routes_app(self.runtime, self.registry, self._lifespan)
        self._handle_click = make_click_handler(settings, self.runtime.cache, self.runtime.committer, self.runtime.metrics)
        conversion_parts = (settings, self.runtime.postback_auth, self.runtime.postback_committer, self.runtime.metrics)
        self._handle_postback = make_postback_handler(*conversion_parts)
        self._handle_pixel = make_pixel_handler(*conversion_parts)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(CLICK_PATH_PREFIX):
            try:
                await self._handle_click(scope, receive, send)
            except Exception:
                log.exception("click handler failed")
                with contextlib.suppress(Exception):  # fails if the response had started
                    await send_error(send, "internal_error", scope["headers"])
            return
        if scope["type"] == "http" and scope["path"] in _CONVERSION_PATHS:
            handler = self._handle_postback if scope["path"] == POSTBACK_PATH else self._handle_pixel
            try:
                await handler(scope, receive, send)
            except Exception:
                log.exception("%s handler failed", scope["path"])
                with contextlib.suppress(Exception):
                    await send_error(send, "internal_error", scope["headers"])
            return
        await self.routes(scope, receive, send)

    @contextlib.asynccontextmanager
    async def _lifespan(self, app):
        await self.runtime.start()
        try:
            yield
        finally:
            await self.runtime.stop()


def create_app(settings: Settings) -> EdgeApp:
    return EdgeApp(settings)


@contextlib.asynccontextmanager
async def running(app: EdgeApp):
    """Start and stop ``app`` around a block, as the ASGI lifespan would."""
    await app.runtime.start()
    try:
        yield app
    finally:
        await app.runtime.stop()
