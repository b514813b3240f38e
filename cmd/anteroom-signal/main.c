/* anteroom-signal: load the configuration, then run the node (src/signal/supervise.c). */
#include "anteroom/log.h"
#include "anteroom/rand.h"
#include "anteroom/worker.h"
#include "server.h"

#include <stdio.h>

int main(int argc, char **argv)
{
    ar_signal_conf_t conf = {0};
    char err[256];
    int rc = ar_conf_load(ar_signal_conf_opts, ar_signal_conf_nopts, &conf, "ANTEROOM_SIGNAL_",
                          argc, argv, err, sizeof(err));
    if (rc == 1) {
        ar_conf_print_help(ar_signal_conf_opts, ar_signal_conf_nopts, "ANTEROOM_SIGNAL_");
        return 0;
    }
    if (rc == 0 && ar_signal_conf_check(&conf, err, sizeof(err)) != 0) {
        ar_conf_free(ar_signal_conf_opts, ar_signal_conf_nopts, &conf);
        rc = AR_ECONFIG;
    }
    if (rc != 0) {
        fprintf(stderr, "anteroom-signal: %s\n", err);
        return 2;
    }
    ar_log_level_t level = AR_LOG_INFO;
    (void)ar_log_level_parse(conf.log_level, &level);
    ar_log_init("signal", level);
    ar_ignore_sigpipe();
    if (ar_rand_init() != 0 || !conf.keys) {
        fprintf(stderr, "anteroom-signal: --keys is required\n");
        ar_conf_free(ar_signal_conf_opts, ar_signal_conf_nopts, &conf);
        return 2;
    }
    rc = ar_signal_supervise(&conf);
    ar_conf_free(ar_signal_conf_opts, ar_signal_conf_nopts, &conf);
    return rc == 0 ? 0 : 1;
}
