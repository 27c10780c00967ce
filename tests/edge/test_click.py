import asyncio
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

from core.ids import click_id_time_ms, is_click_id
from tests.edge.conftest import link, stream_records, wait_for

IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"


def click_id_of(response) -> str:
    return response.cookies["afftok_cid"]


async def test_redirect_records_the_click_before_answering(edge, publish, redis, keys):
    app, client = edge
    await publish(link())
    response = await client.get(
        "/c/tok1?sub1=abc&sub2=two&source_id=src", headers={"cf-ipcountry": "us", "user-agent": IPHONE, "referer": "https://ref.example/p"},
    )
    assert response.status_code == 302
    click_id = click_id_of(response)
    assert is_click_id(click_id)
    assert response.headers["location"] == f"https://land.example/offer?cid={click_id}&s1=abc&c=US"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["content-length"] == "0"
    cookie = response.headers["set-cookie"]
    assert cookie == f"afftok_cid={click_id}; Max-Age=2592000; Path=/; HttpOnly; SameSite=Lax"

    [record] = await stream_records(redis, keys.click_stream(0))
    assert record.click_id == click_id
    assert record.ts_ms == click_id_time_ms(click_id)
    assert (record.outcome, record.sub1, record.sub2, record.sub3, record.source_id) == ("redirect", "abc", "two", None, "src")
    assert (record.ip, record.country, record.device_type) == ("203.0.113.7", "US", "mobile")
    assert (record.user_agent, record.referer) == (IPHONE, "https://ref.example/p")
    assert (record.link_id, record.offer_id) == (link().link_id, link().offer_id)


async def test_secure_cookie_over_https(edge, publish):
    app, client = edge
    await publish(link())
    response = await client.get("https://edge.test/c/tok1")
    assert response.status_code == 302
    assert response.headers["set-cookie"].endswith("; Secure")


@pytest.mark.parametrize("path", ["/c/nope", "/c/", "/c/a.b", "/c/a/b", "/c/" + "x" * 65, "/c/%0D%0Aevil"])
async def test_unknown_or_malformed_token_is_a_json_404(edge, publish, redis, keys, path):
    app, client = edge
    await publish(link())
    response = await client.get(path, headers={"x-request-id": "req-123"})
    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "message": "Nothing here.", "correlation_id": "req-123"}
    assert await redis.exists(keys.click_stream(0)) == 0


async def test_insane_request_id_is_replaced(edge):
    app, client = edge
    response = await client.get("/c/nope", headers={"x-request-id": "a b<script>"})
    body = response.json()
    assert body["correlation_id"] != "a b<script>" and len(body["correlation_id"]) == 32


@pytest.mark.parametrize(
    ("changes", "headers", "outcome"),
    [
        ({"offer_status": "paused"}, {}, "fallback_paused"),
        ({"affiliate_status": "pending"}, {}, "fallback_unapproved"),
        ({"geo_allow": ["US"]}, {"cf-ipcountry": "DE"}, "fallback_geo"),
        ({"geo_deny": ["DE"]}, {"cf-ipcountry": "de"}, "fallback_geo"),
    ],
)
async def test_fallbacks(edge, publish, redis, keys, changes, headers, outcome):
    app, client = edge
    await publish(link(**changes))
    response = await client.get("/c/tok1", headers=headers)
    assert response.status_code == 302
    click_id = click_id_of(response)
    assert response.headers["location"] == f"https://fallback.example/sorry?cid={click_id}"
    [record] = await stream_records(redis, keys.click_stream(0))
    assert (record.click_id, record.outcome) == (click_id, outcome)


async def test_no_fallback_is_a_404_but_the_click_is_kept(edge, publish, redis, keys):
    app, client = edge
    await publish(link(offer_status="paused", fallback_url=None))
    response = await client.get("/c/tok1")
    assert response.status_code == 404
    assert response.json()["code"] == "link_unavailable"
    assert "location" not in response.headers
    [record] = await stream_records(redis, keys.click_stream(0))
    assert record.outcome == "unavailable"


async def test_geo_from_the_offline_database_when_no_header(edge_settings, redis, keys, publish):
    import httpx

    from edge.app import create_app, running

    await publish(link(geo_allow=["GB"]))
    app = create_app(edge_settings)
    async with running(app):
        for ip, expected in [("81.2.69.160", "https://land.example/"), ("8.8.8.8", "https://fallback.example/")]:
            transport = httpx.ASGITransport(app=app, client=(ip, 1234))
            async with httpx.AsyncClient(transport=transport, base_url="http://edge.test") as client:
                response = await client.get("/c/tok1")
            assert response.headers["location"].startswith(expected)


async def test_config_change_is_picked_up_without_restart(edge, publish):
    app, client = edge
    await publish(link())
    assert (await client.get("/c/tok1")).headers["location"].startswith("https://land.example/")
    await publish(link(destination_url="https://new.example/?c={click_id}"))

    async def moved():
        return (await client.get("/c/tok1")).headers["location"].startswith("https://new.example/")

    assert await wait_for(moved)
    await publish(link(offer_status="paused"))

    async def paused():
        return (await client.get("/c/tok1")).headers["location"].startswith("https://fallback.example/")

    assert await wait_for(paused)


async def test_token_published_after_a_miss_is_served(edge, publish):
    app, client = edge
    assert (await client.get("/c/late")).status_code == 404
    await publish(link("late"))

    async def served():
        return (await client.get("/c/late")).status_code == 302

    assert await wait_for(served)


BAD_QUERIES = [
    (b"sub1=" + b"x" * 9000, None),
    (b"sub1=%zz", "%zz"),
    (b"sub1=%", "%"),
    (b"sub1=%0D%0ASet-Cookie:%20evil=1", "\r\nSet-Cookie: evil=1"),
    (b"sub1=%F0%9F%98%80", "\U0001F600"),
    (b"sub1=%FF", "%FF"),
    (b"sub1=\xff\xfe", "%FF%FE"),
    (b"sub1=a%00b", "a%00b"),
    (b"sub1=a+b", "a b"),
]


@pytest.mark.parametrize(("query", "stored"), BAD_QUERIES)
async def test_bad_queries_never_break_the_redirect(edge, publish, redis, keys, query, stored):
    app, client = edge
    await publish(link())
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": "/c/tok1", "raw_path": b"/c/tok1", "query_string": query, "root_path": "",
        "headers": [(b"host", b"edge.test")], "client": ("203.0.113.7", 1), "server": ("edge.test", 80),
    }
    await app(scope, receive, send)
    start = sent[0]
    assert start["status"] == 302
    headers = start["headers"]
    assert [name for name, _ in headers] == [b"location", b"cache-control", b"set-cookie", b"content-length"]
    assert all(b"\r" not in value and b"\n" not in value for _, value in headers)
    assert dict(headers)[b"set-cookie"].startswith(b"afftok_cid=") and b"evil" not in dict(headers)[b"set-cookie"]
    location = dict(headers)[b"location"].decode("ascii")
    assert urlsplit(location).hostname == "land.example"
    [record] = await stream_records(redis, keys.click_stream(0))
    assert record.sub1 == stored
    expected_s1 = "" if stored is None else stored
    assert parse_qs(urlsplit(location).query, keep_blank_values=True).get("s1", [""])[0] == expected_s1


@pytest.mark.parametrize(
    "sub1", ["//evil.example/", "@evil.example", "https://evil.example", "x#frag", "a&c=XX", "..%2F..", "\u00e9\u00e8"],
)
async def test_macros_are_url_encoded_and_the_host_never_changes(edge, publish, sub1):
    app, client = edge
    await publish(link(destination_url="https://land.example/{sub1}/p?q={sub1}"))
    response = await client.get("/c/tok1", params={"sub1": sub1})
    location = response.headers["location"]
    parts = urlsplit(location)
    assert (parts.scheme, parts.hostname, parts.fragment) == ("https", "land.example", "")
    assert location.isascii()
    assert parse_qs(parts.query)["q"] == [sub1]


async def test_concurrent_clicks_share_round_trips_and_each_is_stored_once(edge, publish, redis, keys):
    app, client = edge
    await publish(link())
    await client.get("/c/tok1")  # warm the cache
    responses = await asyncio.gather(*(client.get(f"/c/tok1?sub1={i}") for i in range(500)))
    assert {r.status_code for r in responses} == {302}
    answered = [click_id_of(r) for r in responses]
    entries = await redis.xlen(keys.click_stream(0))
    assert entries < 100, f"{entries} stream entries for 501 clicks: no batching"
    stored = [r.click_id for r in await stream_records(redis, keys.click_stream(0))]
    assert len(stored) == len(set(stored)) == 501
    assert set(answered) <= set(stored)


async def test_health_readiness_and_errors(edge, publish):
    app, client = edge
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["redis"] is True
    missing = await client.get("/nope", headers={"x-request-id": "r1"})
    assert missing.status_code == 404
    assert missing.json() == {"code": "not_found", "message": "Nothing here.", "correlation_id": "r1"}
    wrong = await client.post("/healthz")
    assert wrong.status_code == 405 and wrong.json()["code"] == "method_not_allowed"
    post_click = await client.post("/c/tok1")
    assert post_click.status_code == 405 and orjson.loads(post_click.content)["code"] == "method_not_allowed"
