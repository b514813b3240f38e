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
 *    it arrived: AR_TURN_PROTO_UDP (udp.c) or AR_TURN_PROTO_TCP for TCP and TLS connections
 *    (stream.c, on the same worker loops), where `conn` names the connection. The stream
 *    transport frames the bytes (STUN, or ChannelData with channels 0x4000-0x7fff padded to 4),
 *    feeds whole frames to on_client and implements send_client for its connections; when a
 *    connection closes it calls ar_turn_engine_client_closed, which deletes its allocation.
 *
 *  - Relay transports. UDP relay endpoints (relay_open) and RFC 6062 TCP ones
 *    (tcp_relay_open, with Connect / ConnectionAttempt / ConnectionBind through peer_connect,
 *    ar_turn_engine_connect_done, ar_turn_engine_connection_attempt and data_bind). The peer
 *    address policy (peer_allowed) is applied on every relay path: CreatePermission,
 *    ChannelBind, Send, Connect and inbound TCP connections.
 *
 *  - ALTERNATE-SERVER (300 Try Alternate): ar_turn_opts_t.redirect_cb is asked before an
 *    Allocate is granted; a non-NULL answer is sent back as 300 with ALTERNATE-SERVER. The
 *    daemon's answer comes from redirect.c (redirect-above, alternate-server, the NATS board).
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
/*
 * The largest payload relayed to or from a UDP peer: what one UDP datagram holds (65535 less the
 * IPv4 and UDP headers; IPv6 allows 65527, but one cap for both keeps the rule simple). Stream
 * clients may frame up to 65535 data bytes (the ChannelData and STUN length fields); larger
 * ones towards a UDP peer, and Data indications that would not fit a STUN message, are dropped
 * and counted (ar_turn_engine_count_oversize), never lost silently.
 */
#define AR_TURN_MAX_UDP_PAYLOAD 65507

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
    uint8_t tls; /* 1: a TLS stream (proto is TCP); labels metrics by the client's transport */
    uint32_t conn;
} ar_turn_tuple_t;

/* Client transports as metrics see them (ar_turn_stats_t.tr). */
#define AR_TURN_TR_UDP 0
#define AR_TURN_TR_TCP 1
#define AR_TURN_TR_TLS 2
#define AR_TURN_NTR 3

static inline unsigned ar_turn_tuple_tr(const ar_turn_tuple_t *t)
{
    return t->proto != AR_TURN_PROTO_TCP ? AR_TURN_TR_UDP
           : t->tls                      ? AR_TURN_TR_TLS
                                         : AR_TURN_TR_TCP;
}

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
 * - relay_arm (may be NULL): the allocation is getting its first permission, so datagrams
 *   arriving at the endpoint can now be relayed. Until then nothing could be, and the transport
 *   need not watch the socket at all (saving an epoll registration per allocation that never
 *   relays), nor even have bound it yet: the port is held in the pool from relay_open on.
 *   Returns 0, or an AR_E* code when the endpoint cannot be made ready (the port was bound by
 *   another program meanwhile), which fails the request that asked for the permission (508).
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
    int (*relay_arm)(void *ctx, void *handle);
    void (*relay_close)(void *ctx, void *handle);
    void (*send_peer)(void *ctx, void *handle, const ar_turn_addr_t *peer, const uint8_t *data,
                      size_t len);
    /*
     * RFC 6062 TCP allocations; all NULL: Allocate with REQUESTED-TRANSPORT TCP gets 442.
     * - tcp_relay_open: a listening TCP endpoint at a pool port (connections from peers are
     *   reported with ar_turn_engine_connection_attempt). Same returns as relay_open.
     * - tcp_relay_close: closes it and any connection still being made from it.
     * - peer_connect: starts a connection from the endpoint to peer for the Connect request
     *   tid on the control connection ctrl; its outcome comes back through
     *   ar_turn_engine_connect_done. Returns 0, AR_EEXIST (one to that peer is being made) or
     *   another code (447).
     * - data_bind: makes the client stream t the data connection of the connection cid, if
     *   that was made for the user uhash. Returns 0, or AR_ENOTFOUND (400).
     */
    int (*tcp_relay_open)(void *ctx, ar_turn_alloc_t *alloc, int family, ar_turn_addr_t *relayed,
                          void **handle);
    void (*tcp_relay_close)(void *ctx, void *handle);
    int (*peer_connect)(void *ctx, void *handle, const ar_turn_tuple_t *ctrl,
                        const ar_turn_addr_t *peer, const uint8_t tid[12]);
    int (*data_bind)(void *ctx, const ar_turn_tuple_t *t, uint32_t cid, const uint8_t uhash[16]);
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

/* What an engine counts per client transport (udp, tcp, tls: ar_turn_tuple_tr). */
typedef struct ar_turn_tr_stats_s {
    uint64_t allocations, allocs_total;
    uint64_t pkts_in, bytes_in;   /* peer -> client */
    uint64_t pkts_out, bytes_out; /* client -> peer */
} ar_turn_tr_stats_t;

/* Counters an engine keeps on its own thread; the daemon turns them into metrics. Allocations
 * and relayed traffic are kept per transport only (ar_turn_stats_total sums them). */
typedef struct ar_turn_stats_s {
    uint64_t alloc_expired;
    uint64_t auth_failures; /* 401 for a bad user, password or expired REST username */
    uint64_t stale_nonces;
    uint64_t denied_peers; /* 403 and dropped sends to refused peers */
    uint64_t quota_rejects;
    uint64_t rate_limited; /* unauthenticated requests dropped by the per-source limit */
    uint64_t bw_dropped;   /* packets dropped by max-bps */
    uint64_t no_perm_dropped;
    uint64_t bad_packets;
    uint64_t oversize_dropped;  /* bigger than the path can carry (see AR_TURN_MAX_UDP_PAYLOAD) */
    uint64_t relay_bind_failed; /* a first permission found its relay port taken: 508 */
    ar_turn_tr_stats_t tr[AR_TURN_NTR];
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
/* A stream client's connection closed: its allocation, if any, goes with it (RFC 8656 section
 * 3.1: over TCP or TLS an allocation lives only as long as the connection that made it). */
void ar_turn_engine_client_closed(ar_turn_engine_t *e, const ar_turn_tuple_t *t);
/* Whether the tuple has an allocation now (stream transports close idle connections that
 * have none). */
int ar_turn_engine_has_allocation(ar_turn_engine_t *e, const ar_turn_tuple_t *t);
/* RFC 6062: the connection a Connect (tid, on control connection ctrl) asked for is made
 * (cid != 0: answered with CONNECTION-ID) or failed (cid 0: 447). */
void ar_turn_engine_connect_done(ar_turn_engine_t *e, const ar_turn_tuple_t *ctrl,
                                 const uint8_t tid[12], uint32_t cid);
/* RFC 6062: peer connected to alloc's TCP endpoint. Sends ConnectionAttempt with cid and returns
 * 0, or AR_EPERM (no permission for the peer, or refused by the peer policy: close it). */
int ar_turn_engine_connection_attempt(ar_turn_engine_t *e, ar_turn_alloc_t *alloc,
                                      const ar_turn_addr_t *peer, uint32_t cid);
/* A datagram from peer at alloc's relay endpoint. The payload is at buf + AR_TURN_HEADROOM and
 * the engine writes its header into the headroom in place; buf must also have 3 writable bytes
 * after the payload for padding. */
void ar_turn_engine_on_peer(ar_turn_engine_t *e, ar_turn_alloc_t *alloc, const ar_turn_addr_t *peer,
                            uint8_t *buf, size_t len);
/* Runs the timer wheel up to now: expires permissions, channels and allocations. Call about
 * once a second. */
void ar_turn_engine_tick(ar_turn_engine_t *e);

const ar_turn_stats_t *ar_turn_engine_stats(const ar_turn_engine_t *e);
/* tr[] summed over the transports. */
ar_turn_tr_stats_t ar_turn_stats_total(const ar_turn_stats_t *s);
/*
 * A packet of len bytes dropped because it is bigger than its path can carry: counted in
 * oversize_dropped and logged (one line a second at most). The engine calls it for what it
 * refuses itself; transports call it for what the kernel or their buffers refuse.
 */
void ar_turn_engine_count_oversize(ar_turn_engine_t *e, size_t len);
/* Bytes an RFC 6062 data connection of client stream t relayed (out: client to peer). They
 * pass the stream transport only, so it reports them here; counted as bytes, not packets. */
void ar_turn_engine_count_stream(ar_turn_engine_t *e, const ar_turn_tuple_t *t, int out,
                                 size_t bytes);

/* Address conversions. */
int ar_turn_addr_from_sa(ar_turn_addr_t *out, const struct sockaddr *sa);
socklen_t ar_turn_addr_to_sa(const ar_turn_addr_t *a, struct sockaddr_storage *out);

#endif
