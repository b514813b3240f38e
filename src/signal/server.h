/*
 * anteroom-signal: the signalling role as a library (cmd/anteroom-signal/main.c is a thin main).
 * docs/signal.md describes the design: sessions over ar_signal_net, rooms and waiting areas
 * replicated over NATS, resume and drain.
 */
#ifndef ANTEROOM_SIGNAL_SERVER_H
#define ANTEROOM_SIGNAL_SERVER_H

#include "anteroom/conf.h"
#include "anteroom/err.h"

#include <stddef.h>
#include <stdint.h>

typedef struct ar_signal_conf_s {
    char *listen;        /* numeric address of the WebSocket listener */
    int64_t port;        /* shared by every worker (SO_REUSEPORT) */
    char *jurisdiction;  /* in every NATS subject; tokens of another are refused (S10) */
    char *node_name;     /* workers of one node share it; backups go to another node */
    ar_conf_list_t nats; /* NATS server URLs */
    char *keys;          /* public-key file: lines "kid base64url(32-byte Ed25519 key)" */
    ar_conf_list_t origins;
    int allow_no_origin; /* accept clients that send no Origin (not browsers) */
    ar_conf_list_t drain_urls;
    int64_t drain_within;           /* ms the draining node waits before closing with 4006 */
    int64_t grace;                  /* ms a lost session is kept for resume */
    int64_t workers;                /* worker processes on this node */
    int64_t max_per_addr;           /* connections per client address per worker */
    ar_conf_list_t trusted_proxies; /* CIDRs whose X-Forwarded-For names the client */
    char *tls_cert, *tls_key;
    char *metrics_host;
    int64_t metrics_port; /* worker i serves /metrics on metrics_port + i; 0: none */
    int64_t worker_port;  /* worker i also listens alone on worker_port + i; 0: none */
    char *log_level;
    int64_t inbox_max;  /* bytes of bus messages waiting for the loop; beyond, dropped (counted) */
    int64_t admit_lag;  /* ms the bus inbox may be behind before new sessions are refused; 0: off */
    int64_t copy_batch; /* ms a backup's numbered copies are gathered before they go; 0: at once */
    int sched_batch;    /* 1: workers run as SCHED_BATCH (anteroom/sched.h) */
    int move_resumes;   /* 1: a resume moves to its owner's worker of this node (move.c) */
    int64_t token_allowance; /* ms a staff session lives past its token's exp unrefreshed */
} ar_signal_conf_t;

extern const ar_conf_opt_t ar_signal_conf_opts[];
extern const size_t ar_signal_conf_nopts;

/* Checks what the option table cannot (trusted-proxy syntax). 0, or AR_ECONFIG with a message. */
AR_MUST_CHECK int ar_signal_conf_check(const ar_signal_conf_t *conf, char *err, size_t cap);

/* Runs one worker until SIGTERM/SIGINT (SIGUSR1 drains). Returns 0 or an AR_E* code. */
AR_MUST_CHECK int ar_signal_worker_run(const ar_signal_conf_t *conf, unsigned index);

/*
 * Forks conf->workers workers (each holds fewer than 20,000 descriptors, so a node scales by
 * processes), restarts one that dies, forwards SIGUSR1 (drain) and SIGTERM. Returns when all
 * workers have exited after SIGTERM/SIGINT.
 */
AR_MUST_CHECK int ar_signal_supervise(const ar_signal_conf_t *conf);

#endif
