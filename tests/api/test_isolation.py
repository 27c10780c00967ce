"""The cross-tenant matrix: every route in the table, tried with another organization's ids.

Organizations A and B each hold one row of every kind. Calling with A's key, any id of
B's (in the path, in the body, in a list filter) must answer exactly like an id that
does not exist, and B's rows must be unchanged afterwards. The matrix walks
``api.routes.ENDPOINTS``, so a new route is covered the moment it is added; a new
mutating route fails here until it has a sample body in ``SAMPLE_BODIES``.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import uuid
from typing import Any

import msgspec
import pytest
import pytest_asyncio

from api.routes import ENDPOINTS, Endpoint
from core import api_keys
from core.ids import new_click_id
from core.store.api_keys import create_api_key
from tests.api.conftest import LANDING
from tests.tenant_rows import seed_organization

# A valid body per mutating route; "{name}" is replaced by the id of that name.
SAMPLE_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/v1/advertisers"): {"name": "Isolation"},
    ("POST", "/v1/affiliates"): {"name": "Isolation"},
    ("PATCH", "/v1/affiliates/{affiliate_id}"): {"name": "Renamed"},
    ("POST", "/v1/offers"): {"advertiser_id": "{advertiser_id}", "name": "Isolation", "destination_url": LANDING},
    ("PATCH", "/v1/offers/{offer_id}"): {"name": "Renamed", "status": "paused"},
    ("PUT", "/v1/offers/{offer_id}/affiliates/{affiliate_id}"): {"status": "blocked", "payout_minor": 1},
    ("POST", "/v1/links"): {"offer_id": "{offer_id}", "affiliate_id": "{affiliate_id}"},
    ("POST", "/v1/admin/api-keys"): {"name": "Isolation", "role": "advertiser", "advertiser_id": "{advertiser_id}"},
    ("POST", "/v1/admin/api-keys/{key_id}/rotate"): {"grace_period_s": 60},
    ("POST", "/v1/admin/api-keys/{key_id}/revoke"): {"reason": "isolation test"},
    ("PATCH", "/v1/organization"): {"ip_truncate": True, "clicks_retention_days": 60},
    # A selector names a person, not a row: an unknown one finds nothing (200, empty), so
    # these name no id here; tests/api/test_privacy.py crosses organizations.
    ("POST", "/v1/privacy/export"): {"ip": "203.0.113.7"},
    ("POST", "/v1/privacy/erase"): {"ip": "203.0.113.7"},
    ("POST", "/v1/advertisers/{advertiser_id}/postback-token"): {},
    ("POST", "/v1/advertisers/{advertiser_id}/signing-secrets"): {"grace_period_s": 3600},
    ("POST", "/v1/conversions/{conversion_id}/status"): {"status": "approved", "reason": "checked by hand"},
    # Filters select rows; an unknown id selects none (an empty export), like a list filter.
    ("POST", "/v1/exports"): {"kind": "clicks", "format": "csv"},
    ("POST", "/v1/webhooks"): {"url": "https://hooks.example/in", "affiliate_id": "{affiliate_id}"},
    ("PATCH", "/v1/webhooks/{webhook_id}"): {"description": "Renamed", "event_types": ["conversion.approved"]},
    ("POST", "/v1/webhooks/{webhook_id}/secrets"): {"grace_period_s": 60},
    ("POST", "/v1/affiliate-postbacks"): {
        "url": "https://hooks.example/pb?c={click_id}", "affiliate_id": "{affiliate_id}", "offer_id": "{offer_id}"},
    ("PATCH", "/v1/affiliate-postbacks/{affiliate_postback_id}"): {"offer_id": "{offer_id}", "goal": "sale"},
    ("POST", "/v1/deliveries/replay"): {"endpoint_id": "{endpoint_id}", "status": "dead"},
    ("POST", "/v1/deliveries/{delivery_id}/replay"): {},
}

# Lists answer a filter by an unknown id with an empty page; these refuse it (422).
REFUSES_UNKNOWN_FILTER_IDS = {"/v1/stats"}

_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")
_PLACEHOLDER = re.compile(r"^\{(\w+)\}$")
# The key the caller holds: the role allowed every action, so no 403 hides a lookup.
CALLER_ROLE = "owner" if "owner" in api_keys.ROLES else "admin"


def missing_id(name: str) -> str:
    if name == "click_id":
        return new_click_id(int(dt.datetime.now(dt.timezone.utc).timestamp() * 1000))
    return str(uuid.uuid4())


def sample_body(e: Endpoint) -> Any:
    if e.body is None:
        return None
    if (e.method, e.path) not in SAMPLE_BODIES:
        pytest.fail(f"{e.method} {e.path} has no sample body: add a valid one to SAMPLE_BODIES")
    return SAMPLE_BODIES[(e.method, e.path)]


def id_names(e: Endpoint) -> list[str]:
    """The ids a request to ``e`` names: path parameters named ``*_id`` (``{kind}`` is
    not an id), then body placeholders."""
    names = [n for n in _PARAM.findall(e.path) if n.endswith("_id")]
    body = sample_body(e)
    for value in (body or {}).values():
        m = _PLACEHOLDER.match(value) if isinstance(value, str) else None
        if m and m.group(1) not in names:
            names.append(m.group(1))
    return names


def filter_names(e: Endpoint) -> list[str]:
    if e.method != "GET" or e.query is None:
        return []
    return [f.name for f in msgspec.structs.fields(e.query) if f.name.endswith("_id")]


def fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, ids) for v in value]
    m = _PLACEHOLDER.match(value) if isinstance(value, str) else None
    return ids[m.group(1)] if m else value


SECURED = [e for e in ENDPOINTS if e.action is not None]
WITH_IDS = [e for e in SECURED if _PARAM.search(e.path) or e.body is not None]
WITH_FILTERS = [e for e in SECURED if filter_names(e)]
LISTS = [e for e in SECURED if e.method == "GET" and not _PARAM.search(e.path)]


def route_id(e: Endpoint) -> str:
    return f"{e.method} {e.path}"


class World(msgspec.Struct, kw_only=True):
    a: dict[str, str]
    b: dict[str, str]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.a['caller_key']}"}


@pytest_asyncio.fixture
async def world(app, pool, api_settings) -> World:
    """A and B, one row of each kind; A's caller key may do everything."""
    async with pool.acquire() as conn:
        a, b = await seed_organization(conn, "A"), await seed_organization(conn, "B")
        caller = await create_api_key(conn, a["org_id"], "caller", CALLER_ROLE)
    for org in (a, b):  # the files of the seeded (done) export jobs
        api_settings.export_path.mkdir(parents=True, exist_ok=True)
        (api_settings.export_path / f"{org['export_id']}.csv").write_text("click_id\n1\n")
    return World(a={**a, "caller_key": caller.key}, b=b)


async def snapshot(pool, org_id: str) -> list[str]:
    """Every row of ``org_id`` in every table that holds tenant rows."""
    async with pool.acquire() as conn:
        tables = await conn.fetch(
            "select c.relname, case when c.relname = 'organizations' then 'id' else 'org_id' end as col"
            " from pg_class c where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p')"
            " and not c.relispartition and (c.relname = 'organizations' or exists("
            "   select from pg_attribute a where a.attrelid = c.oid and a.attname = 'org_id' and not a.attisdropped))"
            " order by 1")
        rows: list[str] = []
        for t in tables:
            found = await conn.fetch(f'select to_jsonb(t)::text as j from "{t["relname"]}" t where {t["col"]} = $1', org_id)
            rows.extend(f"{t['relname']}: {r['j']}" for r in found)
    return sorted(rows)


async def call(client, world: World, e: Endpoint, ids: dict[str, str], query: dict[str, str] | None = None):
    path = _PARAM.sub(lambda m: ids[m.group(1)], e.path)
    body = sample_body(e)
    kwargs = {} if body is None else {"json": fill(body, ids)}
    return await client.request(e.method, path, params=query, headers=world.headers, **kwargs)


def assert_same_answer(got, expected, what: str) -> None:
    assert got.status_code == expected.status_code, f"{what}: {got.status_code} {got.text} vs {expected.text}"
    assert got.headers["content-type"] == expected.headers["content-type"], what
    g, x = got.json(), expected.json()
    assert set(g) == set(x), what
    assert (g.get("code"), g.get("message")) == (x.get("code"), x.get("message")), what


def assert_no_foreign_ids(response, world: World, what: str) -> None:
    leaked = [name for name, value in world.b.items() if name != "key" and value in response.text]
    assert not leaked, f"{what} answered with B's {leaked}: {response.text}"


def unknown_ids(names: list[str], world: World) -> list[str]:
    return [n for n in names if n not in world.b]


@pytest.mark.parametrize("e", WITH_IDS, ids=route_id)
async def test_another_organizations_ids_answer_like_missing_ids(client, pool, world, e):
    names = id_names(e)
    if unknown := unknown_ids(names, world):
        pytest.fail(f"{route_id(e)} names {unknown}: seed one in tests/tenant_rows.py")
    if not names:  # a create that names nothing: nothing to cross
        return
    before = await snapshot(pool, world.b["org_id"])
    for count in range(1, len(names) + 1):
        for foreign in itertools.combinations(names, count):
            what = f"{route_id(e)} with B's {', '.join(foreign)}"
            expected = await call(client, world, e, {**world.a, **{n: missing_id(n) for n in foreign}})
            got = await call(client, world, e, {**world.a, **{n: world.b[n] for n in foreign}})
            assert expected.status_code == 404, f"{what}: a missing id answered {expected.status_code} {expected.text}"
            assert_same_answer(got, expected, what)
            assert_no_foreign_ids(got, world, what)
    assert await snapshot(pool, world.b["org_id"]) == before, f"{route_id(e)} changed B's rows"
    own = await call(client, world, e, world.a)
    assert own.status_code < 300, f"{route_id(e)} with A's own ids (is the sample body valid?): {own.text}"


@pytest.mark.parametrize("e", WITH_FILTERS, ids=route_id)
async def test_filtering_by_another_organizations_ids_gives_an_empty_page(client, world, e):
    for name in filter_names(e):
        if name not in world.b:
            pytest.fail(f"{route_id(e)} filters by {name}: seed one in tests/tenant_rows.py")
        own = await call(client, world, e, world.a, {name: world.a[name]})
        assert own.status_code == 200 and own.json()["data"], f"{route_id(e)}?{name}= own id found nothing: {own.text}"
        foreign = await call(client, world, e, world.a, {name: world.b[name]})
        missing = await call(client, world, e, world.a, {name: missing_id(name)})
        what = f"{route_id(e)}?{name}= B's id vs a missing one"
        if e.path in REFUSES_UNKNOWN_FILTER_IDS:
            assert missing.status_code == 422, f"{what}: {missing.text}"
            assert_same_answer(foreign, missing, what)
            continue
        assert foreign.status_code == missing.status_code == 200, foreign.text
        assert foreign.json() == missing.json(), what
        assert foreign.json()["data"] == [] and foreign.json()["next_cursor"] is None, foreign.text


@pytest.mark.parametrize("e", LISTS, ids=route_id)
async def test_lists_show_only_the_callers_rows(client, world, e):
    response = await call(client, world, e, world.a)
    assert response.status_code == 200, response.text
    assert_no_foreign_ids(response, world, route_id(e))


def test_every_mutating_route_has_a_valid_sample_body():
    for e in SECURED:
        if e.body is not None:
            msgspec.convert(fill(sample_body(e), {n: missing_id(n) for n in id_names(e)}), e.body)
