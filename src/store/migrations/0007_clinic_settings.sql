-- anteroom-app: a clinic's settings, changed with PATCH /api/v1/clinics/{clinic} (docs/api.md).
-- relay_only: every call of the clinic goes through a relay (S11); an area's own relay_only can
-- only add to it. default_profile: the quality profile of areas created without one.
ALTER TABLE clinics ADD COLUMN relay_only INTEGER NOT NULL DEFAULT 0 CHECK (relay_only IN (0, 1));
ALTER TABLE clinics ADD COLUMN default_profile TEXT NOT NULL DEFAULT 'standard'
    CHECK (default_profile IN ('low', 'standard', 'high'));
