/*
 * Messages libnats drops before our callback takes them (src/signal/bus.c, subscribe and
 * on_nats_error): each subscription's bound in libnats is in bytes, above the inbox's, with no
 * count (libnats' default, 65,536 messages, would drop silently far below the inbox's bound for
 * 56-byte record updates); a drop libnats reports tells every session it may have lost frames,
 * and is counted and warned. libnats is stood in for (fake_nats.c).
 */
#include "bus_internal.h"
#include "bus_worker.h"
#include "fake_nats.h"
#include "sig_util.h"

#include "anteroom/alloc.h"
#include "anteroom/log.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#define INBOX_MAX (1 << 20)

static int setup(void **state)
{
    *state = su_bus_fixture_new(INBOX_MAX);
    return 0;
}

/* Every subscription the bus's start made is bounded by bytes (256 MiB, above the inbox's
 * 1 MiB here: the inbox's bound, which tells each peer of its gap, is the one that acts), not by
 * a count; so is a session's own subscription, made when it is held outside its first pair. */
static void test_pending_bounded_by_bytes(void **state)
{
    su_bus_fixture_t *f = *state;
    size_t subs = fake_nats_subs();
    assert_true(subs >= 8);
    int msgs = 0, bytes = 0;
    assert_int_equal(fake_nats_pending_limits(&msgs, &bytes), (int)subs);
    assert_true(msgs < 0); /* no count */
    assert_int_equal(bytes, 256 << 20);
    ar__sig_sess_t *s = su_sess_held(f->srv, 'a', 0);
    s->rec->home[0] = s->rec->home[1] = 0x7777; /* not ours: it needs its own subscription */
    assert_int_equal(ar__sig_bus_sub_to(f->srv, s), 0);
    assert_int_equal(fake_nats_subs(), subs + 1);
    assert_int_equal(fake_nats_pending_limits(&msgs, &bytes), (int)subs + 1);
    assert_true(msgs < 0);
    assert_int_equal(bytes, 256 << 20);
    ar__sig_bus_unsub_to(f->srv, s);
}

/* libnats reports a slow consumer: the sessions this worker owns are told of a loss at their
 * next welcome, the drops are counted by kind="nats", and a warning says how many. */
static void test_slow_consumer_tells_sessions(void **state)
{
    su_bus_fixture_t *f = *state;
    ar__sig_bus_t *b = f->srv->bus;
    ar__sig_sess_t *a = su_sess_held(f->srv, 'a', 0);
    ar__sig_sess_t *c = su_sess_held(f->srv, 'c', 0);
    int fd = su_log_to_file();
    fake_nats_slow_consumer(7);
    ar__sig_bus_wake(f->srv);
    assert_true(ar__sig_sess_has_cold(a) && a->cold->lost >= 1);
    assert_true(ar__sig_sess_has_cold(c) && c->cold->lost >= 1);
    assert_int_equal(ar_metric_value(b->m_nats_dropped), 7);
    assert_int_equal(su_log_count(fd, "signal_bus_slow_consumer"), 1);
    /* Counted once: a later wake-up with nothing new from libnats adds nothing. */
    ar__sig_bus_wake(f->srv);
    assert_int_equal(ar_metric_value(b->m_nats_dropped), 7);
    fake_nats_slow_consumer(3);
    ar__sig_bus_wake(f->srv);
    assert_int_equal(ar_metric_value(b->m_nats_dropped), 10);
    assert_int_equal(su_log_count(fd, "signal_bus_slow_consumer"), 2);
    su_log_back(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pending_bounded_by_bytes, setup,
                                        su_bus_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_slow_consumer_tells_sessions, setup,
                                        su_bus_fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
