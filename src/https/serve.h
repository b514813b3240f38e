/*
 * What the anteroom-app and anteroom-monitor daemons share around their HTTPS listener: the
 * configuration rows both take (listener, certificate, origin, store, health listener, log
 * level), their checks, the store's migrations before anything is served, and the loop that runs
 * until SIGINT or SIGTERM and reloads on SIGHUP.
 */
#ifndef ANTEROOM_HTTPS_SERVE_H
#define ANTEROOM_HTTPS_SERVE_H

#include "anteroom/conf.h"
#include "anteroom/health.h"
#include "anteroom/log.h"
#include "anteroom/store.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* A daemon's configuration struct begins with this (the rows' offsets assume it). */
typedef struct {
    char *listen_host;
    int64_t listen_port;
    char *cert;
    char *key;
    char *origin;
    char *store;
    char *store_target;
    int64_t store_threads;
    int64_t max_conns;
    char *health_host;
    int64_t health_port;
    char *log_level;
} ar_serve_conf_t;

#define AR__SERVE_O(f) offsetof(ar_serve_conf_t, f)
/* The shared rows, with each daemon's defaults and its words for the origin. */
/* clang-format off */
#define AR_SERVE_CONF_ROWS(def_port, origin_text, def_threads, def_health)                        \
    {"listen-host", AR_CONF_STR, AR__SERVE_O(listen_host), "127.0.0.1", 0, 0,                     \
     "address to serve HTTPS on"},                                                                \
    {"listen-port", AR_CONF_INT, AR__SERVE_O(listen_port), def_port, 0, 65535,                    \
     "HTTPS port (0: any free)"},                                                                 \
    {"cert", AR_CONF_STR, AR__SERVE_O(cert), NULL, 0, 0,                                          \
     "certificate chain (PEM); reloaded on SIGHUP"},                                              \
    {"key", AR_CONF_STR, AR__SERVE_O(key), NULL, 0, 0, "private key (PEM)"},                      \
    {"origin", AR_CONF_STR, AR__SERVE_O(origin), NULL, 0, 0, origin_text},                        \
    {"store", AR_CONF_STR, AR__SERVE_O(store), "sqlite", 0, 0, "sqlite or postgresql"},           \
    {"store-target", AR_CONF_STR, AR__SERVE_O(store_target), NULL, 0, 0,                          \
     "SQLite file, or libpq connection string"},                                                  \
    {"store-threads", AR_CONF_INT, AR__SERVE_O(store_threads), def_threads, 1, 16,                \
     "store worker threads"},                                                                     \
    {"max-conns", AR_CONF_INT, AR__SERVE_O(max_conns), "10000", 1, 1000000,                       \
     "open HTTPS connections at most; more are closed at once"},                                  \
    {"health-host", AR_CONF_STR, AR__SERVE_O(health_host), "127.0.0.1", 0, 0,                     \
     "operator listener address"},                                                                \
    {"health-port", AR_CONF_INT, AR__SERVE_O(health_port), def_health, 0, 65535,                  \
     "operator listener port (/healthz, /readyz, /metrics)"},                                     \
    {"log-level", AR_CONF_STR, AR__SERVE_O(log_level), "info", 0, 0, "debug, info, warn or error"}
/* clang-format on */

/*
 * Checks the shared rows, then the daemon's own required options (names[i] must be set when
 * values[i] is NULL: "keys", "servers"...), and starts logging as component comp. Prints what is
 * wrong as "<prog>: missing --x" or "<prog>: bad --store or --log-level" and returns 2 (the exit
 * status for a bad command line), else 0.
 */
int ar_serve_check(const ar_serve_conf_t *c, const char *prog, const char *comp,
                   const char *const *names, const void *const *values, size_t n);

/* The store options the shared rows name. */
ar_store_opts_t ar_serve_store_opts(const ar_serve_conf_t *c);

/*
 * Runs the migrations once, synchronously, before anything is served, then seed (may be NULL)
 * on the same connection. Logs store_unusable on failure.
 */
int ar_serve_migrate(const ar_serve_conf_t *c, int (*seed)(ar_store_conn_t *conn, void *data),
                     void *data);

/* The daemon's loop: signals to watch, and what they do. */
typedef struct {
    uv_loop_t loop;
    uv_signal_t sig[3];
    void (*reload)(void *data); /* SIGHUP */
    void (*stop)(void *data);   /* SIGINT, SIGTERM: stop everything so that the loop ends */
    void *data;
} ar_serve_loop_t;

/* Starts watching SIGINT, SIGTERM and SIGHUP on l->loop (which the caller has initialised). */
void ar_serve_watch_signals(ar_serve_loop_t *l);

#endif
