"""Background exports: POST /v1/exports queues a job on arq's queue; the worker's job
writes the file (progress to done, temp name then rename, the same file when run twice);
the download equals the streamed export; only the asking scope sees the job; expiry
deletes job and file."""

from __future__ import annotations

import csv
import datetime as dt
import io
import os

import pytest_asyncio

from core.store.api_keys import create_api_key
from tests.api.conftest import api_settings, app, assert_error, client, make_tenant  # noqa: F401  (fixtures)
from tests.api.traffic import make_traffic
from workers.exports import expire_exports, run_export, run_export_job


@pytest_asyncio.fixture
async def tenant(pool):
    return await make_tenant(pool, "Acme")


@pytest_asyncio.fixture
async def traffic(client, pool, tenant):
    return await make_traffic(client, pool, tenant)


async def _create(client, headers, **body) -> dict:
    response = await client.post("/v1/exports", json=body, headers=headers)
    assert response.status_code == 202, response.text
    return response.json()


async def _job(client, headers, job_id: str) -> dict:
    response = await client.get(f"/v1/exports/{job_id}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


async def test_a_job_is_queued_runs_to_done_and_downloads_the_streamed_export(
    client, pool, redis, keys, api_settings, tenant, traffic,
):
    for fmt in ("csv", "jsonl"):
        job = await _create(client, tenant.headers, kind="clicks", format=fmt, filters={"country": "DE"})
        assert job["status"] == "queued" and job["filters"]["country"] == "DE" and job["filters"]["from"]
        assert await redis.zscore(keys.arq_queue, f"arq:job:export:{job['id']}".removeprefix("arq:job:")) is not None
        await run_export_job({"settings": api_settings, "pool": pool}, job["id"])
        done = await _job(client, tenant.headers, job["id"])
        assert done["status"] == "done" and done["error"] is None
        assert done["rows_written"] == done["rows_total"] == sum(1 for c in traffic.clicks if c.country == "DE") - 1
        assert done["download_url"] == f"/v1/exports/{job['id']}/download"
        downloaded = await client.get(done["download_url"], headers=tenant.headers)
        assert downloaded.status_code == 200
        assert downloaded.headers["content-disposition"].startswith('attachment; filename="clicks-')
        streamed = await client.get(f"/v1/exports/clicks.{fmt}", headers=tenant.headers,
                                    params={k: v for k, v in job["filters"].items() if v is not None})
        assert downloaded.content == streamed.content and downloaded.content
        assert done["bytes_written"] == len(downloaded.content)
        assert not [p for p in api_settings.export_path.iterdir() if p.name.endswith(".tmp")]


async def test_running_a_job_twice_writes_the_same_file(client, pool, api_settings, tenant, traffic):
    job = await _create(client, tenant.headers, kind="conversions", format="jsonl")
    first = await run_export(pool, api_settings.export_path, job["id"], now=_now())
    path = api_settings.export_path / first.file_name
    content = path.read_bytes()
    os.utime(path, (0, 0))
    again = await run_export(pool, api_settings.export_path, job["id"], now=_now())  # done: left alone
    assert again.status == "done" and path.stat().st_mtime == 0 and path.read_bytes() == content
    path.unlink()  # a lost file is written again, the same
    rerun = await run_export(pool, api_settings.export_path, job["id"], now=_now())
    assert rerun.status == "done" and path.read_bytes() == content


async def test_only_the_asking_scope_sees_a_job(client, pool, api_settings, tenant, traffic):
    async with pool.acquire() as conn:
        aff = await create_api_key(conn, tenant.org_id, "aff2", "affiliate", affiliate_id=traffic.other_affiliate_id)
    other_affiliate = {"Authorization": f"Bearer {aff.key}"}
    admins = await _create(client, tenant.headers, kind="clicks", format="csv")
    affiliates = await _create(client, traffic.affiliate_headers, kind="clicks", format="csv")
    for job_id in (admins["id"], affiliates["id"]):
        await run_export(pool, api_settings.export_path, job_id, now=_now())
    assert_error(await client.get(f"/v1/exports/{admins['id']}", headers=traffic.affiliate_headers), 404)
    assert_error(await client.get(f"/v1/exports/{admins['id']}/download", headers=traffic.affiliate_headers), 404)
    assert_error(await client.get(f"/v1/exports/{affiliates['id']}", headers=other_affiliate), 404)
    assert_error(await client.get(f"/v1/exports/{affiliates['id']}", headers=tenant.headers), 404)
    body = (await client.get(f"/v1/exports/{affiliates['id']}/download", headers=traffic.affiliate_headers)).text
    rows = list(csv.DictReader(io.StringIO(body, newline="")))
    assert rows and "ip" not in rows[0] and "user_agent" not in rows[0]
    assert {r["offer_id"] for r in rows} == {traffic.offer_id}


async def test_a_failing_job_is_failed_with_its_error(client, pool, api_settings, tenant, traffic):
    job = await _create(client, tenant.headers, kind="clicks", format="csv")
    api_settings.export_path.mkdir(parents=True, exist_ok=True)
    blocker = api_settings.export_path / f"{job['id']}.csv"
    blocker.mkdir()  # the rename cannot replace a directory
    failed = await run_export(pool, api_settings.export_path, job["id"], now=_now())
    assert failed.status == "failed" and failed.error
    shown = await _job(client, tenant.headers, job["id"])
    assert shown["status"] == "failed" and shown["download_url"] is None
    assert_error(await client.get(f"/v1/exports/{job['id']}/download", headers=tenant.headers), 409, "export_failed")
    assert not [p for p in api_settings.export_path.iterdir() if p.name.endswith(".tmp")]


async def test_expired_jobs_and_files_are_deleted(client, pool, api_settings, tenant, traffic):
    old = await _create(client, tenant.headers, kind="clicks", format="csv")
    new = await _create(client, tenant.headers, kind="clicks", format="jsonl")
    for job_id in (old["id"], new["id"]):
        await run_export(pool, api_settings.export_path, job_id, now=_now())
    await pool.execute("update export_jobs set expires_at = now() - interval '1 minute' where id = $1", old["id"])
    assert await expire_exports(pool, api_settings.export_path, now=_now()) == 1
    assert sorted(p.name for p in api_settings.export_path.iterdir()) == [f"{new['id']}.jsonl"]
    assert_error(await client.get(f"/v1/exports/{old['id']}", headers=tenant.headers), 404)
    assert (await _job(client, tenant.headers, new["id"]))["status"] == "done"
    assert await expire_exports(pool, api_settings.export_path, now=_now()) == 0
