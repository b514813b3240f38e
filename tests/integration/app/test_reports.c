/*
 * Clinic reports (A4) end to end on a real app (harness.c) on SQLite or PostgreSQL. Aggregates
 * with known samples are written through the monitor's own flush (ar__flush_write, the code
 * anteroom-monitor stores with) and entries into usage_hourly; the JSON and CSV answers are then
 * checked number by number: counts, means, the relayed share, percentiles (exact below 32, within
 * 1/32 above), the range's bounds, the area filter, another clinic's rows left out, validation
 * and roles, and CSV quoting and formula prefixing. Then the clinic settings route (rename):
 * roles, CSRF, validation, and a name stored as typed.
 */
#include "harness.h"
/* The monitor's internals (ar__agg_t, ar__flush_write), by path: src/app has an internal.h too. */
#include "../../../src/monitor/internal.h"

#include "anteroom/alloc.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 2027-01-15, the day of the harness clock (1800000000 is 2027-01-15T08:00:00Z). */
#define DAY 20833
#define H(d, h) ((int64_t)((DAY + (d)) * 24 + (h)))
/* An area name a spreadsheet would run as a formula, with a comma and quotes to quote. */
#define AREA_NAME "=HYPERLINK(\"http://x.test\",\"y\")"

static char cookie[3][200], csrf[3][100]; /* 0 reporter, 1 clinic_admin, 2 provider */
static int64_t area_id;

static json_t *get(int who, int csv, const char *query, int *status, resp_t *keep)
{
    char path[400];
    snprintf(path, sizeof(path), "/api/v1/clinics/%lld/reports%s?%s", (long long)h_clinic_own,
             csv ? ".csv" : "", query);
    resp_t r;
    h_request(&(req_t){.method = "GET",
                       .path = path,
                       .cookie = cookie[who],
                       .csrf = csrf[who],
                       .origin = h_origin},
              &r);
    *status = r.status;
    json_t *j = r.body_len && r.body[0] == '{' ? json_loads(r.body, 0, NULL) : NULL;
    if (keep != NULL)
        *keep = r;
    else
        h_resp_free(&r);
    return j;
}

static int64_t num(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v)) {
        fprintf(stderr, "report: %s is not a number\n", key);
        exit(1);
    }
    return json_integer_value(v);
}

static int64_t pct(json_t *o, const char *hist, const char *q)
{
    json_t *h = json_object_get(o, hist);
    CHECK(json_is_object(h));
    return num(h, q);
}

/* ---- known inputs ---- */

static ar__agg_t *agg(int64_t clinic, const char *area, int64_t hour)
{
    ar__agg_t *a = ar_calloc(1, sizeof(*a));
    CHECK(a != NULL);
    snprintf(a->clinic, sizeof(a->clinic), "%lld", (long long)clinic);
    snprintf(a->area, sizeof(a->area), "%s", area);
    a->hour = hour;
    return a;
}

static void add_n(ar_hist_t *h, uint32_t v, int n)
{
    for (int i = 0; i < n; i++)
        ar_hist_add(h, v);
}

static void sql(ar_store_conn_t *c, const char *q, const int64_t *v, int n)
{
    ar_store_stmt_t *st;
    CHECK(ar_store_prepare(c, q, strlen(q), &st) == 0);
    for (int i = 0; i < n; i++)
        CHECK(ar_store_bind_int64(st, i + 1, v[i]) == 0);
    CHECK(ar_store_step(st) >= 0);
    ar_store_finalize(st);
}

/*
 * Day 0, area: hour 9 (A) calls 4, relayed 1, ended 2 of 300 s each, waits 120 s; loss 0..9;
 *   rtt 50 x 100 ms; bitrate_in 10 x 1500. Hour 10 (B) calls 2, relayed 1, ended 1 of 100 s,
 *   waits 30 s; loss 10..19; rtt 50 x 200 ms. Entries 5 at hour 9, 2 at hour 10.
 * Day 0, staff (no area): hour 11 (C) calls 1, loss 30.
 * Day 1, area: hour 3 (D) calls 3, all relayed, ended 3 of 60 s.
 * Left out: day 2 (E, after the range), the day before (F), and another clinic's row (G).
 */
static void seed(void)
{
    ar_store_conn_t *c;
    CHECK(ar_store_open(h_store_opts(), &c) == 0);
    char area[24];
    snprintf(area, sizeof(area), "%lld", (long long)area_id);
    ar__agg_t *a[7];
    a[0] = agg(h_clinic_own, area, H(0, 9));
    a[0]->reports = 60, a[0]->calls = 4, a[0]->relayed_calls = 1, a[0]->ended_calls = 2;
    a[0]->call_seconds = 600, a[0]->wait_seconds = 120;
    for (uint32_t v = 0; v < 10; v++)
        ar_hist_add(&a[0]->h[AR__H_LOSS], v);
    add_n(&a[0]->h[AR__H_RTT], 100, 50);
    add_n(&a[0]->h[AR__H_BR_IN], 1500, 10);
    add_n(&a[0]->h[AR__H_CALL], 300, 2);
    a[0]->browser[0] = 3, a[0]->browser[1] = 1;
    a[0]->cand[3] = 7;
    a[1] = agg(h_clinic_own, area, H(0, 10));
    a[1]->reports = 40, a[1]->calls = 2, a[1]->relayed_calls = 1, a[1]->ended_calls = 1;
    a[1]->call_seconds = 100, a[1]->wait_seconds = 30;
    for (uint32_t v = 10; v < 20; v++)
        ar_hist_add(&a[1]->h[AR__H_LOSS], v);
    add_n(&a[1]->h[AR__H_RTT], 200, 50);
    add_n(&a[1]->h[AR__H_CALL], 100, 1);
    a[1]->browser[0] = 2;
    a[2] = agg(h_clinic_own, "", H(0, 11));
    a[2]->reports = 1, a[2]->calls = 1;
    ar_hist_add(&a[2]->h[AR__H_LOSS], 30);
    a[3] = agg(h_clinic_own, area, H(1, 3));
    a[3]->reports = 9, a[3]->calls = 3, a[3]->relayed_calls = 3, a[3]->ended_calls = 3;
    a[3]->call_seconds = 180;
    add_n(&a[3]->h[AR__H_CALL], 60, 3);
    a[4] = agg(h_clinic_own, area, H(2, 0));
    a[4]->calls = 50;
    a[5] = agg(h_clinic_own, area, H(-1, 23));
    a[5]->calls = 70;
    a[6] = agg(h_clinic_other, "1", H(0, 9));
    a[6]->calls = 100;
    CHECK(ar__flush_write(c, a, 7) == 0);
    for (int i = 0; i < 7; i++)
        ar_free(a[i]);
    static const char ins[] = "INSERT INTO usage_hourly (clinic_id, area_id, hour, metric, value) "
                              "VALUES ($1, $2, $3, 'entries', $4)";
    sql(c, ins, (int64_t[]){h_clinic_own, area_id, H(0, 9), 5}, 4);
    sql(c, ins, (int64_t[]){h_clinic_own, area_id, H(0, 10), 2}, 4);
    sql(c, ins, (int64_t[]){h_clinic_own, area_id, H(3, 0), 40}, 4);
    ar_store_close(c);
}

/* ---- cases ---- */

#define JSON 0
#define CSV 1

static void test_by_day(void)
{
    int st;
    json_t *j = get(0, JSON, "from=2027-01-15&to=2027-01-16", &st, NULL);
    CHECK(st == 200 && j != NULL);
    CHECK(strcmp(json_string_value(json_object_get(j, "by")), "day") == 0);
    CHECK(strcmp(json_string_value(json_object_get(j, "from")), "2027-01-15") == 0);
    json_t *b = json_object_get(j, "buckets");
    CHECK(json_array_size(b) == 2);
    json_t *d0 = json_array_get(b, 0), *d1 = json_array_get(b, 1);
    CHECK(strcmp(json_string_value(json_object_get(d0, "start")), "2027-01-15") == 0);
    CHECK(num(d0, "calls") == 7 && num(d0, "relayed_calls") == 2 && num(d0, "ended_calls") == 3);
    CHECK(num(d0, "entries") == 7 && num(d0, "reports") == 101);
    CHECK(num(d0, "call_seconds") == 700 && num(d0, "mean_call_s") == 233); /* 700 / 3 */
    CHECK(num(d0, "wait_seconds") == 150 && num(d0, "mean_wait_s") == 21);  /* 150 / 7 */
    CHECK(num(d0, "relayed_permille") == 286);                              /* 2 / 7 */
    /* loss: 0..19 and 30, 21 samples; ranks ceil(10.5) = 11 and ceil(19.95) = 20. */
    CHECK(pct(d0, "loss_permille", "p50") == 10 && pct(d0, "loss_permille", "p95") == 19);
    CHECK(pct(d0, "loss_permille", "samples") == 21);
    /* rtt: 50 x 100 and 50 x 200: the bucket midpoints, within 1/32 of the samples. */
    int64_t r50 = pct(d0, "rtt_ms", "p50"), r95 = pct(d0, "rtt_ms", "p95");
    CHECK(r50 * 32 >= 100 * 31 && r50 * 32 <= 100 * 33);
    CHECK(r95 * 32 >= 200 * 31 && r95 * 32 <= 200 * 33);
    ar_hist_t ref = {0};
    add_n(&ref, 100, 50);
    add_n(&ref, 200, 50);
    CHECK(r50 == ar_hist_quantile(&ref, 0.5) && r95 == ar_hist_quantile(&ref, 0.95));
    int64_t b50 = pct(d0, "bitrate_in_kbps", "p50");
    CHECK(b50 * 32 >= 1500 * 31 && b50 * 32 <= 1500 * 33);
    CHECK(json_is_null(json_object_get(d0, "jitter_ms")));
    /* Day 1: only D. */
    CHECK(num(d1, "calls") == 3 && num(d1, "relayed_permille") == 1000 && num(d1, "entries") == 0);
    CHECK(num(d1, "mean_call_s") == 60 && num(d1, "mean_wait_s") == 0);
    int64_t c50 = pct(d1, "call_s", "p50");
    CHECK(c50 * 32 >= 60 * 31 && c50 * 32 <= 60 * 33);
    /* The total: days 0 and 1, nothing from the days around them or the other clinic. */
    json_t *t = json_object_get(j, "total");
    CHECK(num(t, "calls") == 10 && num(t, "relayed_calls") == 5 &&
          num(t, "relayed_permille") == 500);
    CHECK(num(t, "ended_calls") == 6 && num(t, "call_seconds") == 880 && num(t, "entries") == 7);
    CHECK(pct(t, "call_s", "samples") == 6);
    json_t *counts = json_object_get(j, "counts");
    char name[40];
    snprintf(name, sizeof(name), "browser.%s", ar_stats_browser_name(0));
    CHECK(num(counts, name) == 5);
    snprintf(name, sizeof(name), "browser.%s", ar_stats_browser_name(1));
    CHECK(num(counts, name) == 1);
    snprintf(name, sizeof(name), "candidate.%s", ar_stats_cand_name(3));
    CHECK(num(counts, name) == 7);
    json_decref(j);
    printf("ok reports by day: counts, means, relayed share, percentiles, range bounds\n");
}

static void test_by_hour(void)
{
    int st;
    json_t *j = get(1, JSON, "from=2027-01-15&to=2027-01-16&by=hour", &st, NULL);
    CHECK(st == 200 && j != NULL);
    json_t *b = json_object_get(j, "buckets");
    CHECK(json_array_size(b) == 48);
    CHECK(strcmp(json_string_value(json_object_get(json_array_get(b, 9), "start")),
                 "2027-01-15T09:00Z") == 0);
    CHECK(num(json_array_get(b, 9), "calls") == 4 && num(json_array_get(b, 9), "entries") == 5);
    CHECK(num(json_array_get(b, 10), "calls") == 2 && num(json_array_get(b, 10), "entries") == 2);
    CHECK(num(json_array_get(b, 11), "calls") == 1);
    CHECK(num(json_array_get(b, 27), "calls") == 3);
    int64_t sum = 0;
    for (size_t i = 0; i < 48; i++)
        sum += num(json_array_get(b, i), "calls");
    CHECK(sum == 10);
    /* Exact below 32: hour 9's loss is 0..9, ranks 5 and 10. */
    CHECK(pct(json_array_get(b, 9), "loss_permille", "p50") == 4);
    CHECK(pct(json_array_get(b, 9), "loss_permille", "p95") == 9);
    json_decref(j);
    printf("ok reports by hour\n");
}

static void test_area(void)
{
    int st;
    json_t *j = get(0, JSON, "from=2027-01-15&to=2027-01-15&area=north", &st, NULL);
    CHECK(st == 200 && j != NULL);
    CHECK(strcmp(json_string_value(json_object_get(j, "area_name")), AREA_NAME) == 0);
    json_t *d0 = json_array_get(json_object_get(j, "buckets"), 0);
    /* The staff call (no area) is left out: loss 0..19, ranks 10 and 19. */
    CHECK(num(d0, "calls") == 6 && num(d0, "entries") == 7);
    CHECK(pct(d0, "loss_permille", "p50") == 9 && pct(d0, "loss_permille", "p95") == 18);
    json_decref(j);
    j = get(0, JSON, "from=2027-01-15&to=2027-01-15&area=south", &st, NULL);
    CHECK(st == 404);
    json_decref(j);
    printf("ok reports per area\n");
}

/* The CSV's cells of one line (RFC 4180 quoting undone), at most 32. */
static int csv_split(const char *line, size_t len, char cells[][128])
{
    int n = 0;
    size_t i = 0;
    while (i <= len && n < 32) {
        size_t k = 0;
        if (i < len && line[i] == '"') {
            i++;
            while (i < len && !(line[i] == '"' && (i + 1 >= len || line[i + 1] != '"'))) {
                if (line[i] == '"')
                    i++;
                if (k < 127)
                    cells[n][k++] = line[i];
                i++;
            }
            i++;
        } else {
            while (i < len && line[i] != ',') {
                if (k < 127)
                    cells[n][k++] = line[i];
                i++;
            }
        }
        cells[n++][k] = '\0';
        i++;
    }
    return n;
}

static int col(char cells[][128], int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(cells[i], name) == 0)
            return i;
    fprintf(stderr, "csv: no column %s\n", name);
    exit(1);
}

static void test_csv(void)
{
    int st;
    resp_t r;
    json_t *j = get(1, CSV, "from=2027-01-15&to=2027-01-16&area=north", &st, &r);
    CHECK(st == 200 && j == NULL);
    char buf[300];
    CHECK(strcmp(h_header(&r, "content-type", buf, sizeof(buf)), "text/csv; charset=utf-8") == 0);
    CHECK(strcmp(h_header(&r, "cache-control", buf, sizeof(buf)), "no-store") == 0);
    char want[160];
    snprintf(want, sizeof(want),
             "attachment; filename=\"anteroom-report-%lld-2027-01-15-2027-01-16.csv\"",
             (long long)h_clinic_own);
    CHECK(strcmp(h_header(&r, "content-disposition", buf, sizeof(buf)), want) == 0);
    /* header, two days, total; CRLF line ends */
    static char cells[4][32][128];
    int n[4], lines = 0;
    const char *p = r.body;
    while (*p != '\0' && lines < 5) {
        const char *e = strstr(p, "\r\n");
        CHECK(e != NULL);
        if (lines < 4)
            n[lines] = csv_split(p, (size_t)(e - p), cells[lines]);
        lines++;
        p = e + 2;
    }
    CHECK(lines == 4);
    CHECK(n[0] == 30 && n[1] == 30 && n[2] == 30 && n[3] == 30);
    /* The formula-like area name is quoted (comma, quotes) and prefixed with an apostrophe. */
    CHECK(strstr(r.body, "\"'=HYPERLINK(\"\"http://x.test\"\",\"\"y\"\")\"") != NULL);
    CHECK(strcmp(cells[1][0], "'" AREA_NAME) == 0);
    CHECK(strcmp(cells[1][col(cells[0], n[0], "start")], "2027-01-15") == 0);
    CHECK(strcmp(cells[1][col(cells[0], n[0], "calls")], "6") == 0);
    CHECK(strcmp(cells[1][col(cells[0], n[0], "relayed_permille")], "333") == 0);
    CHECK(strcmp(cells[1][col(cells[0], n[0], "loss_permille_p50")], "9") == 0);
    CHECK(strcmp(cells[1][col(cells[0], n[0], "jitter_ms_p50")], "") == 0);
    CHECK(strcmp(cells[2][col(cells[0], n[0], "calls")], "3") == 0);
    CHECK(strcmp(cells[3][col(cells[0], n[0], "start")], "total") == 0);
    CHECK(strcmp(cells[3][col(cells[0], n[0], "calls")], "9") == 0);
    CHECK(strcmp(cells[3][col(cells[0], n[0], "entries")], "7") == 0);
    h_resp_free(&r);
    printf("ok reports as CSV: headers, quoting, formula prefix, figures\n");
}

static void test_refusals(void)
{
    static const struct {
        int who;
        const char *query;
        int status;
    } cases[] = {
        {0, "", 400},
        {0, "from=2027-01-15", 400},
        {0, "to=2027-01-15", 400},
        {0, "from=2027-01-16&to=2027-01-15", 400},
        {0, "from=2027-02-29&to=2027-03-01", 400},
        {0, "from=2028-02-29&to=2028-03-01", 200},
        {0, "from=2027-1-15&to=2027-01-16", 400},
        {0, "from=2027-01-15&to=2027-01-15&from=2027-01-14", 400},
        {0, "from=2027-01-15&to=2027-01-15&by=week", 400},
        {0, "from=2027-01-15&to=2027-01-15&who=me", 400},
        {0, "from=2027-01-15&to=2027-01-15&area=%27", 400},
        {0, "from=2027-01-15&to=2027-01-15&area=", 400},
        {0, "from=2026-01-01&to=2027-01-01", 200},
        {0, "from=2026-01-01&to=2027-01-02", 400},
        {0, "from=2027-01-01&to=2027-01-31&by=hour", 200},
        {0, "from=2027-01-01&to=2027-02-01&by=hour", 400},
        {0, "from=1999-12-31&to=2000-01-01", 400},
        {2, "from=2027-01-15&to=2027-01-16", 403},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int st;
        json_t *j = get(cases[i].who, JSON, cases[i].query, &st, NULL);
        if (st != cases[i].status) {
            fprintf(stderr, "reports?%s: got %d, want %d\n", cases[i].query, st, cases[i].status);
            exit(1);
        }
        if (st == 400)
            CHECK(strcmp(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
                         "bad_request") == 0);
        json_decref(j);
        j = get(cases[i].who, CSV, cases[i].query, &st, NULL);
        CHECK(st == cases[i].status);
        json_decref(j);
    }
    /* Another clinic's report: refused before anything is read. */
    char path[200];
    snprintf(path, sizeof(path), "/api/v1/clinics/%lld/reports?from=2027-01-15&to=2027-01-15",
             (long long)h_clinic_other);
    resp_t r;
    h_request(&(req_t){.method = "GET", .path = path, .cookie = cookie[0], .origin = h_origin}, &r);
    CHECK(r.status == 403);
    h_resp_free(&r);
    printf("ok reports refuse bad ranges, unknown parameters, other roles and clinics\n");
}

static int patch_clinic(int who, int64_t clinic, const char *body, int with_csrf, json_t **out)
{
    char path[100];
    snprintf(path, sizeof(path), "/api/v1/clinics/%lld", (long long)clinic);
    resp_t r;
    h_request(&(req_t){.method = "PATCH",
                       .path = path,
                       .cookie = cookie[who],
                       .csrf = with_csrf ? csrf[who] : NULL,
                       .origin = h_origin,
                       .body = body},
              &r);
    int st = r.status;
    if (out != NULL)
        *out = r.body_len ? json_loads(r.body, 0, NULL) : NULL;
    h_resp_free(&r);
    return st;
}

static void test_clinic_rename(void)
{
    static const char evil[] = "O'Brien \"Clinic\"; DROP TABLE clinics;--";
    json_t *j = NULL;
    json_t *b = json_pack("{s:s}", "name", evil);
    char *body = json_dumps(b, JSON_COMPACT);
    CHECK(patch_clinic(1, h_clinic_own, body, 1, &j) == 200);
    free(body);
    json_decref(b);
    CHECK(strcmp(json_string_value(json_object_get(j, "name")), evil) == 0);
    CHECK(strcmp(json_string_value(json_object_get(j, "jurisdiction")), "eu") == 0);
    json_decref(j);
    /* Read back through the clinic's GET, as another role of the clinic. */
    char path[100];
    snprintf(path, sizeof(path), "/api/v1/clinics/%lld", (long long)h_clinic_own);
    resp_t r;
    h_request(&(req_t){.method = "GET", .path = path, .cookie = cookie[0], .origin = h_origin}, &r);
    CHECK(r.status == 200 && strstr(r.body, "DROP TABLE clinics;--") != NULL);
    h_resp_free(&r);
    static const struct {
        int who, csrf;
        const char *body;
        int status;
    } cases[] = {
        {1, 1, "{\"name\": \"\"}", 400},
        {1, 1, "{\"name\": \"   \"}", 400},
        {1, 1, "{}", 400},
        {1, 1, "{\"name\": \"A\", \"jurisdiction\": \"us\"}", 400},
        {1, 1, "{\"name\": 7}", 400},
        {1, 1, "{\"name\": \"bell\\u0007\"}", 400},
        {1, 0, "{\"name\": \"No token\"}", 403},
        {0, 1, "{\"name\": \"Reporter\"}", 403},
        {2, 1, "{\"name\": \"Provider\"}", 403},
        {1, 1, "{\"name\": \"Own Clinic\"}", 200},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int st = patch_clinic(cases[i].who, h_clinic_own, cases[i].body, cases[i].csrf, NULL);
        if (st != cases[i].status) {
            fprintf(stderr, "PATCH clinic %s: got %d, want %d\n", cases[i].body, st,
                    cases[i].status);
            exit(1);
        }
    }
    CHECK(patch_clinic(1, h_clinic_other, "{\"name\": \"Mine now\"}", 1, NULL) == 403);
    printf("ok clinic rename: roles, CSRF, validation, stored as typed\n");
}

static void cases(void)
{
    static const char *const who[] = {"reporter@example.org", "clinic_admin@example.org",
                                      "provider@example.org"};
    for (int i = 0; i < 3; i++)
        CHECK(h_signin(who[i], h_password, cookie[i], sizeof(cookie[i]), csrf[i],
                       sizeof(csrf[i])) == 201);
    char path[200];
    snprintf(path, sizeof(path), "/api/v1/clinics/%lld/areas", (long long)h_clinic_own);
    json_t *body = json_pack("{s:s,s:s}", "slug", "north", "name", AREA_NAME);
    char *text = json_dumps(body, JSON_COMPACT);
    resp_t r;
    h_request(&(req_t){.method = "POST",
                       .path = path,
                       .cookie = cookie[1],
                       .csrf = csrf[1],
                       .origin = h_origin,
                       .body = text},
              &r);
    CHECK(r.status == 201);
    json_t *a = json_loads(r.body, 0, NULL);
    area_id = json_integer_value(json_object_get(a, "id"));
    CHECK(area_id > 0);
    json_decref(a);
    json_decref(body);
    free(text);
    h_resp_free(&r);
    seed();
    test_by_day();
    test_by_hour();
    test_area();
    test_csv();
    test_refusals();
    test_clinic_rename();
}

int main(int argc, char **argv)
{
    h_run(argc, argv, cases, NULL);
    printf("reports: all passed\n");
    return 0;
}
