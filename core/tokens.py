"""Dashboard users' bearer tokens (JWT, Supabase-style) turned into principals.

A token is accepted when it is signed HS256 with the configured secret, or RS256 by a key
of the configured JWKS file chosen by its ``kid``; the algorithm is decided by which of
those is configured, never by the token alone (no ``none``, no HS/RS confusion). It must
carry ``sub``, ``aud``, ``exp`` and ``iat`` (and ``iss`` when an issuer is configured),
and ``app_metadata: {org_id, role, advertiser_id?, affiliate_id?}``, which names the
organization, the role and, for the scoped roles, the scope.

The JWKS file is read once per verifier; replacing it takes a restart.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Annotated, Any

import jwt
import msgspec

from core.errors import Unauthorized, ValidationError
from core.permissions import Principal, Role, scope_for

_REQUIRED_CLAIMS = ["sub", "aud", "exp", "iat"]


class AppMetadata(msgspec.Struct, kw_only=True):
    org_id: uuid.UUID
    role: Role
    advertiser_id: uuid.UUID | None = None
    affiliate_id: uuid.UUID | None = None


class UserClaims(msgspec.Struct, kw_only=True):
    sub: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    app_metadata: AppMetadata


def looks_like_jwt(credential: str) -> bool:
    return credential.count(".") == 2 and not credential.startswith("aft_")


def load_jwks(path: str | Path) -> dict[str, Any]:
    """The RSA signing keys of a JWKS file, by ``kid``."""
    keys = jwt.PyJWKSet.from_dict(json.loads(Path(path).read_text())).keys
    return {
        k.key_id: k.key for k in keys
        if k.key_id and k.key_type == "RSA" and k.algorithm_name == "RS256" and k.public_key_use in (None, "sig")
    }


class TokenVerifier:
    """Checks tokens against one configuration; build once per process."""

    def __init__(
        self, *, hs256_secret: str = "", jwks: dict[str, Any] | None = None, audience: str = "authenticated",
        issuer: str = "", leeway_s: int = 30,
    ):
        self._secret = hs256_secret
        self._jwks = jwks or {}
        self._audience = audience
        self._issuer = issuer
        self._leeway_s = leeway_s

    def __repr__(self) -> str:  # never print the secret
        return f"TokenVerifier(hs256={bool(self._secret)}, rs256_keys={sorted(self._jwks)}, audience={self._audience!r})"

    @property
    def enabled(self) -> bool:
        return bool(self._secret or self._jwks)

    def _key_for(self, token: str) -> tuple[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise Unauthorized("invalid_token", "bearer token is not a valid JWT") from None
        alg = header.get("alg")
        if alg == "HS256" and self._secret:
            return alg, self._secret
        if alg == "RS256" and self._jwks:
            key = self._jwks.get(header.get("kid"))
            if key is None:
                raise Unauthorized("invalid_token", "token signed by an unknown key")
            return alg, key
        raise Unauthorized("invalid_token", "token algorithm not accepted")

    def verify(self, token: str) -> Principal:
        if not self.enabled:
            raise Unauthorized("invalid_token", "dashboard tokens are not enabled on this server")
        alg, key = self._key_for(token)
        try:
            claims = jwt.decode(
                token, key, algorithms=[alg], audience=self._audience, issuer=self._issuer or None,
                leeway=self._leeway_s,
                options={"require": _REQUIRED_CLAIMS + (["iss"] if self._issuer else [])},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token_expired", "token has expired") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthorized("invalid_token", f"token rejected: {_reason(exc)}") from None
        return principal_of(claims)


def principal_of(claims: dict[str, Any]) -> Principal:
    """The principal a verified token's claims describe, or Unauthorized."""
    try:
        user = msgspec.convert(claims, UserClaims)
        meta = user.app_metadata
        scope = scope_for(meta.role, meta.advertiser_id, meta.affiliate_id)
    except (msgspec.ValidationError, ValidationError) as exc:
        raise Unauthorized("invalid_token", f"token claims do not name an organization and role: {exc}") from None
    return Principal(org_id=meta.org_id, role=meta.role, actor_type="user", actor_id=user.sub, scope=scope)


_REASONS: dict[type[Exception], str] = {
    jwt.InvalidSignatureError: "bad signature",
    jwt.InvalidAudienceError: "wrong audience",
    jwt.InvalidIssuerError: "wrong issuer",
    jwt.ImmatureSignatureError: "not valid yet",
    jwt.MissingRequiredClaimError: "a required claim is missing",
    jwt.InvalidAlgorithmError: "algorithm not accepted",
}


def _reason(exc: jwt.InvalidTokenError) -> str:
    # Fixed phrases: the library's messages may quote token contents.
    for cls, reason in _REASONS.items():
        if isinstance(exc, cls):
            return reason
    return "malformed"
