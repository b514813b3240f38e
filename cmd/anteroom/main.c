/*
 * The `anteroom` front command. Thin: it picks the subcommand and hands over; `up` lives in up.c
 * and its helpers. Exit codes: 0 success, 1 failure at run time, 2 bad usage.
 */
#include "anteroom/log.h"

#include <openssl/crypto.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#ifndef AR_VERSION
#define AR_VERSION "0.0.0-dev"
#endif

int ar__up_main(int argc, char **argv);
int ar__admin_main(int argc, char **argv);

static void usage(FILE *out)
{
    fprintf(out, "usage: anteroom <command> [flags]\n\n"
                 "commands:\n"
                 "  up        start and supervise every built daemon on this machine\n"
                 "  version   print the version and the library versions\n"
                 "  admin     manage clinics, accounts, second factors, keys and secrets\n"
                 "  help      this text\n\n"
                 "`anteroom <command> --help` describes a command.\n");
}

int main(int argc, char **argv)
{
    /* A closed stdout (`anteroom up | head`) must not kill the supervisor and orphan daemons. */
    signal(SIGPIPE, SIG_IGN);
    /* Line-buffered even into a file or pipe, so "what runs where" shows up as it happens. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    ar_log_init("anteroom", AR_LOG_INFO);

    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "up") == 0)
        return ar__up_main(argc - 1, argv + 1);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("anteroom %s (libuv %s, %s)\n", AR_VERSION, uv_version_string(),
               OpenSSL_version(OPENSSL_VERSION));
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "admin") == 0)
        return ar__admin_main(argc - 1, argv + 1);
    fprintf(stderr, "anteroom: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
