/*
 * A session's frames reach its workers through two subscriptions per worker, not one per
 * session (src/signal/bus.c, "Those two take a session's frames"): its subject names, by their
 * tags, the owner and backup it was created with, and only a worker holding it without being
 * one of them subscribes to it alone. The bus runs over the libnats stand-in (fake_nats.c),
 * which records what was subscribed to and published.
 */
#include "bus_internal.h"
#include "bus_worker.h"
#include "fake_nats.h"
#include "sig_util.h"

#include "anteroom/alloc.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

typedef su_bus_fixture_t fixture_t;

static int setup(void **state)
{
    *state = su_bus_fixture_new(1 << 20);
    return 0;
}

/* Whether anything subscribed to subj. */
static int subscribed(const char *subj)
{
    for (size_t i = 0; i < fake_nats_subs(); i++)
        if (strcmp(fake_nats_sub(i).subj, subj) == 0)
            return 1;
    return 0;
}

/* The worker's two subscriptions for its sessions' frames, at the bus's start. */
static void test_worker_subscribes_by_tag(void **state)
{
    fixture_t *f = *state;
    char owner[64], backup[64];
    unsigned tag = ar__sig_worker_tag(f->srv->node_id);
    snprintf(owner, sizeof(owner), "ar.eu.to.%08x.*.*", tag);
    snprintf(backup, sizeof(backup), "ar.eu.to.*.%08x.*", tag);
    assert_true(subscribed(owner));
    assert_true(subscribed(backup));
    assert_int_not_equal(ar__sig_worker_tag(0), 0); /* 0 stands for no worker */
}

/* A session held here as a member of its first pair subscribes to nothing more; a copy on a
 * worker of neither (a resume elsewhere, a later backup) subscribes to its subject alone. */
static void test_session_subscribes_only_outside_its_pair(void **state)
{
    fixture_t *f = *state;
    uint32_t me = ar__sig_worker_tag(f->srv->node_id), other = ar__sig_worker_tag(7);
    char alone[96];

    ar__sig_rec_t *r = ar__sig_rec_get(f->srv, su_peer('a'));
    r->home[0] = other;
    r->home[1] = me; /* we were its first backup */
    size_t before = fake_nats_subs();
    assert_non_null(ar__sig_sess_local_new(f->srv, r, 1, NULL));
    assert_int_equal(fake_nats_subs(), before);
    assert_null(r->local->cold->sub_to);

    ar__sig_rec_t *x = ar__sig_rec_get(f->srv, su_peer('b'));
    x->home[0] = other;
    x->home[1] = 0; /* created without a backup; we hold it now */
    assert_non_null(ar__sig_sess_local_new(f->srv, x, 0, NULL));
    assert_int_equal(fake_nats_subs(), before + 1);
    snprintf(alone, sizeof(alone), "ar.eu.to.*.*.%s", su_peer('b'));
    assert_true(subscribed(alone));
    assert_non_null(x->local->cold->sub_to);
}

/* That subscription is kept in the session's cold part (internal.h): the once-a-second sweep
 * keeps the part while it holds one, even a backup copy's with nothing else in it, and lets it
 * go once unsubscribed. No memory for the part: no subscription and no session (AR_ENOMEM). */
static void test_subscription_in_cold_part(void **state)
{
    fixture_t *f = *state;
    uint32_t other = ar__sig_worker_tag(7);
    ar__sig_rec_t *x = ar__sig_rec_get(f->srv, su_peer('e'));
    x->home[0] = other;
    ar__sig_sess_t *s = ar__sig_sess_local_new(f->srv, x, 1, NULL);
    assert_non_null(s);
    assert_true(ar__sig_sess_has_cold(s));
    void *sub = s->cold->sub_to;
    assert_non_null(sub);
    ar__sig_sess_tick(f->srv);
    assert_true(ar__sig_sess_has_cold(s));
    assert_ptr_equal(s->cold->sub_to, sub);
    ar__sig_bus_unsub_to(f->srv, s);
    assert_null(s->cold->sub_to);
    ar__sig_sess_tick(f->srv);
    assert_false(ar__sig_sess_has_cold(s)); /* nothing else in it */

    ar__sig_rec_t *y = ar__sig_rec_get(f->srv, su_peer('f'));
    y->home[0] = other;
    size_t before = fake_nats_subs();
    int err = 0;
    ar_alloc_fail_after(1); /* the session, not its cold part */
    assert_null(ar__sig_sess_local_new(f->srv, y, 1, &err));
    assert_true(ar_alloc_fail_after(-1) > 0);
    assert_int_equal(err, AR_ENOMEM);
    assert_int_equal(fake_nats_subs(), before);
    assert_null(y->local);
}

/* A frame for a peer goes on the subject its record's tags name, whoever holds it now; a
 * peer without a record here on tags 0 (only a worker holding it alone hears). */
static void test_frame_subject_from_record(void **state)
{
    fixture_t *f = *state;
    ar__sig_rec_t *r = ar__sig_rec_get(f->srv, su_peer('c'));
    r->home[0] = 0x80000001u;
    r->home[1] = 0x8000abcdu;
    r->owner = 99; /* moved since: the subject stays */
    int n = snprintf(f->srv->pub + AR__SIG_TO_HDR, AR_SIG_OUT_MAX, "{\"v\":1}");
    ar__sig_bus_to(f->srv, su_peer('c'), AR__SIG_ACT_NONE, (size_t)n);
    ar__sig_bus_to(f->srv, su_peer('d'), AR__SIG_ACT_NONE, (size_t)n);
    char want[96];
    /* What a receiver reads back: the peer, last. */
    const char *peer;
    snprintf(want, sizeof(want), "ar.eu.to.80000001.8000abcd.%s", su_peer('c'));
    assert_int_equal(ar__sig_bus_subj_kind(f->srv->bus, want, &peer), K_TO);
    assert_string_equal(peer, su_peer('c'));
    ar__sig_bus_stop(f->srv);
    snprintf(want, sizeof(want), "ar.eu.to.80000001.8000abcd.%s", su_peer('c'));
    assert_int_equal(fake_nats_count(), 2);
    assert_string_equal(fake_nats_get(0).subj, want);
    snprintf(want, sizeof(want), "ar.eu.to.00000000.00000000.%s", su_peer('d'));
    assert_string_equal(fake_nats_get(1).subj, want);
}

/* Every record update carries the tags ("h"), and a worker applying one takes them; a
 * malformed "h" changes nothing. */
static void test_record_carries_home(void **state)
{
    fixture_t *f = *state;
    json_t *o = json_pack("{s:s,s:s,s:s}", "o", "0000000000000007", "p", su_peer('e'), "h",
                          "80000007.80000001");
    ar__sig_rec_apply(f->srv, o);
    json_decref(o);
    ar__sig_rec_t *r = ar__sig_rec_find(f->srv, su_peer('e'));
    assert_non_null(r);
    assert_int_equal(r->home[0], 0x80000007u);
    assert_int_equal(r->home[1], 0x80000001u);
    const char *bad[] = {"80000008", "8000000g.80000001", "80000008-80000001", "80000008.800000011",
                         "+0000008.80000001"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        o = json_pack("{s:s,s:s,s:s}", "o", "0000000000000007", "p", su_peer('e'), "h", bad[i]);
        ar__sig_rec_apply(f->srv, o);
        json_decref(o);
        assert_int_equal(r->home[0], 0x80000007u);
        assert_int_equal(r->home[1], 0x80000001u);
    }
    /* Our own updates carry them: the first publication is the record's first for others. */
    size_t before = fake_nats_count();
    ar__sig_rec_publish(f->srv, r, "role");
    ar__sig_bus_stop(f->srv);
    assert_int_equal(fake_nats_count(), before + 1);
    assert_non_null(strstr(fake_nats_get(before).data, "\"h\":\"80000007.80000001\""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_worker_subscribes_by_tag, setup,
                                        su_bus_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_session_subscribes_only_outside_its_pair, setup,
                                        su_bus_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_subscription_in_cold_part, setup,
                                        su_bus_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_frame_subject_from_record, setup,
                                        su_bus_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_record_carries_home, setup, su_bus_fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
