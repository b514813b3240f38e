/*
 * anteroom-turn's configuration: coturn's option names and meanings for what operators bring
 * from a coturn setup, plus our own (workers, metrics-listen, log-level, unauth-rate). Loaded by
 * ar_conf_load() from defaults, a coturn-style file (-c PATH), ANTEROOM_TURN_* environment
 * variables and --flags, in that order of precedence; an unknown key is an error.
 */
#ifndef AR_TURN_CONF_H
#define AR_TURN_CONF_H

#include "anteroom/addr_policy.h"
#include "anteroom/conf.h"
#include "turn/server.h"

#include <sys/socket.h>

#define AR_TURN_ENV_PREFIX "ANTEROOM_TURN_"
#define AR_TURN_MAX_LISTENERS 8
#define AR_TURN_MAX_ALTERNATES 16

typedef struct ar_turn_conf_s {
    int64_t listening_port;
    int64_t tls_listening_port;
    int64_t alt_tls_listening_port; /* a second TLS port (443), 0: none */
    int no_tcp, no_tls;
    int64_t stream_max_connections;
    ar_conf_list_t listening_ip;
    ar_conf_list_t relay_ip;
    ar_conf_list_t external_ip;
    char *realm;
    int use_auth_secret;
    ar_conf_list_t static_auth_secret;
    ar_conf_list_t user;
    char *cert;
    char *pkey;
    int64_t min_port, max_port;
    ar_conf_list_t denied_peer_ip;
    ar_conf_list_t allowed_peer_ip;
    int allow_loopback_peers;
    int64_t total_quota, user_quota, max_bps;
    int64_t stale_nonce;           /* ms (a duration): nonce lifetime */
    int64_t max_allocate_lifetime; /* ms */
    int64_t unauth_rate;           /* unauthenticated requests/s per source IP, 0: off */
    int64_t tcp_connect_timeout;   /* ms: RFC 6062 Connect gives up with 447 after this */
    int64_t workers;
    int yield_after_requests; /* see udp.c, yield_after_requests */
    int sched_batch;          /* see udp.c, sched_batch */
    char *metrics_listen;
    char *log_level;
    char *redirect_above; /* "0.8" (load score) or "500" (allocations); unset: never */
    ar_conf_list_t alternate_server;
    char *nats_url, *nats_ca, *node_name, *jurisdiction;
    /* coturn options accepted for compatibility; they change nothing here (see the help). */
    int compat_flags[16];
    char *compat_log_file;
    char *compat_pidfile;
} ar_turn_conf_t;

extern const ar_conf_opt_t ar_turn_conf_opts[];
extern const size_t ar_turn_conf_nopts;

/*
 * What the daemon runs with, resolved from the configuration: listening addresses, relay
 * addresses, the peer policy and the engine's options.
 */
typedef struct ar_turn_plan_s {
    struct sockaddr_storage listen[AR_TURN_MAX_LISTENERS];
    size_t nlisten;
    struct sockaddr_storage metrics;
    int has_metrics;
    ar_addr_policy_t *policy;
    ar_turn_opts_t opts;
    uint16_t min_port, max_port;
    unsigned workers;
    int yield_after_requests; /* 1: a worker yields the CPU after request-only iterations */
    int sched_batch;          /* 1: worker threads run as SCHED_BATCH */
    /* Stream listeners on every listening address; 0: that one is off. TLS needs cert/pkey. */
    uint16_t tcp_port, tls_port, alt_tls_port;
    const char *cert, *pkey; /* NULL: no TLS */
    uint32_t stream_max_conns;
    uint32_t tcp_connect_timeout_ms; /* RFC 6062 Connect: 447 when not connected by then */
    uint16_t listen_port;
    /* ALTERNATE-SERVER: at most one of the two thresholds is set (the other is -1). */
    int64_t redirect_count;
    double redirect_score;
    struct sockaddr_storage alternates[AR_TURN_MAX_ALTERNATES];
    size_t nalternates;
    const char *nats_url, *nats_ca, *node_name, *jurisdiction; /* nats_url NULL: no bus */
} ar_turn_plan_t;

/*
 * Loads the configuration from argv, env and file. Returns 0, 1 when --help was printed (exit 0),
 * or a negative code with a one-line message in err (exit 2).
 */
AR_MUST_CHECK int ar_turn_conf_load(ar_turn_conf_t *c, int argc, char **argv, char *err,
                                    size_t errlen);
/* Resolves a loaded configuration into a plan; plan->opts points into c, so keep c alive. */
AR_MUST_CHECK int ar_turn_conf_plan(ar_turn_conf_t *c, ar_turn_plan_t *plan, char *err,
                                    size_t errlen);
void ar_turn_plan_free(ar_turn_plan_t *plan);
void ar_turn_conf_free(ar_turn_conf_t *c);

#endif
