/*
 * The anteroom-turn daemon: worker threads (worker.h), each with an engine and a UDP transport
 * (udp.c), the relay port pool they share, metrics and the health endpoint (daemon.c).
 */
#ifndef AR_TURN_DAEMON_H
#define AR_TURN_DAEMON_H

#include "anteroom/alloc.h"
#include "anteroom/health.h"
#include "anteroom/metrics.h"
#include "anteroom/tls.h"
#include "anteroom/worker.h"
#include "turn/load/load_bus.h"
#include "turn/server.h"
#include "turn/turn_conf.h"

#include <pthread.h>
#include <stdatomic.h>
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
    /* Relay sockets are bound at the allocation's first permission, not at Allocate: set when
     * no other program can be handed a port of the range (ar__turn_ports_lazy_ok). */
    bool lazy;
} ar__turn_ports_t;

/* ports.c: a port as req asks (see ar_turn_relay_req_t); *token gets a new reservation's token
 * or 0. *family is the socket's family: in for a new port (remembered by a reservation), out
 * when redeeming a token. Returns 0, AR_ENOTFOUND (unknown or expired token) or AR_EQUOTA. */
int ar__turn_ports_take(ar__turn_ports_t *p, const ar_turn_relay_req_t *req, int *family,
                        uint16_t *port, uint64_t *token);
/* Gives a port back, and cancels the reservation token made with it (0: none). */
void ar__turn_ports_give(ar__turn_ports_t *p, uint16_t port, uint64_t token);
/*
 * Whether min..max may be held in the pool without a bound socket: true when no port of it is
 * one the kernel hands out on its own (the ephemeral range, less the reserved ports), so only a
 * program binding that very port could take one. ephemeral is the text of
 * net.ipv4.ip_local_port_range ("32768\t60999"), reserved that of ip_local_reserved_ports
 * ("", or "8080,50000-50100"); NULL or unparsable ephemeral text is false.
 */
bool ar__turn_ports_lazy_ok(uint16_t min, uint16_t max, const char *ephemeral,
                            const char *reserved);
/* The same for this host's network namespace (reads the two files under /proc/sys). */
bool ar__turn_ports_lazy_here(uint16_t min, uint16_t max);
/* A UDP relay socket bound to local (its port included), with IPV6_V6ONLY for IPv6 and path
 * MTU discovery on for dont_fragment. 0 and *fd, AR_EADDRINUSE or AR_ESYS. */
int ar__turn_relay_socket(const ar_turn_addr_t *local, bool dont_fragment, int *fd);

/* Metrics; the per-transport ones are indexed by AR_TURN_TR_* (label transport="udp|tcp|tls",
 * the client's transport). Every member is a metric pointer: register_metrics checks them all. */
typedef struct ar__turn_metrics_s {
    ar_metric_t *allocations[AR_TURN_NTR], *allocs_total[AR_TURN_NTR], *alloc_expired;
    ar_metric_t *pkts_in[AR_TURN_NTR], *pkts_out[AR_TURN_NTR];
    ar_metric_t *bytes_in[AR_TURN_NTR], *bytes_out[AR_TURN_NTR];
    ar_metric_t *auth_failures, *stale_nonces, *denied_peers, *quota_rejects, *rate_limited;
    ar_metric_t *bw_dropped, *bad_packets, *oversize_dropped, *relay_bind_failed;
    ar_metric_t *send_dropped;
    ar_metric_t *load_allocations, *load_bandwidth, *load_cpu;
} ar__turn_metrics_t;

/* redirect.c: this relay's load report and where Allocates go when it is over redirect-above. */
typedef struct ar__turn_redirect_s {
    pthread_mutex_t lock; /* guards report, score and target */
    bool lock_init;
    ar_turn_cpu_sampler_t cpu;
    ar_turn_load_t report; /* the last one made */
    double score;
    bool have_target;
    struct sockaddr_storage target;
    atomic_bool over_score; /* score mode: over the threshold with a target to name */
    size_t next_static;     /* round robin over alternate-server */
    ar_turn_loadboard_t *board;
    ar_turn_loadbus_t *bus;
} ar__turn_redirect_t;

/* RFC 6062 peer connections made (Connect) or accepted (ConnectionAttempt) and not yet bound
 * to a client data connection. They wait here, unread (the kernel buffers what the peer sends),
 * for a ConnectionBind on any worker; after 30 s they are closed. */
#define AR__TURN_MAX_PARKED 1024

/*
 * The life of an RFC 6062 TCP allocation as its peer connections see it: the allocation's
 * endpoint holds one reference, and so does every parked or bound connection it made. When the
 * allocation ends (deleted, expired, its control connection closed) `dead` is set and its parked
 * connections are closed at once; bound data connections, which may live on other workers, are
 * closed by their own worker's next tick (within a second). The last reference frees it.
 */
typedef struct ar__turn_tcplife_s {
    atomic_bool dead;
    atomic_int refs;
} ar__turn_tcplife_t;

static inline ar__turn_tcplife_t *ar__turn_tcplife_get(ar__turn_tcplife_t *l)
{
    atomic_fetch_add_explicit(&l->refs, 1, memory_order_relaxed);
    return l;
}

static inline void ar__turn_tcplife_put(ar__turn_tcplife_t *l)
{
    if (l && atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) == 1)
        ar_free(l);
}

typedef struct ar__turn_parked_s {
    uint32_t cid;
    int fd;
    ar__turn_tcplife_t *life; /* a reference */
    uint8_t uhash[16];        /* the allocation's user: only that user may bind */
    uint64_t at_ms;           /* the parking worker's loop time: may be ahead of the sweeper's */
} ar__turn_parked_t;

typedef struct ar__turn_cids_s {
    pthread_mutex_t lock;
    ar__turn_parked_t e[AR__TURN_MAX_PARKED];
    size_t n;
    uint32_t next;
} ar__turn_cids_t;

typedef struct ar__udp_worker_s ar__udp_worker_t;
typedef struct ar__stream_worker_s ar__stream_worker_t;

typedef struct ar__turn_daemon_s {
    ar_turn_plan_t *plan;
    ar_turn_shared_t *sh;
    ar_metrics_t *metrics;
    ar__turn_metrics_t m;
    ar__turn_ports_t ports;
    ar__udp_worker_t *workers[AR_WORKERS_MAX];
    ar_health_t *health;  /* served from worker 0's loop */
    ar_tls_server_t *tls; /* cert/pkey for the TLS listeners; NULL: no TLS */
    /* Load figures, updated by worker 0 once a second. */
    uint64_t last_bytes;
    double last_cpu_s;
    uint64_t last_ms;
    ar__turn_redirect_t redirect;
    ar__turn_cids_t cids;
} ar__turn_daemon_t;

/* udp.c: worker callbacks for ar_workers_start(), with the daemon as data. */
int ar__udp_worker_init(ar_worker_t *w, void *data);
void ar__udp_worker_stop(ar_worker_t *w, void *data);
/* Frees a worker's memory after its thread has finished. */
void ar__udp_worker_free(ar__udp_worker_t *uw);
/* Pushes the worker's engine counters into the metrics (shard = worker index). */
void ar__udp_worker_push_metrics(ar__udp_worker_t *uw);

/* Sets the engine's clock from the worker's loop (before feeding it from another transport). */
void ar__udp_worker_set_now(ar__udp_worker_t *uw);

/* stream.c: TCP and TLS client connections on a worker's loop, feeding its engine. *out stays
 * NULL when no stream listener is configured. */
int ar__stream_worker_init(ar__udp_worker_t *uw, uv_loop_t *loop, ar__turn_daemon_t *d,
                           ar_turn_engine_t *e, ar__stream_worker_t **out);
/* The engine's send_client for tuples with proto TCP. */
void ar__stream_send(ar__stream_worker_t *sw, const ar_turn_tuple_t *t, const uint8_t *data,
                     size_t len);
/* Once a second: closes connections that hold no allocation past their timeout. */
void ar__stream_tick(ar__stream_worker_t *sw, uint64_t now_ms);
/* RFC 6062 transport callbacks (server.h); sw may be NULL (no stream listener: AR_EINVAL). */
int ar__stream_tcp_relay_open(ar__stream_worker_t *sw, ar_turn_alloc_t *alloc, int family,
                              ar_turn_addr_t *relayed, void **handle);
void ar__stream_tcp_relay_close(void *handle);
int ar__stream_peer_connect(void *handle, const ar_turn_tuple_t *ctrl, const ar_turn_addr_t *peer,
                            const uint8_t tid[12]);
int ar__stream_data_bind(ar__stream_worker_t *sw, const ar_turn_tuple_t *t, uint32_t cid,
                         const uint8_t uhash[16]);
/* Closes parked peer connections older than 30 s or whose allocation ended (any worker may call
 * it). */
void ar__stream_cids_sweep(ar__turn_daemon_t *d, uint64_t now_ms);
/* Stops listening and closes every connection (their allocations go with the engine). */
void ar__stream_worker_stop(ar__stream_worker_t *sw);
void ar__stream_worker_free(ar__stream_worker_t *sw);

/* redirect.c (see there). */
int ar__turn_redirect_init(ar__turn_daemon_t *d);
void ar__turn_redirect_free(ar__turn_daemon_t *d);
void ar__turn_redirect_update(ar__turn_daemon_t *d, uint64_t allocations, uint64_t bytes_per_s);
const struct sockaddr *ar__turn_redirect(void *ctx);
int ar__turn_redirect_json(void *ctx, char *out, size_t cap);

/* daemon.c: called by worker 0's timer after its own push, to refresh the load gauges. */
void ar__turn_daemon_update_load(ar__turn_daemon_t *d, uint64_t now_ms);

/* Runs the daemon until SIGINT or SIGTERM. Returns 0 or a negative code (logged). */
int ar_turn_run(ar_turn_conf_t *conf, ar_turn_plan_t *plan);

#endif
