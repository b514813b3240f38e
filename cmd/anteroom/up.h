/*
 * Internals of `anteroom up`, shared by the files of cmd/anteroom/ only.
 *
 * The command has three parts that each fit in one file:
 *   state.c      the state directory: permissions, certificate, TURN secret, log files;
 *   daemons.c    the table of daemons and the command line each one gets from the state;
 *   supervise.c  the libuv loop that spawns, restarts and stops the daemons.
 * up.c parses the flags and ties them together; main.c dispatches subcommands.
 */
#ifndef ANTEROOM_CMD_UP_H
#define ANTEROOM_CMD_UP_H

#include "anteroom/err.h"

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

/* The flags of `anteroom up`, filled by ar_conf_load (see up.c for the table). */
typedef struct ar__up_conf_s {
    char *state_dir;
    char *bind;
    int64_t turn_port;
    int64_t turn_tls_port;
    int64_t turn_alt_tls_port; /* a second TLS listener (443) for strict firewalls; 0: none */
    int64_t metrics_port;      /* the first daemon's; each row adds its own offset */
    int no_tls;
    char *bin_dir;
    int64_t app_port;  /* anteroom-app's HTTPS port; signal +1, monitor +2 */
    int64_t nats_port; /* the local NATS server's client port, on 127.0.0.1 only */
    int demo;          /* add a demo clinic with a waiting area (once) */
    int fast_hash;     /* tests: the cheapest Argon2id cost for the operator's password */
} ar__up_conf_t;

/* What the state directory holds once ar__state_prepare has run. Paths are absolute. */
typedef struct ar__up_state_s {
    char dir[PATH_MAX];
    char cert[PATH_MAX];
    char key[PATH_MAX];
    char logs[PATH_MAX];
    char turn_secret[128]; /* the relay's static-auth-secret, NUL-terminated */
    int lock_fd;           /* holds an flock so two `anteroom up` cannot share a state dir */
} ar__up_state_t;

/*
 * Creates the state directory (0700) and its layout, takes its lock, and on first start
 * generates the certificate, key and TURN secret (0600). With no_tls the certificate is neither
 * made nor required. Writes a one-line reason into err on failure.
 */
AR_MUST_CHECK int ar__state_prepare(ar__up_state_t *st, const char *dir, int no_tls, char *err,
                                    size_t errlen);
/* Writes a 0600 file through a temporary file, fsync and rename. Returns 0 or AR_ESYS. */
AR_MUST_CHECK int ar__state_write_file(const char *path, const void *data, size_t len);
/* Releases the lock and wipes the secret from memory. */
void ar__state_close(ar__up_state_t *st);
/* Opens (creating 0600, appending) DIR/logs/<name>.log; returns the fd or a negative code. */
int ar__state_open_log(const ar__up_state_t *st, const char *name);

/* up_app.c: anteroom-app's store, first operator, --demo clinic and servers.json. */
AR_MUST_CHECK int ar__up_app_prepare(const ar__up_conf_t *conf, const ar__up_state_t *st, char *err,
                                     size_t errlen);
const char *ar__up_public_host(const ar__up_conf_t *conf);

#define AR__DAEMON_MAX_ARGS 32
#define AR__DAEMON_MAX_ENV 4

/* A daemon's command line, listeners and metrics address, as built from one table row. */
typedef struct ar__daemon_cmd_s {
    char *argv[AR__DAEMON_MAX_ARGS + 1]; /* NULL-terminated; argv[0] is the binary */
    size_t argc;
    char *env[AR__DAEMON_MAX_ENV]; /* extra NAME=value pairs, kept out of argv (ps shows argv) */
    size_t envc;
    char listeners[256]; /* "udp+tcp 127.0.0.1:3478, tls 127.0.0.1:5349" */
    char metrics_url[128];
    char skip[160]; /* with AR_EUNSUPPORTED from a build: why the row is skipped */
} ar__daemon_cmd_t;

/* One row of the daemon table. */
typedef struct ar__daemon_spec_s {
    const char *name;        /* "turn": binary anteroom-turn, log logs/turn.log */
    unsigned metrics_offset; /* added to --metrics-port so every daemon has its own */
    const char *system_bin;  /* not ours: "nats-server", found by ar__daemon_find_system */
    int (*build)(const ar__up_conf_t *conf, const ar__up_state_t *st, unsigned metrics_port,
                 ar__daemon_cmd_t *cmd);
} ar__daemon_spec_t;

extern const ar__daemon_spec_t ar__daemons[];
extern const size_t ar__ndaemons;

/* Appends a copy of s to argv; AR_ETOOBIG past AR__DAEMON_MAX_ARGS, AR_ENOMEM. */
AR_MUST_CHECK int ar__cmd_arg(ar__daemon_cmd_t *cmd, const char *s);
/* Appends "name=value" to the extra environment. */
AR_MUST_CHECK int ar__cmd_env(ar__daemon_cmd_t *cmd, const char *name, const char *value);
/* Frees the strings (and wipes the environment, which may carry secrets). */
void ar__cmd_free(ar__daemon_cmd_t *cmd);

/*
 * Finds anteroom-<name>: in bin_dir when set, else next to this executable (installed layout)
 * or in the build tree's sibling folder ../anteroom-<name>/. Returns 0 with the path, or
 * AR_ENOTFOUND with the last place looked in `path` so the caller can say where.
 */
int ar__daemon_find(const char *bin_dir, const char *name, char *path, size_t pathlen);

/*
 * Finds a system binary (not one of ours): DIR/<bin> only when bin_dir is set, as for ours, so a
 * bin dir is self-contained; else the first executable <bin> in PATH, /usr/sbin or
 * /usr/local/sbin (Debian installs nats-server in /usr/sbin, outside a user's PATH). Returns 0
 * with an absolute path, or AR_ENOTFOUND.
 */
int ar__daemon_find_system(const char *bin_dir, const char *bin, char *path, size_t pathlen);

/* A daemon to supervise: the row, its resolved command, and its log file. */
typedef struct ar__sup_entry_s {
    const ar__daemon_spec_t *spec;
    ar__daemon_cmd_t cmd;
    int log_fd;
} ar__sup_entry_t;

/*
 * The restart policy: returns how long to wait before restarting a daemon that ran uptime_ms,
 * and advances *backoff_ms (start it at 0). 0.5 s, doubling per consecutive failure up to 30 s;
 * an uptime of 60 s or more counts as healthy and starts again from 0.5 s.
 */
uint64_t ar__backoff_next(uint64_t *backoff_ms, uint64_t uptime_ms);

/*
 * Runs the supervisor loop until SIGINT or SIGTERM has stopped every daemon. Prints one line per
 * daemon start to stdout. Returns 0 after a clean stop, or a negative code if the loop itself
 * could not start.
 */
int ar__supervise(ar__sup_entry_t *entries, size_t n);

#endif
