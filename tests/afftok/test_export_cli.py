"""`afftok export` end to end: a real api (uvicorn on a socket) and a real arq worker
take the job; the CLI polls it with a progress bar on stderr and downloads the file,
which equals the streamed export. Defaults come from up.json as `afftok up` writes it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket

import httpx
import msgspec
import pytest
import uvicorn
from arq.worker import Worker

from afftok import cli
from api.app import create_app
from tests.api.conftest import make_tenant
from tests.api.traffic import make_traffic
from workers.settings import worker_settings


@contextlib.asynccontextmanager
async def running_stack(settings):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings), lifespan="on", log_level="warning"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    worker = Worker(**worker_settings(settings), handle_signals=False, poll_delay=0.05)
    working = asyncio.create_task(worker.async_run())
    try:
        while not server.started:
            assert not serving.done(), serving
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        await worker.close()
        working.cancel()
        server.should_exit = True
        await asyncio.gather(serving, working, return_exceptions=True)
        sock.close()


@pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")  # inside arq
async def test_the_cli_exports_through_the_api_with_a_progress_bar(settings, pool, tmp_path, capsys, monkeypatch):
    settings = msgspec.structs.replace(settings, export_dir=str(tmp_path / "exports"))
    tenant = await make_tenant(pool, "Acme")
    async with running_stack(settings) as api_url:
        async with httpx.AsyncClient(base_url=api_url) as client:
            traffic = await make_traffic(client, pool, tenant)
            streamed = (await client.get("/v1/exports/clicks.csv", params={"country": "DE"},
                                         headers=tenant.headers)).content
        out = tmp_path / "clicks.csv"
        code = await asyncio.to_thread(cli.main, [
            "export", "clicks", "--format", "csv", "--country", "DE", "--out", str(out),
            "--api-url", api_url, "--api-key", tenant.key,
        ])
        err = capsys.readouterr().err
        assert code == 0, err
        assert out.read_bytes() == streamed
        rows = sum(1 for c in traffic.clicks if c.country == "DE") - 1  # one is three days old
        assert f"\r[{'#' * 30}] 100% {rows}/{rows} rows\n" in err and f"wrote {rows} rows to {out}" in err
        assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]

        # up.json's api URL and key are the defaults; an API refusal is one line and exit 1
        data_dir = tmp_path / "up"
        data_dir.mkdir()
        (data_dir / "up.json").write_text(json.dumps({"api_url": api_url, "demo_api_key": tenant.key}))
        monkeypatch.setenv("AFFTOK_DATA_DIR", str(data_dir))
        jsonl = tmp_path / "conversions.jsonl"
        assert await asyncio.to_thread(cli.main, ["export", "conversions", "--format", "jsonl", "--out", str(jsonl)]) == 0
        assert jsonl.read_bytes() == b""  # no conversions yet: an empty file
        refused = await asyncio.to_thread(cli.main, [
            "export", "clicks", "--out", str(tmp_path / "bad.csv"), "--from", "2026-01-02T00:00:00Z",
            "--to", "2026-01-01T00:00:00Z",
        ])
        assert refused == 1
        assert "422 invalid_range: from must be before to" in capsys.readouterr().err
        assert not (tmp_path / "bad.csv").exists()
