/* Worker threads: SO_REUSEPORT sockets shared by workers, clean stop, signals, init failure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "anteroom/worker.h"

#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

typedef struct {
    int udp_fd[2];
    int tcp_fd[2];
    _Atomic int stopped;
    _Atomic int echoed[2];
    uv_udp_t udp[2];
    uv_tcp_t tcp[2];
} echo_t;

static void on_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    (void)h;
    static _Thread_local char mem[2048];
    (void)size;
    *buf = uv_buf_init(mem, sizeof(mem));
}

static void on_udp(uv_udp_t *u, ssize_t n, const uv_buf_t *buf, const struct sockaddr *from,
                   unsigned flags)
{
    (void)flags;
    if (n <= 0 || from == NULL)
        return;
    ar_worker_t *w = u->data;
    echo_t *e = ar_worker_get_data(w);
    /* Reply with the worker index so the test sees which worker answered. */
    char reply[64];
    reply[0] = (char)('0' + ar_worker_index(w));
    memcpy(reply + 1, buf->base, (size_t)n < 60 ? (size_t)n : 60);
    uv_buf_t b = uv_buf_init(reply, (unsigned)n + 1);
    /* Counted before replying: the client checks the count as soon as the reply arrives. */
    atomic_fetch_add(&e->echoed[ar_worker_index(w)], 1);
    uv_udp_try_send(u, &b, 1, from);
}

static void on_tcp_close(uv_handle_t *h)
{
    free(h);
}

static void on_conn(uv_stream_t *s, int status)
{
    if (status < 0)
        return;
    uv_tcp_t *c = malloc(sizeof(*c));
    uv_tcp_init(s->loop, c);
    if (uv_accept(s, (uv_stream_t *)c) == 0) {
        uv_buf_t b = uv_buf_init("hi", 2);
        uv_try_write((uv_stream_t *)c, &b, 1);
    }
    uv_close((uv_handle_t *)c, on_tcp_close);
}

static echo_t *g_echo;

static int init(ar_worker_t *w, void *data)
{
    echo_t *e = data;
    unsigned i = ar_worker_index(w);
    ar_worker_set_data(w, e);
    uv_loop_t *loop = ar_worker_loop(w);
    uv_udp_init(loop, &e->udp[i]);
    e->udp[i].data = w;
    if (uv_udp_open(&e->udp[i], e->udp_fd[i]) != 0)
        return AR_ESYS;
    uv_udp_recv_start(&e->udp[i], on_alloc, on_udp);
    uv_tcp_init(loop, &e->tcp[i]);
    if (uv_tcp_open(&e->tcp[i], e->tcp_fd[i]) != 0)
        return AR_ESYS;
    return uv_listen((uv_stream_t *)&e->tcp[i], 16, on_conn) == 0 ? 0 : AR_ESYS;
}

static void stop(ar_worker_t *w, void *data)
{
    echo_t *e = data;
    /* Handles left open here are closed by the worker itself; count the calls. */
    (void)w;
    atomic_fetch_add(&e->stopped, 1);
}

static int client(int type, const struct sockaddr *to, socklen_t len)
{
    int fd = socket(to->sa_family, type, 0);
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    assert_int_equal(connect(fd, to, len), 0);
    return fd;
}

static void run_family(const char *host)
{
    echo_t e;
    memset(&e, 0, sizeof(e));
    g_echo = &e;
    struct sockaddr_storage addr;
    assert_int_equal(ar_addr_parse(host, 0, &addr), 0);
    e.udp_fd[0] = ar_listen_socket(SOCK_DGRAM, (struct sockaddr *)&addr, 0);
    assert_true(e.udp_fd[0] >= 0);
    socklen_t len = sizeof(addr);
    getsockname(e.udp_fd[0], (struct sockaddr *)&addr, &len);
    /* The same port again: SO_REUSEPORT lets every worker bind its own socket. */
    e.udp_fd[1] = ar_listen_socket(SOCK_DGRAM, (struct sockaddr *)&addr, 0);
    assert_true(e.udp_fd[1] >= 0);
    /* TCP on a port of its own: the UDP port's number may be taken for TCP by another test. */
    struct sockaddr_storage taddr = addr;
    if (taddr.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&taddr)->sin6_port = 0;
    else
        ((struct sockaddr_in *)&taddr)->sin_port = 0;
    e.tcp_fd[0] = ar_listen_socket(SOCK_STREAM, (struct sockaddr *)&taddr, 16);
    assert_true(e.tcp_fd[0] >= 0);
    len = sizeof(taddr);
    getsockname(e.tcp_fd[0], (struct sockaddr *)&taddr, &len);
    e.tcp_fd[1] = ar_listen_socket(SOCK_STREAM, (struct sockaddr *)&taddr, 16);
    assert_true(e.tcp_fd[1] >= 0);

    ar_workers_t *ws;
    assert_int_equal(ar_workers_start(&ws, 2, init, stop, &e), 0);

    /* Many client sockets: the kernel hashes them over both workers' sockets. */
    for (int i = 0; i < 40; i++) {
        int fd = client(SOCK_DGRAM, (struct sockaddr *)&addr, len);
        assert_int_equal(send(fd, "ping", 4, 0), 4);
        char buf[64];
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        assert_int_equal(n, 5);
        assert_memory_equal(buf + 1, "ping", 4);
        close(fd);
    }
    assert_int_equal(atomic_load(&e.echoed[0]) + atomic_load(&e.echoed[1]), 40);
    assert_true(atomic_load(&e.echoed[0]) > 0 && atomic_load(&e.echoed[1]) > 0);
    for (int i = 0; i < 4; i++) {
        int fd = client(SOCK_STREAM, (struct sockaddr *)&taddr, len);
        char buf[8];
        assert_int_equal(recv(fd, buf, sizeof(buf), 0), 2);
        close(fd);
    }
    ar_workers_stop(ws);
    ar_workers_join(ws);
    assert_int_equal(atomic_load(&e.stopped), 2);
}

static void test_reuseport_ipv4(void **state)
{
    (void)state;
    run_family("127.0.0.1");
}

static void test_reuseport_ipv6(void **state)
{
    (void)state;
    int fd = socket(AF_INET6, SOCK_DGRAM, 0);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    int ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    if (fd >= 0)
        close(fd);
    if (!ok)
        skip(); /* no IPv6 loopback on this machine */
    run_family("[::1]");
}

static void test_addr_and_socket_errors(void **state)
{
    (void)state;
    struct sockaddr_storage a;
    assert_int_equal(ar_addr_parse("localhost", 1, &a), AR_EINVAL);
    assert_int_equal(ar_addr_parse("1.2.3", 1, &a), AR_EINVAL);
    assert_int_equal(ar_addr_parse("::1", 9, &a), 0);
    assert_int_equal(ar_addr_port((struct sockaddr *)&a), 9);
    assert_int_equal(ar_listen_socket(SOCK_RAW, (struct sockaddr *)&a, 0), AR_EINVAL);
    /* A port held without SO_REUSEPORT cannot be shared. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in v4 = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&v4, sizeof(v4)), 0);
    assert_int_equal(listen(fd, 1), 0);
    socklen_t len = sizeof(v4);
    getsockname(fd, (struct sockaddr *)&v4, &len);
    assert_int_equal(ar_listen_socket(SOCK_STREAM, (struct sockaddr *)&v4, 1), AR_EADDRINUSE);
    close(fd);
}

static void test_sigpipe_ignored(void **state)
{
    (void)state;
    ar_ignore_sigpipe();
    struct sigaction sa;
    assert_int_equal(sigaction(SIGPIPE, NULL, &sa), 0);
    assert_true(sa.sa_handler == SIG_IGN);
    /* Writing into a socket whose peer is gone is an error, not the end of the process. */
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    close(sv[1]);
    assert_int_equal(write(sv[0], "x", 1), -1);
    close(sv[0]);
}

static int failing_init(ar_worker_t *w, void *data)
{
    (void)data;
    return ar_worker_index(w) == 2 ? AR_ECONFIG : 0;
}

static void test_init_failure(void **state)
{
    (void)state;
    ar_workers_t *ws = (ar_workers_t *)1;
    assert_int_equal(ar_workers_start(&ws, 4, failing_init, NULL, NULL), AR_ECONFIG);
    assert_null(ws);
    assert_int_equal(ar_workers_start(&ws, 0, failing_init, NULL, NULL), AR_EINVAL);
}

static _Atomic int reloads;

static void on_reload(void *data)
{
    (void)data;
    atomic_fetch_add(&reloads, 1);
}

static int noop_init(ar_worker_t *w, void *data)
{
    (void)w;
    (void)data;
    return 0;
}

static void *signaller(void *arg)
{
    (void)arg;
    usleep(100000);
    kill(getpid(), SIGHUP);
    usleep(100000);
    kill(getpid(), SIGTERM);
    return NULL;
}

static void test_signals(void **state)
{
    (void)state;
    ar_workers_t *ws;
    assert_int_equal(ar_workers_start(&ws, 3, noop_init, NULL, NULL), 0);
    pthread_t t;
    pthread_create(&t, NULL, signaller, NULL);
    assert_int_equal(ar_workers_wait_signals(ws, on_reload, NULL), 0);
    pthread_join(t, NULL);
    assert_int_equal(atomic_load(&reloads), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reuseport_ipv4),         cmocka_unit_test(test_reuseport_ipv6),
        cmocka_unit_test(test_addr_and_socket_errors), cmocka_unit_test(test_sigpipe_ignored),
        cmocka_unit_test(test_init_failure),           cmocka_unit_test(test_signals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
