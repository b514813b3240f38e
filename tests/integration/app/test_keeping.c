/*
 * Encrypted keeping (S5, docs/keeping.md) through a real anteroom-app on loopback, on both
 * stores: an administrator turns it on with a public key (re-authenticated); staff keep items
 * the server cannot read, uploaded in chunks and stored as the bytes sent; administrators list
 * and fetch them; the refusals (disabled, malformed fields, a missing or oversize chunk,
 * another account's upload, expiry, caps, another clinic, stale re-authentication) answer as
 * docs/api.md says; and a 65 KiB body is refused on every route. The browser's cryptography is the
 * e2e test's (e2e_keeping): the server checks only shapes, so random bytes stand in for keys and
 * ciphertext here.
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

/* Sessions: a provider (P), a clinic administrator (A) and a receptionist (R) of the own clinic. */
enum { P = 0, A = 1, R = 2 };
static char cookies[3][200], csrfs[3][100], own[24];
static const char *const emails[3] = {"provider@example.org", "clinic_admin@example.org",
                                      "receptionist@example.org"};

static void signin_all(void)
{
    for (int i = 0; i < 3; i++)
        CHECK(h_signin(emails[i], h_password, cookies[i], sizeof(cookies[i]), csrfs[i],
                       sizeof(csrfs[i])) == 201);
}

static json_t *req(const char *method, const char *path, const char *body, int who, int *status)
{
    resp_t r;
    h_request(&(req_t){.method = method,
                       .path = path,
                       .cookie = cookies[who],
                       .csrf = csrfs[who],
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

static uint8_t *random_bytes(size_t n)
{
    uint8_t *p = malloc(n ? n : 1);
    CHECK(p != NULL);
    randombytes_buf(p, n);
    return p;
}

/* Starts an upload with a random wrapped key and IV of the given sizes; the status, and the
 * upload's id in *id when it was created. */
static int upload_start(int who, const char *kind, size_t wrapped, size_t iv, int64_t size,
                        int64_t chunks, long long *id)
{
    uint8_t *w = random_bytes(wrapped), *v = random_bytes(iv);
    char *ws = b64(w, wrapped), *vs = b64(v, iv), body[1200], path[160];
    snprintf(body, sizeof(body),
             "{\"kind\":\"%s\",\"wrapped_key\":\"%s\",\"iv\":\"%s\",\"size\":%lld,\"chunks\":%lld}",
             kind, ws, vs, (long long)size, (long long)chunks);
    snprintf(path, sizeof(path), "/api/v1/clinics/%s/keeping/uploads", own);
    int st;
    json_t *j = req("POST", path, body, who, &st);
    if (st == 201) {
        CHECK(json_integer_value(json_object_get(j, "chunk_max")) ==
                  (json_int_t)AR_APP_KEEPING_CHUNK_MAX &&
              json_integer_value(json_object_get(j, "size")) == size &&
              json_integer_value(json_object_get(j, "chunks")) == chunks);
        *id = (long long)json_integer_value(json_object_get(j, "id"));
    }
    json_decref(j);
    free(w), free(v), free(ws), free(vs);
    return st;
}

/* Sends n bytes as chunk index of an upload; the status. */
static int upload_chunk(int who, long long id, int index, const uint8_t *p, size_t n)
{
    char *d = b64(p, n), path[160];
    size_t cap = strlen(d) + 64;
    char *body = malloc(cap);
    CHECK(body != NULL);
    snprintf(body, cap, "{\"index\":%d,\"data\":\"%s\"}", index, d);
    snprintf(path, sizeof(path), "/api/v1/clinics/%s/keeping/uploads/%lld/chunks", own, id);
    int st;
    json_decref(req("POST", path, body, who, &st));
    free(body), free(d);
    return st;
}

/* Finishes an upload: the status, and the item's id in *item when it was kept. */
static int upload_finish(int who, long long id, long long *item)
{
    char path[160];
    snprintf(path, sizeof(path), "/api/v1/clinics/%s/keeping/uploads/%lld/finish", own, id);
    int st;
    json_t *j = req("POST", path, NULL, who, &st);
    if (st == 201 && item != NULL)
        *item = (long long)json_integer_value(json_object_get(j, "id"));
    json_decref(j);
    return st;
}

static int upload_abandon(int who, long long id)
{
    char path[160];
    snprintf(path, sizeof(path), "/api/v1/clinics/%s/keeping/uploads/%lld", own, id);
    int st;
    json_decref(req("DELETE", path, NULL, who, &st));
    return st;
}

/* Keeps n bytes as an item the way the browser does: chunks of chunk_max, in reverse order
 * when reverse is set (the server joins them by index). Returns the item's id. */
static long long keep(int who, const char *kind, const uint8_t *ct, size_t n, int reverse)
{
    int chunks = (int)((n + AR_APP_KEEPING_CHUNK_MAX - 1) / AR_APP_KEEPING_CHUNK_MAX);
    long long id, item = 0;
    CHECK(upload_start(who, kind, 384, 12, (int64_t)n, chunks, &id) == 201);
    for (int k = 0; k < chunks; k++) {
        int i = reverse ? chunks - 1 - k : k;
        size_t off = (size_t)i * AR_APP_KEEPING_CHUNK_MAX;
        size_t len = n - off < AR_APP_KEEPING_CHUNK_MAX ? n - off : AR_APP_KEEPING_CHUNK_MAX;
        CHECK(upload_chunk(who, id, i, ct + off, len) == 204);
    }
    CHECK(upload_finish(who, id, &item) == 201);
    return item;
}

static void exec_sql(const char *sql)
{
    ar_store_conn_t *c;
    ar_store_stmt_t *st;
    CHECK(ar_store_open(h_store_opts(), &c) == 0);
    CHECK(ar_store_prepare(c, sql, strlen(sql), &st) == 0);
    CHECK(ar_store_step(st) == AR_STORE_DONE);
    ar_store_finalize(st);
    ar_store_close(c);
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

static char path[160], ipath[160], *pk;
static int saved; /* items kept so far: the audit must name each */

/* Off by default; turning it on (an administrator, re-authenticated, with a key). */
static void test_settings(void)
{
    int st;
    long long id;
    json_t *j = req("GET", path, NULL, P, &st);
    CHECK(st == 200 && json_is_false(json_object_get(j, "enabled")) &&
          json_object_get(j, "public_key") == NULL);
    json_decref(j);
    CHECK(upload_start(P, "transcript", 384, 12, 100, 1, &id) == 409);
    /* Enabling without a key ever uploaded, or with a key that is not base64: refused. */
    json_decref(req("PUT", path, "{\"enabled\":true}", A, &st));
    CHECK(st == 409);
    json_decref(req("PUT", path,
                    "{\"enabled\":true,\"public_key\":\"" /* 64 chars, not b64 */
                    "!!!!AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}",
                    A, &st));
    CHECK(st == 400);
    /* A provider may not change it (the matrix covers every role; this is the plain case). */
    json_decref(req("PUT", path, "{\"enabled\":false}", P, &st));
    CHECK(st == 403);
    uint8_t spki[422];
    randombytes_buf(spki, sizeof(spki));
    pk = b64(spki, sizeof(spki));
    char put[800];
    snprintf(put, sizeof(put), "{\"enabled\":true,\"public_key\":\"%s\"}", pk);
    j = req("PUT", path, put, A, &st);
    CHECK(st == 200 && json_is_true(json_object_get(j, "enabled")));
    json_decref(j);
    j = req("GET", path, NULL, P, &st);
    CHECK(st == 200 && json_is_true(json_object_get(j, "enabled")) &&
          strcmp(json_string_value(json_object_get(j, "public_key")), pk) == 0);
    json_decref(j);
    printf("ok keeping settings: off by default, on with a key, refusals\n");
}

/* A transcript in one chunk and a file of exactly the cap in 29 chunks sent last first: each
 * comes back byte for byte, stored as bytes; administrators alone list and read. */
static void test_items(void)
{
    int st;
    char one[200];
    uint8_t *ct1 = random_bytes(1000), *ct2 = random_bytes(AR_APP_KEEPING_ITEM_MAX);
    long long id1 = keep(P, "transcript", ct1, 1000, 0);
    long long id2 = keep(R, "file", ct2, AR_APP_KEEPING_ITEM_MAX, 1);
    saved += 2;
    CHECK(count("SELECT count(*) FROM keeping_items") == 2);
    CHECK(count("SELECT count(*) FROM keeping_uploads") == 0 &&
          count("SELECT count(*) FROM keeping_upload_chunks") == 0);

    json_decref(req("GET", ipath, NULL, P, &st));
    CHECK(st == 403);
    json_t *j = req("GET", ipath, NULL, A, &st);
    json_t *items = json_object_get(j, "items");
    CHECK(st == 200 && json_array_size(items) == 2 &&
          json_integer_value(json_object_get(json_array_get(items, 0), "id")) == id2 &&
          json_integer_value(json_object_get(json_array_get(items, 0), "size")) ==
              (json_int_t)AR_APP_KEEPING_ITEM_MAX &&
          strcmp(json_string_value(json_object_get(json_array_get(items, 1), "kind")),
                 "transcript") == 0 &&
          json_integer_value(json_object_get(json_array_get(items, 1), "size")) == 1000 &&
          json_object_get(json_array_get(items, 0), "ciphertext") == NULL);
    json_decref(j);
    snprintf(one, sizeof(one), "%s/%lld", ipath, id2);
    json_decref(req("GET", one, NULL, P, &st));
    CHECK(st == 403);
    j = req("GET", one, NULL, A, &st);
    CHECK(st == 200);
    char *want = b64(ct2, AR_APP_KEEPING_ITEM_MAX);
    CHECK(strcmp(json_string_value(json_object_get(j, "ciphertext")), want) == 0 &&
          strcmp(json_string_value(json_object_get(j, "kind")), "file") == 0 &&
          strlen(json_string_value(json_object_get(j, "iv"))) == 16);
    json_decref(j);
    free(want);
    snprintf(one, sizeof(one), "%s/%lld", ipath, id1);
    j = req("GET", one, NULL, A, &st);
    want = b64(ct1, 1000);
    CHECK(st == 200 && strcmp(json_string_value(json_object_get(j, "ciphertext")), want) == 0);
    json_decref(j);
    free(want);
    /* Stored as bytes, not as the base64 text. */
    CHECK(count("SELECT length(ciphertext) FROM keeping_items WHERE kind = 'transcript'") == 1000);
    snprintf(one, sizeof(one), "%s/%lld", ipath, id2 + 1000);
    json_decref(req("GET", one, NULL, A, &st));
    CHECK(st == 404);
    /* Another clinic's path: the administrator has no role there. */
    snprintf(one, sizeof(one), "/api/v1/clinics/%lld/keeping/items/%lld", (long long)h_clinic_other,
             id1);
    json_decref(req("GET", one, NULL, A, &st));
    CHECK(st == 403);
    CHECK(count("SELECT count(*) FROM audit_log WHERE event = 'keeping_item_read'") == 2);
    free(ct1);
    free(ct2);
    printf("ok keeping items: chunks joined by index, byte for byte, admins read\n");
}

/* Starting, filling and finishing refused as docs/api.md says. */
static void test_upload_refusals(void)
{
    int st;
    long long id, id2, item;
    const int64_t cmax = (int64_t)AR_APP_KEEPING_CHUNK_MAX;
    /* Start: over the item cap, too few chunks for the size, more chunks than bytes or than
     * the cap, a short IV, an unknown kind, a ciphertext shorter than a tag. */
    CHECK(upload_start(P, "file", 384, 12, (int64_t)AR_APP_KEEPING_ITEM_MAX + 1, 64, &id) == 400);
    CHECK(upload_start(P, "file", 384, 12, 2 * cmax + 1, 2, &id) == 400);
    CHECK(upload_start(P, "file", 384, 12, 20, 21, &id) == 400);
    CHECK(upload_start(P, "file", 384, 12, 100000, AR_APP_KEEPING_CHUNKS_MAX + 1, &id) == 400);
    CHECK(upload_start(P, "file", 384, 9, 100, 1, &id) == 400);
    CHECK(upload_start(P, "notes", 384, 12, 100, 1, &id) == 400);
    CHECK(upload_start(P, "file", 384, 12, 15, 1, &id) == 400);
    char bad[300];
    snprintf(bad, sizeof(bad), "/api/v1/clinics/%s/keeping/uploads", own);
    json_decref(req("POST", bad,
                    "{\"kind\":\"file\",\"wrapped_key\":\"a b c d\",\"iv\":\"AAAAAAAAAAAAAAAA\","
                    "\"size\":100,\"chunks\":1}",
                    P, &st));
    CHECK(st == 400);
    json_decref(req("POST", bad,
                    "{\"kind\":\"file\",\"name\":\"x.pdf\",\"wrapped_key\":\"AAAA\","
                    "\"iv\":\"AAAAAAAAAAAAAAAA\",\"size\":100,\"chunks\":1}",
                    P, &st));
    CHECK(st == 400);
    CHECK(count("SELECT count(*) FROM keeping_uploads") == 0);

    /* A missing chunk: finishing is refused and the upload stays; the chunk sent, it finishes;
     * a second finish finds nothing. Chunk 0 sent twice (a retry) keeps one copy. */
    uint8_t *ct = random_bytes((size_t)(2 * cmax + 100));
    CHECK(upload_start(P, "file", 384, 12, 2 * cmax + 100, 3, &id) == 201);
    CHECK(upload_chunk(P, id, 0, ct, (size_t)cmax) == 204);
    CHECK(upload_chunk(P, id, 0, ct, (size_t)cmax) == 204);
    CHECK(upload_chunk(P, id, 2, ct + 2 * cmax, 100) == 204);
    CHECK(upload_finish(P, id, NULL) == 409);
    /* Chunks do not exceed their declared total; an index beyond the declared count. */
    CHECK(upload_chunk(P, id, 1, ct + cmax, (size_t)cmax) == 204);
    CHECK(upload_chunk(P, id, 2, ct, 101) == 400);
    CHECK(upload_chunk(P, id, 3, ct, 10) == 400);
    /* Another account of the same clinic cannot fill, finish or abandon it. */
    CHECK(upload_chunk(R, id, 1, ct, 10) == 404);
    CHECK(upload_finish(R, id, NULL) == 404);
    CHECK(upload_abandon(A, id) == 404);
    /* Nor can anyone through another clinic's path (no role there). */
    char other[200];
    snprintf(other, sizeof(other), "/api/v1/clinics/%lld/keeping/uploads/%lld/finish",
             (long long)h_clinic_other, id);
    json_decref(req("POST", other, NULL, P, &st));
    CHECK(st == 403);
    CHECK(count("SELECT count(*) FROM keeping_upload_chunks") == 3);
    CHECK(upload_finish(P, id, &item) == 201);
    CHECK(upload_finish(P, id, NULL) == 404);
    CHECK(upload_chunk(P, id, 0, ct, 10) == 404);
    saved++;
    char one[200];
    snprintf(one, sizeof(one), "%s/%lld", ipath, item);
    json_t *j = req("GET", one, NULL, A, &st);
    char *want = b64(ct, (size_t)(2 * cmax + 100));
    CHECK(st == 200 && strcmp(json_string_value(json_object_get(j, "ciphertext")), want) == 0);
    json_decref(j);
    free(want);

    /* Chunks too large: decoded over the chunk cap (400), and a body over the route's cap
     * (413 from the app: under the listener's 64 KiB). Not base64: 400. */
    CHECK(upload_start(P, "file", 384, 12, 2 * cmax, 2, &id2) == 201);
    CHECK(upload_chunk(P, id2, 0, ct, (size_t)cmax + 1) == 400);
    size_t big = AR_APP_KEEPING_CHUNK_BODY_MAX + 100;
    char *body = malloc(big + 1);
    CHECK(body != NULL);
    memset(body, 'A', big);
    memcpy(body, "{\"index\":0,\"data\":\"", 19);
    memcpy(body + big - 2, "\"}", 2);
    body[big] = '\0';
    snprintf(one, sizeof(one), "/api/v1/clinics/%s/keeping/uploads/%lld/chunks", own, id2);
    resp_t r;
    h_request(&(req_t){.method = "POST",
                       .path = one,
                       .cookie = cookies[P],
                       .csrf = csrfs[P],
                       .origin = h_origin,
                       .body = body},
              &r);
    CHECK(r.status == 413 && strstr(r.body, "too_large") != NULL);
    h_resp_free(&r);
    free(body);
    json_decref(req("POST", one, "{\"index\":0,\"data\":\"!!!!\"}", P, &st));
    CHECK(st == 400);
    /* Abandoned: gone, with its chunks. */
    CHECK(upload_chunk(P, id2, 0, ct, 10) == 204);
    CHECK(upload_abandon(P, id2) == 204);
    CHECK(upload_abandon(P, id2) == 404);
    CHECK(count("SELECT count(*) FROM keeping_upload_chunks") == 0);
    free(ct);
    CHECK(count("SELECT count(*) FROM audit_log WHERE event = 'keeping_item_saved'") == saved);
    printf("ok keeping uploads: missing chunk, retries, oversize, foreign uploads, finish twice\n");
}

/* Caps on open uploads (per account, per clinic), then expiry: an unfinished upload stops
 * answering at its time and is deleted when the next upload starts. */
static void test_caps_expiry(void)
{
    long long ids[AR_APP_KEEPING_UPLOADS_PER_USER], id;
    uint8_t ct[100];
    randombytes_buf(ct, sizeof(ct));
    for (int i = 0; i < AR_APP_KEEPING_UPLOADS_PER_USER; i++)
        CHECK(upload_start(P, "file", 384, 12, 100, 1, &ids[i]) == 201);
    CHECK(upload_chunk(P, ids[0], 0, ct, sizeof(ct)) == 204);
    CHECK(upload_start(P, "file", 384, 12, 100, 1, &id) == 429);
    /* The clinic's other open uploads (copies of one, as the reporter's) up to its cap. */
    char sql[600];
    snprintf(sql, sizeof(sql),
             "INSERT INTO keeping_uploads (clinic_id, account_id, created_at, expires_at, kind, "
             "size, chunks, wrapped_key, iv) SELECT clinic_id, (SELECT id FROM accounts WHERE "
             "email = 'reporter@example.org'), created_at, expires_at, kind, size, chunks, "
             "wrapped_key, iv FROM keeping_uploads WHERE id = %lld",
             ids[1]);
    while (count("SELECT count(*) FROM keeping_uploads") < AR_APP_KEEPING_UPLOADS_PER_CLINIC)
        exec_sql(sql);
    CHECK(upload_start(A, "file", 384, 12, 100, 1, &id) == 429);
    CHECK(upload_abandon(P, ids[3]) == 204);
    CHECK(upload_start(A, "file", 384, 12, 100, 1, &id) == 201);

    h_clock_set(h_clock() + AR_APP_KEEPING_UPLOAD_TTL_S);
    signin_all(); /* the sessions' idle timeout is shorter than an upload's life */
    CHECK(upload_chunk(P, ids[0], 0, ct, sizeof(ct)) == 404);
    CHECK(upload_finish(P, ids[0], NULL) == 404);
    CHECK(count("SELECT count(*) FROM keeping_uploads") == AR_APP_KEEPING_UPLOADS_PER_CLINIC);
    CHECK(upload_start(P, "transcript", 384, 12, 100, 1, &id) == 201);
    CHECK(count("SELECT count(*) FROM keeping_uploads") == 1 &&
          count("SELECT count(*) FROM keeping_upload_chunks") == 0);
    CHECK(upload_chunk(P, id, 0, ct, sizeof(ct)) == 204);
    CHECK(upload_finish(P, id, NULL) == 201);
    saved++;
    printf("ok keeping uploads: caps per account and clinic, expiry deletes\n");
}

/* h2o buffers a body before any route or session check: every route, and a static path,
 * refuses 65 KiB with 413 from h2o's reading cap before the app sees it (HTTP/1.1; over HTTP/2 h2o
 * resets the stream instead). */
static void test_body_cap(void)
{
    size_t n, len = 65 * 1024;
    const ar_app_route_t *routes = ar_app_routes(&n);
    char *body = malloc(len + 1);
    CHECK(body != NULL);
    memset(body, ' ', len);
    body[0] = '{';
    body[len - 1] = '}';
    body[len] = '\0';
    for (size_t i = 0; i <= n; i++) {
        char p[200];
        size_t k = 0;
        const char *pat = i < n ? routes[i].pattern : "/index.html";
        while (*pat != '\0' && k + 24 < sizeof(p)) {
            if (*pat == '{') {
                int clinic = strncmp(pat, "{clinic}", 8) == 0;
                k += (size_t)snprintf(p + k, sizeof(p) - k, "%s", clinic ? own : "999999");
                pat = strchr(pat, '}') + 1;
            } else {
                p[k++] = *pat++;
            }
        }
        p[k] = '\0';
        resp_t r;
        h_request(&(req_t){.method = i < n ? routes[i].method : "POST",
                           .path = p,
                           .http1 = 1,
                           .cookie = cookies[A],
                           .csrf = csrfs[A],
                           .origin = h_origin,
                           .body = body,
                           /* h2o answers from the head and closes: without waiting for a
                            * 100 curl could still be sending and see a reset instead. */
                           .extra = "Expect: 100-continue"},
                  &r);
        /* h2o's own answer, not the app's JSON one: the body was refused before it was read. */
        if (r.status != 413 || strstr(r.body, "too_large") != NULL) {
            fprintf(stderr, "%s %s with 65 KiB: %d\n", i < n ? routes[i].method : "POST", p,
                    r.status);
            exit(1);
        }
        h_resp_free(&r);
    }
    free(body);
    printf("ok a 65 KiB body is refused with 413 on all %zu routes\n", n);
}

/* Turned off: clinicians get no key and nothing more is kept; the items stay readable. Then
 * re-authentication for the settings. */
static void test_off_reauth(void)
{
    int st;
    long long id;
    uint8_t ct[100];
    randombytes_buf(ct, sizeof(ct));
    CHECK(upload_start(P, "file", 384, 12, 100, 1, &id) == 201);
    CHECK(upload_chunk(P, id, 0, ct, sizeof(ct)) == 204);
    json_t *j = req("PUT", path, "{\"enabled\":false}", A, &st);
    CHECK(st == 200 && json_is_false(json_object_get(j, "enabled")));
    json_decref(j);
    j = req("GET", path, NULL, P, &st);
    CHECK(st == 200 && json_object_get(j, "public_key") == NULL);
    json_decref(j);
    long long id2;
    CHECK(upload_start(P, "transcript", 384, 12, 100, 1, &id2) == 409);
    CHECK(upload_finish(P, id, NULL) == 409);
    j = req("GET", ipath, NULL, A, &st);
    CHECK(st == 200 && json_array_size(json_object_get(j, "items")) == (size_t)saved);
    json_decref(j);
    /* On again keeps the uploaded key, and the upload started before finishes. */
    j = req("PUT", path, "{\"enabled\":true}", A, &st);
    CHECK(st == 200 && json_is_true(json_object_get(j, "enabled")) &&
          strcmp(json_string_value(json_object_get(j, "public_key")), pk) == 0);
    json_decref(j);
    CHECK(upload_finish(P, id, NULL) == 201);
    saved++;
    CHECK(count("SELECT count(*) FROM audit_log WHERE event = 'keeping_item_saved'") == saved);
    /* A session that signed in more than five minutes ago must prove the password again. */
    h_clock_set(h_clock() + AR_REAUTH_S + 1);
    json_decref(req("PUT", path, "{\"enabled\":false}", A, &st));
    CHECK(st == 403);
    printf("ok keeping off refuses uploads, on again keeps the key, re-authentication\n");
}

static void test_keeping(void)
{
    snprintf(path, sizeof(path), "/api/v1/clinics/%s/keeping", own);
    snprintf(ipath, sizeof(ipath), "/api/v1/clinics/%s/keeping/items", own);
    test_settings();
    test_items();
    test_upload_refusals();
    test_caps_expiry();
    test_body_cap();
    test_off_reauth();
    free(pk);
}

static void cases(void)
{
    snprintf(own, sizeof(own), "%lld", (long long)h_clinic_own);
    signin_all();
    test_keeping();
}

int main(int argc, char **argv)
{
    /* The expiry case checks the delete when the next upload starts, alone: a sweep could
     * otherwise run between its steps (app_keeping_sweep tests the sweep). */
    h_keeping_sweep_ms = -1;
    h_run(argc, argv, cases, NULL);
    printf("all keeping tests passed (%s)\n", argv[1]);
    return 0;
}
