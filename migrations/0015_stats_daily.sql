-- Daily rollups: stats_{offer,affiliate,full}_1d, the same numbers as the hourly tables
-- summed per UTC day (bucket = UTC midnight). core.stats_time reads a whole UTC day from
-- here when the day lies inside one key of the query (every day of a UTC query by day,
-- any day of a query without a time key), so a 30-day query reads ~30 rows per group
-- instead of ~720. Written in the same statements as the 15-minute and hourly rows
-- (core.store.stats_rollups); filled here from the hourly rows already stored.

do $$
declare
    cube text;
    dims text;
    t text;
    measures text := 'clicks, unique_clicks, conversions_pending, conversions_approved, conversions_rejected, '
                     'conversions_reversed, fraud_flagged, revenue_minor, payout_minor';
begin
    foreach cube in array array['offer', 'affiliate', 'full'] loop
        dims := case cube
            when 'offer' then 'offer_id, advertiser_id, currency'
            when 'affiliate' then 'offer_id, advertiser_id, affiliate_id, goal_key, currency'
            else 'offer_id, advertiser_id, affiliate_id, goal_key, country, device, sub1, currency'
        end;
        t := format('stats_%s_1d', cube);
        execute format($ddl$
            create table %1$I (
                org_id uuid not null,
                bucket timestamptz not null check (extract(epoch from bucket)::bigint %% 86400 = 0),
                offer_id uuid,
                advertiser_id uuid not null,
                %2$s
                currency char(3) check (currency ~ '^[A-Z]{3}$'),
                clicks bigint not null default 0,
                unique_clicks bigint not null default 0,
                conversions_pending bigint not null default 0,
                conversions_approved bigint not null default 0,
                conversions_rejected bigint not null default 0,
                conversions_reversed bigint not null default 0,
                fraud_flagged bigint not null default 0,
                revenue_minor bigint not null default 0,
                payout_minor bigint not null default 0,
                unique nulls not distinct (org_id, bucket, %3$s)
            )$ddl$,
            t,
            case cube
                when 'offer' then ''
                when 'affiliate' then 'affiliate_id uuid, goal_key text not null default '''','
                else 'affiliate_id uuid, goal_key text not null default '''', country char(2), '
                     'device text, sub1 text,'
            end,
            dims);
        if cube <> 'offer' then
            execute format('create index %1$I on %2$I (org_id, affiliate_id, bucket)', t || '_aff_idx', t);
        end if;
        execute format('create index %1$I on %2$I (org_id, advertiser_id, bucket)', t || '_adv_idx', t);
        execute format('alter table %I enable row level security', t);
        execute format('alter table %I force row level security', t);
        execute format(
            'create policy tenant_isolation on %1$I using (org_id = afftok_current_org()) '
            'with check (org_id = afftok_current_org())', t);
        execute format('grant select, insert, update on %I to afftok_app', t);
        execute format(
            'insert into %1$I (org_id, bucket, %2$s, %3$s) '
            'select org_id, date_bin(interval ''1 day'', bucket, timestamptz ''1970-01-01 00:00:00+00''), %2$s, %4$s '
            'from %5$I group by org_id, 2, %2$s',
            t, dims, measures,
            (select string_agg(format('sum(%1$s)', m), ', ') from unnest(string_to_array(measures, ', ')) m),
            format('stats_%s_1h', cube));
    end loop;
end
$$;
