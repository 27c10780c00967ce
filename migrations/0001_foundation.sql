-- Foundation: tenants, the parties of an offer, tracking links, API keys, clicks.
-- Every tenant row carries org_id; references between tenant rows include org_id,
-- so a row can never point into another organization.
-- Money is integer minor units with an ISO 4217 currency code beside it.

create table organizations (
    id uuid primary key default gen_random_uuid(),
    name text not null check (length(name) between 1 and 200),
    plan text not null default 'starter' check (plan in ('starter', 'professional', 'enterprise')),
    default_currency char(3) not null default 'USD' check (default_currency ~ '^[A-Z]{3}$'),
    created_at timestamptz not null default now()
);

create table advertisers (
    id uuid primary key default gen_random_uuid(),
    org_id uuid not null references organizations (id),
    name text not null check (length(name) between 1 and 200),
    status text not null default 'active' check (status in ('active', 'inactive')),
    created_at timestamptz not null default now(),
    unique (org_id, id)
);

create table affiliates (
    id uuid primary key default gen_random_uuid(),
    org_id uuid not null references organizations (id),
    name text not null check (length(name) between 1 and 200),
    email text check (length(email) <= 320),
    status text not null default 'active' check (status in ('active', 'inactive', 'banned')),
    created_at timestamptz not null default now(),
    unique (org_id, id)
);

create table offers (
    id uuid primary key default gen_random_uuid(),
    org_id uuid not null references organizations (id),
    advertiser_id uuid not null,
    name text not null check (length(name) between 1 and 200),
    status text not null default 'active' check (status in ('active', 'paused', 'archived')),
    destination_url text not null check (length(destination_url) <= 2048),
    fallback_url text check (length(fallback_url) <= 2048),
    currency char(3) not null default 'USD' check (currency ~ '^[A-Z]{3}$'),
    payout_minor bigint not null default 0 check (payout_minor >= 0),
    revenue_minor bigint not null default 0 check (revenue_minor >= 0),
    attribution_window_s integer not null default 2592000
        check (attribution_window_s between 60 and 31536000),
    requires_approval boolean not null default false,
    geo_allow char(2)[] not null default '{}',
    geo_deny char(2)[] not null default '{}',
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    unique (org_id, id),
    foreign key (org_id, advertiser_id) references advertisers (org_id, id)
);
create index offers_org_idx on offers (org_id, created_at);

create table offer_affiliates (
    org_id uuid not null,
    offer_id uuid not null,
    affiliate_id uuid not null,
    status text not null default 'approved' check (status in ('approved', 'pending', 'rejected', 'blocked')),
    payout_minor bigint check (payout_minor >= 0),
    destination_url text check (length(destination_url) <= 2048),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    primary key (offer_id, affiliate_id),
    foreign key (org_id, offer_id) references offers (org_id, id),
    foreign key (org_id, affiliate_id) references affiliates (org_id, id)
);

create table links (
    id uuid primary key default gen_random_uuid(),
    org_id uuid not null,
    offer_id uuid not null,
    affiliate_id uuid not null,
    token text not null unique check (token ~ '^[A-Za-z0-9_-]{8,64}$'),
    created_at timestamptz not null default now(),
    unique (org_id, id),
    foreign key (org_id, offer_id) references offers (org_id, id),
    foreign key (org_id, affiliate_id) references affiliates (org_id, id)
);
create index links_offer_idx on links (org_id, offer_id);

create table api_keys (
    id uuid primary key default gen_random_uuid(),
    org_id uuid not null references organizations (id),
    name text not null default '' check (length(name) <= 200),
    prefix text not null,
    last4 text not null,
    key_hash bytea not null unique,
    role text not null default 'admin',
    created_at timestamptz not null default now(),
    expires_at timestamptz,
    revoked_at timestamptz,
    last_used_at timestamptz,
    unique (org_id, id)
);

-- Clicks: append-only, one partition per UTC day (created ahead by the maintenance job;
-- the ingest worker also creates the day it needs). The primary key includes the
-- partition key; clicked_at is derived from the click id's time prefix, so a
-- redelivered click always meets its first copy.
create table clicks (
    click_id text not null,
    clicked_at timestamptz not null,
    org_id uuid not null,
    offer_id uuid not null,
    affiliate_id uuid not null,
    link_id uuid not null,
    outcome text not null,
    sub1 text,
    sub2 text,
    sub3 text,
    sub4 text,
    sub5 text,
    source_id text,
    ip inet,
    user_agent text,
    referer text,
    country char(2),
    device_type text,
    ingested_at timestamptz not null default clock_timestamp(),
    primary key (click_id, clicked_at)
) partition by range (clicked_at);
create index clicks_org_time_idx on clicks (org_id, clicked_at);
