"""The postback endpoint: authentication, validation, the durable 202, and refusals that
write nothing (a table of bad postbacks)."""

from __future__ import annotations

import json
import time

import msgspec
import pytest

from core.models import AdvertiserAuth, PostbackCredential, SigningSecret, postback_batch_decoder
from core.postbacks import credential_field
from core.signatures import sign

ORG = "22222222-2222-2222-2222-222222222222"
ADV = "55555555-5555-5555-5555-555555555555"
OTHER_ADV = "66666666-6666-6666-6666-666666666666"
TOKEN = "pbt_demo_token_123"
SECRET = "whsec_current"
OLD_SECRET = "whsec_expired"
API_KEY = "aft_live_" + "A" * 43
CLICK = "0" * 44
OTHER_ORG = "77777777-7777-7777-7777-777777777777"
INACTIVE_ADV = "88888888-8888-8888-8888-888888888888"
EXPIRED_TOKEN = "pbt_expired"
EXPIRED_KEY = "aft_live_" + "E" * 43
INACTIVE_TOKEN = "pbt_inactive"
FOREIGN_TOKEN = "pbt_other_org"  # another organization's credential naming our advertiser
_enc = msgspec.msgpack.Encoder()


async def publish_auth(redis, keys, **extra) -> None:
    now_ms = int(time.time() * 1000)
    fields = {
        f"adv:{ADV}": _enc.encode(AdvertiserAuth(org_id=ORG, advertiser_id=ADV, signing_secrets=[
            SigningSecret(SECRET), SigningSecret(OLD_SECRET, expires_at_ms=now_ms - 1000)])),
        f"adv:{OTHER_ADV}": _enc.encode(AdvertiserAuth(org_id=ORG, advertiser_id=OTHER_ADV, signing_secrets=[
            SigningSecret("whsec_other")])),
        credential_field("tok", TOKEN): _enc.encode(PostbackCredential(org_id=ORG, advertiser_id=ADV)),
        credential_field("key", API_KEY): _enc.encode(PostbackCredential(org_id=ORG, key_id="k1")),
        f"adv:{INACTIVE_ADV}": _enc.encode(AdvertiserAuth(org_id=ORG, advertiser_id=INACTIVE_ADV, active=False)),
        credential_field("tok", EXPIRED_TOKEN): _enc.encode(PostbackCredential(
            org_id=ORG, advertiser_id=ADV, expires_at_ms=now_ms - 1)),
        credential_field("key", EXPIRED_KEY): _enc.encode(PostbackCredential(
            org_id=ORG, advertiser_id=ADV, key_id="k2", expires_at_ms=now_ms - 1)),
        credential_field("tok", INACTIVE_TOKEN): _enc.encode(PostbackCredential(org_id=ORG, advertiser_id=INACTIVE_ADV)),
        credential_field("tok", FOREIGN_TOKEN): _enc.encode(PostbackCredential(org_id=OTHER_ORG, advertiser_id=ADV)),
        **extra,
    }
    await redis.hset(keys.postback_auth, mapping=fields)
    await redis.publish(keys.postback_auth_changes, _enc.encode([]))


async def entries(redis, keys) -> list:
    records = []
    for _id, fields in await redis.xrange(keys.conversion_stream(0)):
        assert fields[b"v"] == b"1"
        records.extend(postback_batch_decoder.decode(fields[b"p"]))
    return records


@pytest.fixture
async def pb(edge, redis, keys):
    app, client = edge
    await publish_auth(redis, keys)
    await app.runtime.postback_auth.reload_all()
    return app, client


def signed(body: bytes, secret: str = SECRET, at: int | None = None) -> dict:
    return {"AffTok-Signature": sign(secret.encode(), body, at if at is not None else int(time.time())),
            "content-type": "application/json"}


async def test_a_token_get_is_accepted_after_the_entry_is_in_the_stream(pb, redis, keys):
    app, client = pb
    response = await client.get("/postback", params={
        "token": TOKEN, "click_id": CLICK, "external_id": "o-1", "amount": "12.34", "currency": "USD",
        "goal": "sale", "customer_id": "c-9"}, headers={"x-request-id": "req-1"})
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "accepted" and response.json()["correlation_id"] == "req-1"
    [record] = await entries(redis, keys)  # readable the moment the 202 is out
    assert (record.org_id, record.advertiser_id, record.actor, record.source) == (ORG, ADV, "postback:token", "postback")
    assert (record.click_id, record.external_id, record.amount_minor, record.currency) == (CLICK, "o-1", 1234, "USD")
    assert (record.status, record.goal, record.customer_id, record.correlation_id) == ("approved", "sale", "c-9", "req-1")
    assert record.postback_id == response.json()["postback_id"]


@pytest.mark.parametrize(("amount", "currency", "minor"), [
    ("1500", "JPY", 1500), ("1.234", "KWD", 1234), (10.5, "EUR", 1050), (7, "USD", 700), ("0", "USD", 0)])
async def test_amounts_become_exact_minor_units_by_the_currencys_exponent(pb, redis, keys, amount, currency, minor):
    app, client = pb
    body = json.dumps({"transaction_id": CLICK, "external_id": "o", "amount": amount, "currency": currency,
                       "advertiser_id": ADV}).encode()
    response = await client.post("/postback", content=body, headers=signed(body))
    assert response.status_code == 202, response.text
    [record] = await entries(redis, keys)
    assert (record.amount_minor, record.currency, record.actor, record.click_id) == (minor, currency, "postback:signature", CLICK)


async def test_a_form_post_and_an_api_key_are_accepted(pb, redis, keys):
    app, client = pb
    form = {"click_id": CLICK, "external_id": "o-2", "status": "pending", "advertiser_id": ADV,
            "metadata": '{"plan": "pro"}'}
    response = await client.post("/postback", data=form, headers={"Authorization": f"Bearer {API_KEY}"})
    assert response.status_code == 202, response.text
    [record] = await entries(redis, keys)
    assert (record.actor, record.status, record.metadata, record.advertiser_id) == (
        "api_key:k1", "pending", '{"plan":"pro"}', ADV)


async def test_credentials_changed_in_redis_reach_the_edge(pb, redis, keys):
    app, client = pb
    new_token = "pbt_rotated"
    await redis.hdel(keys.postback_auth, credential_field("tok", TOKEN))
    await redis.hset(keys.postback_auth, credential_field("tok", new_token),
                     _enc.encode(PostbackCredential(org_id=ORG, advertiser_id=ADV)))
    await redis.publish(keys.postback_auth_changes, _enc.encode(
        [credential_field("tok", TOKEN), credential_field("tok", new_token)]))
    from tests.edge.conftest import wait_for

    async def switched() -> bool:
        return credential_field("tok", new_token) in app.runtime.postback_auth.entries \
            and credential_field("tok", TOKEN) not in app.runtime.postback_auth.entries

    assert await wait_for(switched)
    params = {"click_id": CLICK, "external_id": "o"}
    assert (await client.get("/postback", params={**params, "token": TOKEN})).status_code == 401
    assert (await client.get("/postback", params={**params, "token": new_token})).status_code == 202


def _json(**fields) -> bytes:
    return json.dumps({"click_id": CLICK, "external_id": "o-1", "advertiser_id": ADV, **fields}).encode()


NOW = int(time.time())  # for a malformed or mismatching signature, where the window does not matter
# Signed headers are callables: signed when the test runs (the window is ±300 s, and a
# whole suite takes longer than that after this module is imported).
GOOD = {"token": TOKEN, "click_id": CLICK, "external_id": "o-1"}
# (id, method, query, body, headers, status, code)
BAD = [
    ("no credentials", "GET", {k: v for k, v in GOOD.items() if k != "token"}, None, {}, 401, "unauthorized"),
    ("wrong token", "GET", {**GOOD, "token": "nope"}, None, {}, 401, "unauthorized"),
    ("wrong api key", "GET", {k: v for k, v in GOOD.items() if k != "token"} | {"advertiser_id": ADV}, None,
     {"X-Api-Key": "aft_live_" + "B" * 43}, 401, "unauthorized"),
    ("org key without advertiser", "GET", {k: v for k, v in GOOD.items() if k != "token"}, None,
     {"Authorization": f"Bearer {API_KEY}"}, 401, "unauthorized"),
    ("expired token", "GET", {**GOOD, "token": EXPIRED_TOKEN}, None, {}, 401, "unauthorized"),
    ("expired API key", "GET", {k: v for k, v in GOOD.items() if k != "token"}, None,
     {"X-Api-Key": EXPIRED_KEY}, 401, "unauthorized"),
    ("inactive advertiser", "GET", {**GOOD, "token": INACTIVE_TOKEN}, None, {}, 401, "unauthorized"),
    ("another organization's credential", "GET", {**GOOD, "token": FOREIGN_TOKEN}, None, {}, 401, "unauthorized"),
    ("org key naming an inactive advertiser", "GET", {k: v for k, v in GOOD.items() if k != "token"}
     | {"advertiser_id": INACTIVE_ADV}, None, {"Authorization": f"Bearer {API_KEY}"}, 401, "unauthorized"),
    ("token for another advertiser", "GET", {**GOOD, "advertiser_id": OTHER_ADV}, None, {}, 401, "unauthorized"),
    ("bad signature", "POST", {}, _json(), {"AffTok-Signature": f"t={NOW},v1={'0' * 64}",
                                              "content-type": "application/json"}, 401, "unauthorized"),
    ("signature by another advertiser's secret", "POST", {}, _json(), lambda: signed(_json(), "whsec_other"), 401, "unauthorized"),
    ("signature by an expired secret", "POST", {}, _json(), lambda: signed(_json(), OLD_SECRET), 401, "unauthorized"),
    ("replay outside the window", "POST", {}, _json(), lambda: signed(_json(), at=int(time.time()) - 301), 401, "unauthorized"),
    ("signature from the future", "POST", {}, _json(), lambda: signed(_json(), at=int(time.time()) + 400), 401, "unauthorized"),
    ("signed GET: the query is not signed", "GET", {"advertiser_id": ADV, "click_id": CLICK, "external_id": "forged"},
     None, lambda: signed(b""), 401, "unauthorized"),
    ("signed POST with a field added to the query", "POST", {"goal": "injected"}, _json(), lambda: signed(_json()), 401,
     "unauthorized"),
    ("malformed signature header", "POST", {}, _json(), {"AffTok-Signature": "v1=abc",
                                                           "content-type": "application/json"}, 401, "unauthorized"),
    ("amount NaN", "GET", {**GOOD, "amount": "NaN", "currency": "USD"}, None, {}, 422, "invalid_postback"),
    ("amount infinity", "POST", {}, _json(amount="Infinity", currency="USD"),
     lambda: signed(_json(amount="Infinity", currency="USD")), 422, "invalid_postback"),
    ("amount negative", "GET", {**GOOD, "amount": "-1", "currency": "USD"}, None, {}, 422, "invalid_postback"),
    ("too many decimals for USD", "GET", {**GOOD, "amount": "1.234", "currency": "USD"}, None, {}, 422, "invalid_postback"),
    ("decimals for JPY", "GET", {**GOOD, "amount": "1.5", "currency": "JPY"}, None, {}, 422, "invalid_postback"),
    ("amount not a number", "GET", {**GOOD, "amount": "12abc", "currency": "USD"}, None, {}, 422, "invalid_postback"),
    ("unknown currency", "GET", {**GOOD, "amount": "1", "currency": "XYZ"}, None, {}, 422, "invalid_postback"),
    ("currency XXX (no minor unit)", "GET", {**GOOD, "amount": "1", "currency": "XXX"}, None, {}, 422, "invalid_postback"),
    ("currency usd1", "GET", {**GOOD, "amount": "1", "currency": "usd1"}, None, {}, 422, "invalid_postback"),
    ("amount abc", "GET", {**GOOD, "amount": "abc", "currency": "USD"}, None, {}, 422, "invalid_postback"),
    ("JSON amount as a boolean", "POST", {"token": TOKEN}, json.dumps({**GOOD, "amount": True, "currency": "USD"}).encode(),
     {"content-type": "application/json"}, 422, "invalid_postback"),
    ("JSON amount too large", "POST", {"token": TOKEN}, json.dumps({**GOOD, "amount": 1e300, "currency": "USD"}).encode(),
     {"content-type": "application/json"}, 422, "invalid_postback"),
    ("lower-case currency", "GET", {**GOOD, "amount": "1", "currency": "usd"}, None, {}, 422, "invalid_postback"),
    ("amount without currency", "GET", {**GOOD, "amount": "1"}, None, {}, 422, "invalid_postback"),
    ("missing external_id", "GET", {k: v for k, v in GOOD.items() if k != "external_id"}, None, {}, 422, "invalid_postback"),
    ("missing click_id", "GET", {k: v for k, v in GOOD.items() if k != "click_id"}, None, {}, 422, "invalid_postback"),
    ("external_id too long", "GET", {**GOOD, "external_id": "x" * 201}, None, {}, 422, "invalid_postback"),
    ("unknown status", "GET", {**GOOD, "status": "paid"}, None, {}, 422, "invalid_postback"),
    ("metadata not an object", "GET", {**GOOD, "metadata": "[1, 2]"}, None, {}, 422, "invalid_postback"),
    ("metadata not JSON", "GET", {**GOOD, "metadata": "{oops"}, None, {}, 422, "invalid_postback"),
    ("control character", "GET", {**GOOD, "order_id": "a\x01b"}, None, {}, 422, "invalid_postback"),
    ("JSON number as status", "POST", {"token": TOKEN}, json.dumps({**GOOD, "status": 1}).encode(),
     {"content-type": "application/json"}, 422, "invalid_postback"),
    ("body not JSON", "POST", {"token": TOKEN}, b"{not json", {"content-type": "application/json"}, 400, "invalid_body"),
    ("JSON array body", "POST", {"token": TOKEN}, b"[1]", {"content-type": "application/json"}, 400, "invalid_body"),
    ("unsupported content type", "POST", {"token": TOKEN}, b"<xml/>", {"content-type": "text/xml"}, 415,
     "unsupported_media_type"),
    ("oversized body", "POST", {"token": TOKEN}, json.dumps({**GOOD, "metadata": {"x": "y" * 20_000}}).encode(),
     {"content-type": "application/json"}, 413, "payload_too_large"),
    ("PUT", "PUT", GOOD, None, {}, 405, "method_not_allowed"),
]


@pytest.mark.parametrize(("method", "query", "body", "headers", "status", "code"), [b[1:] for b in BAD],
                         ids=[b[0] for b in BAD])
async def test_bad_postbacks_get_their_4xx_and_write_nothing(pb, redis, keys, method, query, body, headers, status, code):
    app, client = pb
    headers = headers() if callable(headers) else headers
    response = await client.request(method, "/postback", params=query, content=body, headers=headers)
    assert response.status_code == status, response.text
    payload = response.json()
    assert payload["code"] == code and payload["message"] and payload["correlation_id"]
    if code == "invalid_postback":
        assert payload["field"] in payload["message"]
    assert await redis.xlen(keys.conversion_stream(0)) == 0
    assert not app.runtime.postback_spool.has_files()
    assert app.runtime.metrics.postbacks[code] == 1


async def test_postbacks_are_spooled_while_redis_is_away_and_replayed(edge_settings, redis, keys, tmp_path):
    import httpx

    from edge.app import create_app, running
    await publish_auth(redis, keys)
    app = create_app(edge_settings)
    async with running(app):
        await app.runtime.postback_auth.reload_all()
        real = app.runtime.postback_committer.redis
        app.runtime.postback_committer.redis = type(real).from_url("redis://127.0.0.1:1", socket_connect_timeout=0.2)
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://edge.test") as client:
            ids = [f"o-{n}" for n in range(3)]
            for external_id in ids:
                response = await client.get("/postback", params={**GOOD, "external_id": external_id})
                assert response.status_code == 202
        assert await redis.xlen(keys.conversion_stream(0)) == 0
        assert app.runtime.metrics.postback_spool.spooled == 3
        app.runtime.postback_committer.redis = real
        from tests.edge.conftest import wait_for

        async def replayed() -> bool:
            return await redis.xlen(keys.conversion_stream(0)) > 0

        assert await wait_for(replayed)
    assert sorted(r.external_id for r in await entries(redis, keys)) == ids


async def test_metrics_count_postbacks_and_their_latency(pb):
    app, client = pb
    await client.get("/postback", params=GOOD)
    await client.get("/postback", params={**GOOD, "token": "x"})
    text = (await client.get("/metrics")).text
    assert 'afftok_postbacks_total{outcome="accepted"} 1.0' in text
    assert 'afftok_postbacks_total{outcome="unauthorized"} 1.0' in text
    assert "afftok_postback_latency_seconds_count 1.0" in text



async def test_query_values_are_url_decoded_and_bad_encodings_refused(pb, redis, keys):
    app, client = pb
    ok = await client.get(f"/postback?token={TOKEN}&click_id={CLICK}&external_id=order+%231%20b&goal=caf%C3%A9")
    assert ok.status_code == 202, ok.text
    bad = await client.get(f"/postback?token={TOKEN}&click_id={CLICK}&external_id=%ff")
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_body"
    [record] = await entries(redis, keys)
    assert (record.external_id, record.goal) == ("order #1 b", "café")


async def test_a_postback_right_after_start_is_authenticated_and_ready_waits_for_credentials(edge_settings, redis, keys):
    import httpx

    from edge.app import create_app, running
    await publish_auth(redis, keys)
    app = create_app(edge_settings)
    async with running(app):  # no manual reload: start-up loads the credentials before serving
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://edge.test") as client:
            assert (await client.get("/postback", params=GOOD)).status_code == 202
            ready = await client.get("/readyz")
            assert ready.status_code == 200 and ready.json()["postback_auth_loaded"] is True
            app.runtime.postback_auth.loaded = False  # as before the first load
            assert (await client.get("/readyz")).status_code == 503


async def test_a_postbacks_customer_address_is_truncated_when_the_organization_does(pb, redis, keys):
    app, client = pb
    await redis.hset(keys.postback_auth, f"adv:{ADV}", _enc.encode(
        AdvertiserAuth(org_id=ORG, advertiser_id=ADV, ip_truncate=True)))
    await app.runtime.postback_auth.refresh([f"adv:{ADV}"])
    response = await client.get("/postback", params={**GOOD, "ip": "198.51.100.77", "country": "de"})
    assert response.status_code == 202, response.text
    [record] = await entries(redis, keys)
    assert (record.ip, record.country) == ("198.51.100.0", "DE")


async def test_an_oversized_body_without_a_length_is_refused_while_it_streams(pb, redis, keys):
    app, client = pb

    async def chunks():
        for _ in range(40):
            yield b'{"pad": "' + b"x" * 1000 + b'", '

    response = await client.post("/postback", params={"token": TOKEN}, content=chunks(),
                                 headers={"content-type": "application/json"})
    assert response.status_code == 413 and response.json()["code"] == "payload_too_large"
    assert await redis.xlen(keys.conversion_stream(0)) == 0


async def test_an_upper_case_advertiser_id_names_the_same_advertiser(pb, redis, keys):
    app, client = pb
    hex_adv = "abcdef00-0000-4000-8000-00000000abcd"
    await redis.hset(keys.postback_auth, f"adv:{hex_adv}", _enc.encode(AdvertiserAuth(org_id=ORG, advertiser_id=hex_adv)))
    await app.runtime.postback_auth.refresh([f"adv:{hex_adv}"])
    params = {"click_id": CLICK, "external_id": "o-up", "advertiser_id": hex_adv.upper()}
    response = await client.get("/postback", params=params, headers={"X-Api-Key": API_KEY})
    assert response.status_code == 202, response.text
    client.cookies.set("afftok_cid", CLICK)
    await client.get("/pixel.gif", params={"advertiser_id": hex_adv.upper(), "external_id": "p-up"})
    assert [(r.external_id, r.advertiser_id) for r in await entries(redis, keys)] == [
        ("o-up", hex_adv), ("p-up", hex_adv)]


async def test_an_emptied_hash_keeps_the_credentials_in_memory_until_it_is_resynced(pb, redis, keys):
    app, client = pb
    await redis.delete(keys.postback_auth)  # a Redis restarted without its data
    await app.runtime.postback_auth.reload_all()
    assert (await client.get("/postback", params=GOOD)).status_code == 202
    await publish_auth(redis, keys, **{credential_field("tok", "pbt_new"): _enc.encode(
        PostbackCredential(org_id=ORG, advertiser_id=ADV))})  # the api's resync
    await redis.hdel(keys.postback_auth, credential_field("tok", TOKEN))
    await app.runtime.postback_auth.reload_all()
    assert (await client.get("/postback", params=GOOD)).status_code == 401
    assert (await client.get("/postback", params={**GOOD, "token": "pbt_new"})).status_code == 202
