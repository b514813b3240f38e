/*
 * Frames dropped at a full bus inbox (src/signal/bus.c): the session's "error lost" must name
 * the seq after which the gap is, counting the frames that were queued before the drop and are
 * numbered in the same wake-up. The inbox is driven as libnats would fill it (ar__sig_bus_put),
 * without a NATS connection.
 */
#include "bus_worker.h"
#include "internal.h"
#include "sig_util.h"

#include "anteroom/alloc.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

/* A worker whose bus is only made (bus_worker.h): its inbox, fed with ar__sig_bus_put. */
typedef struct fixture_s {
    su_worker_t w;
    ar__sig_srv_t *srv; /* w.srv */
    uint64_t fid;
} fixture_t;

/* Room for three frames of FRAME_BYTES (plus header) in the inbox, not four. */
#define FRAME_BYTES 1000
#define INBOX_MAX (3 * (FRAME_BYTES + AR__SIG_TO_HDR) + 100)

static int setup(void **state)
{
    fixture_t *f = ar_calloc(1, sizeof(*f));
    assert_non_null(f);
    ar_sig_init();
    f->w.conf.admit_lag = 60000; /* ms: any real backlog here is far younger */
    su_worker_new(&f->w, 1, 0, INBOX_MAX);
    f->srv = f->w.srv;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    su_worker_free(&f->w);
    ar_free(f);
    return 0;
}

/* A relayed frame for peer c as another worker publishes it on ar.eu.to.<peer>. */
static void put(fixture_t *f, char c)
{
    static char msg[AR__SIG_TO_HDR + FRAME_BYTES];
    memset(msg, 0, sizeof(msg));
    uint64_t ctr = ++f->fid, node = 2;
    memcpy(msg, &node, 8);
    memcpy(msg + 8, &ctr, 8);
    int n = snprintf(msg + AR__SIG_TO_HDR, FRAME_BYTES,
                     "{\"v\":1,\"type\":\"candidate\",\"seq\":0,\"c\":\"");
    memset(msg + AR__SIG_TO_HDR + n, 'x', FRAME_BYTES - (size_t)n - 2);
    memcpy(msg + AR__SIG_TO_HDR + FRAME_BYTES - 2, "\"}", 2);
    char subj[64];
    snprintf(subj, sizeof(subj), "ar.eu.to.%s", su_peer(c));
    ar__sig_bus_put(f->srv->bus, subj, msg, sizeof(msg));
}

/* Three frames queued, two dropped behind them: the gap is after the third, not before the
 * first (the session's seq when the loss was noticed). */
static void test_gap_after_queued_frames(void **state)
{
    fixture_t *f = *state;
    ar__sig_sess_t *s = su_sess_held(f->srv, 'a', 0);
    put(f, 'a');
    ar__sig_bus_wake(f->srv);
    assert_int_equal(s->seq, 1);
    for (int i = 0; i < 5; i++)
        put(f, 'a'); /* 2, 3, 4 queued; two dropped */
    ar__sig_bus_wake(f->srv);
    assert_int_equal(s->seq, 4);
    assert_int_equal(s->cold->lost, 2);
    assert_int_equal(s->cold->lost_after, 4);
    /* A frame after the gap is numbered after it; the report still names the gap. */
    put(f, 'a');
    ar__sig_bus_wake(f->srv);
    assert_int_equal(s->seq, 5);
    assert_int_equal(s->cold->lost_after, 4);
}

/* Two sessions' frames interleaved: each gap is placed among its own session's frames. */
static void test_gaps_of_two_sessions(void **state)
{
    fixture_t *f = *state;
    ar__sig_sess_t *a = su_sess_held(f->srv, 'a', 0), *b = su_sess_held(f->srv, 'b', 0);
    put(f, 'a');
    put(f, 'b');
    put(f, 'a');
    put(f, 'b'); /* dropped: b's gap is after its first frame */
    put(f, 'a'); /* dropped: a's gap after its second */
    put(f, 'a');
    ar__sig_bus_wake(f->srv);
    assert_int_equal(a->seq, 2);
    assert_int_equal(b->seq, 1);
    assert_int_equal(a->cold->lost, 2);
    assert_int_equal(a->cold->lost_after, 2);
    assert_int_equal(b->cold->lost, 1);
    assert_int_equal(b->cold->lost_after, 1);
}

/* More gaps than markers (LOST_MAX in bus.c): every owned session is told, none is missed. */
static void test_too_many_gaps(void **state)
{
    fixture_t *f = *state;
    ar__sig_sess_t *a = su_sess_held(f->srv, 'a', 0);
    put(f, 'a');
    put(f, 'a');
    put(f, 'a');
    static char big[AR__SIG_TO_HDR + FRAME_BYTES], subj[64];
    for (int i = 0; i < 100; i++) { /* drops for 100 other peers, none of them ours */
        snprintf(subj, sizeof(subj), "ar.eu.to.%022d", i);
        ar__sig_bus_put(f->srv->bus, subj, big, sizeof(big));
    }
    ar__sig_bus_wake(f->srv);
    assert_int_equal(a->seq, 3);
    assert_true(a->cold->lost >= 1);
}

/* A drop into an empty inbox leaves its marker at the head: the backlog's age is the marker's
 * (young), not whatever its memory held, so no new session is refused for it (4016). */
static void test_backlog_with_marker_at_head(void **state)
{
    fixture_t *f = *state;
    ar__sig_sess_t *a = su_sess_held(f->srv, 'a', 0);
    static char big[INBOX_MAX + 1], subj[64];
    snprintf(subj, sizeof(subj), "ar.eu.to.%s", su_peer('a'));
    /* A freed block of about the marker's size: glibc hands it out again with the word where
     * the marker keeps at_ms set to zero, which an unset at_ms would leave as it is. */
    for (size_t sz = 40; sz <= 72; sz += 8)
        ar_free(ar_malloc(sz));
    ar__sig_bus_put(f->srv->bus, subj, big, sizeof(big)); /* over inbox-max: dropped */
    assert_int_equal(ar__sig_bus_admit(f->srv), 1);
    ar__sig_bus_wake(f->srv);
    assert_int_equal(a->cold->lost, 1);
    assert_int_equal(ar__sig_bus_admit(f->srv), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_gap_after_queued_frames, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gaps_of_two_sessions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_many_gaps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backlog_with_marker_at_head, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
