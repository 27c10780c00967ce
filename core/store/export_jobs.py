"""Export jobs (``export_jobs``, migrations/0014): created by the api, run by the worker.

``create_export_job`` runs in the caller's tenant transaction; the rest are the
worker's, as the owner role, one short transaction each so progress is visible while
the file is written. ``find_export_job`` is the api's read: a job is found only by a
caller of the same organization and the same scope as the key that asked for it (an
organization-wide export never reaches an affiliate, nor one affiliate's another's).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import asyncpg
import msgspec

from core.exports import ExportRequest
from core.permissions import Scope

EXPORT_RETENTION = dt.timedelta(days=7)
COLUMNS = (
    "id, org_id, kind, format, request, advertiser_id, affiliate_id, actor, status, rows_written, rows_total,"
    " bytes_written, error, created_at, started_at, finished_at, expires_at"
)


class ExportJob(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    org_id: uuid.UUID
    kind: str
    format: str
    request: dict[str, Any]
    advertiser_id: uuid.UUID | None
    affiliate_id: uuid.UUID | None
    actor: str
    status: str  # queued | running | done | failed
    rows_written: int
    rows_total: int | None  # counted when the job starts
    bytes_written: int
    error: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    expires_at: dt.datetime

    @property
    def scope(self) -> Scope:
        return Scope(advertiser_id=self.advertiser_id, affiliate_id=self.affiliate_id)

    @property
    def export_request(self) -> ExportRequest:
        return msgspec.convert(self.request, ExportRequest)

    @property
    def file_name(self) -> str:
        return f"{self.id}.{self.format}"


def _job(row: asyncpg.Record | None) -> ExportJob | None:
    return None if row is None else ExportJob(**dict(row))


async def create_export_job(
    conn: asyncpg.Connection, *, org_id: uuid.UUID, request: ExportRequest, scope: Scope, actor: str,
    now: dt.datetime,
) -> ExportJob:
    row = await conn.fetchrow(
        f"insert into export_jobs (id, org_id, kind, format, request, advertiser_id, affiliate_id, actor,"
        f" created_at, expires_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) returning {COLUMNS}",
        uuid.uuid4(), org_id, request.kind, request.format, msgspec.to_builtins(request), scope.advertiser_id,
        scope.affiliate_id, actor, now, now + EXPORT_RETENTION,
    )
    return ExportJob(**dict(row))


async def find_export_job(conn: asyncpg.Connection, org_id: uuid.UUID, job_id: uuid.UUID, scope: Scope) -> ExportJob | None:
    return _job(await conn.fetchrow(
        f"select {COLUMNS} from export_jobs where org_id = $1 and id = $2"
        " and advertiser_id is not distinct from $3 and affiliate_id is not distinct from $4",
        org_id, job_id, scope.advertiser_id, scope.affiliate_id,
    ))


async def load_export_job(conn: asyncpg.Connection, job_id: uuid.UUID) -> ExportJob | None:
    return _job(await conn.fetchrow(f"select {COLUMNS} from export_jobs where id = $1", job_id))


async def start_export_job(conn: asyncpg.Connection, job_id: uuid.UUID, rows_total: int, now: dt.datetime) -> None:
    await conn.execute(
        "update export_jobs set status = 'running', rows_total = $2, rows_written = 0, bytes_written = 0,"
        " error = null, started_at = $3, finished_at = null where id = $1",
        job_id, rows_total, now,
    )


async def record_progress(conn: asyncpg.Connection, job_id: uuid.UUID, rows_written: int, bytes_written: int) -> None:
    await conn.execute(
        "update export_jobs set rows_written = $2, bytes_written = $3 where id = $1", job_id, rows_written, bytes_written,
    )


async def finish_export_job(
    conn: asyncpg.Connection, job_id: uuid.UUID, *, rows_written: int, bytes_written: int, error: str | None,
    now: dt.datetime,
) -> None:
    await conn.execute(
        "update export_jobs set status = $2, rows_written = $3, bytes_written = $4, error = $5, finished_at = $6"
        " where id = $1",
        job_id, "failed" if error else "done", rows_written, bytes_written, error, now,
    )


async def delete_expired_export_jobs(conn: asyncpg.Connection, now: dt.datetime, limit_rows: int) -> list[ExportJob]:
    """Delete up to ``limit_rows`` jobs past ``expires_at``; return them (their files go next)."""
    rows = await conn.fetch(
        f"delete from export_jobs where id in (select id from export_jobs where expires_at <= $1 order by expires_at"
        f" limit $2) returning {COLUMNS}", now, limit_rows,
    )
    return [ExportJob(**dict(r)) for r in rows]
