-- Conversions: what advertisers report, tied to clicks, priced, capped and checked.
--
-- Flow: the edge accepts a postback (GET/POST /postback, or the pixel) and puts a
-- core.models.PostbackRecord in a conversions stream; the conversion worker applies
-- batches of them in one transaction each: conversions rows, their status history,
-- cap counters, usage, and outbox rows for affiliate notifications (issue 6 delivers
-- them). Money is integer minor units with its currency beside it.

-- Advertisers' postback credentials. The token goes in GET postback URLs; only its
-- SHA-256 is stored. Signing secrets verify "AffTok-Signature: t=,v1=" HMACs, so they
-- must be kept in clear (an HMAC cannot be checked against a hash); during a rotation
-- the old secret keeps working until expires_at.
alter table advertisers add column postback_token_hash bytea unique;
alter table advertisers add column postback_token_last4 text;

create table advertiser_signing_secrets (
    id uuid primary key default gen_random_uuid(),
    org_id uuid not null,
    advertiser_id uuid not null,
    secret text not null check (length(secret) between 32 and 200),
    created_at timestamptz not null default now(),
    expires_at timestamptz,  -- null: current; set when rotated out
    foreign key (org_id, advertiser_id) references advertisers (org_id, id)
);
create index advertiser_signing_secrets_adv_idx on advertiser_signing_secrets (org_id, advertiser_id);

-- Offer rules, each validated by its core struct before it is written:
-- commission: core.commission.CommissionRules (null: flat revenue_minor / payout_minor,
--   with offer_affiliates.payout_minor as per-affiliate override);
-- fraud_policy: core.fraud_rules.FraudPolicy; caps: core.caps.Caps.
alter table offers add column commission jsonb;
alter table offers add column fraud_policy jsonb not null default '{}';
alter table offers add column caps jsonb not null default '{}';

create table conversions (
    id uuid primary key default gen_random_uuid(),
    org_id uuid not null references organizations (id),
    advertiser_id uuid not null,
    -- Attribution; null when no click of this organization matched (reason unknown_click).
    click_id text,
    clicked_at timestamptz,
    offer_id uuid,
    affiliate_id uuid,
    link_id uuid,
    -- The advertiser's order id and goal: the idempotency key with the advertiser.
    external_id text not null check (length(external_id) between 1 and 200),
    goal text check (length(goal) between 1 and 100),
    goal_key text generated always as (coalesce(goal, '')) stored,
    status text not null check (status in ('pending', 'approved', 'rejected', 'reversed')),
    reason text,  -- why it is rejected or held pending: unknown_click, cap_reached, a fraud code…
    fraud_flags text[] not null default '{}',  -- every fraud rule that fired, flag or reject
    -- The sale as reported (null amount: a CPA conversion without one).
    sale_amount_minor bigint check (sale_amount_minor >= 0),
    sale_currency char(3) check (sale_currency ~ '^[A-Z]{3}$'),
    -- What the advertiser owes and the affiliate earns, in the offer's currency, once approved.
    revenue_minor bigint not null default 0 check (revenue_minor >= 0),
    payout_minor bigint not null default 0 check (payout_minor >= 0),
    currency char(3) check (currency ~ '^[A-Z]{3}$'),
    rule_applied text,
    product_id text check (length(product_id) <= 200),
    order_id text check (length(order_id) <= 200),
    customer_id text check (length(customer_id) <= 200),
    metadata jsonb,
    ip inet,  -- the visitor's address (the click's, or the pixel request's)
    user_agent text,
    country char(2),
    source text not null check (source in ('postback', 'pixel')),
    postback_id text not null,  -- the edge's id of the first postback
    received_at timestamptz not null,  -- when the edge accepted that postback
    created_at timestamptz not null default clock_timestamp(),
    updated_at timestamptz not null default now(),
    unique (org_id, id),
    unique (org_id, advertiser_id, external_id, goal_key),
    foreign key (org_id, advertiser_id) references advertisers (org_id, id)
);
create index conversions_org_created_idx on conversions (org_id, created_at desc, id desc);
create index conversions_org_click_idx on conversions (org_id, click_id) where click_id is not null;
create index conversions_offer_ip_idx on conversions (org_id, offer_id, ip) where ip is not null;
create index conversions_customer_idx on conversions (org_id, customer_id) where customer_id is not null;

-- Every status a conversion took, with who moved it and why. The deltas are what the
-- move changed in earned revenue and payout (earned = approved), so a conversion's
-- deltas sum to what it currently earns: pending → approved → reversed nets to zero.
create table conversion_status_history (
    id bigserial primary key,
    org_id uuid not null,
    conversion_id uuid not null,
    from_status text,  -- null: created
    to_status text not null,
    reason text,
    actor text not null,  -- "postback:token", "postback:signature", "api_key:<id>", "user:<sub>", "pixel", "system"
    revenue_delta_minor bigint not null default 0,
    payout_delta_minor bigint not null default 0,
    currency char(3),
    correlation_id text,
    created_at timestamptz not null default clock_timestamp(),
    foreign key (org_id, conversion_id) references conversions (org_id, id)
);
create index conversion_status_history_conv_idx on conversion_status_history (org_id, conversion_id, id);

-- Postbacks whose click has not reached Postgres yet (or whose dedupe key has an
-- earlier postback waiting, so order is kept). The worker retries them each cycle
-- when due and gives up at give_up_at with reason unknown_click. record is the
-- msgpack PostbackRecord exactly as it came from the stream.
create table conversion_waits (
    org_id uuid not null,
    postback_id text not null,
    advertiser_id uuid not null,
    external_id text not null,
    goal_key text not null,
    click_id text,
    record bytea not null,
    received_at timestamptz not null,
    next_try_at timestamptz not null,
    give_up_at timestamptz not null,
    primary key (org_id, postback_id)
);
create index conversion_waits_due_idx on conversion_waits (next_try_at);
create index conversion_waits_key_idx on conversion_waits (org_id, advertiser_id, external_id, goal_key);

-- Conversions and payout counted against caps, per offer (affiliate_id = the nil uuid)
-- and per affiliate on an offer, per UTC day and month. Counted: pending and approved;
-- a conversion that leaves them (rejected, reversed) gives its place back. approved
-- counts approvals only (for commission tiers).
create table conversion_counters (
    org_id uuid not null,
    offer_id uuid not null,
    affiliate_id uuid not null,
    period text not null check (period in ('day', 'month')),
    period_start date not null,
    conversions bigint not null default 0,
    approved bigint not null default 0,
    payout_minor bigint not null default 0,
    primary key (org_id, offer_id, affiliate_id, period, period_start)
);

-- Clicks counted against click caps, the same way, by the click ingest worker from the
-- rows it actually inserted.
create table click_counters (
    org_id uuid not null,
    offer_id uuid not null,
    affiliate_id uuid not null,
    period text not null check (period in ('day', 'month')),
    period_start date not null,
    clicks bigint not null default 0,
    primary key (org_id, offer_id, affiliate_id, period, period_start)
);

-- Events for affiliates and integrators, written in the transaction that caused them;
-- delivered (postbacks, webhooks) by the outbox worker of a later issue.
create table outbox_events (
    id bigserial primary key,
    event_id uuid not null unique default gen_random_uuid(),
    org_id uuid not null references organizations (id),
    event_type text not null check (event_type in (
        'conversion.created', 'conversion.approved', 'conversion.rejected', 'conversion.reversed', 'cap.reached')),
    conversion_id uuid,
    affiliate_id uuid,
    offer_id uuid,
    payload jsonb not null,
    created_at timestamptz not null default now(),
    dispatched_at timestamptz
);
create index outbox_events_undispatched_idx on outbox_events (id) where dispatched_at is null;

do $$
declare
    t text;
begin
    foreach t in array array['advertiser_signing_secrets', 'conversions', 'conversion_status_history',
                             'conversion_waits', 'conversion_counters', 'click_counters', 'outbox_events']
    loop
        execute format('alter table %I enable row level security', t);
        execute format('alter table %I force row level security', t);
        execute format(
            'create policy tenant_isolation on %1$I using (org_id = afftok_current_org()) '
            'with check (org_id = afftok_current_org())', t);
    end loop;
end
$$;

-- The api reads conversions and their history, changes status by hand (update +
-- history + outbox), and manages advertisers' signing secrets. Workers run as owner.
grant select, update on conversions to afftok_app;
grant select, insert on conversion_status_history to afftok_app;
grant select, insert, update on advertiser_signing_secrets to afftok_app;
grant select, insert, update on conversion_counters to afftok_app;
grant select on click_counters, conversion_waits to afftok_app;
grant select, insert on outbox_events to afftok_app;
grant usage, select on all sequences in schema public to afftok_app;
