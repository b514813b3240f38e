/*
 * anteroom-turn: the TURN relay engine (RFC 8656 over RFC 8489) and the daemon around it.
 *
 * Layers, and the seams for the work that follows:
 *
 *  - The engine (ar_turn_engine_t, engine.c, auth.c, alloc.c) is transport independent: it is
 *    fed datagrams or frames from clients (ar_turn_engine_on_client) and datagrams from peers
 *    (ar_turn_engine_on_peer), and it acts only through the ar_turn_transport_t callbacks
 *    below. It never touches a socket, so tests drive it with a fake transport and an injected
 *    clock. One engine runs per worker thread; what workers share (configuration, credentials,
 *    quotas, the relay port pool) lives in ar_turn_shared_t.
 *
 *  - Client transports. Every client message carries an ar_turn_tuple_t whose `proto` says how
 *    it arrived (AR_TURN_PROTO_UDP today, udp.c). A TCP or TLS listener (its own file beside
 *    udp.c, on the same worker loops) adds its own proto value, frames the stream, feeds whole
 *    frames to on_client, and implements send_client for its connections (the tuple's `conn`
 *    field names the connection). Nothing else in the engine changes: allocations are keyed by
 *    the whole tuple. Framing note: we accept channel numbers up to 0x7fff (RFC 5766 clients,
 *    see internal.h), so a stream framer must treat a first byte 0x40-0x7f as ChannelData,
 *    wider than ar_stun_classify()'s 0x40-0x4f.
 *
 *  - Relay transports. Allocate with REQUESTED-TRANSPORT other than UDP gets 442 today, in
 *    engine.c's handle_allocate(). RFC 6062 TCP allocations add a relay_open variant for TCP
 *    and handlers for CONNECT / CONNECTION-BIND there; the peer address policy (peer_allowed)
 *    must be called on every CONNECT target as it is on CreatePermission/ChannelBind/Send.
 *
 *  - ALTERNATE-SERVER (300 Try Alternate): ar_turn_opts_t.redirect_cb is asked before an
 *    Allocate is granted; a non-NULL answer is sent back as 300 with ALTERNATE-SERVER. The load
 *    figures to decide on (and to publish to NATS) are ar_turn_shared_allocations() and the
 *    gauges daemon.c refreshes once a second (anteroom_turn_load_*: allocations, relayed
 *    bytes/s, CPU); a NATS publisher belongs beside ar__turn_daemon_update_load().
 *
 * Ownership: the shared context outlives every engine; an engine owns its allocations and
 * closes their relay endpoints (relay_close) when they expire or when it is freed.
 */
#ifndef AR_TURN_SERVER_H
#define AR_TURN_SERVER_H

#include "anteroom/err.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Room kept in front of a peer datagram so the engine can prepend a Data indication or a
 * ChannelData header in place (20 header + 24 XOR-PEER-ADDRESS (IPv6) + 4 DATA header). */
#define AR_TURN_HEADROOM 48

#define AR_TURN_PROTO_UDP 17
#define AR_TURN_PROTO_TCP 6

/* A compact transport address: cheaper to hash and compare than a sockaddr_storage. */
typedef struct ar_turn_addr_s {
    uint8_t family; /* 4 or 6; 0 for none */
    uint8_t pad;
    uint16_t port; /* host order */
    uint8_t ip[16];
} ar_turn_addr_t;

/* The client side of a 5-tuple: the client's address, which of our listeners it reached, and
 * the transport; `conn` distinguishes stream connections (0 for UDP). */
typedef struct ar_turn_tuple_s {
    ar_turn_addr_t client;
    uint16_t listener;
    uint8_t proto;
    uint8_t pad;
    uint32_t conn;
} ar_turn_tuple_t;

typedef struct ar_turn_alloc_s ar_turn_alloc_t;
typedef struct ar_turn_engine_s ar_turn_engine_t;
typedef struct ar_turn_shared_s ar_turn_shared_t;

/*
 * What the engine needs from the I/O layer. All callbacks run on the engine's thread.
 * - send_client: send data to the client of tuple t. The transport may queue the pointer
 *   (zero copy) when it points into its own receive buffers; otherwise it copies.
 * - relay_open: open a relay endpoint of the given family (4 or 6; 0 with a token: the
 *   reservation's family) on a port from the pool, as
 *   req asks (an even port; also reserving the next port and writing its token to *token; or
 *   the port a RESERVATION-TOKEN reserved). Fills *relayed with the local address and *handle
 *   with the transport's object. The transport reports datagrams arriving there with
 *   on_peer(alloc). Returns 0, AR_ENOTFOUND for an unknown token, or AR_EQUOTA/AR_ESYS when no
 *   port or socket is available.
 * - relay_arm (may be NULL): the allocation got its first permission, so datagrams arriving at
 *   the endpoint can now be relayed. Until then nothing could be, and the transport need not
 *   watch the socket at all (saving an epoll registration per allocation that never relays).
 * - relay_close: close the endpoint; no on_peer for it may follow.
 * - send_peer: send data from the endpoint to peer; same pointer rules as send_client.
 */
/* What an Allocate asks of the relay port (RFC 8656 sections 14.6 and 14.9). */
typedef struct ar_turn_relay_req_s {
    int even_port;     /* EVEN-PORT present */
    int reserve_next;  /* its R bit: keep port + 1 for a later Allocate with the token */
    uint64_t token;    /* RESERVATION-TOKEN, 0 for none */
    int dont_fragment; /* DONT-FRAGMENT: set the DF bit on packets to peers (section 14.8) */
} ar_turn_relay_req_t;

typedef struct ar_turn_transport_s {
    void *ctx;
    void (*send_client)(void *ctx, const ar_turn_tuple_t *t, const uint8_t *data, size_t len);
    int (*relay_open)(void *ctx, ar_turn_alloc_t *alloc, int family, const ar_turn_relay_req_t *req,
                      ar_turn_addr_t *relayed, uint64_t *token, void **handle);
    void (*relay_arm)(void *ctx, void *handle);
    void (*relay_close)(void *ctx, void *handle);
    void (*send_peer)(void *ctx, void *handle, const ar_turn_addr_t *peer, const uint8_t *data,
                      size_t len);
} ar_turn_transport_t;

/* The engine's view of its options, filled from the daemon configuration (turn_conf.c). */
typedef struct ar_turn_opts_s {
    const char *realm;
    int use_auth_secret;
    const char *const *secrets; /* static-auth-secret values (several allow rotation) */
    size_t nsecrets;
    const char *const *users; /* "name:password" or "name:0x<hex md5 key>" */
    size_t nusers;
    ar_turn_addr_t relay4, relay6;           /* relay-ip by family (family 0: none) */
    ar_turn_addr_t external4, external6;     /* external-ip: advertised instead of relay-ip */
    int64_t user_quota;                      /* allocations per username, 0: unlimited */
    int64_t total_quota;                     /* allocations per process, 0: unlimited */
    int64_t max_bps;                         /* bytes/s per allocation and direction, 0: no cap */
    uint32_t default_lifetime, max_lifetime; /* seconds (600, 3600) */
    uint32_t nonce_lifetime;                 /* seconds before a nonce is stale (600) */
    uint32_t unauth_rate, unauth_burst;      /* unauthenticated requests/s per source address */
    /* Peer policy: 0 when a relay to sa may happen, AR_EPERM when refused. */
    int (*peer_allowed)(void *ctx, const struct sockaddr *sa);
    void *peer_ctx;
    /* Optional: an ALTERNATE-SERVER for an Allocate, or NULL to serve it here. */
    const struct sockaddr *(*redirect_cb)(void *ctx);
    void *redirect_ctx;
} ar_turn_opts_t;

/* Counters an engine keeps on its own thread; the daemon turns them into metrics. */
typedef struct ar_turn_stats_s {
    uint64_t allocations;  /* current */
    uint64_t allocs_total; /* granted since start */
    uint64_t alloc_expired;
    uint64_t relayed_pkts_in, relayed_bytes_in;   /* peer -> client */
    uint64_t relayed_pkts_out, relayed_bytes_out; /* client -> peer */
    uint64_t auth_failures; /* 401 for a bad user, password or expired REST username */
    uint64_t stale_nonces;
    uint64_t denied_peers; /* 403 and dropped sends to refused peers */
    uint64_t quota_rejects;
    uint64_t rate_limited; /* unauthenticated requests dropped by the per-source limit */
    uint64_t bw_dropped;   /* packets dropped by max-bps */
    uint64_t no_perm_dropped;
    uint64_t bad_packets;
} ar_turn_stats_t;

/* Shared state: copies what it needs from opts. Returns NULL on allocation failure or bad
 * user lines (err says which, without the secret). */
ar_turn_shared_t *ar_turn_shared_new(const ar_turn_opts_t *opts, char *err, size_t errlen);
void ar_turn_shared_free(ar_turn_shared_t *sh);
/* Current allocations over every engine (for load reports and redirection). */
int64_t ar_turn_shared_allocations(const ar_turn_shared_t *sh);

ar_turn_engine_t *ar_turn_engine_new(ar_turn_shared_t *sh, const ar_turn_transport_t *tp);
/* Deletes every allocation (closing its relay endpoint) and frees the engine. */
void ar_turn_engine_free(ar_turn_engine_t *e);

/* The clock: monotonic milliseconds for lifetimes and buckets, wall seconds for REST usernames.
 * The transport sets it once per batch; tests set it to whatever they like. */
void ar_turn_engine_set_now(ar_turn_engine_t *e, uint64_t mono_ms, int64_t wall_s);

/* A datagram (or one whole stream frame) from a client. buf is writable scratch for the call. */
void ar_turn_engine_on_client(ar_turn_engine_t *e, const ar_turn_tuple_t *t, uint8_t *buf,
                              size_t len);
/* A datagram from peer at alloc's relay endpoint. The payload is at buf + AR_TURN_HEADROOM and
 * the engine writes its header into the headroom in place; buf must also have 3 writable bytes
 * after the payload for padding. */
void ar_turn_engine_on_peer(ar_turn_engine_t *e, ar_turn_alloc_t *alloc, const ar_turn_addr_t *peer,
                            uint8_t *buf, size_t len);
/* Runs the timer wheel up to now: expires permissions, channels and allocations. Call about
 * once a second. */
void ar_turn_engine_tick(ar_turn_engine_t *e);

const ar_turn_stats_t *ar_turn_engine_stats(const ar_turn_engine_t *e);

/* Address conversions. */
int ar_turn_addr_from_sa(ar_turn_addr_t *out, const struct sockaddr *sa);
socklen_t ar_turn_addr_to_sa(const ar_turn_addr_t *a, struct sockaddr_storage *out);

#endif
