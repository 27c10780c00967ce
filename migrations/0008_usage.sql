-- Usage per organization per calendar month (UTC), for the plans in core/plans.py.
--
-- events: tracked events recorded in the month (today: click rows actually inserted by
-- the ingest worker, in the same transaction as the rows, so redelivery never counts
-- twice). overage_events: those of them past the plan's monthly limit at the time they
-- were recorded, for overage billing. Written only by the workers (the owner role);
-- the api reads its own organization's rows.

create table usage_monthly (
    org_id uuid not null references organizations (id),
    month date not null check (extract(day from month) = 1),
    events bigint not null default 0 check (events >= 0),
    overage_events bigint not null default 0 check (overage_events between 0 and events),
    updated_at timestamptz not null default now(),
    primary key (org_id, month)
);

alter table usage_monthly enable row level security;
alter table usage_monthly force row level security;
create policy tenant_isolation on usage_monthly
    using (org_id = afftok_current_org()) with check (org_id = afftok_current_org());

grant select on usage_monthly to afftok_app;
