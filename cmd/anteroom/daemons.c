/*
 * The daemons `anteroom up` runs: one table row each. A later issue adds its daemon by writing a
 * build function (the command line it needs from the flags and the state directory) and a row;
 * the supervisor needs nothing else. A row whose binary is not built is reported and skipped.
 */
#include "up.h"

#include "anteroom/alloc.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

int ar__cmd_arg(ar__daemon_cmd_t *cmd, const char *s)
{
    if (cmd->argc >= AR__DAEMON_MAX_ARGS)
        return AR_ETOOBIG;
    char *copy = ar_strndup(s, strlen(s));
    if (copy == NULL)
        return AR_ENOMEM;
    cmd->argv[cmd->argc++] = copy;
    cmd->argv[cmd->argc] = NULL;
    return 0;
}

static int cmd_arg_int(ar__daemon_cmd_t *cmd, int64_t v)
{
    char num[24];
    snprintf(num, sizeof(num), "%lld", (long long)v);
    return ar__cmd_arg(cmd, num);
}

int ar__cmd_env(ar__daemon_cmd_t *cmd, const char *name, const char *value)
{
    if (cmd->envc >= AR__DAEMON_MAX_ENV)
        return AR_ETOOBIG;
    size_t len = strlen(name) + strlen(value) + 2;
    char *kv = ar_malloc(len);
    if (kv == NULL)
        return AR_ENOMEM;
    snprintf(kv, len, "%s=%s", name, value);
    cmd->env[cmd->envc++] = kv;
    return 0;
}

void ar__cmd_free(ar__daemon_cmd_t *cmd)
{
    for (size_t i = 0; i < cmd->argc; i++)
        ar_free(cmd->argv[i]);
    for (size_t i = 0; i < cmd->envc; i++) {
        sodium_memzero(cmd->env[i], strlen(cmd->env[i]));
        ar_free(cmd->env[i]);
    }
    memset(cmd, 0, sizeof(*cmd));
}

/* "127.0.0.1:3478" or "[::1]:3478". */
static void host_port(char *out, size_t outlen, const char *host, int64_t port)
{
    int v6 = strchr(host, ':') != NULL;
    snprintf(out, outlen, "%s%s%s:%lld", v6 ? "[" : "", host, v6 ? "]" : "", (long long)port);
}

/*
 * anteroom-turn takes coturn's option names, so operators read the command line as they would
 * coturn's. The shared secret goes through the environment rather than argv: any user on the
 * machine can read a process's argv with ps, only its owner can read its environment.
 */
static int build_turn(const ar__up_conf_t *conf, const ar__up_state_t *st, unsigned metrics_port,
                      ar__daemon_cmd_t *cmd)
{
    char a[80], b[80];
    int rc = 0;
    rc = rc ? rc : ar__cmd_arg(cmd, "--listening-ip");
    rc = rc ? rc : ar__cmd_arg(cmd, conf->bind);
    rc = rc ? rc : ar__cmd_arg(cmd, "--listening-port");
    rc = rc ? rc : cmd_arg_int(cmd, conf->turn_port);
    if (!conf->no_tls) {
        rc = rc ? rc : ar__cmd_arg(cmd, "--tls-listening-port");
        rc = rc ? rc : cmd_arg_int(cmd, conf->turn_tls_port);
        rc = rc ? rc : ar__cmd_arg(cmd, "--cert");
        rc = rc ? rc : ar__cmd_arg(cmd, st->cert);
        rc = rc ? rc : ar__cmd_arg(cmd, "--pkey");
        rc = rc ? rc : ar__cmd_arg(cmd, st->key);
    }
    rc = rc ? rc : ar__cmd_arg(cmd, "--use-auth-secret");
    /* Metrics stay on loopback whatever --bind says: they are for the operator only. */
    char metrics[32];
    snprintf(metrics, sizeof(metrics), "127.0.0.1:%u", metrics_port);
    rc = rc ? rc : ar__cmd_arg(cmd, "--metrics-listen");
    rc = rc ? rc : ar__cmd_arg(cmd, metrics);
    rc = rc ? rc : ar__cmd_env(cmd, "ANTEROOM_TURN_STATIC_AUTH_SECRET", st->turn_secret);
    if (rc != 0)
        return rc;

    host_port(a, sizeof(a), conf->bind, conf->turn_port);
    host_port(b, sizeof(b), conf->bind, conf->turn_tls_port);
    if (conf->no_tls)
        snprintf(cmd->listeners, sizeof(cmd->listeners), "udp+tcp %s", a);
    else
        snprintf(cmd->listeners, sizeof(cmd->listeners), "udp+tcp %s, tls %s", a, b);
    snprintf(cmd->metrics_url, sizeof(cmd->metrics_url), "http://127.0.0.1:%u/metrics",
             metrics_port);
    return 0;
}

/*
 * anteroom-monitor: HTTPS on --bind at AR__MONITOR_PORT with the state's certificate, its
 * aggregates in the state's SQLite file, and the token public keys the app publishes into the
 * state directory (secrets/token-keys.pub, "kid base64url-key" lines). The origin is the app's
 * (AR__APP_PORT), the only one allowed to send statistics.
 */
#define AR__MONITOR_PORT 8444
#define AR__APP_PORT 8443
static int build_monitor(const ar__up_conf_t *conf, const ar__up_state_t *st, unsigned metrics_port,
                         ar__daemon_cmd_t *cmd)
{
    char origin[160], keys[PATH_MAX + 32], db[PATH_MAX + 32], a[80];
    int v6 = strchr(conf->bind, ':') != NULL;
    snprintf(origin, sizeof(origin), "https://%s%s%s:%d", v6 ? "[" : "", conf->bind, v6 ? "]" : "",
             AR__APP_PORT);
    snprintf(keys, sizeof(keys), "%s/secrets/token-keys.pub", st->dir);
    snprintf(db, sizeof(db), "%s/anteroom.db", st->dir);
    const char *const args[][2] = {
        {"--listen-host", conf->bind},  {"--cert", st->cert}, {"--key", st->key},
        {"--origin", origin},           {"--keys", keys},     {"--store-target", db},
        {"--health-host", "127.0.0.1"},
    };
    int rc = 0;
    for (size_t i = 0; i < sizeof(args) / sizeof(args[0]) && rc == 0; i++) {
        rc = ar__cmd_arg(cmd, args[i][0]);
        rc = rc ? rc : ar__cmd_arg(cmd, args[i][1]);
    }
    rc = rc ? rc : ar__cmd_arg(cmd, "--listen-port");
    rc = rc ? rc : cmd_arg_int(cmd, AR__MONITOR_PORT);
    rc = rc ? rc : ar__cmd_arg(cmd, "--health-port");
    rc = rc ? rc : cmd_arg_int(cmd, metrics_port);
    if (rc != 0)
        return rc;
    host_port(a, sizeof(a), conf->bind, AR__MONITOR_PORT);
    snprintf(cmd->listeners, sizeof(cmd->listeners), "https %s/v1/stats", a);
    snprintf(cmd->metrics_url, sizeof(cmd->metrics_url), "http://127.0.0.1:%u/metrics",
             metrics_port);
    return 0;
}

/* Add anteroom-app, -signal and -monitor here as their issues land. */
const ar__daemon_spec_t ar__daemons[] = {
    {.name = "turn", .metrics_offset = 0, .build = build_turn},
    {.name = "monitor", .metrics_offset = 3, .build = build_monitor},
};
const size_t ar__ndaemons = sizeof(ar__daemons) / sizeof(ar__daemons[0]);

static int exe_ok(const char *path)
{
    return access(path, X_OK) == 0;
}

int ar__daemon_find(const char *bin_dir, const char *name, char *path, size_t pathlen)
{
    if (bin_dir != NULL && bin_dir[0] != '\0') {
        snprintf(path, pathlen, "%s/anteroom-%s", bin_dir, name);
        return exe_ok(path) ? 0 : AR_ENOTFOUND;
    }
    char exe[PATH_MAX];
    size_t size = sizeof(exe);
    if (uv_exepath(exe, &size) != 0)
        return AR_ENOTFOUND;
    char *slash = strrchr(exe, '/');
    if (slash == NULL)
        return AR_ENOTFOUND;
    *slash = '\0';
    /* Installed: every binary in one folder. */
    snprintf(path, pathlen, "%s/anteroom-%s", exe, name);
    if (exe_ok(path))
        return 0;
    /* Build tree: build/<preset>/cmd/anteroom/anteroom next to cmd/anteroom-<name>/. */
    snprintf(path, pathlen, "%s/../anteroom-%s/anteroom-%s", exe, name, name);
    if (!exe_ok(path))
        return AR_ENOTFOUND;
    char real[PATH_MAX];
    if (realpath(path, real) != NULL)
        snprintf(path, pathlen, "%s", real);
    return 0;
}
