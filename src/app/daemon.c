/*
 * The anteroom-app daemon. Configuration comes from one table (conf.h: file, ANTEROOM_APP_*
 * variables, --flags); see docs/configuration.md for the common rules.
 */
#include "daemon.h"

#include "app.h"
#include "keys.h"
#include "servers.h"

#include "anteroom/conf.h"
#include "anteroom/health.h"
#include "anteroom/log.h"
#include "anteroom/rand.h"

#include <signal.h>
#include <sodium.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    char *listen_host;
    int64_t listen_port;
    char *cert;
    char *key;
    char *origin;
    char *web_dir;
    char *store;
    char *store_target;
    int64_t store_threads;
    int64_t max_conns;
    char *health_host;
    int64_t health_port;
    int64_t session_idle_ms;
    int64_t session_max_ms;
    char *log_level;
    char *seal_key;
    char *seal_key_file;
    char *servers;
    int64_t entry_per_minute;
    char *turn_secret;
} app_conf_t;

#define O(f) offsetof(app_conf_t, f)
static const ar_conf_opt_t opts[] = {
    {"listen-host", AR_CONF_STR, O(listen_host), "127.0.0.1", 0, 0, "address to serve HTTPS on"},
    {"listen-port", AR_CONF_INT, O(listen_port), "8443", 0, 65535, "HTTPS port (0: any free)"},
    {"cert", AR_CONF_STR, O(cert), NULL, 0, 0, "certificate chain (PEM); reloaded on SIGHUP"},
    {"key", AR_CONF_STR, O(key), NULL, 0, 0, "private key (PEM)"},
    {"origin", AR_CONF_STR, O(origin), NULL, 0, 0,
     "public origin browsers use, e.g. https://app.example.org"},
    {"web-dir", AR_CONF_STR, O(web_dir), NULL, 0, 0, "built web client (build/web)"},
    {"store", AR_CONF_STR, O(store), "sqlite", 0, 0, "sqlite or postgresql"},
    {"store-target", AR_CONF_STR, O(store_target), NULL, 0, 0,
     "SQLite file, or libpq connection string"},
    {"store-threads", AR_CONF_INT, O(store_threads), "4", 1, 16, "store worker threads"},
    {"max-conns", AR_CONF_INT, O(max_conns), "10000", 1, 1000000,
     "open HTTPS connections at most; more are closed at once"},
    {"health-host", AR_CONF_STR, O(health_host), "127.0.0.1", 0, 0, "operator listener address"},
    {"health-port", AR_CONF_INT, O(health_port), "9102", 0, 65535,
     "operator listener port (/healthz, /readyz, /metrics)"},
    {"session-idle", AR_CONF_DURATION, O(session_idle_ms), "30m", 60000, 86400000,
     "sessions end after this long without a request"},
    {"session-max", AR_CONF_DURATION, O(session_max_ms), "12h", 60000, 2592000000,
     "sessions end this long after sign-in, whatever the activity"},
    {"log-level", AR_CONF_STR, O(log_level), "info", 0, 0, "debug, info, warn or error"},
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
};
#define NOPTS (sizeof(opts) / sizeof(opts[0]))

typedef struct {
    ar_app_t *app;
    ar_health_t *health;
    ar_store_pool_t *pool;
    uv_signal_t sig[3];
} run_t;

static void on_signal(uv_signal_t *s, int signum)
{
    run_t *run = s->data;
    if (signum == SIGHUP) {
        /* A bad file keeps the old certificate (and is logged by tls.c). */
        if (ar_app_reload_tls(run->app) < 0)
            ar_log(AR_LOG_WARN, "app_tls_reload_kept_old");
        return;
    }
    ar_log(AR_LOG_INFO, "app_stopping");
    ar_app_stop(run->app);
    ar_health_stop(run->health);
    ar_store_pool_close(run->pool);
    for (int i = 0; i < 3; i++)
        uv_close((uv_handle_t *)&run->sig[i], NULL);
}

/*
 * Refuses a configuration that would hand a client a server outside its clinic's jurisdiction
 * (S10): every clinic's jurisdiction must have its own signalling and TURN servers. Then makes
 * the first signing key and adopts the configured TURN secret (what `anteroom up` and the
 * relay share), if one is set.
 */
static int check_and_seed(ar_store_conn_t *conn, const ar_app_servers_t *servers,
                          const uint8_t *seal, const char *turn_secret)
{
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
    /* The seal key: 32 bytes as hex, from --seal-key (file, environment or flag) or a file. */
    uint8_t seal[32];
    int have_seal;
    if (ar_app_seal_key_load(c->seal_key, c->seal_key_file, seal, &have_seal) < 0) {
        ar_log(AR_LOG_ERROR, "app_seal_key_invalid");
        return AR_ECONFIG;
    }
    ar_store_opts_t so = {.kind = strcmp(c->store, "sqlite") == 0 ? AR_STORE_SQLITE : AR_STORE_PG,
                          .target = c->store_target};
    /* Migrations run once, synchronously, before anything is served. */
    ar_store_conn_t *conn;
    int rc = ar_store_open(&so, &conn);
    if (rc == 0) {
        rc = ar_store_migrate(conn);
        if (rc == 0)
            rc = check_and_seed(conn, servers, seal, c->turn_secret);
        ar_store_close(conn);
    }
    if (rc < 0) {
        ar_log(AR_LOG_ERROR, "store_unusable", AR_LF_ERR("err", rc));
        sodium_memzero(seal, sizeof(seal));
        return rc;
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    run_t run = {0};
    rc = ar_store_pool_open(&loop, &so, (unsigned)c->store_threads, 0, &run.pool);
    ar_app_opts_t ao = {.host = c->listen_host,
                        .port = (uint16_t)c->listen_port,
                        .cert_path = c->cert,
                        .key_path = c->key,
                        .origin = c->origin,
                        .web_dir = c->web_dir,
                        .store = run.pool,
                        .session_idle_s = c->session_idle_ms / 1000,
                        .session_max_s = c->session_max_ms / 1000,
                        .max_conns = (unsigned)c->max_conns,
                        .seal_key = have_seal ? seal : NULL,
                        .servers = servers,
                        .entry_per_minute = (unsigned)c->entry_per_minute};
    if (rc == 0)
        rc = ar_app_start(&loop, &ao, &run.app);
    ar_health_opts_t ho = {.host = c->health_host, .port = (uint16_t)c->health_port};
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
        ar_log(AR_LOG_ERROR, "app_start_failed", AR_LF_ERR("err", rc));
        if (run.app != NULL)
            ar_app_stop(run.app);
        if (run.pool != NULL)
            ar_store_pool_close(run.pool);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    sodium_memzero(seal, sizeof(seal));
    return rc;
}

int ar_app_main(int argc, char **argv)
{
    char err[512];
    app_conf_t c;
    memset(&c, 0, sizeof(c));
    int rc = ar_conf_load(opts, NOPTS, &c, "ANTEROOM_APP_", argc, argv, err, sizeof(err));
    if (rc == 1)
        return 0;
    if (rc < 0) {
        fprintf(stderr, "anteroom-app: %s\n", err);
        return 2;
    }
    ar_log_level_t level;
    const char *missing = c.cert == NULL           ? "cert"
                          : c.key == NULL          ? "key"
                          : c.origin == NULL       ? "origin"
                          : c.store_target == NULL ? "store-target"
                          : c.servers == NULL      ? "servers"
                                                   : NULL;
    if (missing != NULL || ar_log_level_parse(c.log_level, &level) != 0 ||
        (strcmp(c.store, "sqlite") != 0 && strcmp(c.store, "postgresql") != 0)) {
        fprintf(stderr, "anteroom-app: %s%s\n",
                missing ? "missing --" : "bad --store or --log-level", missing ? missing : "");
        ar_conf_free(opts, NOPTS, &c);
        return 2;
    }
    ar_log_init("app", level);
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
