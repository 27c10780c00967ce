import datetime as dt
import uuid

import pytest

from core.errors import NotFound, Unauthorized, ValidationError
from core.store import api_keys as key_store
from core.store.advertisers import create_advertiser
from core.store.affiliates import create_affiliate, update_affiliate
from core.store.links import create_link
from core.store.link_configs import load_link_configs
from core.store.offers import create_offer, set_offer_approval, update_offer
from core.store.organizations import create_organization

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
LANDING = "https://shop.example/p?cid={click_id}"


async def _tenant(conn, name="Acme", currency="EUR"):
    org = await create_organization(conn, name, default_currency=currency)
    adv = await create_advertiser(conn, org.id, "Adv")
    aff = await create_affiliate(conn, org.id, "Aff", email="a@example.com")
    offer = await create_offer(conn, org.id, adv.id, "Offer", LANDING, payout_minor=100)
    return org, adv, aff, offer


async def test_offer_defaults_to_the_org_currency_and_link_config_follows_changes(pool):
    async with pool.acquire() as conn:
        org, adv, aff, offer = await _tenant(conn)
        assert offer.currency == "EUR" and offer.status == "active"
        link = await create_link(conn, org.id, offer.id, aff.id)
        [config] = await load_link_configs(conn, str(org.id), token=link.token)
        assert (config.offer_status, config.affiliate_status, config.destination_url) == ("active", "approved", LANDING)
        await update_offer(conn, org.id, offer.id, {"status": "paused", "geo_allow": ["US", "GB"]})
        await set_offer_approval(conn, org.id, offer.id, aff.id, "rejected", destination_url="https://b.example/{sub1}")
        [config] = await load_link_configs(conn, str(org.id), token=link.token)
        assert config.offer_status == "paused" and config.affiliate_status == "rejected"
        assert config.destination_url == "https://b.example/{sub1}" and config.geo_allow == ["GB", "US"]
        await update_affiliate(conn, org.id, aff.id, {"status": "banned"})
        [config] = await load_link_configs(conn, str(org.id), token=link.token)
        assert config.affiliate_status == "blocked"


async def test_ids_from_another_org_are_not_found(pool):
    async with pool.acquire() as conn:
        org, adv, aff, offer = await _tenant(conn)
        other, other_adv, other_aff, other_offer = await _tenant(conn, "Other")
        with pytest.raises(NotFound):
            await create_offer(conn, org.id, other_adv.id, "x", LANDING)
        with pytest.raises(NotFound):
            await create_link(conn, org.id, other_offer.id, aff.id)
        with pytest.raises(NotFound):
            await create_link(conn, org.id, offer.id, other_aff.id)
        with pytest.raises(NotFound):
            await update_offer(conn, org.id, other_offer.id, {"status": "paused"})
        with pytest.raises(NotFound):
            await set_offer_approval(conn, org.id, offer.id, other_aff.id, "approved")
        with pytest.raises(NotFound):
            await update_affiliate(conn, org.id, other_aff.id, {"status": "banned"})
        assert await conn.fetchval("select count(*) from links") == 0
        assert await conn.fetchval("select status from offers where id = $1", other_offer.id) == "active"


async def test_offer_validation_rejects_bad_values_before_writing(pool):
    async with pool.acquire() as conn:
        org, adv, aff, offer = await _tenant(conn)
        for bad in ({"currency": "usd"}, {"payout_minor": -1}, {"geo_deny": ["usa"]},
                    {"fallback_url": "javascript:alert(1)"}, {"destination_url": "https://{sub1}.evil/"}):
            with pytest.raises(ValidationError):
                await update_offer(conn, org.id, offer.id, bad)
        with pytest.raises(ValidationError):
            await create_offer(conn, org.id, adv.id, "x", LANDING, geo_allow=["US"], geo_deny=["US"])
        assert await conn.fetchval("select count(*) from offers") == 1


async def test_api_keys_store_only_a_hash_and_touch_last_used_once_a_minute(pool):
    async with pool.acquire() as conn:
        org = await create_organization(conn, "Acme")
        created = await key_store.create_api_key(conn, org.id, "ci", "analyst", expires_at=NOW + dt.timedelta(days=1))
        dump = await conn.fetchval("select row_to_json(k)::text from api_keys k")
        assert created.key not in dump and created.key[13:-4] not in dump
        key = await key_store.authenticate_api_key(conn, created.key, NOW)
        assert key.role == "analyst" and key.id == created.record.id
        assert await conn.fetchval("select last_used_at from api_keys") == NOW
        await key_store.authenticate_api_key(conn, created.key, NOW + dt.timedelta(seconds=59))
        assert await conn.fetchval("select last_used_at from api_keys") == NOW
        await key_store.authenticate_api_key(conn, created.key, NOW + dt.timedelta(seconds=61))
        assert await conn.fetchval("select last_used_at from api_keys") == NOW + dt.timedelta(seconds=61)
        with pytest.raises(Unauthorized, match="expired"):
            await key_store.authenticate_api_key(conn, created.key, NOW + dt.timedelta(days=2))
        await key_store.revoke_api_key(conn, org.id, key.id, NOW)
        with pytest.raises(Unauthorized, match="revoked"):
            await key_store.authenticate_api_key(conn, created.key, NOW)
        with pytest.raises(ValidationError):
            await key_store.create_api_key(conn, org.id, "x", "root")
        with pytest.raises(NotFound):
            await key_store.create_api_key(conn, uuid.uuid4(), "x")
        assert [k.id for k in await key_store.list_api_keys(conn, org.id)] == [key.id]


async def test_a_patch_that_makes_geo_lists_overlap_is_undone_even_outside_a_transaction(pool):
    async with pool.acquire() as conn:
        org, adv, aff, offer = await _tenant(conn)
        await update_offer(conn, org.id, offer.id, {"geo_allow": ["US"]})
        with pytest.raises(ValidationError):
            await update_offer(conn, org.id, offer.id, {"geo_deny": ["US"], "name": "Renamed"})
        row = await conn.fetchrow("select name, geo_deny from offers where id = $1", offer.id)
        assert (row["name"], row["geo_deny"]) == ("Offer", [])
