/*
 * Ended rooms and cuts from the bus (src/signal/invite.c, "A room open here when its marker
 * comes" and "Markers a cut may have lost"; docs/signal.md, "Ended rooms: a worker cut from the
 * bus"). A worker cut from NATS while a room ended lets the patient's token open it again; the
 * marker that comes later ends it there, for the members that worker owns, as `end` does. And a
 * marker that the worker asked after the cut missed too still comes, from its publisher. A
 * member this worker comes to own later in a room it knows ended is ended by the sweep.
 * No sockets and no bus: what workers publish is caught (bus_catch.c), the frames for peers too
 * (the wrap below), and handed on by hand. Times are given, not waited for.
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
#include <time.h>

#include <cmocka.h>

#define T0 1000000u /* the tests' clock for the catch-up, ms */

/* ---- frames sent to peers (sent_capture.c) ---- */

/* How many `ended` frames (with the action that ends a patient's session) went to peer c. */
static size_t ended_to(char c)
{
    size_t n = 0;
    for (size_t i = 0; i < sc_nsent; i++)
        if (strcmp(sc_sent[i].peer, su_peer(c)) == 0 && sc_sent[i].action == AR__SIG_ACT_ENDED &&
            strstr(sc_sent[i].frame, "\"type\":\"ended\""))
            n++;
    return n;
}

/* ---- workers, sessions, messages ---- */

static ar__sig_srv_t *worker(uint64_t id)
{
    return su_srv_caught_up(id, T0);
}

static void worker_free(ar__sig_srv_t *w)
{
    ar__sig_invites_free(w);
    bc_worker_free(w);
}

/* Peer c, of this role, in room (persistent or not): owned by w, or w's backup copy of worker
 * 7's session. */
static ar__sig_rec_t *member(ar__sig_srv_t *w, char c, int role, const char *room, int persistent,
                             int backup)
{
    ar__sig_rec_t *r = ar__sig_rec_get(w, su_peer(c));
    assert_non_null(r);
    r->role = (unsigned)role & 3u;
    r->owner = backup ? 7 : w->node_id;
    assert_non_null(ar__sig_sess_link_new(w, r, backup));
    ar__sig_rec_set_room(w, r, room);
    assert_non_null(r->in_room);
    r->in_room->persistent = (uint8_t)persistent;
    return r;
}

/* The marker of room as another worker (3) publishes it on inv.<hash>, applied by w. */
static void marker_from_bus(ar__sig_srv_t *w, const char *room)
{
    char hex[33], msg[160];
    ar__sig_room_ended_key(room, hex);
    int n = snprintf(msg, sizeof(msg),
                     "{\"w\":\"0000000000000003\",\"h\":\"%s\",\"e\":%lld,"
                     "\"end\":true}",
                     hex, (long long)time(NULL) + 1800);
    ar__sig_invite_apply(w, msg, (size_t)n);
}

/* A caught message o handed to w as it comes on inv.> (a worker's markers sent again). */
static void on_inv(ar__sig_srv_t *w, json_t *o)
{
    assert_non_null(o);
    char *s = json_dumps(o, JSON_COMPACT);
    assert_non_null(s);
    ar__sig_invite_apply(w, s, strlen(s));
    ar_free(s);
}

/* The last record update of kind "ended!" (a worker's own markers sent to all) srv published. */
static json_t *resent(const ar__sig_srv_t *srv)
{
    for (size_t i = bc_n; i-- > 0;) {
        const char *k = json_string_value(json_object_get(bc_caught[i].o, "k"));
        if (bc_caught[i].from == srv && !bc_caught[i].to && k && strcmp(k, "ended!") == 0)
            return bc_caught[i].o;
    }
    return NULL;
}

static void reset(void)
{
    bc_clear();
    sc_nsent = 0;
}

/* (1) A room opened here during a cut (the patient's token, the room's marker unheard), with a
 * clinician; the marker comes from the bus: both members are sent `ended` once, by this worker
 * (their owner), the patient leaves its queue, the clinician the room; the patient's `ended`,
 * numbered by its owner as `end`'s is, ends its session and deletes its record. A backup copy
 * here is its owner's business, and other rooms stay. Applied again: nothing more. */
static void test_room_opened_during_cut_ends(void **state)
{
    (void)state;
    reset();
    ar__sig_srv_t *b = worker(2);
    ar__sig_rec_t *p = member(b, 'p', AR_SIG_ROLE_PATIENT, "room-1", 0, 0);
    ar__sig_rec_set_area(b, p, "c1", "knee");
    assert_non_null(p->q->in_area);
    ar__sig_rec_t *s = member(b, 's', AR_SIG_ROLE_STAFF, "room-1", 0, 0);
    member(b, 'x', AR_SIG_ROLE_STAFF, "room-1", 0, 1); /* worker 7's, backed up here */
    ar__sig_rec_t *q = member(b, 'q', AR_SIG_ROLE_PATIENT, "room-2", 0, 0);
    ar__sig_rec_t *t = member(b, 't', AR_SIG_ROLE_STAFF, "room-p", 1, 0);
    marker_from_bus(b, "room-p"); /* a persistent room: never ended by a marker */
    assert_int_equal(sc_nsent, 0);

    marker_from_bus(b, "room-1");
    assert_int_equal(ar__sig_room_ended(b, "room-1"), 1);
    assert_int_equal(ended_to('p'), 1);
    assert_int_equal(ended_to('s'), 1);
    assert_int_equal(sc_nsent, 2); /* nothing to the backup copy, nor to rooms 2 and p */
    assert_null(s->in_room);       /* staff leave the room at once, as after `end` */
    assert_null(p->q->in_area);    /* the patient leaves its queue */
    assert_string_equal(ar__sig_rec_room(q), "room-2");
    assert_string_equal(ar__sig_rec_room(t), "room-p");

    /* The same marker again (from a catch-up answer, or sent again by its publisher): held
     * already, nothing is sent twice. */
    marker_from_bus(b, "room-1");
    assert_int_equal(sc_nsent, 2);
    assert_int_equal(ar__sig_rooms_ended_count(b), 2);

    /* The patient's owner (this worker) numbers its `ended` as any: the session ends and the
     * record goes (deleted on every worker, with what the frames held about the patient). */
    size_t i = 0;
    while (strcmp(sc_sent[i].peer, su_peer('p')) != 0)
        i++;
    uint8_t fid[16] = {9};
    ar__sig_sess_deliver(b, p->local, fid, sc_sent[i].action, sc_sent[i].frame, sc_sent[i].len, 0);
    assert_null(ar__sig_rec_find(b, su_peer('p')));
    json_t *del = bc_last_rec(b);
    assert_non_null(del);
    assert_true(json_is_true(json_object_get(del, "del")));
    reset();
    worker_free(b);
}

/* (1) through the catch-up after the cut: the answer's page brings the marker, and the room
 * opened meanwhile ends as above. A marker for a room ended in the usual way (its members'
 * `ended` came first, from the ender, and moved them out) ends nothing more. */
static void test_room_opened_during_cut_ends_at_catchup(void **state)
{
    (void)state;
    reset();
    ar__sig_srv_t *a = worker(1), *b = worker(2);
    ar__sig_node_t *n = &b->nodes[b->nnodes++];
    memset(n, 0, sizeof(*n));
    n->id = 1;
    n->seen_ms = ar__sig_rooms_ended_clock();
    n->ended_cover_s = 1800;
    ar__sig_room_mark_ended(a, "room-5"); /* while B is cut: it never hears it */
    ar__sig_room_mark_ended(a, "room-6"); /* B heard this one, and its members' `ended` */
    marker_from_bus(b, "room-6");
    ar__sig_rec_t *p = member(b, 'p', AR_SIG_ROLE_PATIENT, "room-5", 0, 0);
    reset();
    assert_int_equal(ar__sig_rooms_ended_sync(b, 1, 0, T0 + 10), 0); /* cut */
    assert_int_equal(ar__sig_rooms_ended_sync(b, 2, 1, T0 + 20), 1); /* back: asks A */
    bc_deliver(a, bc_proc_sent(b, 1, "ended?"));
    json_t *page = bc_proc_sent(a, 2, "ended");
    assert_non_null(page);
    bc_deliver(b, page);
    assert_int_equal(ar__sig_room_ended(b, "room-5"), 1);
    assert_int_equal(ended_to('p'), 1);
    assert_int_equal(sc_nsent, 1);
    assert_int_equal(ar__sig_rooms_ended_sync(b, 2, 1, T0 + 30), 0);
    assert_string_equal(ar__sig_rec_room(p), "room-5"); /* until its `ended` is numbered */
    reset();
    worker_free(a);
    worker_free(b);
}

/* (2) B and C were cut when A ended a room (a NATS server restarted): B's catch-up asks C, which
 * missed it too. B's question to every worker, sent with its own markers when it is back, is
 * answered by A, the publisher, with its markers of that window: B learns the room and ends
 * what it opened there meanwhile. A worker with nothing of the window answers nothing. */
static void test_marker_the_asked_worker_missed(void **state)
{
    (void)state;
    reset();
    ar__sig_srv_t *a = worker(1), *b = worker(2), *c = worker(3);
    ar__sig_node_t *n = &b->nodes[b->nnodes++];
    memset(n, 0, sizeof(*n));
    n->id = 3; /* C says it is complete for longest: B asks C */
    n->seen_ms = ar__sig_rooms_ended_clock();
    n->ended_cover_s = 1800;
    ar__sig_room_mark_ended(a, "room-7"); /* B and C are cut */
    ar__sig_rec_t *p = member(b, 'p', AR_SIG_ROLE_PATIENT, "room-7", 0, 0);
    reset();
    assert_int_equal(ar__sig_rooms_ended_sync(b, 1, 0, T0 + 10), 0);
    assert_int_equal(ar__sig_rooms_ended_sync(b, 2, 1, T0 + 20), 1);
    bc_deliver(c, bc_proc_sent(b, 3, "ended?"));
    bc_deliver(b, bc_proc_sent(c, 2, "ended"));
    assert_int_equal(ar__sig_rooms_ended_sync(b, 2, 1, T0 + 30), 0); /* caught up, without it */
    assert_int_equal(ar__sig_room_ended(b, "room-7"), 0);

    /* B's page asks for the markers of the cut (its length and a margin, as a duration). */
    json_t *ask = resent(b);
    assert_non_null(ask);
    json_int_t d = json_integer_value(json_object_get(ask, "d"));
    assert_true(d >= 20 && d <= 20 + 60000);
    on_inv(c, ask); /* C published nothing: no answer */
    assert_null(bc_proc_sent(c, 2, "ended!"));
    on_inv(a, ask);
    json_t *answer = bc_proc_sent(a, 2, "ended!");
    assert_non_null(answer);
    assert_null(json_object_get(answer, "d")); /* an answer asks nothing back */
    bc_deliver(b, answer);
    assert_int_equal(ar__sig_room_ended(b, "room-7"), 1);
    assert_int_equal(ended_to('p'), 1);
    /* Twice (a and another asker's answer, say): nothing more. */
    bc_deliver(b, answer);
    assert_int_equal(ended_to('p'), 1);
    assert_int_equal(ar__sig_rooms_ended_count(b), 1);
    (void)p;
    reset();
    worker_free(a);
    worker_free(b);
    worker_free(c);
}

/* (2) A marker that left its publisher just before the publisher's own cut (in a socket
 * nats-server never read) reached nobody, and nobody asks for it: the publisher sends its recent
 * markers again to every worker when its publishing connection is back, asking nothing; the
 * subscribing connection's return does the same, with the question. Not in between. */
static void test_publisher_sends_again(void **state)
{
    (void)state;
    reset();
    ar__sig_srv_t *a = worker(1), *b = worker(2);
    ar__sig_rooms_ended_pub(a, 0, 1, T0); /* up, first seen */
    ar__sig_room_mark_ended(a, "room-8"); /* lost on its way */
    reset();
    ar__sig_rooms_ended_pub(a, 0, 1, T0 + 500);
    ar__sig_rooms_ended_pub(a, 1, 0, T0 + 600); /* back, but publications still held */
    assert_null(resent(a));
    ar__sig_rooms_ended_pub(a, 1, 1, T0 + 700);
    json_t *page = resent(a);
    assert_non_null(page);
    assert_null(json_object_get(page, "d"));
    ar__sig_rec_t *p = member(b, 'p', AR_SIG_ROLE_INVITEE, "room-8", 0, 0);
    on_inv(b, page);
    assert_int_equal(ar__sig_room_ended(b, "room-8"), 1);
    assert_int_equal(ended_to('p'), 1);
    on_inv(a, page); /* its own page, heard back: nothing */
    assert_int_equal(ar__sig_rooms_ended_count(a), 1);
    reset();
    ar__sig_rooms_ended_pub(a, 1, 1, T0 + 800); /* no new return: nothing */
    assert_int_equal(bc_n, 0);
    /* The subscribing connection's return: the page again, with the question. */
    assert_int_equal(ar__sig_rooms_ended_sync(a, 1, 0, T0 + 900), 0);
    ar__sig_rooms_ended_sync(a, 2, 1, T0 + 1000);
    page = resent(a);
    assert_non_null(page);
    assert_true(json_integer_value(json_object_get(page, "d")) > 0);
    assert_int_equal(strlen(json_string_value(json_object_get(page, "m"))), 48);
    /* Malformed pages change nothing. */
    const char bad[] = "{\"k\":\"ended!\",\"w\":\"0000000000000009\",\"m\":\"abc\",\"d\":5}";
    ar__sig_invite_apply(b, bad, sizeof(bad) - 1);
    const char bad2[] = "{\"k\":\"ended!\",\"w\":\"0000000000000009\",\"m\":7}";
    ar__sig_invite_apply(b, bad2, sizeof(bad2) - 1);
    assert_int_equal(ar__sig_rooms_ended_count(b), 1);
    (void)p;
    reset();
    worker_free(a);
    worker_free(b);
}

/* `end` on this worker (on_end: ar__sig_room_end for every member, then the marker) sends each
 * member `ended` once; a sweep that runs before those frames are numbered (the patient is still
 * in the room until then: the same marker again, from a catch-up) sends nothing more. */
static void test_sweep(void **state)
{
    (void)state;
    reset();
    ar__sig_srv_t *x = worker(4);
    ar__sig_rec_t *p = member(x, 'p', AR_SIG_ROLE_PATIENT, "room-1", 0, 0);
    ar__sig_rec_t *s = member(x, 's', AR_SIG_ROLE_STAFF, "room-1", 0, 0);
    ar__sig_room_end(x, p->in_room, 0);
    ar__sig_room_mark_ended(x, "room-1");
    assert_int_equal(ended_to('p'), 1);
    assert_int_equal(ended_to('s'), 1);
    assert_null(s->in_room);
    ar__sig_rooms_ended_sweep(x);
    assert_int_equal(sc_nsent, 2);
    reset();
    worker_free(x);
}

/* ---- a member this worker comes to own later, in a room it knows was ended ---- */

static ar_signal_conf_t conf = {.node_name = (char *)"node-a", .grace = 20000};

/* Worker 4, which heard worker 7 (node-b), now dead: ar__sig_node_dead(x, 7) promotes 7's
 * sessions backed up here, as on a real death. */
static ar__sig_srv_t *worker_beside_dead_7(void)
{
    reset();
    ar__sig_srv_t *x = worker(4);
    x->conf = &conf;
    bc_heard(x, 7, "node-b", 5000);
    x->nodes[0].dead = 1;
    return x;
}

/* Worker 7's patient and clinician, backed up here, in a room this worker knows ended (its
 * marker came while they were worker 7's: nothing for backup copies). Worker 7 dies: both are
 * promoted here and each is sent `ended` once (each alone, after the walk of the records); the
 * clinician leaves the room. No sweep is called. A third, in another room, is promoted and left
 * alone. */
static void test_promoted_into_ended_room(void **state)
{
    (void)state;
    ar__sig_srv_t *x = worker_beside_dead_7();
    marker_from_bus(x, "room-3");
    ar__sig_rec_t *q = member(x, 'q', AR_SIG_ROLE_PATIENT, "room-3", 0, 1);
    ar__sig_rec_t *c = member(x, 'c', AR_SIG_ROLE_STAFF, "room-3", 0, 1);
    ar__sig_rec_t *o = member(x, 'o', AR_SIG_ROLE_PATIENT, "room-2", 0, 1);
    marker_from_bus(x, "room-3"); /* again: backup copies, nothing */
    assert_int_equal(sc_nsent, 0);
    ar__sig_node_dead(x, 7);
    assert_true(ar__sig_owns(x, q) && ar__sig_owns(x, c) && ar__sig_owns(x, o));
    assert_int_equal(ended_to('q'), 1);
    assert_int_equal(ended_to('c'), 1);
    assert_int_equal(sc_nsent, 2);
    assert_null(c->in_room);
    assert_string_equal(ar__sig_rec_room(o), "room-2");
    reset();
    worker_free(x);
}

/* Worker 7's patient, backed up here, in a room a clinician of this worker ended: the `ended`
 * reached 7 and this copy, and 7 died before applying it. The promoted copy applies it: the
 * patient's session and record go (they stayed, with the frame only numbered, before). */
static void test_promoted_with_its_ended_frame(void **state)
{
    (void)state;
    ar__sig_srv_t *x = worker_beside_dead_7();
    ar__sig_rec_t *c = member(x, 'c', AR_SIG_ROLE_STAFF, "room-6", 0, 0);
    ar__sig_rec_t *q = member(x, 'q', AR_SIG_ROLE_PATIENT, "room-6", 0, 1);
    ar__sig_room_end(x, c->in_room, 0); /* `end` from c */
    ar__sig_room_mark_ended(x, "room-6");
    assert_int_equal(ended_to('q'), 1);
    assert_true(q->local->is_backup);
    const uint8_t fid[16] = {6};
    const char *e = "{\"v\":1,\"type\":\"ended\",\"seq\":0,\"room\":\"room-6\"}";
    ar__sig_sess_deliver(x, q->local, fid, AR__SIG_ACT_ENDED, e, strlen(e), 0);
    assert_int_equal(q->local->cold->npending, 1);
    ar__sig_node_dead(x, 7);
    assert_null(ar__sig_rec_find(x, su_peer('q')));
    assert_int_equal(ended_to('q'), 1); /* ended by its own frame: not told again */
    reset();
    worker_free(x);
}

/* Worker 7's clinician, backed up here, removed from a room by a colleague of this worker: the
 * `removed` reached 7 and this copy, and 7 died before numbering it. The promoted copy takes the
 * clinician out of the room (it stayed in it, and could go on relaying there, before). */
static void test_promoted_with_its_removed_frame(void **state)
{
    (void)state;
    ar__sig_srv_t *x = worker_beside_dead_7();
    ar__sig_rec_t *d = member(x, 'd', AR_SIG_ROLE_STAFF, "room-8", 0, 0);
    ar__sig_rec_t *c = member(x, 'c', AR_SIG_ROLE_STAFF, "room-8", 0, 1);
    const uint8_t fid[16] = {8};
    const char *e = "{\"v\":1,\"type\":\"peer_left\",\"seq\":0,\"peer\":\"c\","
                    "\"reason\":\"removed\"}";
    ar__sig_sess_deliver(x, c->local, fid, AR__SIG_ACT_REMOVED, e, strlen(e), 0);
    assert_int_equal(c->local->cold->npending, 1);
    ar__sig_node_dead(x, 7);
    assert_true(ar__sig_owns(x, c));
    assert_null(c->in_room);
    assert_string_equal(ar__sig_rec_room(d), "room-8");
    reset();
    worker_free(x);
}

/* The marker came while worker 7 (cut from the bus) owned the patient: this worker ended the
 * room for its own member (the clinician) and flagged it ended here. 7 dies; the patient,
 * promoted here, is ended alone (before, the flag kept it in the room). */
static void test_promoted_into_room_ended_here(void **state)
{
    (void)state;
    ar__sig_srv_t *x = worker_beside_dead_7();
    ar__sig_rec_t *c = member(x, 'c', AR_SIG_ROLE_STAFF, "room-7", 0, 0);
    ar__sig_rec_t *q = member(x, 'q', AR_SIG_ROLE_PATIENT, "room-7", 0, 1);
    marker_from_bus(x, "room-7");
    assert_int_equal(ended_to('c'), 1);
    assert_int_equal(ended_to('q'), 0);
    assert_null(c->in_room);
    assert_non_null(q->in_room);
    assert_true(q->in_room->ended_here);
    ar__sig_node_dead(x, 7);
    assert_true(ar__sig_owns(x, q));
    assert_int_equal(ended_to('q'), 1);
    assert_int_equal(sc_nsent, 2);
    reset();
    worker_free(x);
}

/* A session handed over to this worker (T), which knows its room ended, while the client that
 * asked for it went (T takes it as away: handover.c take_away): ended at once. Its owner (O)
 * missed the marker. */
static void test_handed_over_into_ended_room(void **state)
{
    (void)state;
    reset();
    ar__sig_srv_t *O = bc_worker(BC_O, &conf), *T = bc_worker(BC_T, &conf);
    ar_token_claims_t cl;
    su_claims(&cl, AR_TOKEN_PATIENT, "patient-1");
    ar__sig_rec_t *ro = ar__sig_rec_get(O, su_peer('p')), *rt = ar__sig_rec_get(T, su_peer('p'));
    assert_non_null(ro);
    assert_non_null(rt);
    ro->owner = rt->owner = BC_O;
    ro->role = rt->role = (unsigned)cl.role & 3u;
    ro->away = rt->away = 1;
    ar__sig_rec_set_room(O, ro, "room-5");
    ar__sig_rec_set_room(T, rt, "room-5");
    ar__sig_sess_t *s = ar__sig_sess_link_new(O, ro, 0);
    assert_non_null(s);
    ar__sig_sess_new_resume(s);
    ar__sig_subhash(&cl, s->subhash);
    marker_from_bus(T, "room-5");
    ar__sig_conn_t cn;
    memset(&cn, 0, sizeof(cn));
    cn.srv = T;
    cn.state = AR__SIG_C_HELLO;
    T->conns = &cn;
    assert_int_equal(ar__sig_resume_start(&cn, &cl, su_resume(s), 0), 0);
    assert_int_equal(cn.state, AR__SIG_C_RESUMING);
    cn.state = AR__SIG_C_GONE;
    ar__sig_resume_tick(T, &cn); /* the attempt is dropped, the copy kept for the answer */
    assert_int_equal(sc_nsent, 0);
    bc_deliver(O, bc_proc_sent(T, BC_O, "take"));
    bc_deliver(T, bc_proc_sent(O, BC_T, "taken"));
    assert_true(ar__sig_owns(T, rt));
    assert_int_equal(ended_to('p'), 1);
    assert_int_equal(sc_nsent, 1);
    T->conns = NULL;
    ar_free(cn.cold); /* srv.c on_free's part: the attempt went with the tick above */
    reset();
    worker_free(O);
    worker_free(T);
}

/* A copy of ours that another worker (7) took while this worker was thought dead (its record
 * names 7; our client away), in a room this worker knows ended: nothing while it is 7's. 7's
 * record update names us the owner again: ended at once. */
static void test_update_names_us_in_ended_room(void **state)
{
    (void)state;
    reset();
    ar__sig_srv_t *x = worker(4);
    ar__sig_rec_t *r = member(x, 'r', AR_SIG_ROLE_PATIENT, "room-4", 0, 0);
    r->owner = 7;
    marker_from_bus(x, "room-4");
    assert_int_equal(sc_nsent, 0);
    char msg[200];
    int n = snprintf(msg, sizeof(msg),
                     "{\"o\":\"0000000000000007\",\"p\":\"%s\",\"own\":\"0000000000000004\","
                     "\"bk\":\"0000000000000000\",\"away\":1}",
                     su_peer('r'));
    json_t *o = json_loadb(msg, (size_t)n, 0, NULL);
    assert_non_null(o);
    ar__sig_rec_apply(x, o);
    json_decref(o);
    assert_true(ar__sig_owns(x, r));
    assert_int_equal(ended_to('r'), 1);
    assert_int_equal(sc_nsent, 1);
    reset();
    worker_free(x);
}

int main(void)
{
    ar_sig_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_room_opened_during_cut_ends),
        cmocka_unit_test(test_room_opened_during_cut_ends_at_catchup),
        cmocka_unit_test(test_marker_the_asked_worker_missed),
        cmocka_unit_test(test_publisher_sends_again),
        cmocka_unit_test(test_sweep),
        cmocka_unit_test(test_promoted_into_ended_room),
        cmocka_unit_test(test_promoted_with_its_ended_frame),
        cmocka_unit_test(test_promoted_into_room_ended_here),
        cmocka_unit_test(test_promoted_with_its_removed_frame),
        cmocka_unit_test(test_handed_over_into_ended_room),
        cmocka_unit_test(test_update_names_us_in_ended_room),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
