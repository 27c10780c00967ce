import uuid

import pytest

from core.errors import Forbidden, ValidationError
from core.permissions import ACTIONS, PERMISSIONS, ROLES, Principal, Scope, authorize, may_grant, scope_for

ROLE_ORDER = ("owner", "admin", "manager", "analyst", "advertiser", "affiliate")
# Written out by hand, not derived from the table under test.
#                          owner admin manager analyst advertiser affiliate
MATRIX = {
    "advertisers:read":    "Y     Y     Y       Y       .          .",
    "advertisers:write":   "Y     Y     Y       .       .          .",
    "affiliates:read":     "Y     Y     Y       Y       .          .",
    "affiliates:write":    "Y     Y     Y       .       .          .",
    "offers:read":         "Y     Y     Y       Y       Y          Y",
    "offers:write":        "Y     Y     Y       .       .          .",
    "links:read":          "Y     Y     Y       Y       Y          Y",
    "links:write":         "Y     Y     Y       .       .          .",
    "api_keys:read":       "Y     Y     .       .       .          .",
    "api_keys:manage":     "Y     Y     .       .       .          .",
    "audit:read":          "Y     Y     .       .       .          .",
    "privacy:manage":      "Y     Y     .       .       .          .",
    "usage:read":          "Y     Y     Y       Y       .          .",
    "organization:manage": "Y     .     .       .       .          .",
    "webhooks:read":       "Y     Y     Y       Y       .          Y",
    "webhooks:write":      "Y     Y     Y       .       .          Y",
}
CASES = [
    (role, action, flag == "Y")
    for action, row in MATRIX.items()
    for role, flag in zip(ROLE_ORDER, row.split(), strict=True)
]


def _principal(role: str, **scope) -> Principal:
    return Principal(org_id=uuid.uuid4(), role=role, actor_type="api_key", actor_id=str(uuid.uuid4()), scope=Scope(**scope))


def test_the_roles_are_the_documented_six_and_every_matrix_action_exists():
    assert ROLES == ROLE_ORDER and set(PERMISSIONS) == set(ROLES)
    assert set(MATRIX) <= ACTIONS


@pytest.mark.parametrize(("role", "action", "allowed"), CASES)
def test_role_action_matrix(role, action, allowed):
    if allowed:
        authorize(_principal(role), action)
    else:
        with pytest.raises(Forbidden):
            authorize(_principal(role), action)


@pytest.mark.parametrize("role", ROLES)
def test_unknown_actions_are_refused_to_every_role(role):
    with pytest.raises(Forbidden):
        authorize(_principal(role), "offers:destroy")


def test_an_unknown_role_may_do_nothing():
    with pytest.raises(Forbidden):
        authorize(_principal("root"), "offers:read")


#                 owner admin manager analyst advertiser affiliate   (may create a key of this role)
GRANTS = {
    "owner":      "Y     Y     Y       Y       Y          Y",
    "admin":      ".     Y     Y       Y       Y          Y",
    "manager":    ".     .     .       .       .          .",
    "analyst":    ".     .     .       .       .          .",
    "advertiser": ".     .     .       .       .          .",
    "affiliate":  ".     .     .       .       .          .",
}


@pytest.mark.parametrize(("granter", "role", "allowed"), [
    (granter, role, flag == "Y")
    for granter, row in GRANTS.items()
    for role, flag in zip(ROLE_ORDER, row.split(), strict=True)
])
def test_nobody_grants_more_power_than_they_hold(granter, role, allowed):
    assert may_grant(granter, role) is allowed


def test_no_role_grants_an_unknown_role():
    assert not may_grant("owner", "root")


ADV, AFF = uuid.uuid4(), uuid.uuid4()


@pytest.mark.parametrize(("role", "advertiser_id", "affiliate_id", "expected"), [
    ("admin", None, None, Scope()),
    ("analyst", None, None, Scope()),
    ("advertiser", ADV, None, Scope(advertiser_id=ADV)),
    ("affiliate", None, AFF, Scope(affiliate_id=AFF)),
])
def test_scope_of_each_role(role, advertiser_id, affiliate_id, expected):
    scope = scope_for(role, advertiser_id, affiliate_id)
    assert scope == expected and scope.is_scoped is (role in ("advertiser", "affiliate"))


@pytest.mark.parametrize(("role", "advertiser_id", "affiliate_id", "code"), [
    ("advertiser", None, None, "invalid_scope"),
    ("affiliate", None, None, "invalid_scope"),
    ("advertiser", ADV, AFF, "invalid_scope"),
    ("affiliate", ADV, None, "invalid_scope"),
    ("admin", ADV, None, "invalid_scope"),
    ("manager", None, AFF, "invalid_scope"),
    ("read_only", None, None, "invalid_role"),
    ("superuser", None, None, "invalid_role"),
])
def test_bad_scopes_are_refused(role, advertiser_id, affiliate_id, code):
    with pytest.raises(ValidationError) as caught:
        scope_for(role, advertiser_id, affiliate_id)
    assert caught.value.code == code


def test_a_principal_names_its_actor():
    key = _principal("admin")
    assert key.key_id == uuid.UUID(key.actor_id)
    user = Principal(org_id=uuid.uuid4(), role="admin", actor_type="user", actor_id="user-1")
    assert user.key_id is None and not user.scope.is_scoped
