-- anteroom-app: sessions and the audit chain's head (docs/api.md).
-- When the password (later: and the second factor) was last proven in this session. Sensitive
-- changes will demand a recent one (re-authentication, issue 4) without a new session.
ALTER TABLE sessions ADD COLUMN authenticated_at BIGINT NOT NULL DEFAULT 0;
-- Expired sessions are found by expiry when they are purged.
CREATE INDEX sessions_expires ON sessions (expires_at);
-- The head of the audit log's hash chain: one row holding the number of entries and the last
-- entry's hash. Appending updates it first in the appending transaction, which serializes
-- appenders on both engines (a row lock on PostgreSQL, the write lock on SQLite), so two
-- instances can never chain two entries to the same predecessor. It also records the tail, so
-- cutting entries off the end shows. The app creates the row with the first entry (a zero hash
-- before it), since the engines spell blob literals differently.
CREATE TABLE audit_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n BIGINT NOT NULL,
    hash {{BLOB}} NOT NULL
);
