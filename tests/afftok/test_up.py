"""`afftok up` as a newcomer runs it: embedded servers, a working link, a clean stop."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import psutil
import pytest

pytestmark = pytest.mark.slow


def _start_up(data_dir: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL") and not k.startswith("AFFTOK_")}
    env.update(AFFTOK_DATA_DIR=str(data_dir), AFFTOK_EDGE_PORT="0", AFFTOK_API_PORT="0")
    return subprocess.Popen(
        [sys.executable, "-m", "afftok", "up"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _wait_for_up_json(proc: subprocess.Popen, data_dir: Path, timeout_s: float = 120) -> dict:
    path = data_dir / "up.json"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"afftok up exited early:\n{proc.stdout.read()}")
        if path.exists():
            up = json.loads(path.read_text())
            if up["pid"] == proc.pid:
                return up
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"no up.json after {timeout_s}s:\n{proc.stdout.read()}")


def _stack_pids(proc: subprocess.Popen, data_dir: Path) -> set[int]:
    pids = {c.pid for c in psutil.Process(proc.pid).children(recursive=True)}
    postmaster = data_dir / "postgres" / "pgdata" / "postmaster.pid"
    if postmaster.exists():
        pids.add(int(postmaster.read_text().split()[0]))
    return pids


def _wait_gone(pids: set[int], timeout_s: float = 30) -> set[int]:
    deadline = time.monotonic() + timeout_s
    alive = set(pids)
    while alive and time.monotonic() < deadline:
        alive = {p for p in alive if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE}
        time.sleep(0.2)
    return alive


async def _find_click(database_url: str, click_id: str, timeout_s: float = 10):
    conn = await asyncpg.connect(database_url)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            row = await conn.fetchrow("select sub1, sub2, outcome from clicks where click_id = $1", click_id)
            if row:
                return row
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    return None


async def _find_conversion(database_url: str, click_id: str, timeout_s: float = 10):
    conn = await asyncpg.connect(database_url)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            row = await conn.fetchrow("select status, sale_amount_minor from conversions where click_id = $1", click_id)
            if row:
                return row
            await asyncio.sleep(0.1)
    finally:
        await conn.close()
    return None


def test_up_serves_a_click_into_postgres_and_stops_cleanly(tmp_path):
    data_dir = tmp_path / "afftok"
    proc = _start_up(data_dir)
    try:
        up = _wait_for_up_json(proc, data_dir)
        assert {"edge_url", "api_url", "database_url", "redis_url", "demo_link", "demo_api_key",
                "demo_postback_url", "worker_metrics_url"} <= set(up)

        link = up["demo_link"].split("?")[0] + "?sub1=caf%C3%A9%20%F0%9F%98%80&sub2=a%0D%0Ab"
        response = httpx.get(link, follow_redirects=False)
        assert response.status_code == 302
        assert response.headers["cache-control"] == "no-store"
        click_id = parse_qs(urlsplit(response.headers["location"]).query)["click_id"][0]

        row = asyncio.run(_find_click(up["database_url"], click_id))
        assert row is not None, "the click did not reach Postgres"
        assert (row["sub1"], row["sub2"]) == ("café 😀", "a\r\nb")

        offers = httpx.get(f"{up['api_url']}/v1/offers", headers={"Authorization": f"Bearer {up['demo_api_key']}"})
        assert offers.status_code == 200

        # The README's newcomer path: the demo postback for that click becomes a conversion.
        accepted = httpx.get(up["demo_postback_url"].replace("{click_id}", click_id))
        assert accepted.status_code == 202, accepted.text
        conversion = asyncio.run(_find_conversion(up["database_url"], click_id))
        assert conversion is not None, "the postback did not become a conversion"
        assert (conversion["status"], conversion["sale_amount_minor"]) == ("approved", 2500)
        metrics = httpx.get(up["worker_metrics_url"]).text
        conversions_line = [line for line in metrics.splitlines() if line.startswith("afftok_conversions_total{")]
        # approved, flagged (httpx's user agent is a bot's, and it came within seconds of the click)
        assert conversions_line == ['afftok_conversions_total{reason="bot_user_agent",status="approved"} 1.0'], \
            metrics[-3000:]

        # A killed supervisor takes its children with it; the next start cleans up the rest.
        first_children = {c.pid for c in psutil.Process(proc.pid).children(recursive=True)}
        proc.kill()
        proc.wait(10)
        assert not _wait_gone(first_children), "children outlived a killed supervisor"

        proc = _start_up(data_dir)
        _wait_for_up_json(proc, data_dir)
        pids = _stack_pids(proc, data_dir)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        assert not _wait_gone(pids), "something outlived 'afftok up'"
        assert not (data_dir / "up.json").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
