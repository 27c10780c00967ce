"""Writing a seeded network: the catalog rows, the admitted sub1 values, and COPY of raw
and rollup rows. Runs as the owner (migrating) role, which row-level security lets
write any organization; every row carries the seeded organization's id.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Sequence

import asyncpg

from afftok.seed_network import Network
from core.store.api_keys import create_api_key
from core.store.organizations import create_organization
from core.store.stats_rollups import VISITOR_SQL


async def create_seed_organization(conn: asyncpg.Connection, name: str) -> tuple[uuid.UUID, str]:
    """A new organization on the largest plan (seeded volumes are far past a starter's
    monthly events) and an owner key for it; returns (id, key)."""
    org = await create_organization(conn, name, plan="enterprise")
    key = await create_api_key(conn, org.id, "seed owner", "owner")
    return org.id, key.key


async def organization_exists(conn: asyncpg.Connection, org_id: uuid.UUID) -> bool:
    return await conn.fetchval("select exists (select from organizations where id = $1)", org_id)


async def write_catalog(conn: asyncpg.Connection, org_id: uuid.UUID, network: Network, created_at: dt.datetime) -> None:
    """Advertisers, offers, affiliates, approvals and links, created ``created_at`` (one
    second apart, so listings keep the network's order)."""
    def at(i: int) -> dt.datetime:
        return created_at + dt.timedelta(seconds=i)

    await copy(conn, "advertisers", ("id", "org_id", "name", "created_at"),
               [(adv_id, org_id, name, at(i)) for i, (adv_id, name) in enumerate(network.advertisers)])
    await copy(conn, "offers", (
        "id", "org_id", "advertiser_id", "name", "destination_url", "fallback_url", "currency", "revenue_minor",
        "payout_minor", "created_at", "updated_at",
    ), [(o.id, org_id, network.advertisers[o.advertiser][0], o.name, o.destination_url, "https://example.com/sorry",
         o.currency, o.revenue_minor, o.payout_minor, at(i), at(i)) for i, o in enumerate(network.offers)])
    await copy(conn, "affiliates", ("id", "org_id", "name", "email", "created_at"), [
        (a.id, org_id, a.name, f"affiliate{i + 1:04d}@example.com", at(i)) for i, a in enumerate(network.affiliates)])
    offers, affiliates = network.offers, network.affiliates
    await copy(conn, "offer_affiliates", ("org_id", "offer_id", "affiliate_id", "status", "payout_minor",
                                          "created_at", "updated_at"), [
        (org_id, offers[k.offer].id, affiliates[k.affiliate].id, "approved",
         k.payout_minor if k.payout_override else None, at(i), at(i)) for i, k in enumerate(network.links)])
    await copy(conn, "links", ("id", "org_id", "offer_id", "affiliate_id", "token", "created_at"), [
        (k.id, org_id, offers[k.offer].id, affiliates[k.affiliate].id, k.token, at(i))
        for i, k in enumerate(network.links)])


async def write_sub1_values(conn: asyncpg.Connection, org_id: uuid.UUID, network: Network) -> int:
    """Register each offer's admitted sub1 values (what the rollups may name)."""
    rows = [(org_id, offer.id, value) for offer in network.offers for value in sorted(offer.sub1_admitted)]
    await copy(conn, "stats_sub1_values", ("org_id", "offer_id", "sub1"), rows)
    return len(rows)


async def copy(conn: asyncpg.Connection, table: str, columns: Sequence[str], records: Sequence[tuple]) -> int:
    if records:
        await conn.copy_records_to_table(table, columns=list(columns), records=records)
    return len(records)


_MEASURES = ("clicks", "unique_clicks", "conversions_pending", "conversions_approved", "conversions_rejected",
             "conversions_reversed", "fraud_flagged", "revenue_minor", "payout_minor")


async def rebuild_daily_rollups(conn: asyncpg.Connection, org_id: uuid.UUID, dimensions: dict[str, Sequence[str]]) -> dict[str, int]:
    """The organization's daily rows (``stats_<cube>_1d``) summed afresh from its hourly rows,
    which the seed has just completed; returns the rows written per table. Live writers of
    the organization wait on the table locks meanwhile, so nothing is counted twice."""
    written = {}
    for cube, dims in dimensions.items():
        daily, hourly, columns = f"stats_{cube}_1d", f"stats_{cube}_1h", ", ".join(dims)
        await conn.execute(f"lock table {hourly}, {daily} in share row exclusive mode")
        await conn.execute(f"delete from {daily} where org_id = $1", org_id)
        status = await conn.execute(
            f"insert into {daily} (org_id, bucket, {columns}, {', '.join(_MEASURES)})"
            f" select org_id, date_bin(interval '1 day', bucket, timestamptz '1970-01-01 00:00:00+00'), {columns},"
            f" {', '.join(f'sum({m})' for m in _MEASURES)} from {hourly} where org_id = $1"
            f" group by org_id, 2, {columns}", org_id)
        written[daily] = int(status.rsplit(" ", 1)[1])
    return written


async def write_click_visitors(conn: asyncpg.Connection, org_id: uuid.UUID, since: dt.date) -> int:
    """Remember the visitors of the organization's raw clicks since ``since`` (UTC) as the
    live path does (``core.store.stats_rollups``): a visitor's first click per offer and day."""
    status = await conn.execute(
        f"insert into click_visitors (org_id, offer_id, day, visitor, click_id)"
        f" select org_id, offer_id, (clicked_at at time zone 'UTC')::date,"
        f" {VISITOR_SQL.format(ip='ip', user_agent='user_agent')}, min(click_id collate \"C\")"
        f" from clicks where org_id = $1 and clicked_at >= $2::date::timestamp at time zone 'UTC'"
        f" group by 1, 2, 3, 4 order by 1, 3, 2, 4 on conflict do nothing", org_id, since)
    return int(status.rsplit(" ", 1)[1])
