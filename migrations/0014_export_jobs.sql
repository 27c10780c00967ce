-- Background exports: one row per job (POST /v1/exports), run by the worker's export job.
--
-- The job streams the rows its request selects into a file under the worker's
-- export_dir (AFFTOK_EXPORT_DIR), named by the job id: a temp name first, renamed when
-- complete, so running a job twice writes the same file. status moves
-- queued -> running -> done | failed; rows_written grows while it runs, rows_total is an
-- estimate taken when it starts. The request is kept whole (kind, format, filters) with
-- the scope of the key that asked (an advertiser's or affiliate's export is shaped for
-- its role, and only that scope may read or download it). expires_at: the maintenance
-- job deletes the file and the row after it.

create table export_jobs (
    id uuid primary key,
    org_id uuid not null references organizations (id),
    kind text not null check (kind in ('clicks', 'conversions', 'stats')),
    format text not null check (format in ('csv', 'jsonl')),
    request jsonb not null,  -- core.exports.ExportRequest
    advertiser_id uuid,  -- the scope of the key that asked
    affiliate_id uuid,
    actor text not null,  -- api_key:<id> or user:<sub>
    status text not null default 'queued' check (status in ('queued', 'running', 'done', 'failed')),
    rows_written bigint not null default 0 check (rows_written >= 0),
    rows_total bigint check (rows_total >= 0),
    bytes_written bigint not null default 0 check (bytes_written >= 0),
    error text,
    created_at timestamptz not null default now(),
    started_at timestamptz,
    finished_at timestamptz,
    expires_at timestamptz not null
);
create index export_jobs_org_created_idx on export_jobs (org_id, created_at desc, id desc);
create index export_jobs_expires_idx on export_jobs (expires_at);

alter table export_jobs enable row level security;
alter table export_jobs force row level security;
create policy tenant_isolation on export_jobs
    using (org_id = afftok_current_org()) with check (org_id = afftok_current_org());

-- The api creates jobs and reads their progress; the worker (owner) runs and expires them.
grant select, insert on export_jobs to afftok_app;
