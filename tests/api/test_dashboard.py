"""GET /dashboard and its assets: types, caching, a strict CSP, nothing outside the table."""

from __future__ import annotations

import re

import pytest

from tests.api.conftest import assert_error

STRICT_CSP = {"default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'"}


def _csp(response) -> set[str]:
    return {part.strip() for part in response.headers["content-security-policy"].split(";")}


async def test_the_page_is_html_under_a_strict_policy(client):
    response = await client.get("/dashboard")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-cache"
    assert STRICT_CSP <= _csp(response)
    assert "unsafe-inline" not in response.headers["content-security-policy"]
    html = response.text
    assert 'data-testid="api-key"' in html
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "inline script"
    assert not re.search(r"\son[a-z]+=", html), "inline event handler"
    assert not re.search(r"\sstyle=", html), "inline style"


async def test_every_file_the_page_references_is_served_from_this_origin(client):
    html = (await client.get("/dashboard")).text
    references = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert all(r.startswith("/dashboard/assets/") or r == "data:," for r in references), references
    types = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
    pending, served = [r for r in references if r != "data:,"], set()
    while pending:
        url = pending.pop()
        if url in served:
            continue
        response = await client.get(url)
        assert response.status_code == 200, url
        assert response.headers["content-type"] == types[url[url.rindex("."):]], url
        assert response.headers["x-content-type-options"] == "nosniff"
        assert STRICT_CSP <= _csp(response)
        served.add(url)
        if url.endswith(".js"):  # the modules it imports, relative to it
            imported = re.findall(r'from "\./([a-z]+\.js)"', response.text)
            pending += [url.rsplit("/", 1)[0] + "/" + name for name in imported]
    assert {"/dashboard/assets/dashboard.js", "/dashboard/assets/chart.js", "/dashboard/assets/api.js"} <= served
    assert any(url.startswith("/dashboard/assets/vendor/uPlot-") for url in served)


async def test_only_versioned_vendor_files_are_cached_for_long(client):
    vendor = await client.get("/dashboard/assets/vendor/uPlot-1.6.32.iife.min.js")
    assert vendor.status_code == 200
    assert vendor.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert vendor.text.startswith("/*! https://github.com/leeoniya/uPlot (v1.6.32) */")
    own = await client.get("/dashboard/assets/dashboard.js")
    assert own.headers["cache-control"] == "no-cache"
    again = await client.get("/dashboard/assets/dashboard.js", headers={"If-None-Match": own.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


@pytest.mark.parametrize("path", [
    "/dashboard/assets/nope.js",
    "/dashboard/assets/vendor/README.md",
    "/dashboard/assets/vendor/uPlot.LICENSE",
    "/dashboard/assets/..%2f..%2fapi%2fapp.py",
    "/dashboard/assets/..%2f..%2f..%2fpyproject.toml",
    "/dashboard/assets/%2e%2e/dashboard.py",
    "/dashboard/assets//etc/passwd",
    "/dashboard/assets/vendor/../../../app.py",
])
async def test_anything_else_is_the_standard_404(client, path):
    response = await client.get(path)
    assert_error(response, 404, "not_found")
    assert "import" not in response.text


async def test_the_page_is_public_but_not_part_of_the_api_document(client):
    document = (await client.get("/openapi.json")).json()
    assert not any(path.startswith("/dashboard") for path in document["paths"])
