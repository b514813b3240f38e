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

/* Worker 7's record update moving c to room ("" for none), as its owner publishes it, with the
 * join time jt (its stay there) unless 0. */
static void room_from_7_at(ar__sig_srv_t *x, char c, const char *room, uint64_t jt)
{
    json_t *o = json_pack("{s:s,s:s,s:s}", "o", "0000000000000007", "p", su_peer(c), "room", room);
    assert_non_null(o);
    if (jt)
        json_object_set_new(o, "jt", json_integer((json_int_t)jt));
    ar__sig_rec_apply(x, o);
    json_decref(o);
}

static void room_from_7(ar__sig_srv_t *x, char c, const char *room)
{
    room_from_7_at(x, c, room, 0);
}

/* The removal frame a remover's worker builds for c in room, naming c's stay there when stay is
 * not 0 (a worker from before stays names none). */
static const char *removal_in(char c, const char *room, uint64_t stay)
{
    static char f[200];
    char st[40] = "";
    if (stay)
        snprintf(st, sizeof(st), ",\"stay\":\"%llu\"", (unsigned long long)stay);
    snprintf(f, sizeof(f),
             "{\"v\":1,\"type\":\"peer_left\",\"seq\":0,\"peer\":\"%s\",\"reason\":\"removed\","
             "\"room\":\"%s\"%s}",
             su_peer(c), room, st);
    return f;
}

static const char *removal(char c, const char *room)
{
    return removal_in(c, room, 0);
}

/* remover removes target (remove_peer): the frame, copied to f (256 bytes), and its length. */
static size_t removed_frame(ar__sig_srv_t *w, ar__sig_rec_t *remover, const ar__sig_rec_t *target,
                            char *f)
{
    size_t i = remove_peer(w, remover, target), n = sc_sent[i].len;
    assert_true(n < 256);
    memcpy(f, sc_sent[i].frame, n + 1);
    return n;
}

/* remover removes target (removed_frame), and before the frame reaches target's owner, target
 * leaves its room and joins `to` (maybe the same room again). The captures are cleared. */
static size_t removed_then_moved(ar__sig_srv_t *w, ar__sig_rec_t *remover, ar__sig_rec_t *target,
                                 char *f, const char *to)
{
    size_t n = removed_frame(w, remover, target, f);
    ar__sig_room_leave(w, target, AR_SIG_LEFT_LEFT);
    ar__sig_rec_set_room(w, target, to);
    assert_string_equal(ar__sig_rec_room(target), to);
    reset();
    return n;
}

/* The frame (f, n) with the action REMOVED reaches c's session with the frame id {id}. */
static void deliver_removal(ar__sig_srv_t *x, ar__sig_rec_t *c, uint8_t id, const char *f, size_t n)
{
    const uint8_t fid[16] = {id};
    ar__sig_sess_deliver(x, c->local, fid, AR__SIG_ACT_REMOVED, f, n, 0);
}

/* ... at its owner, and is passed over: delivered and kept (numbered), with nothing to apply
 * again, and no record update (c did not move). */
static void passed_over(ar__sig_srv_t *x, ar__sig_rec_t *c, uint8_t id, const char *f, size_t n)
{
    int64_t seq = c->local->seq;
    deliver_removal(x, c, id, f, n);
    assert_int_equal(c->local->seq, seq + 1);
    assert_int_equal(c->local->tail->action, AR__SIG_ACT_NONE);
    assert_int_equal(bc_n, 0);
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
    char f[256];
    size_t n = removed_then_moved(x, d, c, f, "room-y");
    assert_non_null(strstr(f, "\"room\":\"room-x\""));
    passed_over(x, c, 1, f, n);
    assert_string_equal(ar__sig_rec_room(c), "room-y");
    assert_int_equal(c->in_room->nmembers, 2);
    assert_int_equal(sent_to('e'), 0);
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
    char f[256];
    size_t n = removed_frame(x, d, c, f);
    reset();
    deliver_removal(x, c, 2, f, n);
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
    deliver_removal(x, c, 3, f, (size_t)n);
    assert_null(c->in_room);
    /* A room value that ends nowhere an id could (no frame this server builds) removes
     * nothing. */
    ar__sig_rec_set_room(x, c, "room-y");
    n = snprintf(f, sizeof(f),
                 "{\"v\":1,\"type\":\"peer_left\",\"seq\":0,\"peer\":\"%s\",\"reason\":"
                 "\"removed\",\"room\":\"room-y",
                 su_peer('c'));
    deliver_removal(x, c, 4, f, (size_t)n);
    assert_string_equal(ar__sig_rec_room(c), "room-y");
    worker_free(x);
}

/* The same race within one room: d removes c from room-x; before the frame reaches c's owner, c
 * leaves room-x and joins it again. The frame names c's stay that d saw (its join time there),
 * and c's new stay has another: c gets the frame and stays, and d is told nothing. Before, the
 * frame named the room only and the owner took c out of its new stay. A removal from the room
 * that names no stay (a remover from before stays) is from the stay c is in, as then. */
static void test_removal_from_an_earlier_stay_in_the_room(void **state)
{
    (void)state;
    ar__sig_srv_t *x = worker();
    ar__sig_rec_t *d = staff(x, 'd', "room-x", 0);
    ar__sig_rec_t *c = staff(x, 'c', "room-x", 0);
    uint64_t stay = c->joined_us;
    char f[256];
    size_t n = removed_then_moved(x, d, c, f, "room-x");
    assert_string_equal(f, removal_in('c', "room-x", stay));
    passed_over(x, c, 9, f, n);
    assert_string_equal(ar__sig_rec_room(c), "room-x");
    assert_int_equal(c->in_room->nmembers, 2);
    assert_int_equal(sent_to('d'), 0);
    assert_true(c->joined_us > stay); /* a new stay, whatever the clock did */

    /* A removal naming the new stay, its value cut off (no frame this server builds: it ends
     * before the closing quote), removes nothing either. */
    const char *cut = removal_in('c', "room-x", c->joined_us);
    passed_over(x, c, 10, cut, strlen(cut) - 2);
    assert_string_equal(ar__sig_rec_room(c), "room-x");

    /* Naming the room and no stay: from the stay c is in. */
    const char *old = removal('c', "room-x");
    deliver_removal(x, c, 11, old, strlen(old));
    assert_null(c->in_room);
    assert_int_equal(sent_to('d'), 1);
    worker_free(x);
}

/* A member who joined room-x after one whose join time is ahead of this worker's clock (another
 * node's clock ahead) ranks just after it, at that member's time + 1: left and joined again, it
 * must not get that time again, or a removal from its first stay would name the second. */
static void test_rejoin_after_a_member_ahead(void **state)
{
    (void)state;
    ar__sig_srv_t *x = worker();
    ar__sig_rec_t *d = staff(x, 'd', "room-x", 0);
    d->joined_us = ar__sig_now_us() + 60u * 1000000u;
    ar__sig_rec_t *c = staff(x, 'c', "room-x", 0);
    assert_true(c->joined_us == d->joined_us + 1);
    char f[256];
    size_t n = removed_then_moved(x, d, c, f, "room-x");
    deliver_removal(x, c, 12, f, n);
    assert_string_equal(ar__sig_rec_room(c), "room-x");
    assert_int_equal(sent_to('d'), 0);
    assert_true(c->joined_us > d->joined_us + 1); /* still after d, and a stay of its own */
    worker_free(x);
}

/* ---- a backup promoted when the owner dies ---- */

/* Worker 7, c's owner, dies: this worker's copy of c is promoted. */
static void owner_dies(ar__sig_srv_t *x, const ar__sig_rec_t *c)
{
    ar__sig_node_dead(x, 7);
    assert_true(ar__sig_owns(x, c));
}

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
    assert_int_equal(c->local->cold->npending, 0);
    owner_dies(x, c);
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
    owner_dies(x, c);
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
    const char *f = removal('c', "room-8");
    deliver_removal(x, c, 7, f, strlen(f));
    assert_int_equal(c->local->cold->npending, 1);
    owner_dies(x, c);
    assert_string_equal(ar__sig_rec_room(c), "room-9");
    assert_string_equal(ar__sig_rec_room(e), "room-9");
    assert_int_equal(sent_to('e'), 0);
    for (const ar__sig_frame_t *g = c->local->head; g; g = g->next)
        assert_int_equal(g->action, AR__SIG_ACT_NONE); /* the owner's copy applies nothing */
    worker_free(x);
}

/* A removal from c's first stay in room-8 reached this backup (pending: 7 never numbered it)
 * after c left room-8 and joined it again (7 published both): the promoted copy leaves c in its
 * second stay. Before, a pending removal naming the room c is in was applied. */
static void test_promoted_with_removal_from_an_earlier_stay(void **state)
{
    (void)state;
    ar__sig_srv_t *x = worker();
    ar__sig_rec_t *d = staff(x, 'd', "room-8", 0);
    ar__sig_rec_t *c = staff(x, 'c', "room-8", 1);
    uint64_t first = c->joined_us;
    room_from_7(x, 'c', "");
    room_from_7_at(x, 'c', "room-8", first + 5);
    assert_true(c->joined_us == first + 5);
    const char *f = removal_in('c', "room-8", first);
    deliver_removal(x, c, 13, f, strlen(f));
    assert_int_equal(c->local->cold->npending, 1);
    owner_dies(x, c);
    assert_string_equal(ar__sig_rec_room(c), "room-8");
    assert_string_equal(ar__sig_rec_room(d), "room-8");
    assert_int_equal(sent_to('d'), 0);
    worker_free(x);
}

/* The same, but the removal is from the stay c is in: the promoted copy takes c out. */
static void test_promoted_with_removal_from_its_stay(void **state)
{
    (void)state;
    ar__sig_srv_t *x = worker();
    staff(x, 'd', "room-8", 0);
    ar__sig_rec_t *c = staff(x, 'c', "room-8", 1);
    room_from_7(x, 'c', "");
    room_from_7_at(x, 'c', "room-8", 4242);
    const char *f = removal_in('c', "room-8", 4242);
    deliver_removal(x, c, 14, f, strlen(f));
    owner_dies(x, c);
    assert_null(c->in_room);
    assert_int_equal(sent_to('d'), 1);
    worker_free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_removal_from_a_room_left_since),
        cmocka_unit_test(test_removal_in_its_room),
        cmocka_unit_test(test_removal_naming_no_room),
        cmocka_unit_test(test_removal_from_an_earlier_stay_in_the_room),
        cmocka_unit_test(test_rejoin_after_a_member_ahead),
        cmocka_unit_test(test_promoted_with_numbered_removal),
        cmocka_unit_test(test_promoted_after_rejoining_the_room),
        cmocka_unit_test(test_promoted_with_removal_from_another_room),
        cmocka_unit_test(test_promoted_with_removal_from_an_earlier_stay),
        cmocka_unit_test(test_promoted_with_removal_from_its_stay),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
