/*
 * The public HTTPS listener: libh2o (HTTP/1.1 and HTTP/2 by ALPN) over the SSL_CTX from tls.h,
 * set up as anteroom-app's src/app/server.c does (the TLS policy stays in src/core/tls.c). It
 * is a near copy of the app's accept and stop logic rather than a shared module: the two differ
 * in what they own (store sessions and static files there, aggregates here), and the shared part
 * is small enough that a common abstraction would cost more than it saves.
 */
#include "internal.h"

#include "anteroom/alloc.h"
#include "anteroom/log.h"

#include <arpa/inet.h>
#include <openssl/ssl.h>
#include <sodium.h>
#include <string.h>
#include <time.h>

#define DEFAULT_FLUSH_MS 60000u
#define DEFAULT_MAX_CONNS 10000u
#define STOP_WAIT_MS 5000

typedef struct {
    h2o_handler_t super;
    ar_monitor_t *m;
} handler_t;

typedef struct {
    uv_tcp_t tcp;
    ar_monitor_t *m;
} conn_t;

int64_t ar__mon_now(ar_monitor_t *m)
{
    if (m->opts.clock != NULL)
        return m->opts.clock(m->opts.clock_data);
    return (int64_t)time(NULL);
}

static void add_header(h2o_req_t *req, const char *name, const char *value)
{
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 1, NULL, value,
                          strlen(value));
}

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
    return ar__ingest(((handler_t *)self)->m, req);
}

static void on_conn_closed(uv_handle_t *h)
{
    conn_t *c = (conn_t *)h;
    c->m->conns--;
    ar_free(c);
}

static void on_accept(uv_stream_t *listener, int status)
{
    ar_monitor_t *m = listener->data;
    if (status != 0 || m->stopping)
        return;
    conn_t *c = ar_malloc(sizeof(*c));
    if (c == NULL)
        return;
    int over = m->conns >= m->opts.max_conns;
    c->m = m;
    m->conns++;
    if (uv_tcp_init(listener->loop, &c->tcp) != 0) {
        m->conns--;
        ar_free(c);
        return;
    }
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0 || over) {
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        return;
    }
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)&c->tcp, on_conn_closed);
    h2o_accept(&m->accept_ctx, sock);
}

static void take_ssl_ctx(ar_monitor_t *m)
{
    SSL_CTX *ctx = ar_tls_server_ssl_ctx(m->tls);
    h2o_ssl_register_alpn_protocols(ctx, h2o_http2_alpn_protocols);
    SSL_CTX *old = m->accept_ctx.ssl_ctx;
    m->accept_ctx.ssl_ctx = ctx;
    if (old != NULL)
        SSL_CTX_free(old);
}

int ar_monitor_reload_tls(ar_monitor_t *m)
{
    int rc = ar_tls_server_reload(m->tls);
    if (rc < 0)
        return rc;
    take_ssl_ctx(m);
    return 0;
}

static int listen_on(ar_monitor_t *m, const char *host, uint16_t port)
{
    struct sockaddr_storage ss;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0)
        return AR_EINVAL;
    if (uv_tcp_init(m->loop, &m->listener) != 0)
        return AR_ESYS;
    m->listener_init = 1;
    m->listener.data = m;
    int rc = uv_tcp_bind(&m->listener, (struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&m->listener, 511, on_accept);
    if (rc != 0)
        return rc == UV_EADDRINUSE ? AR_EADDRINUSE : AR_ESYS;
    int len = sizeof(ss);
    uv_tcp_getsockname(&m->listener, (struct sockaddr *)&ss, &len);
    m->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                            : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return 0;
}

static void free_monitor(ar_monitor_t *m)
{
    if (m->ctx_ready)
        h2o_context_dispose(&m->ctx);
    if (m->config_ready)
        h2o_config_dispose(&m->config);
    if (m->accept_ctx.ssl_ctx != NULL)
        SSL_CTX_free(m->accept_ctx.ssl_ctx);
    ar_tls_server_free(m->tls);
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
    if (rc == 0)
        rc = ar_tls_server_new(opts->cert_path, opts->key_path, &m->tls);
    if (rc < 0)
        return rc;
    h2o_config_init(&m->config);
    m->config_ready = 1;
    m->config.server_name = h2o_iovec_init(H2O_STRLIT("anteroom"));
    /* h2o buffers the whole body before the handler; over HTTP/2 it resets a stream over its
     * cap instead of answering, so its cap sits above ours and we answer 413 ourselves. */
    m->config.max_request_entity_size = m->opts.max_body * 4;
    h2o_hostconf_t *host =
        h2o_config_register_host(&m->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    handler_t *h = (handler_t *)h2o_create_handler(path, sizeof(*h));
    h->super.on_req = on_req;
    h->m = m;
    h2o_filter_t *f = h2o_create_filter(path, sizeof(*f));
    f->on_setup_ostream = on_setup_ostream;
    h2o_context_init(&m->ctx, m->loop, &m->config);
    m->ctx_ready = 1;
    m->accept_ctx.ctx = &m->ctx;
    m->accept_ctx.hosts = m->config.hosts;
    take_ssl_ctx(m);
    rc = listen_on(m, opts->host != NULL ? opts->host : "127.0.0.1", opts->port);
    if (rc < 0)
        return rc;
    uv_timer_init(m->loop, &m->flush_timer);
    m->timer_init = 1;
    m->flush_timer.data = m;
    uv_timer_start(&m->flush_timer, on_flush_tick, m->opts.flush_ms, m->opts.flush_ms);
    return 0;
}

static void on_listener_closed(uv_handle_t *h);

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
        if (m->listener_init) {
            /* Freed through the stop path once libuv has closed the handle (the loop runs);
             * the last flush finds nothing to write and completes without the store. */
            m->stopping = 1;
            uv_close((uv_handle_t *)&m->listener, on_listener_closed);
        } else {
            free_monitor(m);
        }
        return rc;
    }
    ar_log(AR_LOG_INFO, "monitor_listening", AR_LF_UINT("port", m->port));
    *out = m;
    return 0;
}

uint16_t ar_monitor_port(const ar_monitor_t *m)
{
    return m->port;
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

typedef struct {
    uv_timer_t timer;
    ar_monitor_t *m;
    uint64_t waited_ms;
    int flush_started;
} stopper_t;

static void on_stopper_closed(uv_handle_t *h)
{
    ar_free(h);
}

static void on_last_flush(int status, void *data)
{
    (void)status;
    stopper_t *s = data;
    s->m->flushing = 0;
}

/* Writes the last aggregates once no connection can add to them, then frees the monitor. */
static void on_stop_tick(uv_timer_t *t)
{
    stopper_t *s = (stopper_t *)t;
    ar_monitor_t *m = s->m;
    s->waited_ms += 10;
    if (m->conns > 0 && s->waited_ms < STOP_WAIT_MS)
        return;
    if (!s->flush_started && !m->flushing) {
        s->flush_started = 1;
        if (ar__flush_start(m, on_last_flush, s) != 0)
            ar_log0(AR_LOG_WARN, "monitor_last_flush_failed");
        return;
    }
    if (m->flushing)
        return;
    if (m->conns > 0)
        ar_log(AR_LOG_WARN, "monitor_stop_connections_left", AR_LF_UINT("count", m->conns));
    else
        free_monitor(m);
    uv_timer_stop(t);
    uv_close((uv_handle_t *)t, on_stopper_closed);
}

static void on_listener_closed(uv_handle_t *h)
{
    ar_monitor_t *m = h->data;
    stopper_t *s = ar_calloc(1, sizeof(*s));
    if (s == NULL) {
        if (m->conns == 0)
            free_monitor(m);
        return;
    }
    s->m = m;
    uv_timer_init(m->loop, &s->timer);
    uv_timer_start(&s->timer, on_stop_tick, 0, 10);
}

void ar_monitor_stop(ar_monitor_t *m, ar_monitor_done_cb done, void *data)
{
    if (m == NULL || m->stopping)
        return;
    m->stopping = 1;
    m->stop_done = done;
    m->stop_data = data;
    if (m->timer_init) {
        uv_timer_stop(&m->flush_timer);
        uv_close((uv_handle_t *)&m->flush_timer, NULL);
    }
    uv_close((uv_handle_t *)&m->listener, on_listener_closed);
}
