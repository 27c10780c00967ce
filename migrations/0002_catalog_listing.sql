-- Catalog listing: the api pages every list newest first by (created_at, id) within one
-- organization; these indexes serve that order without a sort.

create index advertisers_org_created_idx on advertisers (org_id, created_at desc, id desc);
create index affiliates_org_created_idx on affiliates (org_id, created_at desc, id desc);
create index offers_org_created_idx on offers (org_id, created_at desc, id desc);
create index links_org_created_idx on links (org_id, created_at desc, id desc);
create index api_keys_org_created_idx on api_keys (org_id, created_at desc, id desc);
