"""Advertisers' postback credentials: issued once, stored hashed (token) or in clear
(signing secrets), and published to the edge's Redis hash on every change."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid

import msgspec
import pytest

from core.models import advertiser_auth_decoder, postback_credential_decoder
from core.store.api_keys import create_api_key
from core.store.postback_credentials import credential_field, sync_all_postback_auth, token_field
from tests.api.conftest import assert_error


async def _hash(redis, keys) -> dict[str, bytes]:
    return {k.decode(): v for k, v in (await redis.hgetall(keys.postback_auth)).items()}


async def _auth(redis, keys, advertiser_id):
    raw = await redis.hget(keys.postback_auth, f"adv:{advertiser_id}")
    assert raw is not None, "advertiser auth not published"
    return advertiser_auth_decoder.decode(raw)


async def _messages(pubsub) -> list[list[str]]:
    found = []
    for _ in range(20):  # the subscribe confirmation reads as None, so do not stop at the first
        m = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.05)
        if m is not None:
            found.append(msgspec.msgpack.decode(m["data"]))
    return found


async def _issue_token(client, tenant) -> dict:
    response = await client.post(f"/v1/advertisers/{tenant.advertiser_id}/postback-token", json={}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    return response.json()


async def test_a_token_is_shown_once_stored_hashed_and_published(client, pool, redis, keys, tenant):
    pubsub = redis.pubsub()
    await pubsub.subscribe(keys.postback_auth_changes)
    issued = await _issue_token(client, tenant)
    token = issued["postback_token"]
    assert token.startswith("aft_pb_") and issued["postback_token_last4"] == token[-4:]
    assert issued["postback_url"] == (
        f"https://go.example/postback?token={token}&click_id={{click_id}}&external_id={{external_id}}"
        "&amount={amount}&currency={currency}")
    stored = await pool.fetchrow("select postback_token_hash, postback_token_last4 from advertisers where id = $1",
                                 uuid.UUID(tenant.advertiser_id))
    assert stored["postback_token_hash"] == hashlib.sha256(token.encode()).digest()
    credential = postback_credential_decoder.decode(await redis.hget(keys.postback_auth, token_field(token)))
    assert (credential.org_id, credential.advertiser_id, credential.key_id) == (tenant.org_id, tenant.advertiser_id, None)
    assert (await _auth(redis, keys, tenant.advertiser_id)).active is True
    assert await _messages(pubsub) == [sorted([f"adv:{tenant.advertiser_id}", token_field(token)])]

    shown = (await client.get(f"/v1/advertisers/{tenant.advertiser_id}", headers=tenant.headers)).json()
    assert shown["postback_token_last4"] == token[-4:] and token not in str(shown)
    assert shown["postback_url_template"] == (
        "https://go.example/postback?token={postback_token}&click_id={click_id}&external_id={external_id}"
        "&amount={amount}&currency={currency}")
    await pubsub.aclose()


async def test_a_new_token_ends_the_old_one_at_once(client, redis, keys, tenant):
    old = (await _issue_token(client, tenant))["postback_token"]
    pubsub = redis.pubsub()
    await pubsub.subscribe(keys.postback_auth_changes)
    new = (await _issue_token(client, tenant))["postback_token"]
    assert new != old
    published = await _hash(redis, keys)
    assert token_field(old) not in published and token_field(new) in published
    assert await _messages(pubsub) == [sorted([f"adv:{tenant.advertiser_id}", token_field(new), token_field(old)])]
    await pubsub.aclose()


async def test_the_audit_row_never_holds_the_token(client, pool, tenant):
    token = (await _issue_token(client, tenant))["postback_token"]
    row = await pool.fetchrow("select action, before, after from audit_log where target_id = $1", tenant.advertiser_id)
    assert row["action"] == "advertisers.issue_postback_token"
    assert row["before"]["postback_token_last4"] is None and row["after"]["postback_token_last4"] == token[-4:]
    assert token not in str(dict(row)) and token[:-4] not in str(dict(row))


async def _new_secret(client, tenant, **body) -> dict:
    response = await client.post(f"/v1/advertisers/{tenant.advertiser_id}/signing-secrets", json=body,
                                 headers=tenant.headers)
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    return response.json()


async def test_signing_secrets_rotate_with_a_grace_and_revoke_at_once(client, pool, redis, keys, tenant):
    first = await _new_secret(client, tenant)
    auth = await _auth(redis, keys, tenant.advertiser_id)
    assert [(s.secret, s.expires_at_ms) for s in auth.signing_secrets] == [(first["secret"], None)]

    before = dt.datetime.now(dt.timezone.utc)
    second = await _new_secret(client, tenant)
    auth = await _auth(redis, keys, tenant.advertiser_id)
    assert [s.secret for s in auth.signing_secrets] == [second["secret"], first["secret"]]  # current first
    grace_end_ms = auth.signing_secrets[1].expires_at_ms
    assert auth.signing_secrets[0].expires_at_ms is None
    assert abs(grace_end_ms - (before + dt.timedelta(hours=24)).timestamp() * 1000) < 60_000

    listed = (await client.get(f"/v1/advertisers/{tenant.advertiser_id}/signing-secrets", headers=tenant.headers)).json()
    assert [s["id"] for s in listed["data"]] == [second["id"], first["id"]]
    assert [s["last4"] for s in listed["data"]] == [second["secret"][-4:], first["secret"][-4:]]
    assert "secret" not in str(listed).replace("signing", "") and first["secret"] not in str(listed)

    revoked = await client.delete(f"/v1/advertisers/{tenant.advertiser_id}/signing-secrets/{first['id']}",
                                  headers=tenant.headers)
    assert revoked.status_code == 200 and revoked.json()["expires_at"] is not None
    auth = await _auth(redis, keys, tenant.advertiser_id)
    assert [s.secret for s in auth.signing_secrets] == [second["secret"]]
    listed = (await client.get(f"/v1/advertisers/{tenant.advertiser_id}/signing-secrets", headers=tenant.headers)).json()
    assert [s["id"] for s in listed["data"]] == [second["id"]]
    again = await client.delete(f"/v1/advertisers/{tenant.advertiser_id}/signing-secrets/{first['id']}",
                                headers=tenant.headers)
    assert again.json()["expires_at"] == revoked.json()["expires_at"]  # revoking twice changes nothing
    audit = await pool.fetch("select after from audit_log where target_type = 'signing_secret'")
    assert len(audit) == 4 and all(first["secret"] not in str(r["after"]) for r in audit)


async def test_a_zero_grace_ends_the_previous_secret_now(client, redis, keys, tenant):
    await _new_secret(client, tenant)
    second = await _new_secret(client, tenant, grace_period_s=0)
    auth = await _auth(redis, keys, tenant.advertiser_id)
    assert [s.secret for s in auth.signing_secrets] == [second["secret"]]


async def test_another_advertisers_secret_is_not_found(client, pool, tenant):
    secret = await _new_secret(client, tenant)
    other = (await client.post("/v1/advertisers", json={"name": "Other"}, headers=tenant.headers)).json()
    assert_error(await client.delete(f"/v1/advertisers/{other['id']}/signing-secrets/{secret['id']}",
                                     headers=tenant.headers), 404, "not_found")
    assert await pool.fetchval("select expires_at from advertiser_signing_secrets where id = $1",
                               uuid.UUID(secret["id"])) is None


@pytest.mark.parametrize("path, body, status", [
    ("signing-secrets", {"grace_period_s": -1}, 422),
    ("signing-secrets", {"grace_period_s": 31 * 86400}, 422),
    ("signing-secrets", {"grace_period_s": "1"}, 422),
    ("signing-secrets", {"secret": "mine-mine-mine-mine-mine-mine-mine"}, 422),
    ("postback-token", {"token": "x"}, 422),
    ("postback-token", [], 422),
    ("postback-token", None, 400),
])
async def test_bad_bodies_write_nothing(client, pool, tenant, path, body, status):
    kwargs = {"content": b""} if body is None else {"json": body}
    response = await client.post(f"/v1/advertisers/{tenant.advertiser_id}/{path}", headers=tenant.headers, **kwargs)
    assert_error(response, status)
    assert await pool.fetchval("select count(*) from advertiser_signing_secrets") == 0
    assert await pool.fetchval("select count(*) from advertisers where postback_token_hash is not null") == 0
    assert await pool.fetchval("select count(*) from audit_log") == 0


@pytest.mark.parametrize("role, status", [("analyst", 403), ("advertiser", 403), ("affiliate", 403), ("manager", 200)])
async def test_only_catalog_writers_issue_credentials(client, pool, tenant, role, status):
    scope = {"advertiser_id": tenant.advertiser_id} if role == "advertiser" else (
        {"affiliate_id": tenant.affiliate_id} if role == "affiliate" else {})
    async with pool.acquire() as conn:
        key = await create_api_key(conn, tenant.org_id, role, role, **scope)
    headers = {"Authorization": f"Bearer {key.key}"}
    response = await client.post(f"/v1/advertisers/{tenant.advertiser_id}/postback-token", json={}, headers=headers)
    assert response.status_code == status, response.text


async def _create_key(client, tenant, **body) -> dict:
    response = await client.post("/v1/admin/api-keys", json={"name": "sender", **body}, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def test_keys_that_may_send_conversions_are_published_and_unpublished(client, redis, keys, tenant):
    scoped = await _create_key(client, tenant, role="advertiser", advertiser_id=tenant.advertiser_id)
    wide = await _create_key(client, tenant, role="manager")
    reader = await _create_key(client, tenant, role="analyst")
    published = await _hash(redis, keys)
    credential = postback_credential_decoder.decode(published[credential_field(scoped["key"])])
    assert (credential.org_id, credential.advertiser_id, credential.key_id, credential.expires_at_ms) == (
        tenant.org_id, tenant.advertiser_id, scoped["id"], None)
    assert postback_credential_decoder.decode(published[credential_field(wide["key"])]).advertiser_id is None
    assert credential_field(reader["key"]) not in published
    assert credential_field(scoped["key"]) == "key:" + hashlib.sha256(scoped["key"].encode()).hexdigest()

    pubsub = redis.pubsub()
    await pubsub.subscribe(keys.postback_auth_changes)
    response = await client.post(f"/v1/admin/api-keys/{scoped['id']}/revoke", json={"reason": "leaked"},
                                 headers=tenant.headers)
    assert response.status_code == 200
    assert credential_field(scoped["key"]) not in await _hash(redis, keys)
    assert await _messages(pubsub) == [[credential_field(scoped["key"])]]

    before = dt.datetime.now(dt.timezone.utc)
    rotated = await client.post(f"/v1/admin/api-keys/{wide['id']}/rotate", json={"grace_period_s": 600},
                                headers=tenant.headers)
    published = await _hash(redis, keys)
    old = postback_credential_decoder.decode(published[credential_field(wide["key"])])
    assert abs(old.expires_at_ms - (before + dt.timedelta(seconds=600)).timestamp() * 1000) < 60_000
    new = postback_credential_decoder.decode(published[credential_field(rotated.json()["key"])])
    assert (new.key_id, new.expires_at_ms) == (rotated.json()["id"], None)
    await pubsub.aclose()


async def test_the_sync_rewrites_the_hash_and_drops_what_is_no_longer_valid(client, pool, redis, keys, tenant):
    token = (await _issue_token(client, tenant))["postback_token"]
    secret = await _new_secret(client, tenant)
    sender = await _create_key(client, tenant, role="admin")
    await redis.hset(keys.postback_auth, mapping={"tok:stale": b"x", "key:stale": b"x"})
    await redis.hdel(keys.postback_auth, token_field(token))
    pubsub = redis.pubsub()
    await pubsub.subscribe(keys.postback_auth_changes)
    async with pool.acquire() as conn:
        count = await sync_all_postback_auth(conn, redis, keys)
    published = await _hash(redis, keys)
    assert {"tok:stale", "key:stale"}.isdisjoint(published)
    assert {token_field(token), credential_field(sender["key"]), credential_field(tenant.key),
            f"adv:{tenant.advertiser_id}"} <= set(published)
    assert count == len(published)
    assert await _messages(pubsub) == [[]]

    # Expired in Postgres (no api call told the edge): the next sync removes it.
    await pool.execute("update advertiser_signing_secrets set expires_at = now() - interval '1 second'")
    await pool.execute("update api_keys set expires_at = now() - interval '1 second' where id = $1",
                       uuid.UUID(sender["id"]))
    async with pool.acquire() as conn:
        await sync_all_postback_auth(conn, redis, keys)
    assert (await _auth(redis, keys, tenant.advertiser_id)).signing_secrets == []
    assert credential_field(sender["key"]) not in await _hash(redis, keys)
    assert secret["secret"] not in str(await _hash(redis, keys))
    await pubsub.aclose()


async def test_api_startup_publishes_postback_auth(client, app, api_settings, redis, keys, tenant):
    from api.app import create_app

    token = (await _issue_token(client, tenant))["postback_token"]
    await redis.delete(keys.postback_auth)
    fresh = create_app(api_settings)
    async with fresh.router.lifespan_context(fresh):
        assert token_field(token) in await _hash(redis, keys)


async def test_the_maintenance_job_resyncs_the_hash(client, pool, redis, keys, settings, tenant):
    from workers.maintenance import resync_postback_auth_job

    token = (await _issue_token(client, tenant))["postback_token"]
    await redis.delete(keys.postback_auth)
    count = await resync_postback_auth_job({"pool": pool, "redis": redis, "keys": keys, "settings": settings})
    assert token_field(token) in await _hash(redis, keys) and count == len(await _hash(redis, keys))


def test_the_fields_are_the_ones_the_edge_computes():
    from core.postbacks import credential_field as edge_field

    raw = "aft_live_" + "a" * 43
    assert credential_field(raw) == edge_field("key", raw) and token_field(raw) == edge_field("tok", raw)


async def test_a_publish_that_raced_another_writer_is_redone_from_fresh_data(redis, keys):
    from core.store.postback_credentials import publish_postback_auth

    loads = []

    async def load():
        loads.append(1)
        if len(loads) == 1:  # another writer changes the hash between our read and our write
            await redis.hset(keys.postback_auth, "tok:other", b"y")
            return {"tok:a": b"stale"}, {"tok:a"}
        return {"tok:a": b"fresh"}, {"tok:a"}

    assert await publish_postback_auth(redis, keys, load) == ["tok:a"]
    assert len(loads) == 2
    assert await _hash(redis, keys) == {"tok:a": b"fresh", "tok:other": b"y"}


def test_the_worker_resyncs_every_five_minutes_and_at_start(settings):
    from workers.maintenance import resync_postback_auth_job
    from workers.settings import worker_settings

    (job,) = [c for c in worker_settings(settings)["cron_jobs"] if c.coroutine is resync_postback_auth_job]
    assert job.minute == set(range(0, 60, 5)) and job.run_at_startup
