"""Migration 0013 on a database that already holds clicks and conversions: what was
stored before the rollups existed is counted into them, as the write path would have."""

from __future__ import annotations

import datetime as dt
import secrets
import shutil
import uuid

import asyncpg
import pytest_asyncio

from core.ids import new_click_id
from core.migrate import apply_migrations
from core.settings import REPO_ROOT
from core.store.partitions import ensure_daily_partitions
from tests.conftest import _with_database

TABLES = [f"stats_{cube}_{grain}" for cube in ("offer", "affiliate", "full") for grain in ("15m", "1h", "1d")]
NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


@pytest_asyncio.fixture
async def before_rollups(postgres_admin_url, tmp_path):
    """A database migrated up to 0012, and the path to the full migrations."""
    name = f"afftok_t_bf_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_admin_url)
    await admin.execute(f"create database {name}")
    older = tmp_path / "migrations"
    older.mkdir()
    for path in sorted((REPO_ROOT / "migrations").glob("*.sql")):
        if path.name < "0013":
            shutil.copy(path, older / path.name)
    conn = await asyncpg.connect(_with_database(postgres_admin_url, name))
    try:
        await apply_migrations(conn, older)
        yield conn
    finally:
        await conn.close()
        await admin.execute(f"drop database if exists {name} with (force)")
        await admin.close()


async def _clicks(conn, org, offer, affiliate, link) -> list[str]:
    rows = [  # (minutes ago, ip, user agent, sub1, country, device)
        (30, "198.51.100.1", "A", "spring", "FR", "mobile"),
        (29, "198.51.100.1", "A", "spring", "FR", "mobile"),  # the same visitor again
        (28, "198.51.100.2", "A", "summer", "DE", "desktop"),
        (27, None, None, None, None, None),
    ]
    ids = []
    await ensure_daily_partitions(conn, "clicks", {(NOW - dt.timedelta(minutes=30)).date(), NOW.date()})
    for minutes, ip, user_agent, sub1, country, device in rows:
        at = NOW - dt.timedelta(minutes=minutes)
        click_id = new_click_id(int(at.timestamp() * 1000))
        ids.append(click_id)
        await conn.execute(
            "insert into clicks (click_id, clicked_at, org_id, offer_id, affiliate_id, link_id, outcome, sub1, ip,"
            " user_agent, country, device_type) values ($1, $2, $3, $4, $5, $6, 'redirect', $7, $8::inet, $9, $10,"
            " $11)", click_id, at, org, offer, affiliate, link, sub1, ip, user_agent, country, device)
    return ids


async def _conversion(conn, org, adv, offer, affiliate, click_id, clicked_at, external_id, path, flags=()):
    """A conversion with its history: ``path`` of (from, to, revenue delta, payout delta)."""
    status = path[-1][1]
    conversion = await conn.fetchval(
        "insert into conversions (org_id, advertiser_id, click_id, clicked_at, offer_id, affiliate_id, external_id,"
        " status, fraud_flags, revenue_minor, payout_minor, currency, source, postback_id, received_at)"
        " values ($1, $2, $3, $4, $5, $6, $7, $8, $9, 500, 300, 'USD', 'postback', $10, $11) returning id",
        org, adv, click_id, clicked_at, offer, affiliate, external_id, status, list(flags), new_click_id(0),
        NOW - dt.timedelta(minutes=20))
    for from_status, to_status, revenue, payout in path:
        await conn.execute(
            "insert into conversion_status_history (org_id, conversion_id, from_status, to_status, actor,"
            " revenue_delta_minor, payout_delta_minor, currency) values ($1, $2, $3, $4, 'postback', $5, $6, 'USD')",
            org, conversion, from_status, to_status, revenue, payout)


async def test_the_stored_rows_are_counted_into_every_rollup(before_rollups, postgres_admin_url, tmp_path):
    conn = before_rollups
    org = await conn.fetchval("insert into organizations (name) values ('Org') returning id")
    adv = await conn.fetchval("insert into advertisers (org_id, name) values ($1, 'Adv') returning id", org)
    aff = await conn.fetchval("insert into affiliates (org_id, name) values ($1, 'Aff') returning id", org)
    offer = await conn.fetchval(
        "insert into offers (org_id, advertiser_id, name, destination_url, currency, revenue_minor, payout_minor)"
        " values ($1, $2, 'Offer', 'https://shop.example/?c={click_id}', 'USD', 500, 300) returning id", org, adv)
    link = await conn.fetchval("insert into links (org_id, offer_id, affiliate_id, token) values ($1, $2, $3, $4)"
                               " returning id", org, offer, aff, secrets.token_urlsafe(12))
    clicks = await _clicks(conn, org, offer, aff, link)
    at = {r["click_id"]: r["clicked_at"] for r in await conn.fetch("select click_id, clicked_at from clicks")}
    await _conversion(conn, org, adv, offer, aff, clicks[0], at[clicks[0]], "o-1",
                      [(None, "approved", 500, 300)], flags=["too_fast"])
    await _conversion(conn, org, adv, offer, aff, clicks[2], at[clicks[2]], "o-2",
                      [(None, "approved", 500, 300), ("approved", "reversed", -500, -300)])
    await _conversion(conn, org, adv, offer, aff, clicks[3], at[clicks[3]], "o-3", [(None, "pending", 0, 0)])

    applied = await apply_migrations(conn, REPO_ROOT / "migrations")
    assert applied[0].startswith("0013")

    measures = ("clicks", "unique_clicks", "conversions_pending", "conversions_approved", "conversions_reversed",
                "fraud_flagged", "revenue_minor", "payout_minor")
    sums = [tuple(await conn.fetchrow(f"select {', '.join(f'sum({m})::int' for m in measures)} from {t}"))
            for t in TABLES]
    assert sums == [(4, 3, 1, 1, 1, 1, 500, 300)] * len(TABLES)
    by_sub1 = await conn.fetch("select sub1, sum(clicks)::int as clicks, sum(conversions_approved)::int as approved,"
                               " sum(conversions_reversed)::int as reversed from stats_full_1h group by sub1"
                               " order by sub1 nulls first")
    assert [tuple(r) for r in by_sub1] == [(None, 1, 0, 0), ("spring", 2, 1, 0), ("summer", 1, 0, 1)]
    countries = await conn.fetch("select rtrim(click_country) as c, device_type, sub1 from conversions"
                                 " order by external_id")
    assert [tuple(r) for r in countries] == [("FR", "mobile", "spring"), ("DE", "desktop", "summer"),
                                             (None, None, None)]
    assert await conn.fetchval("select count(*) from click_visitors") == 3
    assert await conn.fetchval("select count(*) from stats_sub1_values") == 2
