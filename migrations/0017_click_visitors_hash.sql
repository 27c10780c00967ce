-- click_visitors.visitor: a 64-bit hash of the click's address and user agent
-- (hashtextextended, seed 0) instead of an md5 as a uuid. Computing the md5 of every
-- ingested click was about a tenth of the ingest transaction; the built-in hash costs a
-- quarter of it. Two visitors of one offer on one UTC day share a 64-bit hash with a
-- probability of about n²/2⁶⁵ (one in 370,000 for a million visitors), and then the
-- second's first click is not counted as unique.
--
-- The table only remembers who has clicked today and the two UTC days before, so it is
-- rebuilt here from those days' clicks (a visitor's first click by id per offer and day).
delete from click_visitors;
alter table click_visitors alter column visitor type bigint using 0;
comment on column click_visitors.visitor is 'hashtextextended(host(ip) || ''|'' || user_agent, 0)';

insert into click_visitors (org_id, offer_id, day, visitor, click_id)
select org_id, offer_id, (clicked_at at time zone 'UTC')::date,
       hashtextextended(coalesce(host(ip), '') || '|' || coalesce(user_agent, ''), 0), min(click_id collate "C")
from clicks
where clicked_at >= ((now() at time zone 'UTC')::date - 2)::timestamp at time zone 'UTC'
group by 1, 2, 3, 4
order by 1, 3, 2, 4;
