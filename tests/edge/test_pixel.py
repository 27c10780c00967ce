"""The conversion pixel: /pixel.gif records a pending conversion from the click cookie
and always answers the image; /pixel.js, run in node with a minimal page (a script tag,
``Image``), sends tag attributes, a call queued before it loaded and a call after it."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from urllib.parse import urlsplit

import httpx
import pytest

from core.models import AdvertiserAuth
from core.settings import load_settings
from core.store.link_configs import publish_links
from edge.app import create_app, running
from tests.edge.conftest import link
from tests.edge.test_postback import ADV, CLICK, ORG, OTHER_ADV, _enc, entries, pb  # noqa: F401  (pb: fixture)

NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed")

PAGE = """
const sent = [];
const attrs = %(attrs)s;
globalThis.window = globalThis;
window.afftok = function () { (window.afftok.q = window.afftok.q || []).push(arguments); };
afftok("conversion", {external_id: "queued-1", amount: "9.99", currency: "EUR", metadata: {plan: "pro"}});
globalThis.document = {currentScript: {src: "https://edge.test/pixel.js?v=3",
                                       getAttribute: (name) => (name in attrs ? attrs[name] : null)}};
globalThis.Image = function () {
  const image = {};
  Object.defineProperty(image, "src", {set(value) { sent.push(value); }});
  return image;
};
eval(require("fs").readFileSync(0, "utf8"));
afftok("conversion", {external_id: "later-2", advertiser_id: "%(other)s", goal: "upsell"});
afftok("pageview", {external_id: "ignored"});
console.log(JSON.stringify(sent));
"""


def run_page(script: bytes, attrs: dict) -> list[str]:
    page = PAGE % {"attrs": json.dumps(attrs), "other": OTHER_ADV}
    done = subprocess.run([NODE, "-e", page], input=script, capture_output=True, timeout=30, check=True)
    return json.loads(done.stdout)


@needs_node
async def test_the_snippet_sends_tag_queued_and_later_conversions_to_the_pixel(pb, redis, keys):
    app, client = pb
    script = await client.get("/pixel.js")
    assert script.headers["content-type"].startswith("application/javascript")
    urls = run_page(script.content, {"data-advertiser-id": ADV, "data-external-id": "tag-0", "data-amount": "5",
                                     "data-currency": "USD"})
    assert len(urls) == 3
    client.cookies.set("afftok_cid", CLICK)
    for url in urls:
        parts = urlsplit(url)
        assert (parts.scheme, parts.netloc, parts.path) == ("https", "edge.test", "/pixel.gif")
        image = await client.get(f"/pixel.gif?{parts.query}")
        assert image.status_code == 200 and image.content.startswith(b"GIF89a")
    records = {r.external_id: r for r in await entries(redis, keys)}
    assert sorted(records) == ["later-2", "queued-1", "tag-0"]
    assert {r.status for r in records.values()} == {"pending"}
    assert (records["tag-0"].advertiser_id, records["tag-0"].amount_minor, records["tag-0"].currency) == (ADV, 500, "USD")
    assert (records["queued-1"].advertiser_id, records["queued-1"].amount_minor) == (ADV, 999)
    assert records["queued-1"].metadata == '{"plan":"pro"}'
    assert (records["later-2"].advertiser_id, records["later-2"].goal) == (OTHER_ADV, "upsell")


@needs_node
async def test_a_tag_without_an_external_id_sends_nothing_until_called(pb):
    app, client = pb
    script = await client.get("/pixel.js")
    assert len(run_page(script.content, {"data-advertiser-id": ADV})) == 2  # the two calls only


async def test_a_head_request_answers_the_image_and_records_nothing(pb, redis, keys):
    app, client = pb
    client.cookies.set("afftok_cid", CLICK)
    response = await client.head("/pixel.gif", params={"advertiser_id": ADV, "external_id": "prefetch"})
    assert response.status_code == 200 and response.headers["content-type"] == "image/gif"
    assert await redis.xlen(keys.conversion_stream(0)) == 0
    await client.get("/pixel.gif", params={"advertiser_id": ADV, "external_id": "real"})
    text = (await client.get("/metrics")).text
    assert 'afftok_pixels_total{outcome="accepted"} 1.0' in text
    assert 'afftok_pixels_total{outcome="method_not_allowed"} 1.0' in text


async def test_the_pixel_records_a_pending_conversion_from_the_cookie_and_always_answers_a_gif(pb, redis, keys):
    app, client = pb
    no_click = await client.get("/pixel.gif", params={"advertiser_id": ADV, "external_id": "p-3"})
    client.cookies.set("afftok_cid", CLICK)  # as the redirect left it
    ok = await client.get("/pixel.gif", params={"advertiser_id": ADV, "external_id": "p-1", "amount": "9.99",
                                                "currency": "EUR"},
                          headers={"user-agent": "Mozilla/5.0", "cf-ipcountry": "FR"})
    unknown = await client.get("/pixel.gif", params={"advertiser_id": str(uuid.uuid4()), "external_id": "p-2"})
    bad = await client.get("/pixel.gif", params={"advertiser_id": ADV, "external_id": "p-4", "amount": "x",
                                                 "currency": "EUR"})
    for response in (ok, unknown, no_click, bad):
        assert response.status_code == 200 and response.headers["content-type"] == "image/gif"
        assert response.content.startswith(b"GIF89a")
    [record] = await entries(redis, keys)
    assert (record.source, record.actor, record.status, record.click_id) == ("pixel", "pixel", "pending", CLICK)
    assert (record.amount_minor, record.currency, record.ip, record.user_agent, record.country) == (
        999, "EUR", "203.0.113.7", "Mozilla/5.0", "FR")
    assert app.runtime.metrics.pixels == {"accepted": 1, "unknown_advertiser": 1, "no_click_id": 1,
                                          "invalid_postback": 1}
    js = await client.get("/pixel.js")
    assert js.status_code == 200 and b"pixel.gif" in js.content and "max-age" in js.headers["cache-control"]


@pytest.mark.parametrize(("public_edge_url", "attributes"), [
    ("https://track.example", "SameSite=None; Secure"),  # the pixel on another site still gets it
    ("http://track.example", "SameSite=Lax"),  # browsers drop SameSite=None without Secure
])
async def test_the_click_cookie_is_samesite_none_and_secure_only_over_https(
    redis, keys, tmp_path, redis_url, redis_prefix, public_edge_url, attributes,
):
    await publish_links(redis, keys, [link("tokS")])
    settings = load_settings({}, redis_url=redis_url, redis_prefix=redis_prefix, data_dir=tmp_path / "d",
                             spool_fsync=False, public_edge_url=public_edge_url)
    app = create_app(settings)
    async with running(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://edge.test") as client:
            response = await client.get("/c/tokS")
    cookie = response.headers["set-cookie"]
    assert cookie == f"afftok_cid={response.cookies['afftok_cid']}; Max-Age=2592000; Path=/; HttpOnly; {attributes}"


async def test_the_pixel_truncates_the_visitors_address_when_the_organization_does(pb, redis, keys):
    app, client = pb
    await redis.hset(keys.postback_auth, f"adv:{ADV}", _enc.encode(
        AdvertiserAuth(org_id=ORG, advertiser_id=ADV, ip_truncate=True)))
    await app.runtime.postback_auth.refresh([f"adv:{ADV}"])
    client.cookies.set("afftok_cid", CLICK)
    await client.get("/pixel.gif", params={"advertiser_id": ADV, "external_id": "p-1"})
    [record] = await entries(redis, keys)
    assert record.ip == "203.0.113.0"
