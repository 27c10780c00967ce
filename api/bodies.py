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
from core.errors import NotFound, ValidationError

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
    try:
        return _decoder(kind).decode(body)
    except ValidationError as exc:  # a struct's own check (its __post_init__) refused a value
        raise ValidationError(exc.code, exc.message + _where(body, kind)) from None


def _where(body: bytes, kind: type) -> str:
    """Which top-level field a struct's own check refused, in msgspec's words (`` - at `$.caps` ``)."""
    fields = msgspec.json.decode(body)
    for field in msgspec.structs.fields(kind):
        if isinstance(fields, dict) and field.encode_name in fields:
            try:
                msgspec.convert(fields[field.encode_name], field.type)
            except ValidationError:
                return f" - at `$.{field.encode_name}`"
            except msgspec.ValidationError:
                continue  # convert is stricter than the decoder for some types: not the culprit
    return ""


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
