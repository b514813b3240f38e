/*
 * The operator endpoint every daemon serves: a tiny HTTP/1.1 server on a libuv loop.
 *   GET /metrics  200, Prometheus text (ar_metrics_render)
 *   GET /healthz  200 "ok" while the process runs its loop
 *   GET /readyz   200 "ready" or 503 "not ready", from the daemon's callback
 *   GET <extra_path>  200 application/json from the daemon's extra callback, when set
 *   POST <action_path> 202 after the daemon's action callback (e.g. anteroom-signal's /drain),
 *                  only from a loopback peer and without an Origin header (403 otherwise: no
 *                  other host, and no web page a browser on this host visits, can trigger it)
 * Other paths get 404, other methods on these paths 405. HEAD is answered like GET without a
 * body. Requests are parsed with Debian's http-parser.
 *
 * It is for operators and scrapers, not the public: it binds 127.0.0.1 unless configured
 * otherwise, caps each request's size, closes idle connections, and refuses connections over a
 * cap (accepted and closed at once, so the backlog cannot fill).
 */
#ifndef ANTEROOM_HEALTH_H
#define ANTEROOM_HEALTH_H

#include "anteroom/err.h"
#include "anteroom/metrics.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct ar_health_s ar_health_t;

/* Nonzero when the daemon is ready to take traffic. Runs on the health loop's thread. */
typedef int (*ar_health_ready_cb)(void *data);
/* Writes a JSON body of at most cap bytes into out and returns its length, or a negative code
 * for 503. Runs on the health loop's thread. */
typedef int (*ar_health_extra_cb)(void *data, char *out, size_t cap);
/* An operator action: 0 when done or started (202), negative for 503. Runs on the health loop's
 * thread. */
typedef int (*ar_health_action_cb)(void *data);

typedef struct ar_health_opts_s {
    const char *host;         /* numeric address to bind; NULL means "127.0.0.1" */
    uint16_t port;            /* 0 picks a free port (tests); see ar_health_port */
    ar_metrics_t *metrics;    /* may be NULL: /metrics then answers an empty body */
    ar_health_ready_cb ready; /* NULL means always ready */
    void *ready_data;
    size_t max_request;       /* bytes of one request head; 0 means 8 KiB */
    uint64_t idle_timeout_ms; /* 0 means 10 s */
    unsigned max_conns;       /* 0 means 64 */
    const char *extra_path;   /* e.g. "/load"; NULL: none (must outlive the server) */
    ar_health_extra_cb extra; /* its body, at most 4 KiB */
    void *extra_data;
    const char *action_path;    /* e.g. "/drain"; NULL: none (must outlive the server) */
    ar_health_action_cb action; /* POST only, from loopback only */
    void *action_data;
} ar_health_opts_t;

/*
 * Binds and starts serving on loop. Returns 0 with *out set, AR_EINVAL (bad host),
 * AR_EADDRINUSE, AR_ESYS or AR_ENOMEM.
 */
AR_MUST_CHECK int ar_health_start(uv_loop_t *loop, const ar_health_opts_t *opts, ar_health_t **out);
/* The bound port (the real one when opts.port was 0). */
uint16_t ar_health_port(const ar_health_t *h);
/*
 * Stops listening, closes every connection and frees h once libuv has closed the handles (so
 * the loop must run afterwards). Call on the loop's thread; h must not be used after.
 */
void ar_health_stop(ar_health_t *h);

#endif
