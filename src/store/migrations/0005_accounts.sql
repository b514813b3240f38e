-- Accounts (issue 4, A1/S2): invitations, the second factor, recovery codes, lockout and
-- per-address backoff. Everything a sign-in decision depends on lives here, not in an
-- instance's memory, so any number of stateless app instances enforce the same limits (X1).

-- The second factor is required for staff by default; `anteroom admin` may clear it for a
-- break-glass account. totp_secret (0001) holds the enrolled secret, sealed by the app;
-- totp_pending holds a secret shown for enrolment and not yet confirmed with a code.
ALTER TABLE accounts ADD COLUMN mfa_required INTEGER NOT NULL DEFAULT 1
    CHECK (mfa_required IN (0, 1));
ALTER TABLE accounts ADD COLUMN totp_pending {{BLOB}};
-- The last TOTP time step accepted: a code is usable once (RFC 6238 section 5.2), so a step at
-- or before this one is refused.
ALTER TABLE accounts ADD COLUMN totp_last_step BIGINT NOT NULL DEFAULT 0;

-- Invitations: a one-time link whose token is 256 random bits; only its SHA-256 is kept, so the
-- table cannot be replayed as links. The email is fixed by the inviter.
CREATE TABLE invitations (
    id {{ID}},
    token_hash {{BLOB}} NOT NULL UNIQUE,
    email TEXT NOT NULL,
    clinic_id BIGINT NOT NULL REFERENCES clinics (id) ON DELETE CASCADE,
    role TEXT NOT NULL
        CHECK (role IN ('clinic_admin', 'provider', 'receptionist', 'reporter')),
    invited_by BIGINT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    -- Set when accepted; a used invitation is refused.
    used_at BIGINT
);

-- Recovery codes: ten per enrolment, shown once, kept as BLAKE2b-256 hashes, each usable once.
CREATE TABLE recovery_codes (
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    code_hash {{BLOB}} NOT NULL,
    used_at BIGINT,
    PRIMARY KEY (account_id, code_hash)
);

-- The second step of a sign-in: the password was right, the code is still due. The token is
-- random and kept hashed; it lives for minutes and is used once.
CREATE TABLE mfa_challenges (
    token_hash {{BLOB}} PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    expires_at BIGINT NOT NULL
);
CREATE INDEX mfa_challenges_account ON mfa_challenges (account_id);

-- Failed sign-ins per account, one row each, for the sliding hour of the lockout (at most 100
-- failures per account per hour). Rows older than an hour are deleted as new ones come.
CREATE TABLE auth_failures (
    account_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    at BIGINT NOT NULL
);
CREATE INDEX auth_failures_account ON auth_failures (account_id, at);

-- Exponential backoff per source address. The address is kept only as a keyed hash of the
-- address (IPv4) or of its /64 (IPv6), and the row goes after an hour without failures.
CREATE TABLE addr_backoff (
    addr_hash {{BLOB}} PRIMARY KEY,
    failures BIGINT NOT NULL,
    last_at BIGINT NOT NULL,
    blocked_until BIGINT NOT NULL
);

-- The account an audit entry is about when that is not the actor (a role change, an MFA reset,
-- a deactivation). Hashed into the chain only when set, so entries written before keep their
-- hashes.
ALTER TABLE audit_log ADD COLUMN subject_account_id BIGINT;
