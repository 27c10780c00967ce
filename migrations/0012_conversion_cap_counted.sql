-- Whether a conversion holds a place in its offer's caps (conversion_counters): set when
-- it was counted at creation or on a manual approval past a cap, cleared when it leaves
-- pending/approved and gives its place back. Without it a rejection could not tell a
-- counted conversion from one created before the caps existed or held over a cap.
alter table conversions add column cap_counted boolean not null default false;
