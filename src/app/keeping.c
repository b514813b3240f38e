/*
 * Optional encrypted keeping (S5, docs/keeping.md): routes under /api/v1/clinics/{clinic}/keeping.
 *
 * The server never sees a plaintext or a private key. An administrator's browser makes an
 * RSA-OAEP key pair and uploads the public half (SPKI, base64) with the enable flag; clinicians'
 * browsers fetch it, encrypt an item with a fresh AES-GCM-256 key, wrap that key to the public
 * key and upload {kind, wrapped_key, iv} and then the ciphertext in chunks (the listener reads
 * at most 64 KiB of body per request, whatever the route), and finish the upload, which makes
 * it an item. Administrators list items and fetch one to decrypt in their browser. The byte
 * fields are decoded here and stored as bytes, so a malformed upload is refused (400) rather
 * than kept undecryptable.
 */
#include "internal.h"

#include "audit.h"

#include "anteroom/alloc.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define AUDIT_KEEPING_SET "keeping_settings_changed"
#define AUDIT_KEEPING_SAVED "keeping_item_saved"
#define AUDIT_KEEPING_READ "keeping_item_read"

/* An RSA-3072 SPKI is 422 bytes (564 in base64); 1024 leaves room for 4096-bit keys. */
#define PUBKEY_B64_MAX 1024
/* A wrapped key is the RSA modulus size: 384 bytes for 3072 bits, 512 for 4096. */
#define WRAPPED_MAX 512
#define IV_BYTES 12
/* AES-GCM's tag alone is 16 bytes: a shorter ciphertext cannot be one. */
#define CT_MIN 16

/* base64 (original alphabet, padded) of n bytes */
#define B64_LEN(n) ((((int64_t)(n) + 2) / 3) * 4)

const ar_app_field_t ar__f_keeping_put[] = {
    {"enabled", AR_FIELD_BOOL, 1, 0, 0, AR_CS_ANY},
    {"public_key", AR_FIELD_STR, 0, 64, PUBKEY_B64_MAX, AR_CS_ANY},
};
AR__CHECK_N(keeping_put);

const ar_app_field_t ar__f_keeping_upload[] = {
    {"kind", AR_FIELD_STR, 1, 1, 16, AR_CS_SLUG},
    {"wrapped_key", AR_FIELD_STR, 1, 4, B64_LEN(WRAPPED_MAX), AR_CS_ANY},
    {"iv", AR_FIELD_STR, 1, B64_LEN(IV_BYTES), B64_LEN(IV_BYTES), AR_CS_ANY},
    {"size", AR_FIELD_INT, 1, CT_MIN, (int64_t)AR_APP_KEEPING_ITEM_MAX, AR_CS_ANY},
    {"chunks", AR_FIELD_INT, 1, 1, AR_APP_KEEPING_CHUNKS_MAX, AR_CS_ANY},
};
AR__CHECK_N(keeping_upload);

const ar_app_field_t ar__f_keeping_chunk[] = {
    {"index", AR_FIELD_INT, 1, 0, AR_APP_KEEPING_CHUNKS_MAX - 1, AR_CS_ANY},
    {"data", AR_FIELD_STR, 1, 4, B64_LEN(AR_APP_KEEPING_CHUNK_MAX), AR_CS_ANY},
};
AR__CHECK_N(keeping_chunk);

/* A clinic's keeping switch and public key. */
#define KEEPING_SQL "SELECT keeping_enabled, keeping_public_key FROM clinics WHERE id = $1"

static void out_done(int status, void *arg)
{
    ar__req_t *r = arg;
    if (status == AR_ENOTFOUND) {
        ar__reply_error(r, 404, "not_found", "no such item in this clinic");
        return;
    }
    if (status == AR_ESTATE) {
        ar__reply_error(r, 409, "keeping_disabled",
                        "encrypted keeping is off, or no public key was uploaded");
        return;
    }
    ar__reply_result(r, status);
}

/* Decodes standard padded base64 into a fresh buffer; 0, or -1 when it is not such text. */
static int b64_decode(const char *s, size_t cap, uint8_t **out, size_t *len)
{
    size_t n = strlen(s);
    uint8_t *buf = ar_malloc(n / 4 * 3 + 3);
    if (buf == NULL)
        return -1;
    const char *end = NULL;
    if (sodium_base642bin(buf, n / 4 * 3 + 3, s, n, NULL, len, &end,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        end != s + n || *len == 0 || *len > cap) {
        ar_free(buf);
        return -1;
    }
    *out = buf;
    return 0;
}

static char *b64_encode(const void *p, size_t n)
{
    size_t cap = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
    char *s = ar_malloc(cap);
    if (s != NULL)
        sodium_bin2base64(s, cap, p, n, sodium_base64_VARIANT_ORIGINAL);
    return s;
}

/* ---- GET /api/v1/clinics/{clinic}/keeping ---- */

static int keeping_get_job(ar_store_conn_t *c, void *arg)
{
    ar__req_t *r = arg;
    ar_store_stmt_t *st;
    int rc = ar__query_ids(c, KEEPING_SQL, r->clinic_id, 0, &st);
    if (rc == AR_STORE_ROW) {
        int on = ar_store_col_int64(st, 0) != 0;
        const char *pk = ar_store_col_is_null(st, 1) ? NULL : ar_store_col_text(st, 1, NULL);
        r->out = json_pack("{s:b}", "enabled", on && pk != NULL);
        if (r->out != NULL && on && pk != NULL &&
            json_object_set_new(r->out, "public_key", json_string(pk)) != 0)
            json_decref(r->out), r->out = NULL;
        rc = r->out != NULL ? 0 : AR_ENOMEM;
    } else if (rc == AR_STORE_DONE) {
        rc = AR_ENOTFOUND;
    }
    ar_store_finalize(st);
    return rc;
}

void ar__h_keeping_get(ar__req_t *r)
{
    (void)ar__submit(r, keeping_get_job, out_done);
}

/* ---- PUT /api/v1/clinics/{clinic}/keeping ---- */

static int keeping_put_job(ar_store_conn_t *c, void *arg)
{
    ar__req_t *r = arg;
    int on = json_is_true(json_object_get(r->body, "enabled"));
    const char *pk = json_string_value(json_object_get(r->body, "public_key"));
    int rc = ar_store_begin(c);
    ar_store_stmt_t *st = NULL;
    if (rc == 0)
        rc = ar__prep(c,
                      "UPDATE clinics SET keeping_enabled = $1, "
                      "keeping_public_key = COALESCE($2, keeping_public_key) WHERE id = $3 "
                      "RETURNING keeping_public_key",
                      &st);
    if (rc == 0) {
        rc = ar_store_bind_int64(st, 1, on);
        rc = rc ? rc : pk ? ar_store_bind_text(st, 2, pk, strlen(pk)) : ar_store_bind_null(st, 2);
        rc = rc ? rc : ar_store_bind_int64(st, 3, r->clinic_id);
        rc = rc ? rc : ar_store_step(st);
        if (rc == AR_STORE_ROW) {
            /* Enabling without any key ever uploaded would leave clinicians nothing to use. */
            rc = on && ar_store_col_is_null(st, 0) ? AR_ESTATE : 0;
        } else if (rc == AR_STORE_DONE) {
            rc = AR_ENOTFOUND;
        }
        ar_store_finalize(st);
    }
    if (rc == 0)
        rc = ar_app_audit_append(c, r->now, r->s.account_id, r->clinic_id, AUDIT_KEEPING_SET);
    rc = ar__finish(c, rc < 0 ? rc : 0);
    if (rc < 0)
        return rc;
    return keeping_get_job(c, arg);
}

void ar__h_keeping_put(ar__req_t *r)
{
    if (ar__reauth_refused(r))
        return;
    const char *pk = json_string_value(json_object_get(r->body, "public_key"));
    uint8_t *der = NULL;
    size_t len;
    if (pk != NULL && b64_decode(pk, PUBKEY_B64_MAX, &der, &len) < 0) {
        ar__reply_error(r, 400, "bad_request", "public_key: base64 of a SubjectPublicKeyInfo");
        return;
    }
    ar_free(der);
    (void)ar__submit(r, keeping_put_job, out_done);
}

/* ---- uploads: POST .../keeping/uploads, .../uploads/{item}/chunks, .../uploads/{item}/finish,
 * DELETE .../uploads/{item} ---- */

/* What a handler decoded for its job: the wrapped key and IV (create) or one chunk (chunk). */
typedef struct {
    uint8_t *wrapped, *iv, *data;
    size_t wrapped_len, iv_len, data_len;
    int64_t index;
} upload_bytes_t;

static void upload_bytes_free(upload_bytes_t *ub)
{
    if (ub == NULL)
        return;
    ar_free(ub->wrapped);
    ar_free(ub->iv);
    ar_free(ub->data);
    ar_free(ub);
}

static void upload_done(int status, void *arg)
{
    ar__req_t *r = arg;
    upload_bytes_free(r->aux);
    r->aux = NULL;
    switch (status) {
    case AR_ENOTFOUND:
        ar__reply_error(r, 404, "not_found", "no such unfinished upload of yours in this clinic");
        return;
    case AR_ESTATE:
        ar__reply_error(r, 409, "keeping_disabled",
                        "encrypted keeping is off, or no public key was uploaded");
        return;
    case AR_EQUOTA:
        ar__reply_error(r, 429, "too_many_uploads",
                        "too many unfinished uploads; finish or abandon one first");
        return;
    case AR_ERANGE:
        ar__reply_error(r, 400, "bad_request",
                        "index beyond the declared chunks, or the chunks exceed the declared size");
        return;
    case AR_EPARSE: /* ours alone: the store's AR_EAGAIN (busy, deadlock) stays a 503 */
        ar__reply_error(r, 409, "upload_incomplete",
                        "a chunk is missing, or the chunks do not add up to the declared size");
        return;
    default:
        ar__reply_result(r, status);
    }
}

/* 0 when the clinic keeps (on, with a public key), AR_ESTATE when not, or a store error. */
static int keeping_on(ar_store_conn_t *c, int64_t clinic)
{
    ar_store_stmt_t *st;
    int rc = ar__query_ids(c, KEEPING_SQL, clinic, 0, &st);
    rc = rc == AR_STORE_ROW && ar_store_col_int64(st, 0) != 0 && !ar_store_col_is_null(st, 1) ? 0
         : rc < 0                                                                             ? rc
                  : AR_ESTATE;
    ar_store_finalize(st);
    return rc;
}

/*
 * Steps a query for the request's upload (the path's {item}) that is the caller's own, in the
 * path's clinic, and not expired; selects cols. AR_STORE_ROW with *st on it, AR_ENOTFOUND
 * (another account's, another clinic's, expired or finished all look the same), or an error.
 */
static int upload_find(ar_store_conn_t *c, ar__req_t *r, const char *cols, ar_store_stmt_t **st)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT %s FROM keeping_uploads WHERE id = $1 AND clinic_id = $2 AND "
             "account_id = $3 AND expires_at > $4",
             cols);
    const int64_t v[] = {r->params.item, r->clinic_id, r->s.account_id, r->now};
    int rc = ar__prep_ids(c, sql, v, 4, st);
    rc = rc == 0 ? ar_store_step(*st) : rc;
    return rc == AR_STORE_DONE ? AR_ENOTFOUND : rc;
}

int ar__keeping_delete_expired(ar_store_conn_t *c, int64_t now, int64_t *removed)
{
    ar_store_stmt_t *st;
    int rc = ar__prep(c, "DELETE FROM keeping_uploads WHERE expires_at <= $1", &st);
    if (rc < 0) {
        *removed = 0;
        return rc;
    }
    return ar__run_changes(st, ar_store_bind_int64(st, 1, now), removed);
}

static int upload_create_job(ar_store_conn_t *c, void *arg)
{
    ar__req_t *r = arg;
    upload_bytes_t *ub = r->aux;
    const char *kind = json_string_value(json_object_get(r->body, "kind"));
    int64_t size = json_integer_value(json_object_get(r->body, "size"));
    int64_t chunks = json_integer_value(json_object_get(r->body, "chunks"));
    int64_t expires = r->now + AR_APP_KEEPING_UPLOAD_TTL_S;
    int rc = ar_store_begin(c);
    rc = rc ? rc : keeping_on(c, r->clinic_id);
    /* Expired uploads of every clinic go here too, besides the periodic sweep (keep_sweep.c):
     * the caps below count every row, so one that expired since the last sweep must not hold a
     * slot, and with the sweep turned off this is what bounds their life. */
    int64_t swept = 0;
    rc = rc ? rc : ar__keeping_delete_expired(c, r->now, &swept);
    ar_store_stmt_t *st = NULL;
    if (rc == 0) {
        rc = ar__query_ids(c,
                           "SELECT count(*), COALESCE(sum(CASE WHEN account_id = $2 THEN 1 ELSE "
                           "0 END), 0) FROM keeping_uploads WHERE clinic_id = $1",
                           r->clinic_id, r->s.account_id, &st);
        if (rc == AR_STORE_ROW)
            rc = ar_store_col_int64(st, 0) >= AR_APP_KEEPING_UPLOADS_PER_CLINIC ||
                         ar_store_col_int64(st, 1) >= AR_APP_KEEPING_UPLOADS_PER_USER
                     ? AR_EQUOTA
                     : 0;
        else if (rc >= 0)
            rc = AR_EIO;
        ar_store_finalize(st);
    }
    if (rc == 0)
        rc = ar__prep(c,
                      "INSERT INTO keeping_uploads (clinic_id, account_id, created_at, "
                      "expires_at, kind, size, chunks, wrapped_key, iv) VALUES ($1, $2, $3, $4, "
                      "$5, $6, $7, $8, $9) RETURNING id",
                      &st);
    if (rc == 0) {
        rc = ar_store_bind_int64(st, 1, r->clinic_id);
        rc = rc ? rc : ar_store_bind_int64(st, 2, r->s.account_id);
        rc = rc ? rc : ar_store_bind_int64(st, 3, r->now);
        rc = rc ? rc : ar_store_bind_int64(st, 4, expires);
        rc = rc ? rc : ar_store_bind_text(st, 5, kind, strlen(kind));
        rc = rc ? rc : ar_store_bind_int64(st, 6, size);
        rc = rc ? rc : ar_store_bind_int64(st, 7, chunks);
        rc = rc ? rc : ar_store_bind_blob(st, 8, ub->wrapped, ub->wrapped_len);
        rc = rc ? rc : ar_store_bind_blob(st, 9, ub->iv, ub->iv_len);
        rc = rc ? rc : ar_store_step(st);
        if (rc == AR_STORE_ROW) {
            r->out =
                json_pack("{s:I,s:I,s:I,s:I,s:I}", "id", (json_int_t)ar_store_col_int64(st, 0),
                          "size", (json_int_t)size, "chunks", (json_int_t)chunks, "chunk_max",
                          (json_int_t)AR_APP_KEEPING_CHUNK_MAX, "expires_at", (json_int_t)expires);
            rc = r->out != NULL ? 0 : AR_ENOMEM;
        } else if (rc >= 0) {
            rc = AR_EIO;
        }
        ar_store_finalize(st);
    }
    rc = ar__finish(c, rc < 0 ? rc : 0);
    r->out_status = 201;
    return rc;
}

/* Hands ub to a job; on a refusal ar__submit has answered and freed r, and ub is still ours. */
static void upload_submit(ar__req_t *r, upload_bytes_t *ub, ar_store_job_cb job)
{
    r->aux = ub;
    if (ar__submit(r, job, upload_done) < 0)
        upload_bytes_free(ub);
}

void ar__h_keeping_upload_create(ar__req_t *r)
{
    const char *kind = json_string_value(json_object_get(r->body, "kind"));
    if (strcmp(kind, "transcript") != 0 && strcmp(kind, "file") != 0) {
        ar__reply_error(r, 400, "bad_request", "kind: transcript or file");
        return;
    }
    /* The declared chunks must be able to carry the declared size, one byte at least each. */
    int64_t size = json_integer_value(json_object_get(r->body, "size"));
    int64_t chunks = json_integer_value(json_object_get(r->body, "chunks"));
    if (chunks * (int64_t)AR_APP_KEEPING_CHUNK_MAX < size || chunks > size) {
        ar__reply_error(r, 400, "bad_request",
                        "chunks: at least size / chunk_max (rounded up), at most size");
        return;
    }
    upload_bytes_t *ub = ar_calloc(1, sizeof(*ub));
    if (ub == NULL) {
        ar__reply_error(r, 503, "unavailable", "the server is out of memory");
        return;
    }
    const char *msg = NULL;
    if (b64_decode(json_string_value(json_object_get(r->body, "wrapped_key")), WRAPPED_MAX,
                   &ub->wrapped, &ub->wrapped_len) < 0)
        msg = "wrapped_key: base64, at most 512 bytes";
    else if (b64_decode(json_string_value(json_object_get(r->body, "iv")), IV_BYTES, &ub->iv,
                        &ub->iv_len) < 0 ||
             ub->iv_len != IV_BYTES)
        msg = "iv: base64 of 12 bytes";
    if (msg != NULL) {
        upload_bytes_free(ub);
        ar__reply_error(r, 400, "bad_request", msg);
        return;
    }
    upload_submit(r, ub, upload_create_job);
}

static int upload_chunk_job(ar_store_conn_t *c, void *arg)
{
    ar__req_t *r = arg;
    upload_bytes_t *ub = r->aux;
    int rc = ar_store_begin(c);
    ar_store_stmt_t *st = NULL;
    int64_t size = 0;
    if (rc == 0) {
        rc = upload_find(c, r, "size, chunks", &st);
        if (rc == AR_STORE_ROW) {
            size = ar_store_col_int64(st, 0);
            rc = ub->index < ar_store_col_int64(st, 1) ? 0 : AR_ERANGE;
        }
        ar_store_finalize(st);
    }
    /* The other chunks and this one may not exceed the declared size (a chunk sent again
     * replaces its earlier bytes, so those do not count). */
    if (rc == 0) {
        rc = ar__query_ids(c,
                           "SELECT COALESCE(sum(length(data)), 0) FROM keeping_upload_chunks "
                           "WHERE upload_id = $1 AND idx <> $2",
                           r->params.item, ub->index, &st);
        if (rc == AR_STORE_ROW)
            rc = ar_store_col_int64(st, 0) + (int64_t)ub->data_len > size ? AR_ERANGE : 0;
        else if (rc >= 0)
            rc = AR_EIO;
        ar_store_finalize(st);
    }
    if (rc == 0)
        rc = ar__prep(c,
                      "INSERT INTO keeping_upload_chunks (upload_id, idx, data) VALUES ($1, $2, "
                      "$3) ON CONFLICT (upload_id, idx) DO UPDATE SET data = excluded.data",
                      &st);
    if (rc == 0) {
        rc = ar_store_bind_int64(st, 1, r->params.item);
        rc = rc ? rc : ar_store_bind_int64(st, 2, ub->index);
        rc = rc ? rc : ar_store_bind_blob(st, 3, ub->data, ub->data_len);
        rc = ar__run(st, rc);
    }
    return ar__finish(c, rc < 0 ? rc : 0);
}

void ar__h_keeping_upload_chunk(ar__req_t *r)
{
    upload_bytes_t *ub = ar_calloc(1, sizeof(*ub));
    if (ub == NULL) {
        ar__reply_error(r, 503, "unavailable", "the server is out of memory");
        return;
    }
    ub->index = json_integer_value(json_object_get(r->body, "index"));
    if (b64_decode(json_string_value(json_object_get(r->body, "data")), AR_APP_KEEPING_CHUNK_MAX,
                   &ub->data, &ub->data_len) < 0) {
        upload_bytes_free(ub);
        ar__reply_error(r, 400, "bad_request", "data: base64 of 1 byte to 36 KiB");
        return;
    }
    upload_submit(r, ub, upload_chunk_job);
}

/* The upload's chunks joined in index order into ct (size bytes): 0, or AR_EPARSE when one is
 * missing or they do not add up to size. */
static int upload_join(ar_store_conn_t *c, int64_t upload, int64_t chunks, uint8_t *ct, size_t size)
{
    ar_store_stmt_t *st;
    int rc = ar__prep(c,
                      "SELECT idx, data FROM keeping_upload_chunks WHERE upload_id = $1 ORDER BY "
                      "idx",
                      &st);
    if (rc < 0)
        return rc;
    rc = ar_store_bind_int64(st, 1, upload);
    int64_t next = 0;
    size_t off = 0;
    while (rc == 0 && (rc = ar_store_step(st)) == AR_STORE_ROW) {
        size_t n = 0;
        const void *p = ar_store_col_blob(st, 1, &n);
        if (ar_store_col_int64(st, 0) != next || p == NULL || n > size - off) {
            rc = AR_EPARSE;
            break;
        }
        memcpy(ct + off, p, n);
        off += n;
        next++;
        rc = 0;
    }
    ar_store_finalize(st);
    if (rc < 0)
        return rc;
    return next == chunks && off == size ? 0 : AR_EPARSE;
}

static int upload_finish_job(ar_store_conn_t *c, void *arg)
{
    ar__req_t *r = arg;
    upload_bytes_t *ub = r->aux;
    char kind[16] = "";
    int64_t size = 0, chunks = 0;
    int rc = ar_store_begin(c);
    rc = rc ? rc : keeping_on(c, r->clinic_id);
    ar_store_stmt_t *st = NULL;
    if (rc == 0) {
        rc = upload_find(c, r, "kind, size, chunks, wrapped_key, iv", &st);
        if (rc == AR_STORE_ROW) {
            snprintf(kind, sizeof(kind), "%s", ar_store_col_text(st, 0, NULL));
            size = ar_store_col_int64(st, 1);
            chunks = ar_store_col_int64(st, 2);
            const void *w = ar_store_col_blob(st, 3, &ub->wrapped_len);
            const void *v = ar_store_col_blob(st, 4, &ub->iv_len);
            ub->wrapped = ar_malloc(ub->wrapped_len + 1);
            ub->iv = ar_malloc(ub->iv_len + 1);
            ub->data = ar_malloc((size_t)size);
            rc = ub->wrapped && ub->iv && ub->data && w && v ? 0 : AR_ENOMEM;
            if (rc == 0) {
                memcpy(ub->wrapped, w, ub->wrapped_len);
                memcpy(ub->iv, v, ub->iv_len);
            }
        }
        ar_store_finalize(st);
    }
    rc = rc ? rc : upload_join(c, r->params.item, chunks, ub->data, (size_t)size);
    if (rc == 0)
        rc = ar__prep(c,
                      "INSERT INTO keeping_items (clinic_id, created_at, kind, wrapped_key, iv, "
                      "ciphertext) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                      &st);
    if (rc == 0) {
        rc = ar_store_bind_int64(st, 1, r->clinic_id);
        rc = rc ? rc : ar_store_bind_int64(st, 2, r->now);
        rc = rc ? rc : ar_store_bind_text(st, 3, kind, strlen(kind));
        rc = rc ? rc : ar_store_bind_blob(st, 4, ub->wrapped, ub->wrapped_len);
        rc = rc ? rc : ar_store_bind_blob(st, 5, ub->iv, ub->iv_len);
        rc = rc ? rc : ar_store_bind_blob(st, 6, ub->data, (size_t)size);
        rc = rc ? rc : ar_store_step(st);
        if (rc == AR_STORE_ROW) {
            r->out =
                json_pack("{s:I,s:s,s:I,s:I}", "id", (json_int_t)ar_store_col_int64(st, 0), "kind",
                          kind, "size", (json_int_t)size, "created_at", (json_int_t)r->now);
            rc = r->out != NULL ? 0 : AR_ENOMEM;
        } else if (rc >= 0) {
            rc = AR_EIO;
        }
        ar_store_finalize(st);
    }
    /* The upload and its chunks go in the same transaction that makes the item. */
    /* Exactly one row: two finishes at once (PostgreSQL, read committed) both found the upload,
     * and the second must roll its item back rather than store it twice. */
    if (rc == 0) {
        const int64_t id[] = {r->params.item};
        rc = ar__prep_ids(c, "DELETE FROM keeping_uploads WHERE id = $1", id, 1, &st);
        int64_t changed = 0;
        rc = ar__run_changes(st, rc, &changed);
        if (rc == 0 && changed != 1)
            rc = AR_ENOTFOUND;
    }
    if (rc == 0)
        rc = ar_app_audit_append(c, r->now, r->s.account_id, r->clinic_id, AUDIT_KEEPING_SAVED);
    rc = ar__finish(c, rc < 0 ? rc : 0);
    r->out_status = 201;
    return rc;
}

void ar__h_keeping_upload_finish(ar__req_t *r)
{
    upload_bytes_t *ub = ar_calloc(1, sizeof(*ub));
    if (ub == NULL) {
        ar__reply_error(r, 503, "unavailable", "the server is out of memory");
        return;
    }
    upload_submit(r, ub, upload_finish_job);
}

static int upload_delete_job(ar_store_conn_t *c, void *arg)
{
    ar__req_t *r = arg;
    ar_store_stmt_t *st;
    const int64_t v[] = {r->params.item, r->clinic_id, r->s.account_id};
    int rc = ar__prep_ids(c,
                          "DELETE FROM keeping_uploads WHERE id = $1 AND clinic_id = $2 AND "
                          "account_id = $3",
                          v, 3, &st);
    int64_t changed = 0;
    rc = ar__run_changes(st, rc, &changed);
    return rc < 0 ? rc : changed == 1 ? 0 : AR_ENOTFOUND;
}

void ar__h_keeping_upload_delete(ar__req_t *r)
{
    (void)ar__submit(r, upload_delete_job, upload_done);
}

/* ---- GET /api/v1/clinics/{clinic}/keeping/items ---- */

static int items_list_job(ar_store_conn_t *c, void *arg)
{
    ar__req_t *r = arg;
    ar_store_stmt_t *st;
    int rc = ar__prep(c,
                      "SELECT id, kind, length(ciphertext), created_at FROM keeping_items "
                      "WHERE clinic_id = $1 ORDER BY id DESC LIMIT 500",
                      &st);
    if (rc < 0)
        return rc;
    r->out = json_pack("{s:[]}", "items");
    json_t *list = json_object_get(r->out, "items");
    rc = r->out ? ar_store_bind_int64(st, 1, r->clinic_id) : AR_ENOMEM;
    while (rc == 0 && (rc = ar_store_step(st)) == AR_STORE_ROW) {
        json_t *o =
            json_pack("{s:I,s:s,s:I,s:I}", "id", (json_int_t)ar_store_col_int64(st, 0), "kind",
                      ar_store_col_text(st, 1, NULL), "size", (json_int_t)ar_store_col_int64(st, 2),
                      "created_at", (json_int_t)ar_store_col_int64(st, 3));
        rc = json_array_append_new(list, o) == 0 ? 0 : AR_ENOMEM;
    }
    ar_store_finalize(st);
    return rc < 0 ? rc : 0;
}

void ar__h_keeping_items_list(ar__req_t *r)
{
    (void)ar__submit(r, items_list_job, out_done);
}

/* ---- GET /api/v1/clinics/{clinic}/keeping/items/{item} ---- */

static json_t *blob_text(ar_store_stmt_t *st, int col)
{
    size_t n = 0;
    const void *p = ar_store_col_blob(st, col, &n);
    char *s = p != NULL ? b64_encode(p, n) : NULL;
    json_t *j = s != NULL ? json_string(s) : NULL;
    ar_free(s);
    return j;
}

static int item_get_job(ar_store_conn_t *c, void *arg)
{
    ar__req_t *r = arg;
    ar_store_stmt_t *st;
    int rc = ar__query_ids(c,
                           "SELECT id, kind, created_at, wrapped_key, iv, ciphertext FROM "
                           "keeping_items WHERE clinic_id = $1 AND id = $2",
                           r->clinic_id, r->params.item, &st);
    if (rc == AR_STORE_ROW) {
        size_t ct_len = 0;
        (void)ar_store_col_blob(st, 5, &ct_len);
        r->out = json_pack("{s:I,s:s,s:I,s:I,s:o?,s:o?,s:o?}", "id",
                           (json_int_t)ar_store_col_int64(st, 0), "kind",
                           ar_store_col_text(st, 1, NULL), "size", (json_int_t)ct_len, "created_at",
                           (json_int_t)ar_store_col_int64(st, 2), "wrapped_key", blob_text(st, 3),
                           "iv", blob_text(st, 4), "ciphertext", blob_text(st, 5));
        rc = r->out != NULL && json_object_size(r->out) == 7 ? 0 : AR_ENOMEM;
    } else if (rc == AR_STORE_DONE) {
        rc = AR_ENOTFOUND;
    }
    ar_store_finalize(st);
    if (rc == 0)
        rc = ar_app_audit_append_tx(c, r->now, r->s.account_id, r->clinic_id, AUDIT_KEEPING_READ);
    return rc;
}

void ar__h_keeping_item_get(ar__req_t *r)
{
    (void)ar__submit(r, item_get_job, out_done);
}
