/*
 * The shared HTTPS listener (https.h): accept with a connection cap, TLS context hand-over to
 * h2o, certificate reload, and the stop that waits for open connections.
 */
#include "https.h"

#include "anteroom/alloc.h"
#include "anteroom/err.h"
#include "anteroom/log.h"

#include <arpa/inet.h>
#include <openssl/ssl.h>
#include <string.h>

/* How long ar_https_close waits for open connections before giving up on them. */
#define STOP_WAIT_MS 5000
#define STOP_TICK_MS 10

typedef struct {
    h2o_handler_t super;
    void *data;
} handler_t;

typedef struct {
    h2o_filter_t super;
    void *data;
} filter_t;

/* A connection's libuv handle, which h2o frees through our close callback. */
typedef struct {
    uv_tcp_t tcp;
    ar_https_t *h;
} conn_t;

void *ar_https_data(const h2o_handler_t *self)
{
    return ((const handler_t *)self)->data;
}

void *ar_https_filter_data(const h2o_filter_t *self)
{
    return ((const filter_t *)self)->data;
}

void ar_https_add_header(h2o_req_t *req, const char *name, const char *value)
{
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 1, NULL, value,
                          strlen(value));
}

static void on_conn_closed(uv_handle_t *handle)
{
    conn_t *c = (conn_t *)handle;
    c->h->conns--;
    ar_free(c);
}

static void on_accept(uv_stream_t *listener, int status)
{
    ar_https_t *h = listener->data;
    if (status != 0 || h->stopping)
        return;
    conn_t *c = ar_malloc(sizeof(*c));
    if (c == NULL)
        return;
    int over = h->conns >= h->max_conns;
    c->h = h;
    h->conns++;
    if (uv_tcp_init(listener->loop, &c->tcp) != 0) {
        h->conns--;
        ar_free(c);
        return;
    }
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0 || over) {
        /* Over the cap: taken off the backlog and closed before any TLS work. */
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        return;
    }
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)&c->tcp, on_conn_closed);
    h2o_accept(&h->accept_ctx, sock);
}

/* Hands h2o the TLS context now current in h->tls, with ALPN offering h2 and http/1.1. */
static void take_ssl_ctx(ar_https_t *h)
{
    SSL_CTX *ctx = ar_tls_server_ssl_ctx(h->tls);
    h2o_ssl_register_alpn_protocols(ctx, h2o_http2_alpn_protocols);
    SSL_CTX *old = h->accept_ctx.ssl_ctx;
    h->accept_ctx.ssl_ctx = ctx;
    /* Connections made from the old context hold their own references. */
    if (old != NULL)
        SSL_CTX_free(old);
}

int ar_https_reload_tls(ar_https_t *h)
{
    int rc = ar_tls_server_reload(h->tls);
    if (rc < 0)
        return rc;
    take_ssl_ctx(h);
    return 0;
}

static int listen_on(ar_https_t *h, const char *host, uint16_t port)
{
    struct sockaddr_storage ss;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0)
        return AR_EINVAL;
    if (uv_tcp_init(h->loop, &h->listener) != 0)
        return AR_ESYS;
    h->listener_init = 1;
    h->listener.data = h;
    int rc = uv_tcp_bind(&h->listener, (struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&h->listener, 511, on_accept);
    if (rc != 0)
        return rc == UV_EADDRINUSE ? AR_EADDRINUSE : AR_ESYS;
    int len = sizeof(ss);
    uv_tcp_getsockname(&h->listener, (struct sockaddr *)&ss, &len);
    h->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                            : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return 0;
}

int ar_https_start(ar_https_t *h, uv_loop_t *loop, const ar_https_opts_t *o)
{
    h->loop = loop;
    h->max_conns = o->max_conns;
    int rc = ar_tls_server_new(o->cert_path, o->key_path, &h->tls);
    if (rc < 0)
        return rc;
    h2o_config_init(&h->config);
    h->config_ready = 1;
    h->config.server_name = h2o_iovec_init(H2O_STRLIT("anteroom"));
    h->config.max_request_entity_size = o->max_request_body;
    if (o->max_h2_streams > 0)
        h->config.http2.max_concurrent_requests_per_connection = o->max_h2_streams;
    h2o_hostconf_t *host =
        h2o_config_register_host(&h->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    handler_t *hd = (handler_t *)h2o_create_handler(path, sizeof(*hd));
    hd->super.on_req = o->on_req;
    hd->data = o->data;
    filter_t *f = (filter_t *)h2o_create_filter(path, sizeof(*f));
    f->super.on_setup_ostream = o->on_setup_ostream;
    f->data = o->data;
    h2o_context_init(&h->ctx, loop, &h->config);
    h->ctx_ready = 1;
    h->accept_ctx.ctx = &h->ctx;
    h->accept_ctx.hosts = h->config.hosts;
    take_ssl_ctx(h);
    return listen_on(h, o->host != NULL ? o->host : "127.0.0.1", o->port);
}

int ar_https_started(const ar_https_t *h)
{
    return h->listener_init;
}

void ar_https_dispose(ar_https_t *h)
{
    if (h->ctx_ready)
        h2o_context_dispose(&h->ctx);
    if (h->config_ready)
        h2o_config_dispose(&h->config);
    if (h->accept_ctx.ssl_ctx != NULL)
        SSL_CTX_free(h->accept_ctx.ssl_ctx);
    ar_tls_server_free(h->tls);
    h->ctx_ready = h->config_ready = 0;
    h->accept_ctx.ssl_ctx = NULL;
    h->tls = NULL;
}

typedef struct {
    uv_timer_t timer;
    ar_https_t *h;
    uint64_t waited_ms;
} stopper_t;

static void on_stopper_closed(uv_handle_t *handle)
{
    ar_free(handle);
}

static void on_stop_tick(uv_timer_t *t)
{
    stopper_t *s = (stopper_t *)t;
    ar_https_t *h = s->h;
    s->waited_ms += STOP_TICK_MS;
    if (h->conns > 0 && s->waited_ms < STOP_WAIT_MS)
        return;
    /* The timer stops before the owner runs: freeing the owner disposes h2o's context, which
     * runs the loop once (uv_run NOWAIT), and a tick due then would call the owner again, inside
     * its own free. Once drained returns 1 the owner (and h in it) may be gone: only the timer
     * is touched. */
    uv_timer_stop(t);
    if (h->drained(h, h->drained_data, 1))
        uv_close((uv_handle_t *)t, on_stopper_closed);
    else
        uv_timer_start(t, on_stop_tick, STOP_TICK_MS, STOP_TICK_MS);
}

static void on_listener_closed(uv_handle_t *handle)
{
    ar_https_t *h = handle->data;
    stopper_t *s = ar_calloc(1, sizeof(*s));
    if (s == NULL) {
        /* Cannot wait for connections: the owner sees how many are open and decides now. */
        (void)h->drained(h, h->drained_data, 0);
        return;
    }
    s->h = h;
    uv_timer_init(h->loop, &s->timer);
    uv_timer_start(&s->timer, on_stop_tick, 0, STOP_TICK_MS);
}

void ar_https_close(ar_https_t *h, int (*drained)(ar_https_t *h, void *data, int can_wait),
                    void *data)
{
    h->stopping = 1;
    h->drained = drained;
    h->drained_data = data;
    uv_close((uv_handle_t *)&h->listener, on_listener_closed);
}
