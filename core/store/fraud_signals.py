"""The facts fraud rules need about one conversion, read from Postgres (``core.fraud_rules``).

Counts are read only when the offer's policy turns their rule on:

- click flooding: clicks of the same organization and offer from the visitor's address
  in the minute up to the click (``clicks_org_ip_idx``; the time range keeps the scan to
  one or two daily partitions);
- repeated conversions: the organization's earlier conversions on the offer from that
  address (``conversions_offer_ip_idx``). Conversions written earlier in the same batch
  are visible: the batch is one transaction.

The visitor is the click's address and user agent (the pixel's browser when the
conversion came through the pixel); the conversion's country is the pixel browser's or
the one the advertiser sent.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from pathlib import Path

import asyncpg

from core.fraud_rules import CidrList, ConversionSignals, FraudPolicy

log = logging.getLogger(__name__)

_CLICKS_FROM_IP = """
select count(*) from clicks
where org_id = $1 and ip = $3::inet and offer_id = $2 and clicked_at > $4::timestamptz - interval '1 minute' and clicked_at <= $4::timestamptz
"""
_CONVERSIONS_FROM_IP = "select count(*) from conversions where org_id = $1 and offer_id = $2 and ip = $3::inet"


async def gather_signals(
    conn: asyncpg.Connection, policy: FraudPolicy, *, org_id: uuid.UUID, offer_id: uuid.UUID,
    clicked_at: dt.datetime | None, converted_at: dt.datetime, ip: str | None, user_agent: str | None,
    click_country: str | None, conversion_country: str | None,
) -> ConversionSignals:
    clicks = earlier = None
    if ip and policy.click_flood_max_per_minute is not None and clicked_at is not None:
        clicks = await conn.fetchval(_CLICKS_FROM_IP, org_id, offer_id, ip, clicked_at)
    if ip and policy.repeat_ip_max_earlier is not None:
        earlier = await conn.fetchval(_CONVERSIONS_FROM_IP, org_id, offer_id, ip)
    return ConversionSignals(
        converted_at=converted_at, clicked_at=clicked_at, user_agent=user_agent, ip=ip, click_country=click_country,
        conversion_country=conversion_country, clicks_from_ip_last_minute=clicks, earlier_conversions_from_ip=earlier,
    )


def load_datacenter_ranges(path: str) -> CidrList | None:
    """The operator's datacenter/proxy ranges (one CIDR per line), or None when not set."""
    if not path:
        return None
    ranges = CidrList.parse(Path(path).read_text())
    log.info("loaded %d IPv4 and %d IPv6 datacenter ranges from %s", len(ranges.v4), len(ranges.v6), path)
    return ranges
