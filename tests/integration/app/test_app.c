/*
 * anteroom-app end to end, on SQLite and on PostgreSQL:
 *   test_app sqlite            (a temporary database file)
 *   test_app pg                (under scripts/pg-test-server: AR_PG_CONNINFO)
 * HTTP/2 and HTTP/1.1 through curl, security headers on every response, the SRI manifest against
 * the served files, cookie attributes, CSRF refusals, session expiry on the injected clock, sign
 * out everywhere, and the authorization matrix generated from the route table.
 */
#include "harness.h"
#include "routes.h"

#include "anteroom/tls.h"
#include "audit.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void check_security_headers(const resp_t *r)
{
    static const struct {
        const char *name, *value;
    } want[] = {
        {"strict-transport-security", "max-age=63072000; includeSubDomains"},
        /* No servers file here, so connect-src names this origin only. */
        {"content-security-policy", "default-src 'self'; script-src 'self'; object-src 'none'; "
                                    "frame-ancestors 'none'; base-uri 'none'; connect-src 'self'"},
        {"referrer-policy", "no-referrer"},
        {"permissions-policy", "camera=(self), microphone=(self)"},
        {"x-content-type-options", "nosniff"},
    };
    char buf[300];
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        const char *v = h_header(r, want[i].name, buf, sizeof(buf));
        if (v == NULL || strcmp(v, want[i].value) != 0) {
            fprintf(stderr, "header %s: %s (status %d)\n", want[i].name, v ? v : "(missing)",
                    r->status);
            exit(1);
        }
    }
    CHECK(h_header(r, "cache-control", buf, sizeof(buf)) != NULL);
}

static void get(const char *path, int http1, resp_t *r)
{
    req_t rq = {.method = "GET", .path = path, .http1 = http1};
    h_request(&rq, r);
    check_security_headers(r);
}

static void test_pages_both_versions(void)
{
    for (int http1 = 0; http1 <= 1; http1++) {
        resp_t r;
        char buf[100];
        get("/", http1, &r);
        CHECK(r.status == 200);
        CHECK(strcmp(r.version, http1 ? "1.1" : "2") == 0);
        CHECK(strcmp(h_header(&r, "cache-control", buf, sizeof(buf)), "no-store") == 0);
        CHECK(strstr(r.body, "integrity=\"sha384-") != NULL);
        CHECK(strstr(r.body, "<script>") == NULL); /* no inline script */
        h_resp_free(&r);
    }
    printf("ok pages over HTTP/2 and HTTP/1.1\n");
}

static void sha384_b64(const char *data, size_t len, char *out)
{
    unsigned char md[48];
    unsigned int mdlen = 0;
    CHECK(EVP_Digest(data, len, md, &mdlen, EVP_sha384(), NULL) == 1 && mdlen == 48);
    strcpy(out, "sha384-");
    EVP_EncodeBlock((unsigned char *)out + 7, md, 48);
}

static void test_sri_manifest(void)
{
    json_error_t e;
    json_t *m = json_load_file(AR_WEB_DIR "/manifest.json", 0, &e);
    CHECK(m != NULL);
    size_t i, assets = 0;
    json_t *f;
    json_array_foreach(json_object_get(m, "files"), i, f)
    {
        const char *path = json_string_value(json_object_get(f, "path"));
        const char *want = json_string_value(json_object_get(f, "integrity"));
        int immutable = json_is_true(json_object_get(f, "immutable"));
        resp_t r;
        char buf[100], got[80];
        get(path, 0, &r);
        CHECK(r.status == 200);
        sha384_b64(r.body, r.body_len, got);
        CHECK(strcmp(got, want) == 0);
        h_header(&r, "cache-control", buf, sizeof(buf));
        CHECK(strcmp(buf, immutable ? "public, max-age=31536000, immutable" : "no-store") == 0);
        assets += immutable;
        h_resp_free(&r);
    }
    CHECK(assets >= 2);
    json_decref(m);
    printf("ok SRI manifest matches the served files (%zu assets)\n", assets);
}

static void expect(const req_t *rq, int status, const char *code)
{
    resp_t r;
    h_request(rq, &r);
    check_security_headers(&r);
    if (r.status != status || (code != NULL && strstr(r.body, code) == NULL)) {
        fprintf(stderr, "%s %s: got %d %s, want %d %s\n", rq->method, rq->path, r.status, r.body,
                status, code ? code : "");
        exit(1);
    }
    /* Error bodies never echo what the client sent. */
    CHECK(strstr(r.body, "SECRET-MARKER") == NULL);
    h_resp_free(&r);
}

static void test_errors(void)
{
    expect(&(req_t){.method = "GET", .path = "/nope"}, 404, "\"not_found\"");
    expect(&(req_t){.method = "GET", .path = "/api/v1/nope"}, 404, "\"not_found\"");
    expect(&(req_t){.method = "PUT", .path = "/api/v1/me"}, 405, "method_not_allowed");
    expect(&(req_t){.method = "GET", .path = "/api/v1/clinics/01"}, 404, "not_found");
    const char *sp = "/api/v1/session";
    expect(&(req_t){.method = "POST", .path = sp, .body = "{\"SECRET-MARKER\": 1"}, 400,
           "bad_request");
    expect(&(req_t){.method = "POST", .path = sp, .body = "{\"SECRET-MARKER\": 1}"}, 400,
           "bad_request");
    expect(&(req_t){.method = "POST", .path = sp, .body = "{\"email\":\"SECRET-MARKER\"}"}, 400,
           "bad_request");
    expect(&(req_t){.method = "POST", .path = sp, .body = "{}", .ctype = "text/plain"}, 415,
           "unsupported_media_type");
    static char big[8192];
    memset(big, ' ', sizeof(big) - 1);
    big[0] = '{';
    big[sizeof(big) - 2] = '}';
    resp_t r;
    h_request(&(req_t){.method = "POST", .path = sp, .body = big}, &r);
    CHECK(r.status == 413);
    h_resp_free(&r);
    printf("ok errors are JSON, carry the headers and echo nothing\n");
}

static void test_signin_cookie(void)
{
    const char *sp = "/api/v1/session";
    char body[200];
    snprintf(body, sizeof(body), "{\"email\":\"provider@example.org\",\"password\":\"wrong\"}");
    expect(&(req_t){.method = "POST", .path = sp, .origin = h_origin, .body = body}, 401,
           "bad_credentials");
    snprintf(body, sizeof(body), "{\"email\":\"nobody@example.org\",\"password\":\"x\"}");
    expect(&(req_t){.method = "POST", .path = sp, .origin = h_origin, .body = body}, 401,
           "bad_credentials");
    snprintf(body, sizeof(body), "{\"email\":\"disabled@example.org\",\"password\":\"%s\"}",
             h_password);
    expect(&(req_t){.method = "POST", .path = sp, .origin = h_origin, .body = body}, 401,
           "bad_credentials");
    snprintf(body, sizeof(body), "{\"email\":\"Provider@Example.org\",\"password\":\"%s\"}",
             h_password);
    /* Cross-origin sign-in (login CSRF) is refused by Origin and by Fetch Metadata. */
    expect(&(req_t){.method = "POST", .path = sp, .origin = "https://evil.test", .body = body}, 403,
           "csrf");
    expect(
        &(req_t){.method = "POST", .path = sp, .extra = "Sec-Fetch-Site: cross-site", .body = body},
        403, "csrf");
    resp_t r;
    h_request(&(req_t){.method = "POST", .path = sp, .origin = h_origin, .body = body}, &r);
    CHECK(r.status == 201);
    char sc[300];
    CHECK(h_header(&r, "set-cookie", sc, sizeof(sc)) != NULL);
    CHECK(strncmp(sc, "__Host-ar_session=", 18) == 0 && strcspn(sc, ";") == 18 + 43);
    CHECK(strstr(sc, "; Secure") && strstr(sc, "; HttpOnly") && strstr(sc, "; SameSite=Strict"));
    CHECK(strstr(sc, "; Path=/") && !strstr(sc, "Domain"));
    h_resp_free(&r);
    printf("ok sign-in: bad credentials, login CSRF, cookie attributes\n");
}

static void test_csrf_logout(void)
{
    char cookie[200], csrf[100];
    CHECK(h_signin("provider@example.org", h_password, cookie, sizeof(cookie), csrf,
                   sizeof(csrf)) == 201);
    const char *sp = "/api/v1/session";
    expect(&(req_t){.method = "GET", .path = "/api/v1/me", .cookie = cookie}, 200,
           "provider@example.org");
    expect(&(req_t){.method = "DELETE", .path = sp, .cookie = cookie}, 403, "csrf");
    expect(&(req_t){.method = "DELETE",
                    .path = sp,
                    .cookie = cookie,
                    .csrf = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
           403, "csrf");
    expect(&(req_t){.method = "DELETE",
                    .path = sp,
                    .cookie = cookie,
                    .csrf = csrf,
                    .origin = "https://evil.test"},
           403, "csrf");
    resp_t r;
    h_request(&(req_t){.method = "DELETE", .path = sp, .cookie = cookie, .csrf = csrf}, &r);
    CHECK(r.status == 204);
    char sc[300];
    CHECK(h_header(&r, "set-cookie", sc, sizeof(sc)) && strstr(sc, "Max-Age=0"));
    h_resp_free(&r);
    expect(&(req_t){.method = "GET", .path = "/api/v1/me", .cookie = cookie}, 401,
           "unauthenticated");
    printf("ok CSRF refusals and logout\n");
}

static int me_status(const char *cookie)
{
    resp_t r;
    h_request(&(req_t){.method = "GET", .path = "/api/v1/me", .cookie = cookie}, &r);
    int s = r.status;
    h_resp_free(&r);
    return s;
}

static void test_expiry(void)
{
    char cookie[200], csrf[100];
    int64_t t0 = h_clock();
    /* Idle: a request within the idle time keeps the session; a gap of the idle time ends it. */
    CHECK(h_signin("reporter@example.org", h_password, cookie, sizeof(cookie), csrf,
                   sizeof(csrf)) == 201);
    h_clock_set(t0 + h_idle_s - 1);
    CHECK(me_status(cookie) == 200);
    h_clock_set(t0 + 2 * (h_idle_s - 1));
    CHECK(me_status(cookie) == 200);
    h_clock_set(t0 + 3 * (h_idle_s - 1) + 1);
    CHECK(me_status(cookie) == 401);
    /* Absolute: however active, the session ends session_max after sign-in. */
    int64_t t1 = h_clock();
    CHECK(h_signin("reporter@example.org", h_password, cookie, sizeof(cookie), csrf,
                   sizeof(csrf)) == 201);
    int64_t t = t1;
    while (t + h_idle_s - 1 < t1 + h_max_s) {
        t += h_idle_s - 1;
        h_clock_set(t);
        CHECK(me_status(cookie) == 200);
    }
    h_clock_set(t1 + h_max_s);
    CHECK(me_status(cookie) == 401);
    printf("ok idle and absolute session timeouts on the injected clock\n");
}

static void test_signout_everywhere(void)
{
    char c1[200], c2[200], t1[100], t2[100];
    CHECK(h_signin("receptionist@example.org", h_password, c1, sizeof(c1), t1, sizeof(t1)) == 201);
    CHECK(h_signin("receptionist@example.org", h_password, c2, sizeof(c2), t2, sizeof(t2)) == 201);
    CHECK(me_status(c1) == 200 && me_status(c2) == 200);
    expect(&(req_t){.method = "DELETE", .path = "/api/v1/sessions", .cookie = c1, .csrf = t1}, 204,
           NULL);
    CHECK(me_status(c1) == 401 && me_status(c2) == 401);
    printf("ok sign out everywhere\n");
}

/*
 * The authorization matrix, generated from the route table: every route x (no session and each
 * role) x (own clinic and another). Each role keeps its session from cell to cell and signs in
 * again after a request that may have changed it (some routes end it): a sign-in per cell made
 * the matrix most of the test's time, near its timeout under ASan on a loaded machine.
 */
/* A route's pattern with its parameters filled: the clinic given, an area slug and a room id
 * that do not exist (authorization comes first, so a refusal is still 401/403). */
static void fill_path(const char *pat, int64_t clinic, char *out, size_t cap)
{
    size_t n = 0;
    while (*pat != '\0' && n + 24 < cap) {
        if (*pat == '{') {
            const char *close = strchr(pat, '}');
            CHECK(close != NULL);
            if (strncmp(pat, "{clinic}", 8) == 0)
                n += (size_t)snprintf(out + n, cap - n, "%lld", (long long)clinic);
            else if (strncmp(pat, "{area}", 6) == 0)
                n += (size_t)snprintf(out + n, cap - n, "no-such-area");
            else
                n += (size_t)snprintf(out + n, cap - n, "999999");
            pat = close + 1;
        } else {
            out[n++] = *pat++;
        }
    }
    out[n] = '\0';
}

static void test_matrix(void)
{
    static const struct {
        const char *email;
        unsigned role;
    } who[] = {{NULL, 0},
               {"operator@example.org", AR_ROLE_OPERATOR},
               {"clinic_admin@example.org", AR_ROLE_CLINIC_ADMIN},
               {"provider@example.org", AR_ROLE_PROVIDER},
               {"receptionist@example.org", AR_ROLE_RECEPTIONIST},
               {"reporter@example.org", AR_ROLE_REPORTER}};
    size_t n, cells = 0;
    const ar_app_route_t *routes = ar_app_routes(&n);
    enum { WHO = sizeof(who) / sizeof(who[0]) };
    char cookie[WHO][200], csrf[WHO][100];
    int signed_in[WHO] = {0};
    for (size_t i = 0; i < n; i++) {
        const ar_app_route_t *rt = &routes[i];
        int scoped = strstr(rt->pattern, "{clinic}") != NULL;
        for (int other = 0; other <= scoped; other++) {
            char path[200];
            fill_path(rt->pattern, other ? h_clinic_other : h_clinic_own, path, sizeof(path));
            printf("  %-6s %-28s", rt->method, path);
            for (size_t w = 0; w < WHO; w++) {
                if (who[w].email && !signed_in[w]) {
                    CHECK(h_signin(who[w].email, h_password, cookie[w], sizeof(cookie[w]), csrf[w],
                                   sizeof(csrf[w])) == 201);
                    signed_in[w] = 1;
                }
                int allowed;
                if (rt->auth == AR_AUTH_PUBLIC)
                    allowed = 1;
                else if (who[w].email == NULL)
                    allowed = 0;
                else if (rt->auth == AR_AUTH_SESSION)
                    allowed = 1;
                else if (who[w].role == AR_ROLE_OPERATOR)
                    allowed = (rt->roles & AR_ROLE_OPERATOR) != 0;
                else
                    allowed = !other && (rt->roles & who[w].role) != 0;
                resp_t r;
                h_request(&(req_t){.method = rt->method,
                                   .path = path,
                                   .cookie = who[w].email ? cookie[w] : NULL,
                                   .csrf = who[w].email ? csrf[w] : NULL,
                                   .origin = h_origin,
                                   .body = rt->body ? "{}" : NULL},
                          &r);
                check_security_headers(&r);
                int refused = r.status == 401 || r.status == 403;
                int want = who[w].email == NULL ? 401 : 403;
                if (allowed ? refused : r.status != want) {
                    fprintf(stderr, "\nmatrix: %s %s as %s: got %d, want %s\n", rt->method, path,
                            who[w].email ? who[w].email : "anonymous", r.status,
                            allowed       ? "not 401/403"
                            : want == 401 ? "401"
                                          : "403");
                    exit(1);
                }
                /* A refused or invalid request (4xx) and a GET change nothing; anything else
                 * (a sign-out, an enrolment begun) may have: a new session for the next cell. */
                if (strcmp(rt->method, "GET") != 0 && r.status < 400)
                    signed_in[w] = 0;
                printf(" %s:%d", w == 0 ? "anon" : ar_app_role_name(who[w].role), r.status);
                h_resp_free(&r);
                cells++;
            }
            printf("\n");
        }
    }
    printf("ok authorization matrix: %zu cells from %zu routes\n", cells, n);
}

/* The SHA-256 fingerprint of the certificate the server presents, or of a PEM file. */
static void fingerprint(const char *cmd, char *out, size_t cap)
{
    FILE *p = popen(cmd, "r");
    CHECK(p != NULL);
    CHECK(fgets(out, (int)cap, p) != NULL);
    pclose(p);
    CHECK(strncmp(out, "sha256 Fingerprint=", 19) == 0);
}

static void test_tls_reload(void)
{
    char cmd[600], before[200], after[200], file[200];
    snprintf(cmd, sizeof(cmd),
             "openssl s_client -connect 127.0.0.1:%u -servername localhost </dev/null "
             "2>/dev/null | openssl x509 -noout -fingerprint -sha256",
             h_port());
    fingerprint(cmd, before, sizeof(before));
    char cert[300], key[300], fcmd[400];
    snprintf(cert, sizeof(cert), "%s/cert.pem", h_tmpdir());
    snprintf(key, sizeof(key), "%s/key.pem", h_tmpdir());
    snprintf(fcmd, sizeof(fcmd), "openssl x509 -noout -fingerprint -sha256 -in %s", cert);
    fingerprint(fcmd, file, sizeof(file));
    CHECK(strcmp(before, file) == 0);
    /* A broken file keeps the old certificate in service. */
    FILE *f = fopen(cert, "w");
    CHECK(f != NULL && fputs("not a certificate\n", f) >= 0 && fclose(f) == 0);
    CHECK(h_reload_tls() == AR_ETLS);
    fingerprint(cmd, after, sizeof(after));
    CHECK(strcmp(after, before) == 0);
    /* A new pair is served from the next connection on. */
    CHECK(ar_tls_selfsigned_generate(cert, key, NULL, 0, 2) == 0);
    CHECK(h_reload_tls() == 0);
    fingerprint(fcmd, file, sizeof(file));
    fingerprint(cmd, after, sizeof(after));
    CHECK(strcmp(after, file) == 0 && strcmp(after, before) != 0);
    resp_t r;
    get("/", 0, &r);
    CHECK(r.status == 200);
    h_resp_free(&r);
    printf("ok certificate reload (SIGHUP's path): bad file kept the old one, new one served\n");
}

static void cases(void)
{
    test_pages_both_versions();
    test_sri_manifest();
    test_errors();
    test_signin_cookie();
    test_csrf_logout();
    test_signout_everywhere();
    test_matrix();
    test_expiry();
    test_tls_reload();
}

typedef struct {
    const ar_store_opts_t *opts;
    int id;
} appender_t;

#define APPENDERS 4
#define APPENDS 25

static void appender(void *arg)
{
    appender_t *a = arg;
    ar_store_conn_t *c;
    CHECK(ar_store_open(a->opts, &c) == 0);
    for (int i = 0; i < APPENDS; i++) {
        int rc;
        while ((rc = ar_app_audit_append_tx(c, 1, a->id, 0, AR_AUDIT_SIGNOUT)) == AR_EAGAIN)
            ;
        CHECK(rc == 0);
    }
    ar_store_close(c);
}

/* After the server: the audit chain the run wrote verifies; appenders racing on their own
 * connections still make one linear chain; an edited row, then a cut tail, are caught. */
static void audit_checks(const ar_store_opts_t *opts)
{
    ar_store_conn_t *c;
    CHECK(ar_store_open(opts, &c) == 0);
    int64_t rows, after;
    CHECK(ar_app_audit_verify(c, &rows) == 0);
    CHECK(rows >= 40); /* every sign-in, failure and sign-out above */
    uv_thread_t t[APPENDERS];
    appender_t a[APPENDERS];
    for (int i = 0; i < APPENDERS; i++) {
        a[i] = (appender_t){.opts = opts, .id = i + 1};
        CHECK(uv_thread_create(&t[i], appender, &a[i]) == 0);
    }
    for (int i = 0; i < APPENDERS; i++)
        uv_thread_join(&t[i]);
    CHECK(ar_app_audit_verify(c, &after) == 0);
    CHECK(after == rows + APPENDERS * APPENDS);
    CHECK(ar_store_exec(c, "UPDATE audit_log SET event = 'signin' WHERE seq = "
                           "(SELECT min(seq) FROM audit_log WHERE event = 'signin_failed')") == 0);
    CHECK(ar_app_audit_verify(c, &after) == AR_EAUTH);
    CHECK(ar_store_exec(c, "UPDATE audit_log SET event = 'signin_failed' WHERE seq = "
                           "(SELECT min(seq) FROM audit_log WHERE event = 'signin')") == 0);
    CHECK(ar_app_audit_verify(c, &after) == 0);
    CHECK(ar_store_exec(c, "DELETE FROM audit_log WHERE seq = (SELECT max(seq) FROM audit_log)") ==
          0);
    CHECK(ar_app_audit_verify(c, &after) == AR_EAUTH);
    ar_store_close(c);
    printf("ok audit chain: %lld entries verify, %d racing appends stay linear, edits and cuts "
           "are caught\n",
           (long long)rows, APPENDERS * APPENDS);
}

int main(int argc, char **argv)
{
    h_run(argc, argv, cases, audit_checks);
    printf("all app integration tests passed (%s)\n", argv[1]);
    return 0;
}
