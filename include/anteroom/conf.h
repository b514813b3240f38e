/*
 * Configuration from a file, the environment and command-line flags, described by one
 * declarative table per daemon.
 *
 * Precedence, lowest to highest (documented in docs/configuration.md):
 *   1. the table's defaults;
 *   2. the configuration file (`--config PATH`, `-c PATH`, or the variable PREFIX + "CONFIG"),
 *      coturn-style lines: `key=value`, `key value`, or a bare `key` for a boolean; `#` at the
 *      start of a line or after a space starts a comment (a `#` inside a value is kept);
 *      double quotes around a whole value are removed; lines are capped at 4096 bytes;
 *   3. environment variables: PREFIX + key upper-cased with '-' as '_'
 *      (ANTEROOM_TURN_LISTENING_PORT for `listening-port` with prefix "ANTEROOM_TURN_");
 *      a list there is comma-separated;
 *   4. flags: `--key=value`, `--key value`, or `--key` for a boolean (`--key=false` for off).
 * A list option (AR_CONF_LIST) collects every value from the highest source that sets it.
 * Any unknown key or bad value in any source is an error naming the source, the line (for the
 * file) and the key; nothing is silently ignored.
 */
#ifndef ANTEROOM_CONF_H
#define ANTEROOM_CONF_H

#include "anteroom/err.h"

#include <stddef.h>
#include <stdint.h>

typedef enum {
    AR_CONF_STR,      /* char * (owned by the conf, freed by ar_conf_free) */
    AR_CONF_INT,      /* int64_t, checked against [min, max] */
    AR_CONF_BOOL,     /* int: 0 or 1; accepts true/false/yes/no/on/off/1/0 */
    AR_CONF_DURATION, /* int64_t milliseconds; accepts 500ms, 10s, 5m, 2h, or a plain number of s */
    AR_CONF_SIZE,     /* int64_t bytes; accepts 512, 64k, 10M, 1G (powers of 1024) */
    AR_CONF_LIST,     /* ar_conf_list_t: repeatable string values */
} ar_conf_type_t;

typedef struct ar_conf_list_s {
    char **items;
    size_t count;
} ar_conf_list_t;

typedef struct ar_conf_opt_s {
    const char *name; /* "listening-port" */
    ar_conf_type_t type;
    size_t offset;    /* offsetof(target struct, field) */
    const char *def;  /* default as text, or NULL for none (STR stays NULL, numbers 0) */
    int64_t min, max; /* for INT, DURATION and SIZE; min == max == 0 means unchecked */
    const char *help; /* one line for --help and docs/configuration.md */
} ar_conf_opt_t;

/*
 * Fills `target` from defaults, file, environment and argv, in that order of precedence.
 * argv[0] is skipped; positional arguments are an error. `--help` prints the table and returns
 * 1 so the caller exits 0. Returns 0 when loaded. On error returns AR_EUNKNOWNKEY, AR_ECONFIG
 * (bad value or syntax), AR_ERANGE, AR_ETOOBIG (line or list over its cap), AR_EIO (file
 * unreadable), AR_ENOMEM or AR_EINVAL (a bad default in the table), frees whatever it had
 * loaded (the target's strings and lists are NULL/empty), and writes a one-line message such as
 *   "turn.conf:12: unknown key 'listen-port'" or "--max-port: 70000 is above 65535"
 * into err.
 */
AR_MUST_CHECK int ar_conf_load(const ar_conf_opt_t *opts, size_t nopts, void *target,
                               const char *env_prefix, int argc, char **argv, char *err,
                               size_t errlen);
/* Frees the strings and lists ar_conf_load allocated inside target. */
void ar_conf_free(const ar_conf_opt_t *opts, size_t nopts, void *target);
/* Prints `--name  (type, default X)  help` for every option to stdout. */
void ar_conf_print_help(const ar_conf_opt_t *opts, size_t nopts, const char *env_prefix);

#endif
