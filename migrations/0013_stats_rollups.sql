-- Statistics rollups: what /v1/stats, exports and the dashboard read (never raw clicks).
--
-- Maintained incrementally in the transactions that insert clicks (the click ingest
-- worker) and write conversion status history (the conversion worker, and the api when
-- an operator changes a status), from the rows those statements actually inserted, so a
-- replayed batch adds nothing.
--
-- Time: buckets are UTC instants aligned to 15 minutes (stats_*_15m) or to the hour
-- (stats_*_1h, the same numbers summed per hour). Every IANA zone's offset is a multiple
-- of 15 minutes, so any local hour, day, week or month is an exact union of 15-minute
-- buckets; a UTC hour whose start is on a local whole hour lies inside one local hour,
-- so the hourly rows serve every such hour and the 15-minute rows only the hours a zone
-- like Asia/Kolkata (+05:30) or Asia/Kathmandu (+05:45) splits.
--
-- Cubes: the same measures at three sets of dimensions, so a query reads the smallest
-- cube that has every dimension it groups or filters by:
--   offer     (offer, advertiser, currency)
--   affiliate (offer, advertiser, affiliate, goal, currency)
--   full      (offer, advertiser, affiliate, goal, country, device, sub1, currency)
-- A null offer/affiliate is a conversion no click matched (unknown_click); clicks have
-- goal '' and no currency; a conversion's currency is the offer's (revenue and payout).
--
-- Clicks are bucketed by clicked_at, conversions by received_at (when the edge accepted
-- their first postback). Conversion counts are by current status: a status change moves
-- one count from the old status to the new in the conversion's bucket. revenue_minor and
-- payout_minor are earned money (approved), the sums of the status history's deltas, so
-- pending → approved → reversed nets to zero. fraud_flagged counts conversions created
-- with at least one fraud flag.
--
-- sub1 has bounded cardinality: stats_sub1_values admits the first AFFTOK_STATS_SUB1_LIMIT
-- (default 1,000) distinct values per offer (truncated to 100 characters); later values
-- roll up as '(other)'.
--
-- Unique clicks: a click is unique when it is the first of its visitor (address and user
-- agent) on its offer that UTC day; click_visitors remembers who was seen.

-- A conversion is reported under its click's country, device and sub1 (what its
-- conversion rate is read against), kept on the row so a status change months later,
-- after the click is gone, still lands in the same rollup rows.
alter table conversions add column click_country char(2);
alter table conversions add column device_type text;
alter table conversions add column sub1 text;

create table stats_sub1_values (
    org_id uuid not null,
    offer_id uuid not null,
    sub1 text not null check (length(sub1) between 1 and 100),
    primary key (org_id, offer_id, sub1)
);

create table click_visitors (
    org_id uuid not null,
    offer_id uuid not null,
    day date not null,  -- UTC
    visitor uuid not null,  -- md5 of the click's address and user agent
    click_id text not null,  -- the click that counted as unique
    primary key (org_id, day, offer_id, visitor)
);

do $$
declare
    cube text;
    grain text;
    dims text;
    t text;
begin
    foreach cube in array array['offer', 'affiliate', 'full'] loop
        dims := case cube
            when 'offer' then 'offer_id, advertiser_id, currency'
            when 'affiliate' then 'offer_id, advertiser_id, affiliate_id, goal_key, currency'
            else 'offer_id, advertiser_id, affiliate_id, goal_key, country, device, sub1, currency'
        end;
        foreach grain in array array['15m', '1h'] loop
            t := format('stats_%s_%s', cube, grain);
            execute format($ddl$
                create table %1$I (
                    org_id uuid not null,
                    bucket timestamptz not null check (extract(epoch from bucket)::bigint %% %2$s = 0),
                    offer_id uuid,
                    advertiser_id uuid not null,
                    %3$s
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
                    unique nulls not distinct (org_id, bucket, %4$s)
                )$ddl$,
                t,
                case grain when '15m' then 900 else 3600 end,
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
            -- The api writes them when an operator changes a conversion's status.
            execute format('grant select, insert, update on %I to afftok_app', t);
        end loop;
    end loop;
end
$$;

do $$
declare
    t text;
begin
    foreach t in array array['stats_sub1_values', 'click_visitors'] loop
        execute format('alter table %I enable row level security', t);
        execute format('alter table %I force row level security', t);
        execute format(
            'create policy tenant_isolation on %1$I using (org_id = afftok_current_org()) '
            'with check (org_id = afftok_current_org())', t);
    end loop;
end
$$;
grant select on stats_sub1_values to afftok_app;

-- Backfill: what is already stored counts as if it had been rolled up when written
-- (the sub1 values of each offer in order of first appearance, up to the default limit).
update conversions v
set click_country = c.country, device_type = c.device_type, sub1 = left(nullif(c.sub1, ''), 100)
from clicks c
where c.click_id = v.click_id and c.clicked_at = v.clicked_at and v.offer_id is not null;

insert into stats_sub1_values (org_id, offer_id, sub1)
select org_id, offer_id, sub1 from (
    select org_id, offer_id, sub1, row_number() over (partition by org_id, offer_id order by first_at, sub1) as nth
    from (
        select org_id, offer_id, left(nullif(sub1, ''), 100) as sub1, min(clicked_at) as first_at
        from clicks where nullif(sub1, '') is not null group by 1, 2, 3
    ) s
) ranked
where nth <= 1000;

create temp table stats_backfill on commit drop as
with visited as (
    select c.*, left(nullif(c.sub1, ''), 100) as sub1_value,
           row_number() over (
               partition by c.org_id, c.offer_id, (c.clicked_at at time zone 'UTC')::date,
                            md5(coalesce(host(c.ip), '') || '|' || coalesce(c.user_agent, ''))
               order by c.clicked_at, c.click_id collate "C") = 1 as unique_click
    from clicks c
)
select c.org_id, c.clicked_at as at, c.offer_id, o.advertiser_id, c.affiliate_id, ''::text as goal_key,
       c.country::char(2) as country, c.device_type as device,
       case when c.sub1_value is null then null
            when exists (select from stats_sub1_values s
                         where s.org_id = c.org_id and s.offer_id = c.offer_id and s.sub1 = c.sub1_value)
            then c.sub1_value else '(other)' end as sub1,
       null::char(3) as currency, 1 as clicks, c.unique_click::int as unique_clicks,
       0 as conversions_pending, 0 as conversions_approved, 0 as conversions_rejected, 0 as conversions_reversed,
       0 as fraud_flagged, 0::bigint as revenue_minor, 0::bigint as payout_minor
from visited c join offers o on o.org_id = c.org_id and o.id = c.offer_id
union all
select v.org_id, v.received_at, v.offer_id, v.advertiser_id, v.affiliate_id, v.goal_key, v.click_country,
       v.device_type,
       case when v.sub1 is null then null
            when exists (select from stats_sub1_values s
                         where s.org_id = v.org_id and s.offer_id = v.offer_id and s.sub1 = v.sub1)
            then v.sub1 else '(other)' end,
       v.currency, 0, 0, (v.status = 'pending')::int, (v.status = 'approved')::int, (v.status = 'rejected')::int,
       (v.status = 'reversed')::int, (cardinality(v.fraud_flags) > 0)::int,
       coalesce(h.revenue_minor, 0), coalesce(h.payout_minor, 0)
from conversions v
left join (
    select conversion_id, sum(revenue_delta_minor)::bigint as revenue_minor, sum(payout_delta_minor)::bigint as payout_minor
    from conversion_status_history group by conversion_id
) h on h.conversion_id = v.id;

do $$
declare
    cube text;
    grain text;
    dims text;
    measures text := 'clicks, unique_clicks, conversions_pending, conversions_approved, conversions_rejected, '
                     'conversions_reversed, fraud_flagged, revenue_minor, payout_minor';
begin
    foreach cube in array array['offer', 'affiliate', 'full'] loop
        dims := case cube
            when 'offer' then 'offer_id, advertiser_id, currency'
            when 'affiliate' then 'offer_id, advertiser_id, affiliate_id, goal_key, currency'
            else 'offer_id, advertiser_id, affiliate_id, goal_key, country, device, sub1, currency'
        end;
        foreach grain in array array['15m', '1h'] loop
            execute format(
                'insert into %1$I (org_id, bucket, %2$s, %3$s)'
                ' select org_id, date_bin(interval %4$L, at, timestamptz %5$L), %2$s, %6$s'
                ' from stats_backfill group by org_id, 2, %2$s',
                'stats_' || cube || '_' || grain, dims, measures,
                case grain when '15m' then '900 seconds' else '3600 seconds' end, '1970-01-01 00:00:00+00',
                (select string_agg(format('sum(%s)', m), ', ')
                 from unnest(string_to_array(replace(measures, ' ', ''), ',')) as m));
        end loop;
    end loop;
end
$$;

insert into click_visitors (org_id, offer_id, day, visitor, click_id)
select org_id, offer_id, day, visitor, min(click_id collate "C") from (
    select org_id, offer_id, (clicked_at at time zone 'UTC')::date as day, click_id,
           md5(coalesce(host(ip), '') || '|' || coalesce(user_agent, ''))::uuid as visitor
    from clicks
    where clicked_at >= ((now() at time zone 'UTC')::date - 2)::timestamp at time zone 'UTC'
) v
group by org_id, day, offer_id, visitor;
