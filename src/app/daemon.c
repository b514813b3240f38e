/*
 * The anteroom-app daemon. Configuration comes from one table (conf.h: file, ANTEROOM_APP_*
 * variables, --flags); see docs/configuration.md for the common rules.
 */
#include "daemon.h"

#include "app.h"
#include "keys.h"
#include "servers.h"

#include "serve.h"

#include "anteroom/rand.h"

#include <signal.h>
#include <sodium.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    ar_serve_conf_t base; /* first: the shared rows' offsets assume it */
    char *web_dir;
    int64_t session_idle_ms;
    int64_t session_max_ms;
    char *seal_key;
    char *seal_key_file;
    char *servers;
    int64_t entry_per_minute;
    char *turn_secret;
    int64_t keeping_sweep_ms;
} app_conf_t;

#define O(f) offsetof(app_conf_t, f)
static const ar_conf_opt_t opts[] = {
    AR_SERVE_CONF_ROWS("8443", "public origin browsers use, e.g. https://app.example.org", "4",
                       "9102"),
    {"web-dir", AR_CONF_STR, O(web_dir), NULL, 0, 0, "built web client (build/web)"},
    {"session-idle", AR_CONF_DURATION, O(session_idle_ms), "30m", 60000, 86400000,
     "sessions end after this long without a request"},
    {"session-max", AR_CONF_DURATION, O(session_max_ms), "12h", 60000, 2592000000,
     "sessions end this long after sign-in, whatever the activity"},
    {"seal-key", AR_CONF_STR, O(seal_key), NULL, 0, 0,
     "64 hex digits sealing TOTP secrets, signing keys and TURN secrets at rest; the same on "
     "every instance (prefer --seal-key-file or ANTEROOM_APP_SEAL_KEY: ps shows flags)"},
    {"seal-key-file", AR_CONF_STR, O(seal_key_file), NULL, 0, 0,
     "file holding the seal key (64 hex digits), instead of --seal-key"},
    {"servers", AR_CONF_STR, O(servers), NULL, 0, 0,
     "servers file: signalling and TURN servers per jurisdiction (docs/api.md)"},
    {"entry-per-minute", AR_CONF_INT, O(entry_per_minute), "10", 1, 100000,
     "patient entries allowed per client address and minute"},
    {"turn-secret", AR_CONF_STR, O(turn_secret), NULL, 0, 0,
     "the relays' TURN REST secret; becomes the newest in the store (prefer the environment "
     "variable ANTEROOM_APP_TURN_SECRET: ps shows flags)"},
    {"keeping-sweep", AR_CONF_DURATION, O(keeping_sweep_ms), "60s", 1000, 3600000,
     "how often expired encrypted-keeping uploads are deleted (docs/keeping.md)"},
};
#define NOPTS (sizeof(opts) / sizeof(opts[0]))

typedef struct {
    ar_serve_loop_t l;
    ar_app_t *app;
    ar_health_t *health;
    ar_store_pool_t *pool;
} run_t;

static void on_reload(void *data)
{
    run_t *run = data;
    /* A bad file keeps the old certificate (and is logged by tls.c). */
    if (ar_app_reload_tls(run->app) < 0)
        ar_log(AR_LOG_WARN, "app_tls_reload_kept_old");
}

static void on_stop(void *data)
{
    run_t *run = data;
    ar_log(AR_LOG_INFO, "app_stopping");
    /* The app first: its keeping sweep stops submitting before the pool closes. */
    ar_app_stop(run->app);
    ar_health_stop(run->health);
    ar_store_pool_close(run->pool);
}

/*
 * Refuses a configuration that would hand a client a server outside its clinic's jurisdiction
 * (S10): every clinic's jurisdiction must have its own signalling and TURN servers. Then makes
 * the first signing key and adopts the configured TURN secret (what `anteroom up` and the
 * relay share), if one is set.
 */
typedef struct {
    const ar_app_servers_t *servers;
    const uint8_t *seal; /* NULL: secrets stay unsealed (no seal key given) */
    const char *turn_secret;
} seed_t;

static int check_and_seed(ar_store_conn_t *conn, void *data)
{
    const ar_app_servers_t *servers = ((seed_t *)data)->servers;
    const char *turn_secret = ((seed_t *)data)->turn_secret;
    const uint8_t *seal = ((seed_t *)data)->seal;
    char err[256];
    int rc = ar_app_servers_check_store(servers, conn, err, sizeof(err));
    if (rc == AR_EPERM) {
        fprintf(stderr, "anteroom-app: refusing to start: %s\n", err);
        ar_log(AR_LOG_ERROR, "jurisdiction_unserved");
        return rc;
    }
    if (rc == 0)
        rc = ar_app_keys_ensure(conn, seal, (int64_t)time(NULL), turn_secret);
    if (rc == AR_EAUTH)
        ar_log(AR_LOG_ERROR, "app_seal_key_wrong"); /* the store was sealed under another key */
    return rc;
}

static int run_app(const app_conf_t *c, ar_app_servers_t *servers)
{
    /* The seal key: 32 bytes as hex, from --seal-key (file, environment or flag) or a file. It
     * is needed before migrations, which seal the signing keys and TURN secrets at rest. */
    uint8_t seal[32];
    int have_seal;
    if (ar_app_seal_key_load(c->seal_key, c->seal_key_file, seal, &have_seal) < 0) {
        ar_log(AR_LOG_ERROR, "app_seal_key_invalid");
        return AR_ECONFIG;
    }
    /* Without a configured key, seal is all zero: the "unkeyed" seal (keys.h), never NULL. */
    seed_t seed = {.servers = servers, .seal = seal, .turn_secret = c->turn_secret};
    int rc = ar_serve_migrate(&c->base, check_and_seed, &seed);
    if (rc < 0) {
        sodium_memzero(seal, sizeof(seal));
        return rc;
    }
    run_t run = {.l = {.reload = on_reload, .stop = on_stop}};
    run.l.data = &run;
    uv_loop_init(&run.l.loop);
    ar_store_opts_t so = ar_serve_store_opts(&c->base);
    rc = ar_store_pool_open(&run.l.loop, &so, (unsigned)c->base.store_threads, 0, &run.pool);
    ar_app_opts_t ao = {.host = c->base.listen_host,
                        .port = (uint16_t)c->base.listen_port,
                        .cert_path = c->base.cert,
                        .key_path = c->base.key,
                        .origin = c->base.origin,
                        .web_dir = c->web_dir,
                        .store = run.pool,
                        .session_idle_s = c->session_idle_ms / 1000,
                        .session_max_s = c->session_max_ms / 1000,
                        .max_conns = (unsigned)c->base.max_conns,
                        .seal_key = have_seal ? seal : NULL,
                        .servers = servers,
                        .entry_per_minute = (unsigned)c->entry_per_minute,
                        .keeping_sweep_ms = c->keeping_sweep_ms};
    if (rc == 0)
        rc = ar_app_start(&run.l.loop, &ao, &run.app);
    ar_health_opts_t ho = {.host = c->base.health_host, .port = (uint16_t)c->base.health_port};
    if (rc == 0)
        rc = ar_health_start(&run.l.loop, &ho, &run.health);
    if (rc == 0) {
        ar_serve_watch_signals(&run.l);
    } else {
        ar_log(AR_LOG_ERROR, "app_start_failed", AR_LF_ERR("err", rc));
        if (run.app != NULL)
            ar_app_stop(run.app);
        if (run.pool != NULL)
            ar_store_pool_close(run.pool);
    }
    uv_run(&run.l.loop, UV_RUN_DEFAULT);
    uv_loop_close(&run.l.loop);
    sodium_memzero(seal, sizeof(seal));
    return rc;
}

int ar_app_main(int argc, char **argv)
{
    char err[512];
    app_conf_t c;
    memset(&c, 0, sizeof(c));
    int rc = ar_conf_load(opts, NOPTS, &c, "ANTEROOM_APP_", argc, argv, err, sizeof(err));
    if (rc == 1) {
        ar_conf_free(opts, NOPTS, &c); /* --help: the defaults were already applied */
        return 0;
    }
    if (rc < 0) {
        fprintf(stderr, "anteroom-app: %s\n", err);
        return 2;
    }
    static const char *const names[] = {"servers"};
    const void *const values[] = {c.servers};
    if ((rc = ar_serve_check(&c.base, "anteroom-app", "app", names, values, 1)) != 0) {
        ar_conf_free(opts, NOPTS, &c);
        return rc;
    }
    if (ar_rand_init() != 0) {
        ar_conf_free(opts, NOPTS, &c);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    ar_app_servers_t *servers;
    char serr[256];
    rc = ar_app_servers_load(c.servers, &servers, serr, sizeof(serr));
    if (rc < 0) {
        fprintf(stderr, "anteroom-app: refusing to start: --servers: %s\n", serr);
        ar_conf_free(opts, NOPTS, &c);
        return 2;
    }
    /* Without NATS the relays keep configuration order; with it, a bus that cannot connect at
     * start is logged and the order falls back the same way. */
    if (ar_app_servers_watch_load(servers) < 0)
        ar_log(AR_LOG_WARN, "load_reports_unavailable");
    rc = run_app(&c, servers);
    ar_app_servers_free(servers);
    ar_conf_free(opts, NOPTS, &c);
    return rc == 0 ? 0 : 1;
}
