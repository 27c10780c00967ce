"""Who is calling, and may they do this.

``authenticate`` turns the request's credentials into a ``Principal``; today only API
keys (``Authorization: Bearer <key>`` or ``X-Api-Key``), which is where a JWT or session
scheme would be added. ``authorize`` is the single place permissions are decided:
every route names an action (``"offers:write"``) and nothing else checks roles.
"""

from __future__ import annotations

import datetime as dt
import uuid

import msgspec
from starlette.requests import Request

from api.resources import credential_transaction
from core import api_keys
from core.errors import Forbidden, Unauthorized
from core.store.api_keys import authenticate_api_key


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    org_id: uuid.UUID
    key_id: uuid.UUID
    role: str


# role -> the actions it may perform; "*" means every action.
PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset({"*"}),
    "read_only": frozenset({
        "advertisers:read", "affiliates:read", "offers:read", "links:read",
    }),
}


def presented_key(request: Request) -> str:
    authorization = request.headers.get("authorization")
    if authorization is not None:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized("invalid_api_key", "the Authorization header must be 'Bearer <api key>'")
        return value.strip()
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    raise Unauthorized("missing_api_key", "send an API key as 'Authorization: Bearer <key>' or 'X-Api-Key: <key>'")


async def authenticate(request: Request) -> Principal:
    key = presented_key(request)
    if not api_keys.is_well_formed(key):  # no pool checkout for garbage
        raise Unauthorized("invalid_api_key", "API key is malformed")
    async with credential_transaction(request) as conn:
        record = await authenticate_api_key(conn, key, dt.datetime.now(dt.timezone.utc))
    return Principal(org_id=record.org_id, key_id=record.id, role=record.role)


def authorize(principal: Principal, action: str) -> None:
    allowed = PERMISSIONS.get(principal.role, frozenset())
    if "*" not in allowed and action not in allowed:
        raise Forbidden("forbidden", f"this API key's role ({principal.role}) may not {action}")


def principal(request: Request) -> Principal:
    return request.state.principal
