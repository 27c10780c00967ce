"""GET /openapi.json: an OpenAPI 3.1 document built from the route table and the structs."""

from __future__ import annotations

import functools
import re
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from api.routes import ENDPOINTS, Endpoint
from api.schemas import ErrorBody

_REF = "#/components/schemas/{name}"
_PATH_PARAM = re.compile(r"\{([a-z_]+)\}")
_ERRORS = {
    "400": "Malformed request body", "401": "Missing or invalid API key", "403": "Not allowed for this key's role",
    "404": "Not found (including ids of other organizations)",
    "409": "Conflicts with the current state (e.g. invalid_transition: a status move the lifecycle does not allow;"
           " already_pending: a replay of a delivery still being tried)",
    "413": "Request body too large", "422": "Invalid request", "500": "Internal error",
    "503": "Saved, but the edge could not be told yet (publish_failed); the next sync repairs it",
}


def _error_responses(public: bool) -> dict[str, Any]:
    codes = ["500"] if public else list(_ERRORS)
    ref = {"$ref": _REF.format(name="ErrorBody")}
    return {c: {"description": _ERRORS[c], "content": {"application/json": {"schema": ref}}} for c in codes}


def _query_parameters(kind: type) -> list[dict[str, Any]]:
    (_,), components = msgspec.json.schema_components([kind], ref_template=_REF)
    schema = components[kind.__name__]
    return [
        {"name": name, "in": "query", "required": name in schema.get("required", []), "schema": prop}
        for name, prop in schema["properties"].items()
    ]


def _content(response: Any, refs: dict[Any, dict]) -> dict[str, Any]:
    if response is None:  # a file: an export (api.export_responses)
        return {media: {"schema": {"type": "string"}} for media in ("text/csv", "application/jsonl")}
    return {"application/json": {"schema": refs[response]}}


def _operation(e: Endpoint, refs: dict[Any, dict]) -> dict[str, Any]:
    params = [
        {"name": n, "in": "path", "required": True,
         "schema": {"type": "string", "format": "uuid"} if n.endswith("_id") else {"type": "string"}}
        for n in _PATH_PARAM.findall(e.path)
    ]
    if e.query is not None:
        params += _query_parameters(e.query)
    op: dict[str, Any] = {
        "operationId": f"{e.method.lower()}_{e.path.strip('/').replace('/', '_').replace('{', '').replace('}', '')}",
        "summary": e.summary,
        "parameters": params,
        "responses": {
            str(e.status): {"description": "No content"} if e.status == 204 else {
                "description": "OK", "content": _content(e.response, refs)},
            **_error_responses(e.action is None),
        },
    }
    if e.body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": refs[e.body]}}}
    op["security"] = [] if e.action is None else [{"bearerAuth": []}, {"apiKeyHeader": []}]
    if e.action:
        op["x-afftok-action"] = e.action
    return op


@functools.cache
def document() -> dict[str, Any]:
    types = list(dict.fromkeys([ErrorBody] + [t for e in ENDPOINTS for t in (e.response, e.body) if t is not None]))
    schemas, components = msgspec.json.schema_components(types, ref_template=_REF)
    refs = dict(zip(types, schemas))
    paths: dict[str, dict[str, Any]] = {}
    for e in ENDPOINTS:
        paths.setdefault(e.path, {})[e.method.lower()] = _operation(e, refs)
    paths["/openapi.json"] = {"get": {
        "operationId": "get_openapi", "summary": "This document", "security": [],
        "responses": {"200": {"description": "OpenAPI 3.1 document", "content": {"application/json": {"schema": {"type": "object"}}}}},
    }}
    return {
        "openapi": "3.1.0",
        "info": {"title": "AffTok API", "version": "1", "description": "Management API. Errors are {code, message, correlation_id}."},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "description": "API key: Authorization: Bearer aft_live_..."},
                "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
            },
        },
        "security": [{"bearerAuth": []}, {"apiKeyHeader": []}],
    }


_encoded = functools.cache(lambda: msgspec.json.encode(document()))


async def openapi_json(request: Request) -> Response:
    return Response(_encoded(), media_type="application/json")
