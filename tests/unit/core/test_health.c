/* The operator HTTP endpoint over a real loopback socket: routes, caps, timeouts, keep-alive. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "anteroom/health.h"
#include "anteroom/worker.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    uv_loop_t loop;
    uv_async_t stop;
    ar_health_t *h;
    pthread_t thread;
    ar_metrics_t *metrics;
    _Atomic int ready;
} server_t;

static int is_ready(void *data)
{
    return atomic_load(&((server_t *)data)->ready);
}

static void on_stop(uv_async_t *a)
{
    server_t *s = a->data;
    ar_health_stop(s->h);
    uv_close((uv_handle_t *)a, NULL);
}

static void *run(void *arg)
{
    server_t *s = arg;
    uv_run(&s->loop, UV_RUN_DEFAULT);
    return NULL;
}

static void start(server_t *s, ar_health_opts_t *o)
{
    memset(s, 0, sizeof(*s));
    uv_loop_init(&s->loop);
    uv_async_init(&s->loop, &s->stop, on_stop);
    s->stop.data = s;
    s->metrics = ar_metrics_new();
    ar_metric_add(ar_metrics_counter(s->metrics, "ar_test_total", "Test.", NULL), 0, 7);
    o->metrics = s->metrics;
    o->ready = is_ready;
    o->ready_data = s;
    atomic_store(&s->ready, 1);
    assert_int_equal(ar_health_start(&s->loop, o, &s->h), 0);
    assert_true(ar_health_port(s->h) > 0);
    pthread_create(&s->thread, NULL, run, s);
}

static void stop(server_t *s)
{
    uv_async_send(&s->stop);
    pthread_join(s->thread, NULL);
    assert_int_equal(uv_loop_close(&s->loop), 0); /* every handle closed, h freed */
    ar_metrics_free(s->metrics);
}

static int dial(server_t *s)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(ar_health_port(s->h))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {3, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

/* Reads until the peer closes (or `want` bytes arrived); returns the text. */
static char *read_all(int fd, size_t want)
{
    static char buf[16384];
    size_t len = 0;
    while (len < sizeof(buf) - 1 && (want == 0 || len < want)) {
        ssize_t n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    return buf;
}

static char *request(server_t *s, const char *req)
{
    int fd = dial(s);
    assert_int_equal(send(fd, req, strlen(req), 0), (ssize_t)strlen(req));
    char *r = read_all(fd, 0);
    close(fd);
    return r;
}

static void test_routes(void **state)
{
    (void)state;
    server_t s;
    ar_health_opts_t o = {0};
    start(&s, &o);
    assert_string_equal(
        request(&s, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Length: 3\r\nCache-Control: no-store\r\nConnection: close\r\n"
        "\r\nok\n");
    assert_string_equal(request(&s, "GET /metrics?x=1 HTTP/1.0\r\n\r\n"),
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; "
                        "charset=utf-8\r\nContent-Length: 72\r\nCache-Control: no-store\r\n"
                        "Connection: close\r\n\r\n"
                        "# HELP ar_test_total Test.\n# TYPE ar_test_total counter\n"
                        "ar_test_total 7\n");
    char *r = request(&s, "GET /readyz HTTP/1.0\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(r, "\r\n\r\nready\n"));
    atomic_store(&s.ready, 0);
    r = request(&s, "GET /readyz HTTP/1.0\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 503 Service Unavailable\r\n"));
    assert_non_null(strstr(r, "\r\n\r\nnot ready\n"));
    r = request(&s, "HEAD /healthz HTTP/1.0\r\n\r\n");
    assert_non_null(strstr(r, "Content-Length: 3\r\n"));
    assert_non_null(strstr(r, "\r\n\r\n"));
    assert_string_equal(strstr(r, "\r\n\r\n"), "\r\n\r\n"); /* no body after HEAD */
    r = request(&s, "GET /admin HTTP/1.0\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 404 Not Found\r\n"));
    r = request(&s, "POST /metrics HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi");
    assert_non_null(strstr(r, "HTTP/1.1 405 Method Not Allowed\r\n"));
    assert_non_null(strstr(r, "Allow: GET, HEAD\r\n"));
    r = request(&s, "\x16\x03\x01 garbage\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 400 Bad Request\r\n"));
    stop(&s);
}

static int extra_body(void *data, char *out, size_t cap)
{
    const char *body = data;
    size_t n = strlen(body);
    if (n > cap)
        return AR_ETOOBIG;
    memcpy(out, body, n);
    return (int)n;
}

static int extra_fails(void *data, char *out, size_t cap)
{
    (void)data, (void)out, (void)cap;
    return AR_EIO;
}

/* The daemon's extra JSON route (anteroom-turn's /load). */
static void test_extra_route(void **state)
{
    (void)state;
    server_t s;
    ar_health_opts_t o = {.extra_path = "/load", .extra = extra_body, .extra_data = "{\"a\":1}"};
    start(&s, &o);
    char *r = request(&s, "GET /load?x HTTP/1.0\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"));
    assert_non_null(strstr(r, "\r\n\r\n{\"a\":1}"));
    r = request(&s, "GET /loads HTTP/1.0\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 404 Not Found\r\n"));
    r = request(&s, "POST /load HTTP/1.0\r\nContent-Length: 0\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 405 Method Not Allowed\r\n"));
    stop(&s);
    ar_health_opts_t f = {.extra_path = "/load", .extra = extra_fails};
    start(&s, &f);
    r = request(&s, "GET /load HTTP/1.0\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 503 Service Unavailable\r\n"));
    stop(&s);
}

static int actions;

static int count_action(void *data)
{
    (void)data;
    actions++;
    return 0;
}

static int failing_action(void *data)
{
    (void)data;
    return AR_EIO;
}

/* A local address that is not loopback (the first IPv4 one), or 0 when the host has none. */
static uint32_t local_non_loopback(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(9)};
    a.sin_addr.s_addr = htonl(0x0a000001); /* any non-local address: no packet is sent */
    struct sockaddr_in me = {0};
    socklen_t len = sizeof(me);
    uint32_t ip = 0;
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&me, &len) == 0 &&
        (ntohl(me.sin_addr.s_addr) >> 24) != 127)
        ip = me.sin_addr.s_addr;
    close(fd);
    return ip;
}

/* The operator action (anteroom-signal's POST /drain): POST only, loopback only, no Origin. */
static void test_action_route(void **state)
{
    (void)state;
    server_t s;
    ar_health_opts_t o = {.host = "0.0.0.0", .action_path = "/drain", .action = count_action};
    actions = 0;
    start(&s, &o);
    char *r = request(&s, "POST /drain HTTP/1.0\r\nContent-Length: 0\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 202 Accepted\r\n"));
    assert_int_equal(actions, 1);
    r = request(&s, "GET /drain HTTP/1.0\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 405 Method Not Allowed\r\n"));
    assert_non_null(strstr(r, "Allow: POST\r\n"));
    /* A web page in a browser on this host could send this: refused by its Origin. */
    r = request(&s, "POST /drain HTTP/1.1\r\nHost: x\r\nOrIgIn: https://evil.example\r\n"
                    "Content-Length: 0\r\nConnection: close\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 403 Forbidden\r\n"));
    assert_int_equal(actions, 1);
    /* A header merely starting with "origin" is not Origin. */
    r = request(&s, "POST /drain HTTP/1.0\r\nOrigin-X: y\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 202 Accepted\r\n"));
    assert_int_equal(actions, 2);
    r = request(&s, "POST /drains HTTP/1.0\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 404 Not Found\r\n"));
    uint32_t ip = local_non_loopback();
    if (ip) { /* the same host, but from a non-loopback address: refused */
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(ar_health_port(s.h))};
        a.sin_addr.s_addr = ip;
        struct timeval tv = {3, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
        const char *req = "POST /drain HTTP/1.0\r\n\r\n";
        assert_int_equal(send(fd, req, strlen(req), 0), (ssize_t)strlen(req));
        r = read_all(fd, 0);
        close(fd);
        assert_non_null(strstr(r, "HTTP/1.1 403 Forbidden\r\n"));
        assert_int_equal(actions, 2);
    } else {
        print_message("no non-loopback address here: the remote refusal is not exercised\n");
    }
    stop(&s);
    ar_health_opts_t f = {.action_path = "/drain", .action = failing_action};
    start(&s, &f);
    r = request(&s, "POST /drain HTTP/1.0\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 503 Service Unavailable\r\n"));
    stop(&s);
}

static void test_keep_alive_pipelining(void **state)
{
    (void)state;
    server_t s;
    ar_health_opts_t o = {0};
    start(&s, &o);
    int fd = dial(&s);
    const char *two =
        "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(send(fd, two, strlen(two), 0), (ssize_t)strlen(two));
    size_t first = strlen("HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
                          "Content-Length: 3\r\nCache-Control: no-store\r\nConnection: "
                          "keep-alive\r\n\r\nok\n");
    size_t second = strlen("HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n"
                           "Content-Length: 10\r\nCache-Control: no-store\r\nConnection: "
                           "keep-alive\r\n\r\nnot found\n");
    char *r = read_all(fd, first + second);
    assert_int_equal(strlen(r), first + second);
    assert_non_null(strstr(r, "\r\n\r\nok\nHTTP/1.1 404 Not Found\r\n"));
    /* The connection stays open for a third request. */
    const char *third = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    send(fd, third, strlen(third), 0);
    r = read_all(fd, 0);
    assert_non_null(strstr(r, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(r, "Connection: close\r\n"));
    close(fd);
    stop(&s);
}

static void test_caps_and_timeouts(void **state)
{
    (void)state;
    server_t s;
    ar_health_opts_t o = {.max_request = 256, .idle_timeout_ms = 200, .max_conns = 2};
    start(&s, &o);
    /* A request head over the cap. */
    char big[1024];
    memset(big, 'a', sizeof(big));
    memcpy(big, "GET /healthz HTTP/1.1\r\nX-Pad: ", 30);
    big[sizeof(big) - 1] = '\0';
    char *r = request(&s, big);
    assert_non_null(strstr(r, "HTTP/1.1 413 "));
    /* An idle connection is closed after the timeout. */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int idle = dial(&s);
    assert_string_equal(read_all(idle, 0), "");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double waited = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_true(waited >= 0.15 && waited < 2.0);
    close(idle);
    /* Two connections held open; a third is accepted and closed at once. */
    int a = dial(&s), b = dial(&s);
    const char *ka = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    send(a, ka, strlen(ka), 0);
    send(b, ka, strlen(ka), 0);
    assert_non_null(strstr(read_all(a, 120), "200 OK"));
    assert_non_null(strstr(read_all(b, 120), "200 OK"));
    int c = dial(&s);
    send(c, ka, strlen(ka), 0);
    assert_string_equal(read_all(c, 0), "");
    close(a);
    close(b);
    close(c);
    stop(&s);
}

static void test_bind_errors(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    ar_health_t *h;
    ar_health_opts_t o = {.host = "localhost"};
    assert_int_equal(ar_health_start(&loop, &o, &h), AR_EINVAL);
    o.host = "192.0.2.1"; /* TEST-NET: not an address of this machine */
    assert_int_equal(ar_health_start(&loop, &o, &h), AR_EINVAL);
    o.host = "::1";
    if (ar_health_start(&loop, &o, &h) == 0) {
        o.port = ar_health_port(h);
        ar_health_t *h2;
        assert_int_equal(ar_health_start(&loop, &o, &h2), 0); /* SO_REUSEPORT */
        ar_health_stop(h2);
        ar_health_stop(h);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_extra_route),
        cmocka_unit_test(test_action_route),
        cmocka_unit_test(test_keep_alive_pipelining),
        cmocka_unit_test(test_caps_and_timeouts),
        cmocka_unit_test(test_bind_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
