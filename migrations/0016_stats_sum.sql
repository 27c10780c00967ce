-- afftok_sum(bigint) -> bigint: the sum of bigints as a bigint (0 for no rows).
--
-- Postgres's sum(bigint) returns numeric: each group keeps a 128-bit state and ends in a
-- numeric that the stats query casts back to bigint. Summing rollup rows needs neither:
-- int8pl adds by value and raises on overflow (past 9.2e18, never reached by counts or
-- minor units), so the result is exact and about a third of the stats query's time goes.
create aggregate afftok_sum(bigint) (
    sfunc = int8pl,
    stype = bigint,
    initcond = '0',
    combinefunc = int8pl,
    parallel = safe
);
