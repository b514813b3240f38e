/*
 * The anteroom-turn daemon: worker threads (worker.h), each with an engine and a UDP transport
 * (udp.c), the relay port pool they share, metrics and the health endpoint (daemon.c).
 */
#ifndef AR_TURN_DAEMON_H
#define AR_TURN_DAEMON_H

#include "anteroom/health.h"
#include "anteroom/metrics.h"
#include "anteroom/worker.h"
#include "turn/server.h"
#include "turn/turn_conf.h"

#include <pthread.h>
#include <stdbool.h>

/* Relay ports min-port..max-port, shared by every worker. The lock is taken only when an
 * allocation opens or closes its relay socket. */
#define AR__TURN_MAX_RESV 1024

typedef struct ar__turn_resv_s {
    uint64_t token;
    uint16_t port;
    int family;      /* 4 or 6 */
    uint64_t expiry; /* monotonic seconds */
} ar__turn_resv_t;

typedef struct ar__turn_ports_s {
    pthread_mutex_t lock;
    uint16_t min, max;
    uint32_t cursor;
    uint8_t *used; /* one byte per port in the range */
    ar__turn_resv_t resv[AR__TURN_MAX_RESV];
    size_t nresv;
} ar__turn_ports_t;

/* ports.c: a port as req asks (see ar_turn_relay_req_t); *token gets a new reservation's token
 * or 0. *family is the socket's family: in for a new port (remembered by a reservation), out
 * when redeeming a token. Returns 0, AR_ENOTFOUND (unknown or expired token) or AR_EQUOTA. */
int ar__turn_ports_take(ar__turn_ports_t *p, const ar_turn_relay_req_t *req, int *family,
                        uint16_t *port, uint64_t *token);
/* Gives a port back, and cancels the reservation token made with it (0: none). */
void ar__turn_ports_give(ar__turn_ports_t *p, uint16_t port, uint64_t token);

typedef struct ar__turn_metrics_s {
    ar_metric_t *allocations, *allocs_total, *alloc_expired;
    ar_metric_t *pkts_in, *pkts_out, *bytes_in, *bytes_out;
    ar_metric_t *auth_failures, *stale_nonces, *denied_peers, *quota_rejects, *rate_limited;
    ar_metric_t *bw_dropped, *bad_packets;
    ar_metric_t *load_allocations, *load_bandwidth, *load_cpu;
} ar__turn_metrics_t;

typedef struct ar__udp_worker_s ar__udp_worker_t;

typedef struct ar__turn_daemon_s {
    ar_turn_plan_t *plan;
    ar_turn_shared_t *sh;
    ar_metrics_t *metrics;
    ar__turn_metrics_t m;
    ar__turn_ports_t ports;
    ar__udp_worker_t *workers[AR_WORKERS_MAX];
    ar_health_t *health; /* served from worker 0's loop */
    /* Load figures, updated by worker 0 once a second. */
    uint64_t last_bytes;
    double last_cpu_s;
    uint64_t last_ms;
} ar__turn_daemon_t;

/* udp.c: worker callbacks for ar_workers_start(), with the daemon as data. */
int ar__udp_worker_init(ar_worker_t *w, void *data);
void ar__udp_worker_stop(ar_worker_t *w, void *data);
/* Frees a worker's memory after its thread has finished. */
void ar__udp_worker_free(ar__udp_worker_t *uw);
/* Pushes the worker's engine counters into the metrics (shard = worker index). */
void ar__udp_worker_push_metrics(ar__udp_worker_t *uw);

/* daemon.c: called by worker 0's timer after its own push, to refresh the load gauges. */
void ar__turn_daemon_update_load(ar__turn_daemon_t *d, uint64_t now_ms);

/* Runs the daemon until SIGINT or SIGTERM. Returns 0 or a negative code (logged). */
int ar_turn_run(ar_turn_conf_t *conf, ar_turn_plan_t *plan);

#endif
