import asyncio

import redis.asyncio as aioredis

from afftok.servers import free_port
from core.ids import new_click_id
from core.models import ClickRecord
from edge.committer import GroupCommitter
from edge.metrics import EdgeMetrics
from edge.spool import Spool
from tests.edge.conftest import stream_records


def record(i: int) -> ClickRecord:
    return ClickRecord(new_click_id(1_700_000_000_000 + i), 1_700_000_000_000 + i, "o", "of", "a", "l", "redirect")


async def test_a_large_batch_is_split_into_entries_of_batch_max(redis, keys, tmp_path):
    metrics = EdgeMetrics()
    committer = GroupCommitter(redis, keys.click_stream(0), Spool(tmp_path, fsync=False), metrics,
                               batch_max=10, write_timeout_s=1.0, redis_retry_after_s=1.0)
    records = [record(i) for i in range(35)]
    await asyncio.gather(*(committer.append(r) for r in records))
    entries = await redis.xrange(keys.click_stream(0))
    assert len(entries) == 4
    assert [r.click_id for r in await stream_records(redis, keys.click_stream(0))] == [r.click_id for r in records]
    assert (metrics.spooled, metrics.lost) == (0, 0)


async def test_when_redis_and_the_spool_both_fail_the_clicks_are_counted_lost(tmp_path):
    unreachable = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.2)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    metrics = EdgeMetrics()
    committer = GroupCommitter(unreachable, "s", Spool(blocker / "spool", fsync=False), metrics,
                               batch_max=100, write_timeout_s=0.2, redis_retry_after_s=1.0)
    await asyncio.wait_for(asyncio.gather(*(committer.append(record(i)) for i in range(5))), 5)
    assert (metrics.spooled, metrics.lost) == (0, 5)
    await unreachable.aclose()
