-- Tenant isolation in the database: the api runs as afftok_app, which owns nothing, has
-- no BYPASSRLS and sees only the rows of the organization set for its transaction
-- (select set_config('afftok.org_id', <uuid>, true)). Without the setting it sees no rows.
-- The migrating role owns every table and is trusted system code (migrations, workers,
-- CLI): it must bypass row-level security, as a superuser or a role with BYPASSRLS,
-- because FORCE ROW LEVEL SECURITY subjects plain owners to the policies too.

do $$
begin
    if not exists (select from pg_roles where rolname = current_user and (rolsuper or rolbypassrls)) then
        raise exception 'the migrating role % must be a superuser or have BYPASSRLS', current_user
            using hint = 'workers and the CLI run as this role across every organization';
    end if;
end $$;

-- Roles are cluster-wide: several databases (tests, staging) may share one.
do $$
begin
    if not exists (select from pg_roles where rolname = 'afftok_app') then
        create role afftok_app nologin nosuperuser nocreatedb nocreaterole noreplication nobypassrls;
    end if;
    if not pg_has_role(current_user, 'afftok_app', 'member') then
        grant afftok_app to current_user;  -- so the owner's login can SET ROLE afftok_app
    end if;
end $$;

-- The organization of the current transaction; NULL (so no row matches) when unset.
create or replace function afftok_current_org() returns uuid
language sql stable
as $$ select nullif(current_setting('afftok.org_id', true), '')::uuid $$;

do $$
declare
    t text;
begin
    foreach t in array array['organizations', 'advertisers', 'affiliates', 'offers', 'offer_affiliates',
                             'links', 'api_keys', 'clicks'] loop
        if to_regclass(format('public.%I', t)) is null then
            continue;
        end if;
        execute format('alter table %I enable row level security', t);
        execute format('alter table %I force row level security', t);
        execute format('drop policy if exists tenant_isolation on %I', t);
        execute format(
            'create policy tenant_isolation on %1$I using (%2$I = afftok_current_org())'
            ' with check (%2$I = afftok_current_org())',
            t, case when t = 'organizations' then 'id' else 'org_id' end);
    end loop;
end $$;

-- The minimum the api needs. It never deletes; clicks are updated only to erase personal data.
grant usage on schema public to afftok_app;
grant select, update on organizations to afftok_app;
grant select, insert, update on advertisers, affiliates, offers, offer_affiliates, links, api_keys to afftok_app;
grant select, update on clicks to afftok_app;
grant usage, select on all sequences in schema public to afftok_app;

-- API keys are looked up before the tenant is known: this function (running as its
-- owner, the migrating role) finds one key by its hash and nothing else. The caller then
-- sets the tenant from the key's org_id and does any write under row-level security.
create or replace function afftok_api_key_by_hash(hash bytea) returns setof api_keys
language sql stable security definer
set search_path = public, pg_temp
as $$ select * from api_keys where key_hash = $1 $$;
revoke all on function afftok_api_key_by_hash(bytea) from public;
grant execute on function afftok_api_key_by_hash(bytea) to afftok_app;
