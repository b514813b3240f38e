-- anteroom-app: optional encrypted keeping (S5, docs/keeping.md). A clinic that turns it on
-- uploads a public key made in an administrator's browser; clinicians' browsers encrypt a chat
-- transcript or a shared file to it. The store holds only the public key and ciphertext: the
-- private key never reaches the server, and nothing about the item is kept in clear but its
-- kind, its ciphertext size and when it was saved (a file's name is inside the ciphertext).
ALTER TABLE clinics ADD COLUMN keeping_enabled INTEGER NOT NULL DEFAULT 0
    CHECK (keeping_enabled IN (0, 1));
-- SubjectPublicKeyInfo of an RSA-OAEP (3072-bit, SHA-256) key, base64; NULL until uploaded.
ALTER TABLE clinics ADD COLUMN keeping_public_key TEXT;

CREATE TABLE keeping_items (
    id {{ID}},
    clinic_id BIGINT NOT NULL REFERENCES clinics(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('transcript', 'file')),
    -- The AES-GCM-256 key wrapped with RSA-OAEP to the clinic's public key at the time.
    wrapped_key {{BLOB}} NOT NULL,
    iv {{BLOB}} NOT NULL,
    ciphertext {{BLOB}} NOT NULL
);
CREATE INDEX keeping_items_clinic ON keeping_items (clinic_id, id);
