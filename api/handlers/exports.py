"""/v1/exports: streamed exports, and background jobs for large ones.

``GET /v1/exports/{kind}.{format}`` streams at once (``api.export_responses``).
``POST /v1/exports`` checks the request as the stream would, stores a job and queues
it for the worker (``workers.exports``); ``GET /v1/exports/{id}`` shows its progress and
``/download`` serves the file once done (409 ``not_ready`` before). A job is seen only by
callers of its organization with the scope of the key that asked for it; any other id
reads as missing. Each kind also needs its own read action (``clicks:read``, …).
"""

from __future__ import annotations

import datetime as dt

import msgspec
from arq.connections import ArqRedis
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response

from api.audit import audited
from api.auth import principal
from api.bodies import path_id, read_json
from api.errors import PublishFailed
from api.export_responses import file_export, stream_export
from api.resources import resources, tenant_transaction
from api.responses import json_response
from api.schemas import ExportJobOut
from core.errors import Conflict, NotFound
from core.export_bodies import resolve_filters, select_export
from core.export_format import FORMATS
from core.exports import EXPORT_JOB_FUNCTION, KINDS, ExportRequest
from core.permissions import authorize
from core.store.export_jobs import ExportJob, create_export_job, find_export_job


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


async def stream(request: Request) -> Response:
    kind, fmt = request.path_params["kind"], request.path_params["format"]
    if kind not in KINDS or fmt not in FORMATS:
        raise NotFound("unknown_export", f"no export {kind}.{fmt}; kinds: {', '.join(KINDS)}; formats: csv, jsonl")
    who = principal(request)
    now = _now()
    selection = select_export(kind, who.org_id, dict(request.query_params), who.scope, now, fmt)
    authorize(who, f"{kind}:read")
    return stream_export(resources(request), who.org_id, selection, fmt, f"{kind}-{now:%Y%m%dT%H%M%SZ}.{fmt}")


async def create(request: Request) -> Response:
    body = await read_json(request, ExportRequest)
    who = principal(request)
    filters = resolve_filters(body.kind, body.filters, _now())
    authorize(who, f"{body.kind}:read")
    request_kept = msgspec.structs.replace(body, filters=msgspec.to_builtins(filters))
    res = resources(request)
    async with audited(request, "export_job") as (conn, audit):
        job = await create_export_job(
            conn, org_id=who.org_id, request=request_kept, scope=who.scope, actor=f"{who.actor_type}:{who.actor_id}",
            now=_now(),
        )
        audit.target_id, audit.after = job.id, _out(job)
    try:
        queue = ArqRedis(connection_pool=res.redis.connection_pool)
        await queue.enqueue_job(EXPORT_JOB_FUNCTION, str(job.id), _job_id=f"export:{job.id}",
                                _queue_name=res.keys.arq_queue)
    except (RedisError, OSError) as exc:
        raise PublishFailed(message=f"export {job.id} is saved but could not be queued; try again") from exc
    return json_response(_out(job), status_code=202)


async def get(request: Request) -> Response:
    return json_response(_out(await _job(request)))


async def download(request: Request) -> Response:
    job = await _job(request)
    if job.status != "done":
        code = "export_failed" if job.status == "failed" else "not_ready"
        raise Conflict(code, f"export {job.id} is {job.status}" + (f": {job.error}" if job.error else ""))
    path = resources(request).settings.export_path / job.file_name
    if not path.is_file():
        raise NotFound("not_found", "export file not found (expired?)")
    return file_export(path, job.format, f"{job.kind}-{job.created_at:%Y%m%dT%H%M%SZ}.{job.format}")


async def _job(request: Request) -> ExportJob:
    job_id = path_id(request, "export_id", "export")
    who = principal(request)
    async with tenant_transaction(request, who.org_id) as conn:
        job = await find_export_job(conn, who.org_id, job_id, who.scope)
    if job is None:
        raise NotFound("not_found", "export not found")
    return job


def _out(job: ExportJob) -> ExportJobOut:
    return ExportJobOut(
        id=job.id, kind=job.kind, format=job.format, status=job.status, rows_written=job.rows_written,
        rows_total=job.rows_total, bytes_written=job.bytes_written, error=job.error,
        filters=job.request.get("filters", {}), created_at=job.created_at, started_at=job.started_at,
        finished_at=job.finished_at, expires_at=job.expires_at,
        download_url=f"/v1/exports/{job.id}/download" if job.status == "done" else None,
    )
