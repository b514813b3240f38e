/*
 * The periodic sweep of expired keeping uploads (S5, docs/keeping.md). An upload the browser
 * abandoned without saying so (a closed tab, a lost connection) holds ciphertext until it is
 * deleted; the upload route deletes expired ones when the next upload starts, but when nobody
 * uploads again that would be never. A timer on the app's loop submits a store job every
 * interval that deletes them, so no upload outlives its expiry by more than one interval.
 *
 * Every instance sweeps; the DELETE is idempotent and uses the expiry index, so doing it on each
 * costs one short statement per instance and interval.
 *
 * Lifetime: the sweep is its own allocation, not part of the app, because a job in flight when
 * the app stops still completes later (the pool runs every done callback, with AR_ECLOSED at
 * worst, possibly after the app is freed). The done callback touches only the sweep, and the
 * sweep is freed once its timer has closed and no job is in flight, whichever comes last.
 */
#include "internal.h"

#include "anteroom/alloc.h"
#include "anteroom/log.h"

/* The first run comes this soon after start (or after one interval, if shorter), so uploads
 * that expired while no instance ran go soon after one starts. */
#define FIRST_RUN_MS 1000u

struct ar__keep_sweep_s {
    uv_timer_t timer;
    ar_app_t *app; /* NULL once stopped: nothing may reach the app after ar_app_stop */
    ar_store_pool_t *pool;
    int in_flight;    /* a job submitted and its done callback not yet run */
    int timer_closed; /* the timer's close callback ran */
    int64_t now;      /* the app's clock when the job was submitted (tests move it) */
    int64_t removed;  /* written by the job on a worker, read by the done callback */
};

static void maybe_free(ar__keep_sweep_t *s)
{
    if (s->app == NULL && s->timer_closed && !s->in_flight)
        ar_free(s);
}

static int sweep_job(ar_store_conn_t *c, void *arg)
{
    ar__keep_sweep_t *s = arg;
    return ar__keeping_delete_expired(c, s->now, &s->removed);
}

static void sweep_done(int status, void *arg)
{
    ar__keep_sweep_t *s = arg;
    s->in_flight = 0;
    /* Only a count: ids would say who was uploading when. */
    if (status == 0 && s->removed > 0)
        ar_log(AR_LOG_INFO, "keeping_uploads_swept", AR_LF_INT("count", s->removed));
    else if (status < 0 && status != AR_ECLOSED)
        ar_log(AR_LOG_WARN, "keeping_sweep_failed", AR_LF_ERR("err", status));
    maybe_free(s);
}

static void on_timer(uv_timer_t *t)
{
    ar__keep_sweep_t *s = t->data;
    /* One job at a time: a slow database gets no pile of identical deletes. */
    if (s->app == NULL || s->in_flight)
        return;
    s->now = ar__now(s->app);
    s->removed = 0;
    int rc = ar_store_pool_submit(s->pool, sweep_job, sweep_done, s);
    if (rc == 0)
        s->in_flight = 1;
    else /* a full queue or a closed pool: the next tick tries again */
        ar_log(AR_LOG_DEBUG, "keeping_sweep_skipped", AR_LF_ERR("err", rc));
}

static void on_timer_closed(uv_handle_t *h)
{
    ar__keep_sweep_t *s = h->data;
    s->timer_closed = 1;
    maybe_free(s);
}

int ar__keep_sweep_start(ar_app_t *app, uint64_t interval_ms, ar__keep_sweep_t **out)
{
    ar__keep_sweep_t *s = ar_calloc(1, sizeof(*s));
    if (s == NULL)
        return AR_ENOMEM;
    s->app = app;
    s->pool = app->opts.store;
    s->timer.data = s;
    if (uv_timer_init(app->loop, &s->timer) != 0) {
        ar_free(s);
        return AR_ESYS;
    }
    uint64_t first = interval_ms < FIRST_RUN_MS ? interval_ms : FIRST_RUN_MS;
    (void)uv_timer_start(&s->timer, on_timer, first, interval_ms);
    *out = s;
    return 0;
}

void ar__keep_sweep_stop(ar__keep_sweep_t *s)
{
    if (s == NULL || s->app == NULL)
        return;
    s->app = NULL;
    uv_timer_stop(&s->timer);
    uv_close((uv_handle_t *)&s->timer, on_timer_closed);
}
