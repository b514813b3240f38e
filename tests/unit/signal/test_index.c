/*
 * The replicated view of src/signal/index.c: room membership and waiting-area queues follow
 * the records, rooms and areas vanish with their last member, and nothing is left after the
 * records go (P5, S4). No sockets and no bus: records are applied as the bus would apply them.
 */
#include "internal.h"

#include "anteroom/alloc.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static ar__sig_srv_t *srv_new(void)
{
    ar__sig_srv_t *srv = ar_calloc(1, sizeof(*srv));
    assert_non_null(srv);
    srv->node_id = 1;
    return srv;
}

static ar__sig_rec_t *rec(ar__sig_srv_t *srv, char c)
{
    char peer[AR__SIG_PEER_LEN + 1];
    memset(peer, c, AR__SIG_PEER_LEN);
    peer[AR__SIG_PEER_LEN] = '\0';
    ar__sig_rec_t *r = ar__sig_rec_get(srv, peer);
    assert_non_null(r);
    return r;
}

static void test_rooms(void **state)
{
    (void)state;
    ar__sig_srv_t *srv = srv_new();
    ar__sig_rec_t *a = rec(srv, 'a'), *b = rec(srv, 'b'), *c = rec(srv, 'c');
    assert_ptr_equal(ar__sig_rec_find(srv, a->peer), a);
    ar__sig_rec_set_room(srv, a, "R1");
    ar__sig_rec_set_room(srv, b, "R1");
    ar__sig_rec_set_room(srv, c, "R2");
    ar__sig_room_t *r1 = ar__sig_room_find(srv, "R1");
    assert_non_null(r1);
    assert_int_equal(r1->nmembers, 2);
    assert_int_equal(srv->nrooms, 2);
    ar__sig_rec_set_room(srv, c, "R1"); /* moving drops the empty room it left */
    assert_null(ar__sig_room_find(srv, "R2"));
    assert_int_equal(r1->nmembers, 3);
    ar__sig_rec_free(srv, a);
    ar__sig_rec_free(srv, b);
    assert_int_equal(r1->nmembers, 1);
    ar__sig_rec_set_room(srv, c, "");
    assert_null(ar__sig_room_find(srv, "R1"));
    assert_int_equal(srv->nrooms, 0);
    ar__sig_rec_free(srv, c);
    ar__sig_frame_pool_free(srv);
    ar__sig_recs_free(srv);
    ar_free(srv);
}

/* Records are found by their whole id: ids that differ in any one character are distinct
 * records (index.c hashes them as three words, and compares all 22 characters), an id of
 * another length finds none and makes none, and a freed record is gone from its bucket. */
static void test_records_by_whole_id(void **state)
{
    (void)state;
    ar__sig_srv_t *srv = srv_new();
    char base[AR__SIG_PEER_LEN + 1];
    memset(base, 'k', AR__SIG_PEER_LEN);
    base[AR__SIG_PEER_LEN] = '\0';
    ar__sig_rec_t *k = ar__sig_rec_get(srv, base);
    assert_non_null(k);
    ar__sig_rec_t *one[AR__SIG_PEER_LEN];
    for (int i = 0; i < AR__SIG_PEER_LEN; i++) {
        char id[AR__SIG_PEER_LEN + 1];
        memcpy(id, base, sizeof(id));
        id[i] = 'Q';
        one[i] = ar__sig_rec_get(srv, id);
        assert_non_null(one[i]);
        assert_ptr_not_equal(one[i], k);
        for (int j = 0; j < i; j++)
            assert_ptr_not_equal(one[i], one[j]);
        assert_ptr_equal(ar__sig_rec_find(srv, id), one[i]);
        assert_ptr_equal(ar__sig_rec_find_whole(srv, id), one[i]);
        /* The relay's lookup of AR__SIG_PEER_LEN bytes: one with a NUL among them finds none. */
        id[i] = '\0';
        assert_null(ar__sig_rec_find_whole(srv, id));
    }
    assert_ptr_equal(ar__sig_rec_find(srv, base), k);
    assert_ptr_equal(ar__sig_rec_find_whole(srv, base), k);
    char shorter[AR__SIG_PEER_LEN];
    memcpy(shorter, base, AR__SIG_PEER_LEN - 1);
    shorter[AR__SIG_PEER_LEN - 1] = '\0';
    char longer[AR__SIG_PEER_LEN + 2];
    memcpy(longer, base, AR__SIG_PEER_LEN);
    longer[AR__SIG_PEER_LEN] = 'k';
    longer[AR__SIG_PEER_LEN + 1] = '\0';
    assert_null(ar__sig_rec_find(srv, shorter));
    assert_null(ar__sig_rec_find(srv, longer));
    assert_null(ar__sig_rec_get(srv, shorter));
    assert_null(ar__sig_rec_get(srv, longer));
    assert_null(ar__sig_rec_find(srv, ""));
    ar__sig_rec_free(srv, k);
    assert_null(ar__sig_rec_find(srv, base));
    for (int i = 0; i < AR__SIG_PEER_LEN; i++) {
        char id[AR__SIG_PEER_LEN + 1];
        memcpy(id, one[i]->peer, sizeof(id));
        ar__sig_rec_free(srv, one[i]);
        assert_null(ar__sig_rec_find(srv, id));
        assert_null(ar__sig_rec_find_whole(srv, id));
    }
    ar__sig_frame_pool_free(srv);
    ar__sig_recs_free(srv);
    ar_free(srv);
}

/* A joiner ranks after the members its worker sees, even when their nodes' clocks are ahead
 * of this one's (their times came from the bus, "jt"), so that an established member is never
 * ranked fifth by a node whose clock is behind. */
static void test_join_after_members(void **state)
{
    (void)state;
    ar__sig_srv_t *srv = srv_new();
    ar__sig_rec_t *a = rec(srv, 'a'), *b = rec(srv, 'b'), *c = rec(srv, 'c');
    ar__sig_rec_set_room(srv, a, "R1");
    ar__sig_rec_set_room(srv, b, "R1");
    uint64_t ahead = ar__sig_now_us() + 3600ull * 1000000u; /* a node an hour ahead */
    a->joined_us = ahead;
    b->joined_us = ahead + 5;
    ar__sig_rec_set_room(srv, c, "R1");
    assert_true(c->joined_us > b->joined_us);
    assert_true(c->joined_us > a->joined_us);
    /* Moving to an empty room takes the local clock again. */
    ar__sig_rec_set_room(srv, c, "R2");
    assert_true(c->joined_us < ahead);
    ar__sig_rec_free(srv, a);
    ar__sig_rec_free(srv, b);
    ar__sig_rec_free(srv, c);
    ar__sig_frame_pool_free(srv);
    ar__sig_recs_free(srv);
    ar_free(srv);
}

static void test_areas(void **state)
{
    (void)state;
    ar__sig_srv_t *srv = srv_new();
    ar__sig_rec_t *p1 = rec(srv, 'p'), *p2 = rec(srv, 'q'), *s = rec(srv, 's');
    ar__sig_rec_set_area(srv, p1, "c1", "knee");
    ar__sig_rec_set_area(srv, p2, "c1", "knee");
    ar__sig_area_t *a = ar__sig_area_find(srv, "c1", "knee");
    assert_non_null(a);
    assert_int_equal(a->npatients, 2);
    assert_ptr_equal(a->patients[0], p1); /* arrival order */
    assert_int_equal(ar__sig_area_sub(srv, s, a), 0);
    assert_int_equal(ar__sig_area_sub(srv, s, a), 0); /* once only */
    assert_int_equal(a->nsubs, 1);
    ar__sig_rec_set_area(srv, p1, "c1", "hip"); /* transfer */
    assert_int_equal(a->npatients, 1);
    assert_ptr_equal(a->patients[0], p2);
    assert_int_equal(ar__sig_area_find(srv, "c1", "hip")->npatients, 1);
    ar__sig_rec_free(srv, p1);
    assert_null(ar__sig_area_find(srv, "c1", "hip"));
    ar__sig_rec_free(srv, p2);
    assert_non_null(ar__sig_area_find(srv, "c1", "knee")); /* still watched */
    ar__sig_area_unsub(srv, s, a);
    assert_null(ar__sig_area_find(srv, "c1", "knee"));
    ar__sig_rec_free(srv, s);
    ar__sig_frame_pool_free(srv);
    ar__sig_recs_free(srv);
    ar_free(srv);
}

/* Record updates from another worker, as the bus delivers them. */
static void test_apply(void **state)
{
    (void)state;
    ar_sig_init();
    ar__sig_srv_t *srv = srv_new();
    const char *peer = "pppppppppppppppppppppp";
    json_t *o =
        json_pack("{s:s,s:s,s:i,s:s,s:s,s:s,s:i,s:s,s:s,s:[[s,s]]}", "o", "0000000000000002", "p",
                  peer, "role", AR_SIG_ROLE_PATIENT, "room", "R", "clinic", "c1", "area", "knee",
                  "st", AR_SIG_ST_WAITING, "by", "", "name", "Zoe", "ans", "reason", "pain");
    ar__sig_rec_apply(srv, o);
    json_decref(o);
    ar__sig_rec_t *r = ar__sig_rec_find(srv, peer);
    assert_non_null(r);
    assert_string_equal(ar__sig_rec_name(r), "Zoe");
    assert_int_equal(r->q->nans, 1);
    assert_non_null(ar__sig_room_find(srv, "R"));
    assert_int_equal(ar__sig_area_find(srv, "c1", "knee")->npatients, 1);
    /* Our own updates come back from NATS too: they are ignored. */
    o = json_pack("{s:s,s:s,s:b}", "o", "0000000000000001", "p", peer, "del", 1);
    ar__sig_rec_apply(srv, o);
    json_decref(o);
    assert_non_null(ar__sig_rec_find(srv, peer));
    o = json_pack("{s:s,s:s,s:b}", "o", "0000000000000002", "p", peer, "del", 1);
    ar__sig_rec_apply(srv, o);
    json_decref(o);
    assert_null(ar__sig_rec_find(srv, peer));
    assert_null(ar__sig_room_find(srv, "R"));
    assert_null(ar__sig_area_find(srv, "c1", "knee"));
    ar__sig_frame_pool_free(srv);
    ar__sig_recs_free(srv);
    ar_free(srv);
}

static void apply_json(ar__sig_srv_t *srv, json_t *o)
{
    assert_non_null(o);
    ar__sig_rec_apply(srv, o);
    json_decref(o);
}

/* role, status and away are bits of the record (internal.h): an update's value that does not
 * fit them is not applied, rather than cut to another role or status. */
static void test_apply_small_fields(void **state)
{
    (void)state;
    ar_sig_init();
    ar__sig_srv_t *srv = srv_new();
    const char *peer = "sssssssssssssssssssssS";
    apply_json(srv, json_pack("{s:s,s:s,s:i,s:i,s:s,s:s,s:i}", "o", "0000000000000002", "p", peer,
                              "role", AR_SIG_ROLE_PATIENT, "away", 2, "clinic", "c1", "area", "",
                              "st", AR_SIG_ST_HOLD));
    ar__sig_rec_t *r = ar__sig_rec_find(srv, peer);
    assert_non_null(r);
    assert_int_equal(r->role, AR_SIG_ROLE_PATIENT);
    assert_int_equal(r->status, AR_SIG_ST_HOLD);
    assert_int_equal(r->away, 1); /* any other number than 0 is away, as it was */
    /* 7 would be 3 (invitee) cut to two bits, 5 would be 1 (waiting). */
    apply_json(srv, json_pack("{s:s,s:s,s:i,s:i,s:s,s:s,s:i}", "o", "0000000000000002", "p", peer,
                              "role", 7, "away", 0, "clinic", "c1", "area", "", "st", 5));
    assert_int_equal(r->role, AR_SIG_ROLE_PATIENT);
    assert_int_equal(r->status, AR_SIG_ST_HOLD);
    assert_int_equal(r->away, 0);
    apply_json(srv, json_pack("{s:s,s:s,s:i,s:s,s:s,s:i}", "o", "0000000000000002", "p", peer,
                              "role", -1, "clinic", "c1", "area", "", "st", -2));
    assert_int_equal(r->role, AR_SIG_ROLE_PATIENT);
    assert_int_equal(r->status, AR_SIG_ST_HOLD);
    apply_json(srv, json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "o", "0000000000000002", "p", peer,
                              "role", "staff", "clinic", "c1", "area", "", "st", "seen"));
    assert_int_equal(r->role, AR_SIG_ROLE_PATIENT);
    assert_int_equal(r->status, AR_SIG_ST_HOLD);
    /* Without "st", queue fields say it is in no queue, as before. */
    apply_json(srv, json_pack("{s:s,s:s,s:i,s:s,s:s}", "o", "0000000000000002", "p", peer, "role",
                              AR_SIG_ROLE_STAFF, "clinic", "c1", "area", ""));
    assert_int_equal(r->role, AR_SIG_ROLE_STAFF);
    assert_int_equal(r->status, 0);
    ar__sig_rec_free(srv, r);
    ar__sig_frame_pool_free(srv);
    ar__sig_recs_free(srv);
    ar_free(srv);
}

/* A name is in the record's queue part (internal.h): a staff member's or invitee's name from
 * the bus gets the record one, "" wipes it, a record without a name and no other fact has
 * none, and without memory for the part the record stays nameless. */
static void test_apply_name_part(void **state)
{
    (void)state;
    ar_sig_init();
    ar__sig_srv_t *srv = srv_new();
    const char *peer = "nnnnnnnnnnnnnnnnnnnnnN";
    /* A session's first update ("all") with no name and empty queue fields: no part. */
    apply_json(srv, json_pack("{s:s,s:s,s:i,s:s,s:s,s:s,s:i,s:s,s:s,s:i}", "o", "0000000000000002",
                              "p", peer, "role", AR_SIG_ROLE_STAFF, "room", "R2", "clinic", "",
                              "area", "", "st", 0, "by", "", "bn", "", "since", 0));
    ar__sig_rec_t *r = ar__sig_rec_find(srv, peer);
    assert_non_null(r);
    assert_ptr_equal(r->q, &ar__sig_no_q);
    assert_null(ar__sig_rec_name(r));
    /* "" on a record without the part: nothing to wipe, and still no part. */
    apply_json(srv, json_pack("{s:s,s:s,s:s}", "o", "0000000000000002", "p", peer, "name", ""));
    assert_ptr_equal(r->q, &ar__sig_no_q);
    /* Without memory for the part: no name, and nothing half made. */
    json_t *o = json_pack("{s:s,s:s,s:s}", "o", "0000000000000002", "p", peer, "name", "Dr Ana");
    assert_non_null(o);
    ar_alloc_fail_after(0);
    ar__sig_rec_apply(srv, o);
    ar_alloc_fail_after(-1);
    json_decref(o);
    assert_ptr_equal(r->q, &ar__sig_no_q);
    assert_null(ar__sig_rec_name(r));
    apply_json(srv,
               json_pack("{s:s,s:s,s:s}", "o", "0000000000000002", "p", peer, "name", "Dr Ana"));
    assert_ptr_not_equal(r->q, &ar__sig_no_q);
    assert_string_equal(ar__sig_rec_name(r), "Dr Ana");
    assert_string_equal(r->q->area, ""); /* the part's other facts read as none */
    assert_int_equal(r->q->nans, 0);
    apply_json(srv, json_pack("{s:s,s:s,s:s}", "o", "0000000000000002", "p", peer, "name", ""));
    assert_null(ar__sig_rec_name(r));
    apply_json(srv,
               json_pack("{s:s,s:s,s:s}", "o", "0000000000000002", "p", peer, "name", "Dr Bo"));
    assert_string_equal(ar__sig_rec_name(r), "Dr Bo");
    ar__sig_rec_free(srv, r); /* the name goes with the part (ASan: no leak) */
    ar__sig_frame_pool_free(srv);
    ar__sig_recs_free(srv);
    ar_free(srv);
}

/* The i-th of many distinct ids of AR__SIG_PEER_LEN base64url characters. */
static void nth_id(char id[AR__SIG_PEER_LEN + 1], unsigned i)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    memset(id, 'p', AR__SIG_PEER_LEN);
    for (int k = 0; k < 4; k++, i >>= 6)
        id[3 + 5 * k] = b64[i & 63]; /* spread over the words the hash reads */
    id[AR__SIG_PEER_LEN] = '\0';
}

/* The records' table grows with the records (no more records than buckets), never under a walk,
 * and without memory for a bigger one keeps its chains longer; every record is found all along.
 * Without memory for the first table, no record is made. */
static void test_records_table_grows(void **state)
{
    (void)state;
    enum { N = 5000 };
    ar__sig_srv_t *srv = srv_new();
    char id[AR__SIG_PEER_LEN + 1];
    assert_int_equal(ar__sig_rec_buckets(srv), 0);
    ar_alloc_fail_after(0);
    nth_id(id, 0);
    assert_null(ar__sig_rec_get(srv, id)); /* no table, no record */
    assert_true(ar_alloc_fail_after(-1) > 0);
    for (unsigned i = 0; i < AR__SIG_REC_BUCKETS_MIN; i++) {
        nth_id(id, i);
        assert_non_null(ar__sig_rec_get(srv, id));
    }
    assert_int_equal(ar__sig_rec_buckets(srv), AR__SIG_REC_BUCKETS_MIN);
    /* One more: doubled, but not under a walk, nor without memory. */
    ar__sig_rec_walk_begin(srv);
    nth_id(id, AR__SIG_REC_BUCKETS_MIN);
    assert_non_null(ar__sig_rec_get(srv, id));
    ar__sig_rec_walk_end(srv);
    assert_int_equal(ar__sig_rec_buckets(srv), AR__SIG_REC_BUCKETS_MIN);
    ar_alloc_fail_after(1); /* the record, not the table */
    nth_id(id, AR__SIG_REC_BUCKETS_MIN + 1);
    assert_non_null(ar__sig_rec_get(srv, id));
    assert_true(ar_alloc_fail_after(-1) > 0);
    assert_int_equal(ar__sig_rec_buckets(srv), AR__SIG_REC_BUCKETS_MIN);
    for (unsigned i = AR__SIG_REC_BUCKETS_MIN + 2; i < N; i++) {
        nth_id(id, i);
        assert_non_null(ar__sig_rec_get(srv, id));
    }
    assert_int_equal(ar__sig_rec_buckets(srv), 8192); /* 5,000 records: 4,096 buckets too few */
    assert_int_equal(srv->nrecs, N);
    size_t seen = 0;
    for (size_t b = 0; b < ar__sig_rec_buckets(srv); b++)
        for (ar__sig_rec_t *r = srv->recs[b]; r; r = r->hnext)
            seen++;
    assert_int_equal(seen, N);
    for (unsigned i = 0; i < N; i++) {
        nth_id(id, i);
        ar__sig_rec_t *r = ar__sig_rec_find(srv, id);
        assert_non_null(r);
        assert_string_equal(r->peer, id);
        assert_ptr_equal(ar__sig_rec_find_whole(srv, id), r);
        ar__sig_rec_free(srv, r);
        assert_null(ar__sig_rec_find(srv, id));
    }
    assert_int_equal(srv->nrecs, 0);
    ar__sig_frame_pool_free(srv);
    ar__sig_recs_free(srv);
    ar_free(srv);
}

/* The table stops at AR__SIG_REC_BUCKETS_MAX: more records than that share its chains. */
static void test_records_table_bounded(void **state)
{
    (void)state;
    const unsigned n = (unsigned)AR__SIG_REC_BUCKETS_MAX + 100;
    ar__sig_srv_t *srv = srv_new();
    char id[AR__SIG_PEER_LEN + 1];
    for (unsigned i = 0; i < n; i++) {
        nth_id(id, i);
        assert_non_null(ar__sig_rec_get(srv, id));
    }
    assert_int_equal(ar__sig_rec_buckets(srv), AR__SIG_REC_BUCKETS_MAX);
    for (unsigned i = 0; i < n; i++) {
        nth_id(id, i);
        ar__sig_rec_t *r = ar__sig_rec_find(srv, id);
        assert_non_null(r);
        ar__sig_rec_free(srv, r);
    }
    assert_int_equal(srv->nrecs, 0);
    ar__sig_frame_pool_free(srv);
    ar__sig_recs_free(srv);
    ar_free(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rooms),
        cmocka_unit_test(test_records_by_whole_id),
        cmocka_unit_test(test_records_table_grows),
        cmocka_unit_test(test_records_table_bounded),
        cmocka_unit_test(test_join_after_members),
        cmocka_unit_test(test_areas),
        cmocka_unit_test(test_apply),
        cmocka_unit_test(test_apply_small_fields),
        cmocka_unit_test(test_apply_name_part),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
