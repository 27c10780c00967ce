"""Retention planning (pure, today injected) and the organization's data settings."""

import datetime as dt
import uuid

import asyncpg
import pytest

from core.errors import NotFound, ValidationError
from core.retention import OrgCutoff, OrgRetention, day_start, plan_retention
from core.store.organizations import create_organization, get_org_data_settings, update_org_data_settings

TODAY = dt.date(2030, 6, 15)
DAYS = [200, 102, 101, 100, 95, 91, 90, 40, 31, 30, 10, 1, 0, -1, -6]  # days ago; negative: ahead
A, B, C = "aaaaaaaa-0000-0000-0000-000000000000", "bbbbbbbb-0000-0000-0000-000000000000", "cccccccc-0000-0000-0000-000000000000"


def ago(days: int) -> dt.date:
    return TODAY - dt.timedelta(days=days)


def at(days: int, hour: int = 0, ms: int = 0) -> dt.datetime:
    return day_start(ago(days)) + dt.timedelta(hours=hour, milliseconds=ms)


def org(org_id: str, clicks_days: int, conversions_days: int = 730) -> OrgRetention:
    return OrgRetention(org_id, clicks_days, conversions_days)


@pytest.mark.parametrize(
    ("orgs", "oldest_unprocessed", "dropped", "held", "cutoffs"),
    [
        pytest.param([], None, [], [], [], id="no organization: nothing to apply"),
        pytest.param([org(A, 90)], None, [200, 102, 101, 100, 95, 91], [], [], id="one org: past 90 days dropped"),
        pytest.param(
            [org(A, 90), org(B, 40)], None, [200, 102, 101, 100, 95, 91], [], [(B, 40)],
            id="the longest retention drops; the shorter one deletes",
        ),
        pytest.param(
            [org(B, 40), org(C, 30)], None, [200, 102, 101, 100, 95, 91, 90], [], [(C, 30)],
            id="longest is 40",
        ),
        pytest.param([org(A, 5)], None, [200, 102, 101, 100, 95, 91, 90, 40, 31], [], [], id="never inside the 30-day floor"),
        pytest.param([org(A, 730), org(B, 90)], None, [], [], [(B, 90)], id="nothing is old enough"),
        pytest.param(
            [org(A, 90)], at(100, hour=12), [200, 102], [101, 100, 95, 91], [],
            id="a stream entry from 100 days ago holds its day and a day before (slack)",
        ),
        pytest.param(
            # 100 days ago 00:00 less the slack is the end of the day 102 days ago.
            [org(A, 90)], at(100), [200], [102, 101, 100, 95, 91], [], id="held from exactly a partition's end",
        ),
        pytest.param(
            [org(A, 90)], at(100, ms=1), [200, 102], [101, 100, 95, 91], [], id="one ms later that one goes",
        ),
        pytest.param([org(A, 90)], at(0, hour=3), [200, 102, 101, 100, 95, 91], [], [], id="a recent entry holds nothing old"),
    ],
)
def test_plan(orgs, oldest_unprocessed, dropped, held, cutoffs):
    plan = plan_retention(TODAY, {ago(n) for n in DAYS}, orgs, oldest_unprocessed)

    assert plan.drop_click_days == sorted(ago(n) for n in dropped)
    assert plan.held_click_days == sorted(ago(n) for n in held)
    assert plan.click_cutoffs == [OrgCutoff(org_id, at(days)) for org_id, days in cutoffs]


def test_a_partition_is_dropped_only_when_wholly_past_retention_and_never_today():
    plan = plan_retention(TODAY, {ago(91), ago(90), ago(0)}, [org(A, 30)], None)
    assert plan.drop_click_days == [ago(91), ago(90)]
    plan = plan_retention(TODAY, {ago(31), ago(30)}, [org(A, 30)], None)
    assert plan.drop_click_days == [ago(31)]  # day 30 ago ends after the cutoff: kept


def test_every_organization_gets_a_conversions_cutoff_within_bounds():
    plan = plan_retention(TODAY, set(), [org(B, 90, 400), org(A, 90, 100)], None)
    assert plan.conversion_cutoffs == [OrgCutoff(A, at(365)), OrgCutoff(B, at(400))]


async def test_new_organizations_get_the_default_data_settings(pool):
    async with pool.acquire() as conn:
        created = await create_organization(conn, "Acme")
        settings = await get_org_data_settings(conn, created.id)
    assert (settings.org_id, settings.ip_truncate) == (created.id, False)
    assert (settings.clicks_retention_days, settings.conversions_retention_days) == (90, 730)


async def test_update_changes_only_what_is_given(pool):
    async with pool.acquire() as conn:
        created = await create_organization(conn, "Acme")
        first = await update_org_data_settings(conn, created.id, ip_truncate=True)
        second = await update_org_data_settings(conn, created.id, clicks_retention_days=30, conversions_retention_days=3650)
        third = await update_org_data_settings(conn, created.id, clicks_retention_days=730, conversions_retention_days=365)
        unchanged = await update_org_data_settings(conn, created.id)
    assert (first.ip_truncate, first.clicks_retention_days, first.conversions_retention_days) == (True, 90, 730)
    assert (second.ip_truncate, second.clicks_retention_days, second.conversions_retention_days) == (True, 30, 3650)
    assert (third.clicks_retention_days, third.conversions_retention_days) == (730, 365)
    assert unchanged == third


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"clicks_retention_days": 29}, "invalid_clicks_retention_days"),
        ({"clicks_retention_days": 731}, "invalid_clicks_retention_days"),
        ({"clicks_retention_days": 0}, "invalid_clicks_retention_days"),
        ({"clicks_retention_days": 90.0}, "invalid_clicks_retention_days"),
        ({"clicks_retention_days": "90"}, "invalid_clicks_retention_days"),
        ({"clicks_retention_days": True}, "invalid_clicks_retention_days"),
        ({"conversions_retention_days": 364}, "invalid_conversions_retention_days"),
        ({"conversions_retention_days": 3651}, "invalid_conversions_retention_days"),
        ({"ip_truncate": 1}, "invalid_ip_truncate"),
        ({"ip_truncate": "yes"}, "invalid_ip_truncate"),
        ({"ip_truncate": True, "clicks_retention_days": 10}, "invalid_clicks_retention_days"),
    ],
)
async def test_bad_values_are_refused_and_nothing_changes(pool, changes, code):
    async with pool.acquire() as conn:
        created = await create_organization(conn, "Acme")
        before = await get_org_data_settings(conn, created.id)
        with pytest.raises(ValidationError) as raised:
            await update_org_data_settings(conn, created.id, **changes)
        assert raised.value.code == code
        assert await get_org_data_settings(conn, created.id) == before


async def test_a_missing_organization_is_not_found(pool):
    async with pool.acquire() as conn:
        with pytest.raises(NotFound):
            await update_org_data_settings(conn, uuid.uuid4(), ip_truncate=True)
        with pytest.raises(NotFound):
            await get_org_data_settings(conn, uuid.uuid4())


async def test_another_tenants_organization_is_not_found_under_row_level_security(pool):
    async with pool.acquire() as conn:
        mine = await create_organization(conn, "Mine")
        theirs = await create_organization(conn, "Theirs")
        async with conn.transaction():
            await conn.execute("set local role afftok_app")
            await conn.execute("select set_config('afftok.org_id', $1, true)", str(mine.id))
            assert (await update_org_data_settings(conn, mine.id, clicks_retention_days=45)).clicks_retention_days == 45
            with pytest.raises(NotFound):
                await update_org_data_settings(conn, theirs.id, clicks_retention_days=45)
        assert (await get_org_data_settings(conn, theirs.id)).clicks_retention_days == 90


@pytest.mark.parametrize(
    "assignment",
    ["clicks_retention_days = 29", "clicks_retention_days = 731", "conversions_retention_days = 364",
     "conversions_retention_days = 3651", "ip_truncate = null"],
)
async def test_the_database_enforces_the_bounds_too(pool, assignment):
    async with pool.acquire() as conn:
        created = await create_organization(conn, "Acme")
        with pytest.raises((asyncpg.CheckViolationError, asyncpg.NotNullViolationError)):
            await conn.execute(f"update organizations set {assignment} where id = $1", created.id)
