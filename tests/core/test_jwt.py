import base64
import hashlib
import hmac
import json
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from core.errors import Unauthorized
from core.permissions import Scope
from core.tokens import TokenVerifier, load_jwks, looks_like_jwt

SECRET = "s" * 40
ORG, ADV, AFF = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


def claims(**overrides) -> dict:
    now = int(time.time())
    base = {
        "sub": "user-123", "aud": "authenticated", "iat": now, "exp": now + 600,
        "app_metadata": {"org_id": str(ORG), "role": "manager"},
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def hs(payload: dict, secret: str = SECRET, **headers) -> str:
    return jwt.encode(payload, secret, algorithm="HS256", headers=headers or None)


@pytest.fixture(scope="module")
def rsa_keys():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048), rsa.generate_private_key(
        public_exponent=65537, key_size=2048
    )


@pytest.fixture
def jwks_path(tmp_path, rsa_keys):
    signing, _ = rsa_keys
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(signing.public_key()))
    jwk.update(kid="k1", alg="RS256", use="sig")
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk]}))
    return path


def rs(payload: dict, key, kid: str | None = "k1") -> str:
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": kid} if kid else None)


def test_hs256_token_maps_to_a_user_principal():
    principal = TokenVerifier(hs256_secret=SECRET).verify(hs(claims()))
    assert (principal.org_id, principal.role, principal.actor_type, principal.actor_id) == (ORG, "manager", "user", "user-123")
    assert principal.scope == Scope()


def test_rs256_token_from_the_jwks_file_with_scope(jwks_path, rsa_keys):
    verifier = TokenVerifier(jwks=load_jwks(jwks_path), issuer="https://auth.example")
    token = rs(claims(iss="https://auth.example", app_metadata={"org_id": str(ORG), "role": "advertiser", "advertiser_id": str(ADV)}), rsa_keys[0])
    principal = verifier.verify(token)
    assert principal.role == "advertiser" and principal.scope == Scope(advertiser_id=ADV)


def test_a_token_expired_within_the_leeway_still_passes():
    now = int(time.time())
    assert TokenVerifier(hs256_secret=SECRET, leeway_s=30).verify(hs(claims(iat=now - 600, exp=now - 5))).role == "manager"


def _none_alg(payload: dict) -> str:
    part = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")  # noqa: E731
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(payload)}."


def _confused(payload: dict, rsa_keys) -> str:
    """HS256 signed with the RSA public key as the secret: the classic key-confusion forgery."""
    part = lambda b: base64.urlsafe_b64encode(b).decode().rstrip("=")  # noqa: E731
    public_pem = rsa_keys[0].public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = part(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode()) + "." + part(json.dumps(payload).encode())
    return signing_input + "." + part(hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest())


now = int(time.time())
REJECTED = {
    "bad_signature": lambda k: hs(claims(), "x" * 40),
    "alg_none": lambda k: _none_alg(claims()),
    "hs_signed_with_rsa_public_key": lambda k: _confused(claims(), k),
    "rs_token_by_an_unknown_key": lambda k: rs(claims(), k[1], kid="k1"),
    "rs_token_with_unknown_kid": lambda k: rs(claims(), k[0], kid="k9"),
    "rs_token_without_kid": lambda k: rs(claims(), k[0], kid=None),
    "expired": lambda k: hs(claims(iat=now - 3600, exp=now - 120)),
    "wrong_audience": lambda k: hs(claims(aud="service_role")),
    "no_audience": lambda k: hs(claims(aud=None)),
    "no_exp": lambda k: hs(claims(exp=None)),
    "no_iat": lambda k: hs(claims(iat=None)),
    "no_sub": lambda k: hs(claims(sub=None)),
    "empty_sub": lambda k: hs(claims(sub="")),
    "not_yet_valid": lambda k: hs(claims(nbf=now + 3600)),
    "no_app_metadata": lambda k: hs(claims(app_metadata=None)),
    "no_org": lambda k: hs(claims(app_metadata={"role": "admin"})),
    "org_not_a_uuid": lambda k: hs(claims(app_metadata={"org_id": "acme", "role": "admin"})),
    "no_role": lambda k: hs(claims(app_metadata={"org_id": str(ORG)})),
    "unknown_role": lambda k: hs(claims(app_metadata={"org_id": str(ORG), "role": "superuser"})),
    "advertiser_without_scope": lambda k: hs(claims(app_metadata={"org_id": str(ORG), "role": "advertiser"})),
    "admin_with_a_scope": lambda k: hs(claims(app_metadata={"org_id": str(ORG), "role": "admin", "affiliate_id": str(AFF)})),
    "garbage": lambda k: "a.b.c",
}


@pytest.mark.parametrize("kind", sorted(REJECTED))
def test_rejected_tokens(kind, rsa_keys, jwks_path):
    verifier = TokenVerifier(hs256_secret=SECRET, jwks=load_jwks(jwks_path))
    with pytest.raises(Unauthorized) as caught:
        verifier.verify(REJECTED[kind](rsa_keys))
    assert caught.value.code == ("token_expired" if kind == "expired" else "invalid_token")


def test_rs256_is_refused_when_only_a_secret_is_configured_and_vice_versa(rsa_keys, jwks_path):
    with pytest.raises(Unauthorized):
        TokenVerifier(hs256_secret=SECRET).verify(rs(claims(), rsa_keys[0]))
    with pytest.raises(Unauthorized):
        TokenVerifier(jwks=load_jwks(jwks_path)).verify(hs(claims()))


def test_wrong_issuer_is_refused_when_an_issuer_is_configured():
    verifier = TokenVerifier(hs256_secret=SECRET, issuer="https://auth.example")
    with pytest.raises(Unauthorized):
        verifier.verify(hs(claims(iss="https://evil.example")))
    with pytest.raises(Unauthorized):
        verifier.verify(hs(claims()))
    assert verifier.verify(hs(claims(iss="https://auth.example"))).actor_id == "user-123"


def test_no_configuration_accepts_no_token():
    with pytest.raises(Unauthorized):
        TokenVerifier().verify(hs(claims()))


def test_the_secret_stays_out_of_repr():
    assert SECRET not in repr(TokenVerifier(hs256_secret=SECRET))


@pytest.mark.parametrize(("credential", "expected"), [
    ("aaa.bbb.ccc", True), ("aft_live_a.b.c", False), ("aft_live_" + "a" * 43, False), ("a.b", False),
])
def test_what_looks_like_a_jwt(credential, expected):
    assert looks_like_jwt(credential) is expected
