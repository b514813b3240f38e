/*
 * Clinic reports (A4): what the monitor stored per clinic, waiting area and hour (monitor_hourly,
 * monitor_hourly_counts; docs/monitor.md) and the app's own entry counter (usage_hourly), read
 * back over a date range and summed per day or per hour. Only aggregates exist in those tables,
 * so a report cannot name anyone: it has counts, durations and percentiles.
 *
 * GET /api/v1/clinics/{clinic}/reports?from=YYYY-MM-DD&to=YYYY-MM-DD[&by=day|hour][&area=slug]
 * answers JSON; .../reports.csv the same figures as a CSV download. Days are UTC days, as the
 * stored hours are. The span is bounded (366 days per day, 31 days per hour), and the store is
 * read one day at a time, so a request holds at most one day's histograms besides the range's
 * total whatever the range.
 */
#include "hist.h"
#include "internal.h"
#include "reports.h"

#include "anteroom/alloc.h"
#include "anteroom/log.h"

#include <stdio.h>
#include <string.h>

#define SPAN_DAYS_BY_DAY 366
#define SPAN_DAYS_BY_HOUR 31
/* Rows of monitor_hourly one day of one clinic may hold: 24 hours x areas. More means a clinic
 * with over a thousand areas reporting in one day; refused rather than read in part. */
#define DAY_ROWS_MAX (24 * 1000)
#define COUNTS_MAX 64

/* The histograms in monitor_hourly's column order, with the names reports give them. */
enum { H_LOSS, H_RTT, H_JITTER, H_BR_IN, H_BR_OUT, H_FPS, H_HEIGHT, H_CALL, H_WAIT, H_N };
static const char *const hist_names[H_N] = {"loss_permille",   "rtt_ms",           "jitter_ms",
                                            "bitrate_in_kbps", "bitrate_out_kbps", "fps",
                                            "height_px",       "call_s",           "wait_s"};

typedef struct {
    int64_t entries, reports, calls, relayed, ended, call_s, wait_s;
    ar_hist_t h[H_N];
} bucket_t;

/* ---- dates: days since 1970-01-01 (H. Hinnant's civil-calendar arithmetic) ---- */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? (unsigned)-3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)((int64_t)yoe + era * 400 + (*m <= 2));
}

/* "YYYY-MM-DD", a real date of the years 2000 to 2199, into days since the epoch. */
static int parse_date(const char *s, size_t len, int64_t *out)
{
    if (len != 10 || s[4] != '-' || s[7] != '-')
        return -1;
    unsigned v[3] = {0, 0, 0};
    const size_t at[3] = {0, 5, 8}, n[3] = {4, 2, 2};
    for (int f = 0; f < 3; f++)
        for (size_t i = at[f]; i < at[f] + n[f]; i++) {
            if (s[i] < '0' || s[i] > '9')
                return -1;
            v[f] = v[f] * 10 + (unsigned)(s[i] - '0');
        }
    static const unsigned mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (v[0] < 2000 || v[0] > 2199 || v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > mdays[v[1] - 1])
        return -1;
    int leap = (v[0] % 4 == 0 && v[0] % 100 != 0) || v[0] % 400 == 0;
    if (v[1] == 2 && v[2] == 29 && !leap)
        return -1;
    *out = days_from_civil(v[0], v[1], v[2]);
    return 0;
}

/* "2026-11-28" for a day bucket, "2026-11-28T13:00Z" for an hour. */
static void format_start(int64_t hour, int by_hour, char *out, size_t cap)
{
    int y;
    unsigned m, d;
    civil_from_days(hour / 24, &y, &m, &d);
    if (by_hour)
        snprintf(out, cap, "%04d-%02u-%02uT%02u:00Z", y, m, d, (unsigned)(hour % 24));
    else
        snprintf(out, cap, "%04d-%02u-%02u", y, m, d);
}

/* ---- the query string ---- */

const char *ar__report_query_parse(const char *q, size_t qlen, ar__report_query_t *out)
{
    memset(out, 0, sizeof(*out));
    if (qlen > AR__REPORT_QUERY_MAX)
        return "the query string is too long";
    int64_t from = -1, to = -1;
    int by_hour = -1, have_area = 0;
    size_t i = 0;
    while (i < qlen) {
        size_t end = i;
        while (end < qlen && q[end] != '&')
            end++;
        const char *eq = memchr(q + i, '=', end - i);
        if (eq == NULL)
            return "write the query as from=YYYY-MM-DD&to=YYYY-MM-DD";
        size_t klen = (size_t)(eq - (q + i)), vlen = end - (size_t)(eq - q) - 1;
        const char *k = q + i, *v = eq + 1;
        if (vlen == 0 || !ar_app_charset_ok(AR_CS_SLUG, v, vlen))
            return "a query value is empty or holds characters other than a-z 0-9 -";
        if (klen == 4 && memcmp(k, "from", 4) == 0) {
            if (from >= 0 || parse_date(v, vlen, &from) < 0)
                return "from: one date, YYYY-MM-DD (UTC)";
        } else if (klen == 2 && memcmp(k, "to", 2) == 0) {
            if (to >= 0 || parse_date(v, vlen, &to) < 0)
                return "to: one date, YYYY-MM-DD (UTC)";
        } else if (klen == 2 && memcmp(k, "by", 2) == 0) {
            if (by_hour >= 0 || !((vlen == 3 && memcmp(v, "day", 3) == 0) ||
                                  (vlen == 4 && memcmp(v, "hour", 4) == 0)))
                return "by: day or hour";
            by_hour = vlen == 4;
        } else if (klen == 4 && memcmp(k, "area", 4) == 0) {
            if (have_area || vlen >= sizeof(out->area))
                return "area: one waiting area's slug";
            memcpy(out->area, v, vlen);
            out->area[vlen] = '\0';
            have_area = 1;
        } else {
            return "unknown query parameter (from, to, by, area)";
        }
        i = end + 1;
    }
    if (from < 0 || to < 0)
        return "from and to are required (YYYY-MM-DD, UTC days, both included)";
    if (to < from)
        return "to: on or after from";
    if (by_hour < 0)
        by_hour = 0;
    if (to - from + 1 > (by_hour ? SPAN_DAYS_BY_HOUR : SPAN_DAYS_BY_DAY))
        return by_hour ? "the range spans more than 31 days (by=hour)"
                       : "the range spans more than 366 days";
    out->from = from;
    out->to = to;
    out->by_hour = by_hour;
    return NULL;
}

/*
 * Parses the request's query into r->body (the route takes no JSON body, so the slot is free and
 * ar__req_free releases it): {"from": days, "to": days, "by_hour": bool, "area": slug}, for the
 * store job, which must not touch h2o's request.
 */
static const char *parse_query(ar__req_t *r)
{
    const h2o_req_t *req = r->req;
    const char *q = "";
    size_t qlen = 0;
    if (req->query_at != SIZE_MAX && req->query_at < req->path.len) {
        q = req->path.base + req->query_at + 1;
        qlen = req->path.len - req->query_at - 1;
    }
    ar__report_query_t p;
    const char *bad = ar__report_query_parse(q, qlen, &p);
    if (bad != NULL)
        return bad;
    r->body = json_pack("{s:I,s:I,s:b,s:s}", "from", (json_int_t)p.from, "to", (json_int_t)p.to,
                        "by_hour", p.by_hour, "area", p.area);
    return r->body == NULL ? "the server is out of memory" : NULL;
}

/* ---- reading the store (a job, on a worker thread) ---- */

static const char entries_sql[] =
    "SELECT hour, sum(value) FROM usage_hourly WHERE clinic_id = $1 AND metric = 'entries' "
    "AND hour >= $2 AND hour < $3 GROUP BY hour ORDER BY hour LIMIT 24";
static const char entries_area_sql[] =
    "SELECT hour, sum(value) FROM usage_hourly WHERE clinic_id = $1 AND metric = 'entries' "
    "AND hour >= $2 AND hour < $3 AND area_id = $4 GROUP BY hour ORDER BY hour LIMIT 24";
#define MON_COLS                                                                                   \
    "SELECT hour, reports, calls, relayed_calls, ended_calls, call_seconds, wait_seconds, "        \
    "hist_loss, hist_rtt, hist_jitter, hist_bitrate_in, hist_bitrate_out, hist_fps, hist_height, " \
    "hist_call, hist_wait FROM monitor_hourly WHERE clinic = $1 AND hour >= $2 AND hour < $3"
static const char mon_sql[] = MON_COLS " ORDER BY hour LIMIT 24001";
static const char mon_area_sql[] = MON_COLS " AND area = $4 ORDER BY hour LIMIT 24001";
static const char counts_sql[] =
    "SELECT name, sum(value) FROM monitor_hourly_counts WHERE clinic = $1 AND hour >= $2 "
    "AND hour < $3 GROUP BY name ORDER BY name LIMIT 64";
static const char counts_area_sql[] =
    "SELECT name, sum(value) FROM monitor_hourly_counts WHERE clinic = $1 AND hour >= $2 "
    "AND hour < $3 AND area = $4 GROUP BY name ORDER BY name LIMIT 64";

typedef struct {
    ar__req_t *r;
    int64_t area_id; /* 0: every area (and staff calls, which wait in none) */
    char clinic_text[24], area_text[24];
    ar_store_stmt_t *entries, *mon, *counts;
    bucket_t *day; /* 24 buckets when by hour, one when by day */
    bucket_t *total;
    ar_hist_t *scratch;
} job_t;

/* Binds $1 (the clinic, as an id or as the text the monitor keys rows by), the hour range and
 * the area when one was asked for. */
static int bind_range(job_t *j, ar_store_stmt_t *st, int text_keys, int64_t h0, int64_t h1)
{
    ar_store_reset(st);
    int rc = text_keys ? ar_store_bind_text(st, 1, j->clinic_text, strlen(j->clinic_text))
                       : ar_store_bind_int64(st, 1, j->r->clinic_id);
    rc = rc ? rc : ar_store_bind_int64(st, 2, h0);
    rc = rc ? rc : ar_store_bind_int64(st, 3, h1);
    if (rc == 0 && j->area_id != 0)
        rc = text_keys ? ar_store_bind_text(st, 4, j->area_text, strlen(j->area_text))
                       : ar_store_bind_int64(st, 4, j->area_id);
    return rc;
}

static void bucket_add(bucket_t *a, const bucket_t *b)
{
    a->entries += b->entries;
    a->reports += b->reports;
    a->calls += b->calls;
    a->relayed += b->relayed;
    a->ended += b->ended;
    a->call_s += b->call_s;
    a->wait_s += b->wait_s;
    for (int i = 0; i < H_N; i++)
        ar_hist_merge(&a->h[i], &b->h[i]);
}

/* Reads one UTC day (hours h0 .. h0 + 23) into j->day. */
static int read_day(job_t *j, int64_t h0, int by_hour)
{
    size_t nb = by_hour ? 24 : 1;
    memset(j->day, 0, nb * sizeof(bucket_t));
    int rc = bind_range(j, j->entries, 0, h0, h0 + 24);
    while (rc == 0 && (rc = ar_store_step(j->entries)) == AR_STORE_ROW) {
        int64_t h = ar_store_col_int64(j->entries, 0) - h0;
        if (h >= 0 && h < 24)
            j->day[by_hour ? h : 0].entries += ar_store_col_int64(j->entries, 1);
        rc = 0;
    }
    if (rc < 0)
        return rc;
    rc = bind_range(j, j->mon, 1, h0, h0 + 24);
    int rows = 0;
    while (rc == 0 && (rc = ar_store_step(j->mon)) == AR_STORE_ROW) {
        rc = 0;
        if (++rows > DAY_ROWS_MAX)
            return AR_ETOOBIG;
        int64_t h = ar_store_col_int64(j->mon, 0) - h0;
        if (h < 0 || h >= 24)
            continue;
        bucket_t *b = &j->day[by_hour ? h : 0];
        b->reports += ar_store_col_int64(j->mon, 1);
        b->calls += ar_store_col_int64(j->mon, 2);
        b->relayed += ar_store_col_int64(j->mon, 3);
        b->ended += ar_store_col_int64(j->mon, 4);
        b->call_s += ar_store_col_int64(j->mon, 5);
        b->wait_s += ar_store_col_int64(j->mon, 6);
        for (int i = 0; i < H_N && rc == 0; i++) {
            size_t len = 0;
            const void *p = ar_store_col_blob(j->mon, 7 + i, &len);
            /* A blob the monitor wrote always decodes; one that does not is a damaged row, and
             * a report that silently skipped it would be wrong. */
            rc = ar_hist_decode(p, len, j->scratch);
            if (rc == 0)
                ar_hist_merge(&b->h[i], j->scratch);
        }
    }
    return rc < 0 ? rc : 0;
}

static json_t *ratio_or_null(int64_t num, int64_t den, int64_t scale)
{
    return den > 0 ? json_integer((num * scale + den / 2) / den) : json_null();
}

static json_t *bucket_json(const bucket_t *b, const char *start)
{
    json_t *o = json_pack(
        "{s:s,s:I,s:I,s:I,s:I,s:I,s:o,s:I,s:o,s:I,s:o}", "start", start, "entries",
        (json_int_t)b->entries, "reports", (json_int_t)b->reports, "calls", (json_int_t)b->calls,
        "ended_calls", (json_int_t)b->ended, "call_seconds", (json_int_t)b->call_s, "mean_call_s",
        ratio_or_null(b->call_s, b->ended, 1), "wait_seconds", (json_int_t)b->wait_s, "mean_wait_s",
        ratio_or_null(b->wait_s, b->calls, 1), "relayed_calls", (json_int_t)b->relayed,
        "relayed_permille", ratio_or_null(b->relayed, b->calls, 1000));
    for (int i = 0; o != NULL && i < H_N; i++) {
        const ar_hist_t *h = &b->h[i];
        json_t *v =
            h->count == 0
                ? json_null()
                : json_pack("{s:I,s:I,s:I}", "p50", (json_int_t)ar_hist_quantile(h, 0.5), "p95",
                            (json_int_t)ar_hist_quantile(h, 0.95), "samples", (json_int_t)h->count);
        if (v == NULL || json_object_set_new(o, hist_names[i], v) < 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

/* The area asked for, by slug in the path's clinic: its id, and its name for the answer. */
static int find_area(ar_store_conn_t *c, job_t *j, const char *slug, json_t *out)
{
    ar_store_stmt_t *st;
    int rc =
        ar__prep(c, "SELECT id, name FROM waiting_areas WHERE clinic_id = $1 AND slug = $2", &st);
    if (rc < 0)
        return rc;
    rc = ar_store_bind_int64(st, 1, j->r->clinic_id);
    rc = rc ? rc : ar_store_bind_text(st, 2, slug, strlen(slug));
    if (rc == 0 && (rc = ar_store_step(st)) == AR_STORE_ROW) {
        j->area_id = ar_store_col_int64(st, 0);
        rc = json_object_set_new(out, "area_name", json_string(ar_store_col_text(st, 1, NULL)));
        rc = rc < 0 ? AR_ENOMEM : AR_STORE_ROW;
    }
    ar_store_finalize(st);
    return rc < 0 ? rc : rc == AR_STORE_ROW ? 0 : AR_ENOTFOUND;
}

static int read_counts(job_t *j, int64_t h0, int64_t h1, json_t *out)
{
    int rc = bind_range(j, j->counts, 1, h0, h1);
    while (rc == 0 && (rc = ar_store_step(j->counts)) == AR_STORE_ROW) {
        json_t *v = json_integer(ar_store_col_int64(j->counts, 1));
        rc =
            json_object_set_new(out, ar_store_col_text(j->counts, 0, NULL), v) == 0 ? 0 : AR_ENOMEM;
    }
    return rc < 0 ? rc : 0;
}

static int report(ar_store_conn_t *c, job_t *j)
{
    ar__req_t *r = j->r;
    int64_t from = json_integer_value(json_object_get(r->body, "from"));
    int64_t to = json_integer_value(json_object_get(r->body, "to"));
    int by_hour = json_is_true(json_object_get(r->body, "by_hour"));
    const char *slug = json_string_value(json_object_get(r->body, "area"));
    char d0[32], d1[32];
    format_start(from * 24, 0, d0, sizeof(d0));
    format_start(to * 24, 0, d1, sizeof(d1));
    r->out =
        json_pack("{s:I,s:s,s:s,s:s,s:s,s:n,s:s?,s:[],s:{}}", "clinic", (json_int_t)r->clinic_id,
                  "from", d0, "to", d1, "by", by_hour ? "hour" : "day", "time_zone", "UTC",
                  "area_name", "area", slug[0] ? slug : NULL, "buckets", "counts");
    if (r->out == NULL)
        return AR_ENOMEM;
    snprintf(j->clinic_text, sizeof(j->clinic_text), "%lld", (long long)r->clinic_id);
    int rc = slug[0] ? find_area(c, j, slug, r->out) : 0;
    snprintf(j->area_text, sizeof(j->area_text), "%lld", (long long)j->area_id);
    int area = j->area_id != 0;
    rc = rc ? rc : ar__prep(c, area ? entries_area_sql : entries_sql, &j->entries);
    rc = rc ? rc : ar__prep(c, area ? mon_area_sql : mon_sql, &j->mon);
    rc = rc ? rc : ar__prep(c, area ? counts_area_sql : counts_sql, &j->counts);
    json_t *list = json_object_get(r->out, "buckets");
    for (int64_t day = from; rc == 0 && day <= to; day++) {
        rc = read_day(j, day * 24, by_hour);
        for (int i = 0; rc == 0 && i < (by_hour ? 24 : 1); i++) {
            char start[32];
            format_start(day * 24 + i, by_hour, start, sizeof(start));
            json_t *b = bucket_json(&j->day[i], start);
            rc = b != NULL && json_array_append_new(list, b) == 0 ? 0 : AR_ENOMEM;
            bucket_add(j->total, &j->day[i]);
        }
    }
    rc = rc ? rc : read_counts(j, from * 24, (to + 1) * 24, json_object_get(r->out, "counts"));
    if (rc == 0) {
        json_t *t = bucket_json(j->total, d0);
        rc = t != NULL && json_object_set_new(r->out, "total", t) == 0 ? 0 : AR_ENOMEM;
    }
    return rc;
}

static int report_job(ar_store_conn_t *c, void *arg)
{
    job_t j = {.r = arg};
    int by_hour = json_is_true(json_object_get(j.r->body, "by_hour"));
    j.day = ar_calloc(by_hour ? 24 : 1, sizeof(bucket_t));
    j.total = ar_calloc(1, sizeof(bucket_t));
    j.scratch = ar_malloc(sizeof(ar_hist_t));
    int rc = j.day && j.total && j.scratch ? report(c, &j) : AR_ENOMEM;
    ar_store_finalize(j.entries);
    ar_store_finalize(j.mon);
    ar_store_finalize(j.counts);
    ar_free(j.day);
    ar_free(j.total);
    ar_free(j.scratch);
    return rc;
}

/* ---- CSV ---- */

/* reports.h says what a cell becomes. The check below is for the worst case: every byte a
 * doubled quote, plus two quotes, an apostrophe, a comma and the NUL. */
int ar__csv_cell(char *buf, size_t cap, size_t *len, const char *s, int first)
{
    size_t n = *len;
    int quote = strpbrk(s, ",\"\r\n") != NULL;
    int formula = s[0] != '\0' && strchr("=+-@\t\r", s[0]) != NULL;
    if (n + strlen(s) * 2 + 5 >= cap)
        return -1;
    if (!first)
        buf[n++] = ',';
    if (quote)
        buf[n++] = '"';
    if (formula)
        buf[n++] = '\'';
    for (const char *p = s; *p != '\0'; p++) {
        if (*p == '"')
            buf[n++] = '"';
        buf[n++] = *p;
    }
    if (quote)
        buf[n++] = '"';
    buf[n] = '\0';
    *len = n;
    return 0;
}

static const char *const csv_counts[] = {
    "entries",     "reports",      "calls",       "ended_calls",   "call_seconds",
    "mean_call_s", "wait_seconds", "mean_wait_s", "relayed_calls", "relayed_permille"};
#define CSV_NCOUNTS (sizeof(csv_counts) / sizeof(csv_counts[0]))

/* One row: the header when b is NULL, else bucket b's figures (an empty cell for a null). */
static int csv_row(char *buf, size_t cap, size_t *len, const char *area, json_t *b)
{
    char cell[96];
    int rc = ar__csv_cell(buf, cap, len, b ? area : "area", 1);
    if (rc == 0)
        rc = ar__csv_cell(buf, cap, len,
                          b ? json_string_value(json_object_get(b, "start")) : "start", 0);
    for (size_t i = 0; rc == 0 && i < CSV_NCOUNTS; i++) {
        json_t *v = json_object_get(b, csv_counts[i]);
        if (b == NULL)
            snprintf(cell, sizeof(cell), "%s", csv_counts[i]);
        else if (json_is_integer(v))
            snprintf(cell, sizeof(cell), "%lld", (long long)json_integer_value(v));
        else
            cell[0] = '\0';
        rc = ar__csv_cell(buf, cap, len, cell, 0);
    }
    for (int i = 0; rc == 0 && i < H_N; i++) {
        json_t *h = json_object_get(b, hist_names[i]);
        for (int q = 0; rc == 0 && q < 2; q++) {
            const char *qn = q ? "p95" : "p50";
            if (b == NULL)
                snprintf(cell, sizeof(cell), "%s_%s", hist_names[i], qn);
            else if (json_is_object(h))
                snprintf(cell, sizeof(cell), "%lld",
                         (long long)json_integer_value(json_object_get(h, qn)));
            else
                cell[0] = '\0';
            rc = ar__csv_cell(buf, cap, len, cell, 0);
        }
    }
    if (rc != 0 || *len + 3 >= cap)
        return -1;
    buf[(*len)++] = '\r';
    buf[(*len)++] = '\n';
    buf[*len] = '\0';
    return 0;
}

/* A row per bucket and a "total" row; the area column holds the area's name or "all areas". */
static char *csv_build(json_t *out, size_t *lenp)
{
    json_t *list = json_object_get(out, "buckets");
    size_t cap = (json_array_size(list) + 2) * 2048, len = 0;
    char *buf = ar_malloc(cap);
    if (buf == NULL)
        return NULL;
    const char *area = json_string_value(json_object_get(out, "area_name"));
    if (area == NULL)
        area = "all areas";
    int rc = csv_row(buf, cap, &len, area, NULL);
    size_t i;
    json_t *b;
    json_array_foreach(list, i, b)
    {
        if (rc == 0)
            rc = csv_row(buf, cap, &len, area, b);
    }
    json_t *t = json_copy(json_object_get(out, "total"));
    rc = rc || t == NULL ? -1 : json_object_set_new(t, "start", json_string("total"));
    if (rc == 0)
        rc = csv_row(buf, cap, &len, area, t);
    json_decref(t);
    if (rc != 0) {
        ar_free(buf);
        return NULL;
    }
    *lenp = len;
    return buf;
}

/* ---- the handlers ---- */

static void report_done(int status, void *arg, int csv)
{
    ar__req_t *r = arg;
    if (status == AR_ENOTFOUND) {
        ar__reply_error(r, 404, "not_found", "area: no such waiting area in this clinic");
        return;
    }
    if (status == AR_ETOOBIG) {
        ar__reply_error(r, 503, "unavailable", "too many rows for one day; ask per area");
        return;
    }
    if (status < 0) {
        ar__store_failed(r, status);
        return;
    }
    if (!csv) {
        ar__reply_out(r, 200);
        return;
    }
    size_t len = 0;
    char *text = csv_build(r->out, &len);
    if (text == NULL) {
        ar__reply_error(r, 503, "unavailable", "the server is out of memory");
        return;
    }
    if (r->req != NULL) {
        char disp[128];
        int n =
            snprintf(disp, sizeof(disp), "attachment; filename=\"anteroom-report-%lld-%s-%s.csv\"",
                     (long long)r->clinic_id, json_string_value(json_object_get(r->out, "from")),
                     json_string_value(json_object_get(r->out, "to")));
        h2o_req_t *req = r->req;
        req->res.status = 200;
        req->res.reason = "OK";
        req->res.content_length = len;
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                       H2O_STRLIT("text/csv; charset=utf-8"));
        ar__add_header(r, "content-disposition", disp, (size_t)n);
        /* Figures of a clinic: never kept by a browser or a proxy (server.c adds no-store to
         * every answer without a Cache-Control; say it here too, where it matters most). */
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                       H2O_STRLIT("no-store"));
        h2o_send_inline(req, text, len);
    }
    ar_free(text);
    ar__req_free(r);
}

static void json_done(int status, void *arg)
{
    report_done(status, arg, 0);
}

static void csv_done(int status, void *arg)
{
    report_done(status, arg, 1);
}

static void handle(ar__req_t *r, ar_store_done_cb done)
{
    const char *bad = parse_query(r);
    if (bad != NULL) {
        ar__reply_error(r, 400, "bad_request", bad);
        return;
    }
    (void)ar__submit(r, report_job, done);
}

void ar__h_report(ar__req_t *r)
{
    handle(r, json_done);
}

void ar__h_report_csv(ar__req_t *r)
{
    handle(r, csv_done);
}
