/*
 * Encrypted keeping (S5, docs/keeping.md) through a real anteroom-app on loopback, on both
 * stores: an administrator turns it on with a public key (re-authenticated); staff keep items
 * the server cannot read and stores as the bytes sent; administrators list and fetch them; the
 * refusals (disabled, malformed fields, over the cap, another clinic, stale re-authentication)
 * answer as docs/api.md says. The browser's cryptography is the e2e test's (e2e_keeping): the
 * server checks only shapes, so random bytes stand in for keys and ciphertext here.
 */
#include "harness.h"
#include "accounts.h"
#include "routes.h"

#include "anteroom/store.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char pcookie[200], pcsrf[100], acookie[200], acsrf[100], own[24];

static json_t *req(const char *method, const char *path, const char *body, int admin, int *status)
{
    resp_t r;
    h_request(&(req_t){.method = method,
                       .path = path,
                       .cookie = admin ? acookie : pcookie,
                       .csrf = admin ? acsrf : pcsrf,
                       .origin = h_origin,
                       .body = body},
              &r);
    *status = r.status;
    json_t *j = r.body_len ? json_loads(r.body, 0, NULL) : NULL;
    h_resp_free(&r);
    return j;
}

static char *b64(const uint8_t *p, size_t n)
{
    size_t cap = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
    char *s = malloc(cap);
    CHECK(s != NULL);
    sodium_bin2base64(s, cap, p, n, sodium_base64_VARIANT_ORIGINAL);
    return s;
}

/* An item body of random bytes: wrapped key, IV and ciphertext of the given sizes. */
static char *item_body(const char *kind, size_t wrapped, size_t iv, size_t ct, uint8_t **ct_out)
{
    uint8_t *w = malloc(wrapped), *v = malloc(iv ? iv : 1), *c = malloc(ct);
    CHECK(w && v && c);
    randombytes_buf(w, wrapped);
    randombytes_buf(v, iv ? iv : 1);
    randombytes_buf(c, ct);
    char *ws = b64(w, wrapped), *vs = b64(v, iv), *cs = b64(c, ct);
    size_t cap = strlen(ws) + strlen(vs) + strlen(cs) + 200;
    char *body = malloc(cap);
    CHECK(body != NULL);
    snprintf(body, cap,
             "{\"kind\":\"%s\",\"wrapped_key\":\"%s\",\"iv\":\"%s\",\"ciphertext\":\"%s\"}", kind,
             ws, vs, cs);
    free(w), free(v), free(ws), free(vs), free(cs);
    if (ct_out)
        *ct_out = c;
    else
        free(c);
    return body;
}

static int64_t count(const char *sql)
{
    ar_store_conn_t *c;
    ar_store_stmt_t *st;
    CHECK(ar_store_open(h_store_opts(), &c) == 0);
    CHECK(ar_store_prepare(c, sql, strlen(sql), &st) == 0);
    CHECK(ar_store_step(st) == AR_STORE_ROW);
    int64_t n = ar_store_col_int64(st, 0);
    ar_store_finalize(st);
    ar_store_close(c);
    return n;
}

static void test_keeping(void)
{
    char path[160], ipath[160], one[200];
    int st;
    snprintf(path, sizeof(path), "/api/v1/clinics/%s/keeping", own);
    snprintf(ipath, sizeof(ipath), "/api/v1/clinics/%s/keeping/items", own);

    /* Off by default: no key for clinicians, and nothing is taken. */
    json_t *j = req("GET", path, NULL, 0, &st);
    CHECK(st == 200 && json_is_false(json_object_get(j, "enabled")) &&
          json_object_get(j, "public_key") == NULL);
    json_decref(j);
    char *body = item_body("transcript", 384, 12, 100, NULL);
    json_decref(req("POST", ipath, body, 0, &st));
    CHECK(st == 409);
    free(body);
    /* Enabling without a key ever uploaded, or with a key that is not base64: refused. */
    json_decref(req("PUT", path, "{\"enabled\":true}", 1, &st));
    CHECK(st == 409);
    json_decref(req("PUT", path,
                    "{\"enabled\":true,\"public_key\":\"" /* 64 chars, not b64 */
                    "!!!!AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
                    1, &st));
    CHECK(st == 400);
    /* A provider may not change it (the matrix covers every role; this is the plain case). */
    json_decref(req("PUT", path, "{\"enabled\":false}", 0, &st));
    CHECK(st == 403);

    uint8_t spki[422];
    randombytes_buf(spki, sizeof(spki));
    char *pk = b64(spki, sizeof(spki)), put[800];
    snprintf(put, sizeof(put), "{\"enabled\":true,\"public_key\":\"%s\"}", pk);
    j = req("PUT", path, put, 1, &st);
    CHECK(st == 200 && json_is_true(json_object_get(j, "enabled")));
    json_decref(j);
    j = req("GET", path, NULL, 0, &st);
    CHECK(st == 200 && json_is_true(json_object_get(j, "enabled")) &&
          strcmp(json_string_value(json_object_get(j, "public_key")), pk) == 0);
    json_decref(j);

    /* A transcript and a file of exactly the cap are kept; each comes back byte for byte. */
    uint8_t *ct1, *ct2;
    body = item_body("transcript", 384, 12, 1000, &ct1);
    j = req("POST", ipath, body, 0, &st);
    CHECK(st == 201 && json_integer_value(json_object_get(j, "size")) == 1000);
    long long id1 = (long long)json_integer_value(json_object_get(j, "id"));
    json_decref(j);
    free(body);
    body = item_body("file", 384, 12, AR_APP_KEEPING_ITEM_MAX, &ct2);
    j = req("POST", ipath, body, 0, &st);
    CHECK(st == 201 && json_integer_value(json_object_get(j, "size")) == AR_APP_KEEPING_ITEM_MAX);
    long long id2 = (long long)json_integer_value(json_object_get(j, "id"));
    json_decref(j);
    free(body);
    /* Refusals: a byte over the cap, a body over the route's cap, a short IV, an unknown kind,
     * text that is not base64, an unknown field. */
    body = item_body("file", 384, 12, AR_APP_KEEPING_ITEM_MAX + 1, NULL);
    json_decref(req("POST", ipath, body, 0, &st));
    CHECK(st == 400);
    free(body);
    /* Just over the route's cap (and under h2o's reading cap, which sits max_body above it). */
    body = item_body("file", 384, 12, AR_APP_KEEPING_BODY_MAX / 4 * 3, NULL);
    json_decref(req("POST", ipath, body, 0, &st));
    CHECK(st == 413);
    free(body);
    body = item_body("file", 384, 9, 100, NULL);
    json_decref(req("POST", ipath, body, 0, &st));
    CHECK(st == 400);
    free(body);
    body = item_body("notes", 384, 12, 100, NULL);
    json_decref(req("POST", ipath, body, 0, &st));
    CHECK(st == 400);
    free(body);
    json_decref(req("POST", ipath,
                    "{\"kind\":\"file\",\"wrapped_key\":\"a b c d\",\"iv\":\"AAAAAAAAAAAAAAAA\","
                    "\"ciphertext\":\"AAAAAAAAAAAAAAAAAAAAAAAA\"}",
                    0, &st));
    CHECK(st == 400);
    json_decref(req("POST", ipath,
                    "{\"kind\":\"file\",\"name\":\"x.pdf\",\"wrapped_key\":\"AAAA\","
                    "\"iv\":\"AAAAAAAAAAAAAAAA\",\"ciphertext\":\"AAAAAAAAAAAAAAAAAAAAAAAA\"}",
                    0, &st));
    CHECK(st == 400);
    CHECK(count("SELECT count(*) FROM keeping_items") == 2);

    /* The list and the items: administrators only. */
    json_decref(req("GET", ipath, NULL, 0, &st));
    CHECK(st == 403);
    j = req("GET", ipath, NULL, 1, &st);
    json_t *items = json_object_get(j, "items");
    CHECK(st == 200 && json_array_size(items) == 2 &&
          json_integer_value(json_object_get(json_array_get(items, 0), "id")) == id2 &&
          strcmp(json_string_value(json_object_get(json_array_get(items, 1), "kind")),
                 "transcript") == 0 &&
          json_integer_value(json_object_get(json_array_get(items, 1), "size")) == 1000 &&
          json_object_get(json_array_get(items, 0), "ciphertext") == NULL);
    json_decref(j);
    snprintf(one, sizeof(one), "%s/%lld", ipath, id2);
    json_decref(req("GET", one, NULL, 0, &st));
    CHECK(st == 403);
    j = req("GET", one, NULL, 1, &st);
    CHECK(st == 200);
    char *want = b64(ct2, AR_APP_KEEPING_ITEM_MAX);
    CHECK(strcmp(json_string_value(json_object_get(j, "ciphertext")), want) == 0 &&
          strcmp(json_string_value(json_object_get(j, "kind")), "file") == 0);
    json_decref(j);
    free(want);
    snprintf(one, sizeof(one), "%s/%lld", ipath, id1);
    j = req("GET", one, NULL, 1, &st);
    want = b64(ct1, 1000);
    CHECK(st == 200 && strcmp(json_string_value(json_object_get(j, "ciphertext")), want) == 0);
    json_decref(j);
    free(want);
    /* Stored as bytes, not as the base64 text. */
    CHECK(count("SELECT length(ciphertext) FROM keeping_items WHERE kind = 'transcript'") == 1000);
    snprintf(one, sizeof(one), "%s/%lld", ipath, id2 + 1000);
    json_decref(req("GET", one, NULL, 1, &st));
    CHECK(st == 404);
    /* Another clinic's path: the administrator has no role there. */
    snprintf(one, sizeof(one), "/api/v1/clinics/%lld/keeping/items/%lld", (long long)h_clinic_other,
             id1);
    json_decref(req("GET", one, NULL, 1, &st));
    CHECK(st == 403);
    CHECK(count("SELECT count(*) FROM audit_log WHERE event = 'keeping_item_saved'") == 2);
    CHECK(count("SELECT count(*) FROM audit_log WHERE event = 'keeping_item_read'") == 2);

    /* Turned off: clinicians get no key and nothing more is kept; the items stay readable. */
    j = req("PUT", path, "{\"enabled\":false}", 1, &st);
    CHECK(st == 200 && json_is_false(json_object_get(j, "enabled")));
    json_decref(j);
    j = req("GET", path, NULL, 0, &st);
    CHECK(st == 200 && json_object_get(j, "public_key") == NULL);
    json_decref(j);
    body = item_body("transcript", 384, 12, 100, NULL);
    json_decref(req("POST", ipath, body, 0, &st));
    CHECK(st == 409);
    free(body);
    /* On again keeps the uploaded key. */
    j = req("PUT", path, "{\"enabled\":true}", 1, &st);
    CHECK(st == 200 && json_is_true(json_object_get(j, "enabled")) &&
          strcmp(json_string_value(json_object_get(j, "public_key")), pk) == 0);
    json_decref(j);
    /* A session that signed in more than five minutes ago must prove the password again. */
    h_clock_set(h_clock() + AR_REAUTH_S + 1);
    json_decref(req("PUT", path, "{\"enabled\":false}", 1, &st));
    CHECK(st == 403);
    free(pk);
    free(ct1);
    free(ct2);
    printf("ok keeping: enable with a key, items kept as bytes, admins read, refusals\n");
}

static void cases(void)
{
    snprintf(own, sizeof(own), "%lld", (long long)h_clinic_own);
    CHECK(h_signin("provider@example.org", h_password, pcookie, sizeof(pcookie), pcsrf,
                   sizeof(pcsrf)) == 201);
    CHECK(h_signin("clinic_admin@example.org", h_password, acookie, sizeof(acookie), acsrf,
                   sizeof(acsrf)) == 201);
    test_keeping();
}

int main(int argc, char **argv)
{
    h_run(argc, argv, cases, NULL);
    printf("all keeping tests passed (%s)\n", argv[1]);
    return 0;
}
