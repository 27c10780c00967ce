"""/pixel.js run in node with a minimal page (a script tag, ``Image``), and the pixel
requests it makes sent on to the edge: tag attributes, a call queued before the script
loaded and a call after it each become one pending conversion."""

from __future__ import annotations

import json
import shutil
import subprocess
from urllib.parse import urlsplit

import pytest

from tests.edge.test_postback import ADV, CLICK, OTHER_ADV, entries, pb  # noqa: F401  (pb: fixture)

NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")

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
