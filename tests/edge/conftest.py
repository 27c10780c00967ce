"""Edge fixtures: settings without Postgres (the edge never uses it), a running app."""

from __future__ import annotations

import httpx
import pytest
import pytest_asyncio

from core.models import LinkConfig, click_batch_decoder
from core.settings import load_settings
from core.store.link_configs import publish_links
from edge.app import create_app, running

BASE_URL = "http://edge.test"


@pytest.fixture
def edge_settings(redis_url, redis_prefix, tmp_path):
    return load_settings(
        {}, redis_url=redis_url, redis_prefix=redis_prefix, data_dir=tmp_path / "data",
        spool_fsync=False, spool_replay_interval_ms=100, country_header="cf-ipcountry",
    )


def link(token: str = "tok1", **changes) -> LinkConfig:
    values = dict(
        token=token, link_id="11111111-1111-1111-1111-111111111111",
        org_id="22222222-2222-2222-2222-222222222222", offer_id="33333333-3333-3333-3333-333333333333",
        affiliate_id="44444444-4444-4444-4444-444444444444", offer_status="active", affiliate_status="approved",
        destination_url="https://land.example/offer?cid={click_id}&s1={sub1}&c={country}",
        fallback_url="https://fallback.example/sorry?cid={click_id}",
    )
    return LinkConfig(**{**values, **changes})


@pytest_asyncio.fixture
async def publish(redis, keys):
    async def _publish(*configs: LinkConfig) -> None:
        await publish_links(redis, keys, list(configs))

    return _publish


@pytest_asyncio.fixture
async def edge(edge_settings, redis, keys):
    """A running edge app and an httpx client on it; links published before the start."""
    app = create_app(edge_settings)
    async with running(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
            yield app, client


async def stream_records(redis, stream: str) -> list:
    """Every ClickRecord in ``stream``, in order."""
    records = []
    for _id, fields in await redis.xrange(stream):
        assert fields[b"v"] == b"1"
        records.extend(click_batch_decoder.decode(fields[b"c"]))
    return records


async def wait_for(predicate, timeout_s: float = 5.0, interval_s: float = 0.02):
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        result = await predicate()
        if result or loop.time() > deadline:
            return result
        await asyncio.sleep(interval_s)
