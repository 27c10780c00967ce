-- Outbound notifications: affiliate postbacks and webhooks, delivered from the outbox.
--
-- delivery_endpoints: where events go. kind 'postback' is an affiliate's GET URL
--   template with macros ({click_id}, {payout}, ...), optionally for one offer and/or one
--   goal (the most specific match wins, one postback per event); kind 'webhook' is a URL
--   that receives signed JSON, the organization's own (affiliate_id null) or an
--   affiliate's. event_types: the events it takes. An endpoint that keeps failing is
--   disabled by the worker (status, disabled_reason, disabled_at); its owner is told by
--   an 'endpoint.disabled' event. The URL passed the SSRF guard when it was saved and is
--   checked again before every request.
-- delivery_endpoint_secrets: webhook signing secrets, in clear because an HMAC needs the
--   secret itself (RLS; answers show the last four characters). expires_at null =
--   current; a rotated-out secret keeps signing until it expires, so two are live.
-- deliveries: one per (endpoint, event), made by the dispatcher when it takes an outbox
--   event (unique, so taking an event twice makes nothing new). body: the webhook's JSON,
--   or the postback's macro values; the URL is the endpoint's at send time. status
--   pending -> delivered | dead; a replay sets it pending again with a new retry_until.
--   next_attempt_at also serves as the sender's lease while a request is in flight.
-- delivery_attempts: every request made, kept for the API.
-- delivery_switch: the operator's kill switch (one row, no tenant): paused = no requests
--   are made; events keep queueing as pending deliveries.

alter table outbox_events drop constraint outbox_events_event_type_check;
alter table outbox_events add constraint outbox_events_event_type_check check (event_type in (
    'conversion.created', 'conversion.approved', 'conversion.rejected', 'conversion.reversed', 'cap.reached',
    'endpoint.disabled'));

create table delivery_endpoints (
    id uuid primary key default gen_random_uuid(),
    org_id uuid not null references organizations (id),
    kind text not null check (kind in ('postback', 'webhook')),
    affiliate_id uuid,
    offer_id uuid,
    goal text check (length(goal) between 1 and 100),
    url text not null check (length(url) between 1 and 2048),
    event_types text[] not null check (cardinality(event_types) > 0),
    description text not null default '' check (length(description) <= 200),
    status text not null default 'active' check (status in ('active', 'disabled')),
    disabled_reason text,
    disabled_at timestamptz,
    failure_streak integer not null default 0,  -- failed attempts since the last success
    failing_since timestamptz,
    last_success_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    unique (org_id, id),
    check (kind = 'webhook' or affiliate_id is not null),
    check (kind = 'postback' or (offer_id is null and goal is null)),
    foreign key (org_id, affiliate_id) references affiliates (org_id, id),
    foreign key (org_id, offer_id) references offers (org_id, id)
);
create index delivery_endpoints_org_idx on delivery_endpoints (org_id, kind, created_at desc, id desc);

create table delivery_endpoint_secrets (
    id uuid primary key default gen_random_uuid(),
    org_id uuid not null,
    endpoint_id uuid not null,
    secret text not null check (length(secret) between 32 and 200),
    created_at timestamptz not null default now(),
    expires_at timestamptz,
    foreign key (org_id, endpoint_id) references delivery_endpoints (org_id, id) on delete cascade
);
create index delivery_endpoint_secrets_endpoint_idx on delivery_endpoint_secrets (endpoint_id);

create table deliveries (
    id uuid primary key default gen_random_uuid(),
    org_id uuid not null,
    endpoint_id uuid not null,
    event_id uuid not null,
    event_type text not null,
    body bytea not null,
    status text not null default 'pending' check (status in ('pending', 'delivered', 'dead')),
    attempts integer not null default 0,
    event_created_at timestamptz not null,
    created_at timestamptz not null default now(),
    next_attempt_at timestamptz not null default now(),
    retry_until timestamptz not null,
    last_attempt_at timestamptz,
    last_status_code integer,
    last_error text,
    delivered_at timestamptz,
    dead_at timestamptz,
    unique (endpoint_id, event_id),
    foreign key (org_id, endpoint_id) references delivery_endpoints (org_id, id) on delete cascade
);
create index deliveries_due_idx on deliveries (next_attempt_at) where status = 'pending';
create index deliveries_endpoint_idx on deliveries (org_id, endpoint_id, status, created_at desc);
create index deliveries_org_created_idx on deliveries (org_id, created_at desc, id desc);

create table delivery_attempts (
    id bigserial primary key,
    org_id uuid not null,
    delivery_id uuid not null references deliveries (id) on delete cascade,
    attempt integer not null,
    started_at timestamptz not null,
    latency_ms integer not null check (latency_ms >= 0),
    status_code integer,  -- null: no HTTP answer (see error)
    error text,  -- connect | timeout | tls | protocol | unsafe_url, or null
    response_excerpt text not null default '' check (length(response_excerpt) <= 1000),
    url text not null  -- the URL requested (a postback's is expanded)
);
create index delivery_attempts_delivery_idx on delivery_attempts (delivery_id, id);

create table delivery_switch (
    singleton boolean primary key default true check (singleton),
    paused boolean not null default false,
    changed_at timestamptz not null default now(),
    changed_by text not null default ''
);
insert into delivery_switch default values;

do $$
declare
    t text;
begin
    foreach t in array array['delivery_endpoints', 'delivery_endpoint_secrets', 'deliveries', 'delivery_attempts']
    loop
        execute format('alter table %I enable row level security', t);
        execute format('alter table %I force row level security', t);
        execute format(
            'create policy tenant_isolation on %1$I using (org_id = afftok_current_org()) '
            'with check (org_id = afftok_current_org())', t);
    end loop;
end
$$;

-- The api manages endpoints and secrets, reads deliveries and attempts, and replays
-- (sets deliveries pending again). The worker (owner) does the rest.
grant select, insert, update, delete on delivery_endpoints, delivery_endpoint_secrets to afftok_app;
grant select, update on deliveries to afftok_app;
grant select on delivery_attempts to afftok_app;
grant usage, select on all sequences in schema public to afftok_app;
