async def test_each_test_gets_a_migrated_database_and_redis(pool, redis, keys):
    tables = {r["tablename"] for r in await pool.fetch("select tablename from pg_tables where schemaname='public'")}
    assert {"organizations", "offers", "links", "clicks", "api_keys", "schema_migrations"} <= tables
    await redis.set(keys.prefix + ":probe", "1")
    assert await redis.get(keys.prefix + ":probe") == b"1"
