"""Locust scenarios against a running ``afftok up``: visitors clicking, an operator reading.

    make run                                                   # in one terminal
    .venv/bin/locust -f bench/locustfile.py --headless -u 50 -r 10 -t 30s

The edge and api addresses, the demo link and the demo API key come from ``up.json`` in
the data directory (``AFFTOK_DATA_DIR``, default ``.afftok``). ``--host`` points the
visitors at another edge; the operator always talks to the api named in ``up.json``.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

from locust import FastHttpUser, between, task

from core.ids import is_click_id
from core.settings import load_settings

_PLACEMENTS = ("sidebar", "footer", "newsletter", "article", "push")


def _read_up_json() -> dict:
    path = Path(load_settings().data_dir) / "up.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise SystemExit(f"{path} not found: start the stack first (make run), or set AFFTOK_DATA_DIR") from None


UP = _read_up_json()
_DEMO_LINK = urlsplit(UP["demo_link"])


class Visitor(FastHttpUser):
    """Someone clicking an affiliate's link: expects a 302 carrying a click id, and stops there."""

    host = f"{_DEMO_LINK.scheme}://{_DEMO_LINK.netloc}"
    weight = 20
    wait_time = between(0.5, 2)

    @task
    def click(self) -> None:
        query = urlencode({"sub1": f"creative-{random.randint(1, 50)}", "sub2": random.choice(_PLACEMENTS)})
        with self.client.get(
            f"{_DEMO_LINK.path}?{query}", name="/c/[token]", allow_redirects=False, catch_response=True,
        ) as response:
            if response.status_code != 302:
                response.failure(f"expected 302, got {response.status_code}")
                return
            location = urlsplit(response.headers.get("location", ""))
            click_id = parse_qs(location.query).get("click_id", [""])[0]
            if not is_click_id(click_id):
                response.failure(f"no click id in Location {location.geturl()!r}")


class Operator(FastHttpUser):
    """A network operator glancing at the offer list now and then."""

    host = UP["api_url"]
    weight = 1
    wait_time = between(2, 5)

    @task
    def list_offers(self) -> None:
        headers = {"Authorization": f"Bearer {UP['demo_api_key']}"}
        # An absolute URL: ``--host`` retargets the visitors, never the api.
        with self.client.get(f"{UP['api_url']}/v1/offers", headers=headers, name="/v1/offers", catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"expected 200, got {response.status_code}")
            elif not isinstance(response.json().get("data"), list):
                response.failure("no offer list in the body")
