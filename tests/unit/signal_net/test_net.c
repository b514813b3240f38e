/*
 * The signalling transport over loopback: an echo server on ar_signal_net runs its loop in a
 * thread; the test is a blocking client speaking raw WebSocket. Covers the upgrade and its
 * refusals, echo of whole, split and fragmented messages, ping/pong, the close handshake, each
 * protocol error's close code, handshake and idle timeouts, a slow reader being dropped at its
 * output cap while a writer that paces itself by the writable callback is not, and the same echo
 * over TLS on each library built (OpenSSL; wolfSSL and BoringSSL when installed; the build's
 * AR_SN_TLS_DEFAULT must be there), with a client that does not speak TLS and allocation
 * failures on the TLS path.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "anteroom/alloc.h"
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static const char *const origins[] = {"https://app.example.org"};
static const ar_ws_upgrade_conf_t upconf = {origins, 1, 0, "anteroom.v1"};

typedef struct server_s {
    ar_sn_loop_t *loop;
    pthread_t thread;
    uint16_t port;
    atomic_int opened, closed, last_code, send_err, freed;
    /* the "die" message: close_cb fired inside its send, and what the connection did after */
    atomic_int die_closed, die_freed, die_again, die_data;
    /* "paced": messages still to send as the connection drains, writable_cb calls, and the
     * most output ever queued */
    atomic_int paced_left, paced_sent, writables, max_queued;
    /* test_conn_area: the loop's conn_area, and what each connection's area held when it opened
     * (1: zeroed) and when it was freed (1: still what on_open wrote) */
    uint16_t area;
    atomic_int area_zeroed, area_kept;
} server_t;

static server_t srv;

/* What test_conn_area's connections write in their area: byte i is i + 1. */
static int area_holds_pattern(ar_sn_conn_t *c)
{
    const uint8_t *a = ar_sn_conn_area(c);
    for (size_t i = 0; i < srv.area; i++)
        if (a[i] != (uint8_t)(i + 1))
            return 0;
    return ar_sn_conn_area_size(c) == srv.area;
}

static int on_open(ar_sn_conn_t *c, const ar_ws_upgrade_t *up, void *data)
{
    (void)data;
    atomic_fetch_add(&srv.opened, 1);
    if (srv.area) {
        uint8_t *a = ar_sn_conn_area(c);
        int zeroed = 1;
        for (size_t i = 0; i < srv.area; i++) {
            zeroed &= a[i] == 0;
            a[i] = (uint8_t)(i + 1);
        }
        atomic_store(&srv.area_zeroed, zeroed);
    }
    if (strcmp(up->path, "/dead") == 0) /* every write fails: the first send kills it */
        (void)shutdown(c->fd, SHUT_WR);
    if (strcmp(up->path, "/small") == 0) { /* a small send buffer: writes stall early */
        int small = 4096;
        setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    }
    return strcmp(up->path, "/refuse") == 0 ? -1 : 0;
}

/* Sends n binary messages of size bytes each, message k filled with (i * 7 + k): the reader
 * checks every byte and the order. The first failed send is kept in srv.send_err. */
static void send_pattern(ar_sn_conn_t *c, int n, size_t size)
{
    static uint8_t m[20 * 1024];
    for (int k = 0; k < n; k++) {
        for (size_t i = 0; i < size; i++)
            m[i] = (uint8_t)(i * 7 + (size_t)k);
        int err = ar_sn_send(c, AR_WS_OP_BINARY, m, size);
        if (err) {
            atomic_store(&srv.send_err, err);
            return;
        }
    }
}

/* "rburst": messages of ROOM_SIZES' sizes, each built behind AR_SN_SEND_ROOM bytes of room and
 * sent with ar_sn_send_room (every header length: 2, 4 and 10 bytes), filled as send_pattern's;
 * then the opcodes and lengths it refuses, which leave the connection open. */
static const size_t room_sizes[] = {0, 1, 125, 126, 1500, 2100, 65536};
static void send_room(ar_sn_conn_t *c)
{
    static uint8_t m[AR_SN_SEND_ROOM + 65536];
    for (int k = 0; k < (int)(sizeof(room_sizes) / sizeof(room_sizes[0])); k++) {
        memset(m, 0xee, AR_SN_SEND_ROOM);
        for (size_t i = 0; i < room_sizes[k]; i++)
            m[AR_SN_SEND_ROOM + i] = (uint8_t)(i * 7 + (size_t)k);
        int err = ar_sn_send_room(c, AR_WS_OP_BINARY, m, room_sizes[k]);
        if (err) {
            atomic_store(&srv.send_err, err);
            return;
        }
    }
    if (ar_sn_send_room(c, AR_WS_OP_CLOSE, m, 2) != AR_EINVAL ||
        ar_sn_send_room(c, AR_WS_OP_PING, m, AR_WS_MAX_CONTROL + 1) != AR_ETOOBIG)
        atomic_store(&srv.send_err, AR_EINVAL);
}

/* "paced": PACED_MSGS messages of PACED_SIZE bytes, 32 MiB in all, far past max_outgoing, sent
 * only while less than PACED_LOW is queued; the rest from writable_cb. Message k is filled
 * as send_pattern's. */
#define PACED_MSGS 2048
#define PACED_SIZE (16 * 1024)
#define PACED_LOW (32 * 1024)
static void pace(ar_sn_conn_t *c)
{
    static uint8_t m[PACED_SIZE];
    while (atomic_load(&srv.paced_left) > 0 && ar_sn_conn_outgoing(c) < PACED_LOW) {
        int k = atomic_load(&srv.paced_sent);
        for (size_t i = 0; i < sizeof(m); i++)
            m[i] = (uint8_t)(i * 7 + (size_t)k);
        int err = ar_sn_send(c, AR_WS_OP_BINARY, m, sizeof(m));
        if (err) {
            atomic_store(&srv.send_err, err);
            return;
        }
        atomic_fetch_add(&srv.paced_sent, 1);
        atomic_fetch_sub(&srv.paced_left, 1);
        int q = (int)ar_sn_conn_outgoing(c);
        if (q > atomic_load(&srv.max_queued))
            atomic_store(&srv.max_queued, q);
    }
    if (atomic_load(&srv.paced_left) > 0) {
        int err = ar_sn_conn_notify_writable(c);
        if (err)
            atomic_store(&srv.send_err, err);
    }
}

static void on_writable(ar_sn_conn_t *c, void *data)
{
    (void)data;
    atomic_fetch_add(&srv.writables, 1);
    /* Called only once everything queued was written. */
    if (ar_sn_conn_outgoing(c) != 0)
        atomic_store(&srv.send_err, AR_EINVAL);
    pace(c);
}

static void on_message(ar_sn_conn_t *c, uint8_t op, const uint8_t *msg, size_t len, void *data)
{
    (void)data;
    if (len == 5 && memcmp(msg, "paced", 5) == 0) {
        atomic_store(&srv.paced_left, PACED_MSGS);
        pace(c);
        return;
    }
    if (len == 5 && memcmp(msg, "burst", 5) == 0) {
        /* 100 KiB in five messages of a known pattern, records and partial writes on TLS. */
        send_pattern(c, 5, 20 * 1024);
        return;
    }
    if (len == 6 && memcmp(msg, "rburst", 6) == 0) {
        send_room(c);
        return;
    }
    if (len == 6 && memcmp(msg, "sburst", 6) == 0) { /* 70 small frames, for test_small_partial */
        send_pattern(c, 70, 1500);
        return;
    }
    if (len == 4 && memcmp(msg, "held", 4) == 0) {
        /* What this plain connection holds beyond its struct as a whole message comes: nothing,
         * whatever the reads before it kept (a parser, a message being assembled). */
        int err = ar_sn_send(c, AR_WS_OP_TEXT, c->ext ? "held:1" : "held:0", 6);
        if (err)
            atomic_store(&srv.send_err, err);
        return;
    }
    if (len == 4 && memcmp(msg, "area", 4) == 0) {
        int err = ar_sn_send(c, AR_WS_OP_TEXT, area_holds_pattern(c) ? "area:1" : "area:0", 6);
        if (err)
            atomic_store(&srv.send_err, err);
        return;
    }
    if (len == 3 && memcmp(msg, "die", 3) == 0) {
        /* The send fails and drops the connection inside it; c stays usable until the batch
         * ends: the next send says AR_ESTATE, a close does nothing, its data is still there. */
        ar_sn_conn_set_data(c, &srv);
        atomic_store(&srv.send_err, ar_sn_send(c, AR_WS_OP_TEXT, "x", 1));
        atomic_store(&srv.die_closed, atomic_load(&srv.closed));
        atomic_store(&srv.die_freed, atomic_load(&srv.freed));
        atomic_store(&srv.die_again, ar_sn_send(c, AR_WS_OP_TEXT, "y", 1));
        ar_sn_close(c, 1000);
        atomic_store(&srv.die_data, ar_sn_conn_data(c) == &srv);
        return;
    }
    if (len == 5 && memcmp(msg, "flood", 5) == 0) {
        /* Up to 128 MiB to a client that does not read: the kernel's buffers fill, then our
         * queue reaches max_outgoing and the client must be dropped. */
        static uint8_t big[32 * 1024];
        for (int i = 0; i < 4096; i++) {
            int err = ar_sn_send(c, AR_WS_OP_BINARY, big, sizeof(big));
            if (err) {
                atomic_store(&srv.send_err, err);
                return;
            }
        }
        return;
    }
    int err = ar_sn_send(c, op, msg, len);
    if (err)
        atomic_store(&srv.send_err, err);
}

static void on_close(ar_sn_conn_t *c, uint16_t code, void *data)
{
    (void)c, (void)data;
    atomic_store(&srv.last_code, code);
    atomic_fetch_add(&srv.closed, 1);
}

static void on_free(ar_sn_conn_t *c, void *data)
{
    (void)data;
    if (srv.area)
        atomic_store(&srv.area_kept, area_holds_pattern(c));
    atomic_fetch_add(&srv.freed, 1);
}

static void *run(void *arg)
{
    (void)arg;
    assert_int_equal(ar_sn_loop_run(srv.loop), 0);
    return NULL;
}

static void start_area(uint16_t hs_timeout, uint16_t idle_timeout, ar_sn_tls_ctx_t *tls,
                       uint16_t area)
{
    memset(&srv, 0, sizeof(srv));
    srv.area = area;
    ar_sn_conf_t conf = {.upgrade = &upconf,
                         .max_message = 4096,
                         .max_outgoing = 128 * 1024,
                         .handshake_timeout_s = hs_timeout,
                         .idle_timeout_s = idle_timeout,
                         .tls = tls,
                         .conn_area = area};
    ar_sn_handler_t h = {.open_cb = on_open,
                         .message_cb = on_message,
                         .close_cb = on_close,
                         .free_cb = on_free,
                         .writable_cb = on_writable};
    assert_int_equal(ar_sn_loop_new(&conf, &h, &srv.loop), 0);
    assert_int_equal(ar_sn_loop_listen(srv.loop, "127.0.0.1", 0, &srv.port), 0);
    assert_int_equal(pthread_create(&srv.thread, NULL, run, NULL), 0);
}

static void start(uint16_t hs_timeout, uint16_t idle_timeout, ar_sn_tls_ctx_t *tls)
{
    start_area(hs_timeout, idle_timeout, tls, 0);
}

static void stop(void)
{
    ar_sn_loop_stop(srv.loop);
    pthread_join(srv.thread, NULL);
    ar_sn_loop_free(srv.loop);
    srv.loop = NULL;
}

/* ---- a blocking client (optionally TLS) ---- */

typedef struct client_s {
    int fd;
    SSL *ssl;
} client_t;

static int cwrite(client_t *c, const void *b, size_t n)
{
    return c->ssl ? SSL_write(c->ssl, b, (int)n) : (int)send(c->fd, b, n, MSG_NOSIGNAL);
}

static int cread(client_t *c, void *b, size_t n)
{
    return c->ssl ? SSL_read(c->ssl, b, (int)n) : (int)recv(c->fd, b, n, 0);
}

/* rcvbuf > 0: a small receive window, set before connecting so the server's writes stall. */
static client_t dial_window(SSL_CTX *ctx, int rcvbuf)
{
    client_t c = {socket(AF_INET, SOCK_STREAM, 0), NULL};
    if (rcvbuf > 0)
        setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(srv.port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {5, 0};
    setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    assert_int_equal(connect(c.fd, (struct sockaddr *)&a, sizeof(a)), 0);
    if (ctx) {
        c.ssl = SSL_new(ctx);
        SSL_set_fd(c.ssl, c.fd);
        assert_int_equal(SSL_connect(c.ssl), 1);
    }
    return c;
}

static client_t dial(SSL_CTX *ctx)
{
    return dial_window(ctx, 0);
}

static void hangup(client_t *c)
{
    if (c->ssl)
        SSL_free(c->ssl);
    close(c->fd);
}

/* Sends an upgrade request for path with origin; returns the response's status code. */
static int upgrade(client_t *c, const char *path, const char *origin)
{
    char req[512];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: %s\r\n"
                     "Sec-WebSocket-Protocol: anteroom.v1\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     path, origin);
    assert_int_equal(cwrite(c, req, (size_t)n), n);
    char resp[512];
    size_t got = 0;
    /* Read byte by byte so no frame bytes after the response are swallowed. */
    while (got < sizeof(resp) - 1 && cread(c, resp + got, 1) == 1) {
        got++;
        resp[got] = '\0';
        if (strstr(resp, "\r\n\r\n"))
            break;
    }
    assert_true(got > 12);
    if (strncmp(resp, "HTTP/1.1 101", 12) == 0)
        assert_non_null(strstr(resp, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    return atoi(resp + 9);
}

static void send_frame(client_t *c, uint8_t b0, const void *p, size_t len, int masked)
{
    static const uint8_t mask[4] = {0x11, 0x22, 0x33, 0x44};
    uint8_t f[AR_WS_MAX_HEADER + 8192];
    size_t h =
        ar_ws_frame_header(f, (uint8_t)(b0 & 0x0f), (b0 & 0x80) != 0, len, masked ? mask : NULL);
    assert_true(len <= 8192);
    f[0] |= (uint8_t)(b0 & 0x70); /* RSV bits, for the tests that must be refused */
    memcpy(f + h, p, len);
    if (masked)
        ar_ws_mask(f + h, len, mask, 0);
    assert_int_equal(cwrite(c, f, h + len), (int)(h + len));
}

static int read_all(client_t *c, uint8_t *b, size_t n)
{
    for (size_t got = 0; got < n;) {
        int r = cread(c, b + got, n - got);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

/* Reads one server frame; returns its opcode (payload in b, length in *len) or -1 on EOF. */
static int read_frame(client_t *c, uint8_t *b, size_t cap, size_t *len)
{
    uint8_t h[10];
    if (read_all(c, h, 2) != 0)
        return -1;
    assert_int_equal(h[1] & 0x80, 0); /* server frames are never masked */
    uint64_t n = h[1] & 0x7f;
    if (n == 126) {
        assert_int_equal(read_all(c, h + 2, 2), 0);
        n = (uint64_t)(h[2] << 8 | h[3]);
    } else if (n == 127) {
        assert_int_equal(read_all(c, h + 2, 8), 0);
        n = 0;
        for (int i = 0; i < 8; i++)
            n = n << 8 | h[2 + i];
    }
    assert_true(n <= cap);
    if (read_all(c, b, (size_t)n) != 0)
        return -1;
    *len = (size_t)n;
    return h[0] & 0x0f;
}

static uint16_t expect_close(client_t *c)
{
    uint8_t b[200];
    size_t n;
    assert_int_equal(read_frame(c, b, sizeof(b), &n), AR_WS_OP_CLOSE);
    assert_true(n >= 2);
    /* Then the server closes TCP. */
    assert_true(cread(c, b, 1) <= 0);
    return (uint16_t)(b[0] << 8 | b[1]);
}

static void wait_for(atomic_int *v, int want)
{
    for (int i = 0; i < 500 && atomic_load(v) != want; i++)
        usleep(10000);
    assert_int_equal(atomic_load(v), want);
}

/* ---- tests ---- */

static void echo_checks(client_t *c)
{
    uint8_t b[8192];
    size_t n;
    send_frame(c, 0x81, "Hello", 5, 1);
    assert_int_equal(read_frame(c, b, sizeof(b), &n), AR_WS_OP_TEXT);
    assert_int_equal(n, 5);
    assert_memory_equal(b, "Hello", 5);
    /* A fragmented binary message with a ping between the fragments. */
    send_frame(c, 0x02, "ab", 2, 1);
    send_frame(c, 0x89, "p", 1, 1);
    send_frame(c, 0x80, "cd", 2, 1);
    assert_int_equal(read_frame(c, b, sizeof(b), &n), AR_WS_OP_PONG);
    assert_int_equal(n, 1);
    assert_int_equal(read_frame(c, b, sizeof(b), &n), AR_WS_OP_BINARY);
    assert_int_equal(n, 4);
    assert_memory_equal(b, "abcd", 4);
    /* A larger message (16-bit length) written in two pieces. */
    static uint8_t big[3000];
    memset(big, 'z', sizeof(big));
    send_frame(c, 0x82, big, sizeof(big), 1);
    assert_int_equal(read_frame(c, b, sizeof(b), &n), AR_WS_OP_BINARY);
    assert_int_equal(n, sizeof(big));
    assert_memory_equal(b, big, sizeof(big));
}

static void test_echo_and_close(void **state)
{
    (void)state;
    start(5, 30, NULL);
    client_t c = dial(NULL);
    assert_int_equal(upgrade(&c, "/signal", "https://app.example.org"), 101);
    wait_for(&srv.opened, 1);
    echo_checks(&c);
    /* A header split over two writes, a byte apart. */
    static const uint8_t mask[4] = {1, 2, 3, 4};
    uint8_t f[16];
    size_t h = ar_ws_frame_header(f, AR_WS_OP_TEXT, 1, 2, mask);
    memcpy(f + h, "hi", 2);
    ar_ws_mask(f + h, 2, mask, 0);
    assert_int_equal(cwrite(&c, f, 3), 3);
    usleep(20000);
    assert_int_equal(cwrite(&c, f + 3, h + 2 - 3), (int)(h + 2 - 3));
    uint8_t b[64];
    size_t n;
    assert_int_equal(read_frame(&c, b, sizeof(b), &n), AR_WS_OP_TEXT);
    assert_memory_equal(b, "hi", 2);
    /* A frame a byte a read: the parser is kept between reads (in what is in flight), and let
     * go once the message is whole. */
    uint8_t g[32];
    size_t gh = ar_ws_frame_header(g, AR_WS_OP_TEXT, 1, 11, mask);
    memcpy(g + gh, "byte a read", 11);
    ar_ws_mask(g + gh, 11, mask, 0);
    for (size_t i = 0; i < gh + 11; i++) {
        assert_int_equal(cwrite(&c, g + i, 1), 1);
        usleep(3000);
    }
    assert_int_equal(read_frame(&c, b, sizeof(b), &n), AR_WS_OP_TEXT);
    assert_int_equal(n, 11);
    assert_memory_equal(b, "byte a read", 11);
    send_frame(&c, 0x81, "held", 4, 1);
    assert_int_equal(read_frame(&c, b, sizeof(b), &n), AR_WS_OP_TEXT);
    assert_memory_equal(b, "held:0", 6);
    /* The close handshake: our 1000 is echoed and the server closes TCP. */
    uint8_t pl[AR_WS_MAX_CONTROL];
    size_t pn = ar_ws_close_payload(pl, 1000, "bye");
    send_frame(&c, 0x88, pl, pn, 1);
    assert_int_equal(expect_close(&c), 1000);
    wait_for(&srv.closed, 1);
    assert_int_equal(atomic_load(&srv.last_code), 1000);
    hangup(&c);
    stop();
}

/* The application's memory in the connection's allocation (conf.conn_area): zeroed at the
 * accept, kept through the connection's life and still there in free_cb; too large a request is
 * refused. */
static void test_conn_area(void **state)
{
    (void)state;
    ar_sn_conf_t big = {.upgrade = &upconf, .conn_area = 1025};
    ar_sn_handler_t none = {0};
    ar_sn_loop_t *l = NULL;
    assert_int_equal(ar_sn_loop_new(&big, &none, &l), AR_EINVAL);
    start_area(5, 30, NULL, 72);
    client_t c = dial(NULL);
    assert_int_equal(upgrade(&c, "/signal", "https://app.example.org"), 101);
    wait_for(&srv.opened, 1);
    assert_int_equal(atomic_load(&srv.area_zeroed), 1);
    send_frame(&c, 0x81, "area", 4, 1);
    uint8_t b[64];
    size_t n;
    assert_int_equal(read_frame(&c, b, sizeof(b), &n), AR_WS_OP_TEXT);
    assert_memory_equal(b, "area:1", 6);
    hangup(&c);
    wait_for(&srv.freed, 1);
    assert_int_equal(atomic_load(&srv.area_kept), 1);
    stop();
}

static void test_protocol_errors(void **state)
{
    (void)state;
    start(5, 30, NULL);
    static const struct {
        uint8_t b0;
        const char *payload;
        size_t len;
        int masked;
        uint16_t code;
    } cases[] = {
        {0x81, "x", 1, 0, 1002},        /* unmasked client frame */
        {0xc1, "x", 1, 1, 1002},        /* RSV1 without an extension */
        {0x81, "\xc0\x80", 2, 1, 1007}, /* overlong UTF-8 */
        {0x80, "x", 1, 1, 1002},        /* continuation with nothing open */
        {0x88, "\x03", 1, 1, 1002},     /* one-byte close payload */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        client_t c = dial(NULL);
        assert_int_equal(upgrade(&c, "/signal", "https://app.example.org"), 101);
        send_frame(&c, cases[i].b0, cases[i].payload, cases[i].len, cases[i].masked);
        assert_int_equal(expect_close(&c), cases[i].code);
        hangup(&c);
    }
    /* Over the 4096-byte message cap. */
    client_t c = dial(NULL);
    assert_int_equal(upgrade(&c, "/signal", "https://app.example.org"), 101);
    static uint8_t big[5000];
    send_frame(&c, 0x82, big, sizeof(big), 1);
    assert_int_equal(expect_close(&c), 1009);
    hangup(&c);
    /* Refused by the application's open_cb. */
    c = dial(NULL);
    assert_int_equal(upgrade(&c, "/refuse", "https://app.example.org"), 101);
    assert_int_equal(expect_close(&c), 1008);
    hangup(&c);
    size_t opened = (size_t)atomic_load(&srv.opened);
    wait_for(&srv.closed, (int)opened);
    stop();
}

static void test_upgrade_refused(void **state)
{
    (void)state;
    start(5, 30, NULL);
    client_t c = dial(NULL);
    assert_int_equal(upgrade(&c, "/signal", "https://evil.example"), 403);
    uint8_t b[1];
    assert_true(cread(&c, b, 1) <= 0);
    hangup(&c);
    assert_int_equal(atomic_load(&srv.opened), 0);
    stop();
}

static void test_timeouts(void **state)
{
    (void)state;
    start(1, 2, NULL);
    /* Handshake timeout: connected, silent, dropped without a response. */
    client_t c = dial(NULL);
    uint8_t b[16];
    assert_true(cread(&c, b, 1) <= 0);
    hangup(&c);
    /* Idle timeout: upgraded, silent, closed with 1001. */
    c = dial(NULL);
    assert_int_equal(upgrade(&c, "/signal", "https://app.example.org"), 101);
    assert_int_equal(expect_close(&c), 1001);
    hangup(&c);
    wait_for(&srv.closed, 1);
    assert_int_equal(ar_sn_loop_conns(srv.loop), 0);
    stop();
}

static void test_slow_reader(void **state)
{
    (void)state;
    start(5, 30, NULL);
    client_t c = dial(NULL);
    int small = 4096;
    setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    assert_int_equal(upgrade(&c, "/signal", "https://app.example.org"), 101);
    send_frame(&c, 0x81, "flood", 5, 1);
    /* A reader that never reads: dropped once 128 KiB is queued. */
    wait_for(&srv.closed, 1);
    assert_int_equal(atomic_load(&srv.send_err), AR_EQUOTA);
    assert_int_equal(atomic_load(&srv.last_code), AR_WS_CLOSE_POLICY);
    hangup(&c);
    stop();
}

/* A sender that paces itself by ar_sn_conn_outgoing and writable_cb gets 32 MiB through a
 * slow reader's small window without ever queueing near max_outgoing (128 KiB here): every
 * byte arrives, in order, and the connection stays open. */
static void test_paced_writer(void **state)
{
    (void)state;
    start(5, 30, NULL);
    client_t c = dial_window(NULL, 4096);
    assert_int_equal(upgrade(&c, "/small", "https://app.example.org"), 101);
    send_frame(&c, 0x81, "paced", 5, 1);
    static uint8_t b[4 + PACED_SIZE];
    for (int k = 0; k < PACED_MSGS; k++) {
        if (k < 4)
            usleep(50000); /* slow at first: the server's queue fills and must wait */
        assert_int_equal(read_all(&c, b, 4), 0);
        assert_int_equal(b[0], 0x82);
        assert_int_equal(b[1], 126);
        assert_int_equal(b[2] << 8 | b[3], PACED_SIZE);
        assert_int_equal(read_all(&c, b + 4, PACED_SIZE), 0);
        for (size_t i = 0; i < PACED_SIZE; i++)
            if (b[4 + i] != (uint8_t)(i * 7 + (size_t)k))
                fail_msg("byte %zu of message %d", i, k);
    }
    assert_int_equal(atomic_load(&srv.send_err), 0);
    assert_int_equal(atomic_load(&srv.closed), 0);
    assert_true(atomic_load(&srv.writables) > 0);
    assert_true(atomic_load(&srv.max_queued) < PACED_LOW + PACED_SIZE + 16);
    /* The connection still echoes. */
    send_frame(&c, 0x81, "Hello", 5, 1);
    size_t n;
    assert_int_equal(read_frame(&c, b, sizeof(b), &n), AR_WS_OP_TEXT);
    assert_int_equal(n, 5);
    hangup(&c);
    stop();
}

/* Frames under conn.c's copy threshold (2 KB) are copied behind their header and sent with one
 * send(): against a 2 KB receive window most sends are partial, and every byte must still
 * arrive, in order. */
static void test_small_partial(void **state)
{
    (void)state;
    start(5, 30, NULL);
    client_t w = dial_window(NULL, 2048);
    assert_int_equal(upgrade(&w, "/small", "https://app.example.org"), 101);
    send_frame(&w, 0x81, "sburst", 6, 1);
    usleep(100000);
    static uint8_t b[4 + 1500];
    for (int k = 0; k < 70; k++) {
        assert_int_equal(read_all(&w, b, sizeof(b)), 0);
        if (k % 20 == 0)
            usleep(2000);
        assert_int_equal(b[0], 0x82);
        assert_int_equal(b[1], 126);
        assert_int_equal(b[2] << 8 | b[3], 1500);
        for (size_t i = 0; i < 1500; i++)
            if (b[4 + i] != (uint8_t)(i * 7 + (size_t)k))
                fail_msg("byte %zu of message %d", i, k);
    }
    assert_int_equal(atomic_load(&srv.send_err), 0);
    hangup(&w);
    stop();
}

/* ar_sn_send_room: the header put in the room before the payload, every length encoding, the
 * same bytes as ar_sn_send's frames, through a 2 KB receive window (partial writes queued). */
static void test_send_room(void **state)
{
    (void)state;
    start(5, 30, NULL);
    client_t w = dial_window(NULL, 2048);
    assert_int_equal(upgrade(&w, "/small", "https://app.example.org"), 101);
    send_frame(&w, 0x81, "rburst", 6, 1);
    static uint8_t b[AR_WS_MAX_HEADER + 65536];
    for (int k = 0; k < (int)(sizeof(room_sizes) / sizeof(room_sizes[0])); k++) {
        uint8_t h[AR_WS_MAX_HEADER];
        size_t hl = ar_ws_frame_header(h, AR_WS_OP_BINARY, 1, room_sizes[k], NULL);
        assert_int_equal(read_all(&w, b, hl + room_sizes[k]), 0);
        assert_memory_equal(b, h, hl);
        for (size_t i = 0; i < room_sizes[k]; i++)
            if (b[hl + i] != (uint8_t)(i * 7 + (size_t)k))
                fail_msg("byte %zu of message %d", i, k);
    }
    assert_int_equal(atomic_load(&srv.send_err), 0);
    /* Still open, and echoing. */
    send_frame(&w, 0x81, "Hello", 5, 1);
    size_t n;
    assert_int_equal(read_frame(&w, b, sizeof(b), &n), AR_WS_OP_TEXT);
    assert_int_equal(n, 5);
    hangup(&w);
    stop();
}

/* ar__sn_header_len against the header ar_ws_frame_header writes, at every length up to past
 * both boundaries and at the largest ones. */
static void test_header_len(void **state)
{
    (void)state;
    uint8_t h[AR_WS_MAX_HEADER];
    for (uint64_t len = 0; len <= 70000; len++)
        assert_int_equal(ar__sn_header_len(len),
                         ar_ws_frame_header(h, AR_WS_OP_TEXT, 1, len, NULL));
    static const uint64_t big[] = {UINT32_MAX, (uint64_t)UINT32_MAX + 1, UINT64_MAX >> 1};
    for (size_t i = 0; i < sizeof(big) / sizeof(big[0]); i++)
        assert_int_equal(ar__sn_header_len(big[i]),
                         ar_ws_frame_header(h, AR_WS_OP_TEXT, 1, big[i], NULL));
}

/* A send that kills its connection: close_cb fires inside it, free_cb only after the batch. */
static void test_killed_in_send(void **state)
{
    (void)state;
    start(5, 30, NULL);
    client_t c = dial(NULL);
    assert_int_equal(upgrade(&c, "/dead", "https://app.example.org"), 101);
    send_frame(&c, 0x81, "die", 3, 1);
    wait_for(&srv.freed, 1);
    assert_int_equal(atomic_load(&srv.send_err), AR_EIO);
    assert_int_equal(atomic_load(&srv.die_closed), 1);
    assert_int_equal(atomic_load(&srv.die_freed), 0);
    assert_int_equal(atomic_load(&srv.die_again), AR_ESTATE);
    assert_int_equal(atomic_load(&srv.die_data), 1);
    assert_int_equal(atomic_load(&srv.closed), 1);
    assert_int_equal(atomic_load(&srv.last_code), 1006);
    hangup(&c);
    stop();
    assert_int_equal(atomic_load(&srv.freed), 1);
}

/* A TLS client whose handshake is expected to fail: the server dropped the connection. */
static void dial_tls_refused(SSL_CTX *ctx)
{
    client_t c = dial(NULL);
    c.ssl = SSL_new(ctx);
    SSL_set_fd(c.ssl, c.fd);
    assert_int_not_equal(SSL_connect(c.ssl), 1);
    hangup(&c);
}

static void tls_echo(ar_sn_tls_lib_t lib)
{
    ar_sn_tls_ctx_t *tls = NULL;
    int err = ar_sn_tls_ctx_new(lib, AR_WS_VECTOR_DIR "/test_cert.pem",
                                AR_WS_VECTOR_DIR "/test_key.pem", &tls);
    /* Only the library the build chose for the daemon must exist. */
    if (err == AR_EUNSUPPORTED && lib != AR_SN_TLS_DEFAULT)
        return;
    assert_int_equal(err, 0);
    ar_sn_tls_ctx_t *bad = NULL;
    assert_int_equal(ar_sn_tls_ctx_new(lib, "/nonexistent", "/nonexistent", &bad), AR_ETLS);
    assert_null(bad);
    ar_alloc_fail_after(0);
    assert_int_equal(ar_sn_tls_ctx_new(lib, AR_WS_VECTOR_DIR "/test_cert.pem",
                                       AR_WS_VECTOR_DIR "/test_key.pem", &bad),
                     AR_ENOMEM);
    assert_true(ar_alloc_fail_after(-1) > 0);
    assert_null(bad);
    start(5, 30, tls);
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    for (int v = 0; v < 2; v++) {
        /* TLS 1.3, then TLS 1.2. */
        SSL_CTX_set_max_proto_version(ctx, v ? TLS1_2_VERSION : TLS1_3_VERSION);
        client_t c = dial(ctx);
        assert_int_equal(upgrade(&c, "/signal", "https://app.example.org"), 101);
        echo_checks(&c);
        uint8_t pl[AR_WS_MAX_CONTROL];
        size_t pn = ar_ws_close_payload(pl, 4000, NULL);
        send_frame(&c, 0x88, pl, pn, 1);
        assert_int_equal(expect_close(&c), 4000);
        hangup(&c);
    }
    wait_for(&srv.closed, 2);
    /* A client speaking plain HTTP to the TLS port: the handshake fails, the socket is closed. */
    client_t c = dial(NULL);
    static const char plain[] = "GET /signal HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(cwrite(&c, plain, sizeof(plain) - 1), (int)sizeof(plain) - 1);
    uint8_t b[64];
    while (cread(&c, b, sizeof(b)) > 0) /* an alert may come first */
        ;
    hangup(&c);
    /* No memory for the connection: dropped before the handshake. */
    ar_alloc_fail_after(0);
    dial_tls_refused(ctx);
    assert_true(ar_alloc_fail_after(-1) > 0);
    /* The handshake done, no memory for the upgrade request: dropped with the TLS state. Two
     * allocations pass: the connection, and its ext that holds the TLS state. */
    ar_alloc_fail_after(2);
    c = dial(ctx);
    static const char req[] = "GET / HTTP/1.1\r\n";
    assert_int_equal(cwrite(&c, req, sizeof(req) - 1), (int)sizeof(req) - 1);
    assert_true(cread(&c, b, 1) <= 0);
    hangup(&c);
    assert_true(ar_alloc_fail_after(-1) > 0);
    /* And the listener still serves TLS. */
    c = dial(ctx);
    assert_int_equal(upgrade(&c, "/signal", "https://app.example.org"), 101);
    echo_checks(&c);
    hangup(&c);
    wait_for(&srv.closed, 3);
    assert_int_equal(ar_sn_loop_conns(srv.loop), 0);
    SSL_CTX_free(ctx);
    stop();
    ar_sn_tls_ctx_free(tls);
}

/* Writes through a memory BIO and hands the bytes to the socket `step` at a time, so records
 * arrive split over many reads. */
static void write_in_pieces(client_t *c, const void *b, size_t n, size_t step)
{
    BIO *mem = BIO_new(BIO_s_mem());
    SSL_set0_wbio(c->ssl, mem);
    assert_int_equal(SSL_write(c->ssl, b, (int)n), (int)n);
    char *p;
    long len = BIO_get_mem_data(mem, &p);
    for (long off = 0; off < len; off += (long)step) {
        size_t k = (size_t)(len - off) < step ? (size_t)(len - off) : step;
        assert_int_equal(send(c->fd, p + off, k, MSG_NOSIGNAL), (ssize_t)k);
        usleep(200);
    }
    SSL_set0_wbio(c->ssl, BIO_new_socket(c->fd, BIO_NOCLOSE));
}

/*
 * OpenSSL lets go of a TLS 1.3 connection after the handshake and our record layer carries it
 * (tls_openssl.c): each suite, records split over reads, several frames per record and a frame
 * over two records, 100 KiB out to a reader with a small window (partial writes), KeyUpdate both
 * ways, a forged record, close_notify. OpenSSL's client checks every record we seal.
 */
static void test_tls13_detached(void **state)
{
    (void)state;
    ar_sn_tls_ctx_t *tls = NULL;
    assert_int_equal(ar_sn_tls_ctx_new(AR_SN_TLS_OPENSSL, AR_WS_VECTOR_DIR "/test_cert.pem",
                                       AR_WS_VECTOR_DIR "/test_key.pem", &tls),
                     0);
    start(5, 30, tls);
    static const char *const suites[] = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                                         "TLS_CHACHA20_POLY1305_SHA256"};
    int closed = 0;
    for (size_t si = 0; si < 3; si++) {
        SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
        SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
        assert_int_equal(SSL_CTX_set_ciphersuites(ctx, suites[si]), 1);
        unsigned long before = ar__sn_tls_detached;
        client_t c = dial(ctx);
        assert_string_equal(SSL_CIPHER_standard_name(SSL_get_current_cipher(c.ssl)), suites[si]);
        assert_int_equal(upgrade(&c, "/signal", "https://app.example.org"), 101);
        assert_int_equal(ar__sn_tls_detached, before + 1);
        echo_checks(&c);
        /* Five 4000-byte frames in one write: records of 16384 and 3xxx bytes, handed to the
         * socket 7 bytes at a time; one frame straddles the two records. */
        static const uint8_t mask[4] = {9, 8, 7, 6};
        static uint8_t five[5 * (4000 + 8)];
        size_t off = 0;
        for (int k = 0; k < 5; k++) {
            size_t h = ar_ws_frame_header(five + off, AR_WS_OP_BINARY, 1, 4000, mask);
            memset(five + off + h, 'a' + k, 4000);
            ar_ws_mask(five + off + h, 4000, mask, 0);
            off += h + 4000;
        }
        write_in_pieces(&c, five, off, si == 0 ? 7 : 1500);
        uint8_t b[32 * 1024];
        size_t n;
        for (int k = 0; k < 5; k++) {
            assert_int_equal(read_frame(&c, b, sizeof(b), &n), AR_WS_OP_BINARY);
            assert_int_equal(n, 4000);
            assert_int_equal(b[0], 'a' + k);
            assert_int_equal(b[3999], 'a' + k);
        }
        /* The client asks for a KeyUpdate: ours must come before our next record. */
        assert_int_equal(SSL_key_update(c.ssl, SSL_KEY_UPDATE_REQUESTED), 1);
        send_frame(&c, 0x81, "after update", 12, 1);
        assert_int_equal(read_frame(&c, b, sizeof(b), &n), AR_WS_OP_TEXT);
        assert_memory_equal(b, "after update", 12);
        assert_int_equal(SSL_key_update(c.ssl, SSL_KEY_UPDATE_NOT_REQUESTED), 1);
        send_frame(&c, 0x81, "again", 5, 1);
        assert_int_equal(read_frame(&c, b, sizeof(b), &n), AR_WS_OP_TEXT);
        assert_memory_equal(b, "again", 5);
        /* 100 KiB to a client that reads slowly through a small window: the socket takes
         * records in part, the rest waits (sealed, or to be sealed again). */
        client_t w = dial_window(ctx, 2048);
        assert_int_equal(upgrade(&w, "/small", "https://app.example.org"), 101);
        send_frame(&w, 0x81, "burst", 5, 1);
        usleep(100000);
        for (int k = 0; k < 5; k++) {
            for (size_t got = 0; got < 2 + 2 + 20 * 1024; got += 1000) {
                size_t want = 2 + 2 + 20 * 1024 - got < 1000 ? 2 + 2 + 20 * 1024 - got : 1000;
                assert_int_equal(read_all(&w, b + got, want), 0);
                usleep(2000);
            }
            assert_int_equal(b[0], 0x82);
            assert_int_equal(b[1], 126);
            assert_int_equal(b[2] << 8 | b[3], 20 * 1024);
            for (size_t i = 0; i < 20 * 1024; i++)
                if (b[4 + i] != (uint8_t)(i * 7 + (size_t)k))
                    fail_msg("byte %zu of message %d", i, k);
        }
        hangup(&w);
        wait_for(&srv.closed, ++closed);
        if (si == 0) {
            /* A forged record: the tag does not verify, the server hangs up. */
            static const uint8_t forged[5 + 17] = {23, 3, 3, 0, 17, 1, 2, 3};
            assert_int_equal(send(c.fd, forged, sizeof(forged), MSG_NOSIGNAL),
                             (ssize_t)sizeof(forged));
            assert_true(cread(&c, b, 1) <= 0);
        } else {
            /* close_notify: the stream ends cleanly. */
            assert_true(SSL_shutdown(c.ssl) >= 0);
        }
        wait_for(&srv.closed, ++closed);
        hangup(&c);
        SSL_CTX_free(ctx);
    }
    /* TLS 1.2 stays on OpenSSL's record layer. */
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
    unsigned long before = ar__sn_tls_detached;
    client_t c = dial(ctx);
    assert_int_equal(upgrade(&c, "/signal", "https://app.example.org"), 101);
    echo_checks(&c);
    assert_int_equal(ar__sn_tls_detached, before);
    hangup(&c);
    wait_for(&srv.closed, ++closed);
    SSL_CTX_free(ctx);
    assert_int_equal(atomic_load(&srv.send_err), 0);
    stop();
    ar_sn_tls_ctx_free(tls);
}

static void test_tls_openssl(void **state)
{
    (void)state;
    tls_echo(AR_SN_TLS_OPENSSL);
}

static void test_tls_wolfssl(void **state)
{
    (void)state;
    tls_echo(AR_SN_TLS_WOLFSSL);
}

static void test_tls_boringssl(void **state)
{
    (void)state;
    tls_echo(AR_SN_TLS_BORINGSSL);
}

static void test_alloc_failure(void **state)
{
    (void)state;
    start(5, 30, NULL);
    /* Every allocation fails: the accepted socket is closed at once, nothing leaks. */
    ar_alloc_fail_after(0);
    client_t c = dial(NULL);
    uint8_t b[1];
    assert_true(cread(&c, b, 1) <= 0);
    hangup(&c);
    /* The connection struct succeeds, what holds the upgrade request (its ext) does not:
     * dropped, no response. */
    ar_alloc_fail_after(1);
    c = dial(NULL);
    char req[] = "GET / HTTP/1.1\r\n";
    assert_int_equal(cwrite(&c, req, sizeof(req) - 1), (int)sizeof(req) - 1);
    assert_true(cread(&c, b, 1) <= 0);
    hangup(&c);
    assert_true(ar_alloc_fail_after(-1) > 0);
    /* And the server still works. */
    c = dial(NULL);
    assert_int_equal(upgrade(&c, "/signal", "https://app.example.org"), 101);
    echo_checks(&c);
    hangup(&c);
    wait_for(&srv.closed, 1);
    stop();
}

static void test_reuseport(void **state)
{
    (void)state;
    /* Two loops (as two worker processes would) listen on one port. */
    start(5, 30, NULL);
    ar_sn_loop_t *other = NULL;
    ar_sn_conf_t conf = {.upgrade = &upconf};
    ar_sn_handler_t h = {0};
    assert_int_equal(ar_sn_loop_new(&conf, &h, &other), 0);
    assert_int_equal(ar_sn_loop_listen(other, "127.0.0.1", srv.port, NULL), 0);
    assert_int_equal(ar_sn_loop_listen(other, "not an address", 0, NULL), AR_EINVAL);
    ar_sn_loop_free(other);
    conf.idle_timeout_s = 250;
    assert_int_equal(ar_sn_loop_new(&conf, &h, &other), AR_EINVAL);
    stop();
}

static int refuse_all(ar_sn_conn_t *c, const struct sockaddr_storage *peer, void *data)
{
    (void)c, (void)peer, (void)data;
    return -1;
}

/* Reads what is there now (the socket is non-blocking): exactly want, or fails the test. */
static void expect_now(int fd, const void *want, size_t n)
{
    uint8_t b[512];
    assert_true(n <= sizeof(b));
    assert_int_equal(recv(fd, b, sizeof(b), 0), (ssize_t)n);
    assert_memory_equal(b, want, n);
}

/* A socket from elsewhere (one end of a socketpair) adopted by a loop that no thread runs, and
 * driven a turn at a time (ar_sn_loop_adopt, ar_sn_loop_turn; fuzz_signal_bus's clients): each
 * turn handles what is ready then, without waiting, and frees what closed in it. A socket that
 * accept_cb refuses, or that epoll cannot watch, is closed. */
/* The bare system calls behind recv, send and epoll_wait (internal.h) keep the wrappers'
 * contract: -1 with errno, MSG_NOSIGNAL (EPIPE, no SIGPIPE), epoll_wait's timeout and events. */
static void test_bare_syscalls(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    int ep = epoll_create1(0);
    assert_true(ep >= 0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 7}, got[2];
    assert_int_equal(epoll_ctl(ep, EPOLL_CTL_ADD, sv[0], &ev), 0);
    char buf[8];
    errno = 0;
    assert_int_equal(ar__sn_recv(sv[0], buf, sizeof(buf)), -1);
    assert_int_equal(errno, EAGAIN);
    assert_int_equal(ar__sn_epoll_wait(ep, got, 2, 0), 0);
    assert_int_equal(ar__sn_send(sv[1], "abc", 3), 3);
    assert_int_equal(ar__sn_epoll_wait(ep, got, 2, 1000), 1);
    assert_int_equal(got[0].data.u32, 7);
    assert_true(got[0].events & EPOLLIN);
    assert_int_equal(ar__sn_recv(sv[0], buf, sizeof(buf)), 3);
    assert_memory_equal(buf, "abc", 3);
    errno = 0;
    assert_int_equal(ar__sn_epoll_wait(-1, got, 2, 0), -1);
    assert_int_equal(errno, EBADF);
    /* Writing to a closed peer: EPIPE, and no SIGPIPE even where it would end the process. */
    close(sv[0]);
    struct sigaction dfl = {.sa_handler = SIG_DFL}, old;
    assert_int_equal(sigaction(SIGPIPE, &dfl, &old), 0);
    errno = 0;
    assert_int_equal(ar__sn_send(sv[1], "x", 1), -1);
    assert_int_equal(errno, EPIPE);
    assert_int_equal(sigaction(SIGPIPE, &old, NULL), 0);
    close(sv[1]);
    close(ep);
}

static void test_adopt_and_turn(void **state)
{
    (void)state;
    memset(&srv, 0, sizeof(srv));
    ar_sn_conf_t conf = {.upgrade = &upconf, .max_message = 4096};
    ar_sn_handler_t h = {
        .open_cb = on_open, .message_cb = on_message, .close_cb = on_close, .free_cb = on_free};
    assert_int_equal(ar_sn_loop_new(&conf, &h, &srv.loop), 0);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    assert_int_equal(ar_sn_loop_adopt(srv.loop, sv[0]), 0);
    assert_int_equal(ar_sn_loop_conns(srv.loop), 1);
    assert_int_equal(ar_sn_loop_turn(srv.loop), 0); /* nothing ready: returns at once */
    client_t c = {sv[1], NULL};
    static const char req[] =
        "GET /x HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Origin: https://app.example.org\r\nSec-WebSocket-Protocol: anteroom.v1\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n";
    assert_int_equal(cwrite(&c, req, sizeof(req) - 1), (int)sizeof(req) - 1);
    assert_int_equal(ar_sn_loop_turn(srv.loop), 0);
    assert_int_equal(atomic_load(&srv.opened), 1);
    char resp[512];
    ssize_t n = recv(sv[1], resp, sizeof(resp) - 1, 0);
    assert_true(n > 12);
    resp[n] = '\0';
    assert_memory_equal(resp, "HTTP/1.1 101", 12);
    assert_non_null(strstr(resp, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    send_frame(&c, 0x81, "Hello", 5, 1);
    assert_int_equal(ar_sn_loop_turn(srv.loop), 0);
    expect_now(sv[1], "\x81\x05Hello", 7);
    uint8_t pl[AR_WS_MAX_CONTROL];
    size_t pn = ar_ws_close_payload(pl, 1000, NULL);
    send_frame(&c, 0x88, pl, pn, 1);
    assert_int_equal(ar_sn_loop_turn(srv.loop), 0);
    expect_now(sv[1], "\x88\x02\x03\xe8", 4);
    assert_int_equal(recv(sv[1], resp, sizeof(resp), 0), 0); /* then the server's FIN */
    close(sv[1]);
    assert_int_equal(ar_sn_loop_turn(srv.loop), 0); /* our FIN: closed and freed in the turn */
    assert_int_equal(atomic_load(&srv.closed), 1);
    assert_int_equal(atomic_load(&srv.last_code), 1000);
    assert_int_equal(atomic_load(&srv.freed), 1);
    assert_int_equal(ar_sn_loop_conns(srv.loop), 0);
    /* Not a socket epoll can watch: closed. */
    int fd = open("/dev/null", O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(ar_sn_loop_adopt(srv.loop, fd), AR_ESYS);
    assert_int_equal(fcntl(fd, F_GETFD), -1);
    ar_sn_loop_free(srv.loop);
    /* Refused by accept_cb: closed before anything else. */
    h.accept_cb = refuse_all;
    assert_int_equal(ar_sn_loop_new(&conf, &h, &srv.loop), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    assert_int_equal(ar_sn_loop_adopt(srv.loop, sv[0]), AR_EPERM);
    assert_int_equal(ar_sn_loop_conns(srv.loop), 0);
    assert_int_equal(recv(sv[1], resp, sizeof(resp), 0), 0);
    close(sv[1]);
    ar_sn_loop_free(srv.loop);
    srv.loop = NULL;
}

int main(void)
{
    /* As in every server process: the TLS libraries write() to sockets the peer may have closed
     * (net.h), and our clients' writes may meet a server that has already dropped them. */
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo_and_close),  cmocka_unit_test(test_protocol_errors),
        cmocka_unit_test(test_upgrade_refused), cmocka_unit_test(test_timeouts),
        cmocka_unit_test(test_small_partial),   cmocka_unit_test(test_slow_reader),
        cmocka_unit_test(test_tls_openssl),     cmocka_unit_test(test_tls13_detached),
        cmocka_unit_test(test_tls_wolfssl),     cmocka_unit_test(test_tls_boringssl),
        cmocka_unit_test(test_alloc_failure),   cmocka_unit_test(test_reuseport),
        cmocka_unit_test(test_killed_in_send),  cmocka_unit_test(test_paced_writer),
        cmocka_unit_test(test_adopt_and_turn),  cmocka_unit_test(test_conn_area),
        cmocka_unit_test(test_bare_syscalls),   cmocka_unit_test(test_send_room),
        cmocka_unit_test(test_header_len),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
