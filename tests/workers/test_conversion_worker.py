"""The conversion consumers inside the arq worker built by ``worker_settings``: a
postback on the stream becomes a conversion, the worker's metrics server reports it,
and shutdown lets the consumers finish."""

from __future__ import annotations

import asyncio

import httpx
import msgspec
import pytest
from arq.worker import Worker

from afftok.servers import free_port
from tests.workers.conversions import conversions, make_world, now_ms, postback, push_postbacks, stored_click
from workers.settings import worker_settings


async def eventually(predicate, timeout_s: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def sample(text: str, line_start: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start))


@pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")  # inside arq
async def test_the_worker_applies_postbacks_and_serves_their_metrics(settings, pool, redis, keys, tmp_path):
    datacenter = tmp_path / "datacenter.txt"
    datacenter.write_text("# operator's list\n198.51.100.0/24\n")
    port = free_port()
    tuned = msgspec.structs.replace(settings, worker_metrics_port=port, conversion_concurrency=2,
                                    datacenter_cidrs_path=str(datacenter))
    world = await make_world(pool, fraud_policy={"datacenter_ip": "reject"})
    clean = await stored_click(pool, world, now_ms() - 60_000, ip="203.0.113.7")
    hosted = await stored_click(pool, world, now_ms() - 60_000, ip="198.51.100.20")
    url = f"http://{settings.host}:{port}/metrics"
    async with httpx.AsyncClient() as http:
        worker = Worker(**worker_settings(tuned), handle_signals=False, poll_delay=0.05)
        run = asyncio.create_task(worker.async_run())
        try:
            before = await eventually_get(http, url)
            await push_postbacks(redis, keys, [postback(world, clean.click_id, "clean"),
                                               postback(world, hosted.click_id, "hosted")])

            async def stored():
                return len(await conversions(pool)) == 2

            await eventually(stored)
            after = (await http.get(url)).text
            tasks = worker.ctx["conversion_ingest_task"], len(worker.ctx["conversion_ingest"])
        finally:
            await worker.close()
            run.cancel()
            await asyncio.gather(run, return_exceptions=True)

    rows = {r["external_id"]: r for r in await conversions(pool)}
    assert (rows["clean"]["status"], rows["hosted"]["status"], rows["hosted"]["reason"]) == (
        "approved", "rejected", "datacenter_ip")  # the operator's list was loaded at start
    task, consumers = tasks
    assert consumers == 2 and task.done() and not task.cancelled()
    approved = 'afftok_conversions_total{reason="",status="approved"}'
    assert sample(after, approved) - sample(before, approved) == 1
    assert sample(after, "afftok_conversion_batches_total") > sample(before, "afftok_conversion_batches_total")
    assert sample(after, "afftok_conversion_lag_seconds_count") - sample(before, "afftok_conversion_lag_seconds_count") == 2
    with pytest.raises(httpx.ConnectError):  # the port is released with the worker
        async with httpx.AsyncClient(timeout=1) as http:
            await http.get(url)


async def eventually_get(http: httpx.AsyncClient, url: str) -> str:
    for _ in range(100):
        try:
            return (await http.get(url)).text
        except httpx.TransportError:
            await asyncio.sleep(0.02)
    raise AssertionError(f"nothing serves {url}")
