"""Turning the raw request into validated values: JSON bodies, query strings, path ids.

Decoders are built once per type. A body over ``api_body_max_bytes`` is refused while it
streams, before it is buffered whole.
"""

from __future__ import annotations

import functools
import uuid
from typing import TypeVar

import msgspec
from starlette.requests import Request

from api.errors import BodyTooLarge, MalformedBody
from core.errors import NotFound

T = TypeVar("T")


@functools.cache
def _decoder(kind: type) -> msgspec.json.Decoder:
    return msgspec.json.Decoder(kind)


async def read_body(request: Request) -> bytes:
    max_bytes = request.app.state.resources.settings.api_body_max_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise BodyTooLarge(message=f"request body larger than {max_bytes} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise BodyTooLarge(message=f"request body larger than {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, kind: type[T]) -> T:
    body = await read_body(request)
    if not body.strip():
        raise MalformedBody(message="request body must be a JSON object")
    return _decoder(kind).decode(body)


def read_query(request: Request, kind: type[T]) -> T:
    return msgspec.convert(dict(request.query_params), kind, strict=False)


def path_id(request: Request, name: str, what: str) -> uuid.UUID:
    """A UUID path parameter; anything else is answered exactly like a missing row."""
    raw = request.path_params[name]
    try:
        if len(raw) != 36:
            raise ValueError(raw)
        return uuid.UUID(raw)
    except ValueError:
        raise NotFound("not_found", f"{what} not found") from None
