"""Finding, exporting and erasing what is stored about one data subject, in one organization.

Runs on the api's tenant transaction (row-level security applies). Which tables are
searched for which selector is ``core.privacy.SOURCES``; this module holds one query per
(table, selector): clicks (click id, address, user agent, referer, sub ids) and
conversions (their click id, the visitor's address and user agent, the advertiser's
customer id and free-form metadata).

Clicks are partitioned by day. A click id carries its time, so that lookup reads one
partition; an address is found through ``clicks_org_ip_offer_time_idx`` (its leading
``(org_id, ip)``) in every partition.
Erasure is idempotent: a row is counted once, when its personal fields are scrubbed,
and a second erasure finds nothing left to scrub.
"""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg
import msgspec

from core.ids import click_id_time_ms
from core.privacy import ERASED_CLICK_FIELDS, ERASED_CONVERSION_FIELDS, SOURCES, Subject, ip_forms


class StoredClick(msgspec.Struct, frozen=True, kw_only=True):
    """Every column of a stored click (tests hold this to the table's columns)."""

    click_id: str
    clicked_at: dt.datetime
    org_id: uuid.UUID
    offer_id: uuid.UUID
    affiliate_id: uuid.UUID
    link_id: uuid.UUID
    outcome: str
    sub1: str | None
    sub2: str | None
    sub3: str | None
    sub4: str | None
    sub5: str | None
    source_id: str | None
    ip: str | None
    user_agent: str | None
    referer: str | None
    country: str | None
    device_type: str | None
    ingested_at: dt.datetime


class StoredConversion(msgspec.Struct, frozen=True, kw_only=True):
    """What a conversion holds about the person behind it, with what identifies the row."""

    id: uuid.UUID
    created_at: dt.datetime
    advertiser_id: uuid.UUID
    offer_id: uuid.UUID | None
    affiliate_id: uuid.UUID | None
    click_id: str | None
    external_id: str
    goal: str | None
    status: str
    sale_amount_minor: int | None
    sale_currency: str | None
    product_id: str | None
    order_id: str | None
    customer_id: str | None
    metadata: dict | None
    ip: str | None
    user_agent: str | None
    country: str | None
    source: str


class SubjectExport(msgspec.Struct, frozen=True, kw_only=True):
    subject: Subject
    generated_at: dt.datetime
    sources: list[str]  # every table searched for this selector
    clicks: list[StoredClick]
    conversions: list[StoredConversion]


class SubjectErasure(msgspec.Struct, frozen=True, kw_only=True):
    subject: Subject
    erased_at: dt.datetime
    sources: list[str]
    clicks_scrubbed: int  # rows whose personal fields this request cleared
    conversions_scrubbed: int


_CLICK_COLUMNS = ", ".join("host(ip) as ip" if f == "ip" else f for f in StoredClick.__struct_fields__)


def _click_match(subject: Subject) -> tuple[str, list]:
    """The clicks condition (after ``org_id = $1``) and its arguments, from ``$2`` on."""
    if subject.kind == "click_id":
        at = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(milliseconds=click_id_time_ms(subject.value))
        # clicked_at is the id's own instant: the range lets the planner read one partition.
        return "click_id = $2 and clicked_at >= $3 and clicked_at < $4", [
            subject.value, at, at + dt.timedelta(milliseconds=1)]
    if subject.kind == "ip":
        return "ip = any($2::inet[])", [ip_forms(subject.value)]
    raise AssertionError(f"clicks hold no {subject.kind}")


_CONVERSION_COLUMNS = ", ".join(
    "host(ip) as ip" if f == "ip" else f for f in StoredConversion.__struct_fields__)


def _conversion_match(subject: Subject) -> tuple[str, list]:
    """The conversions condition (after ``org_id = $1``) and its argument ``$2``."""
    if subject.kind == "click_id":
        return "click_id = $2", [subject.value]  # conversions_org_click_idx
    if subject.kind == "ip":
        return "ip = any($2::inet[])", [ip_forms(subject.value)]
    if subject.kind == "customer_id":
        return "customer_id = $2", [subject.value]  # conversions_customer_idx
    raise AssertionError(f"conversions hold no {subject.kind}")


async def find_subject_conversions(
    conn: asyncpg.Connection, org_id: uuid.UUID, subject: Subject,
) -> list[StoredConversion]:
    if "conversions" not in SOURCES[subject.kind]:
        return []
    condition, args = _conversion_match(subject)
    rows = await conn.fetch(
        f"select {_CONVERSION_COLUMNS} from conversions where org_id = $1 and {condition} order by created_at, id",
        org_id, *args,
    )
    return [StoredConversion(**dict(r)) for r in rows]


async def find_subject_clicks(conn: asyncpg.Connection, org_id: uuid.UUID, subject: Subject) -> list[StoredClick]:
    if "clicks" not in SOURCES[subject.kind]:
        return []
    condition, args = _click_match(subject)
    rows = await conn.fetch(
        f"select {_CLICK_COLUMNS} from clicks where org_id = $1 and {condition} order by clicked_at, click_id",
        org_id, *args,
    )
    return [StoredClick(**dict(r)) for r in rows]


async def export_subject(conn: asyncpg.Connection, org_id: uuid.UUID, subject: Subject, now: dt.datetime) -> SubjectExport:
    """Everything ``org_id`` stores about ``subject``, from every table in ``SOURCES``."""
    return SubjectExport(
        subject=subject, generated_at=now, sources=list(SOURCES[subject.kind]),
        clicks=await find_subject_clicks(conn, org_id, subject),
        conversions=await find_subject_conversions(conn, org_id, subject),
    )


async def erase_subject(conn: asyncpg.Connection, org_id: uuid.UUID, subject: Subject, now: dt.datetime) -> SubjectErasure:
    """Scrub ``subject``'s personal fields in every table in ``SOURCES``; rows and counts stay."""
    scrubbed = 0
    if "clicks" in SOURCES[subject.kind]:
        condition, args = _click_match(subject)
        assignments = ", ".join(f"{f} = null" for f in ERASED_CLICK_FIELDS)
        anything_left = " or ".join(f"{f} is not null" for f in ERASED_CLICK_FIELDS)
        status = await conn.execute(
            f"update clicks set {assignments} where org_id = $1 and {condition} and ({anything_left})",
            org_id, *args,
        )
        scrubbed = int(status.rsplit(" ", 1)[1])
    conversions = 0
    if "conversions" in SOURCES[subject.kind]:
        condition, args = _conversion_match(subject)
        assignments = ", ".join(f"{f} = null" for f in ERASED_CONVERSION_FIELDS)
        anything_left = " or ".join(f"{f} is not null" for f in ERASED_CONVERSION_FIELDS)
        status = await conn.execute(
            f"update conversions set {assignments}, updated_at = now()"
            f" where org_id = $1 and {condition} and ({anything_left})",
            org_id, *args,
        )
        conversions = int(status.rsplit(" ", 1)[1])
    return SubjectErasure(
        subject=subject, erased_at=now, sources=list(SOURCES[subject.kind]), clicks_scrubbed=scrubbed,
        conversions_scrubbed=conversions,
    )
