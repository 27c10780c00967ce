-- The audit log: one row per change made through the api, written in the same
-- transaction as the change (api/audit.py), so a change cannot commit without its row.
--
-- Append-only for the application: afftok_app may insert and read (its own
-- organization's rows, under row-level security) but never update or delete.
-- Rows are kept at least 365 days: the maintenance job deletes older ones
-- (workers/maintenance.py, AUDIT_RETENTION_DAYS), and the trigger below keeps any row
-- younger than that even from a delete by the owner role, so no setting, clock or bug
-- in the job can shorten it. Nobody updates a row, the owner included.

create table audit_log (
    id bigint generated always as identity primary key,
    org_id uuid not null references organizations (id),
    occurred_at timestamptz not null default now(),
    actor_type text not null check (actor_type in ('api_key', 'user', 'system')),
    actor_id text not null check (length(actor_id) between 1 and 200),
    action text not null check (length(action) between 1 and 100),
    target_type text not null check (length(target_type) between 1 and 100),
    target_id text check (length(target_id) <= 200),
    before jsonb,
    after jsonb,
    correlation_id text check (length(correlation_id) <= 128),
    client_ip inet,
    user_agent text check (length(user_agent) <= 512)
);

-- The api lists an organization's rows newest first, keyset-paged on (occurred_at, id).
create index audit_log_org_time_idx on audit_log (org_id, occurred_at desc, id desc);
-- Retention deletes the oldest rows of every organization.
create index audit_log_occurred_idx on audit_log (occurred_at);

alter table audit_log enable row level security;
alter table audit_log force row level security;
create policy tenant_isolation on audit_log
    using (org_id = afftok_current_org()) with check (org_id = afftok_current_org());

grant select, insert on audit_log to afftok_app;
grant usage on sequence audit_log_id_seq to afftok_app;

create function afftok_audit_log_immutable() returns trigger
language plpgsql
as $$
begin
    if tg_op = 'UPDATE' then
        raise exception 'audit_log rows are never changed' using errcode = 'insufficient_privilege';
    end if;
    -- DELETE: only rows past the 365-day floor go; a younger row is silently kept.
    if old.occurred_at >= now() - interval '365 days' then
        return null;
    end if;
    return old;
end $$;

create trigger audit_log_append_only before update or delete on audit_log
    for each row execute function afftok_audit_log_immutable();
