/*
 * The connection interface on one loop: loopback TCP and TLS echo, host-name verification
 * failures, reload with a bad file, backpressure, timeouts and refused connects.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "anteroom/alloc.h"
#include "anteroom/buf.h"
#include "anteroom/conn.h"
#include "anteroom/tls.h"
#include "anteroom/worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static char dir[64], cert[128], key[128], other_cert[128], other_key[128];
static uv_loop_t loop;

/* --- the echo server --- */

typedef struct {
    ar_listener_t *listener;
    int opened, closed, last_err;
    int pause_on_open; /* backpressure test: read nothing until told */
    ar_conn_t *last;
    uint16_t peer_port; /* the port the last client connected from */
    uv_timer_t resume;  /* backpressure test: resumes reading a little later */
} server_t;

static void on_resume(uv_timer_t *t)
{
    server_t *s = t->data;
    if (s->last != NULL)
        ar_conn_resume_read(s->last);
    uv_close((uv_handle_t *)t, NULL);
}

static void srv_open(ar_conn_t *c)
{
    server_t *s = ar_conn_get_data(c);
    s->opened++;
    s->last = c;
    struct sockaddr_storage peer;
    assert_int_equal(ar_conn_peer(c, &peer), 0);
    s->peer_port = ar_addr_port((struct sockaddr *)&peer);
    if (s->pause_on_open) {
        ar_conn_pause_read(c);
        uv_timer_init(&loop, &s->resume);
        s->resume.data = s;
        uv_timer_start(&s->resume, on_resume, 100, 0);
    }
}

static void srv_read(ar_conn_t *c, const uint8_t *data, size_t len)
{
    server_t *s = ar_conn_get_data(c);
    if (s->pause_on_open)
        return; /* a sink */
    assert_int_equal(ar_conn_write(c, data, len), 0);
}

static void srv_close(ar_conn_t *c, int err)
{
    server_t *s = ar_conn_get_data(c);
    s->closed++;
    s->last_err = err;
    if (s->last == c)
        s->last = NULL;
}

static const ar_conn_cbs_t srv_cbs = {srv_open, srv_read, NULL, srv_close};

static uint16_t serve(server_t *s, ar_tls_server_t *tls, size_t out_cap)
{
    memset(s, 0, sizeof(*s));
    struct sockaddr_storage a;
    assert_int_equal(ar_addr_parse("127.0.0.1", 0, &a), 0);
    int fd = ar_listen_socket(SOCK_STREAM, (struct sockaddr *)&a, 16);
    assert_true(fd >= 0);
    socklen_t len = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    ar_conn_opts_t o = {.out_cap = out_cap};
    assert_int_equal(ar_listener_start(&loop, fd, tls, &srv_cbs, &o, s, &s->listener), 0);
    return ar_addr_port((struct sockaddr *)&a);
}

/* --- the client --- */

typedef struct {
    server_t *server; /* its listener is closed when the client is done */
    uint8_t *payload;
    size_t want, sent;
    ar_buf_t got;
    int opened, closed, err, drained, refused;
    int stop_at_refusal; /* backpressure test */
} client_t;

static void pump(ar_conn_t *c)
{
    client_t *k = ar_conn_get_data(c);
    while (k->sent < k->want) {
        size_t n = k->want - k->sent < 65536 ? k->want - k->sent : 65536;
        int rc = ar_conn_write(c, k->payload + k->sent, n);
        if (rc == AR_EAGAIN) {
            k->refused++;
            assert_true(ar_conn_outgoing(c) <= 256 * 1024);
            return;
        }
        assert_int_equal(rc, 0);
        k->sent += n;
    }
}

static void cli_open(ar_conn_t *c)
{
    client_t *k = ar_conn_get_data(c);
    k->opened = 1;
    pump(c);
}

static void cli_read(ar_conn_t *c, const uint8_t *data, size_t len)
{
    client_t *k = ar_conn_get_data(c);
    assert_int_equal(ar_buf_append(&k->got, data, len), 0);
    if (k->got.len == k->want)
        ar_conn_close(c); /* closing from inside our own callback is safe */
}

static void cli_drain(ar_conn_t *c)
{
    client_t *k = ar_conn_get_data(c);
    k->drained++;
    pump(c);
    if (k->stop_at_refusal && k->sent == k->want)
        ar_conn_close(c);
}

static void cli_close(ar_conn_t *c, int err)
{
    client_t *k = ar_conn_get_data(c);
    k->closed = 1;
    k->err = err;
    if (k->server != NULL && k->server->listener != NULL) {
        ar_listener_close(k->server->listener);
        k->server->listener = NULL;
    }
}

static const ar_conn_cbs_t cli_cbs = {cli_open, cli_read, cli_drain, cli_close};

static void on_watchdog(uv_timer_t *t)
{
    (void)t;
    fail_msg("loop did not finish in time");
}

/* Runs the loop until every handle is closed, failing after 20 s. */
static void run_loop(void)
{
    uv_timer_t dog;
    uv_timer_init(&loop, &dog);
    uv_timer_start(&dog, on_watchdog, 20000, 0);
    uv_unref((uv_handle_t *)&dog);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&dog, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
}

static void echo(uint16_t port, ar_tls_client_t *tls, const char *host, client_t *k, server_t *s,
                 size_t size)
{
    memset(k, 0, sizeof(*k));
    k->server = s;
    k->want = size;
    k->payload = malloc(size);
    for (size_t i = 0; i < size; i++)
        k->payload[i] = (uint8_t)(i * 7 + 3);
    ar_buf_init(&k->got, size);
    struct sockaddr_storage a;
    assert_int_equal(ar_addr_parse("127.0.0.1", port, &a), 0);
    ar_conn_t *c;
    assert_int_equal(
        ar_conn_connect(&loop, (struct sockaddr *)&a, tls, host, &cli_cbs, NULL, k, &c), 0);
    assert_int_equal(ar_conn_is_tls(c), tls != NULL);
    run_loop();
    assert_true(k->closed);
}

static void check_echoed(client_t *k)
{
    assert_int_equal(k->err, 0);
    assert_int_equal(k->got.len, k->want);
    assert_memory_equal(k->got.data, k->payload, k->want);
    free(k->payload);
    ar_buf_release(&k->got);
}

static void test_tcp_echo(void **state)
{
    (void)state;
    server_t s;
    client_t k;
    uint16_t port = serve(&s, NULL, 8u << 20);
    echo(port, NULL, NULL, &k, &s, 3u << 20);
    check_echoed(&k);
    assert_int_equal(s.opened, 1);
    assert_int_equal(s.closed, 1);
    assert_int_equal(s.last_err, AR_ECLOSED); /* the server saw the client hang up */
}

static void test_tls_echo(void **state)
{
    (void)state;
    ar_tls_server_t *st;
    ar_tls_client_t *ct;
    assert_int_equal(ar_tls_server_new(cert, key, &st), 0);
    assert_int_equal(ar_tls_client_new(cert, &ct), 0); /* trust our self-signed certificate */
    server_t s;
    client_t k;
    uint16_t port = serve(&s, st, 8u << 20);
    echo(port, ct, "localhost", &k, &s, 2u << 20);
    check_echoed(&k);
    assert_int_equal(s.opened, 1);
    assert_int_equal(s.closed, 1);
    /* By IP address: matched against the certificate's IP entries. */
    port = serve(&s, st, 8u << 20);
    echo(port, ct, "127.0.0.1", &k, &s, 100);
    check_echoed(&k);
    ar_tls_client_free(ct);
    ar_tls_server_free(st);
}

static void test_tls_verification_failures(void **state)
{
    (void)state;
    ar_tls_server_t *st;
    ar_tls_client_t *ct, *other;
    assert_int_equal(ar_tls_server_new(cert, key, &st), 0);
    assert_int_equal(ar_tls_client_new(cert, &ct), 0);
    assert_int_equal(ar_tls_client_new(other_cert, &other), 0);
    server_t s;
    client_t k;
    /* The certificate is trusted but names other hosts. */
    uint16_t port = serve(&s, st, 0);
    echo(port, ct, "wrong.example", &k, &s, 10);
    assert_false(k.opened);
    assert_int_equal(k.err, AR_ETLS);
    assert_int_equal(s.opened, 0); /* the server never announced the failed handshake */
    assert_int_equal(s.closed, 0);
    free(k.payload);
    ar_buf_release(&k.got);
    port = serve(&s, st, 0);
    echo(port, ct, "10.9.8.7", &k, &s, 10);
    assert_int_equal(k.err, AR_ETLS);
    free(k.payload);
    ar_buf_release(&k.got);
    /* The right name, signed by nobody the client trusts. */
    port = serve(&s, st, 0);
    echo(port, other, "localhost", &k, &s, 10);
    assert_false(k.opened);
    assert_int_equal(k.err, AR_ETLS);
    free(k.payload);
    ar_buf_release(&k.got);
    ar_tls_client_free(other);
    ar_tls_client_free(ct);
    ar_tls_server_free(st);
}

static void copy_file(const char *from, const char *to)
{
    char buf[8192];
    FILE *in = fopen(from, "r"), *out = fopen(to, "w");
    assert_non_null(in);
    assert_non_null(out);
    size_t n = fread(buf, 1, sizeof(buf), in);
    assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    fclose(out);
}

static void test_tls_reload_bad_file_keeps_serving(void **state)
{
    (void)state;
    char first[160];
    snprintf(first, sizeof(first), "%s/first.pem", dir);
    const char *names[] = {"first.example"};
    assert_int_equal(ar_tls_selfsigned_generate(other_cert, other_key, names, 1, 2), 0);
    copy_file(other_cert, first);
    ar_tls_server_t *st;
    ar_tls_client_t *ct;
    assert_int_equal(ar_tls_server_new(other_cert, other_key, &st), 0);
    FILE *fp = fopen(other_cert, "w");
    fputs("garbage\n", fp);
    fclose(fp);
    assert_int_equal(ar_tls_server_reload(st), AR_ETLS);
    /* The bad file was refused: the first certificate still serves and verifies. */
    server_t s;
    client_t k;
    assert_int_equal(ar_tls_client_new(first, &ct), 0);
    uint16_t port = serve(&s, st, 0);
    echo(port, ct, "first.example", &k, &s, 1000);
    check_echoed(&k);
    /* A good new certificate is taken on reload: the old one no longer verifies, the new does. */
    const char *names2[] = {"second.example"};
    assert_int_equal(ar_tls_selfsigned_generate(other_cert, other_key, names2, 1, 2), 0);
    assert_int_equal(ar_tls_server_reload(st), 0);
    port = serve(&s, st, 0);
    echo(port, ct, "first.example", &k, &s, 10);
    assert_int_equal(k.err, AR_ETLS);
    free(k.payload);
    ar_buf_release(&k.got);
    ar_tls_client_free(ct);
    assert_int_equal(ar_tls_client_new(other_cert, &ct), 0);
    port = serve(&s, st, 0);
    echo(port, ct, "second.example", &k, &s, 1000);
    check_echoed(&k);
    ar_tls_client_free(ct);
    ar_tls_server_free(st);
    unlink(first);
}

/*
 * The server reads nothing until the client's outgoing buffer refuses a write; then it reads
 * everything, on_drain fires and the client finishes. Run over TCP and TLS.
 */
static void backpressure(ar_tls_server_t *st, ar_tls_client_t *ct)
{
    server_t s;
    client_t k;
    uint16_t port = serve(&s, st, 0);
    s.pause_on_open = 1;
    memset(&k, 0, sizeof(k));
    k.server = &s;
    k.stop_at_refusal = 1;
    k.want = 64u << 20; /* far more than socket buffers and the cap hold */
    k.payload = calloc(1, k.want);
    struct sockaddr_storage a;
    assert_int_equal(ar_addr_parse("127.0.0.1", port, &a), 0);
    ar_conn_t *c;
    assert_int_equal(ar_conn_connect(&loop, (struct sockaddr *)&a, ct, ct ? "localhost" : NULL,
                                     &cli_cbs, NULL, &k, &c),
                     0);
    /* Before open, writes wait in a buffer under the same cap. */
    assert_int_equal(ar_conn_write(c, k.payload, (256 << 10) + 1), AR_ETOOBIG);
    run_loop();
    assert_true(k.refused > 0);
    assert_true(k.drained > 0);
    assert_int_equal(k.sent, k.want);
    assert_int_equal(k.err, 0);
    assert_int_equal(s.closed, 1);
    free(k.payload);
}

static void test_backpressure(void **state)
{
    (void)state;
    backpressure(NULL, NULL);
    ar_tls_server_t *st;
    ar_tls_client_t *ct;
    assert_int_equal(ar_tls_server_new(cert, key, &st), 0);
    assert_int_equal(ar_tls_client_new(cert, &ct), 0);
    backpressure(st, ct);
    ar_tls_client_free(ct);
    ar_tls_server_free(st);
}

static void test_refused_and_timeout(void **state)
{
    (void)state;
    /* A port nobody listens on: the connect fails and on_close says so. */
    struct sockaddr_storage a;
    assert_int_equal(ar_addr_parse("127.0.0.1", 0, &a), 0);
    int fd = ar_listen_socket(SOCK_STREAM, (struct sockaddr *)&a, 1);
    socklen_t len = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    client_t k;
    memset(&k, 0, sizeof(k));
    ar_conn_t *c;
    assert_int_equal(
        ar_conn_connect(&loop, (struct sockaddr *)&a, NULL, NULL, &cli_cbs, NULL, &k, &c), 0);
    assert_int_equal(ar_conn_state(c), AR_CONN_CONNECTING);
    assert_string_equal(ar_conn_state_name(ar_conn_state(c)), "connecting");
    run_loop();
    assert_false(k.opened);
    assert_int_equal(k.err, AR_EIO);

    /* A listener that never speaks TLS: the handshake times out. */
    fd = ar_listen_socket(SOCK_STREAM, (struct sockaddr *)&a, 4);
    assert_true(fd >= 0);
    getsockname(fd, (struct sockaddr *)&a, &len);
    ar_tls_client_t *ct;
    assert_int_equal(ar_tls_client_new(cert, &ct), 0);
    ar_conn_opts_t o = {.handshake_timeout_ms = 200};
    memset(&k, 0, sizeof(k));
    assert_int_equal(
        ar_conn_connect(&loop, (struct sockaddr *)&a, ct, "localhost", &cli_cbs, &o, &k, &c), 0);
    run_loop();
    assert_int_equal(k.err, AR_ETIMEDOUT);
    close(fd);
    /* TLS without a name to verify is refused up front. */
    assert_int_equal(
        ar_conn_connect(&loop, (struct sockaddr *)&a, ct, NULL, &cli_cbs, NULL, &k, &c), AR_EINVAL);
    ar_tls_client_free(ct);
}

/* Connecting from a chosen local address, as a TURN relay does for TCP allocations. */
static void test_bind_addr(void **state)
{
    (void)state;
    struct sockaddr_storage local, a;
    assert_int_equal(ar_addr_parse("127.0.0.1", 0, &local), 0);
    /* A TCP port that was free a moment ago (bound, never listened on or connected). */
    int probe = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(bind(probe, (struct sockaddr *)&local, sizeof(struct sockaddr_in)), 0);
    socklen_t len = sizeof(local);
    getsockname(probe, (struct sockaddr *)&local, &len);
    close(probe);
    server_t s;
    uint16_t port = serve(&s, NULL, 0);
    client_t k;
    memset(&k, 0, sizeof(k));
    k.server = &s;
    k.want = 4;
    k.payload = malloc(4);
    memcpy(k.payload, "ping", 4);
    ar_buf_init(&k.got, 4);
    assert_int_equal(ar_addr_parse("127.0.0.1", port, &a), 0);
    ar_conn_opts_t o = {.bind_addr = (struct sockaddr *)&local};
    ar_conn_t *c;
    assert_int_equal(
        ar_conn_connect(&loop, (struct sockaddr *)&a, NULL, NULL, &cli_cbs, &o, &k, &c), 0);
    run_loop();
    if (s.peer_port != ar_addr_port((struct sockaddr *)&local))
        fail_msg("opened %d closed %d err %d got %zu peer %u", s.opened, s.closed, k.err, k.got.len,
                 s.peer_port);
    check_echoed(&k);
}

/* A write refused before the connection opened is followed by on_drain once it is open. */
static void test_drain_before_open(void **state)
{
    (void)state;
    server_t s;
    uint16_t port = serve(&s, NULL, 0);
    s.pause_on_open = 1; /* a sink */
    client_t k;
    memset(&k, 0, sizeof(k));
    k.server = &s;
    k.stop_at_refusal = 1; /* cli_drain closes once everything (nothing more) is sent */
    struct sockaddr_storage a;
    assert_int_equal(ar_addr_parse("127.0.0.1", port, &a), 0);
    ar_conn_t *c;
    assert_int_equal(
        ar_conn_connect(&loop, (struct sockaddr *)&a, NULL, NULL, &cli_cbs, NULL, &k, &c), 0);
    static uint8_t big[256 << 10];
    assert_int_equal(ar_conn_write(c, big, sizeof(big)), 0);
    assert_int_equal(ar_conn_outgoing(c), sizeof(big));
    assert_int_equal(ar_conn_write(c, "x", 1), AR_EAGAIN);
    run_loop();
    assert_true(k.opened);
    assert_int_equal(k.drained, 1);
    assert_int_equal(k.err, 0);
}

/*
 * ar_conn_want_drain: nothing to wait for on an empty buffer (0); over half full, on_drain
 * follows without any write having been refused (1); closed, AR_ESTATE.
 */
typedef struct {
    server_t *server; /* its listener is closed with the client */
    int opened_empty, armed, drained, after_close;
    size_t at_drain;
} want_t;

static void want_open(ar_conn_t *c)
{
    want_t *w = ar_conn_get_data(c);
    static uint8_t chunk[16 << 10];
    w->opened_empty = ar_conn_want_drain(c);
    /* The server reads nothing yet: once the kernel's buffers are full, bytes queue here. */
    for (int i = 0; i < 8192 && ar_conn_outgoing(c) <= (256 << 10) / 2; i++)
        assert_int_equal(ar_conn_write(c, chunk, sizeof(chunk)), 0);
    w->armed = ar_conn_want_drain(c);
}

static void want_read(ar_conn_t *c, const uint8_t *data, size_t len)
{
    (void)c, (void)data, (void)len;
}

static void want_on_drain(ar_conn_t *c)
{
    want_t *w = ar_conn_get_data(c);
    w->drained++;
    w->at_drain = ar_conn_outgoing(c);
    ar_conn_close(c);
    w->after_close = ar_conn_want_drain(c);
}

static void want_close(ar_conn_t *c, int err)
{
    want_t *w = ar_conn_get_data(c);
    assert_int_equal(err, 0);
    ar_listener_close(w->server->listener);
    w->server->listener = NULL;
}

static const ar_conn_cbs_t want_cbs = {want_open, want_read, want_on_drain, want_close};

static void test_want_drain(void **state)
{
    (void)state;
    server_t s;
    uint16_t port = serve(&s, NULL, 0);
    s.pause_on_open = 1; /* a sink that starts reading after 100 ms */
    want_t w = {.server = &s, .opened_empty = -1, .armed = -1};
    struct sockaddr_storage a;
    assert_int_equal(ar_addr_parse("127.0.0.1", port, &a), 0);
    ar_conn_t *c;
    assert_int_equal(
        ar_conn_connect(&loop, (struct sockaddr *)&a, NULL, NULL, &want_cbs, NULL, &w, &c), 0);
    run_loop();
    assert_int_equal(w.opened_empty, 0);
    assert_int_equal(w.armed, 1);
    assert_int_equal(w.drained, 1);
    assert_true(w.at_drain <= (256 << 10) / 2);
    assert_int_equal(w.after_close, AR_ESTATE);
}

/* Closing right after connecting, and writing after close. */
static void test_close_early(void **state)
{
    (void)state;
    server_t s;
    uint16_t port = serve(&s, NULL, 0);
    client_t k;
    memset(&k, 0, sizeof(k));
    k.server = &s;
    struct sockaddr_storage a;
    assert_int_equal(ar_addr_parse("127.0.0.1", port, &a), 0);
    ar_conn_t *c;
    assert_int_equal(
        ar_conn_connect(&loop, (struct sockaddr *)&a, NULL, NULL, &cli_cbs, NULL, &k, &c), 0);
    assert_int_equal(ar_conn_write(c, "early", 5), 0); /* held until open */
    ar_conn_close(c);
    ar_conn_close(c); /* twice is harmless */
    assert_int_equal(ar_conn_write(c, "late", 4), AR_ESTATE);
    run_loop();
    assert_true(k.closed);
    assert_false(k.opened);
    assert_int_equal(k.err, 0);
}

/*
 * Failing the Nth allocation anywhere on the way (listener, accept, connect, writes) must end
 * in an error callback or a refused call, never a crash, a hang or a leak (ASan checks leaks).
 */
typedef struct {
    int closed, err, got;
    uv_timer_t *giveup; /* restarted to fire at once when the client is done */
} tiny_t;

static void on_giveup(uv_timer_t *t)
{
    ar_listener_t **l = t->data;
    if (*l != NULL)
        ar_listener_close(*l);
    *l = NULL;
    uv_close((uv_handle_t *)t, NULL);
}

static void tiny_open(ar_conn_t *c)
{
    if (ar_conn_write(c, "ping", 4) != 0)
        ar_conn_close(c);
}

static void tiny_read(ar_conn_t *c, const uint8_t *data, size_t len)
{
    (void)data;
    tiny_t *t = ar_conn_get_data(c);
    t->got += (int)len;
    if (t->got >= 4)
        ar_conn_close(c);
}

static void tiny_close(ar_conn_t *c, int err)
{
    tiny_t *t = ar_conn_get_data(c);
    t->closed = 1;
    t->err = err;
    uv_timer_start(t->giveup, on_giveup, 0, 0);
}

static const ar_conn_cbs_t tiny_cbs = {tiny_open, tiny_read, NULL, tiny_close};

static void test_alloc_failures(void **state)
{
    (void)state;
    int succeeded = 0;
    for (long n = 0; n < 40; n++) {
        struct sockaddr_storage a;
        assert_int_equal(ar_addr_parse("127.0.0.1", 0, &a), 0);
        int fd = ar_listen_socket(SOCK_STREAM, (struct sockaddr *)&a, 16);
        socklen_t len = sizeof(a);
        getsockname(fd, (struct sockaddr *)&a, &len);
        server_t s;
        memset(&s, 0, sizeof(s));
        uv_timer_t giveup;
        tiny_t t = {.giveup = &giveup};
        ar_alloc_fail_after(n);
        int rc = ar_listener_start(&loop, fd, NULL, &srv_cbs, NULL, &s, &s.listener);
        ar_conn_t *c = NULL;
        if (rc == 0)
            rc = ar_conn_connect(&loop, (struct sockaddr *)&a, NULL, NULL, &tiny_cbs, NULL, &t, &c);
        /* The listener goes once the client is done, or after a while if the server hung up. */
        uv_timer_init(&loop, &giveup);
        giveup.data = &s.listener;
        uv_timer_start(&giveup, on_giveup, rc == 0 ? 300 : 0, 0);
        run_loop();
        ar_alloc_fail_after(-1);
        if (rc == 0) {
            assert_true(t.closed);
            succeeded += t.err == 0 && t.got == 4;
        } else {
            assert_int_equal(rc, AR_ENOMEM);
        }
    }
    assert_true(succeeded > 0);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/ar_conn_XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
    snprintf(key, sizeof(key), "%s/key.pem", dir);
    snprintf(other_cert, sizeof(other_cert), "%s/other.pem", dir);
    snprintf(other_key, sizeof(other_key), "%s/other.key", dir);
    if (ar_tls_selfsigned_generate(cert, key, NULL, 0, 2) != 0 ||
        ar_tls_selfsigned_generate(other_cert, other_key, NULL, 0, 2) != 0)
        return -1;
    return uv_loop_init(&loop);
}

static int teardown(void **state)
{
    (void)state;
    unlink(cert);
    unlink(key);
    unlink(other_cert);
    unlink(other_key);
    rmdir(dir);
    return uv_loop_close(&loop) == 0 ? 0 : -1; /* every handle was closed */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tcp_echo),
        cmocka_unit_test(test_tls_echo),
        cmocka_unit_test(test_tls_verification_failures),
        cmocka_unit_test(test_tls_reload_bad_file_keeps_serving),
        cmocka_unit_test(test_backpressure),
        cmocka_unit_test(test_refused_and_timeout),
        cmocka_unit_test(test_bind_addr),
        cmocka_unit_test(test_drain_before_open),
        cmocka_unit_test(test_want_drain),
        cmocka_unit_test(test_close_early),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
