/*
 * anteroom-turn: the STUN/TURN relay. Parses the configuration (coturn's option names, as a
 * file with -c PATH, ANTEROOM_TURN_* variables or --flags), then runs until SIGINT or SIGTERM.
 * Exit status: 0 after a clean stop or --help, 2 for a configuration error, 1 otherwise.
 */
#include "anteroom/log.h"
#include "anteroom/rand.h"
#include "turn/daemon.h"
#include "turn/turn_conf.h"

#include <signal.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    char err[512];
    ar_turn_conf_t conf;
    int rc = ar_turn_conf_load(&conf, argc, argv, err, sizeof(err));
    if (rc == 1) {
        ar_turn_conf_free(&conf);
        return 0;
    }
    if (rc < 0) {
        fprintf(stderr, "anteroom-turn: %s\n", err);
        ar_turn_conf_free(&conf);
        return 2;
    }
    ar_log_level_t level;
    if (ar_log_level_parse(conf.log_level, &level) != 0) {
        fprintf(stderr, "anteroom-turn: log-level: '%s' is not debug, info, warn or error\n",
                conf.log_level);
        ar_turn_conf_free(&conf);
        return 2;
    }
    ar_log_init("turn", level);
    if (ar_rand_init() != 0) {
        ar_turn_conf_free(&conf);
        return 1;
    }
    ar_turn_plan_t plan;
    rc = ar_turn_conf_plan(&conf, &plan, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "anteroom-turn: %s\n", err);
        ar_turn_conf_free(&conf);
        return 2;
    }
    /* A client that vanished must not kill the relay with SIGPIPE (TCP/TLS transports). */
    signal(SIGPIPE, SIG_IGN);
    rc = ar_turn_run(&conf, &plan);
    ar_turn_plan_free(&plan);
    ar_turn_conf_free(&conf);
    return rc == 0 ? 0 : rc == AR_ECONFIG ? 2 : 1;
}
