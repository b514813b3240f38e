/*
 * anteroom-monitor end to end, on SQLite and on PostgreSQL:
 *   test_monitor sqlite        (a temporary database file)
 *   test_monitor pg            (under scripts/pg-test-server: AR_PG_CONNINFO)
 * Over HTTP/2 and HTTP/1.1 through curl: POST is the only method, every other method and path
 * is refused, no response has a body, only the preflight carries CORS headers, every refusal
 * class gets its status and counter; then a known set of reports across two clinics, areas and
 * hours is sent, flushed twice (so stored rows are merged), and the stored aggregates are
 * checked against the exact answers (percentiles within the histogram's 1/32).
 */
#include "harness.h"

#include "hist.h"

#include "anteroom/buf.h"

#include <string.h>

#define REPORT_FMT                                                                                 \
    "{\"v\":1,\"token\":\"%s\",\"interval_s\":10,\"call_s\":%u,\"browser\":\"%s\","                \
    "\"profile\":\"%s\",\"candidate\":\"%s\"%s}"

static char body_buf[8192];

static const char *report(const char *token, const char *extra)
{
    snprintf(body_buf, sizeof(body_buf), REPORT_FMT, token, 60u, "firefox", "standard", "host",
             extra);
    return body_buf;
}

/* Nothing readable: an empty body, no CORS grant, nothing echoed, nothing cacheable. */
static void check_silent(const resp_t *r, int preflight)
{
    char buf[300];
    if (r->body_len != 0)
        fprintf(stderr, "status %d body %.*s\n", r->status, (int)r->body_len, r->body);
    CHECK(r->body_len == 0);
    CHECK(h_header(r, "access-control-allow-credentials", buf, sizeof(buf)) == NULL);
    if (!preflight)
        CHECK(h_header(r, "access-control-allow-origin", buf, sizeof(buf)) == NULL);
    CHECK(strstr(r->headers, "AR1.") == NULL);
    CHECK(h_header(r, "cache-control", buf, sizeof(buf)) != NULL && strcmp(buf, "no-store") == 0);
    CHECK(h_header(r, "x-content-type-options", buf, sizeof(buf)) != NULL);
    CHECK(h_header(r, "strict-transport-security", buf, sizeof(buf)) != NULL);
}

static int send_req(const req_t *rq, int preflight)
{
    resp_t r;
    h_request(rq, &r);
    check_silent(&r, preflight);
    CHECK(strcmp(r.version, rq->http1 ? "1.1" : "2") == 0);
    int status = r.status;
    h_resp_free(&r);
    return status;
}

static int post(const char *body, int http1, const char *origin, const char *ctype)
{
    req_t rq = {.method = "POST",
                .path = "/v1/stats",
                .http1 = http1,
                .origin = origin,
                .body = body,
                .ctype = ctype};
    return send_req(&rq, 0);
}

static void test_methods_and_paths(void)
{
    static const char *const methods[] = {"GET", "HEAD", "PUT", "DELETE", "PATCH", "TRACE"};
    char tok[AR_TOKEN_MAX];
    h_token("c1", "a1", NULL, 3600, tok, sizeof(tok));
    for (int http1 = 0; http1 <= 1; http1++) {
        for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
            req_t rq = {.method = methods[i], .path = "/v1/stats", .http1 = http1};
            CHECK(send_req(&rq, 0) == 405);
        }
        /* A read with a valid report as its body is still a read. */
        req_t rq = {.method = "PUT", .path = "/v1/stats", .http1 = http1, .body = report(tok, "")};
        CHECK(send_req(&rq, 0) == 405);
        static const char *const paths[] = {"/",           "/metrics", "/healthz",
                                            "/v1/stats/x", "/v1",      "/v1/statsx"};
        for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
            req_t g = {.method = "GET", .path = paths[i], .http1 = http1};
            CHECK(send_req(&g, 0) == 404);
            req_t p = {.method = "POST", .path = paths[i], .http1 = http1, .body = "{}"};
            CHECK(send_req(&p, 0) == 404);
        }
    }
    printf("ok every other method 405, every other path 404, all without a body\n");
}

static void test_cors(void)
{
    char buf[300];
    for (int http1 = 0; http1 <= 1; http1++) {
        req_t rq = {.method = "OPTIONS",
                    .path = "/v1/stats",
                    .http1 = http1,
                    .origin = h_origin,
                    .extra = "Access-Control-Request-Method: POST"};
        resp_t r;
        h_request(&rq, &r);
        check_silent(&r, 1);
        CHECK(r.status == 204);
        CHECK(h_header(&r, "access-control-allow-origin", buf, sizeof(buf)) != NULL &&
              strcmp(buf, h_origin) == 0);
        CHECK(h_header(&r, "access-control-allow-methods", buf, sizeof(buf)) != NULL &&
              strcmp(buf, "POST") == 0);
        h_resp_free(&r);
        /* Another origin, no origin, or another method: no grant. */
        req_t bad[] = {
            {.method = "OPTIONS",
             .path = "/v1/stats",
             .http1 = http1,
             .origin = "https://evil.test",
             .extra = "Access-Control-Request-Method: POST"},
            {.method = "OPTIONS",
             .path = "/v1/stats",
             .http1 = http1,
             .extra = "Access-Control-Request-Method: POST"},
            {.method = "OPTIONS",
             .path = "/v1/stats",
             .http1 = http1,
             .origin = h_origin,
             .extra = "Access-Control-Request-Method: GET"},
            {.method = "OPTIONS", .path = "/v1/stats", .http1 = http1, .origin = h_origin},
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
            CHECK(send_req(&bad[i], 0) == 403);
    }
    char tok[AR_TOKEN_MAX];
    h_token("c1", "a1", NULL, 3600, tok, sizeof(tok));
    CHECK(post(report(tok, ""), 0, "https://evil.test", NULL) == 403);
    CHECK(post(report(tok, ""), 0, "null", NULL) == 403);
    printf(
        "ok CORS: only the deployment's origin gets a preflight grant; POST answers carry none\n");
}

static void test_accepted(void)
{
    char tok[AR_TOKEN_MAX];
    h_token("c9", "a9", NULL, 3600, tok, sizeof(tok));
    CHECK(post(report(tok, ""), 0, NULL, NULL) == 204);
    CHECK(post(report(tok, ""), 1, h_origin, NULL) == 204);
    CHECK(post(report(tok, ""), 0, h_origin, "text/plain;charset=UTF-8") == 204);
    /* A staff token of one clinic counts under that clinic with no area. */
    h_token("c9", NULL, NULL, 3600, tok, sizeof(tok));
    CHECK(post(report(tok, ""), 1, NULL, NULL) == 204);
    printf("ok reports accepted with 204 and no body, JSON or text/plain, HTTP/2 and 1.1\n");
}

static int address_refusals;

static void test_refusals(void)
{
    char tok[AR_TOKEN_MAX];
    h_token("c9", "a9", NULL, 3600, tok, sizeof(tok));
    static const char *const addr[] = {
        ",\"ip\":\"192.0.2.1\"",
        ",\"x\":\"2001:db8::7\"",
        ",\"x\":\"candidate:1 1 udp 2122260223 h 54321 typ host\"",
        ",\"x\":\"0d5f3c1e.local\"",
    };
    for (size_t i = 0; i < sizeof(addr) / sizeof(addr[0]); i++) {
        CHECK(post(report(tok, addr[i]), (int)(i & 1), NULL, NULL) == 400);
        address_refusals++;
    }
    CHECK(post(report(tok, ",\"room\":\"r1\""), 0, NULL, NULL) == 400);
    CHECK(post(report(tok, ",\"fps\":999"), 1, NULL, NULL) == 400);
    CHECK(post("{\"v\":1,", 0, NULL, NULL) == 400);
    CHECK(post("[]", 0, NULL, NULL) == 400);
    static char big[6000];
    memset(big, ' ', sizeof(big) - 1);
    const char *valid = report(tok, "");
    memcpy(big, valid, strlen(valid)); /* a valid report padded with spaces past the cap */
    CHECK(post(big, 0, NULL, NULL) == 413);
    CHECK(post(big, 1, NULL, NULL) == 413);
    CHECK(post(report(tok, ""), 0, NULL, "application/x-www-form-urlencoded") == 415);
    CHECK(post(report(tok, ""), 1, NULL, "") == 415);
    /* Tokens: another audience, expired, signed by an unknown key, tampered. */
    char bad[AR_TOKEN_MAX];
    h_token("c9", "a9", "signal", 3600, bad, sizeof(bad));
    CHECK(post(report(bad, ""), 0, NULL, NULL) == 401);
    h_token("c9", "a9", NULL, 3600, bad, sizeof(bad));
    h_clock_set(h_clock() + 7200);
    CHECK(post(report(bad, ""), 0, NULL, NULL) == 401);
    h_clock_set(h_clock() - 7200);
    ar_token_key_t saved = h_key;
    CHECK(ar_token_key_generate(&h_key, "k1") == 0);
    h_token("c9", "a9", NULL, 3600, bad, sizeof(bad));
    CHECK(post(report(bad, ""), 1, NULL, NULL) == 401);
    CHECK(ar_token_key_generate(&h_key, "k2") == 0);
    h_token("c9", "a9", NULL, 3600, bad, sizeof(bad));
    CHECK(post(report(bad, ""), 1, NULL, NULL) == 401);
    h_key = saved;
    /* A token accepted once (and remembered, so later reports skip the signature) is refused
     * once it has expired. */
    h_token("c9", "a9", NULL, 600, bad, sizeof(bad));
    CHECK(post(report(bad, ""), 0, NULL, NULL) == 204);
    h_clock_set(h_clock() + 601);
    CHECK(post(report(bad, ""), 0, NULL, NULL) == 401);
    h_clock_set(h_clock() - 601);
    h_token("c9", "a9", NULL, 3600, bad, sizeof(bad));
    bad[strlen(bad) - 2] = bad[strlen(bad) - 2] == 'A' ? 'B' : 'A';
    CHECK(post(report(bad, ""), 0, NULL, NULL) == 401);
    /* Rate limit: a burst of 5 per token, then refusals; another token is unaffected. */
    char rl[AR_TOKEN_MAX];
    h_token("c9", "a9", NULL, 3600, rl, sizeof(rl));
    for (int i = 0; i < 5; i++)
        CHECK(post(report(rl, ""), i & 1, NULL, NULL) == 204);
    CHECK(post(report(rl, ""), 0, NULL, NULL) == 429);
    CHECK(post(report(rl, ""), 1, NULL, NULL) == 429);
    h_token("c9", "a9", NULL, 3600, rl, sizeof(rl));
    CHECK(post(report(rl, ""), 0, NULL, NULL) == 204);
    printf("ok refusals: address/unknown/invalid/malformed 400, 413, 415, 401, 429, no bodies\n");
}

/* ---- aggregates against known inputs ---- */

#define PARTICIPANTS 36
#define KEYS 4
static const char *const clinics[KEYS] = {"c1", "c1", "c2", "c2"};
static const char *const areas[KEYS] = {"a1", "a2", "a1", ""};
static const int64_t hour0 = 1800000000 / 3600;

typedef struct {
    uint32_t loss[PARTICIPANTS * 3], rtt[PARTICIPANTS * 3], br[PARTICIPANTS * 3];
    size_t n;
    uint64_t reports, calls, relayed, ended, call_s, wait_s;
    uint64_t firefox, relay_reports;
} expect_t;

static expect_t want[KEYS][2]; /* [key][hour offset] */

static void test_aggregates(void)
{
    static const char *const browsers[] = {"chrome", "firefox", "safari", "edge", "other"};
    for (int p = 0; p < PARTICIPANTS; p++) {
        int k = p % KEYS, ho = (p / KEYS) % 2;
        expect_t *e = &want[k][ho];
        h_clock_set((hour0 + ho) * 3600 + 60 + p);
        char tok[AR_TOKEN_MAX];
        h_token(clinics[k], areas[k][0] ? areas[k] : NULL, NULL, 3600, tok, sizeof(tok));
        int relay = p % 3 == 0;
        for (unsigned r = 0; r < 3; r++) {
            uint32_t loss = (uint32_t)(p * 37 + r * 11) % 200, rtt = 20 + (p * 53 + r * 17) % 400,
                     br = 300 + (p * 997 + r * 131) % 3000, call_s = 10 + r * 10 + (uint32_t)p;
            char extra[300];
            snprintf(extra, sizeof(extra),
                     ",\"loss_permille\":%u,\"rtt_ms\":%u,\"bitrate_in_kbps\":%u%s%s", loss, rtt,
                     br, r == 0 ? ",\"wait_s\":120" : "", r == 2 ? ",\"final\":true" : "");
            snprintf(body_buf, sizeof(body_buf), REPORT_FMT, tok, call_s, browsers[p % 5],
                     "standard", relay && r > 0 ? "relay" : "host", extra);
            CHECK(post(body_buf, (int)r & 1, h_origin, NULL) == 204);
            e->loss[e->n] = loss, e->rtt[e->n] = rtt, e->br[e->n] = br, e->n++;
            e->reports++;
            e->relay_reports += relay && r > 0;
            if (r == 2)
                e->ended++, e->call_s += call_s;
        }
        e->calls++;
        e->relayed += relay;
        e->wait_s += 120;
        e->firefox += p % 5 == 1;
        /* Half way, a flush: the rest then merges into rows already stored. */
        if (p == PARTICIPANTS / 2)
            CHECK(h_flush() == 0);
    }
    CHECK(h_flush() == 0);
    CHECK(h_flush() == 0); /* nothing left: a no-op */
    printf("ok %d participants' reports sent and flushed\n", PARTICIPANTS);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void check_quantiles(const char *what, uint32_t *v, size_t n, const ar_hist_t *h)
{
    CHECK(h->count == n);
    qsort(v, n, sizeof(*v), cmp_u32);
    static const double qs[] = {0.5, 0.9, 0.95, 0.99};
    for (size_t i = 0; i < 4; i++) {
        double r = qs[i] * (double)n;
        size_t rank = (size_t)r + ((double)(size_t)r < r);
        uint32_t exact = v[rank - 1], got = ar_hist_quantile(h, qs[i]);
        double err = exact > got ? exact - got : got - exact;
        if (err > (double)exact / 32.0) {
            fprintf(stderr, "%s q%.2f: got %u, exact %u\n", what, qs[i], got, exact);
            exit(1);
        }
    }
}

static ar_store_stmt_t *query(ar_store_conn_t *c, const char *sql, int k, int64_t hour)
{
    ar_store_stmt_t *st;
    CHECK(ar_store_prepare(c, sql, strlen(sql), &st) == 0);
    CHECK(ar_store_bind_text(st, 1, clinics[k], strlen(clinics[k])) == 0);
    CHECK(ar_store_bind_text(st, 2, areas[k], strlen(areas[k])) == 0);
    CHECK(ar_store_bind_int64(st, 3, hour) == 0);
    return st;
}

static int64_t count_of(ar_store_conn_t *c, int k, int64_t hour, const char *name)
{
    ar_store_stmt_t *st = query(c,
                                "SELECT value FROM monitor_hourly_counts WHERE clinic = $1 AND "
                                "area = $2 AND hour = $3 AND name = $4",
                                k, hour);
    CHECK(ar_store_bind_text(st, 4, name, strlen(name)) == 0);
    int rc = ar_store_step(st);
    int64_t v = rc == AR_STORE_ROW ? ar_store_col_int64(st, 0) : 0;
    ar_store_finalize(st);
    return v;
}

static void after(const ar_store_opts_t *so)
{
    ar_store_conn_t *c;
    CHECK(ar_store_open(so, &c) == 0);
    for (int k = 0; k < KEYS; k++) {
        for (int ho = 0; ho < 2; ho++) {
            expect_t *e = &want[k][ho];
            ar_store_stmt_t *st =
                query(c,
                      "SELECT reports, calls, relayed_calls, ended_calls, call_seconds, "
                      "wait_seconds, hist_loss, hist_rtt, hist_bitrate_in, hist_call, hist_wait "
                      "FROM monitor_hourly WHERE clinic = $1 AND area = $2 AND hour = $3",
                      k, hour0 + ho);
            CHECK(ar_store_step(st) == AR_STORE_ROW);
            const uint64_t got[] = {
                (uint64_t)ar_store_col_int64(st, 0), (uint64_t)ar_store_col_int64(st, 1),
                (uint64_t)ar_store_col_int64(st, 2), (uint64_t)ar_store_col_int64(st, 3),
                (uint64_t)ar_store_col_int64(st, 4), (uint64_t)ar_store_col_int64(st, 5)};
            const uint64_t exp[] = {e->reports, e->calls,  e->relayed,
                                    e->ended,   e->call_s, e->wait_s};
            for (int i = 0; i < 6; i++) {
                if (got[i] != exp[i]) {
                    fprintf(stderr, "key %d hour +%d column %d: %llu, want %llu\n", k, ho, i,
                            (unsigned long long)got[i], (unsigned long long)exp[i]);
                    exit(1);
                }
            }
            ar_hist_t h[5];
            for (int i = 0; i < 5; i++) {
                size_t len;
                const void *p = ar_store_col_blob(st, 6 + i, &len);
                CHECK(ar_hist_decode(p, len, &h[i]) == 0);
            }
            check_quantiles("loss", e->loss, e->n, &h[0]);
            check_quantiles("rtt", e->rtt, e->n, &h[1]);
            check_quantiles("bitrate_in", e->br, e->n, &h[2]);
            CHECK(h[3].count == e->ended && h[3].sum == e->call_s);
            CHECK(h[4].count == e->calls && h[4].sum == e->wait_s);
            CHECK(ar_store_step(st) == AR_STORE_DONE);
            ar_store_finalize(st);
            CHECK((uint64_t)count_of(c, k, hour0 + ho, "browser.firefox") == e->firefox);
            CHECK((uint64_t)count_of(c, k, hour0 + ho, "candidate.relay") == e->relay_reports);
            CHECK((uint64_t)count_of(c, k, hour0 + ho, "profile.standard") == e->reports);
        }
    }
    /* Nothing but clinic, area and hour identifies a row: no column could hold a token. */
    ar_store_stmt_t *st;
    static const char any_token[] =
        "SELECT COUNT(*) FROM monitor_hourly_counts WHERE name LIKE '%AR1%' OR clinic LIKE '%AR1%'";
    CHECK(ar_store_prepare(c, any_token, strlen(any_token), &st) == 0);
    CHECK(ar_store_step(st) == AR_STORE_ROW && ar_store_col_int64(st, 0) == 0);
    ar_store_finalize(st);
    ar_store_close(c);
    printf("ok stored aggregates equal the known inputs (percentiles within 1/32)\n");

    ar_buf_t out;
    ar_buf_init(&out, 1 << 20);
    CHECK(ar_metrics_render(h_metrics, &out) == 0);
    char line[200];
    snprintf(line, sizeof(line), "anteroom_monitor_requests_refused_total{reason=\"address\"} %d\n",
             address_refusals);
    CHECK(memmem(out.data, out.len, line, strlen(line)) != NULL);
    static const char *const present[] = {"reason=\"method\"} 14\n", "reason=\"rate_limited\"} 2\n",
                                          "reason=\"too_large\"} 2\n", "reason=\"media_type\"} 2\n",
                                          "anteroom_monitor_flushes_total 2\n"};
    for (size_t i = 0; i < sizeof(present) / sizeof(present[0]); i++) {
        if (memmem(out.data, out.len, present[i], strlen(present[i])) == NULL) {
            fprintf(stderr, "metrics lack %s%.*s\n", present[i], (int)out.len, (char *)out.data);
            exit(1);
        }
    }
    ar_buf_release(&out);
    printf("ok refusals counted by reason on the operator metrics\n");
}

static void cases(void)
{
    test_methods_and_paths();
    test_cors();
    test_accepted();
    test_refusals();
    test_aggregates();
}

int main(int argc, char **argv)
{
    h_run(argc, argv, cases, after);
    return 0;
}
