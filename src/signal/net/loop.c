/*
 * The epoll loop of one worker process: listeners, accept, the timer wheel and deferred frees.
 *
 * Why epoll directly rather than libuv (which the TURN relay uses): a uv_tcp_t is 248 bytes
 * before any state of ours, and libuv wants a read buffer handed out per read callback; here an
 * idle connection is one ar_sn_conn_s (see bench/signal/ for the measured figures) and every
 * connection reads into the loop's one buffer. Level-triggered epoll keeps the code simple: a
 * connection that stops reading (backpressure) just drops EPOLLIN.
 *
 * Timers: every live connection sits in exactly one slot of a 256-slot wheel of one-second slots
 * (handshake, idle, closing and linger deadlines are all shorter than the wheel). Extending a
 * deadline (every read) only stores the new second; the slot, when it comes round, re-files the
 * connection instead of expiring it. So activity costs no list operations.
 */
#include "internal.h"

#include "anteroom/alloc.h"
#include "anteroom/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 256
/* Accepts per listener event, so a connect storm cannot starve established connections. */
#define ACCEPT_BATCH 64
/* Listeners rest this long when the descriptor table is full and the spare is gone too. */
#define ACCEPT_PAUSE_MS 100
/* signal_net_fd_limit is logged at most this often (with the count refused meanwhile). */
#define FD_LOG_MS 1000

/* The coarse clock (the kernel's last tick, a few ms) is plenty for one-second timers and is a
 * plain memory read; the precise one costs about 0.1 us a read on this VM, twice per wake-up. */
static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void wheel_unlink(ar_sn_conn_t *c)
{
    if (!(c->flags & AR__SN_F_INWHEEL))
        return;
    ar_sn_loop_t *l = c->loop;
    if (c->tw_prev)
        c->tw_prev->tw_next = c->tw_next;
    else
        l->wheel[c->deadline_slot] = c->tw_next;
    if (c->tw_next)
        c->tw_next->tw_prev = c->tw_prev;
    c->tw_next = c->tw_prev = NULL;
    c->flags &= (uint8_t)~AR__SN_F_INWHEEL;
}

static void wheel_insert(ar_sn_conn_t *c)
{
    ar_sn_loop_t *l = c->loop;
    uint8_t slot = (uint8_t)(c->deadline % AR__SN_WHEEL);
    c->deadline_slot = slot;
    c->tw_prev = NULL;
    c->tw_next = l->wheel[slot];
    if (c->tw_next)
        c->tw_next->tw_prev = c;
    l->wheel[slot] = c;
    c->flags |= AR__SN_F_INWHEEL;
}

void ar__sn_timer_set(ar_sn_conn_t *c, uint32_t seconds)
{
    uint32_t deadline = c->loop->now + (seconds ? seconds : 1);
    /* Later deadline: refiled lazily when the old slot comes round. Earlier: move now. */
    if ((c->flags & AR__SN_F_INWHEEL) && deadline >= c->deadline) {
        c->deadline = deadline;
        return;
    }
    wheel_unlink(c);
    c->deadline = deadline;
    wheel_insert(c);
}

int ar__sn_epoll_update(ar_sn_conn_t *c)
{
    if (c->state == AR__SN_DEAD)
        return 0;
    /* Queued output pauses reading: a peer that does not read gets nothing more done for it. */
    int want_out = ar__sn_out(c) != NULL || (c->flags & AR__SN_F_WANTW) ||
                   ((c->xflags & AR__SN_X_WRITABLE) && c->state == AR__SN_OPEN);
    int want_in = ar__sn_out(c) == NULL;
    int has_out = (c->flags & AR__SN_F_EPOLLOUT) != 0;
    int has_in = !(c->flags & AR__SN_F_NOREAD);
    if (want_out == has_out && want_in == has_in)
        return 0;
    struct epoll_event ev = {.events = (want_in ? EPOLLIN : 0u) | (want_out ? EPOLLOUT : 0u),
                             .data.ptr = c};
    if (epoll_ctl(c->loop->epfd, EPOLL_CTL_MOD, c->fd, &ev) != 0)
        return AR_ESYS;
    c->flags = (uint8_t)((c->flags & ~(AR__SN_F_EPOLLOUT | AR__SN_F_NOREAD)) |
                         (want_out ? AR__SN_F_EPOLLOUT : 0) | (want_in ? 0 : AR__SN_F_NOREAD));
    return 0;
}

/* What accept_cb counted for c is undone, once (the tag is cleared). */
static void release(ar_sn_conn_t *c)
{
    uint16_t tag = c->tag;
    c->tag = 0;
    if (tag && c->loop->h.release_cb)
        c->loop->h.release_cb(c, tag, c->loop->h.data);
}

void ar__sn_kill(ar_sn_conn_t *c, uint16_t code)
{
    if (c->state == AR__SN_DEAD)
        return;
    ar_sn_loop_t *l = c->loop;
    wheel_unlink(c);
    (void)epoll_ctl(l->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->state = AR__SN_DEAD;
    l->nconns--;
    /* A descriptor is free again: listeners resting from a full table may take it. */
    if (l->accept_paused)
        l->accept_resume_ms = 0;
    /* Freed after the current epoll batch: events already fetched may still name it, and the
     * caller may be inside this connection's own callback. */
    c->tw_next = l->dead;
    l->dead = c;
    if (c->flags & AR__SN_F_OPENED) {
        c->flags = (uint8_t)((c->flags & ~AR__SN_F_OPENED) | AR__SN_F_FREECB);
        if (l->h.close_cb)
            l->h.close_cb(c, code, l->h.data);
    }
    release(c);
}

/* Frees the connections closed during this batch. free_cb may send to other connections and
 * close them: they join the list (at its head) and are freed in this same sweep. */
static void sweep(ar_sn_loop_t *l)
{
    while (l->dead) {
        ar_sn_conn_t *c = l->dead;
        l->dead = c->tw_next;
        if ((c->flags & AR__SN_F_FREECB) && l->h.free_cb) {
            c->flags &= (uint8_t)~AR__SN_F_FREECB;
            l->h.free_cb(c, l->h.data);
        }
        ar__sn_conn_free(c);
    }
}

int ar_sn_loop_new(const ar_sn_conf_t *conf, const ar_sn_handler_t *handler, ar_sn_loop_t **out)
{
    *out = NULL;
    if (!conf || !handler || !conf->upgrade || conf->idle_timeout_s >= AR__SN_WHEEL - 10 ||
        conf->handshake_timeout_s >= AR__SN_WHEEL - 10 || conf->conn_area > 1024)
        return AR_EINVAL;
    ar_sn_loop_t *l = ar_calloc(1, sizeof(*l));
    if (!l)
        return AR_ENOMEM;
    l->conf = *conf;
    if (!l->conf.max_message)
        l->conf.max_message = 64 * 1024;
    ar_ws_parser_init(&l->parser0, 1, l->conf.max_message);
    if (!l->conf.max_outgoing)
        l->conf.max_outgoing = 256 * 1024;
    if (!l->conf.handshake_timeout_s)
        l->conf.handshake_timeout_s = 10;
    if (!l->conf.idle_timeout_s)
        l->conf.idle_timeout_s = 60;
    if (l->conf.conn_area < sizeof(void *))
        l->conf.conn_area = sizeof(void *);
    l->h = *handler;
    l->start_ms = l->now_ms = mono_ms();
    l->stopfd = -1;
    /* Kept for the day the descriptor table is full (fd_exhausted); without it (the table is
     * already full) the listeners rest instead. */
    l->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd >= 0)
        l->stopfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &l->stopfd};
    if (l->epfd < 0 || l->stopfd < 0 || epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->stopfd, &ev) != 0) {
        ar_sn_loop_free(l);
        return AR_ESYS;
    }
    *out = l;
    return 0;
}

int ar_sn_loop_listen(ar_sn_loop_t *l, const char *ip, uint16_t port, uint16_t *bound)
{
    if (l->nlisten == AR__SN_MAX_LISTEN)
        return AR_ERANGE;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t slen;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, ip, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(port);
        slen = sizeof(*a4);
    } else if (inet_pton(AF_INET6, ip, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(port);
        slen = sizeof(*a6);
    } else {
        return AR_EINVAL;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return AR_ESYS;
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
        bind(fd, (struct sockaddr *)&ss, slen) != 0) {
        int e = errno;
        close(fd);
        return e == EADDRINUSE ? AR_EADDRINUSE : AR_ESYS;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &l->listen_fd[l->nlisten]};
    if (listen(fd, 4096) != 0 || epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        close(fd);
        return AR_ESYS;
    }
    if (bound) {
        slen = sizeof(ss);
        if (getsockname(fd, (struct sockaddr *)&ss, &slen) == 0)
            *bound = ntohs(ss.ss_family == AF_INET ? a4->sin_port : a6->sin6_port);
    }
    l->listen_fd[l->nlisten++] = fd;
    return 0;
}

static void listeners_arm(ar_sn_loop_t *l, uint32_t events)
{
    for (int i = 0; i < l->nlisten; i++) {
        struct epoll_event ev = {.events = events, .data.ptr = &l->listen_fd[i]};
        (void)epoll_ctl(l->epfd, EPOLL_CTL_MOD, l->listen_fd[i], &ev);
    }
}

/*
 * accept4 failed with EMFILE or ENFILE. The connection stays in the listener's queue, and the
 * listener is level-triggered: returning as if nothing happened makes epoll_wait report it again
 * at once, forever (a worker spinning at full CPU and logging each turn). So the connection is
 * taken off the queue: the spare descriptor is given up, the connection accepted into its slot
 * and closed at once (the client sees a closed connection and may try another node), and the
 * spare taken again. When that fails too (another thread took the slot, or the system table is
 * full), the listeners rest for ACCEPT_PAUSE_MS, or until a connection of ours closes.
 * Returns 1 when a connection was taken off the queue this way (the caller goes on accepting).
 */
static int fd_exhausted(ar_sn_loop_t *l, int lfd)
{
    int taken = 0;
    if (l->spare_fd >= 0) {
        close(l->spare_fd);
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0) {
            close(fd);
            taken = 1;
        }
        int again = fd < 0 && errno == EAGAIN;
        l->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (again)
            return 0; /* the queue is empty: nothing to refuse, nothing to log */
    }
    if (!taken && !l->accept_paused) {
        listeners_arm(l, 0);
        l->accept_paused = 1;
        l->accept_resume_ms = l->now_ms + ACCEPT_PAUSE_MS;
    }
    l->fd_refused++;
    if (!l->fd_log_ms || l->now_ms - l->fd_log_ms >= FD_LOG_MS) {
        ar_log(AR_LOG_WARN, "signal_net_fd_limit", AR_LF_UINT("refused", l->fd_refused),
               AR_LF_UINT("conns", l->nconns));
        l->fd_log_ms = l->now_ms ? l->now_ms : 1;
        l->fd_refused = 0;
    }
    return taken;
}

/* c, made for fd (its tag counted), on the loop with a timeout of `seconds`; or, when err or the
 * loop refuses fd, closed, its tag released and freed: 0, err, or AR_ESYS. */
static int watch_new(ar_sn_conn_t *c, int err, uint32_t seconds)
{
    ar_sn_loop_t *l = c->loop;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (err || epoll_ctl(l->epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        close(c->fd);
        c->fd = -1;
        release(c);
        ar__sn_conn_free(c);
        return err ? err : AR_ESYS;
    }
    l->nconns++;
    ar__sn_timer_set(c, seconds);
    return 0;
}

/* fd, connected, becomes a connection in its handshake (TLS or the upgrade), or is closed: 0,
 * AR_EPERM (accept_cb refused it), AR_ENOMEM, or AR_ESYS / the TLS library's error. */
static int take(ar_sn_loop_t *l, int fd, const struct sockaddr_storage *ss)
{
    ar_sn_conn_t *c = ar_calloc(1, sizeof(*c) + l->conf.conn_area);
    if (!c) {
        close(fd);
        return AR_ENOMEM;
    }
    c->fd = fd;
    c->loop = l;
    if (l->h.accept_cb) {
        int tag = l->h.accept_cb(c, ss, l->h.data);
        if (tag < 0) {
            /* Refused (a per-address cap): before any state or memory of the handshake. */
            close(fd);
            ar_free(c);
            return AR_EPERM;
        }
        c->tag = (uint16_t)tag;
    }
    c->state = l->conf.tls ? AR__SN_TLS_HS : AR__SN_HTTP;
    int err = 0;
    if (l->conf.tls) {
        void *tls = NULL;
        err = l->conf.tls->ops->conn_new(l->conf.tls->ctx, fd, &tls);
        ar__sn_ext_t *x = err ? NULL : ar__sn_ext(c);
        if (x) {
            x->tls = tls;
        } else if (!err) {
            l->conf.tls->ops->conn_free(tls);
            err = AR_ENOMEM;
        }
    }
    return watch_new(c, err, l->conf.handshake_timeout_s);
}

static void accept_some(ar_sn_loop_t *l, int lfd)
{
    for (int i = 0; i < ACCEPT_BATCH && !l->accept_paused; i++) {
        struct sockaddr_storage ss;
        socklen_t slen = sizeof(ss);
        int fd = accept4(lfd, (struct sockaddr *)&ss, &slen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if ((errno == EMFILE || errno == ENFILE) && fd_exhausted(l, lfd))
                continue;
            return;
        }
        int one = 1;
        /* Signalling messages are small and latency-bound: no Nagle delay. */
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        (void)take(l, fd, &ss);
    }
}

int ar_sn_loop_adopt(ar_sn_loop_t *l, int fd)
{
    struct sockaddr_storage ss;
    socklen_t slen = sizeof(ss);
    memset(&ss, 0, sizeof(ss));
    if (getpeername(fd, (struct sockaddr *)&ss, &slen) != 0)
        ss.ss_family = AF_UNSPEC;
    return take(l, fd, &ss);
}

int ar_sn_loop_adopt_open(ar_sn_loop_t *l, int fd, uint16_t tag, const uint8_t *msg, size_t len)
{
    ar_sn_conn_t *c = ar_calloc(1, sizeof(*c) + l->conf.conn_area);
    if (!c) {
        close(fd);
        if (tag && l->h.release_cb)
            l->h.release_cb(NULL, tag, l->h.data);
        return AR_ENOMEM;
    }
    c->fd = fd;
    c->loop = l;
    c->tag = tag; /* released with the socket, as accept_cb's */
    /* Plain only: a TLS connection's state cannot follow its descriptor (ar_sn_conn_movable). */
    c->state = AR__SN_OPEN;
    int err = watch_new(c, 0, l->conf.idle_timeout_s);
    if (err)
        return err;
    c->flags |= AR__SN_F_OPENED;
    /* An upgrade that names nothing: the one that opened it was checked where it arrived. */
    static const ar_ws_upgrade_t none = {.status = 101, .path = "/", .path_len = 1};
    if (l->h.open_cb && l->h.open_cb(c, &none, l->h.data) != 0)
        ar_sn_close(c, AR_WS_CLOSE_POLICY);
    l->msg_rest = 0;
    if (c->state == AR__SN_OPEN && len && l->h.message_cb)
        l->h.message_cb(c, AR_WS_OP_TEXT, msg, len, l->h.data);
    return 0;
}

int ar_sn_loop_turn(ar_sn_loop_t *l)
{
    ar_sn_loop_stop(l); /* the stop is seen at once: no wait, one batch of what is ready */
    return ar_sn_loop_run(l);
}

static void run_wheel(ar_sn_loop_t *l)
{
    while (l->wheel_pos <= l->now) {
        uint32_t slot = l->wheel_pos % AR__SN_WHEEL;
        /* Pop one at a time: a timeout may re-arm or kill connections of this same slot. */
        while (l->wheel[slot]) {
            ar_sn_conn_t *c = l->wheel[slot];
            wheel_unlink(c);
            if (c->deadline <= l->now)
                ar__sn_conn_timeout(c);
            else
                wheel_insert(c);
        }
        l->wheel_pos++;
    }
}

int ar_sn_loop_run(ar_sn_loop_t *l)
{
    struct epoll_event evs[MAX_EVENTS];
    l->stop = 0;
    while (!l->stop) {
        uint64_t elapsed = mono_ms() - l->start_ms;
        int timeout = (int)(1000 - elapsed % 1000);
        if (l->idle_cb) {
            int t = l->idle_cb(l->idle_data);
            if (t >= 0 && t < timeout)
                timeout = t;
        }
        if (l->accept_paused) {
            uint64_t now = mono_ms();
            int t = l->accept_resume_ms > now ? (int)(l->accept_resume_ms - now) : 0;
            if (t < timeout)
                timeout = t;
        }
        int n = ar__sn_epoll_wait(l->epfd, evs, MAX_EVENTS, timeout);
        if (n < 0 && errno != EINTR)
            return AR_ESYS;
        l->now_ms = mono_ms();
        if (l->accept_paused && l->now_ms >= l->accept_resume_ms) {
            l->accept_paused = 0;
            if (l->spare_fd < 0)
                l->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
            listeners_arm(l, EPOLLIN);
        }
        l->now = (uint32_t)((l->now_ms - l->start_ms) / 1000);
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == &l->stopfd) {
                l->stop = 1;
            } else if (p >= (void *)&l->watch[0] && p < (void *)&l->watch[AR__SN_MAX_LISTEN]) {
                int w = (int)(((char *)p - (char *)&l->watch[0]) / (ptrdiff_t)sizeof(l->watch[0]));
                l->watch[w].cb(l->watch[w].fd, l->watch[w].data);
            } else if (p >= (void *)&l->listen_fd[0] &&
                       p < (void *)&l->listen_fd[AR__SN_MAX_LISTEN]) {
                accept_some(l, *(int *)p);
            } else {
                ar__sn_conn_event(p, evs[i].events);
            }
        }
        run_wheel(l);
        if (l->tick_cb && l->now != l->last_tick) {
            l->last_tick = l->now;
            l->tick_cb(l->now, l->tick_data);
        }
        sweep(l);
    }
    uint64_t v;
    (void)!read(l->stopfd, &v, sizeof(v));
    if (l->conf.tls)
        l->conf.tls->ops->thread_end();
    return 0;
}

int ar_sn_loop_watch(ar_sn_loop_t *l, int fd, ar_sn_watch_cb cb, void *data)
{
    if (l->nwatch == AR__SN_MAX_LISTEN || !cb)
        return l->nwatch == AR__SN_MAX_LISTEN ? AR_ERANGE : AR_EINVAL;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &l->watch[l->nwatch]};
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
        return AR_ESYS;
    l->watch[l->nwatch].fd = fd;
    l->watch[l->nwatch].cb = cb;
    l->watch[l->nwatch].data = data;
    l->nwatch++;
    return 0;
}

void ar_sn_loop_set_idle(ar_sn_loop_t *l, int (*cb)(void *data), void *data)
{
    l->idle_cb = cb;
    l->idle_data = data;
}

void ar_sn_loop_set_tick(ar_sn_loop_t *l, void (*cb)(uint32_t now_s, void *data), void *data)
{
    l->tick_cb = cb;
    l->tick_data = data;
}

uint32_t ar_sn_loop_now(const ar_sn_loop_t *l)
{
    return l->now;
}

uint64_t ar_sn_loop_now_ms(const ar_sn_loop_t *l)
{
    return l->now_ms;
}

void ar_sn_loop_stop(ar_sn_loop_t *l)
{
    uint64_t one = 1;
    (void)!write(l->stopfd, &one, sizeof(one));
}

size_t ar_sn_loop_conns(const ar_sn_loop_t *l)
{
    return l->nconns;
}

void ar_sn_loop_free(ar_sn_loop_t *l)
{
    if (!l)
        return;
    for (size_t s = 0; s < AR__SN_WHEEL; s++)
        while (l->wheel[s])
            ar__sn_kill(l->wheel[s], AR_WS_CLOSE_GOING_AWAY);
    sweep(l);
    for (int i = 0; i < l->nlisten; i++)
        close(l->listen_fd[i]);
    if (l->stopfd >= 0)
        close(l->stopfd);
    if (l->spare_fd >= 0)
        close(l->spare_fd);
    if (l->epfd >= 0)
        close(l->epfd);
    /* The last messages read and framed are still in the shared buffers (conn.c, wipe_free). */
    explicit_bzero(l->rbuf, sizeof(l->rbuf));
    explicit_bzero(l->wbuf, sizeof(l->wbuf));
    ar_free(l);
}
