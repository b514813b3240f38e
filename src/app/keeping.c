/*
 * Optional encrypted keeping (S5, docs/keeping.md): routes under /api/v1/clinics/{clinic}/keeping.
 *
 * The server never sees a plaintext or a private key. An administrator's browser makes an
 * RSA-OAEP key pair and uploads the public half (SPKI, base64) with the enable flag; clinicians'
 * browsers fetch it, encrypt an item with a fresh AES-GCM-256 key, wrap that key to the public
 * key and upload {kind, wrapped_key, iv, ciphertext}. Administrators list items and fetch one
 * to decrypt in their browser. The three byte fields are decoded here and stored as bytes, so a
 * malformed upload is refused (400) rather than kept undecryptable.
 */
#include "internal.h"

#include "audit.h"

#include "anteroom/alloc.h"

#include <sodium.h>
#include <string.h>

#define AUDIT_KEEPING_SET "keeping_settings_changed"
#define AUDIT_KEEPING_SAVED "keeping_item_saved"
#define AUDIT_KEEPING_READ "keeping_item_read"

/* An RSA-3072 SPKI is 422 bytes (564 in base64); 1024 leaves room for 4096-bit keys. */
#define PUBKEY_B64_MAX 1024
/* A wrapped key is the RSA modulus size: 384 bytes for 3072 bits, 512 for 4096. */
#define WRAPPED_MAX 512
#define IV_BYTES 12

/* base64 (original alphabet, padded) of n bytes */
#define B64_LEN(n) ((((int64_t)(n) + 2) / 3) * 4)

const ar_app_field_t ar__f_keeping_put[] = {
    {"enabled", AR_FIELD_BOOL, 1, 0, 0, AR_CS_ANY},
    {"public_key", AR_FIELD_STR, 0, 64, PUBKEY_B64_MAX, AR_CS_ANY},
};
AR__CHECK_N(keeping_put);

const ar_app_field_t ar__f_keeping_item[] = {
    {"kind", AR_FIELD_STR, 1, 1, 16, AR_CS_SLUG},
    {"wrapped_key", AR_FIELD_STR, 1, 4, B64_LEN(WRAPPED_MAX), AR_CS_ANY},
    {"iv", AR_FIELD_STR, 1, B64_LEN(IV_BYTES), B64_LEN(IV_BYTES), AR_CS_ANY},
    {"ciphertext", AR_FIELD_STR, 1, 4, B64_LEN(AR_APP_KEEPING_ITEM_MAX), AR_CS_ANY},
};
AR__CHECK_N(keeping_item);

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

/* ---- POST /api/v1/clinics/{clinic}/keeping/items ---- */

typedef struct {
    uint8_t *wrapped, *iv, *ct;
    size_t wrapped_len, iv_len, ct_len;
} item_bytes_t;

static int item_create_job(ar_store_conn_t *c, void *arg)
{
    ar__req_t *r = arg;
    item_bytes_t *ib = r->aux;
    int rc = ar_store_begin(c);
    ar_store_stmt_t *st = NULL;
    if (rc == 0) {
        rc = ar__query_ids(c, KEEPING_SQL, r->clinic_id, 0, &st);
        rc = rc == AR_STORE_ROW && ar_store_col_int64(st, 0) != 0 && !ar_store_col_is_null(st, 1)
                 ? 0
             : rc < 0 ? rc
                      : AR_ESTATE;
        ar_store_finalize(st);
    }
    const char *kind = json_string_value(json_object_get(r->body, "kind"));
    if (rc == 0)
        rc = ar__prep(c,
                      "INSERT INTO keeping_items (clinic_id, created_at, kind, wrapped_key, iv, "
                      "ciphertext) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                      &st);
    if (rc == 0) {
        rc = ar_store_bind_int64(st, 1, r->clinic_id);
        rc = rc ? rc : ar_store_bind_int64(st, 2, r->now);
        rc = rc ? rc : ar_store_bind_text(st, 3, kind, strlen(kind));
        rc = rc ? rc : ar_store_bind_blob(st, 4, ib->wrapped, ib->wrapped_len);
        rc = rc ? rc : ar_store_bind_blob(st, 5, ib->iv, ib->iv_len);
        rc = rc ? rc : ar_store_bind_blob(st, 6, ib->ct, ib->ct_len);
        rc = rc ? rc : ar_store_step(st);
        if (rc == AR_STORE_ROW) {
            r->out =
                json_pack("{s:I,s:s,s:I,s:I}", "id", (json_int_t)ar_store_col_int64(st, 0), "kind",
                          kind, "size", (json_int_t)ib->ct_len, "created_at", (json_int_t)r->now);
            rc = r->out != NULL ? 0 : AR_ENOMEM;
        } else if (rc >= 0) {
            rc = AR_EIO;
        }
        ar_store_finalize(st);
    }
    if (rc == 0)
        rc = ar_app_audit_append(c, r->now, r->s.account_id, r->clinic_id, AUDIT_KEEPING_SAVED);
    rc = ar__finish(c, rc < 0 ? rc : 0);
    r->out_status = 201;
    return rc;
}

static void item_bytes_free(item_bytes_t *ib)
{
    if (ib == NULL)
        return;
    ar_free(ib->wrapped);
    ar_free(ib->iv);
    ar_free(ib->ct);
    ar_free(ib);
}

static void item_create_done(int status, void *arg)
{
    ar__req_t *r = arg;
    item_bytes_free(r->aux);
    r->aux = NULL;
    out_done(status, arg);
}

void ar__h_keeping_item_create(ar__req_t *r)
{
    const char *kind = json_string_value(json_object_get(r->body, "kind"));
    if (strcmp(kind, "transcript") != 0 && strcmp(kind, "file") != 0) {
        ar__reply_error(r, 400, "bad_request", "kind: transcript or file");
        return;
    }
    item_bytes_t *ib = ar_calloc(1, sizeof(*ib));
    if (ib == NULL) {
        ar__reply_error(r, 503, "unavailable", "the server is out of memory");
        return;
    }
    const char *msg = NULL;
    if (b64_decode(json_string_value(json_object_get(r->body, "wrapped_key")), WRAPPED_MAX,
                   &ib->wrapped, &ib->wrapped_len) < 0)
        msg = "wrapped_key: base64, at most 512 bytes";
    else if (b64_decode(json_string_value(json_object_get(r->body, "iv")), IV_BYTES, &ib->iv,
                        &ib->iv_len) < 0 ||
             ib->iv_len != IV_BYTES)
        msg = "iv: base64 of 12 bytes";
    else if (b64_decode(json_string_value(json_object_get(r->body, "ciphertext")),
                        AR_APP_KEEPING_ITEM_MAX, &ib->ct, &ib->ct_len) < 0 ||
             ib->ct_len < 16)
        msg = "ciphertext: base64 of 16 bytes to the item cap";
    if (msg != NULL) {
        item_bytes_free(ib);
        ar__reply_error(r, 400, "bad_request", msg);
        return;
    }
    r->aux = ib;
    /* On a refusal ar__submit has answered and freed r; the bytes are still ours. */
    if (ar__submit(r, item_create_job, item_create_done) < 0)
        item_bytes_free(ib);
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
