/*
 * A frame for a peer on another worker that the sending worker's publisher drops (no memory for
 * its queue entry; src/signal/bus.c publish) is told to the recipient: a lost notice goes on
 * to.<peer> in the frame's place, and the peer's owner turns it into error "lost" naming the seq
 * of the last frame numbered before, as it does its own inbox's drops (test_lost.c). The sender
 * runs its publisher thread over the libnats stand-in (fake_nats.c), whose record of what was
 * published is fed to the receiver's inbox as libnats' callback would (ar__sig_bus_put).
 */
#include "bus_internal.h"
#include "bus_worker.h"
#include "fake_nats.h"
#include "sig_util.h"

#include "anteroom/alloc.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

/* The sender's bus is started (publisher thread, fake libnats), the receiver's only made (its
 * inbox). */
typedef struct fixture_s {
    su_worker_t tx, rx;
} fixture_t;

/* Room for three frames of FRAME_BYTES (plus header) in the receiver's inbox, not four. */
#define FRAME_BYTES 40
#define RX_INBOX_MAX (3 * (FRAME_BYTES + AR__SIG_TO_HDR) + 10)

static int setup(void **state)
{
    fixture_t *f = ar_calloc(1, sizeof(*f));
    assert_non_null(f);
    ar_sig_init();
    fake_nats_reset();
    f->tx.conf.admit_lag = f->rx.conf.admit_lag = 60000;
    su_worker_new(&f->tx, 2, 1, 1 << 20);
    su_worker_new(&f->rx, 1, 0, RX_INBOX_MAX);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    fake_nats_gate(1);
    su_worker_free(&f->tx);
    su_worker_free(&f->rx);
    ar_free(f);
    return 0;
}

/* A frame of FRAME_BYTES with "seq":0, as a sender builds it. */
static void frame(char *p)
{
    static const char head[] = "{\"v\":1,\"type\":\"candidate\",\"seq\":0,\"c\":\"";
    memset(p, 'x', FRAME_BYTES);
    memcpy(p, head, sizeof(head) - 1);
    memcpy(p + FRAME_BYTES - 2, "\"}", 2);
}

/* The sender relays a frame of FRAME_BYTES to peer c (not its own). */
static void send_to(fixture_t *f, char c)
{
    frame(f->tx.srv->pub + AR__SIG_TO_HDR);
    ar__sig_bus_to(f->tx.srv, su_peer(c), AR__SIG_ACT_NONE, FRAME_BYTES);
}

/* Everything the sender published, into the receiver's inbox, as libnats would deliver it. The
 * stand-in keeps a payload's first 63 bytes: a frame is rebuilt whole (its header as sent), a
 * notice is delivered exactly as published. wake_each: the receiver's loop takes each at once,
 * else they wait in its inbox together. */
static void deliver_all(fixture_t *f, int wake_each)
{
    for (size_t i = 0; i < fake_nats_count(); i++) {
        fake_pub_t p = fake_nats_get(i);
        if (strncmp(p.subj, "ar.eu.to.", 9) != 0)
            continue;
        char msg[AR__SIG_TO_HDR + FRAME_BYTES];
        assert_true(p.len == NOTICE_LEN || p.len == sizeof(msg));
        memcpy(msg, p.data, p.len < sizeof(p.data) - 1 ? p.len : sizeof(p.data) - 1);
        if (p.len == sizeof(msg))
            frame(msg + AR__SIG_TO_HDR);
        ar__sig_bus_put(f->rx.srv->bus, p.subj, msg, p.len);
        if (wake_each)
            ar__sig_bus_wake(f->rx.srv);
    }
}

/* Frames 1 and 2 go out; 3 finds no memory on the sender; 4 follows. The recipient's session
 * numbers 1, 2 and 4 and is told of one frame lost after seq 2. */
static void test_recipient_told(void **state)
{
    fixture_t *f = *state;
    ar__sig_sess_t *s = su_sess_held(f->rx.srv, 'a', 0);
    fake_nats_gate(0);
    send_to(f, 'a');
    assert_int_equal(fake_nats_wait_entered(1), 0); /* the thread holds frame 1 */
    send_to(f, 'a');
    ar_alloc_fail_after(0);
    send_to(f, 'a');
    assert_int_equal(ar_alloc_fail_after(-1), 1);
    send_to(f, 'a');
    fake_nats_gate(1);
    ar__sig_bus_stop(f->tx.srv); /* everything queued goes out */
    assert_int_equal(fake_nats_count(), 4);
    deliver_all(f, 1);
    ar__sig_bus_wake(f->rx.srv);
    assert_int_equal(s->seq, 3);
    assert_int_equal(s->cold->lost, 1);
    assert_int_equal(s->cold->lost_after, 2);
}

/* The notice itself dropped at the receiver's full inbox still tells the client (the inbox's
 * marker, with the seq of the frames queued before it); a backup is told nothing (the owner's
 * numbered copies are what it keeps). */
static void test_notice_dropped_at_recipient(void **state)
{
    fixture_t *f = *state;
    ar__sig_sess_t *a = su_sess_held(f->rx.srv, 'a', 0), *b = su_sess_held(f->rx.srv, 'b', 1);
    for (int i = 0; i < 3; i++)
        send_to(f, 'a'); /* these fill the receiver's inbox */
    ar_alloc_fail_after(0);
    send_to(f, 'a'); /* dropped: its notice reaches a full inbox */
    send_to(f, 'b'); /* dropped: a backup's notice */
    ar_alloc_fail_after(-1);
    ar__sig_bus_stop(f->tx.srv);
    assert_int_equal(fake_nats_count(), 5);
    deliver_all(f, 0);
    ar__sig_bus_wake(f->rx.srv);
    assert_int_equal(a->seq, 3);
    assert_int_equal(a->cold->lost, 1);
    assert_int_equal(a->cold->lost_after, 3);
    assert_int_equal(b->cold->lost, 0);
}

/* A notice for 3 frames dropped at the receiver's full inbox: its marker carries the 3 (it
 * used to say 1), and the notice is not counted as a frame dropped here (the sender counted
 * the frames; it used to count once more in the receiver's dropped metric). */
static void test_notice_count_kept_at_full_inbox(void **state)
{
    fixture_t *f = *state;
    ar__sig_sess_t *a = su_sess_held(f->rx.srv, 'a', 0);
    char subj[64], msg[AR__SIG_TO_HDR + FRAME_BYTES];
    snprintf(subj, sizeof(subj), "ar.eu.to.%s", su_peer('a'));
    memset(msg, 0, AR__SIG_TO_HDR);
    frame(msg + AR__SIG_TO_HDR);
    for (int i = 0; i < 3; i++) /* these fill the receiver's inbox */
        ar__sig_bus_put(f->rx.srv->bus, subj, msg, sizeof(msg));
    uint8_t d[NOTICE_LEN];
    su_lost_notice(d, 2, 3);
    ar__sig_bus_put(f->rx.srv->bus, subj, d, sizeof(d));
    ar__sig_bus_wake(f->rx.srv);
    assert_int_equal(a->seq, 3);
    assert_int_equal(a->cold->lost, 3);
    assert_int_equal(a->cold->lost_after, 3);
    assert_int_equal(ar_metric_value(f->rx.srv->bus->m_dropped[K_TO]), 0);
}

/* More peers' drops waiting than notices (NOTICE_MAX): the one that found none is counted in
 * anteroom_signal_bus_lost_untold_total, the others each get theirs. */
static void test_notices_run_out(void **state)
{
    fixture_t *f = *state;
    ar_metric_t *untold = f->tx.srv->bus->m_untold;
    assert_non_null(untold);
    fake_nats_gate(0);
    send_to(f, 'a');
    assert_int_equal(fake_nats_wait_entered(1), 0);
    ar_alloc_fail_after(0);
    for (int i = 0; i <= NOTICE_MAX; i++) /* alternating peers: no two notices merge */
        send_to(f, i % 2 ? 'b' : 'c');
    ar_alloc_fail_after(-1);
    assert_int_equal(ar_metric_value(untold), 1);
    fake_nats_gate(1);
    ar__sig_bus_stop(f->tx.srv);
    assert_int_equal(fake_nats_count(), 1 + NOTICE_MAX);
    for (size_t i = 1; i <= NOTICE_MAX; i++)
        assert_int_equal(fake_nats_get(i).len, NOTICE_LEN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_recipient_told, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notice_dropped_at_recipient, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notice_count_kept_at_full_inbox, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notices_run_out, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
