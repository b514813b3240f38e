/*
 * turn_probe's "burst" action: bursts of datagrams of mixed sizes through a UDP channel, both
 * ways, each of which must arrive intact, alone and in order.
 *
 * The relay may send runs of same-size datagrams to one destination as one UDP GSO message
 * (docs/turn.md); a mistake there shows as datagrams merged, split at the wrong place, lost or
 * reordered. The size list is made of the cases that decide whether a datagram may join a run:
 * equal sizes, a shorter one that ends a run, a longer one after it, empty and one-byte
 * datagrams, more than the kernel's 64 segments, datagrams over the relay's 2 KiB receive slot,
 * runs whose bytes together exceed one datagram's, and sizes a 1500-byte MTU refuses to
 * segment (the test runs once at that MTU, so the fallback is taken).
 *
 * Every other round the receiving sockets ask for UDP_GRO: the kernel then hands over a GSO
 * message as it was sent, with its segment size, so the probe can count the runs the relay
 * batched (the test checks that it did batch) and still checks each datagram within them.
 */
#include "probe_burst.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define BURST_MAX 160
#define BURST_BUF 70000 /* a coalesced GRO read carries up to 64 KiB */

static const uint16_t burst_runs[][2] = {
    /* {size, count} */
    {100, 7},  {60, 1},   {60, 1},   {100, 1},   {0, 1},   {1, 3},   {1200, 10},
    {1300, 1}, {1480, 3}, {3000, 3}, {20000, 4}, {10, 70}, {500, 2}, {499, 1},
};

static size_t burst_sizes(uint16_t *out)
{
    size_t n = 0;
    for (size_t r = 0; r < sizeof(burst_runs) / sizeof(burst_runs[0]); r++) {
        for (uint16_t k = 0; k < burst_runs[r][1] && n < BURST_MAX; k++)
            out[n++] = burst_runs[r][0];
    }
    return n;
}

static uint8_t burst_byte(size_t k, size_t i, int round)
{
    return (uint8_t)(i * 31 + k * 7 + (size_t)round * 101 + 3);
}

static long burst_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Sends n frames (frames[k] of len[k] bytes) with sendmmsg, to `to` (NULL: connected). */
static int burst_send(int fd, uint8_t *const *frames, const size_t *len, size_t n,
                      const struct sockaddr_storage *to, socklen_t tolen)
{
    struct mmsghdr m[BURST_MAX];
    struct iovec iov[BURST_MAX];
    memset(m, 0, sizeof(m));
    for (size_t k = 0; k < n; k++) {
        iov[k].iov_base = frames[k];
        iov[k].iov_len = len[k];
        m[k].msg_hdr.msg_iov = &iov[k];
        m[k].msg_hdr.msg_iovlen = 1;
        m[k].msg_hdr.msg_name = (void *)to;
        m[k].msg_hdr.msg_namelen = to ? tolen : 0;
    }
    size_t sent = 0;
    while (sent < n) {
        int r = sendmmsg(fd, m + sent, (unsigned)(n - sent), 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            perror("turn_probe: burst sendmmsg");
            return -1;
        }
        sent += (unsigned)r;
    }
    return 0;
}

typedef struct burst_rx_s {
    const uint16_t *sizes;
    size_t n, next; /* datagrams expected, and the index of the next one */
    int round;
    int channel;    /* >= 0: each datagram is ChannelData on this channel */
    long coalesced; /* reads that carried more than one datagram (GRO) */
    char why[160];
} burst_rx_t;

/* Checks one datagram against the next one expected. */
static int burst_check(burst_rx_t *x, const uint8_t *p, size_t len)
{
    size_t k = x->next;
    if (k >= x->n) {
        snprintf(x->why, sizeof(x->why), "an extra datagram of %zu bytes", len);
        return -1;
    }
    if (x->channel >= 0) {
        if (len < 4 || (p[0] << 8 | p[1]) != x->channel || (size_t)(p[2] << 8 | p[3]) != len - 4) {
            snprintf(x->why, sizeof(x->why), "datagram %zu: not ChannelData of %zu bytes", k, len);
            return -1;
        }
        p += 4;
        len -= 4;
    }
    if (len != x->sizes[k]) {
        snprintf(x->why, sizeof(x->why), "datagram %zu: %zu bytes, want %u", k, len, x->sizes[k]);
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        if (p[i] != burst_byte(k, i, x->round)) {
            snprintf(x->why, sizeof(x->why), "datagram %zu (%zu bytes): wrong byte at %zu", k, len,
                     i);
            return -1;
        }
    }
    x->next++;
    return 0;
}

/* Reads until every expected datagram arrived (in order) or 3 s passed. from: the sender of
 * the first datagram. */
static int burst_recv(int fd, burst_rx_t *x, struct sockaddr_storage *from, socklen_t *fromlen)
{
    static uint8_t buf[BURST_BUF];
    long deadline = burst_now_ms() + 3000;
    while (x->next < x->n) {
        long left = deadline - burst_now_ms();
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0) {
            snprintf(x->why, sizeof(x->why), "timeout: %zu of %zu datagrams arrived", x->next,
                     x->n);
            return -1;
        }
        struct sockaddr_storage src;
        union {
            struct cmsghdr align;
            uint8_t b[CMSG_SPACE(sizeof(int))];
        } ctl;
        struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
        struct msghdr h = {.msg_name = &src,
                           .msg_namelen = sizeof(src),
                           .msg_iov = &iov,
                           .msg_iovlen = 1,
                           .msg_control = ctl.b,
                           .msg_controllen = sizeof(ctl.b)};
        ssize_t got = recvmsg(fd, &h, MSG_DONTWAIT);
        if (got < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (got < 0 || (h.msg_flags & MSG_TRUNC)) {
            snprintf(x->why, sizeof(x->why), "recvmsg failed or truncated");
            return -1;
        }
        if (from && x->next == 0) {
            *from = src;
            *fromlen = h.msg_namelen;
        }
        size_t seg = (size_t)got;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&h); cm; cm = CMSG_NXTHDR(&h, cm)) {
            if (cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_GRO) {
                int g;
                memcpy(&g, CMSG_DATA(cm), sizeof(g));
                if (g > 0)
                    seg = (size_t)g;
            }
        }
        if (seg == 0)
            seg = 1; /* an empty datagram: the loop below still checks it once */
        if ((size_t)got > seg)
            x->coalesced++;
        size_t off = 0;
        do {
            size_t len = (size_t)got - off < seg ? (size_t)got - off : seg;
            if (burst_check(x, buf + off, len) != 0)
                return -1;
            off += len;
        } while (off < (size_t)got);
    }
    return 0;
}

int probe_burst(int cfd, int lfd, uint16_t channel, int rounds)
{
    static uint8_t store[BURST_MAX][4 + 20000];
    uint8_t *frames[BURST_MAX];
    size_t len[BURST_MAX];
    uint16_t sizes[BURST_MAX];
    size_t n = burst_sizes(sizes);
    int sz = 4 << 20;
    (void)setsockopt(cfd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    (void)setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    long to_peer = 0, to_client = 0;
    for (int round = 0; round < rounds; round++) {
        int gro = round & 1;
        if (setsockopt(cfd, SOL_UDP, UDP_GRO, &gro, sizeof(gro)) != 0 ||
            setsockopt(lfd, SOL_UDP, UDP_GRO, &gro, sizeof(gro)) != 0)
            gro = 0; /* a kernel without UDP GRO: plain reads only */
        for (size_t k = 0; k < n; k++) {
            uint8_t *f = store[k];
            f[0] = (uint8_t)(channel >> 8);
            f[1] = (uint8_t)channel;
            f[2] = (uint8_t)(sizes[k] >> 8);
            f[3] = (uint8_t)sizes[k];
            for (size_t i = 0; i < sizes[k]; i++)
                f[4 + i] = burst_byte(k, i, round);
            frames[k] = f;
            len[k] = 4 + (size_t)sizes[k];
        }
        /* Client to peer: ChannelData in, bare datagrams out. */
        burst_rx_t x = {.sizes = sizes, .n = n, .round = round, .channel = -1};
        struct sockaddr_storage relay;
        socklen_t relay_len = 0;
        if (burst_send(cfd, frames, len, n, NULL, 0) != 0)
            return -1;
        if (burst_recv(lfd, &x, &relay, &relay_len) != 0) {
            printf("burst fail: round %d, client to peer: %s\n", round, x.why);
            return -1;
        }
        to_peer += x.coalesced;
        /* Peer to client: the same datagrams back to the relayed address, ChannelData out. */
        for (size_t k = 0; k < n; k++) {
            frames[k] = store[k] + 4;
            len[k] = sizes[k];
        }
        burst_rx_t y = {.sizes = sizes, .n = n, .round = round, .channel = channel};
        if (burst_send(lfd, frames, len, n, &relay, relay_len) != 0)
            return -1;
        if (burst_recv(cfd, &y, NULL, NULL) != 0) {
            printf("burst fail: round %d, peer to client: %s\n", round, y.why);
            return -1;
        }
        to_client += y.coalesced;
    }
    printf("burst ok rounds=%d datagrams=%zu coalesced_to_peer=%ld coalesced_to_client=%ld\n",
           rounds, n, to_peer, to_client);
    return 0;
}
