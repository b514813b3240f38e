/*
 * The anteroom-monitor daemon. Configuration comes from one table (conf.h: file,
 * ANTEROOM_MONITOR_* variables, --flags); docs/monitor.md lists the options.
 */
#include "daemon.h"

#include "monitor.h"

#include "anteroom/conf.h"
#include "anteroom/health.h"
#include "anteroom/log.h"
#include "anteroom/rand.h"

#include <signal.h>
#include <sodium.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    char *listen_host;
    int64_t listen_port;
    char *cert;
    char *key;
    char *origin;
    char *keys;
    char *store;
    char *store_target;
    int64_t store_threads;
    int64_t flush_ms;
    int64_t max_conns;
    int64_t rate_burst;
    int64_t rate_per_min;
    int64_t rate_entries;
    int64_t agg_entries;
    char *health_host;
    int64_t health_port;
    char *log_level;
} mon_conf_t;

#define O(f) offsetof(mon_conf_t, f)
static const ar_conf_opt_t opts[] = {
    {"listen-host", AR_CONF_STR, O(listen_host), "127.0.0.1", 0, 0, "address to serve HTTPS on"},
    {"listen-port", AR_CONF_INT, O(listen_port), "8444", 0, 65535, "HTTPS port (0: any free)"},
    {"cert", AR_CONF_STR, O(cert), NULL, 0, 0, "certificate chain (PEM); reloaded on SIGHUP"},
    {"key", AR_CONF_STR, O(key), NULL, 0, 0, "private key (PEM)"},
    {"origin", AR_CONF_STR, O(origin), NULL, 0, 0,
     "the deployment's origin, the only one CORS lets send, e.g. https://app.example.org"},
    {"keys", AR_CONF_STR, O(keys), NULL, 0, 0,
     "token public keys: one 'kid base64url-key' per line"},
    {"store", AR_CONF_STR, O(store), "sqlite", 0, 0, "sqlite or postgresql"},
    {"store-target", AR_CONF_STR, O(store_target), NULL, 0, 0,
     "SQLite file, or libpq connection string"},
    {"store-threads", AR_CONF_INT, O(store_threads), "1", 1, 16, "store worker threads"},
    {"flush-interval", AR_CONF_DURATION, O(flush_ms), "60s", 1000, 3600000,
     "how often aggregates are written to the store"},
    {"max-conns", AR_CONF_INT, O(max_conns), "10000", 1, 1000000,
     "open HTTPS connections at most; more are closed at once"},
    {"rate-burst", AR_CONF_INT, O(rate_burst), "6", 1, 1000000, "reports a token may send at once"},
    {"rate-per-minute", AR_CONF_INT, O(rate_per_min), "12", 1, 100000000,
     "reports per minute a token may send sustained"},
    {"rate-entries", AR_CONF_INT, O(rate_entries), "65536", 64, 16777216,
     "tokens the rate limiter tracks at most"},
    {"agg-entries", AR_CONF_INT, O(agg_entries), "4096", 16, 1048576,
     "clinic-area-hours held in memory between flushes at most"},
    {"health-host", AR_CONF_STR, O(health_host), "127.0.0.1", 0, 0, "operator listener address"},
    {"health-port", AR_CONF_INT, O(health_port), "9103", 0, 65535,
     "operator listener port (/healthz, /readyz, /metrics)"},
    {"log-level", AR_CONF_STR, O(log_level), "info", 0, 0, "debug, info, warn or error"},
};
#define NOPTS (sizeof(opts) / sizeof(opts[0]))

int ar_monitor_load_keys(const char *path, ar_token_keyring_t *ring)
{
    FILE *f = path != NULL ? fopen(path, "r") : NULL;
    if (f == NULL)
        return AR_EIO;
    char line[256];
    int rc = 0;
    while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
        char kid[40], b64[80];
        if (line[0] == '#' || line[0] == '\n')
            continue;
        ar_token_key_t k;
        memset(&k, 0, sizeof(k));
        size_t n = 0;
        if (sscanf(line, "%39s %79s", kid, b64) != 2 || strlen(kid) > 32 ||
            sodium_base642bin(k.pk, sizeof(k.pk), b64, strlen(b64), NULL, &n, NULL,
                              sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
            n != sizeof(k.pk)) {
            rc = AR_ECONFIG;
            break;
        }
        memcpy(k.kid, kid, strlen(kid) + 1);
        rc = ar_token_keyring_add(ring, &k);
    }
    fclose(f);
    return rc != 0 ? rc : ring->count > 0 ? 0 : AR_ECONFIG;
}

typedef struct {
    const char *keys_path;
    ar_monitor_t *mon;
    ar_health_t *health;
    ar_store_pool_t *pool;
    uv_signal_t sig[3];
} run_t;

/* The last aggregates are written before the pool closes: stop calls back once they are. */
static void on_stopped(int status, void *data)
{
    (void)status;
    run_t *run = data;
    ar_store_pool_close(run->pool);
}

static void on_signal(uv_signal_t *s, int signum)
{
    run_t *run = s->data;
    if (signum == SIGHUP) {
        if (ar_monitor_reload_tls(run->mon) < 0)
            ar_log0(AR_LOG_WARN, "monitor_tls_reload_kept_old");
        /* The app rotates its signing keys with overlap; the new public keys arrive here. */
        ar_token_keyring_t ring;
        memset(&ring, 0, sizeof(ring));
        int rc = ar_monitor_load_keys(run->keys_path, &ring);
        if (rc == 0)
            ar_monitor_set_keys(run->mon, &ring);
        else
            ar_log(AR_LOG_WARN, "monitor_keys_reload_kept_old", AR_LF_ERR("err", rc));
        ar_token_keyring_wipe(&ring);
        return;
    }
    ar_log0(AR_LOG_INFO, "monitor_stopping");
    ar_monitor_stop(run->mon, on_stopped, run);
    ar_health_stop(run->health);
    for (int i = 0; i < 3; i++)
        uv_close((uv_handle_t *)&run->sig[i], NULL);
}

static int run_monitor(const mon_conf_t *c, const ar_token_keyring_t *ring)
{
    ar_store_opts_t so = {.kind = strcmp(c->store, "sqlite") == 0 ? AR_STORE_SQLITE : AR_STORE_PG,
                          .target = c->store_target};
    ar_store_conn_t *conn;
    int rc = ar_store_open(&so, &conn);
    if (rc == 0) {
        rc = ar_store_migrate(conn);
        ar_store_close(conn);
    }
    if (rc < 0) {
        ar_log(AR_LOG_ERROR, "store_unusable", AR_LF_ERR("err", rc));
        return rc;
    }
    ar_metrics_t *metrics = ar_metrics_new();
    if (metrics == NULL)
        return AR_ENOMEM;
    uv_loop_t loop;
    uv_loop_init(&loop);
    run_t run = {.keys_path = c->keys};
    rc = ar_store_pool_open(&loop, &so, (unsigned)c->store_threads, 0, &run.pool);
    ar_monitor_opts_t mo = {.host = c->listen_host,
                            .port = (uint16_t)c->listen_port,
                            .cert_path = c->cert,
                            .key_path = c->key,
                            .origin = c->origin,
                            .keys = ring,
                            .store = run.pool,
                            .metrics = metrics,
                            .flush_ms = (uint64_t)c->flush_ms,
                            .max_conns = (unsigned)c->max_conns,
                            .rate_burst = (unsigned)c->rate_burst,
                            .rate_per_min = (unsigned)c->rate_per_min,
                            .rate_entries = (unsigned)c->rate_entries,
                            .agg_entries = (unsigned)c->agg_entries};
    if (rc == 0)
        rc = ar_monitor_start(&loop, &mo, &run.mon);
    ar_health_opts_t ho = {
        .host = c->health_host, .port = (uint16_t)c->health_port, .metrics = metrics};
    if (rc == 0)
        rc = ar_health_start(&loop, &ho, &run.health);
    if (rc == 0) {
        const int sigs[3] = {SIGINT, SIGTERM, SIGHUP};
        for (int i = 0; i < 3; i++) {
            uv_signal_init(&loop, &run.sig[i]);
            run.sig[i].data = &run;
            uv_signal_start(&run.sig[i], on_signal, sigs[i]);
        }
    } else {
        ar_log(AR_LOG_ERROR, "monitor_start_failed", AR_LF_ERR("err", rc));
        if (run.mon != NULL)
            ar_monitor_stop(run.mon, on_stopped, &run);
        else if (run.pool != NULL)
            ar_store_pool_close(run.pool);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    ar_metrics_free(metrics);
    return rc;
}

int ar_monitor_main(int argc, char **argv)
{
    char err[512];
    mon_conf_t c;
    memset(&c, 0, sizeof(c));
    int rc = ar_conf_load(opts, NOPTS, &c, "ANTEROOM_MONITOR_", argc, argv, err, sizeof(err));
    if (rc == 1) {
        ar_conf_free(opts, NOPTS, &c); /* --help: the defaults were already applied */
        return 0;
    }
    if (rc < 0) {
        fprintf(stderr, "anteroom-monitor: %s\n", err);
        return 2;
    }
    ar_log_level_t level;
    const char *missing = c.cert == NULL           ? "cert"
                          : c.key == NULL          ? "key"
                          : c.origin == NULL       ? "origin"
                          : c.keys == NULL         ? "keys"
                          : c.store_target == NULL ? "store-target"
                                                   : NULL;
    if (missing != NULL || ar_log_level_parse(c.log_level, &level) != 0 ||
        (strcmp(c.store, "sqlite") != 0 && strcmp(c.store, "postgresql") != 0)) {
        fprintf(stderr, "anteroom-monitor: %s%s\n",
                missing ? "missing --" : "bad --store or --log-level", missing ? missing : "");
        ar_conf_free(opts, NOPTS, &c);
        return 2;
    }
    ar_log_init("monitor", level);
    ar_token_keyring_t ring;
    memset(&ring, 0, sizeof(ring));
    if (ar_rand_init() != 0) {
        ar_conf_free(opts, NOPTS, &c);
        return 1;
    }
    if ((rc = ar_monitor_load_keys(c.keys, &ring)) != 0) {
        fprintf(stderr, "anteroom-monitor: --keys: %s\n", ar_strerror(rc));
        ar_conf_free(opts, NOPTS, &c);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    rc = run_monitor(&c, &ring);
    ar_token_keyring_wipe(&ring);
    ar_conf_free(opts, NOPTS, &c);
    return rc == 0 ? 0 : 1;
}
