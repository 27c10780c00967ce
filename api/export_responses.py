"""Exports as HTTP responses: streamed straight from Postgres, or a finished job's file.

A streamed export holds one pooled connection and its tenant transaction for as long as
the client reads; rows come through a server-side cursor a chunk at a time, so memory
stays flat whatever the size (``core.export_bodies``). Everything that can be refused
is checked before the response starts (``select_export``): once the first byte is sent
the status is 200 and a failure can only cut the body short.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import AsyncIterator

from starlette.responses import FileResponse, StreamingResponse

from api.resources import Resources, tenant_transaction
from core.export_bodies import export_chunks
from core.export_format import MEDIA_TYPES, ExportFormat
from core.export_reads import Selection


def _disposition(filename: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"}


def stream_export(
    res: Resources, org_id: uuid.UUID, selection: Selection, fmt: ExportFormat, filename: str,
) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        async with tenant_transaction(res, org_id) as conn:
            async for chunk, _rows in export_chunks(conn, selection, fmt):
                yield chunk

    return StreamingResponse(body(), media_type=MEDIA_TYPES[fmt], headers=_disposition(filename))


def file_export(path: Path, fmt: str, filename: str) -> FileResponse:
    return FileResponse(path, media_type=MEDIA_TYPES[fmt], headers=_disposition(filename))
