"""core.store.clicks.insert_clicks: new rows counted per org and month, duplicates skipped."""

import datetime as dt
import uuid

from core.store.clicks import insert_clicks, per_org_month
from tests.workers.clicks import make_click

JAN_31 = int(dt.datetime(2026, 1, 31, 23, 59, tzinfo=dt.timezone.utc).timestamp() * 1000)
FEB_1 = int(dt.datetime(2026, 2, 1, 0, 1, tzinfo=dt.timezone.utc).timestamp() * 1000)


async def test_a_batch_mixing_new_and_seen_clicks_inserts_and_counts_only_the_new(pool):
    org = str(uuid.uuid4())
    seen = [make_click(JAN_31, org_id=org) for _ in range(3)]
    new = [make_click(JAN_31, org_id=org), make_click(FEB_1, org_id=org)]
    async with pool.acquire() as conn:
        first = await insert_clicks(conn, seen)
        second = await insert_clicks(conn, seen[:2] + new + new[:1])  # repeats inside the batch too
    month = lambda d: (uuid.UUID(org), d)  # noqa: E731
    assert per_org_month(first) == {month(dt.date(2026, 1, 1)): 3}
    assert per_org_month(second) == {month(dt.date(2026, 1, 1)): 1, month(dt.date(2026, 2, 1)): 1}
    ids = [r["click_id"] for r in await pool.fetch("select click_id from clicks order by click_id")]
    assert sorted(ids) == sorted(c.click_id for c in seen + new)


async def test_inside_a_callers_transaction_the_savepoint_keeps_earlier_work(pool):
    clicks = [make_click() for _ in range(2)]
    async with pool.acquire() as conn, conn.transaction():
        await insert_clicks(conn, clicks[:1])
        counts = await insert_clicks(conn, clicks)  # one duplicate: the idempotent path runs
    assert sum(c.clicks for c in counts) == 1
    assert await pool.fetchval("select count(*) from clicks") == 2
