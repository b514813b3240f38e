-- anteroom-app: waiting-area settings, persistent rooms, hourly usage counters with no
-- identities, and the keys the app signs tokens and TURN credentials with (docs/api.md,
-- docs/tokens.md). Written by the app3 branch; accounts work lands in its own migrations.

-- What a waiting area shows and asks. Opening hours are a small text grammar evaluated in the
-- area's IANA time zone by the app (src/app/hours.c); fields_asked names the questions the
-- patient's browser asks, and the answers go only to signalling, never to the app.
ALTER TABLE waiting_areas ADD COLUMN time_zone TEXT NOT NULL DEFAULT 'UTC';
ALTER TABLE waiting_areas ADD COLUMN hours TEXT NOT NULL DEFAULT '';
ALTER TABLE waiting_areas ADD COLUMN welcome TEXT NOT NULL DEFAULT '';
ALTER TABLE waiting_areas ADD COLUMN fields_asked TEXT NOT NULL DEFAULT 'name';
ALTER TABLE waiting_areas ADD COLUMN profile TEXT NOT NULL DEFAULT 'standard'
    CHECK (profile IN ('low', 'standard', 'high'));
-- S11: calls from this area go through a relay only (no host or server-reflexive candidates).
ALTER TABLE waiting_areas ADD COLUMN relay_only INTEGER NOT NULL DEFAULT 0
    CHECK (relay_only IN (0, 1));

-- Rooms a clinic keeps (a provider's own room); one-time patient rooms are never written.
CREATE TABLE rooms (
    id {{ID}},
    clinic_id BIGINT NOT NULL REFERENCES clinics (id) ON DELETE CASCADE,
    -- 128 random bits, base64url: what tokens name, so room ids cannot be guessed.
    token_room TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX rooms_clinic ON rooms (clinic_id);

-- Entries per clinic, area and hour (hours since the Unix epoch): counts, never who.
CREATE TABLE usage_hourly (
    clinic_id BIGINT NOT NULL REFERENCES clinics (id) ON DELETE CASCADE,
    area_id BIGINT NOT NULL REFERENCES waiting_areas (id) ON DELETE CASCADE,
    hour BIGINT NOT NULL,
    metric TEXT NOT NULL,
    value BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (clinic_id, area_id, hour, metric)
);

-- Ed25519 token signing keys. The app signs with the newest; every key not yet retired is
-- published at /api/v1/keys so signalling keeps accepting tokens signed before a rotation.
-- retire_at is set at rotation to now + the overlap (longer than any token's lifetime).
CREATE TABLE token_keys (
    kid TEXT PRIMARY KEY,
    public_key {{BLOB}} NOT NULL,
    secret_key {{BLOB}} NOT NULL,
    created_at BIGINT NOT NULL,
    retire_at BIGINT
);

-- TURN REST shared secrets (coturn's use-auth-secret). The app mints with the newest; relays
-- are given it by the operator (`anteroom admin rotate-turn-secret` prints it).
CREATE TABLE turn_secrets (
    id {{ID}},
    secret TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    retire_at BIGINT
);
