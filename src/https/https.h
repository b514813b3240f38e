/*
 * The HTTPS listener that anteroom-app and anteroom-monitor share: libh2o (Debian's 2.2.5,
 * libuv build; HTTP/1.1 and HTTP/2 negotiated with ALPN) over the SSL_CTX from tls.h, so the TLS
 * policy (1.2+, AEAD suites, no tickets) stays in src/core/tls.c. One handler takes every
 * request and one filter sees every response; a cap on open connections turns the excess away
 * before any TLS work; certificates reload in place; and a stop waits for open connections
 * before h2o's context may go. The owner embeds an ar_https_t and keeps its own state beside it.
 */
#ifndef ANTEROOM_HTTPS_H
#define ANTEROOM_HTTPS_H

#include "anteroom/tls.h"

#include <h2o.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct ar_https_s ar_https_t;

typedef struct {
    const char *host; /* NULL: 127.0.0.1 */
    uint16_t port;    /* 0: any free port (ar_https_t.port says which) */
    const char *cert_path;
    const char *key_path;
    unsigned max_conns;      /* open connections at most */
    size_t max_request_body; /* h2o's own cap while it buffers a body */
    /* Every request and every response; data comes back as ar_https_data(). */
    int (*on_req)(h2o_handler_t *self, h2o_req_t *req);
    void (*on_setup_ostream)(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot);
    void *data;
} ar_https_opts_t;

struct ar_https_s {
    uv_loop_t *loop;
    ar_tls_server_t *tls;
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    uv_tcp_t listener;
    uint16_t port;
    unsigned conns; /* open connections (the cap, and stop waits for none) */
    unsigned max_conns;
    int (*drained)(ar_https_t *h, void *data, int can_wait);
    void *drained_data;
    int config_ready;
    int ctx_ready;
    int listener_init;
    int stopping;
};

/* Sets h up and starts listening. On failure, ar_https_started() tells which way to free: once
 * the listener exists (started), through ar_https_close as after a stop; else ar_https_dispose. */
int ar_https_start(ar_https_t *h, uv_loop_t *loop, const ar_https_opts_t *opts);
int ar_https_started(const ar_https_t *h);

/* The owner's data (opts.data) for a handler or filter of this listener. */
void *ar_https_data(const h2o_handler_t *self);
void *ar_https_filter_data(const h2o_filter_t *self);

/* Reloads the certificate and key from their files; new connections get them. A bad file keeps
 * the old ones (and tls.c logs why). */
int ar_https_reload_tls(ar_https_t *h);

/* Adds a header whose name and value are static strings. */
void ar_https_add_header(h2o_req_t *req, const char *name, const char *value);

/*
 * Stops accepting, then waits (polling the loop every 10 ms, at most 5 s) until every open
 * connection has closed, then calls drained every 10 ms until it returns 1 (the owner may have
 * last work to finish, such as a flush). h->conns says how many connections are still open: only
 * with none may the owner call ar_https_dispose and free itself; with some, their close callbacks
 * would reach freed memory, so it must leak instead. can_wait 0 (no memory for the timer) means
 * this is the only call: finish now.
 */
void ar_https_close(ar_https_t *h, int (*drained)(ar_https_t *h, void *data, int can_wait),
                    void *data);

/* Frees what ar_https_start made (h2o's context and configuration, the TLS context). */
void ar_https_dispose(ar_https_t *h);

#endif
