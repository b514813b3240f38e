-- anteroom-app: encrypted keeping uploads in chunks (S5, docs/keeping.md). The HTTPS listener
-- reads at most 64 KiB of body per request, so a browser sends an item of up to 1 MiB of
-- ciphertext as an upload: created with its declared size and number of chunks, filled one
-- chunk at a time, then finished, when the chunks are joined into one keeping_items row and the
-- upload is deleted. Unfinished uploads expire (expires_at) and are deleted; the rows hold only
-- ciphertext and the wrapped key, like keeping_items.
CREATE TABLE keeping_uploads (
    id {{ID}},
    clinic_id BIGINT NOT NULL REFERENCES clinics(id) ON DELETE CASCADE,
    -- Only the account that created an upload may fill or finish it.
    account_id BIGINT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('transcript', 'file')),
    size BIGINT NOT NULL CHECK (size BETWEEN 16 AND 1048576),
    chunks INTEGER NOT NULL CHECK (chunks BETWEEN 1 AND 64),
    wrapped_key {{BLOB}} NOT NULL,
    iv {{BLOB}} NOT NULL
);
CREATE INDEX keeping_uploads_owner ON keeping_uploads (clinic_id, account_id);
CREATE INDEX keeping_uploads_expiry ON keeping_uploads (expires_at);

CREATE TABLE keeping_upload_chunks (
    upload_id BIGINT NOT NULL REFERENCES keeping_uploads(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL CHECK (idx BETWEEN 0 AND 63),
    data {{BLOB}} NOT NULL,
    PRIMARY KEY (upload_id, idx)
);
