-- anteroom-app: signing keys and TURN secrets sealed at rest (docs/store.md, docs/api.md).
-- The app seals with crypto_secretbox under its seal key (the one that seals TOTP secrets):
-- token_keys.secret_key then holds nonce || box, and turn_secrets.secret the base64url of
-- nonce || box. SQL cannot seal (the key is not in the database), so this migration only marks
-- every existing row as in clear (0); the app seals those rows in place at its next start, and
-- writes new rows sealed (1). An older instance still running writes rows with the default 0,
-- which the app reads in clear and seals at its next start.
ALTER TABLE token_keys ADD COLUMN sealed INTEGER NOT NULL DEFAULT 0 CHECK (sealed IN (0, 1));
ALTER TABLE turn_secrets ADD COLUMN sealed INTEGER NOT NULL DEFAULT 0 CHECK (sealed IN (0, 1));
