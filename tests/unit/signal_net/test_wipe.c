/*
 * What clients said does not outlive its buffers (src/signal/net/conn.c, wipe_free): an upgrade
 * request, a message assembled from several reads, output queued for a peer that does not read,
 * and the loop's own read and write buffers all carry a marker here; every block the transport
 * gives back to ar_free (wrapped at link time) is searched for it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "anteroom/alloc.h"
#include "internal.h"

#include <arpa/inet.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define MARKER "PATIENT-NAME-7f3a9c"

static atomic_int g_marked, g_big_frees;

void __real_ar_free(void *p);
void __wrap_ar_free(void *p);
void __wrap_ar_free(void *p)
{
    if (p) {
        size_t n = malloc_usable_size(p);
        if (n >= 1024)
            atomic_fetch_add(&g_big_frees, 1);
        if (memmem(p, n, MARKER, sizeof(MARKER) - 1))
            atomic_fetch_add(&g_marked, 1);
    }
    __real_ar_free(p);
}

static const char *const origins[] = {"https://app.example.org"};
static const ar_ws_upgrade_conf_t upconf = {origins, 1, 0, "anteroom.v1"};
static ar_sn_loop_t *g_loop;
static atomic_int g_echoed;
/* Whether the connection still held its ext (src/signal/net/internal.h) when it closed: -1
 * before it closed. Everything in flight was done by then, so an idle plain connection's
 * memory is its struct alone. */
static atomic_int g_ext_at_close = -1;

static void on_close(ar_sn_conn_t *c, uint16_t code, void *data)
{
    (void)code, (void)data;
    atomic_store(&g_ext_at_close, c->ext != NULL);
}

static int on_open(ar_sn_conn_t *c, const ar_ws_upgrade_t *up, void *data)
{
    (void)up, (void)data;
    int small = 4096; /* writes stall early: output is queued */
    setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    return 0;
}

static void on_message(ar_sn_conn_t *c, uint8_t op, const uint8_t *msg, size_t len, void *data)
{
    (void)data;
    if (ar_sn_send(c, op, msg, len) == 0)
        atomic_fetch_add(&g_echoed, 1);
}

static void *run(void *arg)
{
    (void)arg;
    assert_int_equal(ar_sn_loop_run(g_loop), 0);
    return NULL;
}

/* One masked (zero mask) text frame of payload p at f, with fin as given; returns its length. */
static size_t frame(uint8_t *f, uint8_t opcode, int fin, const char *p, size_t len)
{
    size_t h = 0;
    f[h++] = (uint8_t)((fin ? 0x80 : 0) | opcode);
    if (len < 126) {
        f[h++] = (uint8_t)(0x80 | len);
    } else {
        f[h++] = 0x80 | 126;
        f[h++] = (uint8_t)(len >> 8);
        f[h++] = (uint8_t)len;
    }
    memset(f + h, 0, 4);
    h += 4;
    memcpy(f + h, p, len);
    return h + len;
}

static void test_buffers_wiped(void **state)
{
    (void)state;
    ar_sn_conf_t conf = {.upgrade = &upconf, .max_message = 8192, .max_outgoing = 256 * 1024};
    ar_sn_handler_t h = {.open_cb = on_open, .message_cb = on_message, .close_cb = on_close};
    assert_int_equal(ar_sn_loop_new(&conf, &h, &g_loop), 0);
    uint16_t port;
    assert_int_equal(ar_sn_loop_listen(g_loop, "127.0.0.1", 0, &port), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, run, NULL), 0);

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    /* The request in two writes: the first part is kept in the connection's buffer. */
    const char *req1 = "GET /ws HTTP/1.1\r\nHost: x\r\nX-Note: " MARKER "\r\n";
    const char *req2 = "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                       "Sec-WebSocket-Version: 13\r\nOrigin: https://app.example.org\r\n"
                       "Sec-WebSocket-Protocol: anteroom.v1\r\n\r\n";
    assert_int_equal(send(fd, req1, strlen(req1), 0), (ssize_t)strlen(req1));
    usleep(50 * 1000);
    assert_int_equal(send(fd, req2, strlen(req2), 0), (ssize_t)strlen(req2));
    char resp[512];
    ssize_t n = recv(fd, resp, sizeof(resp) - 1, 0);
    assert_true(n > 12);
    resp[n] = 0;
    assert_non_null(strstr(resp, " 101 "));

    /* A message in two fragments sent apart: assembled in the connection's input buffer. */
    char body[3000];
    memset(body, 'x', sizeof(body));
    memcpy(body + 100, MARKER, sizeof(MARKER) - 1);
    uint8_t f[3100];
    size_t fl = frame(f, 1, 0, body, 1500);
    assert_int_equal(send(fd, f, fl, 0), (ssize_t)fl);
    usleep(50 * 1000);
    fl = frame(f, 0, 1, body + 1500, 1500);
    assert_int_equal(send(fd, f, fl, 0), (ssize_t)fl);
    /* Twenty whole messages echoed to a client not reading yet: output is queued. */
    for (int i = 0; i < 20; i++) {
        fl = frame(f, 1, 1, body, sizeof(body));
        assert_int_equal(send(fd, f, fl, 0), (ssize_t)fl);
    }
    /* 60 KB echoed past 8 KB socket buffers: the rest waits in the connection's queue (and
     * the server stops reading meanwhile: backpressure). */
    usleep(200 * 1000);
    /* Now read all 21 echoes: the queue drains and is freed, reading resumes. */
    size_t want = 21 * (4 + sizeof(body)), got = 0;
    static uint8_t sink[128 * 1024];
    while (got < want) {
        n = recv(fd, sink, sizeof(sink), 0);
        assert_true(n > 0);
        got += (size_t)n;
    }
    /* Counted after ar_sn_send returns, which may be after we read what it wrote. */
    for (int i = 0; i < 200 && atomic_load(&g_echoed) < 21; i++)
        usleep(10 * 1000);
    assert_int_equal(atomic_load(&g_echoed), 21);
    close(fd);
    usleep(100 * 1000);
    ar_sn_loop_stop(g_loop);
    pthread_join(t, NULL);
    ar_sn_loop_free(g_loop);
    /* Not vacuous: the request buffer, the assembled message, the queue and the loop went. */
    assert_true(atomic_load(&g_big_frees) >= 4);
    assert_int_equal(atomic_load(&g_marked), 0);
    assert_int_equal(atomic_load(&g_ext_at_close), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buffers_wiped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
