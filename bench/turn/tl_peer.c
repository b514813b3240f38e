/*
 * The echo peer. Every server in the benchmark relays to this same process, so the cost of the
 * far end is known and identical for all of them. UDP is echoed in batches (recvmmsg/sendmmsg,
 * one system call per 64 datagrams) so that the peer is never what limits the relay; TCP (for
 * RFC 6062 allocations) is echoed byte for byte on the same port.
 */
#include "tl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

static int bind_sock(int type, const struct sockaddr_in *sa)
{
    int fd = socket(AF_INET, type, 0);
    int one = 1;
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    /* Large buffers absorb the bursts of a closed-loop sender with many packets in flight. */
    int sz = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    if (bind(fd, (const struct sockaddr *)sa, sizeof(*sa)) != 0 || tl_set_nonblock(fd) != 0 ||
        (type == SOCK_STREAM && listen(fd, 1024) != 0)) {
        close(fd);
        return -1;
    }
    return fd;
}

static void echo_udp(int fd)
{
    static uint8_t bufs[TL_BATCH][2048];
    static struct sockaddr_in names[TL_BATCH];
    static struct iovec iov[TL_BATCH];
    static struct mmsghdr m[TL_BATCH];
    for (int round = 0; round < 16; round++) {
        for (int i = 0; i < TL_BATCH; i++) {
            iov[i].iov_base = bufs[i];
            iov[i].iov_len = sizeof(bufs[i]);
            memset(&m[i].msg_hdr, 0, sizeof(m[i].msg_hdr));
            m[i].msg_hdr.msg_iov = &iov[i];
            m[i].msg_hdr.msg_iovlen = 1;
            m[i].msg_hdr.msg_name = &names[i];
            m[i].msg_hdr.msg_namelen = sizeof(names[i]);
        }
        int n = recvmmsg(fd, m, TL_BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0)
            return;
        for (int i = 0; i < n; i++)
            iov[i].iov_len = m[i].msg_len;
        int off = 0;
        while (off < n) {
            int s = sendmmsg(fd, m + off, (unsigned)(n - off), 0);
            if (s <= 0)
                break; /* a full socket buffer drops the rest, as a real peer's would */
            off += s;
        }
        if (n < TL_BATCH)
            return;
    }
}

static void echo_tcp(int ep, int fd)
{
    static uint8_t buf[65536];
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n == 0 || (n < 0 && errno != EAGAIN)) {
        epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
        close(fd);
        return;
    }
    /* The relay reads as fast as we write in this benchmark; a short write drops bytes, which
     * the load client then counts as loss. Blocking would hide a stalled relay instead. */
    if (n > 0 && write(fd, buf, (size_t)n) < 0 && errno != EAGAIN) {
        epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
        close(fd);
    }
}

int tl_peer_run(const char *listen_addr, double secs)
{
    struct sockaddr_in sa;
    if (tl_parse_addr(listen_addr, &sa) != 0) {
        fprintf(stderr, "peer: bad address\n");
        return -1;
    }
    int u = bind_sock(SOCK_DGRAM, &sa);
    int t = bind_sock(SOCK_STREAM, &sa);
    int ep = epoll_create1(0);
    if (u < 0 || t < 0 || ep < 0) {
        perror("peer: socket");
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = u};
    epoll_ctl(ep, EPOLL_CTL_ADD, u, &ev);
    ev.data.fd = t;
    epoll_ctl(ep, EPOLL_CTL_ADD, t, &ev);
    printf("PEER listening\n");
    fflush(stdout);
    uint64_t end = secs > 0 ? tl_now_ns() + (uint64_t)(secs * 1e9) : UINT64_MAX;
    struct epoll_event evs[64];
    while (tl_now_ns() < end) {
        int n = epoll_wait(ep, evs, 64, 200);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == u) {
                echo_udp(u);
            } else if (fd == t) {
                int c = accept4(t, NULL, NULL, SOCK_NONBLOCK);
                if (c >= 0) {
                    struct epoll_event ce = {.events = EPOLLIN, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
                }
            } else {
                echo_tcp(ep, fd);
            }
        }
    }
    return 0;
}
