"""The dashboard in Chromium against a real stack: ``afftok up`` on the harness's Postgres
and Redis, clicks and postbacks through the edge, then the page, signed in with an
organization key and with an affiliate key, must show exactly what GET /v1/stats answers
for the same query.

Run it alone with ``pytest tests/api/test_dashboard_browser.py``. It drives the Debian
``chromium`` package (``make test`` installs it); it never downloads a browser. Set
``AFFTOK_SCREENSHOT=docs/dashboard.png`` to keep the screenshot it takes.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import jwt
import msgspec
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, async_playwright

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
ZONE = "Asia/Kolkata"
BROWSER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"


JWT_SECRET = "dashboard-browser-test-secret-0123456789"


def _user_token(org_id: str, role: str) -> str:
    """A dashboard user's token (HS256, Supabase-style claims), as tenancy accepts it."""
    now = int(time.time())
    claims = {"sub": "user-dash", "aud": "authenticated", "iat": now, "exp": now + 600,
              "app_metadata": {"org_id": org_id, "role": role}}
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


class Stack(msgspec.Struct, kw_only=True):
    api_url: str
    edge_url: str
    key: str  # the demo organization's admin key
    org_id: str
    demo_link: str
    demo_postback_url: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


class Traffic(msgspec.Struct, kw_only=True):
    clicks: int
    conversions: int
    approved: int
    affiliate_key: str  # the demo affiliate's


# ---- the stack -------------------------------------------------------------------------

def _start_up(data_dir: Path, database_url: str, redis_url: str, redis_prefix: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL") and not k.startswith("AFFTOK_")}
    env.update(
        DATABASE_URL=database_url, REDIS_URL=redis_url, AFFTOK_REDIS_PREFIX=redis_prefix,
        AFFTOK_DATA_DIR=str(data_dir), AFFTOK_EDGE_PORT="0", AFFTOK_API_PORT="0", AFFTOK_SPOOL_FSYNC="0",
        AFFTOK_COUNTRY_HEADER="cf-ipcountry", AFFTOK_TRUST_FORWARDED_FOR="1",  # visitors from several places
        AFFTOK_JWT_HS256_SECRET=JWT_SECRET,  # dashboard users sign in with tokens too
    )
    log = open(data_dir.parent / "up.log", "wb")
    try:
        return subprocess.Popen([sys.executable, "-m", "afftok", "up"], env=env, stdout=log, stderr=subprocess.STDOUT)
    finally:
        log.close()


async def _wait_for_up_json(proc: subprocess.Popen, data_dir: Path, timeout_s: float = 60) -> dict:
    path = data_dir / "up.json"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"afftok up exited early:\n{(data_dir.parent / 'up.log').read_text()}")
        if path.exists():
            up = json.loads(path.read_text())
            if up["pid"] == proc.pid:
                return up
        await asyncio.sleep(0.2)
    raise AssertionError(f"no up.json after {timeout_s}s:\n{(data_dir.parent / 'up.log').read_text()}")


@pytest_asyncio.fixture
async def stack(tmp_path, database_url, redis_url, redis_prefix, redis):
    data_dir = tmp_path / "afftok"
    data_dir.mkdir()
    proc = _start_up(data_dir, database_url, redis_url, redis_prefix)
    try:
        up = await _wait_for_up_json(proc, data_dir)
        yield Stack(api_url=up["api_url"], edge_url=up["edge_url"], key=up["demo_api_key"], org_id=up["demo_org_id"],
                    demo_link=up["demo_link"], demo_postback_url=up["demo_postback_url"])
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---- traffic through the edge ----------------------------------------------------------

async def _create(api: httpx.AsyncClient, path: str, body: dict) -> dict:
    response = await api.post(path, json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def _only(api: httpx.AsyncClient, path: str) -> dict:
    response = await api.get(path)
    assert response.status_code == 200, response.text
    (item,) = response.json()["data"]
    return item


async def _click(edge: httpx.AsyncClient, link: str, country: str, visitor: int) -> str:
    """One visitor's click; returns its click id. A link created a moment ago may take a
    moment to reach the edge (published through Redis)."""
    headers = {"CF-IPCountry": country, "X-Forwarded-For": f"203.0.113.{visitor}", "User-Agent": BROWSER_AGENT}
    deadline = time.monotonic() + 10
    while True:
        response = await edge.get(link, headers=headers)
        if response.status_code == 302 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert response.status_code == 302, response.text
    return dict(p.split("=", 1) for p in urlsplit(response.headers["location"]).query.split("&"))["click_id"]


async def _postback(edge: httpx.AsyncClient, template: str, click_id: str, order: str, **changes: str) -> None:
    url = template.replace("{click_id}", click_id).replace("external_id=demo-order-1", f"external_id={order}")
    for name, value in changes.items():
        url = url.replace(f"{name}=USD", f"{name}={value}") if name == "currency" else f"{url}&{name}={value}"
    response = await edge.get(url, headers={"User-Agent": BROWSER_AGENT})
    assert response.status_code == 202, response.text


async def _stats(api: httpx.AsyncClient, **query) -> dict:
    response = await api.get("/v1/stats", params=query)
    assert response.status_code == 200, response.text
    return response.json()


@pytest_asyncio.fixture
async def traffic(stack) -> Traffic:
    """Two offers (USD and EUR), two affiliates, ten clicks from three countries, four
    postbacks (one of them pending), all in the pipeline's tables before the page opens."""
    async with httpx.AsyncClient(base_url=stack.api_url, headers=stack.headers) as api, httpx.AsyncClient() as edge:
        advertiser = await _only(api, "/v1/advertisers")
        demo_affiliate = await _only(api, "/v1/affiliates")
        demo_offer = await _only(api, "/v1/offers")
        spring = await _create(api, "/v1/offers", {
            "advertiser_id": advertiser["id"], "name": "Spring Promo", "currency": "EUR", "payout_minor": 300,
            "revenue_minor": 500, "destination_url": "https://example.com/spring?click_id={click_id}",
        })
        partner = await _create(api, "/v1/affiliates", {"name": "Partner Media"})
        spring_link = await _create(api, "/v1/links", {"offer_id": spring["id"], "affiliate_id": demo_affiliate["id"]})
        partner_link = await _create(api, "/v1/links", {"offer_id": demo_offer["id"], "affiliate_id": partner["id"]})
        affiliate_key = (await _create(api, "/v1/admin/api-keys", {
            "name": "dashboard test", "role": "affiliate", "affiliate_id": demo_affiliate["id"],
        }))["key"]

        spring_url, partner_url = spring_link["tracking_url"], partner_link["tracking_url"]
        plan = [(stack.demo_link, "US")] * 3 + [(stack.demo_link, "IN")] * 2 + [(spring_url, "DE")] * 3 \
            + [(partner_url, "US")] * 2
        clicks = [await _click(edge, link, country, visitor) for visitor, (link, country) in enumerate(plan, 1)]
        template = stack.demo_postback_url
        await _postback(edge, template, clicks[0], "order-1")
        await _postback(edge, template, clicks[3], "order-2")
        await _postback(edge, template, clicks[5], "order-3", currency="EUR")
        await _postback(edge, template, clicks[8], "order-4", status="pending")

        deadline = time.monotonic() + 30
        while True:
            totals = (await _stats(api))["totals"]
            if (totals["clicks"], totals["conversions"]["total"]) == (10, 4) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.3)
        conversions = totals["conversions"]
        assert (totals["clicks"], conversions["approved"], conversions["total"]) == (10, 3, 4), totals
    return Traffic(clicks=10, conversions=4, approved=3, affiliate_key=affiliate_key)


# ---- the browser -----------------------------------------------------------------------

@pytest_asyncio.fixture
async def browser():
    if not (CHROMIUM.exists() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (the Debian package chromium)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            await browser.close()


HEADLINE = """() => Object.fromEntries([...document.querySelectorAll('[data-testid^="headline-"]')]
    .filter((node) => !node.closest('[hidden]')).map((node) => [node.dataset.testid, node.dataset.value]))"""
ROWS = """([table, attribute]) => [...document.querySelectorAll(`[data-testid="${table}"] tbody tr[${attribute}]`)]
    .map((row) => ({id: row.getAttribute(attribute),
                    ...Object.fromEntries([...row.cells].map((cell) => [cell.dataset.testid, cell.dataset.value]))}))"""


def _expected_headline(totals: dict) -> dict:
    return {
        "headline-clicks": str(totals["clicks"]), "headline-unique-clicks": str(totals["unique_clicks"]),
        "headline-conversions-approved": str(totals["conversions"]["approved"]),
        "headline-conversions-total": str(totals["conversions"]["total"]),
        "headline-conversion-rate": totals["conversion_rate"] or "",
    }


def _expected_money(totals: dict, measures: list[str]) -> list[dict]:
    return [
        {"id": m["currency"], "currency": m["currency"],
         **{f"money-{m['currency']}-{name}": str(m[f"{name}_minor"] if name != "epc" else m["epc"])
            for name in ("revenue", "payout", "profit", "epc") if name in measures}}
        for m in totals["money"]
    ]


def _expected_rows(page: dict, key: str) -> list[dict]:
    def money(row, name):
        return " ".join(f"{m['currency']}:{m[f'{name}_minor']}" for m in row["money"] if f"{name}_minor" in m)

    return [
        {"id": row["key"][key] or "", "label": row["key"][key] or "", "clicks": str(row["clicks"]),
         "unique-clicks": str(row["unique_clicks"]), "conversions-approved": str(row["conversions"]["approved"]),
         "conversions-total": str(row["conversions"]["total"]), "conversion-rate": row["conversion_rate"] or "",
         **{name: money(row, name) for name in ("revenue", "payout", "profit") if name in page["query"]["measures"]}}
        for row in page["data"]
    ]


async def _sign_in(page: Page, key: str) -> None:
    await page.get_by_test_id("api-key").fill(key)
    await page.get_by_test_id("sign-in").click()


async def _wait_for_report(page: Page, zone: str, bucket: str) -> dict[str, str]:
    """The query the page's numbers are for, once it has drawn them for this zone and bucket."""
    await page.wait_for_function(
        "([zone, bucket]) => { const r = document.getElementById('report');"
        " return !r.hidden && r.dataset.tz === zone && r.dataset.bucket === bucket; }",
        arg=[zone, bucket], timeout=15_000,
    )
    return await page.evaluate("() => ({...document.getElementById('report').dataset})")


async def _assert_page_matches_api(page: Page, api: httpx.AsyncClient, query: dict[str, str]) -> dict:
    """The headline, money and top tables on the page equal the API's answers to the page's query."""
    base = {"from": query["from"], "to": query["to"], "tz": query["tz"]}
    ungrouped = await _stats(api, **base)
    totals, measures = ungrouped["totals"], ungrouped["query"]["measures"]
    assert await page.evaluate(HEADLINE) == _expected_headline(totals)
    assert await page.get_by_test_id("headline-clicks").inner_text() == f"{totals['clicks']:,}"
    money = await page.evaluate(ROWS, ["money", "data-currency"])
    assert money == _expected_money(totals, measures)
    for table, dimension, key, attribute in [("top-offers", "offer", "offer_id", "data-offer-id"),
                                             ("top-affiliates", "affiliate", "affiliate_id", "data-affiliate-id"),
                                             ("top-countries", "country", "country", "data-country")]:
        expected = await _stats(api, **base, group_by=dimension, sort="-clicks", limit="10")
        assert await page.evaluate(ROWS, [table, attribute]) == _expected_rows(expected, key), table
    chart = await page.evaluate("() => ({...document.querySelector('[data-testid=chart]').dataset})")
    assert (int(chart["clicks"]), int(chart["approved"])) == (totals["clicks"], totals["conversions"]["approved"])
    assert await page.locator("[data-testid=chart] canvas").count() == 1
    assert await page.get_by_test_id("refresh-status").get_attribute("data-state") == "ok"
    return totals


async def test_the_dashboard_shows_what_the_api_answers(browser: Browser, stack, traffic, tmp_path):
    context = await browser.new_context(
        locale="en-US", timezone_id="Europe/Berlin", viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    problems: list[str] = []
    api_origin = "{0.scheme}://{0.netloc}".format(urlsplit(stack.api_url))
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda m: "Refused" in m.text and problems.append(f"blocked by the CSP: {m.text}"))
    page.on("request", lambda r: r.url.startswith((api_origin + "/", "data:"))
            or problems.append(f"elsewhere: {r.url}"))
    async with httpx.AsyncClient(base_url=stack.api_url, headers=stack.headers) as api:
        await page.goto(f"{stack.api_url}/dashboard")
        await page.get_by_test_id("api-key").wait_for()
        assert await page.get_by_test_id("tz").input_value() == "Europe/Berlin"  # the browser's zone

        # A bad key: the sign-in form again, with the API's message.
        await _sign_in(page, "aft_live_not_a_real_key")
        refused = (await api.get("/v1/stats", headers={"Authorization": "Bearer aft_live_not_a_real_key"})).json()
        await page.get_by_test_id("sign-in-error").filter(has_text=refused["message"]).wait_for(timeout=10_000)
        assert await page.get_by_test_id("report").is_hidden()

        # The organization's view, today in India, by hour.
        await _sign_in(page, stack.key)
        await page.get_by_test_id("tz").select_option(ZONE)
        await page.get_by_test_id("range-today").click()
        query = await _wait_for_report(page, ZONE, "hour")
        await _assert_page_matches_api(page, api, query)
        assert await page.get_by_test_id("view").inner_text() == "Organization view"
        assert await page.locator("[data-testid=recent-conversions] tbody tr[data-conversion-id]").count() == 4
        assert await page.get_by_test_id("chart").get_attribute("data-points") == "24"  # India keeps no DST
        await page.get_by_test_id("range-7d").click()
        query = await _wait_for_report(page, ZONE, "day")
        # Every click and conversion, checked over 7 days: "today" in India may have turned
        # into tomorrow (18:30 UTC) since the traffic was sent.
        totals = await _assert_page_matches_api(page, api, query)
        conversions = totals["conversions"]
        assert (totals["clicks"], conversions["approved"], conversions["total"]) == (
            traffic.clicks, traffic.approved, traffic.conversions)
        assert {m["currency"] for m in totals["money"]} == {"EUR", "USD"}
        assert await page.get_by_test_id("chart").get_attribute("data-points") == "7"
        shot = await page.screenshot(path=tmp_path / "dashboard.png", full_page=True)
        if os.environ.get("AFFTOK_SCREENSHOT"):
            Path(os.environ["AFFTOK_SCREENSHOT"]).write_bytes(shot)

        # A failed refresh keeps the last numbers and says so; the next good one clears it.
        shown = await page.evaluate(HEADLINE)
        down = {"code": "unavailable", "message": "down for a moment", "correlation_id": "test"}
        await page.route("**/v1/stats?*", lambda route: route.fulfill(status=503, json=down))
        status = page.get_by_test_id("refresh-status")
        await page.locator("[data-testid=refresh-status][data-state=error]").wait_for(timeout=15_000)
        assert "down for a moment" in await status.inner_text()
        assert await page.evaluate(HEADLINE) == shown
        await page.unroute("**/v1/stats?*")
        await page.locator("[data-testid=refresh-status][data-state=ok]").wait_for(timeout=15_000)

        # The demo affiliate's view: its own traffic, its payout, never revenue or profit.
        await page.get_by_test_id("sign-out").click()
        await page.get_by_test_id("api-key").wait_for()
        await _sign_in(page, traffic.affiliate_key)
        query = await _wait_for_report(page, ZONE, "day")
        api.headers["Authorization"] = f"Bearer {traffic.affiliate_key}"
        totals = await _assert_page_matches_api(page, api, query)
        assert totals["clicks"] == 8  # the partner's two clicks are not the demo affiliate's
        assert await page.get_by_test_id("view").inner_text() == "Affiliate view"
        report = await page.get_by_test_id("report").inner_text()
        assert "Revenue" not in report and "Profit" not in report and "Payout" in report
        hidden = "[data-testid$='-revenue'], [data-testid=revenue], [data-testid$='-profit'], [data-testid=profit]"
        assert await page.locator(hidden).count() == 0

        # A dashboard user (an analyst's token instead of a key) sees the organization.
        await page.get_by_test_id("sign-out").click()
        token = _user_token(stack.org_id, "analyst")
        await _sign_in(page, token)
        query = await _wait_for_report(page, ZONE, "day")
        api.headers["Authorization"] = f"Bearer {token}"
        totals = await _assert_page_matches_api(page, api, query)
        assert totals["clicks"] == traffic.clicks
        assert await page.get_by_test_id("view").inner_text() == "Organization view"
    await context.close()
    assert not problems, problems
