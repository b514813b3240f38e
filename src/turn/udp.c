/*
 * The UDP transport: one per worker thread, on the worker's own libuv loop.
 *
 * Each worker binds its own SO_REUSEPORT socket on every listening address; the kernel hashes a
 * client's 5-tuple to one of them consistently, so a client always reaches the same worker and
 * its allocation (and relay socket) can live there with no locks on the hot path.
 *
 * I/O is batched. A readable socket is drained with recvmmsg() into a per-worker receive arena;
 * the engine's answers and relayed packets are queued as iovecs that point into that arena
 * (zero copy: peer datagrams are received behind AR_TURN_HEADROOM bytes so the engine writes
 * its ChannelData or Data indication header in place). A datagram longer than its arena slot
 * spills into an overflow area and is made whole in one copy, so every datagram up to the UDP
 * limit is relayed; what the engine builds, and stream clients' payloads, are copied into a
 * send arena. Anything a path cannot carry is counted as oversize_dropped, never lost
 * silently (AR_TURN_MAX_UDP_PAYLOAD). A uv_check handle, which runs once per
 * loop iteration after every I/O callback, sends each queue with sendmmsg(), one call per run of
 * packets for the same socket. Arena and queues are reset only between batches, so no queued
 * pointer ever outlives its bytes.
 *
 * Consecutive packets for the same socket, destination and source address whose sizes allow it
 * (all the same size, the last one no longer) travel as one message with UDP_SEGMENT (UDP GSO):
 * the kernel builds, routes and passes down the stack one buffer and cuts it into the separate
 * datagrams at the last moment (the NIC, the device's software GSO, or on loopback the receiving
 * socket), so what each datagram costs the sender is mostly the copy. The receiver sees exactly
 * the datagrams it would have without it, in the same order. When the kernel refuses such a
 * message, its packets are sent one by one and the refusal is remembered (see gso_refused).
 *
 * Relay sockets are closed in their uv_close callback, after the check handle has flushed the
 * queues, so a queued packet is never sent on a descriptor number that was reused.
 */
#include "daemon.h"
#include "internal.h"

#include "anteroom/alloc.h"
#include "anteroom/log.h"
#include "anteroom/sched.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sched.h>
#include <stdbool.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SLOT_SIZE 2048 /* one datagram in the arena; a longer one spills into its overflow */
#define RX_SLOTS 128
#define BATCH 32
/* The most one receive takes: any UDP datagram (AR_TURN_MAX_UDP_PAYLOAD) fits, so none is
 * truncated. Each batch entry has an overflow area of this size behind its arena slot; the
 * pages are touched only by datagrams longer than a slot, which are rare. */
#define DGRAM_MAX ((size_t)65536)
/* Bytes copied for sending: engine-built answers (which live in the engine's scratch buffer) and
 * stream clients' payloads (which live in their connection's buffer), up to one datagram each. */
#define COPY_ARENA ((size_t)160 * 1024)
#define TXQ 256
#define DRAIN_ROUNDS 4 /* batches per readable event, so one busy socket cannot starve others */
#define LOCAL_ADDRS 32 /* local addresses a wildcard listener answers from, per worker */
#define PKTINFO_SIZE CMSG_SPACE(sizeof(struct in6_pktinfo))
#define CTL_SIZE (PKTINFO_SIZE + CMSG_SPACE(sizeof(uint16_t))) /* PKTINFO, then UDP_SEGMENT */
/* Datagrams in one GSO message: the kernel's UDP_MAX_SEGMENTS has been 64 since UDP GSO came
 * (Linux 4.18); newer kernels allow 128. Their bytes together stay within one UDP datagram's. */
#define GSO_SEGS 64
/* A yield after requests that kept the worker away longer than this turns yielding off for
 * YIELD_BACKOFF_NS (see yield_after_requests). 2 ms is more than the scheduler's slice on a
 * small machine (0.75 ms x (1 + log2 CPUs)): a yield that long means several other threads
 * were queued for the CPU and had their turn first. */
#define YIELD_SLOW_NS 2000000
#define YIELD_BACKOFF_NS 10000000

typedef union {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
} sa_u;

/* Messages to send; a message holds one datagram, or several of the same size in a row (GSO),
 * whose iovecs are consecutive in iov[]. */
typedef struct txq_s {
    struct mmsghdr msgs[TXQ];
    struct iovec iov[TXQ]; /* one per datagram, handed out in order */
    sa_u addr[TXQ];
    uint8_t ctl[TXQ][CTL_SIZE];      /* IP_PKTINFO (source address for a wildcard listener), then
                                        UDP_SEGMENT once a message holds two datagrams */
    const ar_turn_addr_t *from[TXQ]; /* the PKTINFO source (an entry of w->local) or NULL */
    uint32_t bytes[TXQ];             /* a message's datagrams' bytes together */
    int fd[TXQ];
    unsigned n;    /* messages */
    unsigned niov; /* datagrams */
} txq_t;

typedef struct udp_listener_s {
    uv_poll_t poll;
    int fd;
    uint16_t index;
    bool wildcard; /* bound to 0.0.0.0 or ::: answers name their source address (PKTINFO) */
    ar__udp_worker_t *w;
} udp_listener_t;

/* A relay endpoint: the allocation's only transport state, 32 bytes. */
typedef struct udp_relay_s {
    ar_turn_alloc_t *alloc; /* NULL once closing */
    ar__udp_worker_t *w;
    struct udp_relay_s *next_closing;
    int fd;        /* -1 until bound, when the pool binds at the first permission (ports.lazy) */
    uint16_t port; /* held in the pool from relay_open on, bound or not */
    uint8_t armed : 1;                 /* in the worker's relay epoll set (see tp_relay_arm) */
    uint8_t v6 : 1, dont_fragment : 1; /* how to make the socket when it is bound late */
} udp_relay_t;

struct ar__udp_worker_s {
    ar__turn_daemon_t *d;
    unsigned index;
    uv_loop_t *loop;
    ar_turn_engine_t *e;
    ar__stream_worker_t *stream; /* TCP/TLS clients (stream.c), NULL when none listen */
    udp_listener_t listeners[AR_TURN_MAX_LISTENERS];
    size_t nlisteners;
    uv_check_t flush;
    uv_timer_t tick;
    bool flush_init, tick_init, relay_poll_init;
    /* Relay sockets live in an epoll set of our own, watched by libuv as one descriptor: one
     * epoll_ctl per allocation, none to remove it (close does), and no libuv handle each. */
    int relay_epfd;
    uv_poll_t relay_poll;
    udp_relay_t *closing; /* closed after the next flush, so queued packets never meet a reused
                             descriptor number */
    int64_t wall_base;    /* wall clock seconds minus uv_now() seconds, for REST expiries */
    uint8_t (*rx)[SLOT_SIZE];
    unsigned rx_used;
    /* This loop iteration's datagrams: all received (listener and relay sockets), and of those
     * the STUN requests on a listener (see yield_after_requests). */
    unsigned it_rx, it_req;
    uint64_t yield_off_until; /* uv_hrtime() ns before which the worker does not yield */
    uint8_t *copy;            /* COPY_ARENA bytes, handed out in order and reset by flush_all */
    size_t copy_used;
    uint8_t *over;  /* BATCH overflow areas, DGRAM_MAX bytes each */
    uint8_t *whole; /* a datagram that spilled into its overflow, made whole again */
    struct mmsghdr rmsgs[BATCH];
    struct iovec riov[BATCH][2];
    sa_u raddr[BATCH];
    uint8_t rctl[BATCH][CTL_SIZE];
    /* The local addresses requests reached wildcard listeners at; a UDP tuple's `conn` is its
     * index + 1 here (0: none), so replies and relayed data leave from that address. */
    ar_turn_addr_t local[LOCAL_ADDRS];
    unsigned nlocal;
    txq_t to_client, to_peer;
    /* Datagrams shorter than this are sent GSO-batched; 0: not at all (the kernel has no UDP
     * GSO, or refused it with EIO). Lowered to the size the kernel refused with EMSGSIZE or
     * EINVAL (a segment too big for the device's MTU), and set back to gso_max every tick: one
     * destination's path MTU (which a forged ICMP can lower) or a stale source address can
     * cause those errors too, and must not disable GSO for the worker for good. */
    size_t gso_below, gso_max;
    bool gso_logged; /* turn_udp_gso_limited was logged at INFO (once per worker) */
    /* Datagrams dropped because their socket's send buffer was full (EAGAIN), and how many of
     * them the metrics have. */
    uint64_t send_dropped, send_dropped_pushed;
    ar_turn_stats_t pushed; /* what has been added to the metrics already */
};

/* --- sending --- */

/*
 * Packets for one socket are gathered into one sendmmsg() even when other sockets' packets came
 * between them: a stable insertion sort by descriptor (the queue is nearly grouped already, so
 * this is close to linear) keeps each flow's order and makes the runs as long as they can be.
 */
static void txq_group(txq_t *q, struct mmsghdr *out, int *fds)
{
    uint16_t order[TXQ];
    for (unsigned i = 0; i < q->n; i++) {
        unsigned j = i;
        while (j > 0 && q->fd[order[j - 1]] > q->fd[i]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = (uint16_t)i;
    }
    for (unsigned i = 0; i < q->n; i++) {
        out[i] = q->msgs[order[i]];
        fds[i] = q->fd[order[i]];
    }
}

/*
 * The kernel refused a GSO message of `seg`-byte datagrams with `err`, and the same datagrams
 * sent one by one all went out, so GSO was the cause. EMSGSIZE or EINVAL: the segment is too
 * big for the device (UDP GSO needs each datagram to fit its MTU unfragmented), so only shorter
 * datagrams are batched until the next tick. EIO and the like: no GSO on this path (IPsec, a
 * device without checksum offload), so none at all until then. Other errors (unreachable,
 * filtered) are the destination's, and each datagram alone meets the same fate. Only the first
 * limit is logged at INFO: after the tick's reset the same refusal comes back each second.
 */
static void gso_refused(ar__udp_worker_t *w, int err, size_t seg)
{
    size_t below = w->gso_below;
    if (err == EMSGSIZE || err == EINVAL)
        below = seg < below ? seg : below;
    else if (err == EIO || err == EOPNOTSUPP || err == ENOPROTOOPT)
        below = 0;
    if (below == w->gso_below)
        return;
    w->gso_below = below;
    ar_log(w->gso_logged ? AR_LOG_DEBUG : AR_LOG_INFO, "turn_udp_gso_limited",
           AR_LF_UINT("segment", seg), AR_LF_INT("errno", err), AR_LF_UINT("batched_below", below));
    w->gso_logged = true;
}

static size_t send_run(ar__udp_worker_t *w, int fd, struct mmsghdr *msgs, unsigned n, bool *full);

/* Sends a GSO message's datagrams one message each, after the kernel refused them as one.
 * Returns how many were not sent; *full as for send_run. */
static size_t send_singly(ar__udp_worker_t *w, int fd, const struct msghdr *h, bool *full)
{
    struct mmsghdr one[GSO_SEGS];
    size_t n = h->msg_iovlen;
    /* The PKTINFO, when there is one, comes first in the control buffer: keep just that. */
    size_t ctl = h->msg_controllen - CMSG_SPACE(sizeof(uint16_t));
    for (size_t k = 0; k < n; k++) {
        one[k].msg_hdr = *h;
        one[k].msg_hdr.msg_iov = &h->msg_iov[k];
        one[k].msg_hdr.msg_iovlen = 1;
        one[k].msg_hdr.msg_control = ctl ? h->msg_control : NULL;
        one[k].msg_hdr.msg_controllen = ctl;
        one[k].msg_len = 0;
    }
    return send_run(w, fd, one, (unsigned)n, full);
}

/* Datagrams in msgs[0..n). */
static size_t datagrams(const struct mmsghdr *msgs, unsigned n)
{
    size_t d = 0;
    for (unsigned i = 0; i < n; i++)
        d += msgs[i].msg_hdr.msg_iovlen;
    return d;
}

/* Sends n messages on one socket, each a datagram or a GSO run of them. Returns how many
 * datagrams were not sent. When the socket's buffer is full (EAGAIN), nothing more is tried on
 * it: the rest are dropped, as UDP would drop them, counted in send_dropped, and *full is set. */
static size_t send_run(ar__udp_worker_t *w, int fd, struct mmsghdr *msgs, unsigned n, bool *full)
{
    unsigned i = 0;
    size_t failed = 0;
    while (i < n) {
        int r = sendmmsg(fd, &msgs[i], n - i, MSG_DONTWAIT);
        if (r > 0) {
            i += (unsigned)r;
            continue;
        }
        int err = r < 0 ? errno : EIO;
        if (err == EINTR)
            continue;
        if (err == EAGAIN || err == EWOULDBLOCK) {
            size_t rest = datagrams(&msgs[i], n - i);
            w->send_dropped += rest;
            *full = true;
            return failed + rest;
        }
        const struct msghdr *h = &msgs[i].msg_hdr;
        if (h->msg_iovlen > 1) {
            size_t lost = send_singly(w, fd, h, full);
            if (lost == 0)
                gso_refused(w, err, h->msg_iov[0].iov_len);
            failed += lost;
            if (*full) {
                size_t rest = datagrams(&msgs[i + 1], n - i - 1);
                w->send_dropped += rest;
                return failed + rest;
            }
        } else {
            if (err == EMSGSIZE && w->e) {
                /* Too big for the path with DONT-FRAGMENT set: counted. Otherwise this one
                 * message failed, unreachable or refused, and UDP would lose it too. */
                ar_turn_engine_count_oversize(w->e, h->msg_iov[0].iov_len);
            }
            failed++;
        }
        i++;
    }
    return failed;
}

static void txq_flush(ar__udp_worker_t *w, txq_t *q)
{
    struct mmsghdr sorted[TXQ];
    int fds[TXQ];
    struct mmsghdr *msgs = q->msgs;
    const int *fd = q->fd;
    bool one_fd = true;
    for (unsigned i = 1; i < q->n && one_fd; i++)
        one_fd = q->fd[i] == q->fd[0];
    if (!one_fd) {
        txq_group(q, sorted, fds);
        msgs = sorted;
        fd = fds;
    }
    unsigned n = q->n, i = 0;
    while (i < n) {
        unsigned j = i + 1;
        while (j < n && fd[j] == fd[i])
            j++;
        bool full = false;
        (void)send_run(w, fd[i], &msgs[i], j - i, &full);
        i = j;
    }
    q->n = 0;
    q->niov = 0;
}

static void flush_all(ar__udp_worker_t *w)
{
    if (w->to_peer.n)
        txq_flush(w, &w->to_peer);
    if (w->to_client.n)
        txq_flush(w, &w->to_client);
    w->copy_used = 0;
}

static bool in_rx(const ar__udp_worker_t *w, const uint8_t *p)
{
    return p >= w->rx[0] && p < w->rx[RX_SLOTS];
}

/*
 * Whether a datagram of len bytes for fd, to ss, from `from` may join the queue's last message
 * as one more GSO segment: same socket, destination and source; every datagram so far of the
 * first one's size (only the last may be shorter); within the kernel's segment count and one
 * datagram's bytes.
 */
static bool gso_joins(const ar__udp_worker_t *w, const txq_t *q, int fd,
                      const struct sockaddr_storage *ss, socklen_t sl, const ar_turn_addr_t *from,
                      size_t len)
{
    unsigned i = q->n - 1;
    const struct msghdr *h = &q->msgs[i].msg_hdr;
    size_t seg = h->msg_iov[0].iov_len;
    return q->fd[i] == fd && seg < w->gso_below && len > 0 && len <= seg &&
           h->msg_iovlen < GSO_SEGS && q->bytes[i] == seg * h->msg_iovlen &&
           q->bytes[i] + len <= AR_TURN_MAX_UDP_PAYLOAD && q->from[i] == from &&
           h->msg_namelen == sl && memcmp(&q->addr[i], ss, sl) == 0;
}

static void enqueue(ar__udp_worker_t *w, txq_t *q, int fd, const ar_turn_addr_t *to,
                    const ar_turn_addr_t *from, const uint8_t *data, size_t len)
{
    if (!in_rx(w, data)) {
        size_t need = (len + 15) & ~(size_t)15;
        if (len > DGRAM_MAX) {
            /* The engine caps payloads well below this; no datagram can be longer anyway. */
            ar_turn_engine_count_oversize(w->e, len);
            return;
        }
        if (COPY_ARENA - w->copy_used < need)
            flush_all(w);
        uint8_t *c = w->copy + w->copy_used;
        w->copy_used += need;
        memcpy(c, data, len);
        data = c;
    }
    if (q->n == TXQ || q->niov == TXQ)
        txq_flush(w, q);
    if (from && from->family != to->family)
        from = NULL;
    struct sockaddr_storage ss;
    socklen_t sl = ar_turn_addr_to_sa(to, &ss);
    struct iovec *v = &q->iov[q->niov++]; /* right after the last message's iovecs */
    v->iov_base = (void *)data;           /* sendmmsg only reads it */
    v->iov_len = len;
    if (q->n > 0 && gso_joins(w, q, fd, &ss, sl, from, len)) {
        unsigned i = q->n - 1;
        struct msghdr *h = &q->msgs[i].msg_hdr;
        if (h->msg_iovlen == 1) {
            /* The second datagram makes it a GSO message: the segment size is the first's. */
            struct cmsghdr *cm = (struct cmsghdr *)(void *)(q->ctl[i] + h->msg_controllen);
            uint16_t seg = (uint16_t)h->msg_iov[0].iov_len;
            cm->cmsg_level = SOL_UDP;
            cm->cmsg_type = UDP_SEGMENT;
            cm->cmsg_len = CMSG_LEN(sizeof(seg));
            memcpy(CMSG_DATA(cm), &seg, sizeof(seg));
            h->msg_control = q->ctl[i];
            h->msg_controllen += CMSG_SPACE(sizeof(seg));
        }
        h->msg_iovlen++;
        q->bytes[i] += (uint32_t)len;
        return;
    }
    unsigned i = q->n++;
    memcpy(&q->addr[i], &ss, sl);
    q->fd[i] = fd;
    q->from[i] = from;
    q->bytes[i] = (uint32_t)len;
    struct msghdr *h = &q->msgs[i].msg_hdr;
    memset(h, 0, sizeof(*h));
    h->msg_name = &q->addr[i];
    h->msg_namelen = sl;
    h->msg_iov = v;
    h->msg_iovlen = 1;
    if (from) {
        memset(q->ctl[i], 0, PKTINFO_SIZE);
        h->msg_control = q->ctl[i];
        struct cmsghdr *cm = (struct cmsghdr *)(void *)q->ctl[i];
        if (from->family == 4) {
            struct in_pktinfo pi = {0};
            memcpy(&pi.ipi_spec_dst, from->ip, 4);
            cm->cmsg_level = IPPROTO_IP;
            cm->cmsg_type = IP_PKTINFO;
            cm->cmsg_len = CMSG_LEN(sizeof(pi));
            memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
            h->msg_controllen = CMSG_SPACE(sizeof(pi));
        } else {
            struct in6_pktinfo pi = {0};
            memcpy(&pi.ipi6_addr, from->ip, 16);
            cm->cmsg_level = IPPROTO_IPV6;
            cm->cmsg_type = IPV6_PKTINFO;
            cm->cmsg_len = CMSG_LEN(sizeof(pi));
            memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
            h->msg_controllen = CMSG_SPACE(sizeof(pi));
        }
    }
}

static void tp_send_client(void *ctx, const ar_turn_tuple_t *t, const uint8_t *data, size_t len)
{
    ar__udp_worker_t *w = ctx;
    if (t->proto == AR_TURN_PROTO_TCP) {
        ar__stream_send(w->stream, t, data, len);
        return;
    }
    if (t->listener >= w->nlisteners)
        return;
    const ar_turn_addr_t *from =
        t->conn > 0 && t->conn <= w->nlocal ? &w->local[t->conn - 1] : NULL;
    enqueue(w, &w->to_client, w->listeners[t->listener].fd, &t->client, from, data, len);
}

static void tp_send_peer(void *ctx, void *handle, const ar_turn_addr_t *peer, const uint8_t *data,
                         size_t len)
{
    ar__udp_worker_t *w = ctx;
    udp_relay_t *r = handle;
    if (!r->armed)
        return; /* only after a failed arm; keeps tp_relay_close's immediate close safe */
    enqueue(w, &w->to_peer, r->fd, peer, NULL, data, len);
}

/* --- relay endpoints --- */

static void relay_free(udp_relay_t *r)
{
    if (r->fd >= 0)
        close(r->fd);
    ar__turn_ports_give(&r->w->d->ports, r->port, 0);
    ar_free(r);
}

static void close_pending(ar__udp_worker_t *w)
{
    while (w->closing) {
        udp_relay_t *r = w->closing;
        w->closing = r->next_closing;
        relay_free(r);
    }
}

static int tp_relay_open(void *ctx, ar_turn_alloc_t *alloc, int family,
                         const ar_turn_relay_req_t *req, ar_turn_addr_t *relayed, uint64_t *token,
                         void **handle)
{
    ar__udp_worker_t *w = ctx;
    const ar_turn_opts_t *o = &w->d->plan->opts;
    ar_turn_addr_t local;
    int fd = -1;
    /* A port another program holds is skipped; a few tries, then 508 for this allocation. With
     * ports.lazy the port is only taken from the pool here and bound at the first permission
     * (tp_relay_arm). */
    int rc = AR_EQUOTA;
    uint16_t port = 0;
    for (int attempt = 0; attempt < 16; attempt++) {
        rc = ar__turn_ports_take(&w->d->ports, req, &family, &port, token);
        if (rc != 0)
            break;
        local = family == 4 ? o->relay4 : o->relay6;
        local.port = port;
        if (local.family == 0)
            rc = AR_EINVAL;
        else if (w->d->ports.lazy ||
                 (rc = ar__turn_relay_socket(&local, req->dont_fragment, &fd)) == 0)
            break;
        if (rc == AR_EADDRINUSE && req->token)
            rc = AR_ESYS; /* a redeemed reservation names its port: no other will do */
        ar__turn_ports_give(&w->d->ports, port, *token);
        *token = 0;
        if (rc != AR_EADDRINUSE)
            break;
    }
    if (rc != 0)
        return rc;
    udp_relay_t *r = ar_calloc(1, sizeof(*r));
    if (!r) {
        if (fd >= 0)
            close(fd);
        ar__turn_ports_give(&w->d->ports, port, *token);
        *token = 0;
        return AR_ENOMEM;
    }
    r->fd = fd;
    r->port = port;
    r->v6 = family == 6;
    r->dont_fragment = req->dont_fragment != 0;
    r->alloc = alloc;
    r->w = w;
    *relayed = local;
    *handle = r;
    return 0;
}

/*
 * The socket is watched from the allocation's first permission: before it, nothing received
 * could be relayed, so an allocation that never relays costs no epoll call at all.
 */
static int tp_relay_arm(void *ctx, void *handle)
{
    ar__udp_worker_t *w = ctx;
    udp_relay_t *r = handle;
    if (r->armed)
        return 0;
    if (r->fd < 0) {
        const ar_turn_opts_t *o = &w->d->plan->opts;
        ar_turn_addr_t local = r->v6 ? o->relay6 : o->relay4;
        local.port = r->port;
        int rc = ar__turn_relay_socket(&local, r->dont_fragment, &r->fd);
        if (rc != 0)
            return rc;
    }
    /* Room for bursts from peers between two turns of the loop; kernel memory, used only
     * while datagrams wait (capped by net.core.rmem_max). */
    int sz = 1 << 20;
    (void)setsockopt(r->fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = r};
    if (epoll_ctl(w->relay_epfd, EPOLL_CTL_ADD, r->fd, &ev) != 0)
        return AR_ESYS;
    r->armed = 1;
    return 0;
}

static void tp_relay_close(void *ctx, void *handle)
{
    ar__udp_worker_t *w = ctx;
    udp_relay_t *r = handle;
    r->alloc = NULL;
    if (!r->armed) {
        /* Never watched, so no packet to it can be queued: close at once. */
        relay_free(r);
        return;
    }
    r->next_closing = w->closing;
    w->closing = r;
}

/* --- RFC 6062: TCP relay endpoints live with the stream transport (stream.c) --- */

static int tp_tcp_relay_open(void *ctx, ar_turn_alloc_t *alloc, int family, ar_turn_addr_t *relayed,
                             void **handle)
{
    ar__udp_worker_t *w = ctx;
    return ar__stream_tcp_relay_open(w->stream, alloc, family, relayed, handle);
}

static void tp_tcp_relay_close(void *ctx, void *handle)
{
    (void)ctx;
    ar__stream_tcp_relay_close(handle);
}

static int tp_peer_connect(void *ctx, void *handle, const ar_turn_tuple_t *ctrl,
                           const ar_turn_addr_t *peer, const uint8_t tid[12])
{
    (void)ctx;
    return ar__stream_peer_connect(handle, ctrl, peer, tid);
}

static int tp_data_bind(void *ctx, const ar_turn_tuple_t *t, uint32_t cid, const uint8_t uhash[16])
{
    ar__udp_worker_t *w = ctx;
    return ar__stream_data_bind(w->stream, t, cid, uhash);
}

/* --- receiving --- */

static void set_now(ar__udp_worker_t *w)
{
    uint64_t now = uv_now(w->loop);
    ar_turn_engine_set_now(w->e, now, w->wall_base + (int64_t)(now / 1000));
}

void ar__udp_worker_set_now(ar__udp_worker_t *w)
{
    set_now(w);
}

/* Makes room for a batch: flushes the queues (which point into the arena) and resets it. */
static void rx_reserve(ar__udp_worker_t *w)
{
    if (RX_SLOTS - w->rx_used < BATCH) {
        flush_all(w);
        w->rx_used = 0;
    }
}

/* The parts of the receive headers that never change (names, iovec arrays, overflow areas), set
 * once; rx_batch rewrites only what a batch's position, headroom and the kernel change. */
static void rx_init(ar__udp_worker_t *w)
{
    for (unsigned i = 0; i < BATCH; i++) {
        struct msghdr *h = &w->rmsgs[i].msg_hdr;
        memset(h, 0, sizeof(*h));
        h->msg_name = &w->raddr[i];
        h->msg_iov = w->riov[i];
        h->msg_iovlen = 2;
        w->riov[i][1].iov_base = w->over + i * DGRAM_MAX;
    }
}

static int rx_batch(ar__udp_worker_t *w, int fd, size_t headroom, bool ctl)
{
    size_t first = SLOT_SIZE - headroom - 4; /* 4 bytes of tailroom for padding */
    for (unsigned i = 0; i < BATCH; i++) {
        struct msghdr *h = &w->rmsgs[i].msg_hdr;
        w->riov[i][0].iov_base = w->rx[w->rx_used + i] + headroom;
        w->riov[i][0].iov_len = first;
        w->riov[i][1].iov_len = DGRAM_MAX - first;
        h->msg_namelen = sizeof(w->raddr[i]);
        h->msg_control = ctl ? w->rctl[i] : NULL;
        h->msg_controllen = ctl ? CTL_SIZE : 0;
    }
    int r;
    do {
        r = recvmmsg(fd, w->rmsgs, BATCH, MSG_DONTWAIT, NULL);
    } while (r < 0 && errno == EINTR);
    if (r > 0)
        w->it_rx += (unsigned)r;
    return r;
}

/*
 * Datagram i of the last batch, whole: in its arena slot, or, when it spilled into its overflow
 * area, copied with its headroom and tailroom into w->whole (the engine needs it contiguous).
 * NULL when it was truncated, which DGRAM_MAX rules out for UDP but is still counted.
 */
static uint8_t *rx_whole(ar__udp_worker_t *w, unsigned base, unsigned i, size_t headroom)
{
    const struct mmsghdr *m = &w->rmsgs[i];
    if (m->msg_hdr.msg_flags & MSG_TRUNC) {
        ar_turn_engine_count_oversize(w->e, m->msg_len);
        return NULL;
    }
    size_t first = w->riov[i][0].iov_len;
    if (m->msg_len <= first)
        return w->rx[base + i];
    memcpy(w->whole + headroom, w->riov[i][0].iov_base, first);
    memcpy(w->whole + headroom + first, w->riov[i][1].iov_base, m->msg_len - first);
    return w->whole;
}

/* The local address a datagram reached (from its PKTINFO), as an index + 1 into w->local;
 * 0 when unknown or the table is full (the kernel then picks the source as before). */
static uint32_t local_id(ar__udp_worker_t *w, struct msghdr *h)
{
    ar_turn_addr_t a = {0};
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(h); cm; cm = CMSG_NXTHDR(h, cm)) {
        if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO) {
            struct in_pktinfo pi;
            memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
            a.family = 4;
            memcpy(a.ip, &pi.ipi_addr, 4);
        } else if (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_PKTINFO) {
            struct in6_pktinfo pi;
            memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
            a.family = 6;
            memcpy(a.ip, &pi.ipi6_addr, 16);
        }
    }
    if (a.family == 0)
        return 0;
    for (unsigned i = 0; i < w->nlocal; i++) {
        if (ar__turn_ip_eq(&w->local[i], &a))
            return i + 1;
    }
    if (w->nlocal == LOCAL_ADDRS)
        return 0;
    w->local[w->nlocal++] = a;
    return w->nlocal;
}

/* A STUN request: not ChannelData (first two bits 01), not an indication (a Send carries
 * data), not a response: the class bits C1 and C0 of the message type are both 0 (RFC 8489
 * section 5). Only its size is checked; the engine parses it. */
static bool is_request(const uint8_t *buf, size_t len)
{
    return len >= 20 && (buf[0] & 0xc1) == 0 && (buf[1] & 0x10) == 0;
}

static void on_listener(uv_poll_t *h, int status, int events)
{
    (void)events;
    udp_listener_t *l = h->data;
    ar__udp_worker_t *w = l->w;
    if (status < 0)
        return;
    set_now(w);
    for (int round = 0; round < DRAIN_ROUNDS; round++) {
        rx_reserve(w);
        int r = rx_batch(w, l->fd, 0, l->wildcard);
        if (r <= 0)
            break;
        unsigned base = w->rx_used;
        w->rx_used += (unsigned)r;
        for (int i = 0; i < r; i++) {
            uint8_t *buf = rx_whole(w, base, (unsigned)i, 0);
            ar_turn_tuple_t t = {.listener = l->index, .proto = AR_TURN_PROTO_UDP};
            if (!buf || ar_turn_addr_from_sa(&t.client, &w->raddr[i].sa) != 0)
                continue;
            if (l->wildcard)
                t.conn = local_id(w, &w->rmsgs[i].msg_hdr);
            w->it_req += is_request(buf, w->rmsgs[i].msg_len);
            ar_turn_engine_on_client(w->e, &t, buf, w->rmsgs[i].msg_len);
        }
        if (r < BATCH)
            break;
    }
}

static void relay_read(ar__udp_worker_t *w, udp_relay_t *rl)
{
    for (int round = 0; round < DRAIN_ROUNDS && rl->alloc; round++) {
        rx_reserve(w);
        int r = rx_batch(w, rl->fd, AR_TURN_HEADROOM, false);
        if (r <= 0)
            break;
        unsigned base = w->rx_used;
        w->rx_used += (unsigned)r;
        for (int i = 0; i < r; i++) {
            ar_turn_addr_t peer;
            uint8_t *buf = rx_whole(w, base, (unsigned)i, AR_TURN_HEADROOM);
            if (!buf || ar_turn_addr_from_sa(&peer, &w->raddr[i].sa) != 0)
                continue;
            ar_turn_engine_on_peer(w->e, rl->alloc, &peer, buf, w->rmsgs[i].msg_len);
        }
        if (r < BATCH)
            break;
    }
}

/* The relay epoll set is readable: read every ready relay socket (level-triggered, so one
 * left with data after DRAIN_ROUNDS is reported again on the next turn). */
static void on_relays(uv_poll_t *h, int status, int events)
{
    (void)events;
    ar__udp_worker_t *w = h->data;
    if (status < 0)
        return;
    set_now(w);
    struct epoll_event evs[64];
    int n = epoll_wait(w->relay_epfd, evs, 64, 0);
    for (int i = 0; i < n; i++) {
        udp_relay_t *r = evs[i].data.ptr;
        if (r->alloc)
            relay_read(w, r);
    }
}

/*
 * After a loop turn whose datagrams were all STUN requests on the listeners (Allocate, Refresh,
 * permissions, bindings: no relayed data), give the CPU to another runnable thread before
 * sleeping in epoll_wait. The answers are already sent (flush_all ran). Why: a short request's
 * largest cost here was the worker's sleep and wake-up around it (on a VM, several
 * microseconds each); when a client or another thread is waiting for this CPU, yielding lets it
 * run now and send its next requests, and the worker comes back to a batch of them without
 * having slept. With no other runnable thread on this CPU, sched_yield returns at once (one
 * system call). Turns that relayed UDP data never yield, so that relay path is scheduled as
 * before; TCP and TLS traffic on the same loop is not counted (a turn with UDP requests and
 * stream data yields, within the same bound).
 *
 * What it costs is latency: datagrams that arrive while the worker is away wait for it. While
 * the client runs that is tens to hundreds of microseconds, but when many threads are queued
 * for the CPU a yield can last milliseconds, where a sleeping worker would have been woken at
 * once. So a yield longer than YIELD_SLOW_NS turns yielding off for YIELD_BACKOFF_NS: at most
 * one such yield per 10 ms per worker, the others shorter than YIELD_SLOW_NS. (A 100 ms pause
 * kept a quarter less of the saving on this VM, where some yields are slow even at low load.)
 * The pause is timed with uv_hrtime(), not uv_now(): the loop's cached time is that of the last
 * epoll_wait return, before this turn's work and the yield, so a pause counted from it would be
 * shortened by both (to nothing after a 10 ms yield).
 * docs/turn.md and docs/performance.md ("CPU per allocation").
 */
static void yield_after_requests(ar__udp_worker_t *w)
{
    bool due = w->d->plan->yield_after_requests && w->it_req > 0 && w->it_req == w->it_rx;
    w->it_rx = w->it_req = 0;
    if (!due)
        return;
    uint64_t t0 = uv_hrtime();
    if (t0 < w->yield_off_until)
        return;
    (void)sched_yield();
    uint64_t t1 = uv_hrtime();
    if (t1 - t0 > YIELD_SLOW_NS)
        w->yield_off_until = t1 + YIELD_BACKOFF_NS;
}

static void on_check(uv_check_t *c)
{
    ar__udp_worker_t *w = c->data;
    flush_all(w);
    w->rx_used = 0;
    close_pending(w);
    yield_after_requests(w);
}

static void on_tick(uv_timer_t *t)
{
    ar__udp_worker_t *w = t->data;
    set_now(w);
    ar_turn_engine_tick(w->e);
    ar__stream_tick(w->stream, uv_now(w->loop));
    flush_all(w);
    w->gso_below = w->gso_max; /* see gso_below */
    ar__udp_worker_push_metrics(w);
    if (w->index == 0) {
        ar__turn_daemon_update_load(w->d, uv_now(w->loop));
        ar__stream_cids_sweep(w->d, uv_now(w->loop));
    }
}

/* --- metrics --- */

void ar__udp_worker_push_metrics(ar__udp_worker_t *w)
{
    const ar_turn_stats_t *s = ar_turn_engine_stats(w->e);
    ar__turn_metrics_t *m = &w->d->m;
    ar_turn_stats_t *p = &w->pushed;
    unsigned sh = w->index;
#define PUSH(metric, field)                                                                        \
    do {                                                                                           \
        ar_metric_add(m->metric, sh, (int64_t)(s->field - p->field));                              \
        p->field = s->field;                                                                       \
    } while (0)
    for (int i = 0; i < AR_TURN_NTR; i++) {
        PUSH(allocations[i], tr[i].allocations);
        PUSH(allocs_total[i], tr[i].allocs_total);
        PUSH(pkts_in[i], tr[i].pkts_in);
        PUSH(pkts_out[i], tr[i].pkts_out);
        PUSH(bytes_in[i], tr[i].bytes_in);
        PUSH(bytes_out[i], tr[i].bytes_out);
    }
    PUSH(alloc_expired, alloc_expired);
    PUSH(auth_failures, auth_failures);
    PUSH(stale_nonces, stale_nonces);
    PUSH(denied_peers, denied_peers);
    PUSH(quota_rejects, quota_rejects);
    PUSH(rate_limited, rate_limited);
    PUSH(bw_dropped, bw_dropped);
    PUSH(bad_packets, bad_packets);
    PUSH(oversize_dropped, oversize_dropped);
    PUSH(relay_bind_failed, relay_bind_failed);
#undef PUSH
    ar_metric_add(m->send_dropped, sh, (int64_t)(w->send_dropped - w->send_dropped_pushed));
    w->send_dropped_pushed = w->send_dropped;
}

/* --- worker lifecycle --- */

void ar__udp_worker_free(ar__udp_worker_t *w)
{
    if (!w)
        return;
    ar__stream_worker_free(w->stream);
    if (w->relay_epfd >= 0)
        close(w->relay_epfd);
    ar_free(w->rx);
    ar_free(w->copy);
    ar_free(w->over);
    ar_free(w->whole);
    ar_free(w);
}

static void noop_close(uv_handle_t *h)
{
    (void)h;
}

void ar__udp_worker_stop(ar_worker_t *wk, void *data)
{
    ar__turn_daemon_t *d = data;
    ar__udp_worker_t *w = d->workers[ar_worker_index(wk)];
    if (!w)
        return;
    ar__stream_worker_stop(w->stream);
    if (w->e) {
        flush_all(w);
        ar__udp_worker_push_metrics(w);
        ar_turn_engine_free(w->e); /* closes every relay endpoint */
        w->e = NULL;
        close_pending(w);
    }
    if (w->relay_poll_init) {
        uv_poll_stop(&w->relay_poll);
        uv_close((uv_handle_t *)&w->relay_poll, noop_close);
    }
    for (size_t i = 0; i < w->nlisteners; i++) {
        uv_poll_stop(&w->listeners[i].poll);
        uv_close((uv_handle_t *)&w->listeners[i].poll, noop_close);
    }
    if (w->flush_init)
        uv_close((uv_handle_t *)&w->flush, noop_close);
    if (w->tick_init)
        uv_close((uv_handle_t *)&w->tick, noop_close);
    if (w->index == 0 && d->health) {
        ar_health_stop(d->health);
        d->health = NULL;
    }
}

/* Whether this kernel has UDP GSO (Linux 4.18 and later): the socket option exists. */
static size_t gso_probe(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    int v = 0;
    socklen_t l = sizeof(v);
    bool ok = getsockopt(fd, SOL_UDP, UDP_SEGMENT, &v, &l) == 0;
    close(fd);
    return ok ? AR_TURN_MAX_UDP_PAYLOAD + 1 : 0;
}

/*
 * Worker threads run as SCHED_BATCH (anteroom/sched.h): on loopback the task a datagram's wake-up
 * would preempt is often its sender, and with a worker per core each worker sees only its share of
 * the traffic, so it would wake for small batches (docs/performance.md, bench/turn/udp_ab.sh).
 * `sched-batch=false` keeps the default policy.
 */
static void sched_batch(void)
{
    if (ar_sched_batch() < 0)
        ar_log(AR_LOG_DEBUG, "turn_sched_batch_failed", AR_LF_INT("errno", errno));
}

int ar__udp_worker_init(ar_worker_t *wk, void *data)
{
    ar__turn_daemon_t *d = data;
    ar__udp_worker_t *w = ar_calloc(1, sizeof(*w));
    if (!w)
        return AR_ENOMEM;
    w->relay_epfd = -1;
    d->workers[ar_worker_index(wk)] = w;
    if (d->plan->sched_batch)
        sched_batch();
    w->d = d;
    w->index = ar_worker_index(wk);
    w->loop = ar_worker_loop(wk);
    w->relay_epfd = epoll_create1(EPOLL_CLOEXEC);
    if (w->relay_epfd < 0)
        return AR_ESYS;
    w->rx = ar_malloc(sizeof(*w->rx) * (RX_SLOTS + 1)); /* +1: in_rx's end bound is valid */
    w->copy = ar_malloc(COPY_ARENA);
    w->over = ar_malloc(BATCH * DGRAM_MAX); /* untouched pages cost no memory */
    w->whole = ar_malloc(AR_TURN_HEADROOM + DGRAM_MAX + 4);
    if (!w->rx || !w->copy || !w->over || !w->whole)
        return AR_ENOMEM;
    rx_init(w);
    w->wall_base = (int64_t)time(NULL) - (int64_t)(uv_now(w->loop) / 1000);
    w->gso_max = gso_probe();
    w->gso_below = w->gso_max;
    ar_turn_transport_t tp = {.ctx = w,
                              .send_client = tp_send_client,
                              .relay_open = tp_relay_open,
                              .relay_arm = tp_relay_arm,
                              .relay_close = tp_relay_close,
                              .send_peer = tp_send_peer,
                              .tcp_relay_open = tp_tcp_relay_open,
                              .tcp_relay_close = tp_tcp_relay_close,
                              .peer_connect = tp_peer_connect,
                              .data_bind = tp_data_bind};
    w->e = ar_turn_engine_new(d->sh, &tp);
    if (!w->e)
        return AR_ENOMEM;
    set_now(w);
    ar_turn_engine_tick(w->e);

    const ar_turn_plan_t *plan = d->plan;
    for (size_t i = 0; i < plan->nlisten; i++) {
        int fd = ar_listen_socket(SOCK_DGRAM, (const struct sockaddr *)&plan->listen[i], 0);
        if (fd < 0) {
            ar_log(AR_LOG_ERROR, "listen_failed",
                   AR_LF_ADDR("addr", (const struct sockaddr *)&plan->listen[i]),
                   AR_LF_ERR("err", fd));
            return fd;
        }
        /* Bigger socket buffers absorb bursts between loop iterations (capped by rmem_max). */
        int sz = 4 << 20;
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
        udp_listener_t *l = &w->listeners[i];
        ar_turn_addr_t la;
        static const uint8_t zero[16];
        l->wildcard = ar_turn_addr_from_sa(&la, (const struct sockaddr *)&plan->listen[i]) == 0 &&
                      memcmp(la.ip, zero, la.family == 4 ? 4 : 16) == 0;
        if (l->wildcard) {
            /* Replies must leave from the address the request reached (RFC 8489 section 6.3.3
             * expects the same 5-tuple), not whichever one the kernel's routing prefers. */
            int one = 1;
            if (la.family == 4)
                (void)setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one));
            else
                (void)setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one));
        }
        l->fd = fd;
        l->index = (uint16_t)i;
        l->w = w;
        if (uv_poll_init(w->loop, &l->poll, fd) != 0) {
            close(fd);
            return AR_ESYS;
        }
        w->nlisteners = i + 1;
        l->poll.data = l;
        uv_poll_start(&l->poll, UV_READABLE, on_listener);
    }
    int src = ar__stream_worker_init(w, w->loop, d, w->e, &w->stream);
    if (src != 0)
        return src;
    if (uv_poll_init(w->loop, &w->relay_poll, w->relay_epfd) != 0)
        return AR_ESYS;
    w->relay_poll_init = true;
    w->relay_poll.data = w;
    uv_poll_start(&w->relay_poll, UV_READABLE, on_relays);
    if (uv_check_init(w->loop, &w->flush) != 0)
        return AR_ESYS;
    w->flush_init = true;
    w->flush.data = w;
    uv_check_start(&w->flush, on_check);
    if (uv_timer_init(w->loop, &w->tick) != 0)
        return AR_ESYS;
    w->tick_init = true;
    w->tick.data = w;
    uv_timer_start(&w->tick, on_tick, 1000, 1000);

    if (w->index == 0 && plan->has_metrics) {
        char host[64];
        const struct sockaddr *sa = (const struct sockaddr *)&plan->metrics;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, host,
                      sizeof(host));
        else
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, host,
                      sizeof(host));
        ar_health_opts_t ho = {.host = host,
                               .port = ar_addr_port(sa),
                               .metrics = d->metrics,
                               .extra_path = "/load",
                               .extra = ar__turn_redirect_json,
                               .extra_data = d};
        int rc = ar_health_start(w->loop, &ho, &d->health);
        if (rc != 0) {
            ar_log(AR_LOG_ERROR, "metrics_listen_failed", AR_LF_ADDR("addr", sa),
                   AR_LF_ERR("err", rc));
            return rc;
        }
    }
    return 0;
}
