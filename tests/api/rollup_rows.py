"""Rollup rows written straight into the stats_* tables, the same numbers into every cube
and grain (as the rollup writer leaves them), for stats tests that need exact shapes."""

from __future__ import annotations

import datetime as dt
import uuid

import msgspec

CUBE_DIMENSIONS = {
    "offer": ("offer_id", "advertiser_id", "currency"),
    "affiliate": ("offer_id", "advertiser_id", "affiliate_id", "goal_key", "currency"),
    "full": ("offer_id", "advertiser_id", "affiliate_id", "goal_key", "country", "device", "sub1", "currency"),
}
MEASURES = ("clicks", "unique_clicks", "conversions_pending", "conversions_approved", "conversions_rejected",
            "conversions_reversed", "fraud_flagged", "revenue_minor", "payout_minor")


class Fact(msgspec.Struct, kw_only=True):
    """Counts at one instant and one set of dimensions."""

    at: dt.datetime
    advertiser_id: str
    offer_id: str | None = None
    affiliate_id: str | None = None
    goal_key: str = ""
    country: str | None = None
    device: str | None = None
    sub1: str | None = None
    currency: str | None = None
    clicks: int = 0
    unique_clicks: int = 0
    conversions_pending: int = 0
    conversions_approved: int = 0
    conversions_rejected: int = 0
    conversions_reversed: int = 0
    fraud_flagged: int = 0
    revenue_minor: int = 0
    payout_minor: int = 0


def _floor(at: dt.datetime, seconds: int) -> dt.datetime:
    epoch = int(at.timestamp())
    return dt.datetime.fromtimestamp(epoch - epoch % seconds, dt.timezone.utc)


async def add_facts(pool, org_id: str, facts: list[Fact]) -> None:
    async with pool.acquire() as conn, conn.transaction():
        for fact in facts:
            for cube, dims in CUBE_DIMENSIONS.items():
                for grain, seconds in (("15m", 900), ("1h", 3600), ("1d", 86400)):
                    columns = ("org_id", "bucket") + dims + MEASURES
                    values = [uuid.UUID(org_id), _floor(fact.at, seconds)]
                    values += [_typed(c, getattr(fact, c)) for c in dims + MEASURES]
                    placeholders = ", ".join(f"${i + 1}" for i in range(len(columns)))
                    updates = ", ".join(f"{m} = t.{m} + excluded.{m}" for m in MEASURES)
                    await conn.execute(
                        f"insert into stats_{cube}_{grain} as t ({', '.join(columns)}) values ({placeholders})"
                        f" on conflict (org_id, bucket, {', '.join(dims)}) do update set {updates}", *values,
                    )


def _typed(column: str, value):
    return uuid.UUID(value) if column.endswith("_id") and value is not None else value
