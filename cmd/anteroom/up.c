/*
 * `anteroom up`: prepare the state directory, find the daemons that are built, and supervise them.
 * Flags go through the project's configuration loader so they behave like every daemon's: the
 * same --key=value forms, an optional --config file, and a clear error for an unknown flag.
 *
 * Only two environment variables are ours, ANTEROOM_STATE_DIR and ANTEROOM_BIN_DIR. The loader's
 * environment source is not used: it rejects every unknown variable under its prefix, and the
 * other ANTEROOM_* variables belong to the daemons (ANTEROOM_TURN_REALM=... set for the relay
 * passes through us to it). The two are applied as defaults, so a flag still wins over them.
 */
#include "up.h"

#include "anteroom/alloc.h"
#include "anteroom/conf.h"
#include "anteroom/log.h"
#include "anteroom/rand.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int ar__up_main(int argc, char **argv);

static ar_conf_opt_t up_opts[] = {
    {"state-dir", AR_CONF_STR, offsetof(ar__up_conf_t, state_dir), "./var/anteroom", 0, 0,
     "directory for the certificate, secrets and logs (created 0700)"},
    {"bind", AR_CONF_STR, offsetof(ar__up_conf_t, bind), "127.0.0.1", 0, 0,
     "address the daemons listen on (0.0.0.0 to reach them from other machines)"},
    {"turn-port", AR_CONF_INT, offsetof(ar__up_conf_t, turn_port), "3478", 1, 65535,
     "STUN/TURN port over UDP and TCP"},
    {"turn-tls-port", AR_CONF_INT, offsetof(ar__up_conf_t, turn_tls_port), "5349", 1, 65535,
     "TURN over TLS port"},
    {"turn-alt-tls-port", AR_CONF_INT, offsetof(ar__up_conf_t, turn_alt_tls_port), "0", 0, 65535,
     "a second TURN over TLS port, e.g. 443 for clients behind firewalls that pass only HTTPS; "
     "clients are handed this one (0: none)"},
    {"metrics-port", AR_CONF_INT, offsetof(ar__up_conf_t, metrics_port), "9641", 1, 65000,
     "first metrics port on 127.0.0.1; each daemon takes the next one"},
    {"no-tls", AR_CONF_BOOL, offsetof(ar__up_conf_t, no_tls), "false", 0, 0,
     "no TLS listeners and no certificate"},
    {"bin-dir", AR_CONF_STR, offsetof(ar__up_conf_t, bin_dir), NULL, 0, 0,
     "folder holding anteroom-<daemon> binaries (default: found next to anteroom)"},
    {"app-port", AR_CONF_INT, offsetof(ar__up_conf_t, app_port), "8443", 1, 65534,
     "anteroom-app's HTTPS port (anteroom-signal takes the next, the monitor the one after)"},
    {"nats-port", AR_CONF_INT, offsetof(ar__up_conf_t, nats_port), "4222", 1, 65535,
     "the local NATS server's port, on 127.0.0.1 only"},
    {"demo", AR_CONF_BOOL, offsetof(ar__up_conf_t, demo), "false", 0, 0,
     "add a demo clinic with a waiting area (once)"},
    {"fast-hash", AR_CONF_BOOL, offsetof(ar__up_conf_t, fast_hash), "false", 0, 0,
     "tests only: cheapest Argon2id cost for the first operator's password"},
};
#define N_UP_OPTS (sizeof(up_opts) / sizeof(up_opts[0]))

static void usage(void)
{
    printf("usage: anteroom up [flags]\n\n"
           "Starts every built Anteroom daemon on this machine and supervises it: a daemon that\n"
           "dies is restarted (0.5 s backoff doubling to 30 s); Ctrl-C or SIGTERM stops them all\n"
           "(SIGKILL after 10 s, or at a second Ctrl-C). See docs/anteroom-up.md.\n\n"
           "flags:\n");
    ar_conf_print_help(up_opts, N_UP_OPTS, NULL);
    printf("\nenvironment: ANTEROOM_STATE_DIR and ANTEROOM_BIN_DIR stand for --state-dir and\n"
           "--bin-dir; other ANTEROOM_* variables pass through to the daemons.\n");
}

/* Applies ANTEROOM_STATE_DIR and ANTEROOM_BIN_DIR as defaults (see the comment at the top). */
static void env_defaults(void)
{
    for (size_t i = 0; i < N_UP_OPTS; i++) {
        const char *v = NULL;
        if (strcmp(up_opts[i].name, "state-dir") == 0)
            v = getenv("ANTEROOM_STATE_DIR");
        else if (strcmp(up_opts[i].name, "bin-dir") == 0)
            v = getenv("ANTEROOM_BIN_DIR");
        if (v != NULL && v[0] != '\0')
            up_opts[i].def = v;
    }
}

/* Resolves each row's binary and command line; a row without a binary is reported, not run. */
static size_t prepare_entries(const ar__up_conf_t *conf, const ar__up_state_t *st,
                              ar__sup_entry_t *entries, int *err)
{
    size_t n = 0;
    *err = 0;
    for (size_t i = 0; i < ar__ndaemons && *err == 0; i++) {
        const ar__daemon_spec_t *spec = &ar__daemons[i];
        char path[PATH_MAX];
        if (spec->system_bin != NULL) {
            if (ar__daemon_find_system(conf->bin_dir, spec->system_bin, path, sizeof(path)) != 0) {
                printf("%s: %s is not installed (%s), skipped\n", spec->name, spec->system_bin,
                       conf->bin_dir != NULL && conf->bin_dir[0] != '\0'
                           ? "not in --bin-dir"
                           : "not in PATH or /usr/sbin; Debian: apt-get install nats-server");
                ar_log(AR_LOG_WARN, "daemon_not_installed", AR_LF_OPER("daemon", spec->name));
                continue;
            }
        } else if (ar__daemon_find(conf->bin_dir, spec->name, path, sizeof(path)) != 0) {
            printf("%s: not built (no %s), skipped\n", spec->name, path);
            ar_log(AR_LOG_WARN, "daemon_not_built", AR_LF_OPER("daemon", spec->name),
                   AR_LF_OPER("looked_for", path));
            continue;
        }
        ar__sup_entry_t *e = &entries[n];
        e->spec = spec;
        unsigned metrics = (unsigned)conf->metrics_port + spec->metrics_offset;
        *err = ar__cmd_arg(&e->cmd, path);
        if (*err == 0)
            *err = spec->build(conf, st, metrics, &e->cmd);
        if (*err == AR_EUNSUPPORTED) {
            /* The row cannot run with these flags (the app with --no-tls): said, skipped. */
            printf("%s: %s, skipped\n", spec->name,
                   e->cmd.skip[0] != '\0' ? e->cmd.skip : "not available with these flags");
            ar__cmd_free(&e->cmd);
            *err = 0;
            continue;
        }
        if (*err == 0) {
            e->log_fd = ar__state_open_log(st, spec->name);
            if (e->log_fd < 0)
                *err = e->log_fd;
        }
        if (*err != 0) {
            ar__cmd_free(&e->cmd);
            break;
        }
        n++;
    }
    return n;
}

int ar__up_main(int argc, char **argv)
{
    ar__up_conf_t conf = {0};
    char err[512] = "";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage();
            return 0;
        }
    }
    env_defaults();
    int rc = ar_conf_load(up_opts, N_UP_OPTS, &conf, NULL, argc, argv, err, sizeof(err));
    if (rc == 1) {
        ar_conf_free(up_opts, N_UP_OPTS, &conf);
        return 0;
    }
    if (rc != 0) {
        fprintf(stderr, "anteroom up: %s\n(see anteroom up --help)\n", err);
        ar_conf_free(up_opts, N_UP_OPTS, &conf);
        return 2;
    }
    if (ar_rand_init() != 0) {
        fprintf(stderr, "anteroom up: cannot initialise the random generator\n");
        ar_conf_free(up_opts, N_UP_OPTS, &conf);
        return 1;
    }

    ar__up_state_t st;
    ar__sup_entry_t *entries = NULL;
    size_t n = 0;
    int exit_code = 1;
    rc = ar__state_prepare(&st, conf.state_dir, conf.no_tls, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "anteroom up: %s\n", err);
        goto out;
    }
    printf("anteroom up: state in %s\n", st.dir);
    entries = ar_calloc(ar__ndaemons, sizeof(*entries));
    if (entries == NULL) {
        fprintf(stderr, "anteroom up: out of memory\n");
        goto out;
    }
    char app_path[PATH_MAX];
    if (!conf.no_tls && ar__daemon_find(conf.bin_dir, "app", app_path, sizeof(app_path)) == 0) {
        rc = ar__up_app_prepare(&conf, &st, err, sizeof(err));
        if (rc != 0) {
            fprintf(stderr, "anteroom up: %s\n", err);
            goto out;
        }
    }
    n = prepare_entries(&conf, &st, entries, &rc);
    if (rc != 0) {
        fprintf(stderr, "anteroom up: cannot prepare a daemon: %s\n", ar_strerror(rc));
        goto out;
    }
    if (n == 0) {
        fprintf(stderr, "anteroom up: no daemon is built; build first (make build)\n");
        goto out;
    }
    fflush(stdout);
    rc = ar__supervise(entries, n);
    if (rc != 0)
        fprintf(stderr, "anteroom up: supervisor failed: %s\n", ar_strerror(rc));
    else
        printf("anteroom: every daemon stopped\n");
    exit_code = rc == 0 ? 0 : 1;
out:
    ar__state_close(&st);
    for (size_t i = 0; i < n; i++) {
        close(entries[i].log_fd);
        ar__cmd_free(&entries[i].cmd);
    }
    ar_free(entries);
    ar_conf_free(up_opts, N_UP_OPTS, &conf);
    return exit_code;
}
