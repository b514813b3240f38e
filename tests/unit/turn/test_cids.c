/* RFC 6062 parked peer connections: the sweep that closes them after 30 s or when their
 * allocation ends, called by worker 0 with its own loop's clock for connections that any worker
 * parked with its own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "turn/daemon.h"

#include "anteroom/alloc.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct {
    ar__turn_daemon_t *d;
    ar__turn_tcplife_t *life; /* the test holds one reference, each parked entry another */
    int far[4];               /* the other ends of the parked sockets */
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = ar_calloc(1, sizeof(*f));
    assert_non_null(f);
    f->d = ar_calloc(1, sizeof(*f->d));
    f->life = ar_calloc(1, sizeof(*f->life));
    assert_non_null(f->d);
    assert_non_null(f->life);
    pthread_mutex_init(&f->d->cids.lock, NULL);
    atomic_init(&f->life->dead, false);
    atomic_init(&f->life->refs, 1);
    for (int i = 0; i < 4; i++)
        f->far[i] = -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    ar__turn_cids_t *t = &f->d->cids;
    for (size_t i = 0; i < t->n; i++) {
        close(t->e[i].fd);
        ar__turn_tcplife_put(t->e[i].life);
    }
    for (int i = 0; i < 4; i++) {
        if (f->far[i] >= 0)
            close(f->far[i]);
    }
    pthread_mutex_destroy(&t->lock);
    ar__turn_tcplife_put(f->life);
    ar_free(f->d);
    ar_free(f);
    return 0;
}

/* Parks one end of a fresh socket pair as park() does, at_ms on the parking worker's clock. */
static void park_at(fixture_t *f, int slot, uint32_t cid, uint64_t at_ms)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    ar__turn_parked_t *p = &f->d->cids.e[f->d->cids.n++];
    memset(p, 0, sizeof(*p));
    p->cid = cid;
    p->fd = sv[0];
    p->life = ar__turn_tcplife_get(f->life);
    p->at_ms = at_ms;
    f->far[slot] = sv[1];
}

/* Whether the parked end of slot's pair was closed: its other end then reads EOF. */
static bool closed(const fixture_t *f, int slot)
{
    char c;
    ssize_t n = recv(f->far[slot], &c, 1, MSG_DONTWAIT);
    if (n < 0)
        assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
    return n == 0;
}

/* Worker 1 parks a connection in the millisecond after worker 0's loop last read its clock;
 * worker 0's sweep then runs with an earlier time than the entry's. That connection is new:
 * it must stay parked for its ConnectionBind (the sweep used to compute its age as a wrapped
 * 2^64 - 1 ms and close it, and the client's ConnectionBind got 400). */
static void test_parked_by_a_worker_whose_clock_is_ahead(void **state)
{
    fixture_t *f = *state;
    park_at(f, 0, 7, 1000);
    park_at(f, 1, 8, 1005);
    ar__stream_cids_sweep(f->d, 999);
    assert_int_equal(f->d->cids.n, 2);
    assert_false(closed(f, 0));
    assert_false(closed(f, 1));
    assert_int_equal(atomic_load(&f->life->refs), 3);
}

/* RFC 6062 section 5.3: an unbound peer connection lives 30 s, counted from its parking. */
static void test_thirty_seconds(void **state)
{
    fixture_t *f = *state;
    park_at(f, 0, 7, 1000);
    park_at(f, 1, 8, 2000);
    ar__stream_cids_sweep(f->d, 31000); /* 30 s exactly: still parked */
    assert_int_equal(f->d->cids.n, 2);
    ar__stream_cids_sweep(f->d, 31001);
    assert_int_equal(f->d->cids.n, 1);
    assert_int_equal(f->d->cids.e[0].cid, 8);
    assert_true(closed(f, 0));
    assert_false(closed(f, 1));
    assert_int_equal(atomic_load(&f->life->refs), 2);
}

/* An allocation that ended takes its parked connections with it, whatever their age. */
static void test_dead_allocation(void **state)
{
    fixture_t *f = *state;
    park_at(f, 0, 7, 1000);
    atomic_store(&f->life->dead, true);
    ar__stream_cids_sweep(f->d, 999);
    assert_int_equal(f->d->cids.n, 0);
    assert_true(closed(f, 0));
    assert_int_equal(atomic_load(&f->life->refs), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_parked_by_a_worker_whose_clock_is_ahead, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_thirty_seconds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_allocation, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
