-- Data subject rights (api/handlers/privacy.py, core/store/privacy.py): finding a
-- visitor's clicks by address within one organization. Clicks are partitioned by day,
-- so this index exists on every partition (present and future); erased rows (ip set to
-- NULL) leave it.

create index clicks_org_ip_idx on clicks (org_id, ip) where ip is not null;
