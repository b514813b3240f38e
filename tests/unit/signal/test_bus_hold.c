/*
 * Publications while the subscribing connection is away (src/signal/bus.c, pub_main): after a
 * NATS server restart or a network cut the two connections of a worker come back on their own,
 * and a worker that published (claims, records, hand-over answers) before its subscriptions were
 * in place again could not hear the answers, nor the frames for its sessions (docs/signal.md,
 * "Publications held while the subscriptions are away"). The publisher thread holds the queue,
 * in order, from nc's disconnection until a round trip on nc after its reconnection; a queue full
 * meanwhile drops and counts instead of stopping the loop; stopping does not wait. libnats is
 * stood in for (fake_nats.c), its connection callbacks called from here.
 */
#include "bus_internal.h"
#include "bus_worker.h"
#include "fake_nats.h"
#include "sig_util.h"

#include "anteroom/alloc.h"
#include "anteroom/log.h"

#include <jansson.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

typedef su_bus_fixture_t fixture_t;

/* Frames of FRAME_BYTES; the queue's bound holds three of them, not four. */
#define FRAME_BYTES 1000
#define INBOX_MAX (3 * (FRAME_BYTES + 200))

static int setup(void **state)
{
    *state = su_bus_fixture_new(INBOX_MAX);
    fake_nats_record_flushes(1);
    return 0;
}

/* A relayed frame of FRAME_BYTES for peer c (no session here): published on its to-subject. */
static void send_to(fixture_t *f, char c)
{
    char *p = f->srv->pub + AR__SIG_TO_HDR;
    int n = snprintf(p, AR_SIG_OUT_MAX, "{\"v\":1,\"type\":\"candidate\",\"seq\":0,\"c\":\"%c", c);
    memset(p + n, 'x', FRAME_BYTES - (size_t)n - 2);
    memcpy(p + FRAME_BYTES - 2, "\"}", 2);
    ar__sig_bus_to(f->srv, su_peer(c), AR__SIG_ACT_NONE, FRAME_BYTES);
}

/* A record update, as rec.c publishes one. */
static void send_rec(fixture_t *f, char c)
{
    ar__sig_bus_rec(f->srv, "sess", su_peer(c), json_pack("{s:s}", "p", su_peer(c)));
}

/* What the i-th recorded call was: 'F' a round trip on nc, the peer's letter for a frame or a
 * record (by its subject) on pnc, '?' anything else. */
static char what(size_t i)
{
    fake_pub_t p = fake_nats_get(i);
    if (strcmp(p.subj, FAKE_NATS_FLUSH) == 0)
        return p.conn == 0 ? 'F' : '?';
    if (p.conn != 1)
        return '?';
    if (su_to_peer(p.subj))
        return su_to_peer(p.subj)[0];
    if (strncmp(p.subj, "ar.eu.sess.", 11) == 0 && strlen(p.subj) == 11 + AR__SIG_PEER_LEN)
        return p.subj[11];
    return '?';
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Waits up to 5 s for n recorded calls. */
static void wait_count(size_t n)
{
    for (int i = 0; i < 500 && fake_nats_count() < n; i++)
        sleep_ms(10);
    assert_true(fake_nats_count() >= n);
}

/* What the loop publishes while nc is down waits, in order, until nc is back and a round trip
 * on it has proved its subscriptions are in place: nothing reaches nats-server before. */
static void test_held_until_resubscribed(void **state)
{
    fixture_t *f = *state;
    send_rec(f, 'z'); /* before the cut: published (after the first round trip) */
    wait_count(2);
    assert_int_equal(what(0), 'F');
    assert_int_equal(what(1), 'z');
    fake_nats_conn(0, 0); /* nc disconnected */
    send_to(f, 'a');
    send_rec(f, 'b');
    send_to(f, 'c');
    sleep_ms(200);
    assert_int_equal(fake_nats_count(), 2); /* nothing while nc is away */
    fake_nats_conn(0, 1);                   /* nc reconnected: released after a round trip on nc */
    wait_count(6);
    assert_int_equal(fake_nats_count(), 6);
    assert_int_equal(what(2), 'F');
    assert_int_equal(what(3), 'a');
    assert_int_equal(what(4), 'b');
    assert_int_equal(what(5), 'c');
}

/* A round trip that gets no answer proves nothing: held until one does. pnc's own
 * disconnection holds too, and its reconnection needs no round trip. */
static void test_round_trip_fails(void **state)
{
    fixture_t *f = *state;
    fake_nats_conn(0, 0);
    send_to(f, 'a');
    fake_nats_fail_flushes(3);
    fake_nats_conn(0, 1);
    for (int i = 0; i < 500 && fake_nats_flushes_to_fail() > 1; i++)
        sleep_ms(10);
    assert_int_equal(fake_nats_flushes_to_fail(), 1); /* two attempts failed, 100 ms apart */
    assert_int_equal(fake_nats_count(), 0);           /* and nothing went out */
    wait_count(2);
    assert_int_equal(what(0), 'F');
    assert_int_equal(what(1), 'a');
    fake_nats_conn(1, 0); /* pnc disconnected */
    send_to(f, 'b');
    sleep_ms(150);
    assert_int_equal(fake_nats_count(), 2);
    fake_nats_conn(1, 1);
    wait_count(3);
    assert_int_equal(what(2), 'b');
}

/* A publication made after a subscription waits for a round trip on nc proving the subscription
 * is in place; a round trip that fails proves nothing: the publication waits for one that
 * answers (it used to go out after the failure). */
static void test_sub_round_trip_fails(void **state)
{
    fixture_t *f = *state;
    send_rec(f, 'z'); /* the bus's own subscriptions: one round trip first */
    wait_count(2);
    assert_int_equal(what(0), 'F');
    assert_int_equal(what(1), 'z');
    pthread_mutex_lock(&f->srv->bus->pmu); /* a session's subscription (ar__sig_bus_sub_to) */
    f->srv->bus->sub_gen++;
    pthread_mutex_unlock(&f->srv->bus->pmu);
    fake_nats_fail_flushes(2);
    send_to(f, 'a');
    for (int i = 0; i < 500 && fake_nats_flushes_to_fail() > 0; i++)
        sleep_ms(10);
    assert_int_equal(fake_nats_flushes_to_fail(), 0);
    wait_count(4);
    assert_int_equal(fake_nats_count(), 4);
    assert_int_equal(what(2), 'F'); /* the third round trip, the first to answer */
    assert_int_equal(what(3), 'a');
}

/* The publishing connection's writes have a deadline (a nats-server that does not read cannot
 * hold the publisher thread, and so a stop, without end); the subscribing one's need none. Well
 * past the longest time nats-server was seen not to read a publisher while it held it back for
 * slow subscribers (21 s): what the socket's buffers hold when libnats gives up on a connection
 * is lost with it. A 2 s deadline that passed under a failover storm lost thousands of records,
 * and a 10 s one 95,412 of the relay check's 200,000 offers (docs/performance.md, "Failover at
 * 100,000 calls a node: late or lost"). A minute at most: a stop waits no longer. */
static void test_write_deadline(void **state)
{
    (void)state;
    assert_int_equal(fake_nats_write_deadline(0), 0);
    assert_true(fake_nats_write_deadline(1) >= 40000);
    assert_true(fake_nats_write_deadline(1) <= 60000);
}

/* Both connections go to the servers listed, in their order, and never to one nats-server told
 * of: a worker that reconnected to the dead node's server sent its traffic through the route
 * between the servers, which fell behind its 10 s write deadline under a failover storm. */
static void test_listed_servers_only(void **state)
{
    (void)state;
    assert_true(fake_nats_listed_only(0));
    assert_true(fake_nats_listed_only(1));
}

/* A hold is logged when it starts (a long one is visible while it lasts), once: the other
 * connection going too does not log it again. */
static void test_hold_logged_once(void **state)
{
    (void)state;
    int fd = su_log_to_file();
    fake_nats_conn(0, 0);
    fake_nats_conn(1, 0);
    int held = su_log_count(fd, "\"signal_bus_held\"");
    fake_nats_conn(1, 1);
    fake_nats_conn(0, 1);
    int released = su_log_wait(fd, "\"signal_bus_released\"", 1);
    su_log_back(fd);
    assert_int_equal(held, 1);
    assert_int_equal(released, 1);
}

/* A publication libnats refuses is dropped, and the warning says how libnats refused it
 * ("nats_status"): under a failover storm records were dropped so, and the warning alone did
 * not tell a refusal from this side's drops (docs/performance.md, "Failover at 100,000 calls a
 * node"). */
static void test_refusal_status_logged(void **state)
{
    fixture_t *f = *state;
    int fd = su_log_to_file();
    fake_nats_fail_publishes(NATS_INSUFFICIENT_BUFFER);
    send_to(f, 'a');
    char want[64];
    snprintf(want, sizeof(want), "\"nats_status\":%d", (int)NATS_INSUFFICIENT_BUFFER);
    int refused = su_log_wait(fd, want, 1);
    fake_nats_fail_publishes(NATS_OK); /* the frame's lost notice, tried again, goes out */
    su_log_back(fd);
    assert_int_equal(refused, 1);
}

/* A publication refused as pnc breaks (its write deadline passed, then its socket failed,
 * before libnats reconnects and buffers) is tried again in its place, with what follows it
 * behind it, and nothing is dropped: under a failover storm such drops lost the answers resumes
 * waited for (docs/performance.md, "Failover at 100,000 calls a node"). */
static void test_broken_refusal_tried_again(void **state)
{
    fixture_t *f = *state;
    ar__sig_bus_t *b = f->srv->bus;
    int64_t frames = ar_metric_value(b->m_dropped[K_TO]);
    int64_t recs = ar_metric_value(b->m_dropped[K_REC]);
    send_rec(f, 'z');
    wait_count(2);
    fake_nats_fail_publishes(NATS_TIMEOUT);
    send_to(f, 'a');
    send_rec(f, 'b');
    sleep_ms(200);
    fake_nats_fail_publishes(NATS_IO_ERROR);
    sleep_ms(200);
    assert_int_equal(fake_nats_count(), 2); /* refused so far */
    fake_nats_fail_publishes(NATS_OK);
    wait_count(4);
    sleep_ms(100);
    assert_int_equal(fake_nats_count(), 4); /* no lost notice: nothing was dropped */
    assert_int_equal(what(2), 'a');
    assert_int_equal(what(3), 'b');
    assert_int_equal(ar_metric_value(b->m_dropped[K_TO]), frames);
    assert_int_equal(ar_metric_value(b->m_dropped[K_REC]), recs);
}

/* Refused so for longer than pretry_max_ms, a publication is dropped as any refusal is (NATS
 * gone for good must not stop the queue without end): counted, and a frame's peer told by a
 * notice in its place, which waits to be accepted as notices do, ahead of what followed. */
static void test_broken_refusal_gives_up(void **state)
{
    fixture_t *f = *state;
    ar__sig_bus_t *b = f->srv->bus;
    int64_t frames = ar_metric_value(b->m_dropped[K_TO]);
    int64_t recs = ar_metric_value(b->m_dropped[K_REC]);
    pthread_mutex_lock(&b->pmu);
    b->pretry_max_ms = 300;
    pthread_mutex_unlock(&b->pmu);
    send_rec(f, 'z');
    wait_count(2);
    fake_nats_fail_publishes(NATS_IO_ERROR);
    send_to(f, 'a');
    send_rec(f, 'b');
    for (int i = 0; i < 300 && ar_metric_value(b->m_dropped[K_TO]) == frames; i++)
        sleep_ms(10);
    assert_int_equal(ar_metric_value(b->m_dropped[K_TO]) - frames, 1);
    fake_nats_fail_publishes(NATS_OK);
    wait_count(4); /* a's lost notice, then b */
    fake_pub_t n = fake_nats_get(2);
    assert_int_equal(what(2), 'a');
    assert_int_equal(n.len, NOTICE_LEN);
    assert_int_equal((uint8_t)n.data[24], ACT_LOST);
    assert_int_equal(what(3), 'b');
    assert_int_equal(ar_metric_value(b->m_dropped[K_REC]), recs);
}

static void *publish_later(void *arg)
{
    (void)arg;
    sleep_ms(3000);
    fake_nats_fail_publishes(NATS_OK);
    return NULL;
}

/* While the head is refused so, a loop that finds the queue full drops and counts: it does not
 * wait for room (which would stand the loop still for as long as the refusals last). */
static void test_loop_not_held_while_refused(void **state)
{
    fixture_t *f = *state;
    ar_metric_t *dropped = f->srv->bus->m_dropped[K_TO];
    int64_t before = ar_metric_value(dropped);
    send_rec(f, 'z');
    wait_count(2);
    fake_nats_fail_publishes(NATS_IO_ERROR);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, publish_later, NULL), 0);
    uint64_t t0 = mono_ms();
    for (int i = 0; i < 6; i++)
        send_to(f, 'a');
    uint64_t took = mono_ms() - t0;
    pthread_join(t, NULL);
    assert_true(took < 2000);
    assert_true(ar_metric_value(dropped) - before >= 2);
}

/* The bus counts as behind while it is, and for AR__SIG_BUS_SETTLE_MS after it last was, here
 * or on another worker: answers a backlog held back arrive after it clears, and resumes wait
 * for them (resume.c attempt_late; docs/performance.md, "Failover at 100,000 calls a node,
 * continued"). */
static void test_congested_settles(void **state)
{
    fixture_t *f = *state;
    ar__sig_bus_t *b = f->srv->bus;
    uint64_t now = mono_ms();
    assert_false(ar__sig_bus_congested(f->srv));
    b->behind = 1;
    assert_true(ar__sig_bus_congested(f->srv));
    b->behind = 0;
    b->behind_last_ms = now - (AR__SIG_BUS_SETTLE_MS - 1000);
    assert_true(ar__sig_bus_congested(f->srv));
    b->behind_last_ms = now - (AR__SIG_BUS_SETTLE_MS + 1000);
    assert_false(ar__sig_bus_congested(f->srv));
    b->others_behind_until_ms = now - (AR__SIG_BUS_SETTLE_MS - 1000);
    assert_true(ar__sig_bus_congested(f->srv));
    b->others_behind_until_ms = now - (AR__SIG_BUS_SETTLE_MS + 1000);
    assert_false(ar__sig_bus_congested(f->srv));
}

/* Held long, the queue stays bounded: beyond inbox-max the loop does not wait (NATS may be gone
 * for minutes) but drops and counts, and the dropped frames' recipient gets a notice in their
 * place. */
static void test_bounded_while_held(void **state)
{
    fixture_t *f = *state;
    ar_metric_t *dropped = f->srv->bus->m_dropped[K_TO];
    int64_t before = ar_metric_value(dropped);
    fake_nats_conn(0, 0);
    for (int i = 0; i < 10; i++)
        send_to(f, 'a');
    pthread_mutex_lock(&f->srv->bus->pmu);
    size_t queued = f->srv->bus->pbytes;
    pthread_mutex_unlock(&f->srv->bus->pmu);
    assert_true(queued <= INBOX_MAX + FRAME_BYTES + 200 + NOTICE_SZ);
    int64_t n_dropped = ar_metric_value(dropped) - before;
    assert_true(n_dropped >= 5 && n_dropped <= 7);
    send_to(f, 'b'); /* also dropped: its own notice, after a's */
    fake_nats_conn(0, 1);
    size_t kept = (size_t)(10 - n_dropped);
    wait_count(1 + kept + 2);
    assert_int_equal(what(0), 'F');
    for (size_t i = 0; i < kept; i++)
        assert_int_equal(what(1 + i), 'a');
    fake_pub_t na = fake_nats_get(1 + kept), nb = fake_nats_get(2 + kept);
    assert_int_equal(what(1 + kept), 'a');
    assert_int_equal(na.len, NOTICE_LEN);
    assert_int_equal((uint8_t)na.data[24], ACT_LOST);
    assert_int_equal((uint8_t)na.data[25], (uint8_t)n_dropped);
    assert_int_equal(what(2 + kept), 'b');
    assert_int_equal(nb.len, NOTICE_LEN);
    assert_int_equal((uint8_t)nb.data[25], 1);
}

static void *cut_later(void *arg)
{
    (void)arg;
    sleep_ms(200);
    fake_nats_conn(0, 0);
    return NULL;
}

/* A loop waiting for room in a full queue (the thread stuck in a publication) is let go when
 * nc goes: the publication is dropped and counted, not waited for without end. */
static void test_waiting_loop_let_go(void **state)
{
    fixture_t *f = *state;
    ar_metric_t *dropped = f->srv->bus->m_dropped[K_TO];
    int64_t before = ar_metric_value(dropped);
    fake_nats_gate(0);
    send_to(f, 'a');
    assert_int_equal(fake_nats_wait_entered(1), 0); /* the thread is inside a's publication */
    for (int i = 0; i < 3; i++)
        send_to(f, 'b'); /* the queue (a still counted) is over its bound after these */
    assert_int_equal(ar_metric_value(dropped), before);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, cut_later, NULL), 0);
    send_to(f, 'c'); /* waits for room until the cut, then is dropped */
    pthread_join(t, NULL);
    assert_int_equal(ar_metric_value(dropped) - before, 1);
    fake_nats_gate(1);
}

/* Stopping while held does not wait for NATS: what is queued is handed to libnats at once. */
static void test_stop_while_held(void **state)
{
    fixture_t *f = *state;
    fake_nats_record_flushes(0); /* bus_stop's last flush of pnc is not counted below */
    fake_nats_conn(0, 0);
    fake_nats_conn(1, 0);
    send_to(f, 'a');
    send_rec(f, 'b');
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ar__sig_bus_stop(f->srv); /* su_worker_free does nothing more then */
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_true(t1.tv_sec - t0.tv_sec < 2);
    assert_int_equal(fake_nats_count(), 2);
    assert_int_equal(what(0), 'a');
    assert_int_equal(what(1), 'b');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_held_until_resubscribed, setup,
                                        su_bus_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_round_trip_fails, setup, su_bus_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_sub_round_trip_fails, setup, su_bus_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_write_deadline, setup, su_bus_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_listed_servers_only, setup, su_bus_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_hold_logged_once, setup, su_bus_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_refusal_status_logged, setup, su_bus_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_broken_refusal_tried_again, setup,
                                        su_bus_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_broken_refusal_gives_up, setup,
                                        su_bus_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_loop_not_held_while_refused, setup,
                                        su_bus_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_congested_settles, setup, su_bus_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_bounded_while_held, setup, su_bus_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_waiting_loop_let_go, setup, su_bus_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_stop_while_held, setup, su_bus_fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
