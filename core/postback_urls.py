"""The postback URL an advertiser calls (GET, server to server), as shown by the api.

The advertiser's server fills the ``{click_id}``, ``{external_id}``, ``{amount}`` and
``{currency}`` placeholders (add ``&status=pending`` or ``&goal=…`` when needed; see
the postback fields in DESIGN.md). The token is only known when it is issued, so the
stored advertiser shows the template with a ``{postback_token}`` placeholder: put the
token returned by ``POST /v1/advertisers/{id}/postback-token`` there.
"""

from __future__ import annotations

from urllib.parse import quote

TOKEN_PLACEHOLDER = "{postback_token}"
_FIELDS = "&click_id={click_id}&external_id={external_id}&amount={amount}&currency={currency}"


def postback_url(edge_url: str, token: str | None = None) -> str | None:
    """The GET postback URL with ``token`` in it (or its placeholder); None without an edge URL."""
    if not edge_url:
        return None
    shown = TOKEN_PLACEHOLDER if token is None else quote(token, safe="")
    return f"{edge_url.rstrip('/')}/postback?token={shown}{_FIELDS}"
