/*
 * A publication that finds no memory to wait in the publisher thread's queue (src/signal/bus.c,
 * publish; review 6b). It is dropped and counted (anteroom_signal_bus_dropped_total), not
 * published at once: that would put it on the wire ahead of the publications still queued, and
 * the receivers rely on one publisher's order. A dropped frame leaves a lost notice in its place
 * (bus_internal.h ACT_LOST), so that the recipient's owner tells its client (test_lost_notice.c
 * has the receiving side). The bus runs with its publisher thread over a
 * stand-in for libnats (fake_nats.c) whose gate holds that thread inside its first publication,
 * so that the next ones wait in the queue; the allocation hook fails exactly the queue entry.
 */
#include "bus_internal.h"
#include "bus_worker.h"
#include "fake_nats.h"
#include "sig_util.h"

#include "anteroom/alloc.h"

#include <jansson.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

typedef su_bus_fixture_t fixture_t;

static int setup(void **state)
{
    *state = su_bus_fixture_new(1 << 20);
    return 0;
}

/* A relayed frame for peer c (no session of this worker's): published on its to-subject. */
static void send_to(fixture_t *f, char c)
{
    int n = snprintf(f->srv->pub + AR__SIG_TO_HDR, AR_SIG_OUT_MAX,
                     "{\"v\":1,\"type\":\"candidate\",\"seq\":0,\"c\":\"%c\"}", c);
    ar__sig_bus_to(f->srv, su_peer(c), AR__SIG_ACT_NONE, (size_t)n);
}

/* Which peer the i-th publication went to ('?' for another subject). */
static char published_to(size_t i)
{
    fake_pub_t p = fake_nats_get(i);
    const char *peer = su_to_peer(p.subj);
    return peer ? peer[0] : '?';
}

/* The i-th publication is a lost notice for n frames (and so went to its peer, published_to). */
static void assert_notice(size_t i, unsigned n)
{
    fake_pub_t p = fake_nats_get(i);
    assert_int_equal(p.len, NOTICE_LEN);
    assert_int_equal((uint8_t)p.data[24], ACT_LOST);
    unsigned got = (unsigned)(uint8_t)p.data[25] | (unsigned)(uint8_t)p.data[26] << 8;
    assert_int_equal(got, n);
}

/* a is being published (the thread holds it), b waits in the queue, c finds no memory, d
 * follows: a, b and d go out in that order, c is counted as a dropped frame and its notice
 * goes where it would have been. */
static void test_dropped_not_ahead(void **state)
{
    fixture_t *f = *state;
    ar_metric_t *dropped = f->srv->bus->m_dropped[K_TO];
    assert_non_null(dropped);
    int64_t before = ar_metric_value(dropped);
    fake_nats_gate(0);
    send_to(f, 'a');
    assert_int_equal(fake_nats_wait_entered(1), 0); /* the thread is inside a's publication */
    send_to(f, 'b');
    ar_alloc_fail_after(0);
    send_to(f, 'c');
    assert_int_equal(ar_alloc_fail_after(-1), 1); /* exactly the queue entry failed */
    send_to(f, 'd');
    fake_nats_gate(1);        /* the gate held every publication; the order is checked below */
    ar__sig_bus_stop(f->srv); /* the thread publishes what is queued, then ends */
    assert_int_equal(fake_nats_count(), 4);
    assert_int_equal(published_to(0), 'a');
    assert_int_equal(published_to(1), 'b');
    assert_int_equal(published_to(2), 'c');
    assert_notice(2, 1);
    assert_int_equal(published_to(3), 'd');
    assert_true(fake_nats_get(3).len > NOTICE_LEN);
    assert_int_equal(ar_metric_value(dropped) - before, 1);
}

/* Every allocation failing for a while: each frame is published whole or counted, in order,
 * one notice counts the ten consecutive drops for b, and the queue works on afterwards (no
 * entry leaks: LeakSanitizer under the asan preset). */
static void test_many_dropped(void **state)
{
    fixture_t *f = *state;
    ar_metric_t *dropped = f->srv->bus->m_dropped[K_TO];
    int64_t before = ar_metric_value(dropped);
    fake_nats_gate(0);
    send_to(f, 'a');
    assert_int_equal(fake_nats_wait_entered(1), 0);
    ar_alloc_fail_after(0);
    for (int i = 0; i < 10; i++)
        send_to(f, 'b');
    assert_int_equal(ar_alloc_fail_after(-1), 10);
    assert_int_equal(ar_metric_value(dropped) - before, 10);
    send_to(f, 'c');
    send_to(f, 'd');
    fake_nats_gate(1);
    ar__sig_bus_stop(f->srv);
    assert_int_equal(fake_nats_count(), 4);
    assert_int_equal(published_to(0), 'a');
    assert_int_equal(published_to(1), 'b');
    assert_notice(1, 10);
    assert_int_equal(published_to(2), 'c');
    assert_int_equal(published_to(3), 'd');
}

/* A frame for a peer owned elsewhere, while a frame for a session of this worker waits in the
 * local queue (bus.c, ar__sig_bus_to), finds no memory for its entry there: dropped (never out
 * of order), counted, and its recipient told by a lost notice (it used to be counted only). */
static void test_local_queue_oom_told(void **state)
{
    fixture_t *f = *state;
    ar_metric_t *dropped = f->srv->bus->m_dropped[K_TO];
    int64_t before = ar_metric_value(dropped);
    ar__sig_rec_t *r = ar__sig_rec_get(f->srv, su_peer('o'));
    assert_non_null(r);
    r->owner = f->srv->node_id;
    assert_non_null(ar__sig_sess_link_new(f->srv, r, 0)); /* ours, as test_invite.c makes it */
    send_to(f, 'o');                                      /* ours: waits in the local queue */
    assert_non_null(f->srv->bus->lhead);
    ar_alloc_fail_after(0);
    send_to(f, 'b');
    assert_true(ar_alloc_fail_after(-1) >= 1);
    assert_int_equal(ar_metric_value(dropped) - before, 1);
    ar__sig_bus_stop(f->srv);
    assert_int_equal(fake_nats_count(), 1);
    assert_int_equal(published_to(0), 'b');
    assert_notice(0, 1);
}

/* A notice for two frames that libnats refuses until the end: stopping drops it, and both
 * frames are counted as untold (it used to count 1). */
static void test_notice_refused_at_stop(void **state)
{
    fixture_t *f = *state;
    ar_metric_t *untold = f->srv->bus->m_untold;
    assert_non_null(untold);
    fake_nats_fail_publishes(NATS_INSUFFICIENT_BUFFER);
    ar_alloc_fail_after(0);
    send_to(f, 'b');
    send_to(f, 'b');
    assert_int_equal(ar_alloc_fail_after(-1), 2); /* one notice for both */
    ar__sig_bus_stop(f->srv);                     /* tried at once, refused, dropped */
    assert_int_equal(fake_nats_count(), 0);
    assert_int_equal(ar_metric_value(untold), 2);
}

/* A frame libnats refuses leaves its notice at the queue's head with the frame's queueing time,
 * not the time of the refusal: the queue's age (admission control, bus_node.c) is not reset
 * by a drop at its head. */
static void test_head_notice_keeps_age(void **state)
{
    fixture_t *f = *state;
    ar__sig_bus_t *b = f->srv->bus;
    fake_nats_gate(0);
    fake_nats_fail_publishes(NATS_INSUFFICIENT_BUFFER);
    send_to(f, 'a');
    assert_int_equal(fake_nats_wait_entered(1), 0); /* the thread is inside a's publication */
    struct timespec ts = {0, 200 * 1000000L};
    nanosleep(&ts, NULL);
    uint64_t before_refusal = mono_ms();
    fake_nats_gate(1); /* refused now, 200 ms after it was queued */
    uint64_t at = 0;
    for (int i = 0; i < 5000 && !at; i++) {
        pthread_mutex_lock(&b->pmu);
        if (b->phead && b->phead->notice)
            at = b->phead->at_ms;
        pthread_mutex_unlock(&b->pmu);
        if (!at)
            nanosleep(&(struct timespec){0, 1000000L}, NULL);
    }
    assert_true(at != 0);
    assert_true(at < before_refusal); /* the frame's queueing time, however slow the machine */
    fake_nats_fail_publishes(NATS_OK);
}

/* A record whose text finds no memory (json_dumps, publish_json) is counted as a dropped
 * record, not lost without a trace; the next one goes out. */
static void test_record_text_dropped(void **state)
{
    fixture_t *f = *state;
    ar_metric_t *dropped = f->srv->bus->m_dropped[K_REC];
    assert_non_null(dropped);
    int64_t before = ar_metric_value(dropped);
    ar__sig_bus_rec(f->srv, "sess", su_peer('a'), json_pack("{s:s}", "p", su_peer('a')));
    json_t *o = json_pack("{s:s}", "p", su_peer('b'));
    assert_non_null(o);
    ar_alloc_fail_after(0);
    ar__sig_bus_rec(f->srv, "sess", su_peer('b'), o);
    assert_true(ar_alloc_fail_after(-1) >= 1);
    assert_int_equal(ar_metric_value(dropped) - before, 1);
    ar__sig_bus_rec(f->srv, "sess", su_peer('c'), json_pack("{s:s}", "p", su_peer('c')));
    ar__sig_bus_stop(f->srv);
    assert_int_equal(fake_nats_count(), 2);
    assert_string_equal(fake_nats_get(0).subj + 11, su_peer('a'));
    assert_string_equal(fake_nats_get(1).subj + 11, su_peer('c'));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dropped_not_ahead, setup, su_bus_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_local_queue_oom_told, setup, su_bus_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_notice_refused_at_stop, setup,
                                        su_bus_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_head_notice_keeps_age, setup, su_bus_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_many_dropped, setup, su_bus_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_record_text_dropped, setup, su_bus_fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
