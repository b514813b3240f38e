/*
 * A removal applies only to the room it was made for (src/signal/remove.c; docs/signal.md,
 * "Removing a member"). `remove` is checked on the remover's worker and applied at the member's
 * owner a bus hop later; a clinician may have left that room and joined another meanwhile. The
 * removal frame names its room, and the owner (or a backup promoted in its place) takes the
 * member out only of that room.
 * No sockets and no bus: the frames for peers, the record updates and the workers' messages are
 * caught at link time (the wraps below, bus_catch.c) and handed on by hand.
 */
#include "bus_catch.h"
#include "internal.h"
#include "sent_capture.h"
#include "sig_util.h"

#include "anteroom/alloc.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define T0 1000000u /* the tests' clock for the ended rooms' catch-up, ms */

/* ---- frames sent to peers (sent_capture.c) ---- */

/* How many frames went to peer c. */
static size_t sent_to(char c)
{
    size_t n = 0;
    for (size_t i = 0; i < sc_nsent; i++)
        if (strcmp(sc_sent[i].peer, su_peer(c)) == 0)
            n++;
    return n;
}

static void reset(void)
{
    bc_clear();
    sc_nsent = 0;
}

/* ---- workers, members, frames ---- */

static ar_signal_conf_t conf = {.node_name = (char *)"node-a", .grace = 20000};

/* Worker 4, caught up on ended rooms; worker 7 (on node-b) heard 5 s ago and its death
 * handled: what 7 owned and this worker backs up is promoted by ar__sig_node_dead(x, 7). */
static ar__sig_srv_t *worker(void)
{
    reset();
    ar__sig_srv_t *x = su_srv_caught_up(4, T0);
    x->conf = &conf;
    bc_heard(x, 7, "node-b", 5000);
    x->nodes[0].dead = 1;
    return x;
}

static void worker_free(ar__sig_srv_t *w)
{
    reset();
    ar__sig_invites_free(w);
    bc_worker_free(w);
}

/* Staff member c in room (persistent: any staff may run its call): owned by w, or w's backup
 * copy of worker 7's session. */
static ar__sig_rec_t *staff(ar__sig_srv_t *w, char c, const char *room, int backup)
{
    ar__sig_rec_t *r = ar__sig_rec_get(w, su_peer(c));
    assert_non_null(r);
    r->role = AR_SIG_ROLE_STAFF;
    r->owner = backup ? 7 : w->node_id;
    assert_non_null(ar__sig_sess_link_new(w, r, backup));
    ar__sig_rec_set_room(w, r, room);
    assert_non_null(r->in_room);
    r->in_room->persistent = 1;
    return r;
}

/* remover sends `remove {peer: target}` on its connection: the frame for target, as caught. */
static size_t remove_peer(ar__sig_srv_t *w, ar__sig_rec_t *remover, const ar__sig_rec_t *target)
{
    ar__sig_conn_t cn;
    su_conn_attach(&cn, w, remover->local, AR__SIG_C_LIVE);
    ar_sig_msg_t m;
    ar_sig_msg_init(&m, AR_SIG_REMOVE);
    m.u.act.peer = (ar_sig_str_t){target->peer, strlen(target->peer)};
    size_t before = sc_nsent;
    ar__sig_on_remove(&cn, &m);
    remover->local->conn = NULL;
    assert_int_equal(sc_nsent, before + 1);
    assert_string_equal(sc_sent[before].peer, target->peer);
    assert_int_equal(sc_sent[before].action, AR__SIG_ACT_REMOVED);
    return before;
}

/* The numbered copy of frame (seq, fid {id}, action) as worker 7, c's owner, sends it to the
 * backup (the "num" form of the copies' batch). */
static void num_from_7(ar__sig_srv_t *x, char c, int64_t seq, uint8_t id, uint8_t action,
                       const char *frame)
{
    char hex[33];
    memset(hex, '0', 32);
    hex[0] = (char)('0' + (id >> 4));
    hex[1] = "0123456789abcdef"[id & 15u];
    hex[32] = '\0';
    json_t *o = json_pack("{s:s,s:s,s:I,s:s,s:i,s:s}", "k", "num", "p", su_peer(c), "s",
                          (json_int_t)seq, "f", hex, "a", (int)action, "d", frame);
    su_proc(x, o);
}

/* Worker 7's record update moving c to room ("" for none), as its owner publishes it. */
static void room_from_7(ar__sig_srv_t *x, char c, const char *room)
{
    json_t *o = json_pack("{s:s,s:s,s:s}", "o", "0000000000000007", "p", su_peer(c), "room", room);
    assert_non_null(o);
    ar__sig_rec_apply(x, o);
    json_decref(o);
}

/* The removal frame the remover's worker (a current one) builds for c in room. */
static const char *removal(char c, const char *room)
{
    static char f[200];
    snprintf(f, sizeof(f),
             "{\"v\":1,\"type\":\"peer_left\",\"seq\":0,\"peer\":\"%s\",\"reason\":\"removed\","
             "\"room\":\"%s\"}",
             su_peer(c), room);
    return f;
}

/* ---- the owner ---- */

/* The race: d removes c from room-x; before the frame reaches c's owner, c leaves room-x and
 * joins room-y (with e). The frame names room-x: c gets it (numbered, kept for a resume), and
 * stays in room-y, where e is told nothing. Before, the owner took c out of room-y. */
static void test_removal_from_a_room_left_since(void **state)
{
    (void)state;
    ar__sig_srv_t *x = worker();
    ar__sig_rec_t *d = staff(x, 'd', "room-x", 0);
    ar__sig_rec_t *c = staff(x, 'c', "room-x", 0);
    ar__sig_rec_t *e = staff(x, 'e', "room-y", 0);
    size_t i = remove_peer(x, d, c);
    assert_non_null(strstr(sc_sent[i].frame, "\"room\":\"room-x\""));

    ar__sig_room_leave(x, c, AR_SIG_LEFT_LEFT);
    ar__sig_rec_set_room(x, c, "room-y");
    assert_string_equal(ar__sig_rec_room(c), "room-y");
    reset();
    const uint8_t fid[16] = {1};
    int64_t seq = c->local->seq;
    ar__sig_sess_deliver(x, c->local, fid, sc_sent[i].action, sc_sent[i].frame, sc_sent[i].len, 0);
    assert_string_equal(ar__sig_rec_room(c), "room-y");
    assert_int_equal(c->in_room->nmembers, 2);
    assert_int_equal(sent_to('e'), 0);
    assert_int_equal(c->local->seq, seq + 1);                   /* delivered and kept */
    assert_int_equal(c->local->tail->action, AR__SIG_ACT_NONE); /* nothing to apply again */
    assert_int_equal(bc_n, 0); /* no record update: c did not move */
    assert_string_equal(ar__sig_rec_room(d), "room-x");
    assert_string_equal(ar__sig_rec_room(e), "room-y");
    worker_free(x);
}

/* The frame reaches c while it is still in the room it names: c leaves it, the others are told
 * (peer_left removed), and the copy kept says nothing more to apply. */
static void test_removal_in_its_room(void **state)
{
    (void)state;
    ar__sig_srv_t *x = worker();
    ar__sig_rec_t *d = staff(x, 'd', "room-x", 0);
    ar__sig_rec_t *c = staff(x, 'c', "room-x", 0);
    size_t i = remove_peer(x, d, c);
    char f[256];
    size_t n = sc_sent[i].len;
    memcpy(f, sc_sent[i].frame, n + 1);
    reset();
    const uint8_t fid[16] = {2};
    ar__sig_sess_deliver(x, c->local, fid, AR__SIG_ACT_REMOVED, f, n, 0);
    assert_null(c->in_room);
    assert_true(ar__sig_owns(x, c)); /* staff keep their session */
    assert_int_equal(c->local->tail->action, AR__SIG_ACT_NONE);
    assert_int_equal(sent_to('d'), 1);
    assert_non_null(strstr(sc_sent[0].frame, "\"reason\":\"removed\""));
    worker_free(x);
}

/* A removal from a worker older than the room field names no room: applied to the room the
 * member is in now, as such workers' removals always were. */
static void test_removal_naming_no_room(void **state)
{
    (void)state;
    ar__sig_srv_t *x = worker();
    ar__sig_rec_t *c = staff(x, 'c', "room-y", 0);
    char f[200];
    int n = snprintf(f, sizeof(f),
                     "{\"v\":1,\"type\":\"peer_left\",\"seq\":0,\"peer\":\"%s\",\"reason\":"
                     "\"removed\"}",
                     su_peer('c'));
    const uint8_t fid[16] = {3};
    ar__sig_sess_deliver(x, c->local, fid, AR__SIG_ACT_REMOVED, f, (size_t)n, 0);
    assert_null(c->in_room);
    /* A room value that ends nowhere an id could (no frame this server builds) removes
     * nothing. */
    ar__sig_rec_set_room(x, c, "room-y");
    n = snprintf(f, sizeof(f),
                 "{\"v\":1,\"type\":\"peer_left\",\"seq\":0,\"peer\":\"%s\",\"reason\":"
                 "\"removed\",\"room\":\"room-y",
                 su_peer('c'));
    const uint8_t fid2[16] = {4};
    ar__sig_sess_deliver(x, c->local, fid2, AR__SIG_ACT_REMOVED, f, (size_t)n, 0);
    assert_string_equal(ar__sig_rec_room(c), "room-y");
    worker_free(x);
}

/* ---- a backup promoted when the owner dies ---- */

/* Worker 7 numbered c's removal from room-8 (its copy came here) and died before the leave it
 * makes was published: the promoted copy takes c out of room-8. Before, a numbered removal of
 * staff was never applied (it might have been from an older room): c stayed in the room. */
static void test_promoted_with_numbered_removal(void **state)
{
    (void)state;
    ar__sig_srv_t *x = worker();
    ar__sig_rec_t *d = staff(x, 'd', "room-8", 0);
    ar__sig_rec_t *c = staff(x, 'c', "room-8", 1);
    num_from_7(x, 'c', 1, 8, AR__SIG_ACT_REMOVED, removal('c', "room-8"));
    assert_int_equal(c->local->seq, 1);
    assert_int_equal(c->local->npending, 0);
    ar__sig_node_dead(x, 7);
    assert_true(ar__sig_owns(x, c));
    assert_null(c->in_room);
    assert_string_equal(ar__sig_rec_room(d), "room-8");
    assert_int_equal(sent_to('d'), 1); /* peer_left removed about c */
    worker_free(x);
}

/* Worker 7 applied c's removal from room-8 (its leave came after the copy), and c joined
 * room-8 again: the copy is settled by the change, and the promoted copy leaves c in the room. */
static void test_promoted_after_rejoining_the_room(void **state)
{
    (void)state;
    ar__sig_srv_t *x = worker();
    staff(x, 'd', "room-8", 0);
    ar__sig_rec_t *c = staff(x, 'c', "room-8", 1);
    num_from_7(x, 'c', 1, 8, AR__SIG_ACT_REMOVED, removal('c', "room-8"));
    room_from_7(x, 'c', "");
    assert_null(c->in_room);
    room_from_7(x, 'c', "room-8");
    assert_string_equal(ar__sig_rec_room(c), "room-8");
    ar__sig_node_dead(x, 7);
    assert_true(ar__sig_owns(x, c));
    assert_string_equal(ar__sig_rec_room(c), "room-8");
    assert_int_equal(sent_to('d'), 0);
    worker_free(x);
}

/* A removal from room-8 that reached this backup (pending: 7 never numbered it) while c is in
 * room-9 by now (it left room-8 before the removal reached 7): c stays in room-9. Before, a
 * pending removal of staff took them out of whatever room they were in. So does a numbered one
 * 7 passed on as done elsewhere (NONE), or one naming room-8 still. */
static void test_promoted_with_removal_from_another_room(void **state)
{
    (void)state;
    ar__sig_srv_t *x = worker();
    ar__sig_rec_t *e = staff(x, 'e', "room-9", 0);
    ar__sig_rec_t *c = staff(x, 'c', "room-9", 1);
    num_from_7(x, 'c', 1, 5, AR__SIG_ACT_REMOVED, removal('c', "room-8"));
    num_from_7(x, 'c', 2, 6, AR__SIG_ACT_NONE, removal('c', "room-8"));
    const uint8_t fid[16] = {7};
    const char *f = removal('c', "room-8");
    ar__sig_sess_deliver(x, c->local, fid, AR__SIG_ACT_REMOVED, f, strlen(f), 0);
    assert_int_equal(c->local->npending, 1);
    ar__sig_node_dead(x, 7);
    assert_true(ar__sig_owns(x, c));
    assert_string_equal(ar__sig_rec_room(c), "room-9");
    assert_string_equal(ar__sig_rec_room(e), "room-9");
    assert_int_equal(sent_to('e'), 0);
    for (const ar__sig_frame_t *g = c->local->head; g; g = g->next)
        assert_int_equal(g->action, AR__SIG_ACT_NONE); /* the owner's copy applies nothing */
    worker_free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_removal_from_a_room_left_since),
        cmocka_unit_test(test_removal_in_its_room),
        cmocka_unit_test(test_removal_naming_no_room),
        cmocka_unit_test(test_promoted_with_numbered_removal),
        cmocka_unit_test(test_promoted_after_rejoining_the_room),
        cmocka_unit_test(test_promoted_with_removal_from_another_room),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
