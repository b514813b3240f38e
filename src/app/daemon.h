/* The anteroom-app daemon: configuration, store pool, HTTPS and operator listeners, signals. */
#ifndef ANTEROOM_APP_DAEMON_H
#define ANTEROOM_APP_DAEMON_H

/* Runs until SIGINT or SIGTERM; SIGHUP reloads the certificate. Exit status: 0 after a clean
 * stop or --help, 2 for a configuration error, 1 otherwise. */
int ar_app_main(int argc, char **argv);

#endif
