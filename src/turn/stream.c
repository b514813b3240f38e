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
 * connection and only that one. A frame longer than the per-connection buffer is skipped, not
 * fatal: the relay to UDP peers could not carry it anyway.
 *
 * Caps and timeouts: at most max_conns connections per worker (more are closed at once); each
 * connection holds at most OUT_CAP bytes towards its client (relayed packets beyond that are
 * dropped, as a full UDP socket buffer would); a connection without an allocation for
 * UNALLOC_TIMEOUT_S seconds is closed, and its allocation is deleted when it closes.
 */
#include "daemon.h"
#include "internal.h"

#include "anteroom/alloc.h"
#include "anteroom/conn.h"
#include "anteroom/log.h"
#include "proto/stun/stun.h"

#include <string.h>

#define FRAME_CAP 4096         /* longest frame we keep; longer ones are skipped */
#define OUT_CAP (256 * 1024)   /* bytes queued towards one client */
#define UNALLOC_TIMEOUT_S 30   /* a connection must hold an allocation after this long */
#define TLS_HANDSHAKE_MS 10000 /* connect to handshake done */

typedef struct stream_listener_s {
    ar__stream_worker_t *sw;
    ar_listener_t *l;
    uint16_t index;
} stream_listener_t;

typedef struct stream_conn_s {
    ar_conn_t *c;
    ar__stream_worker_t *sw;
    ar_turn_tuple_t tuple;
    uint64_t alloc_seen_ms; /* last tick that saw an allocation (or the open time) */
    size_t skip;            /* bytes of an oversized frame still to discard */
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
    size_t pad = 0;
    if ((data[0] & 0xc0) == 0x40)
        pad = (4 - (len & 3)) & 3; /* ChannelData is padded to 4 over streams (12.5) */
    if (pad) {
        if (len + pad > sizeof(sw->scratch))
            return;
        memcpy(sw->scratch, data, len);
        memset(sw->scratch + len, 0, pad);
        data = sw->scratch;
        len += pad;
    }
    /* AR_EAGAIN: the client reads slower than its peers send; the packet is dropped, as a full
     * UDP socket buffer would drop it. Other errors close the connection (on_close follows). */
    int rc = ar_conn_write(sc->c, data, len);
    (void)rc;
}

/* --- receiving --- */

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
            sc->skip = need;
            size_t n = len - off < need ? len - off : need;
            sc->skip -= n;
            off += n;
            continue;
        }
        if (len - off < need)
            break;
        ar_turn_engine_on_client(sw->e, &sc->tuple, data + off, need);
        off += need;
    }
    return (long)off;
}

static void on_read(ar_conn_t *c, const uint8_t *data, size_t len)
{
    stream_conn_t *sc = ar_conn_get_data(c);
    if (!sc || sc->sw->stopping)
        return;
    ar__udp_worker_set_now(sc->sw->uw);
    while (len > 0) {
        if (sc->skip) {
            size_t n = len < sc->skip ? len : sc->skip;
            sc->skip -= n;
            data += n;
            len -= n;
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
    sc->tuple.conn = sw->free_slots[--sw->nfree];
    sc->alloc_seen_ms = uv_now(sw->loop);
    sw->slots[sc->tuple.conn] = sc;
    ar_conn_set_data(c, sc);
}

static void on_close(ar_conn_t *c, int err)
{
    (void)err;
    stream_conn_t *sc = ar_conn_get_data(c);
    if (!sc)
        return;
    ar__stream_worker_t *sw = sc->sw;
    slot_release(sw, sc);
    if (!sw->stopping) {
        ar__udp_worker_set_now(sw->uw);
        ar_turn_engine_client_closed(sw->e, &sc->tuple);
    }
    ar_free(sc);
}

static const ar_conn_cbs_t stream_cbs = {
    .on_open = on_open,
    .on_read = on_read,
    .on_drain = NULL,
    .on_close = on_close,
};

/* Closes connections that have held no allocation for UNALLOC_TIMEOUT_S. */
void ar__stream_tick(ar__stream_worker_t *sw, uint64_t now_ms)
{
    if (!sw)
        return;
    for (uint32_t i = 0; i < sw->max_conns; i++) {
        stream_conn_t *sc = sw->slots[i];
        if (!sc || ar_conn_state(sc->c) >= AR_CONN_CLOSING)
            continue;
        if (ar_turn_engine_has_allocation(sw->e, &sc->tuple))
            sc->alloc_seen_ms = now_ms;
        else if (now_ms - sc->alloc_seen_ms > UNALLOC_TIMEOUT_S * 1000)
            ar_conn_close(sc->c);
    }
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
    if (ss.ss_family == AF_INET)
        ((struct sockaddr_in *)(void *)&ss)->sin_port = htons(port);
    else
        ((struct sockaddr_in6 *)(void *)&ss)->sin6_port = htons(port);
    int fd = ar_listen_socket(SOCK_STREAM, (const struct sockaddr *)&ss, 1024);
    if (fd < 0) {
        ar_log(AR_LOG_ERROR, "listen_failed", AR_LF_ADDR("addr", (const struct sockaddr *)&ss),
               AR_LF_INT("port", port), AR_LF_ERR("err", fd));
        return fd;
    }
    stream_listener_t *li = &sw->listeners[sw->nlisteners];
    li->sw = sw;
    li->index = (uint16_t)sw->nlisteners;
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
    sw->slots = ar_calloc(sw->max_conns, sizeof(*sw->slots));
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
    for (uint32_t i = 0; i < sw->max_conns; i++) {
        if (sw->slots[i])
            ar_conn_close(sw->slots[i]->c);
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
