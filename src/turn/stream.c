/*
 * TURN over TCP and TLS client connections (RFC 8656 sections 3.1 and 12.5), on the same worker
 * loops and engines as the UDP transport.
 *
 * Each worker listens with its own SO_REUSEPORT socket on listening-port (TCP), on
 * tls-listening-port and, when set, alt-tls-listening-port (TLS, through the core connection
 * interface, so OpenSSL stays in src/core/tls.c and certificates are reloaded on SIGHUP).
 *
 * A connection's bytes are cut into frames: a STUN message (20 + its length) or a ChannelData
 * message (4 + its length, padded to 4 over streams). Each whole frame goes to the engine with
 * the connection's tuple (proto TCP, conn = its slot). Anything that is neither closes that
 * connection and only that one. A frame longer than the per-connection buffer (FRAME_CAP) is
 * gathered in a buffer of its own, up to the 16-bit length limit of both framings, so any
 * payload a client may send is relayed (or, bigger than a UDP datagram, dropped and counted by
 * the engine). Those buffers are capped per worker (BIG_BUDGET): a frame over the budget is
 * skipped, counted as oversize and logged, so idle half-sent frames cannot pin memory.
 *
 * Caps and timeouts: at most max_conns connections per worker (more are closed at once); each
 * connection holds at most OUT_CAP bytes towards its client (relayed packets beyond that are
 * dropped, as a full UDP socket buffer would); a connection without an allocation for
 * UNALLOC_TIMEOUT_MS is closed, and its allocation is deleted when it closes.
 *
 * RFC 6062 TCP allocations live here too, since their client side is a stream connection: a TCP
 * allocation's endpoint is a listening socket at its relayed address; Connect makes an
 * outgoing connection bound to that address. Either kind of peer connection is then parked,
 * unread, in the daemon's table under a CONNECTION-ID until a ConnectionBind arrives on a new
 * client connection, which may have reached any worker (the table is shared, and the parked
 * descriptor is simply taken over by that worker's loop). From then on the client connection
 * is raw: bytes pass both ways with backpressure (the client's reads pause while RAW_CAP bytes
 * wait for the peer; the peer is not read while the client has more than OUT_CAP / 2 queued).
 * Closing either side closes the other. When the allocation ends (deleted, expired, or its
 * control connection closed), its parked peer connections are closed at once and its bound data
 * connections, client and peer side, by their worker's next tick (ar__turn_tcplife_t). A Connect
 * that has not connected within tcp-connect-timeout (30 s by default, as RFC 6062 says) is
 * abandoned and answered 447.
 */
#include "daemon.h"
#include "internal.h"

#include "anteroom/alloc.h"
#include "anteroom/conn.h"
#include "anteroom/log.h"
#include "anteroom/rand.h"
#include "proto/stun/stun.h"

#include <errno.h>
#include <sodium.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define FRAME_CAP 4096                       /* longest frame kept in the connection itself */
#define BIG_BUDGET ((size_t)8 << 20)         /* bytes of longer frames a worker gathers at once */
#define OUT_CAP ((size_t)256 * 1024)         /* bytes queued towards one client */
#define UNALLOC_TIMEOUT_MS ((uint64_t)30000) /* a connection must hold an allocation by then */
/* A frame over FRAME_CAP holds its whole length of the worker's BIG_BUDGET until it is complete:
 * one that has not arrived after this long is a stall, and its connection is closed, so a few
 * connections cannot hold the budget that every client's large frames share. */
#define BIG_STALL_MS ((uint64_t)10000)
#define TLS_HANDSHAKE_MS 10000       /* connect to handshake done */
#define PARK_TIMEOUT_MS 30000        /* RFC 6062: an unbound peer connection lives 30 s */
#define RAW_CAP ((size_t)256 * 1024) /* client bytes waiting for a slow peer (RFC 6062 data) */

/* The peer side of a bound RFC 6062 data connection: a raw TCP socket we read and write. */
typedef struct peer_side_s {
    uv_poll_t poll;
    struct stream_conn_s *sc; /* NULL once the client side is gone */
    int fd;
    int events;
} peer_side_t;

typedef struct stream_listener_s {
    ar__stream_worker_t *sw;
    ar_listener_t *l;
    uint16_t index;
    bool tls;
} stream_listener_t;

typedef struct stream_conn_s {
    ar_conn_t *c;
    ar__stream_worker_t *sw;
    ar_turn_tuple_t tuple;
    uint64_t alloc_seen_ms; /* last tick that saw an allocation (or the open time) */
    size_t skip;            /* bytes of a frame over BIG_BUDGET still to discard */
    uint8_t *big;           /* a frame longer than FRAME_CAP being gathered, big_need bytes */
    size_t big_need, big_used;
    uint64_t big_seen_ms; /* when the tick first saw the frame being gathered (0: not yet) */
    bool raw;             /* an RFC 6062 data connection: bytes pass through unframed */
    peer_side_t *peer;
    ar__turn_tcplife_t *life; /* raw: the allocation that made the peer connection */
    uint8_t *pout;            /* client bytes the peer has not taken yet (raw only) */
    size_t pout_len;
    size_t used;
    uint8_t buf[FRAME_CAP];
} stream_conn_t;

struct ar__stream_worker_s {
    ar__udp_worker_t *uw;
    ar__turn_daemon_t *d;
    ar_turn_engine_t *e;
    uv_loop_t *loop;
    stream_listener_t listeners[3 * AR_TURN_MAX_LISTENERS];
    size_t nlisteners;
    stream_conn_t **slots; /* by tuple.conn */
    uint32_t *free_slots;
    uint32_t nfree, max_conns;
    size_t big_bytes; /* held by connections' big buffers, at most BIG_BUDGET */
    bool stopping;
    uint8_t scratch[FRAME_CAP]; /* a ChannelData frame with its stream padding */
};

/* --- sending --- */

static stream_conn_t *conn_of(const ar__stream_worker_t *sw, const ar_turn_tuple_t *t)
{
    if (!sw || t->conn >= sw->max_conns)
        return NULL;
    stream_conn_t *sc = sw->slots[t->conn];
    /* The address check keeps a reused slot from receiving a closed connection's packets. */
    if (!sc || sc->tuple.listener != t->listener ||
        !ar__turn_addr_eq(&sc->tuple.client, &t->client))
        return NULL;
    return sc;
}

void ar__stream_send(ar__stream_worker_t *sw, const ar_turn_tuple_t *t, const uint8_t *data,
                     size_t len)
{
    stream_conn_t *sc = conn_of(sw, t);
    if (!sc || len == 0)
        return;
    /* Frames come whole and, ChannelData included, already padded for a stream (the engine
     * pads as the codec says). AR_EAGAIN: the client reads slower than its peers send; the packet
     * is dropped, as a full UDP socket buffer would drop it. Other errors close the connection
     * (on_close follows). */
    int rc = ar_conn_write(sc->c, data, len);
    (void)rc;
}

/* --- receiving --- */

static void big_free(stream_conn_t *sc)
{
    if (!sc->big)
        return;
    sc->sw->big_bytes -= sc->big_need;
    ar_free(sc->big);
    sc->big = NULL;
}

/* Starts gathering a frame of need bytes (longer than FRAME_CAP), or skips it when the worker's
 * budget is spent or memory is short; either way the frame's bytes are now accounted for. */
static void big_start(stream_conn_t *sc, size_t need)
{
    ar__stream_worker_t *sw = sc->sw;
    if (sw->big_bytes + need <= BIG_BUDGET)
        sc->big = ar_malloc(need);
    if (!sc->big) {
        ar_turn_engine_count_oversize(sw->e, need);
        sc->skip = need;
        return;
    }
    sw->big_bytes += need;
    sc->big_need = need;
    sc->big_used = 0;
    sc->big_seen_ms = 0;
}

/* Adds bytes to the frame being gathered; hands it to the engine once whole. Returns the bytes
 * taken. */
static size_t big_feed(stream_conn_t *sc, const uint8_t *data, size_t len)
{
    size_t n = sc->big_need - sc->big_used;
    if (n > len)
        n = len;
    memcpy(sc->big + sc->big_used, data, n);
    sc->big_used += n;
    if (sc->big_used == sc->big_need) {
        ar_turn_engine_on_client(sc->sw->e, &sc->tuple, sc->big, sc->big_need);
        big_free(sc);
    }
    return n;
}

static void slot_release(ar__stream_worker_t *sw, stream_conn_t *sc)
{
    sw->slots[sc->tuple.conn] = NULL;
    sw->free_slots[sw->nfree++] = sc->tuple.conn;
}

/* Feeds every whole frame at data; returns bytes consumed, or -1 to close the connection. */
static long feed_frames(stream_conn_t *sc, uint8_t *data, size_t len)
{
    ar__stream_worker_t *sw = sc->sw;
    size_t off = 0;
    while (off < len) {
        size_t need = 0;
        int kind = ar_stun_classify(data + off, len - off, &need);
        if (kind == 0)
            return -1;
        if (need == 0)
            break; /* header incomplete */
        if (need > FRAME_CAP) {
            /* Only a client with an allocation has a use for a large frame (data for a peer);
             * before that, one would only hold the shared budget (an HTTP request parses as a
             * 21 KiB ChannelData frame). */
            if (!ar_turn_engine_has_allocation(sw->e, &sc->tuple))
                return -1;
            big_start(sc, need);
            if (sc->big) {
                off += big_feed(sc, data + off, len - off);
            } else {
                size_t n = len - off < need ? len - off : need;
                sc->skip -= n;
                off += n;
            }
            if (sc->raw)
                break; /* a large ConnectionBind: what follows is the client's data */
            continue;
        }
        if (len - off < need)
            break;
        ar_turn_engine_on_client(sw->e, &sc->tuple, data + off, need);
        off += need;
        if (sc->raw)
            break;
    }
    return (long)off;
}

static void raw_to_peer(stream_conn_t *sc, const uint8_t *data, size_t len);

static void on_read(ar_conn_t *c, const uint8_t *data, size_t len)
{
    stream_conn_t *sc = ar_conn_get_data(c);
    if (!sc || sc->sw->stopping)
        return;
    if (sc->raw) {
        raw_to_peer(sc, data, len);
        return;
    }
    ar__udp_worker_set_now(sc->sw->uw);
    while (len > 0) {
        if (sc->skip) {
            size_t n = len < sc->skip ? len : sc->skip;
            sc->skip -= n;
            data += n;
            len -= n;
            continue;
        }
        if (sc->big) {
            size_t n = big_feed(sc, data, len);
            data += n;
            len -= n;
            if (sc->raw) {
                /* The frame was a ConnectionBind that succeeded: the rest is the client's data. */
                if (len)
                    raw_to_peer(sc, data, len);
                return;
            }
            continue;
        }
        size_t n = sizeof(sc->buf) - sc->used;
        if (n > len)
            n = len;
        memcpy(sc->buf + sc->used, data, n);
        sc->used += n;
        data += n;
        len -= n;
        long used = feed_frames(sc, sc->buf, sc->used);
        if (used < 0) {
            ar_log0(AR_LOG_DEBUG, "stream_garbage");
            ar_conn_close(c);
            return;
        }
        sc->used -= (size_t)used;
        if (sc->used && used)
            memmove(sc->buf, sc->buf + used, sc->used);
        if (sc->raw) {
            /* ConnectionBind succeeded: what followed it is the client's first data. */
            if (sc->used)
                raw_to_peer(sc, sc->buf, sc->used);
            sc->used = 0;
            if (len)
                raw_to_peer(sc, data, len);
            return;
        }
    }
}

static void on_open(ar_conn_t *c)
{
    stream_listener_t *li = ar_conn_get_data(c);
    ar__stream_worker_t *sw = li->sw;
    ar_conn_set_data(c, NULL);
    struct sockaddr_storage ss;
    stream_conn_t *sc = NULL;
    if (!sw->stopping && sw->nfree > 0 && ar_conn_peer(c, &ss) == 0)
        sc = ar_calloc(1, sizeof(*sc));
    if (!sc || ar_turn_addr_from_sa(&sc->tuple.client, (struct sockaddr *)&ss) != 0) {
        ar_free(sc);
        ar_conn_close(c); /* over the cap, out of memory or stopping */
        return;
    }
    sc->c = c;
    sc->sw = sw;
    sc->tuple.proto = AR_TURN_PROTO_TCP;
    sc->tuple.listener = li->index;
    sc->tuple.tls = li->tls;
    sc->tuple.conn = sw->free_slots[--sw->nfree];
    sc->alloc_seen_ms = uv_now(sw->loop);
    sw->slots[sc->tuple.conn] = sc;
    ar_conn_set_data(c, sc);
}

static void peer_side_close(stream_conn_t *sc);

static void on_close(ar_conn_t *c, int err)
{
    (void)err;
    stream_conn_t *sc = ar_conn_get_data(c);
    if (!sc)
        return;
    ar__stream_worker_t *sw = sc->sw;
    slot_release(sw, sc);
    big_free(sc);
    peer_side_close(sc);
    ar__turn_tcplife_put(sc->life);
    if (!sw->stopping) {
        ar__udp_worker_set_now(sw->uw);
        ar_turn_engine_client_closed(sw->e, &sc->tuple);
    }
    ar_free(sc);
}

static void on_drain(ar_conn_t *c);

static const ar_conn_cbs_t stream_cbs = {
    .on_open = on_open,
    .on_read = on_read,
    .on_drain = on_drain,
    .on_close = on_close,
};

/* Closes connections that have held no allocation for UNALLOC_TIMEOUT_MS. */
void ar__stream_tick(ar__stream_worker_t *sw, uint64_t now_ms)
{
    if (!sw)
        return;
    for (uint32_t i = 0; i < sw->max_conns; i++) {
        stream_conn_t *sc = sw->slots[i];
        if (!sc || ar_conn_state(sc->c) >= AR_CONN_CLOSING)
            continue;
        if (sc->raw) {
            /* A data connection holds no allocation of its own, and ends with the one that
             * made its peer connection (RFC 6062 section 5.3: an allocation's connections are
             * closed when it goes). */
            if (sc->life && atomic_load_explicit(&sc->life->dead, memory_order_acquire))
                ar_conn_close(sc->c);
            continue;
        }
        if (sc->big) {
            if (sc->big_seen_ms == 0)
                sc->big_seen_ms = now_ms;
            else if (now_ms - sc->big_seen_ms > BIG_STALL_MS) {
                ar_conn_close(sc->c);
                continue;
            }
        }
        if (ar_turn_engine_has_allocation(sw->e, &sc->tuple))
            sc->alloc_seen_ms = now_ms;
        else if (now_ms - sc->alloc_seen_ms > UNALLOC_TIMEOUT_MS)
            ar_conn_close(sc->c);
    }
}

/* --- RFC 6062: parked peer connections --- */

static uint32_t park(ar__turn_daemon_t *d, int fd, const uint8_t uhash[16], uint64_t now_ms,
                     ar__turn_tcplife_t *life)
{
    ar__turn_cids_t *t = &d->cids;
    uint32_t cid = 0;
    pthread_mutex_lock(&t->lock);
    if (t->n < AR__TURN_MAX_PARKED) {
        if (t->next == 0)
            ar_rand_bytes(&t->next, sizeof(t->next)); /* ids do not restart from 1 */
        cid = ++t->next ? t->next : ++t->next;
        ar__turn_parked_t *p = &t->e[t->n++];
        p->cid = cid;
        p->fd = fd;
        p->life = ar__turn_tcplife_get(life);
        memcpy(p->uhash, uhash, 16);
        p->at_ms = now_ms;
    }
    pthread_mutex_unlock(&t->lock);
    return cid;
}

/* Takes the parked connection cid if uhash may have it: its fd (and *life, a reference the
 * caller now holds), or -1. */
static int unpark(ar__turn_daemon_t *d, uint32_t cid, const uint8_t *uhash,
                  ar__turn_tcplife_t **life)
{
    ar__turn_cids_t *t = &d->cids;
    int fd = -1;
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < t->n; i++) {
        if (t->e[i].cid != cid)
            continue;
        if (!uhash || sodium_memcmp(t->e[i].uhash, uhash, 16) == 0) {
            fd = t->e[i].fd;
            *life = t->e[i].life;
            t->e[i] = t->e[--t->n];
        }
        break;
    }
    pthread_mutex_unlock(&t->lock);
    return fd;
}

void ar__stream_cids_sweep(ar__turn_daemon_t *d, uint64_t now_ms)
{
    ar__turn_cids_t *t = &d->cids;
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < t->n;) {
        /* at_ms is the parking worker's loop time, now_ms the sweeping worker's: each loop's
         * clock is cached from its last turn, so a connection another worker parked a moment
         * ago can carry a time later than now_ms. Its age is then 0, not a wrapped-around
         * 2^64 - 1 that closed it before its ConnectionBind (answered 400). */
        uint64_t age = now_ms > t->e[i].at_ms ? now_ms - t->e[i].at_ms : 0;
        if (age > PARK_TIMEOUT_MS ||
            atomic_load_explicit(&t->e[i].life->dead, memory_order_acquire)) {
            close(t->e[i].fd);
            ar__turn_tcplife_put(t->e[i].life);
            t->e[i] = t->e[--t->n];
        } else {
            i++;
        }
    }
    pthread_mutex_unlock(&t->lock);
}

/* Closes the parked connections of an allocation that ended: nobody may bind them any more. */
static void cids_drop(ar__turn_daemon_t *d, const ar__turn_tcplife_t *life)
{
    ar__turn_cids_t *t = &d->cids;
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < t->n;) {
        if (t->e[i].life == life) {
            close(t->e[i].fd);
            ar__turn_tcplife_put(t->e[i].life);
            t->e[i] = t->e[--t->n];
        } else {
            i++;
        }
    }
    pthread_mutex_unlock(&t->lock);
}

/* --- RFC 6062: TCP relay endpoints and outgoing connections --- */

typedef struct tcp_relay_s tcp_relay_t;

typedef struct tcp_connecting_s {
    uv_poll_t poll;
    uv_timer_t timer; /* tcp-connect-timeout: 447 rather than the kernel's minutes of SYNs */
    tcp_relay_t *r;   /* NULL once the endpoint is closed */
    struct tcp_connecting_s *next;
    int handles; /* handles still to close before k is freed */
    int fd;
    ar_turn_tuple_t ctrl;
    ar_turn_addr_t peer;
    uint8_t tid[12];
} tcp_connecting_t;

struct tcp_relay_s {
    uv_poll_t poll; /* the listening socket */
    ar__stream_worker_t *sw;
    ar_turn_alloc_t *alloc;
    tcp_connecting_t *connecting;
    ar__turn_tcplife_t *life;
    ar_turn_addr_t relayed;
    int fd;
    uint16_t port;
};

static void tcp_relay_closed(uv_handle_t *h)
{
    tcp_relay_t *r = h->data;
    close(r->fd);
    ar__turn_ports_give(&r->sw->d->ports, r->port, 0);
    ar__turn_tcplife_put(r->life);
    ar_free(r);
}

static void connecting_closed(uv_handle_t *h)
{
    tcp_connecting_t *k = h->data;
    if (--k->handles > 0)
        return;
    if (k->fd >= 0)
        close(k->fd);
    ar_free(k);
}

/* Unlinks k from its endpoint and closes its poll; fd stays open when keep_fd. */
static void connecting_end(tcp_connecting_t *k, bool keep_fd)
{
    if (k->r) {
        tcp_connecting_t **pp = &k->r->connecting;
        while (*pp && *pp != k)
            pp = &(*pp)->next;
        if (*pp)
            *pp = k->next;
        k->r = NULL;
    }
    if (keep_fd)
        k->fd = -1;
    uv_close((uv_handle_t *)&k->poll, connecting_closed);
    uv_close((uv_handle_t *)&k->timer, connecting_closed);
}

static void on_accept(uv_poll_t *h, int status, int events)
{
    (void)events;
    tcp_relay_t *r = h->data;
    ar__stream_worker_t *sw = r->sw;
    if (status < 0 || !r->alloc)
        return;
    ar__udp_worker_set_now(sw->uw);
    for (int i = 0; i < 16; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(r->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        ar_turn_addr_t peer;
        uint32_t cid = 0;
        if (ar_turn_addr_from_sa(&peer, (struct sockaddr *)&ss) == 0)
            cid = park(sw->d, fd, r->alloc->uhash, uv_now(sw->loop), r->life);
        /* Parked before the indication goes out, so a fast ConnectionBind finds it. */
        if (cid == 0) {
            close(fd);
        } else if (ar_turn_engine_connection_attempt(sw->e, r->alloc, &peer, cid) != 0) {
            ar__turn_tcplife_t *life = NULL;
            fd = unpark(sw->d, cid, NULL, &life);
            if (fd >= 0)
                close(fd);
            ar__turn_tcplife_put(life);
        }
    }
}

int ar__stream_tcp_relay_open(ar__stream_worker_t *sw, ar_turn_alloc_t *alloc, int family,
                              ar_turn_addr_t *relayed, void **handle)
{
    if (!sw)
        return AR_EINVAL;
    const ar_turn_opts_t *o = &sw->d->plan->opts;
    ar_turn_relay_req_t req = {0};
    uint64_t token = 0;
    uint16_t port = 0;
    int rc = AR_EQUOTA;
    int fd = -1;
    ar_turn_addr_t local;
    for (int attempt = 0; attempt < 16; attempt++) {
        rc = ar__turn_ports_take(&sw->d->ports, &req, &family, &port, &token);
        if (rc != 0)
            return rc;
        local = family == 4 ? o->relay4 : o->relay6;
        if (local.family == 0) {
            ar__turn_ports_give(&sw->d->ports, port, 0);
            return AR_EINVAL;
        }
        local.port = port;
        struct sockaddr_storage ss;
        socklen_t sl = ar_turn_addr_to_sa(&local, &ss);
        fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int one = 1;
        /* Outgoing connections (Connect) bind the same address while this one listens. */
        if (fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
            setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == 0 &&
            (family == 4 || setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == 0) &&
            bind(fd, (struct sockaddr *)&ss, sl) == 0 && listen(fd, 16) == 0)
            break;
        rc = fd >= 0 && errno == EADDRINUSE ? AR_EADDRINUSE : AR_ESYS;
        if (fd >= 0)
            close(fd);
        fd = -1;
        ar__turn_ports_give(&sw->d->ports, port, 0);
        if (rc != AR_EADDRINUSE)
            return rc;
    }
    if (fd < 0)
        return rc;
    tcp_relay_t *r = ar_calloc(1, sizeof(*r));
    ar__turn_tcplife_t *life = r ? ar_calloc(1, sizeof(*life)) : NULL;
    if (!r || !life || uv_poll_init(sw->loop, &r->poll, fd) != 0) {
        ar_free(life);
        ar_free(r);
        close(fd);
        ar__turn_ports_give(&sw->d->ports, port, 0);
        return r ? AR_ESYS : AR_ENOMEM;
    }
    r->poll.data = r;
    r->sw = sw;
    r->alloc = alloc;
    r->fd = fd;
    r->port = port;
    r->relayed = local;
    atomic_init(&life->dead, false);
    atomic_init(&life->refs, 1);
    r->life = life;
    uv_poll_start(&r->poll, UV_READABLE, on_accept);
    *relayed = local;
    *handle = r;
    return 0;
}

void ar__stream_tcp_relay_close(void *handle)
{
    tcp_relay_t *r = handle;
    r->alloc = NULL;
    while (r->connecting)
        connecting_end(r->connecting, false);
    atomic_store_explicit(&r->life->dead, true, memory_order_release);
    cids_drop(r->sw->d, r->life);
    uv_close((uv_handle_t *)&r->poll, tcp_relay_closed);
}

static void on_connected(uv_poll_t *h, int status, int events)
{
    (void)events;
    tcp_connecting_t *k = h->data;
    tcp_relay_t *r = k->r;
    if (!r)
        return;
    ar__stream_worker_t *sw = r->sw;
    int err = 0;
    socklen_t el = sizeof(err);
    if (status < 0 || getsockopt(k->fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0)
        err = EIO;
    if (err == EINPROGRESS || err == EALREADY)
        return;
    uint32_t cid = 0;
    if (err == 0)
        cid = park(sw->d, k->fd, r->alloc->uhash, uv_now(sw->loop), r->life);
    ar_turn_tuple_t ctrl = k->ctrl;
    uint8_t tid[12];
    memcpy(tid, k->tid, 12);
    connecting_end(k, cid != 0);
    ar__udp_worker_set_now(sw->uw);
    ar_turn_engine_connect_done(sw->e, &ctrl, tid, cid);
}

/* The peer did not answer within tcp-connect-timeout (a blackholed address keeps sending SYNs
 * for minutes): 447 Connection Timeout or Failure (RFC 6062 section 5.2). */
static void on_connect_timeout(uv_timer_t *t)
{
    tcp_connecting_t *k = t->data;
    tcp_relay_t *r = k->r;
    if (!r)
        return;
    ar__stream_worker_t *sw = r->sw;
    ar_turn_tuple_t ctrl = k->ctrl;
    uint8_t tid[12];
    memcpy(tid, k->tid, 12);
    connecting_end(k, false);
    ar_log0(AR_LOG_DEBUG, "tcp_connect_timeout");
    ar__udp_worker_set_now(sw->uw);
    ar_turn_engine_connect_done(sw->e, &ctrl, tid, 0);
}

int ar__stream_peer_connect(void *handle, const ar_turn_tuple_t *ctrl, const ar_turn_addr_t *peer,
                            const uint8_t tid[12])
{
    tcp_relay_t *r = handle;
    ar__stream_worker_t *sw = r->sw;
    for (tcp_connecting_t *k = r->connecting; k; k = k->next) {
        if (ar__turn_addr_eq(&k->peer, peer))
            return AR_EEXIST;
    }
    struct sockaddr_storage local, remote;
    socklen_t ll = ar_turn_addr_to_sa(&r->relayed, &local);
    socklen_t rl = ar_turn_addr_to_sa(peer, &remote);
    int fd = socket(local.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return AR_ESYS;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
        (local.ss_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) ||
        bind(fd, (struct sockaddr *)&local, ll) != 0 ||
        (connect(fd, (struct sockaddr *)&remote, rl) != 0 && errno != EINPROGRESS)) {
        close(fd);
        return AR_EIO;
    }
    tcp_connecting_t *k = ar_calloc(1, sizeof(*k));
    if (!k || uv_poll_init(sw->loop, &k->poll, fd) != 0) {
        ar_free(k);
        close(fd);
        return AR_ENOMEM;
    }
    (void)uv_timer_init(sw->loop, &k->timer); /* cannot fail on a live loop */
    k->handles = 2;
    k->poll.data = k;
    k->timer.data = k;
    k->fd = fd;
    k->r = r;
    k->ctrl = *ctrl;
    k->peer = *peer;
    memcpy(k->tid, tid, 12);
    k->next = r->connecting;
    r->connecting = k;
    uv_poll_start(&k->poll, UV_WRITABLE, on_connected);
    uv_timer_start(&k->timer, on_connect_timeout, sw->d->plan->tcp_connect_timeout_ms, 0);
    return 0;
}

/* --- RFC 6062: bound data connections --- */

static void peer_closed(uv_handle_t *h)
{
    peer_side_t *p = h->data;
    close(p->fd);
    ar_free(p);
}

static void peer_side_close(stream_conn_t *sc)
{
    if (sc->peer) {
        sc->peer->sc = NULL;
        uv_close((uv_handle_t *)&sc->peer->poll, peer_closed);
        sc->peer = NULL;
    }
    ar_free(sc->pout);
    sc->pout = NULL;
    sc->pout_len = 0;
}

static void on_peer_io(uv_poll_t *h, int status, int events);

static void set_peer_events(stream_conn_t *sc, int events)
{
    if (!sc->peer || sc->peer->events == events)
        return;
    sc->peer->events = events;
    if (events)
        uv_poll_start(&sc->peer->poll, events, on_peer_io);
    else
        uv_poll_stop(&sc->peer->poll);
}

/* Client bytes towards the peer: written at once when the peer keeps up, else held (up to
 * RAW_CAP) while the client's reading is paused. */
static void raw_to_peer(stream_conn_t *sc, const uint8_t *data, size_t len)
{
    if (!sc->peer || len == 0)
        return;
    ar_turn_engine_count_stream(sc->sw->e, &sc->tuple, 1, len);
    if (sc->pout_len == 0) {
        ssize_t n = send(sc->peer->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            ar_conn_close(sc->c);
            return;
        }
        if (n > 0) {
            data += n;
            len -= (size_t)n;
        }
        if (len == 0)
            return;
    }
    if (sc->pout_len + len > RAW_CAP || (!sc->pout && !(sc->pout = ar_malloc(RAW_CAP)))) {
        ar_conn_close(sc->c); /* the client ignored the paused reads' backpressure */
        return;
    }
    memcpy(sc->pout + sc->pout_len, data, len);
    sc->pout_len += len;
    ar_conn_pause_read(sc->c);
    set_peer_events(sc, sc->peer->events | UV_WRITABLE);
}

static void on_peer_io(uv_poll_t *h, int status, int events)
{
    peer_side_t *p = h->data;
    stream_conn_t *sc = p->sc;
    if (!sc)
        return;
    if (status < 0) {
        ar_conn_close(sc->c);
        return;
    }
    if ((events & UV_WRITABLE) && sc->pout_len) {
        ssize_t n = send(p->fd, sc->pout, sc->pout_len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            ar_conn_close(sc->c);
            return;
        }
        if (n > 0) {
            sc->pout_len -= (size_t)n;
            memmove(sc->pout, sc->pout + n, sc->pout_len);
        }
        if (sc->pout_len == 0) {
            set_peer_events(sc, p->events & ~UV_WRITABLE);
            ar_conn_resume_read(sc->c);
        }
    }
    if (!(events & UV_READABLE))
        return;
    if (ar_conn_outgoing(sc->c) > OUT_CAP / 2) {
        /* The client is slow: stop reading the peer until its buffer drains (on_drain). */
        int rc = ar_conn_want_drain(sc->c);
        if (rc != 0) {
            /* 1: on_drain turns reading back on. Otherwise the client is closing: the peer
             * socket stays readable while it lingers, and a level-triggered poll left on would
             * call us on every loop turn. */
            set_peer_events(sc, p->events & ~UV_READABLE);
            return;
        }
    }
    size_t room = sizeof(sc->sw->scratch);
    ssize_t n = recv(p->fd, sc->sw->scratch, room, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        /* The peer closed: flush what we have and close the client; its socket stays readable
         * (at EOF) while the client lingers, so it is no longer polled. */
        set_peer_events(sc, 0);
        ar_conn_close(sc->c);
        return;
    }
    if (n > 0 && ar_conn_write(sc->c, sc->sw->scratch, (size_t)n) != 0)
        ar_conn_close(sc->c);
    else if (n > 0)
        ar_turn_engine_count_stream(sc->sw->e, &sc->tuple, 0, (size_t)n);
}

static void on_drain(ar_conn_t *c)
{
    stream_conn_t *sc = ar_conn_get_data(c);
    if (sc && sc->raw && sc->peer)
        set_peer_events(sc, sc->peer->events | UV_READABLE);
}

int ar__stream_data_bind(ar__stream_worker_t *sw, const ar_turn_tuple_t *t, uint32_t cid,
                         const uint8_t uhash[16])
{
    stream_conn_t *sc = conn_of(sw, t);
    if (!sc || sc->raw)
        return AR_ENOTFOUND;
    ar__turn_tcplife_t *life = NULL;
    int fd = unpark(sw->d, cid, uhash, &life);
    if (fd < 0)
        return AR_ENOTFOUND;
    peer_side_t *p = ar_calloc(1, sizeof(*p));
    if (!p || uv_poll_init(sw->loop, &p->poll, fd) != 0) {
        ar_free(p);
        close(fd);
        ar__turn_tcplife_put(life);
        return AR_ENOTFOUND;
    }
    sc->life = life;
    p->poll.data = p;
    p->fd = fd;
    p->sc = sc;
    sc->peer = p;
    sc->raw = true;
    set_peer_events(sc, UV_READABLE);
    return 0;
}

/* --- lifecycle --- */

static int listen_on(ar__stream_worker_t *sw, uv_loop_t *loop, const struct sockaddr_storage *addr,
                     uint16_t port, ar_tls_server_t *tls)
{
    if (port == 0)
        return 0;
    if (sw->nlisteners == sizeof(sw->listeners) / sizeof(sw->listeners[0]))
        return AR_ECONFIG;
    struct sockaddr_storage ss = *addr;
    ar_addr_set_port(&ss, port);
    int fd = ar_listen_socket(SOCK_STREAM, (const struct sockaddr *)&ss, 1024);
    if (fd < 0) {
        ar_log(AR_LOG_ERROR, "listen_failed", AR_LF_ADDR("addr", (const struct sockaddr *)&ss),
               AR_LF_INT("port", port), AR_LF_ERR("err", fd));
        return fd;
    }
    stream_listener_t *li = &sw->listeners[sw->nlisteners];
    li->sw = sw;
    li->index = (uint16_t)sw->nlisteners;
    li->tls = tls != NULL;
    ar_conn_opts_t co = {.out_cap = OUT_CAP, .handshake_timeout_ms = TLS_HANDSHAKE_MS};
    int rc = ar_listener_start(loop, fd, tls, &stream_cbs, &co, li, &li->l);
    if (rc != 0)
        return rc;
    sw->nlisteners++;
    return 0;
}

int ar__stream_worker_init(ar__udp_worker_t *uw, uv_loop_t *loop, ar__turn_daemon_t *d,
                           ar_turn_engine_t *e, ar__stream_worker_t **out)
{
    const ar_turn_plan_t *plan = d->plan;
    *out = NULL;
    if (plan->tcp_port == 0 && !d->tls)
        return 0;
    ar__stream_worker_t *sw = ar_calloc(1, sizeof(*sw));
    if (!sw)
        return AR_ENOMEM;
    *out = sw;
    sw->uw = uw;
    sw->d = d;
    sw->e = e;
    sw->loop = loop;
    sw->max_conns = plan->stream_max_conns / plan->workers + 1;
    sw->slots = ar_calloc(sw->max_conns, sizeof(stream_conn_t *));
    sw->free_slots = ar_calloc(sw->max_conns, sizeof(*sw->free_slots));
    if (!sw->slots || !sw->free_slots)
        return AR_ENOMEM;
    for (uint32_t i = 0; i < sw->max_conns; i++)
        sw->free_slots[i] = sw->max_conns - 1 - i;
    sw->nfree = sw->max_conns;
    for (size_t i = 0; i < plan->nlisten; i++) {
        int rc = listen_on(sw, loop, &plan->listen[i], plan->tcp_port, NULL);
        if (rc == 0 && d->tls)
            rc = listen_on(sw, loop, &plan->listen[i], plan->tls_port, d->tls);
        if (rc == 0 && d->tls)
            rc = listen_on(sw, loop, &plan->listen[i], plan->alt_tls_port, d->tls);
        if (rc != 0)
            return rc;
    }
    return 0;
}

void ar__stream_worker_stop(ar__stream_worker_t *sw)
{
    if (!sw)
        return;
    sw->stopping = true;
    for (size_t i = 0; i < sw->nlisteners; i++)
        ar_listener_close(sw->listeners[i].l);
    sw->nlisteners = 0;
    /* Abortive, not graceful: the worker closes every handle still open as soon as its stop
     * callback returns, and a graceful close (a pending shutdown request) closed under it would
     * be closed twice. RFC 6062 peer sides go first, with their own callbacks, for the same
     * reason. */
    for (uint32_t i = 0; i < sw->max_conns; i++) {
        if (sw->slots[i]) {
            peer_side_close(sw->slots[i]);
            ar_conn_abort(sw->slots[i]->c, AR_ECLOSED);
        }
    }
}

void ar__stream_worker_free(ar__stream_worker_t *sw)
{
    if (!sw)
        return;
    ar_free(sw->slots);
    ar_free(sw->free_slots);
    ar_free(sw);
}
