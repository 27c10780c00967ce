-- Click flooding (core/store/fraud_signals.py): the conversion worker counts the clicks
-- of an organization on an offer from one address in the minute up to a click. With
-- 0007's (org_id, ip) that read every click of the address in the day's partition (or
-- the organization's whole minute through clicks_org_time_idx); this index reads just
-- the minute's. It replaces 0007's, whose lookups by address (data subject requests)
-- it serves as well, so a click insert still maintains one index on the address.
--
-- Built on every daily partition under a lock that holds click inserts back while it
-- runs (a partitioned index cannot be built concurrently); the ingest worker catches up
-- from the stream afterwards.

create index clicks_org_ip_offer_time_idx on clicks (org_id, ip, offer_id, clicked_at) where ip is not null;
drop index clicks_org_ip_idx;
