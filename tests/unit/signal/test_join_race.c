/*
 * Two joins racing on two workers (rec.c, flows.c ar__sig_announce_late; protocol.md 5.7): each
 * joiner's worker tells only the members it knows of, and names them in the joiner's record
 * ("rt"). A worker applying that record tells its own members the joiner did not name, once,
 * so that two clinicians who join a call within the bus's delay still hear of each other.
 * Frames are caught by wrapping bus.c's ar__sig_bus_to at link time; no loop, no bus.
 */
#include "internal.h"
#include "sig_util.h"

#include "anteroom/alloc.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define US 1u
#define THEM "0000000000000003" /* the joiner's worker */

static struct {
    char peer[AR__SIG_PEER_LEN + 1];
    char about[AR__SIG_PEER_LEN + 1];
} sent[8];
static size_t nsent;
static size_t nleft; /* peer_left frames sent, and to whom the last one went */
static char left_to[AR__SIG_PEER_LEN + 1];

void __wrap_ar__sig_bus_to(ar__sig_srv_t *srv, const char *peer, uint8_t action, size_t len);
void __wrap_ar__sig_bus_to(ar__sig_srv_t *srv, const char *peer, uint8_t action, size_t len)
{
    (void)action;
    const char *f = srv->pub + AR__SIG_TO_HDR;
    if (memmem(f, len, "\"type\":\"peer_left\"", 18)) {
        nleft++;
        snprintf(left_to, sizeof(left_to), "%s", peer);
        return;
    }
    if (!memmem(f, len, "\"type\":\"peer_joined\"", 20) || nsent == 8)
        return;
    const char *p = memmem(f, len, "\"peer\":\"", 8);
    assert_non_null(p);
    snprintf(sent[nsent].peer, sizeof(sent[nsent].peer), "%s", peer);
    snprintf(sent[nsent].about, sizeof(sent[nsent].about), "%.*s", AR__SIG_PEER_LEN, p + 8);
    nsent++;
}

void __wrap_ar__sig_bus_rec(ar__sig_srv_t *srv, const char *kind, const char *key, void *json_obj);
void __wrap_ar__sig_bus_rec(ar__sig_srv_t *srv, const char *kind, const char *key, void *json_obj)
{
    (void)srv;
    (void)kind;
    (void)key;
    json_decref(json_obj);
}

/* The record of peer x as the joiner's worker publishes it: in room-1, having told `told`. */
static void apply_join(ar__sig_srv_t *srv, char x, const char *const *told, size_t n)
{
    json_t *rt = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(rt, json_string(told[i]));
    json_t *o = json_pack("{s:s,s:s,s:i,s:s,s:I,s:o}", "o", THEM, "p", su_peer(x), "role",
                          AR_SIG_ROLE_STAFF, "room", "room-1", "jt", (json_int_t)5, "rt", rt);
    assert_non_null(o);
    ar__sig_rec_apply(srv, o);
    json_decref(o);
}

typedef struct {
    ar__sig_srv_t *srv;
    ar__sig_sess_t *mine, *copy;
} fix_t;

static int setup(void **state)
{
    static fix_t f;
    ar_sig_init();
    f.srv = su_srv_new(US);
    /* 'a', a session of ours, and 'b', a backup copy of another worker's, both in room-1. */
    f.mine = su_sess_held(f.srv, 'a', 0);
    f.copy = su_sess_held(f.srv, 'b', 1);
    ar__sig_rec_set_room(f.srv, f.mine->rec, "room-1");
    ar__sig_rec_set_room(f.srv, f.copy->rec, "room-1");
    nsent = nleft = 0;
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    fix_t *f = *state;
    for (char c = 'a'; c <= 'z'; c++) {
        ar__sig_rec_t *r = ar__sig_rec_find(f->srv, su_peer(c));
        if (r)
            ar__sig_rec_free(f->srv, r);
    }
    su_srv_free(f->srv);
    return 0;
}

/* The joiner's worker did not know 'a': we tell 'a' (ours), not 'b' (its owner does). */
static void test_unknown_member_told(void **state)
{
    fix_t *f = *state;
    apply_join(f->srv, 'x', NULL, 0);
    assert_int_equal(nsent, 1);
    assert_string_equal(sent[0].peer, su_peer('a'));
    assert_string_equal(sent[0].about, su_peer('x'));
    /* The same record again (a republish): x is in the room already, nobody is told twice. */
    apply_join(f->srv, 'x', NULL, 0);
    assert_int_equal(nsent, 1);
}

/* The joiner's worker told 'a' itself: not again. */
static void test_named_member_not_told(void **state)
{
    fix_t *f = *state;
    const char *told[] = {su_peer('a'), su_peer('b')};
    apply_join(f->srv, 'x', told, 2);
    assert_int_equal(nsent, 0);
}

/* A record without "rt" (a republish, an older worker): nobody is told. */
static void test_no_list_no_announcement(void **state)
{
    fix_t *f = *state;
    json_t *o = json_pack("{s:s,s:s,s:i,s:s}", "o", THEM, "p", su_peer('y'), "role",
                          AR_SIG_ROLE_STAFF, "room", "room-1");
    assert_non_null(o);
    ar__sig_rec_apply(f->srv, o);
    json_decref(o);
    assert_int_equal(nsent, 0);
    assert_ptr_equal(ar__sig_rec_find(f->srv, su_peer('y'))->in_room, f->mine->rec->in_room);
}

/* x, announced to 'a' by us (its joiner's worker did not know 'a'), leaves before its worker
 * learns of 'a': its worker tells only the members it knew ("lt"), so we tell 'a', once. */
static void test_unknown_member_told_of_leave(void **state)
{
    fix_t *f = *state;
    apply_join(f->srv, 'x', NULL, 0);
    assert_int_equal(nleft, 0);
    json_t *o = json_pack("{s:s,s:s,s:s,s:[],s:i}", "o", THEM, "p", su_peer('x'), "room", "", "lt",
                          "lr", 1);
    assert_non_null(o);
    ar__sig_rec_apply(f->srv, o);
    json_decref(o);
    assert_int_equal(nleft, 1);
    assert_string_equal(left_to, su_peer('a'));
    assert_null(ar__sig_rec_find(f->srv, su_peer('x'))->in_room);
    /* A leave that named 'a' (its worker told it), or carries no "lt": nobody here. */
    apply_join(f->srv, 'y', NULL, 0);
    o = json_pack("{s:s,s:s,s:s,s:[s],s:i}", "o", THEM, "p", su_peer('y'), "room", "", "lt",
                  su_peer('a'), "lr", 1);
    ar__sig_rec_apply(f->srv, o);
    json_decref(o);
    apply_join(f->srv, 'z', NULL, 0);
    o = json_pack("{s:s,s:s,s:s}", "o", THEM, "p", su_peer('z'), "room", "");
    ar__sig_rec_apply(f->srv, o);
    json_decref(o);
    assert_int_equal(nleft, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_unknown_member_told, setup, teardown),
        cmocka_unit_test_setup_teardown(test_named_member_not_told, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_list_no_announcement, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_member_told_of_leave, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
