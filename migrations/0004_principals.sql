-- Principals: the roles an API key may hold, the scope of the advertiser and affiliate
-- roles, rotation with a grace period and revocation with a reason.
-- The roles and their permissions are defined in core/permissions.py; this constraint
-- only keeps the stored values within that list.

update api_keys set role = 'analyst' where role = 'read_only';

alter table api_keys
    add constraint api_keys_role_check
        check (role in ('owner', 'admin', 'manager', 'analyst', 'advertiser', 'affiliate')),
    -- Scoped roles: an advertiser key sees one advertiser, an affiliate key one affiliate.
    add column advertiser_id uuid,
    add column affiliate_id uuid,
    add constraint api_keys_advertiser_fk foreign key (org_id, advertiser_id) references advertisers (org_id, id),
    add constraint api_keys_affiliate_fk foreign key (org_id, affiliate_id) references affiliates (org_id, id),
    add constraint api_keys_scope_check check (
        (role = 'advertiser') = (advertiser_id is not null)
        and (role = 'affiliate') = (affiliate_id is not null)
    ),
    -- Rotation: the new key points back with rotated_from; the old one points forward with
    -- replaced_by and keeps working until grace_until.
    add column rotated_from uuid,
    add column replaced_by uuid,
    add column grace_until timestamptz,
    add constraint api_keys_rotated_from_fk foreign key (org_id, rotated_from) references api_keys (org_id, id),
    add constraint api_keys_replaced_by_fk foreign key (org_id, replaced_by) references api_keys (org_id, id),
    add constraint api_keys_rotation_check check ((replaced_by is null) = (grace_until is null)),
    -- Revocation: effective at revoked_at, with the reason given.
    add column revoked_reason text,
    add constraint api_keys_revoked_reason_check check (
        revoked_reason is null or (length(revoked_reason) between 1 and 500 and revoked_at is not null)
    );

-- A key is rotated at most once.
create unique index api_keys_rotated_from_idx on api_keys (rotated_from) where rotated_from is not null;
