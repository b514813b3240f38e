/*
 * Worker threads with one libuv loop each. The only cross-thread traffic is the stop request,
 * carried by a uv_async_t per worker; everything else a worker touches was made on its thread.
 */
#include "anteroom/worker.h"

#include "anteroom/alloc.h"
#include "anteroom/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

struct ar_worker_s {
    ar_workers_t *set;
    unsigned index;
    uv_loop_t loop;
    uv_async_t stop_async;
    uv_thread_t thread;
    int started;
    void *data;
};

struct ar_workers_s {
    unsigned n;
    ar_worker_init_cb init;
    ar_worker_stop_cb stop;
    void *data;
    /* Start-up handshake: the main thread waits until every worker has run its init. */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned ready;
    int init_rc;
    /*
     * Set by the first stop request. A worker's loop ends only after its stop async fired, so
     * the one round of sends always reaches live handles; a second round could write to the
     * wake-up descriptor of a loop already closed, which libuv treats as fatal.
     */
    atomic_int stop_requested;
    ar_worker_t workers[];
};

uv_loop_t *ar_worker_loop(ar_worker_t *w)
{
    return &w->loop;
}

unsigned ar_worker_index(const ar_worker_t *w)
{
    return w->index;
}

void ar_worker_set_data(ar_worker_t *w, void *data)
{
    w->data = data;
}

void *ar_worker_get_data(const ar_worker_t *w)
{
    return w->data;
}

static void close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void on_stop(uv_async_t *a)
{
    ar_worker_t *w = a->data;
    if (w->set->stop != NULL)
        w->set->stop(w, w->set->data);
    /* Whatever the daemon left open is closed so the loop can end; its memory is its owner's. */
    uv_walk(&w->loop, close_any, NULL);
}

static void worker_main(void *arg)
{
    ar_worker_t *w = arg;
    ar_workers_t *ws = w->set;
    int rc = w->set->init(w, w->set->data);
    pthread_mutex_lock(&ws->lock);
    if (rc < 0 && ws->init_rc == 0)
        ws->init_rc = rc;
    ws->ready++;
    pthread_cond_broadcast(&ws->cond);
    pthread_mutex_unlock(&ws->lock);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    /* A handle closed after the walk (by a close callback) still needs a turn of the loop. */
    while (uv_loop_close(&w->loop) == UV_EBUSY) {
        uv_walk(&w->loop, close_any, NULL);
        uv_run(&w->loop, UV_RUN_DEFAULT);
    }
}

/* SIGINT, SIGTERM and SIGHUP are blocked while workers start, so the threads inherit the mask
 * (the main thread alone receives them) and one that arrives while listeners open waits for
 * ar_workers_wait_signals' handlers instead of killing the process with the default action. */
static void block_stop_signals(int how)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(how, &set, NULL);
}

int ar_workers_start(ar_workers_t **out, unsigned n, ar_worker_init_cb init, ar_worker_stop_cb stop,
                     void *data)
{
    *out = NULL;
    if (n == 0 || n > AR_WORKERS_MAX || init == NULL)
        return AR_EINVAL;
    ar_ignore_sigpipe();
    block_stop_signals(SIG_BLOCK);
    ar_workers_t *ws = ar_calloc(1, sizeof(*ws) + n * sizeof(ar_worker_t));
    if (ws == NULL) {
        block_stop_signals(SIG_UNBLOCK);
        return AR_ENOMEM;
    }
    ws->n = n;
    ws->init = init;
    ws->stop = stop;
    ws->data = data;
    pthread_mutex_init(&ws->lock, NULL);
    pthread_cond_init(&ws->cond, NULL);
    int rc = 0;
    unsigned started = 0;
    for (unsigned i = 0; i < n && rc == 0; i++) {
        ar_worker_t *w = &ws->workers[i];
        w->set = ws;
        w->index = i;
        if (uv_loop_init(&w->loop) != 0) {
            rc = AR_ESYS;
            break;
        }
        if (uv_async_init(&w->loop, &w->stop_async, on_stop) != 0) {
            uv_loop_close(&w->loop);
            rc = AR_ESYS;
            break;
        }
        w->stop_async.data = w;
        if (uv_thread_create(&w->thread, worker_main, w) != 0) {
            uv_close((uv_handle_t *)&w->stop_async, NULL);
            uv_run(&w->loop, UV_RUN_DEFAULT);
            uv_loop_close(&w->loop);
            rc = AR_ESYS;
            break;
        }
        w->started = 1;
        started++;
    }
    pthread_mutex_lock(&ws->lock);
    while (ws->ready < started)
        pthread_cond_wait(&ws->cond, &ws->lock);
    if (rc == 0)
        rc = ws->init_rc;
    pthread_mutex_unlock(&ws->lock);
    if (rc < 0) {
        ar_workers_stop(ws);
        ar_workers_join(ws);
        block_stop_signals(SIG_UNBLOCK);
        return rc;
    }
    *out = ws;
    return 0;
}

void ar_workers_stop(ar_workers_t *ws)
{
    if (ws == NULL || atomic_exchange(&ws->stop_requested, 1) != 0)
        return;
    for (unsigned i = 0; i < ws->n; i++) {
        if (ws->workers[i].started)
            uv_async_send(&ws->workers[i].stop_async);
    }
}

void ar_workers_join(ar_workers_t *ws)
{
    if (ws == NULL)
        return;
    for (unsigned i = 0; i < ws->n; i++) {
        if (ws->workers[i].started)
            uv_thread_join(&ws->workers[i].thread);
    }
    pthread_cond_destroy(&ws->cond);
    pthread_mutex_destroy(&ws->lock);
    ar_free(ws);
}

typedef struct {
    uv_signal_t sigint, sigterm, sighup;
    ar_workers_t *ws;
    ar_reload_cb reload;
    void *data;
} sigctx_t;

static void on_signal(uv_signal_t *s, int signum)
{
    sigctx_t *c = s->data;
    if (signum == SIGHUP) {
        ar_log(AR_LOG_INFO, "reload", AR_LF_KW("signal", "SIGHUP"));
        if (c->reload != NULL)
            c->reload(c->data);
        return;
    }
    ar_log(AR_LOG_INFO, "stopping", AR_LF_INT("signal", signum));
    ar_workers_stop(c->ws);
    uv_close((uv_handle_t *)&c->sigint, NULL);
    uv_close((uv_handle_t *)&c->sigterm, NULL);
    uv_close((uv_handle_t *)&c->sighup, NULL);
}

int ar_workers_wait_signals(ar_workers_t *ws, ar_reload_cb reload, void *data)
{
    uv_loop_t loop;
    sigctx_t c = {.ws = ws, .reload = reload, .data = data};
    int rc = 0;
    if (uv_loop_init(&loop) != 0) {
        rc = AR_ESYS;
        goto out;
    }
    uv_signal_t *sigs[] = {&c.sigint, &c.sigterm, &c.sighup};
    const int nums[] = {SIGINT, SIGTERM, SIGHUP};
    for (int i = 0; i < 3; i++) {
        uv_signal_init(&loop, sigs[i]);
        sigs[i]->data = &c;
        if (uv_signal_start(sigs[i], on_signal, nums[i]) != 0)
            rc = AR_ESYS;
    }
    if (rc == 0) {
        /* Blocked since ar_workers_start: with the handlers in place, take any that arrived
         * meanwhile. */
        block_stop_signals(SIG_UNBLOCK);
        uv_run(&loop, UV_RUN_DEFAULT);
    } else {
        for (int i = 0; i < 3; i++)
            uv_close((uv_handle_t *)sigs[i], NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    uv_loop_close(&loop);
out:
    ar_workers_stop(ws);
    ar_workers_join(ws);
    return rc;
}

static void ignore_sigpipe_once(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPIPE, &sa, NULL);
}

void ar_ignore_sigpipe(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, ignore_sigpipe_once);
}

int ar_listen_socket(int type, const struct sockaddr *addr, int backlog)
{
    if (addr == NULL || (type != SOCK_DGRAM && type != SOCK_STREAM) ||
        (addr->sa_family != AF_INET && addr->sa_family != AF_INET6))
        return AR_EINVAL;
    socklen_t len =
        addr->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    int fd = socket(addr->sa_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return AR_ESYS;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
        (addr->sa_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0))
        goto fail;
    if (bind(fd, addr, len) != 0)
        goto fail;
    if (type == SOCK_STREAM && listen(fd, backlog > 0 ? backlog : 511) != 0)
        goto fail;
    return fd;
fail:;
    int e = errno;
    close(fd);
    return e == EADDRINUSE ? AR_EADDRINUSE : e == EADDRNOTAVAIL ? AR_EINVAL : AR_ESYS;
}

int ar_port_unclaimed(int type, const struct sockaddr *addr, const char *prog)
{
    if (addr == NULL || (type != SOCK_DGRAM && type != SOCK_STREAM) ||
        (addr->sa_family != AF_INET && addr->sa_family != AF_INET6))
        return AR_EINVAL;
    socklen_t len =
        addr->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    int fd = socket(addr->sa_family, type | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return AR_ESYS;
    int one = 1;
    int rc = 0;
    if ((type == SOCK_STREAM && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) ||
        (addr->sa_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0))
        rc = AR_ESYS;
    else if (bind(fd, addr, len) != 0)
        rc = errno == EADDRINUSE ? AR_EADDRINUSE : errno == EADDRNOTAVAIL ? AR_EINVAL : AR_ESYS;
    close(fd);
    if (rc == AR_EADDRINUSE) {
        uint16_t port = ar_addr_port(addr);
        ar_log(AR_LOG_ERROR, "port_in_use", AR_LF_INT("udp", type == SOCK_DGRAM),
               AR_LF_ADDR("addr", addr), AR_LF_UINT("port", port));
        fprintf(stderr, "%s: %s port %u is in use by another process\n", prog,
                type == SOCK_DGRAM ? "UDP" : "TCP", (unsigned)port);
    }
    return rc;
}

int ar_addr_parse(const char *host, uint16_t port, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof(*out));
    if (host == NULL)
        return AR_EINVAL;
    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        return 0;
    }
    /* Accept "[::1]" as well as "::1": operators copy addresses from URLs. */
    char tmp[INET6_ADDRSTRLEN + 2];
    size_t n = strlen(host);
    if (n >= 2 && n < sizeof(tmp) && host[0] == '[' && host[n - 1] == ']') {
        memcpy(tmp, host + 1, n - 2);
        tmp[n - 2] = '\0';
        host = tmp;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        return 0;
    }
    return AR_EINVAL;
}

void ar_addr_set_port(struct sockaddr_storage *ss, uint16_t port)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)(void *)ss)->sin_port = htons(port);
    else if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)(void *)ss)->sin6_port = htons(port);
}

uint16_t ar_addr_port(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    if (sa->sa_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return 0;
}
