"""``afftok export``: a background export through the public API, with a progress bar.

Creates the job (``POST /v1/exports``), polls it, draws progress on stderr (one line,
redrawn with ``\\r``), and downloads the file to ``--out`` (a temporary name, then
renamed, so a failed download never leaves half a file under the real name).

Defaults come from the local stack's ``up.json`` (``afftok up``): its api URL and demo key.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import httpx

from core.settings import Settings

POLL_INTERVAL_S = 0.5
BAR_WIDTH = 30
# CLI option -> filter name (the kind's list filters; --filter KEY=VALUE for any other).
FILTER_OPTIONS = ("from", "to", "offer_id", "affiliate_id", "advertiser_id", "link_id", "country", "device", "sub1",
                  "outcome", "status", "created_from", "created_to")


class ExportFailed(Exception):
    pass


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=("clicks", "conversions", "stats"))
    parser.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    parser.add_argument("--out", required=True, help="file to write")
    parser.add_argument("--api-url", default=None, help="default: the local stack's (up.json)")
    parser.add_argument("--api-key", default=None, help="default: the local stack's demo key (up.json)")
    for name in FILTER_OPTIONS:
        parser.add_argument("--" + name.replace("_", "-"), dest=f"filter_{name}", default=None, metavar=name.upper())
    parser.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE", help="any other filter")


def filters_of(args: argparse.Namespace) -> dict[str, str]:
    filters = {name: getattr(args, f"filter_{name}") for name in FILTER_OPTIONS if getattr(args, f"filter_{name}")}
    for item in args.filter:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ExportFailed(f"--filter takes KEY=VALUE, got {item!r}")
        filters[key] = value
    return filters


def connection_defaults(settings: Settings) -> dict[str, Any]:
    path = settings.data_dir / "up.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def progress_line(rows_written: int, rows_total: int | None, status: str) -> str:
    if not rows_total:
        return f"\r{status}: {rows_written:,} rows"
    done = min(rows_written / rows_total, 1.0)
    filled = int(done * BAR_WIDTH)
    bar = "#" * filled + "." * (BAR_WIDTH - filled)
    return f"\r[{bar}] {done:4.0%} {rows_written:,}/{rows_total:,} rows"


def run_export(
    client: httpx.Client, kind: str, fmt: str, filters: dict[str, str], out: Path, err: TextIO | None = None,
    poll_interval_s: float = POLL_INTERVAL_S,
) -> dict:
    err = err or sys.stderr
    job = _checked(client.post("/v1/exports", json={"kind": kind, "format": fmt, "filters": filters}))
    while job["status"] in ("queued", "running"):
        err.write(progress_line(job["rows_written"], job["rows_total"], job["status"]))
        err.flush()
        time.sleep(poll_interval_s)
        job = _checked(client.get(f"/v1/exports/{job['id']}"))
    err.write(progress_line(job["rows_written"], job["rows_total"], job["status"]) + "\n")
    if job["status"] != "done":
        raise ExportFailed(f"export {job['id']} {job['status']}: {job.get('error')}")
    temp = out.with_name(f".{out.name}.{os.getpid()}.part")
    try:
        with client.stream("GET", job["download_url"]) as response, open(temp, "wb") as file:
            if response.status_code != 200:
                response.read()
                _checked(response)
            for chunk in response.iter_bytes():
                file.write(chunk)
        os.replace(temp, out)
    finally:
        temp.unlink(missing_ok=True)
    err.write(f"wrote {job['rows_written']:,} rows to {out}\n")
    return job


def _checked(response: httpx.Response) -> dict:
    if response.status_code >= 400:
        try:
            body = response.json()
            raise ExportFailed(f"{response.status_code} {body['code']}: {body['message']}")
        except (ValueError, KeyError):
            raise ExportFailed(f"HTTP {response.status_code}") from None
    return response.json()


def command(args: argparse.Namespace, settings: Settings) -> int:
    defaults = connection_defaults(settings)
    api_url = args.api_url or defaults.get("api_url")
    api_key = args.api_key or defaults.get("demo_api_key")
    if not api_url or not api_key:
        raise ExportFailed("no API: pass --api-url and --api-key (or run `afftok up`)")
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=api_url, headers=headers, timeout=60) as client:
        run_export(client, args.kind, args.format, filters_of(args), Path(args.out))
    return 0
