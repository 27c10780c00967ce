"""The arq worker built by ``worker_settings``: maintenance at start-up, clicks ingested,
graceful shutdown. Once in-process, once as ``arq.run_worker`` in a child process
stopped with SIGTERM, the way ``afftok worker`` runs it."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import subprocess
import sys

import pytest
from arq.worker import Worker

from core.settings import REPO_ROOT
from tests.workers.catalog import create_link
from tests.workers.clicks import make_clicks, pending_count, push, stored_click_ids
from workers.settings import worker_settings


async def wait_for(predicate, timeout_s: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


@pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")  # inside arq
async def test_the_worker_ingests_clicks_runs_startup_jobs_and_shuts_down_cleanly(settings, pool, redis, keys):
    token = await create_link(pool)
    batch = make_clicks(25)
    await push(redis, keys, batch[:10])
    worker = Worker(**worker_settings(settings), handle_signals=False, poll_delay=0.05)
    run = asyncio.create_task(worker.async_run())
    try:
        await push(redis, keys, batch[10:])

        async def all_rows():
            return len(await stored_click_ids(pool)) == 25

        async def links_synced():
            return await redis.hexists(keys.link_configs, token)

        async def partitions_ahead():
            today = dt.datetime.now(dt.timezone.utc).date()
            last = today + dt.timedelta(days=settings.partition_days_ahead - 1)
            return await pool.fetchval("select to_regclass($1) is not null", f"clicks_p{last:%Y%m%d}")

        await wait_for(all_rows)
        await wait_for(links_synced)
        await wait_for(partitions_ahead)
        ingest_task = worker.ctx["click_ingest_task"]
    finally:
        await worker.close()  # what arq runs after SIGTERM: cancel the poller, then on_shutdown
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)

    assert ingest_task.done() and not ingest_task.cancelled()
    assert sorted(await stored_click_ids(pool)) == sorted(r.click_id for r in batch)
    assert await pending_count(redis, keys) == 0


@pytest.mark.slow
async def test_run_worker_in_a_process_ingests_and_stops_on_sigterm(settings, pool, redis, keys):
    batch = make_clicks(40)
    await push(redis, keys, batch[:20])
    env = {**os.environ, "DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url,
           "AFFTOK_REDIS_PREFIX": settings.redis_prefix, "PYTHONPATH": str(REPO_ROOT)}
    code = ("import arq; from core.settings import load_settings; from workers.settings import worker_settings;"
            " arq.run_worker(worker_settings(load_settings()))")
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        await push(redis, keys, batch[20:])

        async def all_rows():
            assert proc.poll() is None, proc.stdout.read().decode()
            return len(await stored_click_ids(pool)) == 40

        await wait_for(all_rows, timeout_s=20)
        proc.send_signal(signal.SIGTERM)
        rc = await asyncio.to_thread(proc.wait, 15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = proc.stdout.read().decode()
    assert rc == 0, output
    assert "Traceback" not in output, output
    assert sorted(await stored_click_ids(pool)) == sorted(r.click_id for r in batch)
    assert await pending_count(redis, keys) == 0
