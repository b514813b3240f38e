/* The anteroom-monitor daemon: configuration, store pool, HTTPS and operator listeners, signals. */
#ifndef ANTEROOM_MONITOR_DAEMON_H
#define ANTEROOM_MONITOR_DAEMON_H

#include "anteroom/token.h"

/* Runs until SIGINT or SIGTERM (which write the last aggregates); SIGHUP reloads the
 * certificate and the token keys. Exit status: 0 after a clean stop or --help, 2 for a
 * configuration error, 1 otherwise. */
int ar_monitor_main(int argc, char **argv);

/* Reads a public-key file: one "kid base64url-public-key" per line, '#' comments (the format
 * anteroom-signal reads). Returns 0, AR_EIO (unreadable) or AR_ECONFIG (bad line, no key). */
int ar_monitor_load_keys(const char *path, ar_token_keyring_t *ring);

#endif
