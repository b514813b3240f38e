/*
 * The HTTPS server: libh2o (Debian's 2.2.5, libuv build) over our TLS context. h2o does
 * HTTP/1.1 and HTTP/2 (negotiated with ALPN) and TLS through OpenSSL itself; the SSL_CTX comes
 * from tls.h so the TLS policy (1.2+, AEAD suites, no tickets) stays in src/core/tls.c.
 *
 * One h2o handler takes every request: API routes first (pipeline.c), then the web client
 * (static.c), then a JSON 404. One filter adds the security headers to every response that
 * passes through h2o's response path, errors included.
 */
#include "internal.h"
#include "servers.h"

#include "anteroom/alloc.h"
#include "anteroom/log.h"

#include <arpa/inet.h>
#include <openssl/ssl.h>
#include <sodium.h>
#include <string.h>
#include <time.h>

#define DEFAULT_IDLE_S ((int64_t)30 * 60)
#define DEFAULT_MAX_S ((int64_t)12 * 60 * 60)
#define DEFAULT_MAX_BODY ((size_t)16 * 1024)
/* How long ar_app_stop waits for open connections to finish before freeing h2o's context. */
#define STOP_WAIT_MS 5000

typedef struct {
    h2o_handler_t super;
    ar_app_t *app;
} app_handler_t;

/* A connection's libuv handle, which h2o frees through our close callback. */
typedef struct {
    uv_tcp_t tcp;
    ar_app_t *app;
} conn_t;

#define DEFAULT_MAX_CONNS 10000u

int64_t ar__now(ar_app_t *app)
{
    if (app->opts.clock != NULL)
        return app->opts.clock(app->opts.clock_data);
    return (int64_t)time(NULL);
}

static void add_static_header(h2o_req_t *req, const char *name, const char *value)
{
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 1, NULL, value,
                          strlen(value));
}

typedef struct {
    h2o_filter_t super;
    ar_app_t *app;
} app_filter_t;

/* The policy before connect-src's list of the deployment's signalling and monitor origins. */
#define CSP_BASE                                                                                   \
    "default-src 'self'; script-src 'self'; object-src 'none'; frame-ancestors 'none'; "           \
    "base-uri 'none'; connect-src 'self'"

/*
 * Security headers (S1, S8). The CSP allows only this origin's scripts and styles, no inline
 * script, no plugins, no framing, no <base>, and connections only to this origin and the
 * deployment's signalling servers and monitors (WebSocket, statistics); nothing else.
 * HSTS is sent on every response: the server only speaks TLS.
 */
static void on_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    ar_app_t *app = ((app_filter_t *)self)->app;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_STRICT_TRANSPORT_SECURITY, NULL,
                   H2O_STRLIT("max-age=63072000; includeSubDomains"));
    add_static_header(req, "content-security-policy", app->csp);
    add_static_header(req, "referrer-policy", "no-referrer");
    add_static_header(req, "permissions-policy", "camera=(self), microphone=(self)");
    add_static_header(req, "x-content-type-options", "nosniff");
    /* Anything not marked cacheable (hashed assets) must not be stored: pages, API answers and
     * errors can carry personal data. */
    if (h2o_find_header(&req->res.headers, H2O_TOKEN_CACHE_CONTROL, -1) == -1)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                       H2O_STRLIT("no-store"));
    h2o_setup_next_ostream(req, slot);
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    ar_app_t *app = ((app_handler_t *)self)->app;
    if (ar__api_handle(app, req) == 0)
        return 0;
    if (ar__static_serve(app->files, req) == 0)
        return 0;
    ar__send_error(req, 404, "not_found", "no such page");
    return 0;
}

static void on_conn_closed(uv_handle_t *h)
{
    conn_t *c = (conn_t *)h;
    c->app->conns--;
    ar_free(c);
}

static void on_accept(uv_stream_t *listener, int status)
{
    ar_app_t *app = listener->data;
    if (status != 0 || app->stopping)
        return;
    conn_t *c = ar_malloc(sizeof(*c));
    if (c == NULL)
        return;
    int over = app->conns >= app->opts.max_conns;
    c->app = app;
    app->conns++;
    if (uv_tcp_init(listener->loop, &c->tcp) != 0) {
        app->conns--;
        ar_free(c);
        return;
    }
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0 || over) {
        /* Over the cap: taken off the backlog and closed before any TLS work. */
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        return;
    }
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)&c->tcp, on_conn_closed);
    h2o_accept(&app->accept_ctx, sock);
}

/* Hands h2o the TLS context now current in app->tls, with ALPN offering h2 and http/1.1. */
static void take_ssl_ctx(ar_app_t *app)
{
    SSL_CTX *ctx = ar_tls_server_ssl_ctx(app->tls);
    h2o_ssl_register_alpn_protocols(ctx, h2o_http2_alpn_protocols);
    SSL_CTX *old = app->accept_ctx.ssl_ctx;
    app->accept_ctx.ssl_ctx = ctx;
    /* Connections made from the old context hold their own references. */
    if (old != NULL)
        SSL_CTX_free(old);
}

int ar_app_reload_tls(ar_app_t *app)
{
    int rc = ar_tls_server_reload(app->tls);
    if (rc < 0)
        return rc;
    take_ssl_ctx(app);
    return 0;
}

int ar_app_password_hash(const char *pw, size_t len, unsigned long long ops, size_t mem, char *out,
                         size_t outlen)
{
    if (outlen < crypto_pwhash_STRBYTES)
        return AR_EINVAL;
    if (ops == 0)
        ops = AR_APP_PWHASH_OPS, mem = AR_APP_PWHASH_MEM;
    return crypto_pwhash_str(out, pw, len, ops, mem) == 0 ? 0 : AR_ENOMEM;
}

static int listen_on(ar_app_t *app, const char *host, uint16_t port)
{
    struct sockaddr_storage ss;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0)
        return AR_EINVAL;
    if (uv_tcp_init(app->loop, &app->listener) != 0)
        return AR_ESYS;
    app->listener_init = 1;
    app->listener.data = app;
    int rc = uv_tcp_bind(&app->listener, (struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&app->listener, 511, on_accept);
    if (rc != 0)
        return rc == UV_EADDRINUSE ? AR_EADDRINUSE : AR_ESYS;
    int len = sizeof(ss);
    uv_tcp_getsockname(&app->listener, (struct sockaddr *)&ss, &len);
    app->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                              : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return 0;
}

static void free_app(ar_app_t *app)
{
    if (app->ctx_ready)
        h2o_context_dispose(&app->ctx);
    if (app->config_ready)
        h2o_config_dispose(&app->config);
    if (app->accept_ctx.ssl_ctx != NULL)
        SSL_CTX_free(app->accept_ctx.ssl_ctx);
    ar_tls_server_free(app->tls);
    ar__static_free(app->files);
    ar_free(app->origin);
    sodium_memzero(app->dummy_hash, sizeof(app->dummy_hash));
    sodium_memzero(app->seal_key, sizeof(app->seal_key));
    ar_free(app);
}

static void on_listener_closed(uv_handle_t *h);

static int setup(ar_app_t *app, const ar_app_opts_t *opts)
{
    snprintf(app->csp, sizeof(app->csp), "%s", CSP_BASE);
    if (opts->servers != NULL) {
        size_t base = strlen(app->csp);
        int n =
            ar_app_servers_connect_origins(opts->servers, app->csp + base, sizeof(app->csp) - base);
        if (n < 0)
            return n;
    }
    int rc = ar_tls_server_new(opts->cert_path, opts->key_path, &app->tls);
    if (rc < 0)
        return rc;
    if (opts->web_dir != NULL && (rc = ar__static_load(opts->web_dir, &app->files)) < 0)
        return rc;
    if (opts->seal_key != NULL)
        memcpy(app->seal_key, opts->seal_key, sizeof(app->seal_key));
    else
        ar_log(AR_LOG_WARN, "app_seal_key_missing");
    /* The dummy hash for unknown accounts: one Argon2id run before serving starts. */
    uint8_t junk[32];
    randombytes_buf(junk, sizeof(junk));
    rc = ar_app_password_hash((const char *)junk, sizeof(junk), opts->pwhash_ops, opts->pwhash_mem,
                              app->dummy_hash, sizeof(app->dummy_hash));
    if (rc < 0)
        return rc;

    h2o_config_init(&app->config);
    app->config_ready = 1;
    app->config.server_name = h2o_iovec_init(H2O_STRLIT("anteroom"));
    /* h2o buffers a whole body before the handler runs, so it needs a hard cap while reading.
     * Over HTTP/2, h2o answers a body above it by resetting the stream rather than with a 413,
     * so its cap sits above ours: bodies between the two get our JSON 413 (pipeline.c). */
    app->config.max_request_entity_size = app->opts.max_body * 4;
    h2o_hostconf_t *host =
        h2o_config_register_host(&app->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    app_handler_t *h = (app_handler_t *)h2o_create_handler(path, sizeof(*h));
    h->super.on_req = on_req;
    h->app = app;
    app_filter_t *f = (app_filter_t *)h2o_create_filter(path, sizeof(*f));
    f->super.on_setup_ostream = on_setup_ostream;
    f->app = app;
    h2o_context_init(&app->ctx, app->loop, &app->config);
    app->ctx_ready = 1;
    app->accept_ctx.ctx = &app->ctx;
    app->accept_ctx.hosts = app->config.hosts;
    take_ssl_ctx(app);
    return listen_on(app, opts->host != NULL ? opts->host : "127.0.0.1", opts->port);
}

int ar_app_start(uv_loop_t *loop, const ar_app_opts_t *opts, ar_app_t **out)
{
    if (opts->cert_path == NULL || opts->key_path == NULL || opts->origin == NULL ||
        opts->store == NULL || strncmp(opts->origin, "https://", 8) != 0)
        return AR_EINVAL;
    ar_app_t *app = ar_calloc(1, sizeof(*app));
    if (app == NULL)
        return AR_ENOMEM;
    app->loop = loop;
    app->opts = *opts;
    app->origin = ar_strndup(opts->origin, strlen(opts->origin));
    if (app->opts.session_idle_s <= 0)
        app->opts.session_idle_s = DEFAULT_IDLE_S;
    if (app->opts.session_max_s <= 0)
        app->opts.session_max_s = DEFAULT_MAX_S;
    if (app->opts.max_body == 0)
        app->opts.max_body = DEFAULT_MAX_BODY;
    if (app->opts.max_conns == 0)
        app->opts.max_conns = DEFAULT_MAX_CONNS;
    int rc = app->origin == NULL ? AR_ENOMEM : setup(app, opts);
    if (rc < 0) {
        /* Once the listener handle exists, the app is freed by the stop path after libuv has
         * closed it (the caller's loop must run, as after ar_app_stop). */
        if (app->listener_init) {
            app->stopping = 1;
            uv_close((uv_handle_t *)&app->listener, on_listener_closed);
        } else {
            free_app(app);
        }
        return rc;
    }
    ar_log(AR_LOG_INFO, "app_listening", AR_LF_UINT("port", app->port));
    *out = app;
    return 0;
}

uint16_t ar_app_port(const ar_app_t *app)
{
    return app->port;
}

typedef struct {
    uv_timer_t timer;
    ar_app_t *app;
    uint64_t waited_ms;
} stopper_t;

static void on_stopper_closed(uv_handle_t *h)
{
    ar_free(h);
}

/* Frees the app once h2o has closed every connection, or gives up after STOP_WAIT_MS. */
static void on_stop_tick(uv_timer_t *t)
{
    stopper_t *s = (stopper_t *)t;
    s->waited_ms += 10;
    if (s->app->conns > 0 && s->waited_ms < STOP_WAIT_MS)
        return;
    if (s->app->conns > 0)
        /* Connections still open would reach freed memory through their close callbacks, and
         * h2o's context asserts that none remain: leak the app rather than crash. */
        ar_log(AR_LOG_WARN, "app_stop_connections_left", AR_LF_UINT("count", s->app->conns));
    else
        free_app(s->app);
    uv_timer_stop(t);
    uv_close((uv_handle_t *)t, on_stopper_closed);
}

static void on_listener_closed(uv_handle_t *h)
{
    ar_app_t *app = h->data;
    stopper_t *s = ar_calloc(1, sizeof(*s));
    if (s == NULL) {
        /* Cannot wait for connections: free only if there are none, else leak (see above). */
        if (app->conns == 0)
            free_app(app);
        return;
    }
    s->app = app;
    uv_timer_init(app->loop, &s->timer);
    uv_timer_start(&s->timer, on_stop_tick, 0, 10);
}

void ar_app_stop(ar_app_t *app)
{
    if (app == NULL || app->stopping)
        return;
    app->stopping = 1;
    uv_close((uv_handle_t *)&app->listener, on_listener_closed);
}
