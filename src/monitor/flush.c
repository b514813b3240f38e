/*
 * Flushing aggregates to the store. The table is emptied into a batch on the loop thread; one
 * store job writes the batch in one transaction on a worker thread. Counters are added with an
 * upsert; histograms are merged in the job: the upsert first takes the row's lock (PostgreSQL's
 * row lock, SQLite's write lock), then the stored histograms are read, merged and written back,
 * so two monitors flushing the same hour never lose each other's counts. A failed batch is
 * merged back into the table and tried again at the next flush.
 */
#include "internal.h"

#include "anteroom/alloc.h"
#include "anteroom/log.h"

#include <stdio.h>
#include <string.h>

static const char upsert_sql[] =
    "INSERT INTO monitor_hourly (clinic, area, hour, reports, calls, relayed_calls, ended_calls, "
    "call_seconds, wait_seconds) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
    "ON CONFLICT (clinic, area, hour) DO UPDATE SET "
    "reports = monitor_hourly.reports + excluded.reports, "
    "calls = monitor_hourly.calls + excluded.calls, "
    "relayed_calls = monitor_hourly.relayed_calls + excluded.relayed_calls, "
    "ended_calls = monitor_hourly.ended_calls + excluded.ended_calls, "
    "call_seconds = monitor_hourly.call_seconds + excluded.call_seconds, "
    "wait_seconds = monitor_hourly.wait_seconds + excluded.wait_seconds";
static const char select_sql[] =
    "SELECT hist_loss, hist_rtt, hist_jitter, hist_bitrate_in, hist_bitrate_out, hist_fps, "
    "hist_height, hist_call, hist_wait FROM monitor_hourly "
    "WHERE clinic = $1 AND area = $2 AND hour = $3";
static const char update_sql[] =
    "UPDATE monitor_hourly SET hist_loss = $4, hist_rtt = $5, hist_jitter = $6, "
    "hist_bitrate_in = $7, hist_bitrate_out = $8, hist_fps = $9, hist_height = $10, "
    "hist_call = $11, hist_wait = $12 WHERE clinic = $1 AND area = $2 AND hour = $3";
static const char count_sql[] =
    "INSERT INTO monitor_hourly_counts (clinic, area, hour, name, value) "
    "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (clinic, area, hour, name) DO UPDATE SET "
    "value = monitor_hourly_counts.value + excluded.value";

typedef struct {
    ar_store_stmt_t *upsert, *select, *update, *count;
} stmts_t;

static int bind_key(ar_store_stmt_t *st, const ar__agg_t *a)
{
    int rc = ar_store_bind_text(st, 1, a->clinic, strlen(a->clinic));
    if (rc == 0)
        rc = ar_store_bind_text(st, 2, a->area, strlen(a->area));
    if (rc == 0)
        rc = ar_store_bind_int64(st, 3, a->hour);
    return rc;
}

static int run(ar_store_stmt_t *st)
{
    int rc = ar_store_step(st);
    ar_store_reset(st);
    return rc < 0 ? rc : 0;
}

static int write_counts(ar_store_stmt_t *st, const ar__agg_t *a)
{
    static const char *const groups[] = {"browser.", "profile.", "candidate."};
    const uint64_t *vals[] = {a->browser, a->profile, a->cand};
    const size_t ns[] = {AR_STATS_BROWSER_N, AR_STATS_PROFILE_N, AR_STATS_CAND_N};
    int rc = bind_key(st, a);
    for (size_t g = 0; g < 3 && rc == 0; g++) {
        for (size_t i = 0; i < ns[g] && rc == 0; i++) {
            if (vals[g][i] == 0)
                continue;
            const char *n = g == 0   ? ar_stats_browser_name((int)i)
                            : g == 1 ? ar_stats_profile_name((int)i)
                                     : ar_stats_cand_name((int)i);
            char name[32];
            int len = snprintf(name, sizeof(name), "%s%s", groups[g], n);
            rc = ar_store_bind_text(st, 4, name, (size_t)len);
            if (rc == 0)
                rc = ar_store_bind_int64(st, 5, (int64_t)vals[g][i]);
            if (rc == 0)
                rc = run(st);
        }
    }
    return rc;
}

/* Reads the row's histograms, merges a's into them and writes them back. */
static int merge_hists(const stmts_t *s, const ar__agg_t *a)
{
    ar_hist_t *h = ar_calloc(AR__H_N, sizeof(*h));
    uint8_t *enc = ar_malloc(AR_HIST_ENC_MAX);
    int rc = h == NULL || enc == NULL ? AR_ENOMEM : bind_key(s->select, a);
    if (rc == 0) {
        rc = ar_store_step(s->select);
        if (rc == AR_STORE_ROW) {
            rc = 0;
            for (int i = 0; i < AR__H_N && rc == 0; i++) {
                size_t len = 0;
                const void *p = ar_store_col_blob(s->select, i, &len);
                rc = ar_hist_decode(p, len, &h[i]);
            }
        } else if (rc == AR_STORE_DONE) {
            rc = AR_ENOTFOUND; /* the upsert just made the row: never expected */
        }
        ar_store_reset(s->select);
    }
    if (rc == 0)
        rc = bind_key(s->update, a);
    for (int i = 0; i < AR__H_N && rc == 0; i++) {
        ar_hist_merge(&h[i], &a->h[i]);
        int len = ar_hist_encode(&h[i], enc, AR_HIST_ENC_MAX);
        rc = len < 0 ? len : ar_store_bind_blob(s->update, 4 + i, enc, (size_t)len);
    }
    if (rc == 0)
        rc = run(s->update);
    ar_free(h);
    ar_free(enc);
    return rc;
}

static int write_one(const stmts_t *s, const ar__agg_t *a)
{
    const uint64_t v[] = {a->reports,     a->calls,        a->relayed_calls,
                          a->ended_calls, a->call_seconds, a->wait_seconds};
    int rc = bind_key(s->upsert, a);
    for (int i = 0; i < 6 && rc == 0; i++)
        rc = ar_store_bind_int64(s->upsert, 4 + i, (int64_t)v[i]);
    if (rc == 0)
        rc = run(s->upsert);
    if (rc == 0)
        rc = merge_hists(s, a);
    if (rc == 0)
        rc = write_counts(s->count, a);
    return rc;
}

int ar__flush_write(ar_store_conn_t *c, ar__agg_t *const *aggs, size_t n)
{
    stmts_t s = {0};
    int rc = ar_store_prepare(c, upsert_sql, sizeof(upsert_sql) - 1, &s.upsert);
    if (rc == 0)
        rc = ar_store_prepare(c, select_sql, sizeof(select_sql) - 1, &s.select);
    if (rc == 0)
        rc = ar_store_prepare(c, update_sql, sizeof(update_sql) - 1, &s.update);
    if (rc == 0)
        rc = ar_store_prepare(c, count_sql, sizeof(count_sql) - 1, &s.count);
    if (rc == 0)
        rc = ar_store_begin(c);
    if (rc == 0) {
        for (size_t i = 0; i < n && rc == 0; i++)
            rc = write_one(&s, aggs[i]);
        if (rc == 0)
            rc = ar_store_commit(c);
        if (rc < 0)
            (void)ar_store_rollback(c);
    }
    ar_store_finalize(s.upsert);
    ar_store_finalize(s.select);
    ar_store_finalize(s.update);
    ar_store_finalize(s.count);
    return rc;
}

typedef struct {
    ar_monitor_t *m;
    ar__agg_t **aggs;
    size_t n;
    ar_monitor_done_cb done;
    void *data;
} batch_t;

static int flush_job(ar_store_conn_t *c, void *arg)
{
    batch_t *b = arg;
    return ar__flush_write(c, b->aggs, b->n);
}

static void free_batch(batch_t *b)
{
    for (size_t i = 0; i < b->n; i++)
        ar_free(b->aggs[i]);
    ar_free(b->aggs);
    ar_free(b);
}

/* Puts a failed batch back into the table; what does not fit is dropped and counted. */
static void merge_back(ar_monitor_t *m, batch_t *b)
{
    for (size_t i = 0; i < b->n; i++) {
        const ar__agg_t *a = b->aggs[i];
        ar__agg_t *t = ar__agg_get(&m->agg, a->clinic, a->area, a->hour);
        if (t != NULL)
            ar__agg_merge(t, a);
        else
            ar_metric_add(m->met.dropped, 0, (int64_t)a->reports);
    }
    ar_metric_set(m->met.agg_entries, (int64_t)m->agg.used);
}

static void flush_done(int status, void *arg)
{
    batch_t *b = arg;
    ar_monitor_t *m = b->m;
    m->flushing = 0;
    if (status == 0 && b->n > 0) {
        ar_metric_add(m->met.flushes, 0, 1);
        ar_metric_add(m->met.flushed_rows, 0, (int64_t)b->n);
    } else if (status != 0) {
        ar_metric_add(m->met.flush_failures, 0, 1);
        ar_log(AR_LOG_WARN, "monitor_flush_failed", AR_LF_ERR("err", status),
               AR_LF_UINT("rows", b->n));
        merge_back(m, b);
    }
    ar_monitor_done_cb done = b->done;
    void *data = b->data;
    free_batch(b);
    if (done != NULL)
        done(status, data);
}

int ar__flush_start(ar_monitor_t *m, ar_monitor_done_cb done, void *data)
{
    if (m->flushing)
        return AR_ESTATE;
    batch_t *b = ar_calloc(1, sizeof(*b));
    if (b == NULL)
        return AR_ENOMEM;
    int rc = ar__agg_take(&m->agg, &b->aggs, &b->n);
    if (rc < 0) {
        ar_free(b);
        return rc;
    }
    ar_metric_set(m->met.agg_entries, 0);
    b->m = m;
    b->done = done;
    b->data = data;
    if (b->n == 0) {
        /* Nothing to write: complete through the same path without a store round trip. */
        m->flushing = 1;
        flush_done(0, b);
        return 0;
    }
    m->flushing = 1;
    rc = ar_store_pool_submit(m->opts.store, flush_job, flush_done, b);
    if (rc < 0) {
        m->flushing = 0;
        merge_back(m, b);
        free_batch(b);
    }
    return rc;
}
