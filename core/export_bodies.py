"""An export's bytes: the selection of a request, then its file a chunk at a time.

``select_export`` checks everything first (filters, window, what the role may filter
by) so a bad request is refused before a byte is sent; ``export_chunks`` then yields the
header and one encoded chunk per fetched chunk of rows, with the rows it holds, so the
api streams it and the worker writes it and counts progress, in constant memory.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, AsyncIterator

import asyncpg

from core.export_format import ExportFormat, RowEncoder
from core.export_reads import CHUNK_ROWS, Selection, click_selection, conversion_selection, stream_rows
from core.exports import ClickFilters, ConversionFilters, convert_filters
from core.errors import ValidationError
from core.permissions import Scope


def resolve_filters(kind: str, params: dict[str, Any], now: dt.datetime) -> ClickFilters | ConversionFilters:
    """``params`` as the kind's filters, the clicks window fixed from ``now``."""
    if kind == "clicks":
        return convert_filters(ClickFilters, params).resolved(now)
    if kind == "conversions":
        return convert_filters(ConversionFilters, params).resolved(now)
    raise ValidationError("unknown_export_kind", f"no export of {kind!r}; exports: clicks, conversions")


def select_export(
    kind: str, org_id: uuid.UUID, params: dict[str, Any], scope: Scope, now: dt.datetime, fmt: ExportFormat,
) -> Selection:
    filters = resolve_filters(kind, params, now)
    if isinstance(filters, ClickFilters):
        return click_selection(org_id, filters, scope, fmt)
    return conversion_selection(org_id, filters, scope, fmt)


async def export_chunks(
    conn: asyncpg.Connection, selection: Selection, fmt: ExportFormat, chunk_rows: int = CHUNK_ROWS,
) -> AsyncIterator[tuple[bytes, int]]:
    """(bytes, rows in them): the header first (0 rows), then each chunk; ``conn`` in a transaction."""
    encoder = RowEncoder(fmt, selection.columns)
    if header := encoder.header():
        yield header, 0
    async for rows in stream_rows(conn, selection, chunk_rows):
        yield encoder.rows(rows), len(rows)
