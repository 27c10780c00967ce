-- Per-organization data settings: stored IPs truncated or not, and how long data is kept.
--
-- ip_truncate: when true the edge stores visitors' addresses as their /24 (IPv4) or /48
--   (IPv6); the full address never reaches Redis or Postgres. Takes effect when the
--   organization's link configs are republished.
-- clicks_retention_days: 30 to 730, default 90. Below 30 days attribution windows would
--   outlive their clicks; the rollups keep the numbers after raw clicks go.
-- conversions_retention_days: 365 to 3650, default 730 (two years). Conversions are
--   money records: kept at least a year, at most ten.
-- The bounds are repeated in core/retention.py, which the maintenance job and the
-- settings update use.

alter table organizations
    add column ip_truncate boolean not null default false,
    add column clicks_retention_days integer not null default 90
        constraint organizations_clicks_retention_days_check check (clicks_retention_days between 30 and 730),
    add column conversions_retention_days integer not null default 730
        constraint organizations_conversions_retention_days_check
        check (conversions_retention_days between 365 and 3650);
