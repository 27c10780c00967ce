from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from api.responses import json_response
from api.schemas import Health


async def healthz(request: Request) -> Response:
    return json_response(Health(status="ok"))
