-- anteroom-app's sessions (docs/api.md).
-- When the password (later: and the second factor) was last proven in this session. Sensitive
-- changes will demand a recent one (re-authentication, issue 4) without a new session.
ALTER TABLE sessions ADD COLUMN authenticated_at BIGINT NOT NULL DEFAULT 0;
-- Expired sessions are found by expiry when they are purged.
CREATE INDEX sessions_expires ON sessions (expires_at);
