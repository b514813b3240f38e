/*
 * The loop harness of loop_harness.h.
 */
#include "loop_harness.h"
#include "net/internal.h"
#include "sig_util.h"

#include "anteroom/alloc.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

lh_t LH;

static const char *const origins[] = {SU_ORIGIN};
static const ar_ws_upgrade_conf_t upconf = {origins, 1, 0, AR_SIG_SUBPROTOCOL};

static struct {
    ar_sn_handler_t inner; /* srv.c's callbacks */
    pthread_t thread;
    uint16_t port;
    int efd;
    void (*fn)(void *);
    void *arg;
    atomic_int done;
    char failed[512]; /* the first LH_CHECK that failed, written before done */
} H;

void lh_check_failed(const char *what, const char *file, int line)
{
    if (!H.failed[0])
        snprintf(H.failed, sizeof(H.failed), "%s:%d: on the loop: %s", file, line, what);
}

/* On the test's thread: a check that failed on the loop's fails the test now. */
static void check_loop_failures(void)
{
    if (H.failed[0]) {
        char msg[sizeof(H.failed)];
        memcpy(msg, H.failed, sizeof(msg));
        H.failed[0] = '\0';
        fail_msg("%s", msg);
    }
}

static int w_open(ar_sn_conn_t *c, const ar_ws_upgrade_t *up, void *data)
{
    int rc = H.inner.open_cb(c, up, data);
    if (rc == 0 && strcmp(up->path, "/dead") == 0)
        (void)shutdown(c->fd, SHUT_WR); /* every later write fails (EPIPE) */
    LH.last = ar__sig_conn_of(c);
    atomic_fetch_add(&LH.opened, 1);
    return rc;
}

static void w_free(ar_sn_conn_t *c, void *data)
{
    H.inner.free_cb(c, data);
    atomic_fetch_add(&LH.freed, 1);
}

static void on_run(int fd, void *data)
{
    (void)data;
    uint64_t v;
    (void)!read(fd, &v, sizeof(v));
    if (H.fn) {
        void (*fn)(void *) = H.fn;
        H.fn = NULL;
        fn(H.arg);
        atomic_store(&H.done, 1);
    }
}

static void *run(void *arg)
{
    (void)arg;
    assert_int_equal(ar_sn_loop_run(LH.srv->loop), 0);
    return NULL;
}

void lh_start(int bus, long inbox_max)
{
    memset(&LH, 0, sizeof(LH));
    memset(&H, 0, sizeof(H));
    ar_sig_init();
    LH.conf.jurisdiction = (char *)"eu";
    LH.conf.inbox_max = inbox_max;
    LH.conf.admit_lag = 60000; /* ms: only the inbox's bytes make it behind here */
    LH.conf.grace = 30000;
    LH.srv = ar_calloc(1, sizeof(*LH.srv));
    assert_non_null(LH.srv);
    LH.srv->conf = &LH.conf;
    LH.srv->node_id = 1;
    ar__sig_net_handler(LH.srv, &H.inner);
    ar_sn_handler_t h = H.inner;
    h.open_cb = w_open;
    h.free_cb = w_free;
    ar_sn_conf_t nc = {
        .upgrade = &upconf, .max_message = AR_SIG_FRAME_MAX, .conn_area = sizeof(ar__sig_conn_t)};
    assert_int_equal(ar_sn_loop_new(&nc, &h, &LH.srv->loop), 0);
    if (bus)
        assert_int_equal(ar__sig_bus_new(LH.srv), 0);
    H.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    assert_true(H.efd >= 0);
    assert_int_equal(ar_sn_loop_watch(LH.srv->loop, H.efd, on_run, NULL), 0);
    assert_int_equal(ar_sn_loop_listen(LH.srv->loop, "127.0.0.1", 0, &H.port), 0);
    assert_int_equal(pthread_create(&H.thread, NULL, run, NULL), 0);
}

void lh_stop(void)
{
    ar__sig_srv_t *srv = LH.srv;
    ar_sn_loop_stop(srv->loop);
    pthread_join(H.thread, NULL);
    ar_sn_loop_free(srv->loop); /* what is still open closes: srv.c's callbacks run here */
    ar__sig_move_stop(srv);     /* a test that started it (test_move.c) */
    assert_null(srv->conns);
    su_recs_free(srv);
    ar__sig_bus_stop(srv);
    ar__sig_invites_free(srv);
    close(H.efd);
    su_srv_free(srv);
    LH.srv = NULL;
    check_loop_failures(); /* after the loop's thread is joined: it does not run on */
}

void lh_run(void (*fn)(void *), void *arg)
{
    atomic_store(&H.done, 0);
    H.arg = arg;
    H.fn = fn; /* the eventfd's write orders these before the loop reads them */
    uint64_t one = 1;
    assert_int_equal(write(H.efd, &one, sizeof(one)), (ssize_t)sizeof(one));
    lh_wait(&H.done, 1);
    check_loop_failures();
}

void lh_wait(atomic_int *v, int want)
{
    for (int i = 0; i < 500 && atomic_load(v) < want; i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(atomic_load(v), want);
}

int lh_dial(const char *path)
{
    int want = atomic_load(&LH.opened) + 1;
    int fd = su_dial(H.port, path);
    lh_wait(&LH.opened, want);
    return fd;
}

static int read_full(int fd, uint8_t *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = recv(fd, buf + got, n - got, 0);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

int lh_read(int fd, char *text, size_t cap, uint16_t *code)
{
    uint8_t hdr[8];
    if (read_full(fd, hdr, 2) != 0)
        return -1;
    int op = hdr[0] & 0x0f;
    uint64_t len = hdr[1] & 0x7f; /* a server's frames are not masked */
    if (len == 126) {
        if (read_full(fd, hdr, 2) != 0)
            return -1;
        len = (uint64_t)hdr[0] << 8 | hdr[1];
    } else if (len == 127) {
        if (read_full(fd, hdr, 8) != 0)
            return -1;
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | hdr[i];
    }
    static uint8_t payload[AR_SIG_FRAME_MAX + 64];
    if (len > sizeof(payload) || read_full(fd, payload, (size_t)len) != 0)
        return -1;
    if (text && cap) {
        size_t n = len < cap - 1 ? (size_t)len : cap - 1;
        memcpy(text, payload, n);
        text[n] = '\0';
    }
    if (code)
        *code = (uint16_t)(op == 0x8 && len >= 2 ? payload[0] << 8 | payload[1] : 0);
    return op;
}

/* On the loop: the key's public half into the worker's keyring (cmocka's assertions fail a
 * test only from the test's thread, so su_trust is not used here). */
static void trust(void *arg)
{
    const ar_token_key_t *key = arg;
    ar_token_key_t pub;
    memset(&pub, 0, sizeof(pub));
    memcpy(pub.kid, key->kid, sizeof(pub.kid));
    memcpy(pub.pk, key->pk, sizeof(pub.pk));
    LH_CHECK(ar_token_keyring_add(&LH.srv->keys, &pub) == 0);
}

void lh_trust(const ar_token_key_t *key)
{
    lh_run(trust, (void *)key);
}
