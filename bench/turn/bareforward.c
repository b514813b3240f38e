/*
 * ar-bareforward: the physical limit for the relay benchmark. It relays UDP between clients and
 * one peer the way a TURN relay does, with none of the protocol: one listening socket faces the
 * clients, and each client gets its own socket toward the peer (as each allocation gets a relay
 * port), so the peer's echo finds its way back. Both directions use recvmmsg/sendmmsg, so what it
 * spends per packet is the kernel's loopback UDP path plus a table lookup: a relay cannot do
 * less, and anteroom-turn is judged against it.
 *
 * With --gso it also does what anteroom-turn does on top of batching: a run of datagrams of one
 * size (the last may be shorter) for one destination leaves as one UDP GSO message
 * (UDP_SEGMENT), which the kernel routes once and cuts into the same datagrams at the last
 * moment. That is the physical limit for a relay that uses GSO; the bench reports both.
 *
 * usage: ar-bareforward --listen IP:PORT --peer IP:PORT [--secs S] [--gso]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/udp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BF_BATCH 64
#define BF_MAX_CLIENTS 16384 /* one fd each: stays under the 20,000 open files of a process */
#define BF_HASH (BF_MAX_CLIENTS * 2)
#define BF_LISTEN_ID UINT32_MAX
#define BF_GSO_SEGS 64 /* the kernel's UDP_MAX_SEGMENTS */

typedef struct bf_client_s {
    struct sockaddr_in addr; /* the client, as the listening socket sees it */
    int fd;                  /* connected to the peer */
} bf_client_t;

static bf_client_t clients[BF_MAX_CLIENTS];
static int nclients;
static int hash_tab[BF_HASH]; /* client index + 1; 0 = empty */
static int ep, lfd;
static struct sockaddr_in peer;
static int use_gso;

static int parse_addr(const char *s, struct sockaddr_in *out)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= sizeof(host))
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = 0;
    memset(out, 0, sizeof(*out));
    out->sin_family = AF_INET;
    out->sin_port = htons((uint16_t)atoi(colon + 1));
    return inet_pton(AF_INET, host, &out->sin_addr) == 1 ? 0 : -1;
}

static void big_buffers(int fd)
{
    int sz = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
}

/* The client's index, creating its peer-facing socket on first sight; -1 when full. */
static int lookup(const struct sockaddr_in *sa)
{
    uint32_t h = (sa->sin_addr.s_addr * 2654435761u) ^ (sa->sin_port * 40503u);
    for (uint32_t i = 0; i < BF_HASH; i++) {
        int *slot = &hash_tab[(h + i) % BF_HASH];
        if (*slot) {
            const bf_client_t *c = &clients[*slot - 1];
            if (c->addr.sin_addr.s_addr == sa->sin_addr.s_addr && c->addr.sin_port == sa->sin_port)
                return *slot - 1;
            continue;
        }
        if (nclients == BF_MAX_CLIENTS)
            return -1;
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        if (fd < 0)
            return -1;
        big_buffers(fd);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)nclients};
        if (connect(fd, (const struct sockaddr *)&peer, sizeof(peer)) != 0 ||
            epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
            close(fd);
            return -1;
        }
        clients[nclients].addr = *sa;
        clients[nclients].fd = fd;
        *slot = ++nclients;
        return nclients - 1;
    }
    return -1;
}

static uint8_t bufs[BF_BATCH][2048];
static struct iovec iov[BF_BATCH];
static struct mmsghdr msgs[BF_BATCH];
static struct sockaddr_in names[BF_BATCH];

static int recv_batch(int fd)
{
    for (int i = 0; i < BF_BATCH; i++) {
        iov[i].iov_base = bufs[i];
        iov[i].iov_len = sizeof(bufs[i]);
        memset(&msgs[i].msg_hdr, 0, sizeof(msgs[i].msg_hdr));
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_name = &names[i];
        msgs[i].msg_hdr.msg_namelen = sizeof(names[i]);
    }
    int n = recvmmsg(fd, msgs, BF_BATCH, MSG_DONTWAIT, NULL);
    for (int i = 0; i < n; i++)
        iov[i].iov_len = msgs[i].msg_len;
    return n;
}

static void send_all(int fd, struct mmsghdr *m, int n);

/* --gso: sends n datagrams for one destination (m[i] each with one iovec), runs of one size
 * (the last may be shorter) as one message with UDP_SEGMENT. */
static void send_gso(int fd, struct mmsghdr *m, int n)
{
    static struct iovec giov[BF_BATCH];
    static union {
        struct cmsghdr align;
        uint8_t b[CMSG_SPACE(sizeof(uint16_t))];
    } ctl[BF_BATCH];
    struct mmsghdr out[BF_BATCH];
    int k = 0, i = 0;
    while (i < n) {
        size_t seg = m[i].msg_hdr.msg_iov[0].iov_len, bytes = 0;
        int j = i;
        while (j < n && j - i < BF_GSO_SEGS && bytes + m[j].msg_hdr.msg_iov[0].iov_len <= 65507 &&
               seg > 0 && m[j].msg_hdr.msg_iov[0].iov_len <= seg &&
               bytes == seg * (size_t)(j - i)) {
            giov[j] = m[j].msg_hdr.msg_iov[0];
            bytes += giov[j].iov_len;
            j++;
        }
        if (j == i) { /* an empty datagram */
            giov[j] = m[j].msg_hdr.msg_iov[0];
            j++;
        }
        out[k] = m[i];
        out[k].msg_hdr.msg_iov = &giov[i];
        out[k].msg_hdr.msg_iovlen = (size_t)(j - i);
        out[k].msg_hdr.msg_control = NULL;
        out[k].msg_hdr.msg_controllen = 0;
        if (j - i > 1) {
            struct cmsghdr *cm = &ctl[k].align;
            uint16_t g = (uint16_t)seg;
            cm->cmsg_level = SOL_UDP;
            cm->cmsg_type = UDP_SEGMENT;
            cm->cmsg_len = CMSG_LEN(sizeof(g));
            memcpy(CMSG_DATA(cm), &g, sizeof(g));
            out[k].msg_hdr.msg_control = ctl[k].b;
            out[k].msg_hdr.msg_controllen = sizeof(ctl[k].b);
        }
        k++;
        i = j;
    }
    send_all(fd, out, k);
}

static void send_all(int fd, struct mmsghdr *m, int n)
{
    int off = 0;
    while (off < n) {
        int s = sendmmsg(fd, m + off, (unsigned)(n - off), 0);
        if (s <= 0)
            return; /* full buffer: dropped, as a relay under overload drops */
        off += s;
    }
}

/* Client to peer: runs of datagrams from the same client go out in one sendmmsg. */
static int from_clients(void)
{
    int n = recv_batch(lfd);
    struct mmsghdr out[BF_BATCH];
    int i = 0;
    while (i < n) {
        int c = lookup(&names[i]);
        int j = i;
        int k = 0;
        while (j < n && names[j].sin_port == names[i].sin_port &&
               names[j].sin_addr.s_addr == names[i].sin_addr.s_addr) {
            out[k] = msgs[j];
            out[k].msg_hdr.msg_name = NULL;
            out[k].msg_hdr.msg_namelen = 0;
            k++;
            j++;
        }
        if (c >= 0)
            (use_gso ? send_gso : send_all)(clients[c].fd, out, k);
        i = j;
    }
    return n;
}

/* Peer to client: everything on one client's socket goes back to that client. */
static int from_peer(uint32_t c)
{
    int n = recv_batch(clients[c].fd);
    for (int i = 0; i < n; i++) {
        msgs[i].msg_hdr.msg_name = &clients[c].addr;
        msgs[i].msg_hdr.msg_namelen = sizeof(clients[c].addr);
    }
    if (n > 0)
        (use_gso ? send_gso : send_all)(lfd, msgs, n);
    return n;
}

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {{"listen", 1, 0, 'l'},
                                       {"peer", 1, 0, 'p'},
                                       {"secs", 1, 0, 'd'},
                                       {"gso", 0, 0, 'g'},
                                       {0, 0, 0, 0}};
    struct sockaddr_in la;
    const char *l = NULL, *p = NULL;
    double secs = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (ch == 'l')
            l = optarg;
        else if (ch == 'p')
            p = optarg;
        else if (ch == 'd')
            secs = atof(optarg);
        else if (ch == 'g')
            use_gso = 1;
        else
            return 2;
    }
    if (!l || !p || parse_addr(l, &la) != 0 || parse_addr(p, &peer) != 0) {
        fprintf(stderr,
                "usage: ar-bareforward --listen IP:PORT --peer IP:PORT [--secs S] [--gso]\n");
        return 2;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    ep = epoll_create1(0);
    lfd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (ep < 0 || lfd < 0 || bind(lfd, (const struct sockaddr *)&la, sizeof(la)) != 0) {
        perror("ar-bareforward");
        return 1;
    }
    big_buffers(lfd);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = BF_LISTEN_ID};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct epoll_event evs[256];
    while (!stop) {
        int n = epoll_wait(ep, evs, 256, 200);
        for (int i = 0; i < n; i++) {
            /* A few batches per readiness, so a busy client cannot starve the others. */
            for (int r = 0; r < 4; r++)
                if ((evs[i].data.u32 == BF_LISTEN_ID ? from_clients()
                                                     : from_peer(evs[i].data.u32)) < BF_BATCH)
                    break;
        }
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (secs > 0 && (double)(t.tv_sec - t0.tv_sec) > secs)
            break;
    }
    for (int i = 0; i < nclients; i++)
        close(clients[i].fd);
    close(lfd);
    close(ep);
    return 0;
}
