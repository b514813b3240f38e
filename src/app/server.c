/*
 * The HTTPS server: the listener shared with anteroom-monitor (src/https: libh2o over our TLS
 * context, the connection cap, certificate reload, the stop that waits for connections).
 *
 * One h2o handler takes every request: API routes first (pipeline.c), then the web client
 * (static.c), then a JSON 404. One filter adds the security headers to every response that
 * passes through h2o's response path, errors included.
 */
#include "internal.h"
#include "servers.h"

#include "anteroom/alloc.h"
#include "anteroom/log.h"

#include <sodium.h>
#include <string.h>
#include <time.h>

#define DEFAULT_IDLE_S ((int64_t)30 * 60)
#define DEFAULT_MAX_S ((int64_t)12 * 60 * 60)
#define DEFAULT_MAX_BODY ((size_t)16 * 1024)
#define DEFAULT_MAX_CONNS 10000u
#define DEFAULT_KEEPING_SWEEP_MS ((uint64_t)60 * 1000)

int64_t ar__now(ar_app_t *app)
{
    if (app->opts.clock != NULL)
        return app->opts.clock(app->opts.clock_data);
    return (int64_t)time(NULL);
}

#define add_static_header ar_https_add_header

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
    ar_app_t *app = ar_https_filter_data(self);
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
    ar_app_t *app = ar_https_data(self);
    if (ar__api_handle(app, req) == 0)
        return 0;
    if (ar__static_serve(app->files, req) == 0)
        return 0;
    ar__send_error(req, 404, "not_found", "no such page");
    return 0;
}

int ar_app_reload_tls(ar_app_t *app)
{
    return ar_https_reload_tls(&app->https);
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

static void free_app(ar_app_t *app)
{
    ar_https_dispose(&app->https);
    ar__static_free(app->files);
    ar_free(app->origin);
    sodium_memzero(app->dummy_hash, sizeof(app->dummy_hash));
    sodium_memzero(app->seal_key, sizeof(app->seal_key));
    ar_free(app);
}

/* Frees the app once the listener has no connection left; with some still open after the wait,
 * their close callbacks would reach freed memory, and h2o's context asserts that none remain:
 * leak the app rather than crash. */
static int on_drained(ar_https_t *h, void *data, int can_wait)
{
    (void)can_wait;
    if (h->conns > 0)
        ar_log(AR_LOG_WARN, "app_stop_connections_left", AR_LF_UINT("count", h->conns));
    else
        free_app(data);
    return 1;
}

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
    int rc = 0;
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

    /* h2o buffers a whole body before the handler runs, so it needs a hard cap while reading.
     * Over HTTP/2, h2o answers a body above it by resetting the stream rather than with a 413,
     * so its cap sits above ours: bodies between the two get our JSON 413 (pipeline.c). */
    /* Every route's body fits under it (an encrypted-keeping chunk is the largest, 49 KiB):
     * items larger than that arrive in chunks (keeping.c), so an unauthenticated client can make
     * the app buffer at most 64 KiB per request (by default), whatever the route. */
    size_t nroutes, h2o_cap = app->opts.max_body * 4;
    const ar_app_route_t *routes = ar_app_routes(&nroutes);
    for (size_t i = 0; i < nroutes; i++)
        if (routes[i].max_body + 4096 > h2o_cap)
            h2o_cap = routes[i].max_body + 4096;
    ar_https_opts_t ho = {.host = opts->host,
                          .port = opts->port,
                          .cert_path = opts->cert_path,
                          .key_path = opts->key_path,
                          .max_conns = app->opts.max_conns,
                          .max_request_body = h2o_cap,
                          /* Rapid reset (h2guard.c): requests processed at once per HTTP/2
                           * connection, the same as the store jobs one may hold, so only a peer
                           * that resets its streams meets that cap. */
                          .max_h2_streams = AR__H2GUARD_JOBS_MAX,
                          .on_req = on_req,
                          .on_setup_ostream = on_setup_ostream,
                          .data = app};
    return ar_https_start(&app->https, app->loop, &ho);
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
        if (ar_https_started(&app->https)) {
            ar_https_close(&app->https, on_drained, app);
        } else {
            free_app(app);
        }
        return rc;
    }
    /* Last, so a failed start has no sweep to stop. */
    if (app->opts.keeping_sweep_ms >= 0) {
        uint64_t every = app->opts.keeping_sweep_ms > 0 ? (uint64_t)app->opts.keeping_sweep_ms
                                                        : DEFAULT_KEEPING_SWEEP_MS;
        rc = ar__keep_sweep_start(app, every, &app->sweep);
        if (rc < 0) {
            ar_https_close(&app->https, on_drained, app);
            return rc;
        }
    }
    ar_log(AR_LOG_INFO, "app_listening", AR_LF_UINT("port", app->https.port));
    *out = app;
    return 0;
}

uint16_t ar_app_port(const ar_app_t *app)
{
    return app->https.port;
}

void ar_app_stop(ar_app_t *app)
{
    if (app == NULL || app->https.stopping)
        return;
    /* Before the listener: a sweep job in flight completes on the sweep's own memory, which
     * outlives the app (keep_sweep.c), so the pool may be closed right after this. */
    ar__keep_sweep_stop(app->sweep);
    app->sweep = NULL;
    ar_https_close(&app->https, on_drained, app);
}
