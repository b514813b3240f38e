/*
 * What a worker publishes during a turn of its loop is held until the turn ends, and its record
 * updates in the fixed layout share one bus message (src/signal/bus_turn.c; docs/signal.md,
 * "Record updates on the wire"): they wait no longer than the turn, a worker-to-worker message
 * about a session waits behind them and anything else goes after them, one session's order is
 * kept, a full batch goes at once, a receiver applies a batch as it would each update alone and
 * refuses one that is not well formed, and a wake-up counts a batch's updates against its
 * budget. The bus runs over the libnats stand-in (fake_nats.c).
 */
#include "bus_internal.h"
#include "bus_worker.h"
#include "fake_nats.h"
#include "sig_util.h"

#include "anteroom/metrics.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "net/net.h"

#define WAKE_BUDGET 1024 /* bus.c WAKE_BATCH: updates one wake-up applies at most */

/* Peer id number i (AR__SIG_PEER_LEN characters) into out. */
static void peer_n(char out[AR__SIG_PEER_LEN + 1], unsigned i)
{
    snprintf(out, AR__SIG_PEER_LEN + 1, "P%0*u", AR__SIG_PEER_LEN - 1, i);
}

/* w publishes "own" of a record of peer, owned by w with backup 0xa2. */
static void publish_own(su_worker_t *w, const char *peer)
{
    ar__sig_rec_t *r = ar__sig_rec_get(w->srv, peer);
    assert_non_null(r);
    r->owner = w->srv->node_id;
    r->backup = 0xa2;
    ar__sig_rec_publish(w->srv, r, "own");
}

/* Worker 1, its bus started over a reset libnats stand-in; what it publishes from now on is
 * at the index returned and after. */
static size_t started(su_worker_t *w)
{
    fake_nats_reset();
    su_worker_new(w, 1, 1, 1 << 20);
    return fake_nats_count();
}

/* The peer of update i of publication p: a batch's i-th, or (i 0) the layout alone. */
static const char *upd_peer(const fake_pub_t *p, size_t i)
{
    static ar__sig_upd_t u;
    const uint8_t *d = (const uint8_t *)p->data;
    size_t n = ar__sig_upd_batch_count(d, p->len);
    assert_true(n ? i < n : i == 0 && p->len == AR__SIG_UPD_LEN);
    assert_int_equal(ar__sig_upd_read(n ? d + 1 + i * AR__SIG_UPD_LEN : d, AR__SIG_UPD_LEN, &u), 0);
    return u.peer;
}

/* An update in the layout from worker 7: peer, owned by owner (backup 1), away. */
static void layout_of(uint8_t *out, const char *peer, uint64_t owner)
{
    char txt[256];
    snprintf(txt, sizeof(txt),
             "{\"o\":\"0000000000000007\",\"p\":\"%s\",\"away\":1,\"own\":\"%016llx\","
             "\"bk\":\"0000000000000001\"}",
             peer, (unsigned long long)owner);
    json_t *o = json_loads(txt, 0, NULL);
    assert_non_null(o);
    assert_int_equal(ar__sig_upd_compact(o, out), 0);
    json_decref(o);
}

/* One update waits for the end of the loop's turn, then goes as it always did: alone, on its
 * session's subject. */
static void test_waits_for_the_turn(void **state)
{
    (void)state;
    su_worker_t w = {0};
    size_t before = started(&w);
    publish_own(&w, su_peer('b'));
    assert_int_equal(w.srv->bus->nrecs, 1);
    assert_int_equal(ar_sn_loop_turn(w.srv->loop), 0); /* its idle hook: bus.c bus_idle */
    assert_int_equal(w.srv->bus->nrecs, 0);
    ar__sig_bus_stop(w.srv);
    assert_int_equal(fake_nats_count(), before + 1);
    fake_pub_t p = fake_nats_get(before);
    char subj[64];
    snprintf(subj, sizeof(subj), "ar.eu.sess.%s", su_peer('b'));
    assert_string_equal(p.subj, subj);
    assert_string_equal(upd_peer(&p, 0), su_peer('b'));
    su_worker_free(&w);
}

/* Updates in a row go together, before a worker-to-worker message published after them outside
 * a promotion walk; an update after that message goes after it. The counters tell messages
 * from updates. */
static void test_order_kept(void **state)
{
    (void)state;
    su_worker_t w = {0};
    size_t before = started(&w);
    /* The metrics outlive the bus (the registry owns them); the bus is freed by the stop. */
    ar_metric_t *msgs = w.srv->bus->m_published[K_REC], *upds = w.srv->bus->m_rec_updates;
    int64_t msgs0 = ar_metric_value(msgs), upds0 = ar_metric_value(upds);
    publish_own(&w, su_peer('b'));
    publish_own(&w, su_peer('c'));
    ar__sig_bus_proc(w.srv, 2, json_pack("{s:s,s:s}", "k", "ack", "p", su_peer('e')));
    publish_own(&w, su_peer('d'));
    ar__sig_bus_stop(w.srv);
    assert_int_equal(fake_nats_count(), before + 3);
    fake_pub_t p0 = fake_nats_get(before), p1 = fake_nats_get(before + 1);
    fake_pub_t p2 = fake_nats_get(before + 2);
    assert_string_equal(p0.subj, "ar.eu." AR__SIG_RECS_SUBJ);
    assert_string_equal(upd_peer(&p0, 0), su_peer('b'));
    assert_string_equal(upd_peer(&p0, 1), su_peer('c'));
    assert_string_equal(p1.subj, "ar.eu.proc.0000000000000002");
    assert_string_equal(upd_peer(&p2, 0), su_peer('d'));
    assert_int_equal(ar_metric_value(msgs) - msgs0, 2);
    assert_int_equal(ar_metric_value(upds) - upds0, 3);
    su_worker_free(&w);
}

/* In a promotion walk, a worker-to-worker message about a session waits behind the updates, so
 * that updates made on either side of it share a message; an update about the session a held
 * message names goes after that message, as it was made; the walk's end sends what is held. */
static void test_held_behind_updates(void **state)
{
    (void)state;
    su_worker_t w = {0};
    size_t before = started(&w);
    ar__sig_bus_hold_begin(w.srv);
    publish_own(&w, su_peer('b'));
    ar__sig_bus_proc(w.srv, 2, json_pack("{s:s,s:s}", "k", "ack", "p", su_peer('c')));
    publish_own(&w, su_peer('d'));
    assert_int_equal(w.srv->bus->nheld, 1);
    publish_own(&w, su_peer('c')); /* after the message about c: everything before goes now */
    assert_int_equal(w.srv->bus->nheld, 0);
    assert_int_equal(w.srv->bus->nrecs, 1);
    ar__sig_bus_proc(w.srv, 2, json_pack("{s:s,s:s}", "k", "ack", "p", su_peer('e')));
    ar__sig_bus_hold_end(w.srv);
    assert_int_equal(w.srv->bus->nheld + w.srv->bus->nrecs, 0);
    ar__sig_bus_stop(w.srv);
    assert_int_equal(fake_nats_count(), before + 4);
    fake_pub_t p0 = fake_nats_get(before), p1 = fake_nats_get(before + 1);
    fake_pub_t p2 = fake_nats_get(before + 2), p3 = fake_nats_get(before + 3);
    assert_string_equal(upd_peer(&p0, 0), su_peer('b'));
    assert_string_equal(upd_peer(&p0, 1), su_peer('d'));
    assert_string_equal(p1.subj, "ar.eu.proc.0000000000000002");
    assert_non_null(strstr(p1.data, su_peer('c')));
    assert_string_equal(upd_peer(&p2, 0), su_peer('c'));
    assert_non_null(strstr(p3.data, su_peer('e')));
    su_worker_free(&w);
}

/* A full batch goes at once; what follows starts the next. */
static void test_full_batch_goes(void **state)
{
    (void)state;
    su_worker_t w = {0};
    size_t before = started(&w);
    char peer[AR__SIG_PEER_LEN + 1];
    for (unsigned i = 0; i < AR__SIG_UPD_BATCH_MAX + 2; i++) {
        peer_n(peer, i);
        publish_own(&w, peer);
    }
    assert_int_equal(w.srv->bus->nrecs, 2);
    ar__sig_bus_stop(w.srv);
    assert_int_equal(fake_nats_count(), before + 2);
    assert_int_equal(fake_nats_get(before).len, 1 + AR__SIG_UPD_BATCH_MAX * AR__SIG_UPD_LEN);
    assert_int_equal(fake_nats_get(before + 1).len, 1 + 2 * AR__SIG_UPD_LEN);
    su_worker_free(&w);
}

/* A batch from the bus: its updates applied in order, a later one about the same session
 * winning, as they would be one by one. */
static void test_batch_applied_in_order(void **state)
{
    (void)state;
    su_worker_t w = {0};
    su_worker_new(&w, 2, 0, 1 << 20);
    uint8_t batch[1 + 3 * AR__SIG_UPD_LEN];
    batch[0] = AR__SIG_UPD_BATCH;
    layout_of(batch + 1, su_peer('x'), 7);
    layout_of(batch + 1 + AR__SIG_UPD_LEN, su_peer('y'), 7);
    layout_of(batch + 1 + 2 * AR__SIG_UPD_LEN, su_peer('x'), 3);
    ar__sig_bus_put(w.srv->bus, "ar.eu." AR__SIG_RECS_SUBJ, batch, sizeof(batch));
    ar__sig_bus_wake(w.srv);
    ar__sig_rec_t *x = ar__sig_rec_find(w.srv, su_peer('x'));
    ar__sig_rec_t *y = ar__sig_rec_find(w.srv, su_peer('y'));
    assert_non_null(x);
    assert_non_null(y);
    assert_int_equal(x->owner, 3);
    assert_int_equal(y->owner, 7);
    assert_int_equal(x->away, 1);
    su_worker_free(&w);
}

/* Bytes that are no batch make no record; a bad update inside a good batch is skipped alone,
 * as it would be if it came by itself. */
static void test_bad_batch_refused(void **state)
{
    (void)state;
    su_worker_t w = {0};
    su_worker_new(&w, 2, 0, 1 << 20);
    enum { N = AR__SIG_UPD_BATCH_MAX + 1 };
    static uint8_t big[1 + N * AR__SIG_UPD_LEN + 1];
    big[0] = AR__SIG_UPD_BATCH;
    char peer[AR__SIG_PEER_LEN + 1];
    for (unsigned i = 0; i < N; i++) {
        peer_n(peer, i);
        layout_of(big + 1 + i * AR__SIG_UPD_LEN, peer, 7);
    }
    const size_t bad_len[] = {
        1 + AR__SIG_UPD_LEN,         /* one update: it goes alone, never in a batch */
        1 + 2 * AR__SIG_UPD_LEN + 1, /* a byte more */
        2 * AR__SIG_UPD_LEN,         /* a byte less */
        1 + N * AR__SIG_UPD_LEN,     /* more than a batch holds */
        1,
    };
    for (size_t i = 0; i < sizeof(bad_len) / sizeof(bad_len[0]); i++) {
        assert_int_equal(ar__sig_upd_batch_count(big, bad_len[i]), 0);
        ar__sig_bus_put(w.srv->bus, "ar.eu." AR__SIG_RECS_SUBJ, big, bad_len[i]);
        ar__sig_bus_wake(w.srv);
        assert_int_equal(w.srv->nrecs, 0);
    }
    big[1 + AR__SIG_UPD_LEN] = 0x03; /* the second update's magic */
    ar__sig_bus_put(w.srv->bus, "ar.eu." AR__SIG_RECS_SUBJ, big, 1 + 3 * AR__SIG_UPD_LEN);
    ar__sig_bus_wake(w.srv);
    assert_int_equal(w.srv->nrecs, 2);
    peer_n(peer, 1);
    assert_null(ar__sig_rec_find(w.srv, peer));
    su_worker_free(&w);
}

/* A wake-up applies at most its budget of updates, a batch counting as its updates, not as one
 * message: a worker behind on the bus still ticks (bus.c WAKE_BATCH). The rest follows. */
static void test_wake_counts_updates(void **state)
{
    (void)state;
    su_worker_t w = {0};
    su_worker_new(&w, 2, 0, 8 << 20);
    enum { BATCHES = 20 };
    static uint8_t batch[1 + AR__SIG_UPD_BATCH_MAX * AR__SIG_UPD_LEN];
    batch[0] = AR__SIG_UPD_BATCH;
    char peer[AR__SIG_PEER_LEN + 1];
    for (unsigned k = 0; k < BATCHES; k++) {
        for (unsigned i = 0; i < AR__SIG_UPD_BATCH_MAX; i++) {
            peer_n(peer, k * AR__SIG_UPD_BATCH_MAX + i);
            layout_of(batch + 1 + i * AR__SIG_UPD_LEN, peer, 7);
        }
        ar__sig_bus_put(w.srv->bus, "ar.eu." AR__SIG_RECS_SUBJ, batch, sizeof(batch));
    }
    ar__sig_bus_wake(w.srv);
    assert_int_equal(w.srv->nrecs, WAKE_BUDGET);
    for (int i = 0; i < BATCHES && w.srv->nrecs < BATCHES * AR__SIG_UPD_BATCH_MAX; i++)
        ar__sig_bus_wake(w.srv);
    assert_int_equal(w.srv->nrecs, BATCHES * AR__SIG_UPD_BATCH_MAX);
    su_worker_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_waits_for_the_turn),  cmocka_unit_test(test_order_kept),
        cmocka_unit_test(test_full_batch_goes),     cmocka_unit_test(test_batch_applied_in_order),
        cmocka_unit_test(test_bad_batch_refused),   cmocka_unit_test(test_wake_counts_updates),
        cmocka_unit_test(test_held_behind_updates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
