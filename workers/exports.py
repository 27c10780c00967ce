"""Background exports: the arq job behind ``POST /v1/exports``, and their expiry.

``run_export_job(ctx, job_id)`` writes the job's rows to ``<export_dir>/<id>.<format>``.
What it guarantees, run any number of times: the rows are read in one repeatable-read
snapshot (``rows_total`` is counted in it, so the last progress equals the total), the
file is written under a temporary name and renamed when complete, so a reader never
sees half a file and a second run replaces it with the same content (the request's
window was fixed when the job was created). A job already ``done`` whose file exists is
left alone. Progress (``rows_written``, ``bytes_written``) is committed at most every
``PROGRESS_INTERVAL_S`` while it runs; a failure is recorded as ``failed`` with its
error, and the temporary file removed.

``expire_exports_job`` (hourly) deletes the jobs past ``expires_at`` and their files.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
import uuid
from pathlib import Path

import asyncpg

from core.errors import AfftokError
from core.export_bodies import export_chunks, select_export
from core.export_reads import count_rows
from core.settings import Settings
from core.store.export_jobs import (
    ExportJob, delete_expired_export_jobs, finish_export_job, load_export_job, record_progress, start_export_job,
)

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 0.5
EXPIRE_BATCH_ROWS = 1000


async def run_export(
    pool: asyncpg.Pool, export_dir: Path, job_id: uuid.UUID, *, now: dt.datetime,
) -> ExportJob | None:
    """Run one export job (see the module docstring); return it as it ends, None if it is gone."""
    async with pool.acquire() as conn:
        job = await load_export_job(conn, job_id)
    if job is None:
        return None
    final = export_dir / job.file_name
    if job.status == "done" and final.is_file():
        return job
    export_dir.mkdir(parents=True, exist_ok=True)
    temp = export_dir / f".{job.file_name}.{os.getpid()}.tmp"
    rows = size = 0
    error: str | None = None
    try:
        selection = select_export(
            job.kind, job.org_id, job.export_request.filters, job.scope, job.created_at, job.format,
        )
        async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            total = await count_rows(conn, selection)
            async with pool.acquire() as progress:
                await start_export_job(progress, job.id, total, now)
                rows, size = await _write(conn, progress, job, selection, temp)
        os.replace(temp, final)
    except (AfftokError, asyncpg.PostgresError, OSError) as exc:
        error = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        log.warning("export %s failed: %s", job.id, error)
        temp.unlink(missing_ok=True)
    async with pool.acquire() as conn:
        await finish_export_job(conn, job.id, rows_written=rows, bytes_written=size, error=error, now=_utc_now())
        return await load_export_job(conn, job.id)


async def _write(
    conn: asyncpg.Connection, progress: asyncpg.Connection, job: ExportJob, selection, temp: Path,
) -> tuple[int, int]:
    rows = size = 0
    reported = time.monotonic()
    with open(temp, "wb") as out:
        async for chunk, count in export_chunks(conn, selection, job.format):
            out.write(chunk)
            rows += count
            size += len(chunk)
            if time.monotonic() - reported >= PROGRESS_INTERVAL_S:
                await record_progress(progress, job.id, rows, size)
                reported = time.monotonic()
        out.flush()
        os.fsync(out.fileno())
    return rows, size


async def expire_exports(pool: asyncpg.Pool, export_dir: Path, *, now: dt.datetime) -> int:
    """Delete every job past ``expires_at`` and its file; return how many."""
    expired = 0
    while True:
        async with pool.acquire() as conn:
            jobs = await delete_expired_export_jobs(conn, now, EXPIRE_BATCH_ROWS)
        for job in jobs:
            (export_dir / job.file_name).unlink(missing_ok=True)
        expired += len(jobs)
        if len(jobs) < EXPIRE_BATCH_ROWS:
            return expired


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


async def run_export_job(ctx: dict, job_id: str) -> str | None:
    settings: Settings = ctx["settings"]
    job = await run_export(ctx["pool"], settings.export_path, uuid.UUID(job_id), now=ctx.get("now", _utc_now)())
    return None if job is None else job.status


async def expire_exports_job(ctx: dict) -> int:
    settings: Settings = ctx["settings"]
    return await expire_exports(ctx["pool"], settings.export_path, now=ctx.get("now", _utc_now)())
