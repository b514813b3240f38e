/*
 * The public HTTPS listener: the one anteroom-app uses too (src/https: libh2o over the SSL_CTX
 * from tls.h, the connection cap, certificate reload, the stop that waits for connections). What
 * the monitor owns beside it: the rate limiter, the aggregates, the flush timer and the last
 * flush on stop.
 */
#include "internal.h"

#include "anteroom/alloc.h"
#include "anteroom/log.h"

#include <sodium.h>
#include <string.h>
#include <time.h>

#define DEFAULT_FLUSH_MS 60000u
#define DEFAULT_MAX_CONNS 10000u

int64_t ar__mon_now(ar_monitor_t *m)
{
    if (m->opts.clock != NULL)
        return m->opts.clock(m->opts.clock_data);
    return (int64_t)time(NULL);
}

#define add_header ar_https_add_header

/* Every response: HSTS, nothing cacheable, no content to render or embed. CORP same-origin also
 * keeps other sites from loading a response as a no-cors resource (even an empty one). */
static void on_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    (void)self;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_STRICT_TRANSPORT_SECURITY, NULL,
                   H2O_STRLIT("max-age=63072000; includeSubDomains"));
    add_header(req, "content-security-policy", "default-src 'none'; frame-ancestors 'none'");
    add_header(req, "cross-origin-resource-policy", "same-origin");
    add_header(req, "referrer-policy", "no-referrer");
    add_header(req, "x-content-type-options", "nosniff");
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                   H2O_STRLIT("no-store"));
    h2o_setup_next_ostream(req, slot);
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    return ar__ingest(ar_https_data(self), req);
}

int ar_monitor_reload_tls(ar_monitor_t *m)
{
    return ar_https_reload_tls(&m->https);
}

static void free_monitor(ar_monitor_t *m)
{
    ar_https_dispose(&m->https);
    ar__rl_free(&m->rl);
    ar__agg_free(&m->agg);
    ar_token_keyring_wipe(&m->keys);
    ar_free(m->origin);
    ar_monitor_done_cb done = m->stop_done;
    void *data = m->stop_data;
    ar_free(m);
    if (done != NULL)
        done(0, data);
}

static void on_flush_tick(uv_timer_t *t)
{
    ar_monitor_t *m = t->data;
    /* AR_ESTATE (the previous flush still running) just waits for the next tick. */
    (void)ar__flush_start(m, NULL, NULL);
}

static int setup(ar_monitor_t *m, const ar_monitor_opts_t *opts)
{
    int rc = ar__metrics_register(opts->metrics, &m->met);
    if (rc == 0)
        rc = ar__rl_init(&m->rl, m->opts.rate_entries, m->opts.rate_burst, m->opts.rate_per_min);
    if (rc == 0)
        rc = ar__agg_init(&m->agg, m->opts.agg_entries);
    if (rc < 0)
        return rc;
    /* h2o buffers the whole body before the handler; over HTTP/2 it resets a stream over its
     * cap instead of answering, so its cap sits above ours and we answer 413 ourselves. */
    ar_https_opts_t ho = {.host = opts->host,
                          .port = opts->port,
                          .cert_path = opts->cert_path,
                          .key_path = opts->key_path,
                          .max_conns = m->opts.max_conns,
                          .max_request_body = m->opts.max_body * 4,
                          .on_req = on_req,
                          .on_setup_ostream = on_setup_ostream,
                          .data = m};
    rc = ar_https_start(&m->https, m->loop, &ho);
    if (rc < 0)
        return rc;
    uv_timer_init(m->loop, &m->flush_timer);
    m->timer_init = 1;
    m->flush_timer.data = m;
    uv_timer_start(&m->flush_timer, on_flush_tick, m->opts.flush_ms, m->opts.flush_ms);
    return 0;
}

static int on_drained(ar_https_t *h, void *data, int can_wait);

int ar_monitor_start(uv_loop_t *loop, const ar_monitor_opts_t *opts, ar_monitor_t **out)
{
    if (opts->cert_path == NULL || opts->key_path == NULL || opts->origin == NULL ||
        opts->store == NULL || opts->metrics == NULL || opts->keys == NULL ||
        strncmp(opts->origin, "https://", 8) != 0)
        return AR_EINVAL;
    ar_monitor_t *m = ar_calloc(1, sizeof(*m));
    if (m == NULL)
        return AR_ENOMEM;
    m->loop = loop;
    m->opts = *opts;
    m->keys = *opts->keys;
    m->opts.keys = &m->keys;
    m->origin = ar_strndup(opts->origin, strlen(opts->origin));
    m->opts.origin = m->origin;
    if (m->opts.flush_ms == 0)
        m->opts.flush_ms = DEFAULT_FLUSH_MS;
    if (m->opts.max_body == 0)
        m->opts.max_body = AR_STATS_BODY_MAX;
    if (m->opts.max_conns == 0)
        m->opts.max_conns = DEFAULT_MAX_CONNS;
    if (m->opts.rate_burst == 0)
        m->opts.rate_burst = 6;
    if (m->opts.rate_per_min == 0)
        m->opts.rate_per_min = 12;
    if (m->opts.rate_entries == 0)
        m->opts.rate_entries = 65536;
    if (m->opts.agg_entries == 0)
        m->opts.agg_entries = 4096;
    int rc = m->origin == NULL ? AR_ENOMEM : setup(m, opts);
    if (rc < 0) {
        if (ar_https_started(&m->https)) {
            /* Freed through the stop path once libuv has closed the handle (the loop runs);
             * the last flush finds nothing to write and completes without the store. */
            ar_https_close(&m->https, on_drained, m);
        } else {
            free_monitor(m);
        }
        return rc;
    }
    ar_log(AR_LOG_INFO, "monitor_listening", AR_LF_UINT("port", m->https.port));
    *out = m;
    return 0;
}

uint16_t ar_monitor_port(const ar_monitor_t *m)
{
    return m->https.port;
}

void ar_monitor_set_keys(ar_monitor_t *m, const ar_token_keyring_t *keys)
{
    ar_token_keyring_wipe(&m->keys);
    m->keys = *keys;
}

int ar_monitor_flush(ar_monitor_t *m, ar_monitor_done_cb done, void *data)
{
    return ar__flush_start(m, done, data);
}

static void on_last_flush(int status, void *data)
{
    (void)status;
    ar_monitor_t *m = data;
    m->flushing = 0;
}

/* Called every 10 ms once no connection can add to the aggregates (or the wait for them ran
 * out): writes the last aggregates, then frees the monitor. */
static int on_drained(ar_https_t *h, void *data, int can_wait)
{
    ar_monitor_t *m = data;
    if (can_wait && !m->last_flush_started && !m->flushing) {
        m->last_flush_started = 1;
        if (ar__flush_start(m, on_last_flush, m) != 0)
            ar_log0(AR_LOG_WARN, "monitor_last_flush_failed");
        return 0;
    }
    if (can_wait && m->flushing)
        return 0;
    if (h->conns > 0)
        ar_log(AR_LOG_WARN, "monitor_stop_connections_left", AR_LF_UINT("count", h->conns));
    else
        free_monitor(m);
    return 1;
}

void ar_monitor_stop(ar_monitor_t *m, ar_monitor_done_cb done, void *data)
{
    if (m == NULL || m->https.stopping)
        return;
    m->stop_done = done;
    m->stop_data = data;
    if (m->timer_init) {
        uv_timer_stop(&m->flush_timer);
        uv_close((uv_handle_t *)&m->flush_timer, NULL);
    }
    ar_https_close(&m->https, on_drained, m);
}
