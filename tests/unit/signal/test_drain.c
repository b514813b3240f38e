/*
 * The paced drain (src/signal/drain.c): how many clients each tick tells, and the cursor over
 * the worker's connections while some of them close between ticks. Connections are closed and
 * freed through srv.c's own net callbacks (on_close, on_free), so under AddressSanitizer a
 * cursor left on a freed connection is a use after free.
 */
#include "internal.h"
#include "net/internal.h"
#include "sig_util.h"

#include "anteroom/alloc.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

static void test_batch_arithmetic(void **state)
{
    (void)state;
    /* 30 s: 15 ticks over the first 15 s, an even share each, everyone by the 15th. */
    size_t left = 15000, told = 0;
    for (uint32_t now = 100; now < 115; now++) {
        size_t n = ar__sig_drain_batch(left, 100, 130, now);
        assert_int_equal(n, 1000);
        left -= n;
        told += n;
    }
    assert_int_equal(told, 15000);
    assert_int_equal(ar__sig_drain_batch(0, 100, 130, 114), 0);
    /* Shares round up, so nobody is left over for the last tick alone. */
    assert_int_equal(ar__sig_drain_batch(1, 100, 130, 100), 1);
    assert_int_equal(ar__sig_drain_batch(16, 100, 130, 100), 2);
    /* Connections that closed meanwhile: what is left is spread over the ticks left. */
    assert_int_equal(ar__sig_drain_batch(100, 100, 130, 110), 20);
    /* A loop too busy to tick: the ticks it missed are not waited for. */
    assert_int_equal(ar__sig_drain_batch(1000, 100, 130, 112), 334);
    assert_int_equal(ar__sig_drain_batch(1000, 100, 130, 114), 1000);
    assert_int_equal(ar__sig_drain_batch(1000, 100, 130, 129), 1000);
    /* 4 s: two ticks; 6 s: three. */
    assert_int_equal(ar__sig_drain_batch(200, 100, 104, 100), 100);
    assert_int_equal(ar__sig_drain_batch(100, 100, 104, 101), 100);
    assert_int_equal(ar__sig_drain_batch(200, 100, 106, 100), 67);
    assert_int_equal(ar__sig_drain_batch(133, 100, 106, 101), 67);
    assert_int_equal(ar__sig_drain_batch(66, 100, 106, 102), 66);
    /* Under 2 s to spread over (drain-within under 4 s, or 0): everyone at once. */
    assert_int_equal(ar__sig_drain_batch(500, 100, 103, 100), 500);
    assert_int_equal(ar__sig_drain_batch(500, 100, 100, 100), 500);
    /* A clock behind the start (never, but not a huge share): the first share. */
    assert_int_equal(ar__sig_drain_batch(300, 100, 106, 99), 100);
}

/* The worker's connection list as the net layer builds it (srv.c on_open puts new ones first). */
typedef struct {
    ar_sn_conn_t c;
    ar__sig_conn_t area; /* the connection's state, in its area as the net layer allocates it */
    ar__sig_conn_t *cn;  /* &area while open */
} fake_t;
_Static_assert(offsetof(fake_t, area) == sizeof(ar_sn_conn_t), "the state is in c's area");

#define N 30

static ar_sn_handler_t H;

static ar__sig_conn_t *open_conn(ar__sig_srv_t *srv, fake_t *f, uint8_t state)
{
    memset(f, 0, sizeof(*f));
    ar__sig_conn_t *cn = &f->area;
    cn->c = &f->c;
    cn->srv = srv;
    cn->state = state & 3u;
    cn->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = cn;
    srv->conns = cn;
    f->cn = cn;
    return cn;
}

static void close_conn(ar__sig_srv_t *srv, fake_t *f)
{
    H.close_cb(&f->c, 1000, srv);
    H.free_cb(&f->c, srv); /* the state let go of (its memory is c's) */
    f->cn = NULL;
}

static size_t marked(const ar__sig_srv_t *srv)
{
    size_t n = 0;
    for (const ar__sig_conn_t *cn = srv->conns; cn; cn = cn->next)
        n += cn->drain_wait;
    return n;
}

static void test_cursor(void **state)
{
    (void)state;
    ar_signal_conf_t conf;
    memset(&conf, 0, sizeof(conf)); /* no drain-urls: nothing is sent, only marks change */
    conf.drain_within = 6000;
    ar__sig_srv_t *srv = su_srv_new(1);
    srv->conf = &conf;
    ar__sig_net_handler(srv, &H);
    static fake_t f[N + 1];
    for (int i = 0; i < N; i++)
        open_conn(srv, &f[i], i == 5 ? AR__SIG_C_HELLO : AR__SIG_C_LIVE);

    ar__sig_drain_begin(srv, 100);
    assert_int_equal(srv->drain_at, 106);
    assert_int_equal(srv->drain_left, N);
    assert_int_equal(marked(srv), N);
    srv->now = 100;
    ar__sig_drain_tick(srv); /* 10 of 30: the newest ten, f[29]..f[20] */
    assert_int_equal(srv->drain_left, 20);
    assert_int_equal(marked(srv), 20);
    assert_ptr_equal(srv->drain_cur, f[19].cn);
    assert_int_equal(f[20].cn->drain_wait, 0);
    assert_int_equal(f[19].cn->drain_wait, 1);

    /* Between ticks: the connection under the cursor closes, then the one after it, one ahead,
     * and one already told; a client arrives (told at its welcome, not by the cursor); the one
     * still in its hello is welcomed (told then). */
    close_conn(srv, &f[19]);
    assert_ptr_equal(srv->drain_cur, f[18].cn);
    close_conn(srv, &f[18]);
    assert_ptr_equal(srv->drain_cur, f[17].cn);
    close_conn(srv, &f[3]);
    close_conn(srv, &f[25]);
    ar__sig_conn_t *late = open_conn(srv, &f[N], AR__SIG_C_LIVE);
    f[5].cn->state = AR__SIG_C_LIVE;
    ar__sig_drain_send(srv, f[5].cn);
    assert_int_equal(srv->drain_left, 16);
    assert_int_equal(marked(srv), 16);

    srv->now = 101;
    ar__sig_drain_tick(srv); /* half of 16: f[17]..f[10] */
    assert_int_equal(srv->drain_left, 8);
    assert_int_equal(f[10].cn->drain_wait, 0);
    assert_int_equal(f[9].cn->drain_wait, 1);
    /* The last connection left closes with the cursor short of it. */
    close_conn(srv, &f[0]);
    srv->now = 102;
    ar__sig_drain_tick(srv); /* the last tick of the first half: everyone left */
    assert_int_equal(srv->drain_left, 0);
    assert_int_equal(marked(srv), 0);
    assert_null(srv->drain_cur);
    assert_int_equal(late->drain_wait, 0);
    srv->now = 103;
    ar__sig_drain_tick(srv); /* nothing more to do, nothing touched */
    assert_int_equal(srv->drain_left, 0);

    for (int i = 0; i <= N; i++)
        if (f[i].cn)
            close_conn(srv, &f[i]);
    assert_null(srv->conns);
    su_srv_free(srv);
}

/* A drain that starts with the cursor's connection closing before the first tick, and with
 * every connection closing before the last: the cursor ends on nothing, no count goes below 0. */
static void test_all_close(void **state)
{
    (void)state;
    ar_signal_conf_t conf;
    memset(&conf, 0, sizeof(conf));
    conf.drain_within = 30000;
    ar__sig_srv_t *srv = su_srv_new(1);
    srv->conf = &conf;
    ar__sig_net_handler(srv, &H);
    static fake_t f[4];
    for (int i = 0; i < 4; i++)
        open_conn(srv, &f[i], AR__SIG_C_LIVE);
    ar__sig_drain_begin(srv, 100);
    close_conn(srv, &f[3]);
    assert_ptr_equal(srv->drain_cur, f[2].cn);
    srv->now = 100;
    ar__sig_drain_tick(srv);
    assert_int_equal(srv->drain_left, 2);
    for (int i = 0; i < 3; i++)
        close_conn(srv, &f[i]);
    assert_int_equal(srv->drain_left, 0);
    assert_null(srv->drain_cur);
    srv->now = 101;
    ar__sig_drain_tick(srv);
    assert_null(srv->conns);
    su_srv_free(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_arithmetic),
        cmocka_unit_test(test_cursor),
        cmocka_unit_test(test_all_close),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
