/*
 * Request handling on the public listener. Every answer has an empty body: a browser that sends
 * a report can never read anything back (S7), and a refusal cannot leak what was wrong with the
 * token or the body. The reason is counted instead, on the operator listener.
 *
 * The order is cheapest first: path and method, Origin, media type, the schema (size, JSON,
 * address scan, fields), the rate limit of a token already known (before the signature check,
 * which costs most), the signature and claims, and only then the aggregates.
 */
#include "internal.h"

#include "anteroom/log.h"

#include <string.h>
#include <strings.h>
#include <time.h>

static const char *const refusal_names[AR__REF_N] = {
    [AR__REF_TOO_LARGE] = "too_large", [AR__REF_MALFORMED] = "malformed",
    [AR__REF_ADDRESS] = "address",     [AR__REF_UNKNOWN] = "unknown_field",
    [AR__REF_INVALID] = "invalid",     [AR__REF_VERSION] = "version",
    [AR__REF_METHOD] = "method",       [AR__REF_PATH] = "path",
    [AR__REF_ORIGIN] = "origin",       [AR__REF_MEDIA_TYPE] = "media_type",
    [AR__REF_TOKEN] = "token",         [AR__REF_RATE] = "rate_limited",
    [AR__REF_FULL] = "overloaded",
};

static const int refusal_status[AR__REF_N] = {
    [AR__REF_TOO_LARGE] = 413,  [AR__REF_MALFORMED] = 400, [AR__REF_ADDRESS] = 400,
    [AR__REF_UNKNOWN] = 400,    [AR__REF_INVALID] = 400,   [AR__REF_VERSION] = 400,
    [AR__REF_METHOD] = 405,     [AR__REF_PATH] = 404,      [AR__REF_ORIGIN] = 403,
    [AR__REF_MEDIA_TYPE] = 415, [AR__REF_TOKEN] = 401,     [AR__REF_RATE] = 429,
    [AR__REF_FULL] = 503,
};

int ar__metrics_register(ar_metrics_t *reg, ar__metrics_t *m)
{
    memset(m, 0, sizeof(*m));
    m->accepted = ar_metrics_counter(reg, "anteroom_monitor_reports_accepted_total",
                                     "Reports accepted into the aggregates", NULL);
    m->preflights = ar_metrics_counter(reg, "anteroom_monitor_preflights_total",
                                       "CORS preflight requests answered", NULL);
    int ok = m->accepted != NULL && m->preflights != NULL;
    for (int i = 1; i < AR__REF_N && ok; i++) {
        char labels[48];
        snprintf(labels, sizeof(labels), "reason=\"%s\"", refusal_names[i]);
        m->refused[i] = ar_metrics_counter(reg, "anteroom_monitor_requests_refused_total",
                                           "Requests refused, by reason", labels);
        ok = m->refused[i] != NULL;
    }
    static const double us_bounds[] = {10, 25, 50, 100, 250, 500, 1000, 5000};
    m->flushes = ar_metrics_counter(reg, "anteroom_monitor_flushes_total",
                                    "Aggregate flushes written to the store", NULL);
    m->flush_failures = ar_metrics_counter(reg, "anteroom_monitor_flush_failures_total",
                                           "Aggregate flushes the store refused (retried)", NULL);
    m->flushed_rows = ar_metrics_counter(reg, "anteroom_monitor_flushed_rows_total",
                                         "Clinic-area-hour rows written", NULL);
    m->dropped =
        ar_metrics_counter(reg, "anteroom_monitor_reports_dropped_total",
                           "Accepted reports lost because a failed flush did not fit back", NULL);
    m->agg_entries =
        ar_metrics_gauge(reg, "anteroom_monitor_aggregate_entries",
                         "Clinic-area-hours held in memory until the next flush", NULL);
    m->rl_entries = ar_metrics_gauge(reg, "anteroom_monitor_ratelimit_entries",
                                     "Tokens tracked by the rate limiter", NULL);
    m->report_us = ar_metrics_histogram(reg, "anteroom_monitor_report_microseconds",
                                        "Time to check and aggregate one report", NULL, us_bounds,
                                        sizeof(us_bounds) / sizeof(us_bounds[0]));
    ok = ok && m->flushes && m->flush_failures && m->flushed_rows && m->dropped && m->agg_entries &&
         m->rl_entries && m->report_us;
    return ok ? 0 : AR_ENOMEM;
}

static void reply(h2o_req_t *req, int status)
{
    req->res.status = status;
    req->res.reason = status == 204 ? "No Content" : "Error";
    req->res.content_length = 0;
    h2o_send_inline(req, "", 0);
}

static int refuse(ar_monitor_t *m, h2o_req_t *req, ar__refusal_t why)
{
    ar_metric_add(m->met.refused[why], 0, 1);
    if (why == AR__REF_METHOD)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL,
                       H2O_STRLIT("POST, OPTIONS"));
    reply(req, refusal_status[why]);
    return 0;
}

static const h2o_iovec_t *header(h2o_req_t *req, const h2o_token_t *tok)
{
    ssize_t i = h2o_find_header(&req->headers, tok, -1);
    return i == -1 ? NULL : &req->headers.entries[i].value;
}

/* Debian's h2o 2.2 has no token for Origin. */
static const h2o_iovec_t *origin_header(h2o_req_t *req)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("origin"), -1);
    return i == -1 ? NULL : &req->headers.entries[i].value;
}

/* An Origin header, when present, must be the deployment's: a page of another site must not be
 * able to feed the aggregates even with a token it somehow holds. Requests without one (tools,
 * the benchmark) rely on the token alone. */
static int origin_ok(ar_monitor_t *m, h2o_req_t *req)
{
    const h2o_iovec_t *o = origin_header(req);
    return o == NULL || h2o_memis(o->base, o->len, m->origin, strlen(m->origin));
}

/*
 * The preflight a browser sends before a cross-origin POST with Content-Type application/json.
 * It is the one response that carries Access-Control-Allow-Origin: the preflight must grant the
 * POST for the browser to send it. The POST's own response carries none, so the browser hands
 * the page an opaque or failed response and nothing is readable. No Allow-Credentials: reports
 * need no cookies.
 */
static int preflight(ar_monitor_t *m, h2o_req_t *req)
{
    const h2o_iovec_t *o = origin_header(req);
    ssize_t i =
        h2o_find_header_by_str(&req->headers, H2O_STRLIT("access-control-request-method"), -1);
    const h2o_iovec_t *rm = i == -1 ? NULL : &req->headers.entries[i].value;
    if (o == NULL || !origin_ok(m, req) || rm == NULL ||
        !h2o_memis(rm->base, rm->len, H2O_STRLIT("POST")))
        return refuse(m, req, AR__REF_ORIGIN);
    ar_metric_add(m->met.preflights, 0, 1);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ACCESS_CONTROL_ALLOW_ORIGIN, NULL,
                   m->origin, strlen(m->origin));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-allow-methods"),
                          0, NULL, H2O_STRLIT("POST"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-allow-headers"),
                          0, NULL, H2O_STRLIT("content-type"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-max-age"), 0,
                          NULL, H2O_STRLIT("600"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_VARY, NULL, H2O_STRLIT("Origin"));
    reply(req, 204);
    return 0;
}

/* application/json, or text/plain: what navigator.sendBeacon and fetch(mode: "no-cors") send
 * for a string body without a preflight. Parameters (";charset=UTF-8") are ignored. */
static int media_type_ok(h2o_req_t *req)
{
    const h2o_iovec_t *ct = header(req, H2O_TOKEN_CONTENT_TYPE);
    if (ct == NULL)
        return 0;
    size_t n = 0;
    while (n < ct->len && ct->base[n] != ';' && ct->base[n] != ' ')
        n++;
    return (n == 16 && strncasecmp(ct->base, "application/json", 16) == 0) ||
           (n == 10 && strncasecmp(ct->base, "text/plain", 10) == 0);
}

/*
 * The clinic and area a report is counted under. Patient tokens name both; invitee tokens may
 * name a clinic; a staff token counts under its clinic when it holds roles in exactly one.
 * Anything else cannot be attributed and is refused as a token problem.
 */
static int attribute(const ar_token_claims_t *c, const char **clinic, const char **area)
{
    *area = c->area;
    if (c->clinic[0] != '\0') {
        *clinic = c->clinic;
        return 0;
    }
    if (c->role == AR_TOKEN_STAFF && c->nclinics == 1) {
        *clinic = c->clinics[0].id;
        return 0;
    }
    return -1;
}

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int post(ar_monitor_t *m, h2o_req_t *req)
{
    uint64_t t0 = mono_us();
    if (!origin_ok(m, req))
        return refuse(m, req, AR__REF_ORIGIN);
    if (!media_type_ok(req))
        return refuse(m, req, AR__REF_MEDIA_TYPE);
    ar_stats_report_t r;
    const char *body = req->entity.base != NULL ? req->entity.base : "";
    ar_stats_reason_t why = ar_stats_parse(body, req->entity.len, m->opts.max_body, &r);
    if (why != AR_STATS_OK)
        return refuse(m, req, (ar__refusal_t)why);
    int64_t now_ms = (int64_t)uv_now(m->loop);
    int64_t now = ar__mon_now(m);
    ar__rl_key_t key = ar__rl_key(&m->rl, r.token, r.token_len);
    ar__rl_entry_t *e = ar__rl_find(&m->rl, key);
    if (e != NULL && ar__rl_exhausted(&m->rl, e, now_ms))
        return refuse(m, req, AR__REF_RATE);
    /* A token seen before was verified then; only its expiry needs checking again. */
    ar_token_claims_t claims;
    claims.exp = 0;
    const char *clinic, *area;
    if (e != NULL && e->exp > now) {
        clinic = e->clinic;
        area = e->area;
    } else if (ar_token_verify(&m->keys, r.token, r.token_len, "monitor", now, &claims) != 0 ||
               attribute(&claims, &clinic, &area) != 0) {
        return refuse(m, req, AR__REF_TOKEN);
    }
    ar__agg_t *a = ar__agg_get(&m->agg, clinic, area, now / 3600);
    if (a == NULL)
        return refuse(m, req, AR__REF_FULL);
    int fresh;
    size_t before = m->rl.used;
    e = ar__rl_take(&m->rl, key, now_ms, &fresh);
    if (e == NULL)
        return refuse(m, req, AR__REF_RATE);
    if (fresh) {
        e->exp = claims.exp;
        memcpy(e->clinic, a->clinic, sizeof(e->clinic));
        memcpy(e->area, a->area, sizeof(e->area));
    }
    if (m->rl.used != before)
        ar_metric_set(m->met.rl_entries, (int64_t)m->rl.used);
    int relayed = r.cand == AR_STATS_CAND_RELAY ||
                  ((r.present & AR_STATS_HAS_REMOTE_CAND) && r.remote_cand == AR_STATS_CAND_RELAY);
    int relayed_first = relayed && !(e->flags & AR__RL_RELAYED);
    /* A participant who reloads keeps their token and sends reports again: only the first final
     * report after any non-final one carries a duration. */
    int count_final = r.final && !(e->flags & AR__RL_FINAL);
    if (relayed)
        e->flags |= AR__RL_RELAYED;
    e->flags = r.final ? e->flags | AR__RL_FINAL : e->flags & ~(uint32_t)AR__RL_FINAL;
    ar__agg_report(a, &r, fresh, relayed_first, count_final);
    ar_metric_set(m->met.agg_entries, (int64_t)m->agg.used);
    ar_metric_add(m->met.accepted, 0, 1);
    ar_metric_observe(m->met.report_us, 0, (double)(mono_us() - t0));
    reply(req, 204);
    return 0;
}

int ar__ingest(ar_monitor_t *m, h2o_req_t *req)
{
    if (!h2o_memis(req->path_normalized.base, req->path_normalized.len, H2O_STRLIT("/v1/stats")))
        return refuse(m, req, AR__REF_PATH);
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST")))
        return post(m, req);
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("OPTIONS")))
        return preflight(m, req);
    return refuse(m, req, AR__REF_METHOD);
}
