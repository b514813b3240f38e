/*
 * Record updates about who holds a session go on the bus in a fixed layout, not JSON
 * (src/signal/rec_wire.c; docs/signal.md, "Record updates on the wire"): which updates take
 * it, that a worker reading it ends with the record a worker reading the JSON would, and that
 * anything else in that place is refused. The bus runs over the libnats stand-in (fake_nats.c).
 */
#include "bus_internal.h"
#include "bus_worker.h"
#include "fake_nats.h"
#include "sig_util.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define OWN_O "0000000000000007" /* the publishing worker */

/* An update from worker 7 about peer c, with the JSON members `more` after "o" and "p". */
static json_t *upd(char c, const char *more)
{
    char txt[512];
    snprintf(txt, sizeof(txt), "{\"o\":\"%s\",\"p\":\"%s\"%s%s}", OWN_O, su_peer(c),
             more[0] ? "," : "", more);
    json_t *o = json_loads(txt, 0, NULL);
    assert_non_null(o);
    return o;
}

/* What each shape of update reads as, from its JSON and from the layout, is the same. */
static void test_layout_reads_as_json(void **state)
{
    (void)state;
    const char *shapes[] = {
        "\"h\":\"80000007.80000001\",\"pr\":true,\"away\":0,\"own\":\"0000000000000007\","
        "\"bk\":\"00000000000000a2\"",
        "\"h\":\"80000007.00000000\",\"away\":1,\"own\":\"0000000000000003\","
        "\"bk\":\"0000000000000000\",\"re\":true",
        "\"h\":\"80000007.80000001\",\"del\":true",
        "\"h\":\"80000007.80000001\",\"pr\":false,\"re\":false",
        "",
    };
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
        json_t *o = upd('a', shapes[i]);
        uint8_t d[AR__SIG_UPD_LEN];
        ar__sig_upd_t from_json, from_layout;
        assert_int_equal(ar__sig_upd_compact(o, d), 0);
        assert_int_equal(d[0], AR__SIG_UPD_MAGIC);
        assert_int_equal(ar__sig_upd_from_json(o, &from_json), 0);
        assert_int_equal(ar__sig_upd_read(d, sizeof(d), &from_layout), 0);
        assert_memory_equal(&from_json, &from_layout, sizeof(from_json));
        json_decref(o);
    }
}

/* An update with anything the layout has no place for, or a value it would not read back as
 * the JSON reads, stays JSON. */
static void test_other_updates_stay_json(void **state)
{
    (void)state;
    const char *shapes[] = {
        "\"role\":1",
        "\"name\":\"Ada\"",
        "\"room\":\"room-1\"",
        "\"k\":\"adopt\"",
        "\"own\":\"000000000000000A\"", /* strtoull reads it, the layout's writer does not */
        "\"own\":\"7\"",
        "\"bk\":7",
        "\"away\":true",
        "\"pr\":1",
        "\"h\":\"80000007-80000001\"",
    };
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
        json_t *o = upd('a', shapes[i]);
        uint8_t d[AR__SIG_UPD_LEN];
        assert_int_equal(ar__sig_upd_compact(o, d), -1);
        json_decref(o);
    }
    json_t *no_peer = json_pack("{s:s,s:s}", "o", OWN_O, "own", OWN_O);
    json_t *short_peer = json_pack("{s:s,s:s}", "o", OWN_O, "p", "abc");
    uint8_t d[AR__SIG_UPD_LEN];
    assert_int_equal(ar__sig_upd_compact(no_peer, d), -1);
    assert_int_equal(ar__sig_upd_compact(short_peer, d), -1);
    json_decref(no_peer);
    json_decref(short_peer);
}

/* A promotion and an away published by a worker go out in the layout, together (the role
 * after them sends them off first: bus_turn.c); a role does not. */
static void test_published_in_layout(void **state)
{
    (void)state;
    fake_nats_reset();
    su_worker_t w = {0};
    su_worker_new(&w, 1, 1, 1 << 20);
    ar__sig_rec_t *r = ar__sig_rec_get(w.srv, su_peer('b'));
    assert_non_null(r);
    r->owner = 1;
    r->backup = 0xa2;
    size_t before = fake_nats_count();
    ar__sig_rec_publish(w.srv, r, "own");
    ar__sig_rec_publish(w.srv, r, "away");
    ar__sig_rec_publish(w.srv, r, "role");
    ar__sig_bus_stop(w.srv);
    assert_int_equal(fake_nats_count(), before + 2);
    fake_pub_t p = fake_nats_get(before);
    assert_string_equal(p.subj, "ar.eu." AR__SIG_RECS_SUBJ);
    assert_int_equal(ar__sig_upd_batch_count((const uint8_t *)p.data, p.len), 2);
    for (size_t i = 0; i < 2; i++) {
        ar__sig_upd_t u;
        const uint8_t *d = (const uint8_t *)p.data + 1 + i * AR__SIG_UPD_LEN;
        assert_int_equal(ar__sig_upd_read(d, AR__SIG_UPD_LEN, &u), 0);
        assert_true(u.has_own && u.owner == 1 && u.has_bk && u.backup == 0xa2);
        assert_true(u.has_away && u.has_home);
        assert_string_equal(u.peer, su_peer('b'));
    }
    assert_int_equal(fake_nats_get(before + 1).data[0], '{');
    su_worker_free(&w);
}

/* Two workers, one given each update as JSON, the other in the layout through its bus: their
 * records of the session agree after each, a deletion included. */
static void test_applied_as_json(void **state)
{
    (void)state;
    su_worker_t a = {0}, b = {0};
    su_worker_new(&a, 1, 0, 1 << 20);
    su_worker_new(&b, 2, 0, 1 << 20);
    char subj[64];
    snprintf(subj, sizeof(subj), "ar.eu.sess.%s", su_peer('c'));
    const char *steps[] = {
        "\"h\":\"80000007.80000001\",\"away\":0,\"own\":\"0000000000000007\","
        "\"bk\":\"0000000000000001\"",
        "\"h\":\"80000007.80000001\",\"away\":1,\"own\":\"0000000000000007\","
        "\"bk\":\"0000000000000001\"",
        "\"h\":\"80000007.80000001\",\"pr\":true,\"away\":0,\"own\":\"0000000000000003\","
        "\"bk\":\"0000000000000002\"",
    };
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        json_t *o = upd('c', steps[i]);
        uint8_t d[AR__SIG_UPD_LEN];
        assert_int_equal(ar__sig_upd_compact(o, d), 0);
        ar__sig_rec_apply(a.srv, o);
        json_decref(o);
        ar__sig_bus_put(b.srv->bus, subj, d, sizeof(d));
        ar__sig_bus_wake(b.srv);
        ar__sig_rec_t *ra = ar__sig_rec_find(a.srv, su_peer('c'));
        ar__sig_rec_t *rb = ar__sig_rec_find(b.srv, su_peer('c'));
        assert_non_null(ra);
        assert_non_null(rb);
        assert_int_equal(ra->owner, rb->owner);
        assert_int_equal(ra->backup, rb->backup);
        assert_int_equal(ra->away, rb->away);
        assert_memory_equal(ra->home, rb->home, sizeof(ra->home));
    }
    ar__sig_rec_t *rb = ar__sig_rec_find(b.srv, su_peer('c'));
    assert_int_equal(rb->owner, 3);
    assert_int_equal(rb->backup, 2);
    assert_int_equal(rb->home[0], 0x80000007u);
    json_t *del = upd('c', "\"del\":true");
    uint8_t d[AR__SIG_UPD_LEN];
    assert_int_equal(ar__sig_upd_compact(del, d), 0);
    json_decref(del);
    ar__sig_bus_put(b.srv->bus, subj, d, sizeof(d));
    ar__sig_bus_wake(b.srv);
    assert_null(ar__sig_rec_find(b.srv, su_peer('c')));
    su_worker_free(&a);
    su_worker_free(&b);
}

/* Bytes that are not the layout, or name no session as JSON could, make no record. */
static void test_bad_layout_refused(void **state)
{
    (void)state;
    su_worker_t w = {0};
    su_worker_new(&w, 1, 0, 1 << 20);
    json_t *o = upd('d', "\"away\":1");
    uint8_t good[AR__SIG_UPD_LEN + 1];
    assert_int_equal(ar__sig_upd_compact(o, good), 0);
    json_decref(o);
    char subj[64];
    snprintf(subj, sizeof(subj), "ar.eu.sess.%s", su_peer('d'));
    uint8_t bad[5][AR__SIG_UPD_LEN + 1];
    size_t len[5];
    for (size_t i = 0; i < 5; i++) {
        memcpy(bad[i], good, sizeof(good));
        len[i] = AR__SIG_UPD_LEN;
    }
    len[0] = AR__SIG_UPD_LEN - 1;  /* cut */
    bad[1][AR__SIG_UPD_LEN] = 'x'; /* one byte more */
    len[1] = AR__SIG_UPD_LEN + 1;
    bad[2][0] = 0x02;                   /* another magic */
    bad[3][AR__SIG_UPD_LEN - 5] = '\0'; /* a NUL in the peer id */
    bad[4][1] = 4;                      /* away's value without away */
    ar__sig_upd_t u;
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(ar__sig_upd_read(bad[i], len[i], &u), -1);
        ar__sig_bus_put(w.srv->bus, subj, bad[i], len[i]);
        ar__sig_bus_wake(w.srv);
        assert_null(ar__sig_rec_find(w.srv, su_peer('d')));
    }
    /* The good one does, through the same path. */
    ar__sig_bus_put(w.srv->bus, subj, good, AR__SIG_UPD_LEN);
    ar__sig_bus_wake(w.srv);
    assert_non_null(ar__sig_rec_find(w.srv, su_peer('d')));
    su_worker_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_reads_as_json), cmocka_unit_test(test_other_updates_stay_json),
        cmocka_unit_test(test_published_in_layout),  cmocka_unit_test(test_applied_as_json),
        cmocka_unit_test(test_bad_layout_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
