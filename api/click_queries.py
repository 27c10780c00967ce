"""Reads of clicks for the API: the filtered list, newest first, scoped by role.

The selection (filters, window, scope, the columns a role sees) is the exports' own
(``core.export_reads.click_selection``), so a page and an export of the same filters
hold the same rows. Paged by the opaque cursor every list uses, on
``(clicked_at, click_id)``.
"""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg

from api.queries import decode_cursor, encode_cursor
from api.schemas import ClickPage, ClickQuery, ClickView
from core.export_reads import click_selection, page_of_clicks
from core.permissions import Scope


async def list_clicks(
    conn: asyncpg.Connection, org_id: uuid.UUID, query: ClickQuery, scope: Scope, now: dt.datetime,
) -> ClickPage:
    selection = click_selection(org_id, query.resolved(now), scope)
    after = decode_cursor(query.cursor, str) if query.cursor is not None else None
    rows = await page_of_clicks(conn, selection, after, query.limit + 1)
    data = [ClickView(**{c: r[c] for c in selection.columns}) for r in rows[: query.limit]]
    more = len(rows) > query.limit
    last = rows[query.limit - 1] if more else None
    return ClickPage(data=data, next_cursor=encode_cursor(last["clicked_ts"], last["click_id"]) if last else None)
