/*
 * A resume moved to the worker that owns its session (docs/signal.md, "Resume on the owner's
 * worker"). The kernel places each new connection on any worker of the node (SO_REUSEPORT), so
 * a client resuming after its connection or its node was lost nearly always reaches a worker
 * other than its session's owner. Over the bus that worker asks the owner for the session and
 * takes it over: a subscription, an ask and an answer carrying the session's buffer, a copy to a
 * new backup, and a record update every worker applies. When the owner is a worker of this same
 * node, the connection itself goes to it instead: its descriptor over a Unix sequenced-packet
 * link between the two workers (SCM_RIGHTS), with the hello it sent. The owner resumes it
 * locally, with none of the above. While the owner is a worker of another node, the connection
 * goes to the session's backup when that is a worker of this one (ar__sig_move_target).
 *
 * After a node died under 100,000 sessions, each resume on the survivor that went over the bus
 * waited behind the record updates of all the others for its answer (performance.md, "Failover
 * at 100,000 calls a node"); a moved one waits for nothing but the owner's loop.
 *
 * Each worker listens on an abstract socket named by its jurisdiction and worker id, so any
 * worker of the node can reach it knowing only the id a record names, and keeps the links it
 * made and took (a link's queue is bounded by bytes: a datagram socket's by 10 datagrams from
 * all senders, which a busy owner's loop let fill). Abstract names are reachable by every
 * process of the network namespace: the receiver keeps a link only from a process of its own
 * user (SO_PEERCRED) and takes a connection only from a packet with its own user's credentials
 * (SO_PASSCRED), and treats what comes as a client's hello, checked in full (token, secret) as
 * any other. Only a plain connection moves (a TLS connection's keys stay
 * in its process), only at its hello (nothing read after it, nothing queued to it), and only
 * once: a moved connection whose session moved on meanwhile resumes over the bus from there.
 */
#include "internal.h"

#include "anteroom/alloc.h"
#include "anteroom/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* What precedes the hello in a packet. */
typedef struct move_head_s {
    char magic[4];   /* "arMv" */
    uint8_t version; /* 1 */
    uint8_t counted; /* the per-address cap counts the client under key */
    uint8_t pad[2];
    uint8_t key[16]; /* the address it is counted under (addr.c) */
} move_head_t;

#define MOVE_MAGIC "arMv"
/* Links kept each way: a node's other workers (at least 11 on this machine's node of 12). */
#define MOVE_LINKS 64
_Static_assert(sizeof(move_head_t) == AR__SIG_MOVE_HEAD, "the header's size, internal.h");
#define MOVES_PER_WAKE 64
/* A sender's buffer on a link, asked of the kernel (link_to). */
#define MOVE_LINK_SNDBUF (1 << 20)
/* The close code of the connection left behind: never sent (the socket lives on elsewhere). */
#define CLOSE_MOVED 1001

size_t ar__sig_move_head(uint8_t out[AR__SIG_MOVE_HEAD], const uint8_t *key)
{
    move_head_t h = {.magic = MOVE_MAGIC, .version = 1, .counted = key != NULL};
    if (key)
        memcpy(h.key, key, sizeof(h.key));
    memcpy(out, &h, sizeof(h));
    return sizeof(h);
}

typedef struct move_link_s {
    uint64_t worker;
    int fd;
} move_link_t;

/* A worker's links (srv->mv): its listening socket and the links other workers made to it, in an
 * epoll the loop watches (one watch for all: the loop has a few); the links it made to others. */
struct ar__sig_moves_s {
    int lfd, ep;
    int in[MOVE_LINKS];
    size_t nin, nout;
    move_link_t out[MOVE_LINKS];
};

static socklen_t move_addr(const ar__sig_srv_t *srv, uint64_t worker, struct sockaddr_un *a)
{
    memset(a, 0, sizeof(*a));
    a->sun_family = AF_UNIX;
    /* sun_path[0] stays 0: an abstract name, gone with the socket (no file to clean up). */
    int n = snprintf(a->sun_path + 1, sizeof(a->sun_path) - 1, "anteroom-signal/%s/%016llx",
                     srv->conf->jurisdiction, (unsigned long long)worker);
    if (n < 0 || (size_t)n >= sizeof(a->sun_path) - 1)
        n = (int)sizeof(a->sun_path) - 2; /* cut: still unique enough by the id's start */
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

/* Closes every descriptor a message brought. */
static void close_rights(struct msghdr *mh)
{
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        for (size_t i = 0; i < (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
            int f;
            memcpy(&f, CMSG_DATA(cm) + i * sizeof(int), sizeof(f));
            close(f);
        }
    }
}

/* One connection moved here: the sender's credentials, one descriptor, then the hello. */
static void take_one(ar__sig_srv_t *srv, struct msghdr *mh, size_t n, const uint8_t *buf)
{
    int fd = -1, creds_ok = 0, extra = 0;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
        if (cm->cmsg_level != SOL_SOCKET)
            continue;
        if (cm->cmsg_type == SCM_CREDENTIALS && cm->cmsg_len >= CMSG_LEN(sizeof(struct ucred))) {
            struct ucred uc;
            memcpy(&uc, CMSG_DATA(cm), sizeof(uc));
            creds_ok = uc.uid == geteuid();
        } else if (cm->cmsg_type == SCM_RIGHTS) {
            size_t nfd = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < nfd; i++) {
                int f;
                memcpy(&f, CMSG_DATA(cm) + i * sizeof(int), sizeof(f));
                if (fd < 0)
                    fd = f;
                else
                    close(f), extra = 1;
            }
        }
    }
    move_head_t h = {0};
    if (n > sizeof(h))
        memcpy(&h, buf, sizeof(h));
    int head_ok = memcmp(h.magic, MOVE_MAGIC, 4) == 0 && h.version == 1;
    if (fd < 0 || !creds_ok || extra || !head_ok || (mh->msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
        ar_log(AR_LOG_WARN, "signal_move_refused", AR_LF_INT("fd", fd >= 0),
               AR_LF_INT("creds", creds_ok), AR_LF_INT("head", head_ok));
        if (fd >= 0)
            close(fd);
        return;
    }
    /* Counted here as at its first worker, over the cap if need be: the node holds no more
     * connections from that address than it did a moment ago. */
    int tag = h.counted ? ar__sig_addrs_add(&srv->addrs, h.key, UINT16_MAX) : 0;
    srv->moving_in = 1; /* the connection opened below is marked: it never moves again */
    int rc = ar_sn_loop_adopt_open(srv->loop, fd, (uint16_t)(tag > 0 ? tag : 0), buf + sizeof(h),
                                   n - sizeof(h));
    srv->moving_in = 0;
    if (rc == 0)
        ar_metric_add(srv->m.moved_in, 0, 1);
    else
        ar_log(AR_LOG_WARN, "signal_move_in_failed", AR_LF_ERR("err", rc));
}

int ar__sig_move_take(ar__sig_srv_t *srv, int sfd, int max)
{
    static uint8_t buf[sizeof(move_head_t) + AR_SIG_FRAME_MAX];
    union {
        char b[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(4 * sizeof(int))];
        struct cmsghdr align;
    } ctl;
    srv->now = ar_sn_loop_now(srv->loop);
    int taken = 0;
    for (; taken < max; taken++) {
        struct iovec iov = {buf, sizeof(buf)};
        struct msghdr mh = {.msg_iov = &iov,
                            .msg_iovlen = 1,
                            .msg_control = ctl.b,
                            .msg_controllen = sizeof(ctl.b)};
        memset(&ctl, 0, sizeof(ctl)); /* what an end of the link leaves unwritten reads empty */
        ssize_t n = recvmsg(sfd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n == 0) {
            /* The sender went, or sent an empty packet (a worker never does): whatever
             * descriptors came with it are closed, and so is the link. */
            close_rights(&mh);
            return -1;
        }
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return -1;
        if (n < 0)
            break;
        take_one(srv, &mh, (size_t)n, buf);
        explicit_bzero(buf, (size_t)n); /* a token and a resume secret */
    }
    return taken;
}

/* An accepted link closed, and taken out of the epoll with it. */
static void drop_in(ar__sig_moves_t *mv, size_t i)
{
    close(mv->in[i]);
    mv->in[i] = mv->in[--mv->nin];
}

/* New links from other workers: each from a process of our own user, at most MOVE_LINKS. */
static void accept_links(ar__sig_moves_t *mv)
{
    for (int i = 0; i < MOVE_LINKS; i++) {
        int fd = accept4(mv->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        struct ucred uc = {0};
        socklen_t ul = sizeof(uc);
        int one = 1;
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &ul) != 0 || uc.uid != geteuid() ||
            mv->nin == MOVE_LINKS ||
            setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) != 0 ||
            epoll_ctl(mv->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
            /* Whatever it already sent goes with it: the kernel closes the descriptors in it. */
            ar_log(AR_LOG_WARN, "signal_move_refused", AR_LF_INT("link", 1),
                   AR_LF_INT("creds", uc.uid == geteuid()), AR_LF_UINT("links", mv->nin));
            close(fd);
            continue;
        }
        mv->in[mv->nin++] = fd;
    }
}

/* The loop's callback for the epoll of the links: new links, and what came on each. */
static void on_moves(int ep, void *data)
{
    ar__sig_srv_t *srv = data;
    ar__sig_moves_t *mv = srv->mv;
    struct epoll_event evs[MOVE_LINKS + 1];
    int n = epoll_wait(ep, evs, MOVE_LINKS + 1, 0);
    /* At most MOVES_PER_WAKE moves a turn of the loop, over all links: each is a hello and its
     * token check, and a loop that takes every link's queue at once (hundreds after a node's
     * death) holds back its heartbeats and the bus meanwhile (one half-size failover run without
     * this bound had 2,919 resumes unanswered, the next with it none: performance.md). The rest
     * stay ready (level-triggered) for the next turn. */
    int budget = MOVES_PER_WAKE;
    for (int e = 0; e < n && budget > 0; e++) {
        int fd = evs[e].data.fd;
        if (fd == mv->lfd) {
            accept_links(mv);
            continue;
        }
        int took = ar__sig_move_take(srv, fd, budget);
        if (took >= 0) {
            budget -= took;
            continue;
        }
        for (size_t i = 0; i < mv->nin; i++)
            if (mv->in[i] == fd) {
                drop_in(mv, i);
                break;
            }
    }
}

int ar__sig_move_start(ar__sig_srv_t *srv)
{
    ar__sig_moves_t *mv = ar_calloc(1, sizeof(*mv));
    int lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct sockaddr_un a;
    socklen_t alen = move_addr(srv, srv->node_id, &a);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
    int one = 1;
    /* SO_PASSCRED on the listening socket too: an accepted link inherits it as accept makes it,
     * so no packet that lands between the accept and our own setsockopt comes without the
     * sender's credentials (one move of 42,000 was refused so before). */
    if (!mv || lfd < 0 || ep < 0 ||
        setsockopt(lfd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) != 0 ||
        bind(lfd, (struct sockaddr *)&a, alen) != 0 || listen(lfd, MOVE_LINKS) != 0 ||
        epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) != 0 ||
        ar_sn_loop_watch(srv->loop, ep, on_moves, srv) != 0) {
        /* Resumes then go over the bus, as across nodes: slower, never lost. */
        ar_log(AR_LOG_WARN, "signal_move_unavailable", AR_LF_INT("errno", errno));
        if (lfd >= 0)
            close(lfd);
        if (ep >= 0)
            close(ep);
        ar_free(mv);
        return AR_ESYS;
    }
    mv->lfd = lfd;
    mv->ep = ep;
    srv->mv = mv;
    return 0;
}

void ar__sig_move_stop(ar__sig_srv_t *srv)
{
    ar__sig_moves_t *mv = srv->mv;
    if (!mv)
        return;
    while (mv->nin)
        drop_in(mv, 0);
    for (size_t i = 0; i < mv->nout; i++)
        close(mv->out[i].fd);
    close(mv->lfd);
    close(mv->ep);
    ar_free(mv);
    srv->mv = NULL;
}

/* Our link to worker (made now when there is none): -1 when it cannot be made now (its
 * listener's queue full, or it is gone). The oldest link goes when all MOVE_LINKS are used. */
static int link_to(ar__sig_srv_t *srv, uint64_t worker)
{
    ar__sig_moves_t *mv = srv->mv;
    for (size_t i = 0; i < mv->nout; i++)
        if (mv->out[i].worker == worker)
            return mv->out[i].fd;
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_un a;
    socklen_t alen = move_addr(srv, worker, &a);
    int one = 1; /* our credentials go with every packet, whatever the receiver's socket says */
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) != 0 ||
        connect(fd, (struct sockaddr *)&a, alen) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    /* Room for more moves waiting on the owner's loop (a packet is charged to the sender's
     * buffer until taken): with every client of a dead node back at once, 17,157 and 25,426
     * moves found the default 212,992 bytes full and went over the bus (docs/performance.md,
     * "Failover at 100,000 calls a node: every client at once"). Best effort: the kernel caps
     * it at net.core.wmem_max. */
    int sndbuf = MOVE_LINK_SNDBUF;
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    if (mv->nout == MOVE_LINKS) {
        close(mv->out[0].fd);
        memmove(mv->out, mv->out + 1, (MOVE_LINKS - 1) * sizeof(mv->out[0]));
        mv->nout--;
    }
    mv->out[mv->nout++] = (move_link_t){worker, fd};
    return fd;
}

static void unlink_to(ar__sig_moves_t *mv, int fd)
{
    for (size_t i = 0; i < mv->nout; i++)
        if (mv->out[i].fd == fd) {
            close(fd);
            mv->out[i] = mv->out[--mv->nout];
            return;
        }
}

/*
 * The worker of this node a resume of r goes to, 0 for none (it stays here): its owner; or,
 * while the owner is a worker of another node, its backup when that is one of ours. Any worker
 * of this node would ask that owner over the bus, and the backup holds the session's buffer and
 * promotes it if that node died. When a node dies its clients come back before its death is
 * declared (the kernel closes their connections at once, the death takes 3 s of silence): moved
 * to the owner only, each resume waited on the worker it reached, and after the promotion took
 * the session over from the promoter on the bus. With every client of a node of 100,000 calls
 * back at once (no bound of the load generator's), that was 110,866 resumes unanswered in time
 * and 65,946 clients not back within 110 s; with the backup, all 100,000 were back in both runs
 * (docs/performance.md, "Failover at 100,000 calls a node: every client at once"). Tried before
 * only while the record named a dead owner, and not kept then: its runs were set by the load
 * generator's own CPU (same document, "the load generator's port search"). With the load
 * generator's bound of 500 a process, two runs of three then failed the relay check after their
 * storm (docs/signal.md, "Not done yet").
 */
uint64_t ar__sig_move_target(ar__sig_srv_t *srv, const ar__sig_rec_t *r)
{
    if (ar__sig_node_here(srv, r->owner))
        return r->owner;
    if (r->owner != srv->node_id && ar__sig_node_here(srv, r->backup))
        return r->backup;
    return 0;
}

int ar__sig_move_resume(ar__sig_conn_t *cn, const char *resume, size_t rlen, const uint8_t *hello,
                        size_t hlen)
{
    ar__sig_srv_t *srv = cn->srv;
    char peer[AR__SIG_PEER_LEN + 1];
    if (!srv->mv || cn->moved_in || rlen != AR__SIG_RESUME_LEN || resume[AR__SIG_PEER_LEN] != '.')
        return 0;
    memcpy(peer, resume, AR__SIG_PEER_LEN);
    peer[AR__SIG_PEER_LEN] = '\0';
    const ar__sig_rec_t *r = ar__sig_rec_find(srv, peer);
    /* A session this worker holds only as its backup moves too (the copy stays a backup); one
     * it holds any other way resumes here, as before (resume.c): a promotion of ours the owner
     * may not know of, a hand-over under way, a copy a client left. */
    const ar__sig_sess_t *s = r ? r->local : NULL;
    if (!r || (s && (!s->is_backup || s->provisional || s->handed)))
        return 0;
    uint64_t to = ar__sig_move_target(srv, r);
    if (!to)
        return 0;
    int fd = ar_sn_conn_movable(cn->c);
    if (fd < 0)
        return 0;
    uint8_t h[AR__SIG_MOVE_HEAD];
    uint16_t tag = ar_sn_conn_tag(cn->c);
    ar__sig_move_head(h, tag && tag <= srv->addrs.nent ? srv->addrs.ent[tag].key : NULL);
    union {
        char b[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } ctl;
    memset(&ctl, 0, sizeof(ctl));
    struct iovec iov[2] = {{h, sizeof(h)}, {(void *)hello, hlen}};
    struct msghdr mh = {
        .msg_iov = iov, .msg_iovlen = 2, .msg_control = ctl.b, .msg_controllen = sizeof(ctl.b)};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof(fd));
    int lfd = link_to(srv, to);
    ssize_t sent = lfd < 0 ? -1 : sendmsg(lfd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (sent < 0 && lfd >= 0 && errno != EAGAIN) {
        /* A link to a worker that went, or one it dropped: once more on a new link. */
        unlink_to(srv->mv, lfd);
        lfd = link_to(srv, to);
        sent = lfd < 0 ? -1 : sendmsg(lfd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
    }
    if (sent < 0) {
        /* The link's buffer full (the owner's loop is behind) or no link: over the bus. */
        ar_log(AR_LOG_DEBUG, "signal_move_not_sent", AR_LF_INT("errno", errno));
        ar_metric_add(srv->m.moved_unsent, 0, 1);
        return 0;
    }
    ar_metric_add(srv->m.moved_out, 0, 1);
    ar_sn_conn_moved(cn->c, CLOSE_MOVED);
    return 1;
}
