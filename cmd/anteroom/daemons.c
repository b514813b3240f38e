/*
 * The daemons `anteroom up` runs: one table row each. A later issue adds its daemon by writing a
 * build function (the command line it needs from the flags and the state directory) and a row;
 * the supervisor needs nothing else. A row whose binary is not built is reported and skipped.
 */
#include "up.h"

#include "anteroom/alloc.h"
#include "anteroom/rand.h"

#include <limits.h>
#include <sodium.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
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

/* A flag and its value: "--cert" "/path". */
static int cmd_flag(ar__daemon_cmd_t *cmd, const char *flag, const char *value)
{
    int rc = ar__cmd_arg(cmd, flag);
    return rc ? rc : ar__cmd_arg(cmd, value);
}

static int cmd_flag_int(ar__daemon_cmd_t *cmd, const char *flag, int64_t value)
{
    int rc = ar__cmd_arg(cmd, flag);
    return rc ? rc : cmd_arg_int(cmd, value);
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
    char a[64], b[64], c[64]; /* an IPv6 literal, brackets and a port fit */
    int rc = 0;
    rc = rc ? rc : cmd_flag(cmd, "--listening-ip", conf->bind);
    rc = rc ? rc : cmd_flag_int(cmd, "--listening-port", conf->turn_port);
    if (!conf->no_tls) {
        rc = rc ? rc : cmd_flag_int(cmd, "--tls-listening-port", conf->turn_tls_port);
        if (conf->turn_alt_tls_port != 0 && conf->turn_alt_tls_port != conf->turn_tls_port) {
            rc = rc ? rc : cmd_flag_int(cmd, "--alt-tls-listening-port", conf->turn_alt_tls_port);
        }
        rc = rc ? rc : cmd_flag(cmd, "--cert", st->cert);
        rc = rc ? rc : cmd_flag(cmd, "--pkey", st->key);
    }
    rc = rc ? rc : ar__cmd_arg(cmd, "--use-auth-secret");
    /* Metrics stay on loopback whatever --bind says: they are for the operator only. */
    char metrics[32];
    snprintf(metrics, sizeof(metrics), "127.0.0.1:%u", metrics_port);
    rc = rc ? rc : cmd_flag(cmd, "--metrics-listen", metrics);
    rc = rc ? rc : ar__cmd_env(cmd, "ANTEROOM_TURN_STATIC_AUTH_SECRET", st->turn_secret);
    if (rc != 0)
        return rc;

    host_port(a, sizeof(a), conf->bind, conf->turn_port);
    host_port(b, sizeof(b), conf->bind, conf->turn_tls_port);
    host_port(c, sizeof(c), conf->bind, conf->turn_alt_tls_port);
    if (conf->no_tls)
        snprintf(cmd->listeners, sizeof(cmd->listeners), "udp+tcp %s", a);
    else if (conf->turn_alt_tls_port != 0 && conf->turn_alt_tls_port != conf->turn_tls_port)
        snprintf(cmd->listeners, sizeof(cmd->listeners), "udp+tcp %s, tls %s and %s", a, b, c);
    else
        snprintf(cmd->listeners, sizeof(cmd->listeners), "udp+tcp %s, tls %s", a, b);
    snprintf(cmd->metrics_url, sizeof(cmd->metrics_url), "http://127.0.0.1:%u/metrics",
             metrics_port);
    return 0;
}

/* The app's public origin, which the browsers' requests name: "https://host:port". */
static void app_origin(const ar__up_conf_t *conf, char *out, size_t outlen)
{
    static const char scheme[] = "https://";
    snprintf(out, outlen, "%s", scheme); /* outlen holds far more than the scheme */
    host_port(out + sizeof(scheme) - 1, outlen - (sizeof(scheme) - 1), ar__up_public_host(conf),
              conf->app_port);
}

/* The folder of this executable into out (PATH_MAX bytes): 1, or 0 when it is unknown. */
static int exe_dir(char *out, size_t outlen)
{
    size_t size = outlen;
    if (uv_exepath(out, &size) != 0)
        return 0;
    char *slash = strrchr(out, '/');
    if (slash == NULL)
        return 0;
    *slash = '\0';
    return 1;
}

/* The built web client next to the build tree's binaries (build/<preset>/web), if any. */
static int web_dir(char *out, size_t outlen)
{
    char exe[PATH_MAX];
    if (!exe_dir(exe, sizeof(exe)))
        return 0;
    char probe[PATH_MAX + 32];
    snprintf(probe, sizeof(probe), "%s/../../web/manifest.json", exe);
    char real[PATH_MAX];
    if (realpath(probe, real) == NULL)
        return 0;
    *strrchr(real, '/') = '\0';
    snprintf(out, outlen, "%s", real);
    return 1;
}

/*
 * anteroom-app on SQLite in the state directory, with the servers file up_app.c wrote. The app
 * only speaks HTTPS, so it needs the certificate: with --no-tls the row is skipped. Its TURN
 * secret is the relay's, passed in the environment like the relay's.
 */
static int build_app(const ar__up_conf_t *conf, const ar__up_state_t *st, unsigned metrics_port,
                     ar__daemon_cmd_t *cmd)
{
    if (conf->no_tls)
        return AR_EUNSUPPORTED;
    char db[PATH_MAX + 16], servers[PATH_MAX + 16], origin[300], web[PATH_MAX];
    snprintf(db, sizeof(db), "%s/app.db", st->dir);
    snprintf(servers, sizeof(servers), "%s/servers.json", st->dir);
    app_origin(conf, origin, sizeof(origin));
    int rc = 0;
    rc = rc ? rc : cmd_flag(cmd, "--listen-host", conf->bind);
    rc = rc ? rc : cmd_flag_int(cmd, "--listen-port", conf->app_port);
    rc = rc ? rc : cmd_flag(cmd, "--cert", st->cert);
    rc = rc ? rc : cmd_flag(cmd, "--key", st->key);
    rc = rc ? rc : cmd_flag(cmd, "--origin", origin);
    rc = rc ? rc : cmd_flag(cmd, "--store-target", db);
    rc = rc ? rc : cmd_flag(cmd, "--servers", servers);
    rc = rc ? rc : cmd_flag_int(cmd, "--health-port", metrics_port);
    if (web_dir(web, sizeof(web))) {
        rc = rc ? rc : cmd_flag(cmd, "--web-dir", web);
    }
    rc = rc ? rc : ar__cmd_env(cmd, "ANTEROOM_APP_TURN_SECRET", st->turn_secret);
    /* The seal key stays in its 0600 file (up_app.c makes it): only the path is on the line. */
    char seal[PATH_MAX + 32];
    snprintf(seal, sizeof(seal), "%s/secrets/seal-key", st->dir);
    rc = rc ? rc : cmd_flag(cmd, "--seal-key-file", seal);
    if (rc != 0)
        return rc;
    char a[80];
    host_port(a, sizeof(a), conf->bind, conf->app_port);
    snprintf(cmd->listeners, sizeof(cmd->listeners), "https %.79s (origin %.150s)", a, origin);
    snprintf(cmd->metrics_url, sizeof(cmd->metrics_url), "http://127.0.0.1:%u/metrics",
             metrics_port);
    return 0;
}

/*
 * anteroom-monitor: HTTPS on --bind two ports above the app's (the signalling node takes the one
 * between), with the state's certificate, its aggregates in the app's SQLite file, and the token
 * public keys ar__up_app_prepare exports (secrets/token-keys.pub). The origin is the app's, the
 * only one allowed to send statistics. Like the app it speaks only HTTPS: skipped with --no-tls.
 */
static int build_monitor(const ar__up_conf_t *conf, const ar__up_state_t *st, unsigned metrics_port,
                         ar__daemon_cmd_t *cmd)
{
    if (conf->no_tls)
        return AR_EUNSUPPORTED;
    char origin[300], keys[PATH_MAX + 32], db[PATH_MAX + 32], a[80];
    int64_t port = conf->app_port + 2;
    app_origin(conf, origin, sizeof(origin));
    snprintf(keys, sizeof(keys), "%s/secrets/token-keys.pub", st->dir);
    snprintf(db, sizeof(db), "%s/app.db", st->dir);
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
    rc = rc ? rc : cmd_flag_int(cmd, "--listen-port", port);
    rc = rc ? rc : cmd_flag_int(cmd, "--health-port", metrics_port);
    if (rc != 0)
        return rc;
    host_port(a, sizeof(a), conf->bind, port);
    snprintf(cmd->listeners, sizeof(cmd->listeners), "https %s/v1/stats", a);
    snprintf(cmd->metrics_url, sizeof(cmd->metrics_url), "http://127.0.0.1:%u/metrics",
             metrics_port);
    return 0;
}

/*
 * The NATS token of this `anteroom up` run: made by build_nats, handed to anteroom-signal by
 * build_signal (the rows run in table order). Empty when the nats row is skipped; the node then
 * connects without one, to a server the operator runs on --nats-port.
 */
static char nats_token[48];

/*
 * Debian's nats-server, for anteroom-signal's bus. Everything goes in a configuration file
 * (DIR/nats/nats.conf, 0600) rather than argv: the client listener on 127.0.0.1 only, the
 * monitoring listener (/varz, JSON) on 127.0.0.1 too, and a token fresh at each start, because
 * any local user can reach a loopback port and the bus carries every session's signalling.
 * Skipped when there is no signalling node to serve. No JetStream: the nodes use plain subjects
 * only, so the server keeps nothing on disk; its log is its stderr, in logs/nats.log like every
 * daemon's.
 */
static int build_nats(const ar__up_conf_t *conf, const ar__up_state_t *st, unsigned metrics_port,
                      ar__daemon_cmd_t *cmd)
{
    char dir[PATH_MAX + 8], file[PATH_MAX + 24], text[512];
    unsigned char raw[24];
    /* Only anteroom-signal uses it: no node to serve (not built, or --no-tls), no server. */
    if (conf->no_tls || ar__daemon_find(conf->bin_dir, "signal", file, sizeof(file)) != 0) {
        snprintf(cmd->skip, sizeof(cmd->skip), "only anteroom-signal uses it, which %s",
                 conf->no_tls ? "needs TLS" : "is not built");
        return AR_EUNSUPPORTED;
    }
    snprintf(dir, sizeof(dir), "%s/nats", st->dir);
    if (mkdir(dir, 0700) != 0 && access(dir, W_OK) != 0)
        return AR_ESYS;
    ar_rand_bytes(raw, sizeof(raw));
    sodium_bin2base64(nats_token, sizeof(nats_token), raw, sizeof(raw),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof(raw));
    int n = snprintf(text, sizeof(text),
                     "# Written by anteroom up at each start; edits are lost.\n"
                     "server_name: anteroom-up\n"
                     "listen: \"127.0.0.1:%lld\"\n"
                     "http: \"127.0.0.1:%u\"\n"
                     "authorization { token: \"%s\" }\n",
                     (long long)conf->nats_port, metrics_port, nats_token);
    snprintf(file, sizeof(file), "%s/nats.conf", dir);
    int rc = n > 0 && (size_t)n < sizeof(text) ? ar__state_write_file(file, text, (size_t)n)
                                               : AR_ETOOBIG;
    sodium_memzero(text, sizeof(text));
    rc = rc ? rc : cmd_flag(cmd, "--config", file);
    if (rc != 0)
        return rc;
    snprintf(cmd->listeners, sizeof(cmd->listeners), "nats 127.0.0.1:%lld",
             (long long)conf->nats_port);
    snprintf(cmd->metrics_url, sizeof(cmd->metrics_url), "http://127.0.0.1:%u/varz", metrics_port);
    return 0;
}

/*
 * anteroom-signal: wss on --bind one port above the app's (the URL servers.json hands out; the
 * node serves any path, /ws included), with the state's certificate, jurisdiction "local" (the
 * demo clinic's), the token public keys ar__up_app_prepare exports and the app's origin. The
 * NATS URL carries the token, so it goes in the environment (ANTEROOM_SIGNAL_NATS), not argv.
 * The node may start before the NATS server listens: its client retries the first connection
 * without end (bus.c), so it waits rather than exits. Without the keys (the app is not built)
 * it could check no token: skipped, as with --no-tls.
 */
static int build_signal(const ar__up_conf_t *conf, const ar__up_state_t *st, unsigned metrics_port,
                        ar__daemon_cmd_t *cmd)
{
    if (conf->no_tls)
        return AR_EUNSUPPORTED;
    char origin[300], keys[PATH_MAX + 32], nats[128], a[80];
    snprintf(keys, sizeof(keys), "%s/secrets/token-keys.pub", st->dir);
    if (access(keys, R_OK) != 0) {
        snprintf(cmd->skip, sizeof(cmd->skip),
                 "no token keys (secrets/token-keys.pub comes with anteroom-app)");
        return AR_EUNSUPPORTED;
    }
    int64_t port = conf->app_port + 1;
    app_origin(conf, origin, sizeof(origin));
    snprintf(nats, sizeof(nats), "nats://%s%s127.0.0.1:%lld", nats_token,
             nats_token[0] != '\0' ? "@" : "", (long long)conf->nats_port);
    const char *const args[][2] = {
        {"--listen", conf->bind},    {"--tls-cert", st->cert}, {"--tls-key", st->key},
        {"--jurisdiction", "local"}, {"--node-name", "up"},    {"--keys", keys},
        {"--origin", origin},
    };
    int rc = 0;
    for (size_t i = 0; i < sizeof(args) / sizeof(args[0]) && rc == 0; i++) {
        rc = cmd_flag(cmd, args[i][0], args[i][1]);
    }
    rc = rc ? rc : cmd_flag_int(cmd, "--port", port);
    rc = rc ? rc : cmd_flag_int(cmd, "--metrics-port", metrics_port);
    rc = rc ? rc : ar__cmd_env(cmd, "ANTEROOM_SIGNAL_NATS", nats);
    sodium_memzero(nats, sizeof(nats));
    if (rc != 0)
        return rc;
    host_port(a, sizeof(a), ar__up_public_host(conf), port);
    snprintf(cmd->listeners, sizeof(cmd->listeners), "wss %s/ws", a);
    snprintf(cmd->metrics_url, sizeof(cmd->metrics_url), "http://127.0.0.1:%u/metrics",
             metrics_port);
    return 0;
}

/* nats before signal: build_signal reads the token build_nats makes. */
const ar__daemon_spec_t ar__daemons[] = {
    {.name = "turn", .metrics_offset = 0, .build = build_turn},
    {.name = "app", .metrics_offset = 1, .build = build_app},
    {.name = "nats", .metrics_offset = 4, .system_bin = "nats-server", .build = build_nats},
    {.name = "signal", .metrics_offset = 2, .build = build_signal},
    {.name = "monitor", .metrics_offset = 3, .build = build_monitor},
};
const size_t ar__ndaemons = sizeof(ar__daemons) / sizeof(ar__daemons[0]);

static int exe_ok(const char *path)
{
    return access(path, X_OK) == 0;
}

int ar__daemon_find_system(const char *bin_dir, const char *bin, char *path, size_t pathlen)
{
    if (bin_dir != NULL && bin_dir[0] != '\0') {
        snprintf(path, pathlen, "%s/%s", bin_dir, bin);
        if (!exe_ok(path))
            return AR_ENOTFOUND;
        char real[PATH_MAX];
        if (realpath(path, real) != NULL)
            snprintf(path, pathlen, "%s", real);
        return 0;
    }
    const char *env = getenv("PATH");
    char dirs[4096];
    snprintf(dirs, sizeof(dirs), "%s:/usr/sbin:/usr/local/sbin", env != NULL ? env : "");
    char *save = NULL;
    for (char *d = strtok_r(dirs, ":", &save); d != NULL; d = strtok_r(NULL, ":", &save)) {
        /* Only absolute folders: a relative PATH entry would depend on the current folder. */
        if (d[0] != '/')
            continue;
        snprintf(path, pathlen, "%s/%s", d, bin);
        if (exe_ok(path))
            return 0;
    }
    return AR_ENOTFOUND;
}

int ar__daemon_find(const char *bin_dir, const char *name, char *path, size_t pathlen)
{
    if (bin_dir != NULL && bin_dir[0] != '\0') {
        snprintf(path, pathlen, "%s/anteroom-%s", bin_dir, name);
        return exe_ok(path) ? 0 : AR_ENOTFOUND;
    }
    char exe[PATH_MAX];
    if (!exe_dir(exe, sizeof(exe)))
        return AR_ENOTFOUND;
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
