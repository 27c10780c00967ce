"""GET /dashboard: the reporting page and its assets, from a fixed table of files.

The page is static. It signs in with an API key the user pastes (kept in the tab's
sessionStorage) and reads /v1/stats and /v1/conversions like any other client, so it
shows exactly what that key may see. The table of files is read once from
``api/static/dashboard``; a request's path is only ever a key into it, never a
filesystem path. Files under ``vendor/`` carry their version in their name, so only they
are cached for long; the page's own files are revalidated (ETag) on every load.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.errors import NotFound

STATIC_DIR = Path(__file__).resolve().parent / "static" / "dashboard"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
VERSIONED_CACHE = "public, max-age=31536000, immutable"
REVALIDATE_CACHE = "no-cache"
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",  # the sign-in form is handled by script: never sent anywhere as a URL
    "frame-ancestors 'none'",
])
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class Asset(msgspec.Struct, frozen=True, kw_only=True):
    body: bytes
    content_type: str
    etag: str
    cache_control: str


def load_assets(directory: Path) -> dict[str, Asset]:
    """Every servable file under ``directory`` by its relative name (HTML, JS and CSS only)."""
    assets = {}
    for path in sorted(directory.rglob("*")):
        content_type = CONTENT_TYPES.get(path.suffix)
        if content_type is None or not path.is_file():
            continue
        name = path.relative_to(directory).as_posix()
        body = path.read_bytes()
        assets[name] = Asset(
            body=body, content_type=content_type, etag='"' + hashlib.sha256(body).hexdigest()[:32] + '"',
            cache_control=VERSIONED_CACHE if name.startswith("vendor/") else REVALIDATE_CACHE,
        )
    return assets


@functools.cache
def _assets() -> dict[str, Asset]:
    return load_assets(STATIC_DIR)


def _serve(request: Request, name: str) -> Response:
    asset = _assets().get(name)
    if asset is None:
        raise NotFound("not_found", "no such dashboard asset")
    headers = {**SECURITY_HEADERS, "ETag": asset.etag, "Cache-Control": asset.cache_control}
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    return Response(asset.body, headers=headers, media_type=asset.content_type)


async def page(request: Request) -> Response:
    return _serve(request, "index.html")


async def asset(request: Request) -> Response:
    return _serve(request, request.path_params["name"])


ROUTES = [
    Route("/dashboard", page, methods=["GET"]),
    Route("/dashboard/assets/{name:path}", asset, methods=["GET"]),
]
