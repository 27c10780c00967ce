"""Who is calling: the request's credentials turned into a ``Principal``.

Two kinds of credentials:

- API keys: ``Authorization: Bearer aft_live_…`` or ``X-Api-Key: aft_live_…``;
- dashboard users' JWTs: ``Authorization: Bearer <header>.<payload>.<signature>``
  (``core.tokens``).

What a principal may do is decided only in ``core.permissions``: every route names an
action, ``api.app`` calls ``authorize`` with it, and handlers apply ``principal.scope``
through the queries. The principal lives in ``request.state.principal`` and nowhere else.
"""

from __future__ import annotations

import datetime as dt
import functools

from starlette.requests import Request

from api.resources import credential_transaction, resources
from core import api_keys
from core.errors import Unauthorized
from core.permissions import Principal, Scope, authorize  # noqa: F401  (authorize: used by api.app)
from core.settings import Settings
from core.store.api_keys import ApiKey, authenticate_api_key
from core.tokens import TokenVerifier, load_jwks, looks_like_jwt


def presented_credential(request: Request) -> tuple[str, bool]:
    """The credential, and whether it came in the Authorization header."""
    authorization = request.headers.get("authorization")
    if authorization is not None:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized("invalid_api_key", "the Authorization header must be 'Bearer <api key or token>'")
        return value.strip(), True
    key = request.headers.get("x-api-key")
    if key:
        return key.strip(), False
    raise Unauthorized(
        "missing_api_key", "send an API key as 'Authorization: Bearer <key>' or 'X-Api-Key: <key>', or a user token"
    )


@functools.lru_cache(maxsize=8)
def token_verifier(settings: Settings) -> TokenVerifier:
    return TokenVerifier(
        hs256_secret=settings.jwt_hs256_secret,
        jwks=load_jwks(settings.jwt_jwks_path) if settings.jwt_jwks_path else None,
        audience=settings.jwt_audience, issuer=settings.jwt_issuer, leeway_s=settings.jwt_leeway_s,
    )


def principal_of_key(key: ApiKey) -> Principal:
    return Principal(
        org_id=key.org_id, role=key.role, actor_type="api_key", actor_id=str(key.id),
        scope=Scope(advertiser_id=key.advertiser_id, affiliate_id=key.affiliate_id),
    )


async def authenticate(request: Request) -> Principal:
    credential, in_authorization = presented_credential(request)
    if in_authorization and looks_like_jwt(credential):
        return token_verifier(resources(request).settings).verify(credential)
    if not api_keys.is_well_formed(credential):  # no pool checkout for garbage
        raise Unauthorized("invalid_api_key", "API key is malformed")
    async with credential_transaction(request) as conn:
        record = await authenticate_api_key(conn, credential, dt.datetime.now(dt.timezone.utc))
    return principal_of_key(record)


def principal(request: Request) -> Principal:
    return request.state.principal
