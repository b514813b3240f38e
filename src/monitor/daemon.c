/*
 * The anteroom-monitor daemon. Configuration comes from one table (conf.h: file,
 * ANTEROOM_MONITOR_* variables, --flags); docs/monitor.md lists the options.
 */
#include "daemon.h"

#include "monitor.h"

#include "serve.h"

#include "anteroom/rand.h"

#include <signal.h>
#include <sodium.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    ar_serve_conf_t base; /* first: the shared rows' offsets assume it */
    char *keys;
    int64_t flush_ms;
    int64_t rate_burst;
    int64_t rate_per_min;
    int64_t rate_entries;
    int64_t agg_entries;
} mon_conf_t;

#define O(f) offsetof(mon_conf_t, f)
static const ar_conf_opt_t opts[] = {
    AR_SERVE_CONF_ROWS("8444",
                       "the deployment's origin, the only one CORS lets send, e.g. "
                       "https://app.example.org",
                       "1", "9103"),
    {"keys", AR_CONF_STR, O(keys), NULL, 0, 0,
     "token public keys: one 'kid base64url-key' per line"},
    {"flush-interval", AR_CONF_DURATION, O(flush_ms), "60s", 1000, 3600000,
     "how often aggregates are written to the store"},
    {"rate-burst", AR_CONF_INT, O(rate_burst), "6", 1, 1000000, "reports a token may send at once"},
    {"rate-per-minute", AR_CONF_INT, O(rate_per_min), "12", 1, 100000000,
     "reports per minute a token may send sustained"},
    {"rate-entries", AR_CONF_INT, O(rate_entries), "65536", 64, 16777216,
     "tokens the rate limiter tracks at most"},
    {"agg-entries", AR_CONF_INT, O(agg_entries), "4096", 16, 1048576,
     "clinic-area-hours held in memory between flushes at most"},
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
    ar_serve_loop_t l;
    const char *keys_path;
    ar_monitor_t *mon;
    ar_health_t *health;
    ar_store_pool_t *pool;
} run_t;

/* The last aggregates are written before the pool closes: stop calls back once they are. */
static void on_stopped(int status, void *data)
{
    (void)status;
    run_t *run = data;
    ar_store_pool_close(run->pool);
}

static void on_reload(void *data)
{
    run_t *run = data;
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
}

static void on_stop(void *data)
{
    run_t *run = data;
    ar_log0(AR_LOG_INFO, "monitor_stopping");
    ar_monitor_stop(run->mon, on_stopped, run);
    ar_health_stop(run->health);
}

static int run_monitor(const mon_conf_t *c, const ar_token_keyring_t *ring)
{
    int rc = ar_serve_migrate(&c->base, NULL, NULL);
    if (rc < 0)
        return rc;
    ar_metrics_t *metrics = ar_metrics_new();
    if (metrics == NULL)
        return AR_ENOMEM;
    run_t run = {.l = {.reload = on_reload, .stop = on_stop}, .keys_path = c->keys};
    run.l.data = &run;
    uv_loop_init(&run.l.loop);
    ar_store_opts_t so = ar_serve_store_opts(&c->base);
    rc = ar_store_pool_open(&run.l.loop, &so, (unsigned)c->base.store_threads, 0, &run.pool);
    ar_monitor_opts_t mo = {.host = c->base.listen_host,
                            .port = (uint16_t)c->base.listen_port,
                            .cert_path = c->base.cert,
                            .key_path = c->base.key,
                            .origin = c->base.origin,
                            .keys = ring,
                            .store = run.pool,
                            .metrics = metrics,
                            .flush_ms = (uint64_t)c->flush_ms,
                            .max_conns = (unsigned)c->base.max_conns,
                            .rate_burst = (unsigned)c->rate_burst,
                            .rate_per_min = (unsigned)c->rate_per_min,
                            .rate_entries = (unsigned)c->rate_entries,
                            .agg_entries = (unsigned)c->agg_entries};
    if (rc == 0)
        rc = ar_monitor_start(&run.l.loop, &mo, &run.mon);
    ar_health_opts_t ho = {
        .host = c->base.health_host, .port = (uint16_t)c->base.health_port, .metrics = metrics};
    if (rc == 0)
        rc = ar_health_start(&run.l.loop, &ho, &run.health);
    if (rc == 0) {
        ar_serve_watch_signals(&run.l);
    } else {
        ar_log(AR_LOG_ERROR, "monitor_start_failed", AR_LF_ERR("err", rc));
        if (run.mon != NULL)
            ar_monitor_stop(run.mon, on_stopped, &run);
        else if (run.pool != NULL)
            ar_store_pool_close(run.pool);
    }
    uv_run(&run.l.loop, UV_RUN_DEFAULT);
    uv_loop_close(&run.l.loop);
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
    static const char *const names[] = {"keys"};
    const void *const values[] = {c.keys};
    if ((rc = ar_serve_check(&c.base, "anteroom-monitor", "monitor", names, values, 1)) != 0) {
        ar_conf_free(opts, NOPTS, &c);
        return rc;
    }
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
