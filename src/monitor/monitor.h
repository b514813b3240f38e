/*
 * anteroom-monitor as a library (ar_monitor): the write-only HTTPS ingest endpoint for call
 * statistics (mission S7) and the per-clinic, per-waiting-area, per-hour aggregates built from
 * them (A4). docs/monitor.md has the schema, the CORS design and the aggregates.
 *
 * Public listener (HTTP/1.1 and HTTP/2 over TLS through libh2o, like anteroom-app):
 *   POST /v1/stats     204, no body: a report was accepted
 *   OPTIONS /v1/stats  CORS preflight: allowed only for the configured origin
 * Every other method on /v1/stats answers 405 and every other path 404; every refusal (400, 401,
 * 403, 413, 415, 429, 503) has an empty body, so nothing a browser could read ever comes back.
 *
 * A report is accepted only with a valid call token (audience "monitor"). The token decides the
 * clinic and waiting area; the token itself, the room, the subject and the peer's address are
 * never kept: aggregates are keyed by clinic, area and hour only.
 */
#ifndef ANTEROOM_MONITOR_H
#define ANTEROOM_MONITOR_H

#include "anteroom/err.h"
#include "anteroom/metrics.h"
#include "anteroom/store.h"
#include "anteroom/token.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct ar_monitor_s ar_monitor_t;

/* Seconds since the Unix epoch; injected so tests can move between hours. Loop thread. */
typedef int64_t (*ar_monitor_clock_cb)(void *data);
/* Fires once on the loop thread: after a flush (status 0 or the store's error), or after stop
 * has written the last aggregates and freed the monitor. */
typedef void (*ar_monitor_done_cb)(int status, void *data);

typedef struct ar_monitor_opts_s {
    const char *host;      /* numeric address to bind; NULL means "127.0.0.1" */
    uint16_t port;         /* 0 picks a free port (tests); see ar_monitor_port */
    const char *cert_path; /* PEM chain and key, re-read by ar_monitor_reload_tls */
    const char *key_path;
    /* The deployment's origin ("https://app.example.org"): the only one CORS lets send. */
    const char *origin;
    const ar_token_keyring_t *keys; /* public keys tokens are verified with; copied */
    ar_store_pool_t *store;         /* borrowed; must outlive the monitor's stop callback */
    ar_metrics_t *metrics;          /* borrowed; counters are registered in it; required */
    uint64_t flush_ms;              /* aggregates go to the store this often; 0 means 60 s */
    size_t max_body;                /* bytes; 0 means AR_STATS_BODY_MAX (4 KiB) */
    unsigned max_conns;             /* open connections at most; 0 means 10000 */
    /* Per-token rate limit: a bucket of `rate_burst` reports refilled at `rate_per_min`.
     * 0 means 6 and 12 (a report every 5 s sustained; clients send one every 10 s). */
    unsigned rate_burst;
    unsigned rate_per_min;
    unsigned rate_entries;     /* tokens tracked at most (LRU within sets); 0 means 65536 */
    unsigned agg_entries;      /* clinic-area-hours held between flushes; 0 means 4096 */
    ar_monitor_clock_cb clock; /* NULL means the system clock */
    void *clock_data;
} ar_monitor_opts_t;

/*
 * Loads TLS, binds and starts serving on loop. Returns 0 with *out, or AR_EINVAL (a missing
 * option, bad host or origin), AR_ETLS, AR_EADDRINUSE, AR_ESYS, AR_ENOMEM.
 */
AR_MUST_CHECK int ar_monitor_start(uv_loop_t *loop, const ar_monitor_opts_t *opts,
                                   ar_monitor_t **out);
uint16_t ar_monitor_port(const ar_monitor_t *m);
/* Re-reads the certificate and key (SIGHUP); on error the old ones stay. Loop thread. */
AR_MUST_CHECK int ar_monitor_reload_tls(ar_monitor_t *m);
/* Replaces the token verification keys (key rotation: SIGHUP re-reads the keys file). */
void ar_monitor_set_keys(ar_monitor_t *m, const ar_token_keyring_t *keys);
/* Writes the aggregates held now to the store; done fires when they are written. Returns 0 or
 * AR_ESTATE when a flush is already running (then done never fires). Loop thread. */
AR_MUST_CHECK int ar_monitor_flush(ar_monitor_t *m, ar_monitor_done_cb done, void *data);
/* Stops listening, writes the last aggregates, waits for connections to close (at most 5 s),
 * frees the monitor, then calls done (may be NULL). Loop thread. */
void ar_monitor_stop(ar_monitor_t *m, ar_monitor_done_cb done, void *data);

#endif
