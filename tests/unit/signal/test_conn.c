/*
 * A worker's connections (src/signal/srv.c) over a real loop on loopback, without the bus: what
 * happens when the send of an error is what kills the connection. The server's side of the
 * socket is shut for writing as soon as it opens, so its very first send fails and the net layer
 * drops the connection inside that send; the code that sent the error still holds the
 * connection and goes on (to close it, or to count garbage). Under AddressSanitizer this is where
 * a connection freed by its close callback would be read after free.
 */
#include "internal.h"
#include "sig_util.h"
#include "net/internal.h"

#include "anteroom/alloc.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

static const char *const origins[] = {SU_ORIGIN};
static const ar_ws_upgrade_conf_t upconf = {origins, 1, 0, AR_SIG_SUBPROTOCOL};

static struct {
    ar__sig_srv_t *srv;
    ar_signal_conf_t conf;
    ar_sn_handler_t inner; /* srv.c's callbacks, wrapped below to watch the order */
    pthread_t thread;
    uint16_t port;
    atomic_int opened, closed, freed, in_message, freed_in_message, close_code, gone_after_msg;
    atomic_int freed_state, freed_code;
} T;

static int w_open(ar_sn_conn_t *c, const ar_ws_upgrade_t *up, void *data)
{
    int rc = T.inner.open_cb(c, up, data);
    /* Every later write on this socket fails (EPIPE): the first send kills the connection. */
    if (rc == 0 && strcmp(up->path, "/dead") == 0)
        (void)shutdown(c->fd, SHUT_WR);
    atomic_fetch_add(&T.opened, 1);
    return rc;
}

static void w_message(ar_sn_conn_t *c, uint8_t op, const uint8_t *msg, size_t len, void *data)
{
    ar__sig_conn_t *cn = ar__sig_conn_of(c);
    atomic_store(&T.in_message, 1);
    T.inner.message_cb(c, op, msg, len, data);
    atomic_store(&T.in_message, 0);
    /* Still ours to read after the handler: marked gone, not freed. */
    if (cn && cn->state == AR__SIG_C_GONE)
        atomic_fetch_add(&T.gone_after_msg, 1);
}

static void w_close(ar_sn_conn_t *c, uint16_t code, void *data)
{
    atomic_store(&T.close_code, code);
    atomic_fetch_add(&T.closed, 1);
    T.inner.close_cb(c, code, data);
}

static void w_free(ar_sn_conn_t *c, void *data)
{
    ar__sig_conn_t *cn = ar__sig_conn_of(c);
    if (cn) {
        atomic_store(&T.freed_state, cn->state);
        atomic_store(&T.freed_code, cn->close_code);
    }
    if (atomic_load(&T.in_message))
        atomic_fetch_add(&T.freed_in_message, 1);
    T.inner.free_cb(c, data);
    atomic_fetch_add(&T.freed, 1);
}

static void *run(void *arg)
{
    (void)arg;
    assert_int_equal(ar_sn_loop_run(T.srv->loop), 0);
    return NULL;
}

static int setup(void **state)
{
    (void)state;
    memset(&T, 0, sizeof(T));
    ar_sig_init();
    T.srv = ar_calloc(1, sizeof(*T.srv));
    assert_non_null(T.srv);
    T.srv->conf = &T.conf;
    T.srv->node_id = 1;
    ar__sig_net_handler(T.srv, &T.inner);
    ar_sn_handler_t h = {.open_cb = w_open,
                         .message_cb = w_message,
                         .close_cb = w_close,
                         .free_cb = w_free,
                         .data = T.srv};
    ar_sn_conf_t nc = {
        .upgrade = &upconf, .max_message = AR_SIG_FRAME_MAX, .conn_area = sizeof(ar__sig_conn_t)};
    assert_int_equal(ar_sn_loop_new(&nc, &h, &T.srv->loop), 0);
    assert_int_equal(ar_sn_loop_listen(T.srv->loop, "127.0.0.1", 0, &T.port), 0);
    assert_int_equal(pthread_create(&T.thread, NULL, run, NULL), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    ar_sn_loop_stop(T.srv->loop);
    pthread_join(T.thread, NULL);
    ar_sn_loop_free(T.srv->loop);
    assert_null(T.srv->conns);
    ar_free(T.srv);
    return 0;
}

/* One masked text frame (mask zero: the payload goes as is) at f; returns its length. */
static size_t frame(uint8_t *f, const char *s)
{
    size_t len = strlen(s);
    assert_true(len < 126);
    f[0] = 0x81;
    f[1] = (uint8_t)(0x80 | len);
    memset(f + 2, 0, 4);
    memcpy(f + 6, s, len);
    return len + 6;
}

static void send_text(int fd, const char *s)
{
    uint8_t f[256];
    size_t n = frame(f, s);
    assert_int_equal(send(fd, f, n, MSG_NOSIGNAL), (ssize_t)n);
}

static void wait_for(atomic_int *v, int want)
{
    for (int i = 0; i < 500 && atomic_load(v) < want; i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(atomic_load(v), want);
}

/* A client on "/dead", opened: the server's first send to it kills the connection. */
static int dial_dead(void)
{
    int fd = su_dial(T.port, "/dead");
    wait_for(&T.opened, 1);
    return fd;
}

/* The connection was killed by a send made while its message was handled: freed, closed once,
 * still readable (marked gone) when the handler returned, not freed inside it. */
static void expect_killed_in_send(void)
{
    wait_for(&T.freed, 1);
    assert_int_equal(atomic_load(&T.closed), 1);
    assert_int_equal(atomic_load(&T.gone_after_msg), 1);
    assert_int_equal(atomic_load(&T.freed_in_message), 0);
}

/* A message before hello: error not_authenticated, then close 4001. The error kills it. */
static void test_refuse_kills_in_send(void **state)
{
    (void)state;
    int fd = dial_dead();
    send_text(fd, "{\"v\":1,\"type\":\"ping\"}");
    expect_killed_in_send();
    assert_int_equal(atomic_load(&T.close_code), 1006); /* dropped by the net layer in the send */
    assert_int_equal(atomic_load(&T.freed_state), AR__SIG_C_GONE);
    /* The session would follow the close we asked for, not the 1006 of the dead socket. */
    assert_int_equal(atomic_load(&T.freed_code), AR_SIG_CLOSE_BAD_TOKEN);
    close(fd);
}

/* Garbage: the error frame kills it, then the garbage counter runs on the same connection. */
static void test_garbage_kills_in_send(void **state)
{
    (void)state;
    int fd = dial_dead();
    send_text(fd, "{");
    expect_killed_in_send();
    assert_int_equal(atomic_load(&T.freed_code), 1006);
    close(fd);
}

/* Two frames in one read: the first kills the connection in its send, the second is not
 * handled at all, and the connection counts as closed once. */
static void test_second_frame_after_death(void **state)
{
    (void)state;
    int fd = dial_dead();
    uint8_t two[256];
    size_t n = frame(two, "{");
    n += frame(two + n, "{\"v\":1,\"type\":\"ping\"}");
    assert_int_equal(send(fd, two, n, MSG_NOSIGNAL), (ssize_t)n);
    expect_killed_in_send();
    close(fd);
}

/* A healthy connection: the same refusal closes it cleanly with the code asked for. */
static void test_refuse_clean(void **state)
{
    (void)state;
    int fd = su_dial(T.port, "/ok");
    wait_for(&T.opened, 1);
    send_text(fd, "{\"v\":1,\"type\":\"ping\"}");
    uint8_t buf[512];
    size_t got = 0;
    ssize_t r;
    while (got < sizeof(buf) && (r = recv(fd, buf + got, sizeof(buf) - got, 0)) > 0)
        got += (size_t)r;
    /* error frame, then a close frame with 4001 */
    assert_true(got > 4);
    assert_int_equal(buf[0], 0x81);
    size_t elen = buf[1] & 0x7f;
    assert_true(2 + elen + 4 <= got);
    char text[200];
    assert_true(elen < sizeof(text));
    memcpy(text, buf + 2, elen);
    text[elen] = '\0';
    assert_non_null(strstr(text, "not_authenticated"));
    const uint8_t *cf = buf + 2 + elen;
    assert_int_equal(cf[0], 0x88);
    assert_int_equal((cf[2] << 8) | cf[3], AR_SIG_CLOSE_BAD_TOKEN);
    close(fd);
    wait_for(&T.freed, 1);
    assert_int_equal(atomic_load(&T.freed_code), AR_SIG_CLOSE_BAD_TOKEN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_refuse_kills_in_send, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_kills_in_send, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_frame_after_death, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuse_clean, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
