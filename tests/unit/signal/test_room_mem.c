/*
 * A room's memory (index.c, internal.h "struct ar__sig_room_s"): four member slots inline and an
 * overflow only while racing joins put more in, and one copy of each clinic per worker, shared
 * by its rooms. A join or an arrival that opens a room and finds no memory for its clinic's
 * copy is refused with nothing changed and nothing published (flows.c on_join, area.c
 * on_arrive), rather than leaving a room no staff of the clinic could enter or run. Through the
 * worker's own handler; no sockets or NATS, record updates caught at link time.
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

static size_t npub; /* record updates published */

void __wrap_ar__sig_bus_rec(ar__sig_srv_t *srv, const char *kind, const char *key, void *json_obj);
void __wrap_ar__sig_bus_rec(ar__sig_srv_t *srv, const char *kind, const char *key, void *json_obj)
{
    (void)srv;
    (void)kind;
    (void)key;
    npub++;
    json_decref(json_obj);
}

static int last_error; /* the code of the last error sent to a client, 0 for none */

void __wrap_ar__sig_send_error(ar__sig_conn_t *cn, int code, const char *text, int about,
                               int64_t id);
void __wrap_ar__sig_send_error(ar__sig_conn_t *cn, int code, const char *text, int about,
                               int64_t id)
{
    (void)cn;
    (void)text;
    (void)about;
    (void)id;
    last_error = code;
}

static ar_sig_str_t str(const char *s)
{
    return (ar_sig_str_t){s, strlen(s)};
}

static const char *const origins[] = {SU_ORIGIN};
static const ar_ws_upgrade_conf_t upconf = {origins, 1, 0, AR_SIG_SUBPROTOCOL};
static ar_signal_conf_t conf = {.jurisdiction = (char *)"eu", .node_name = (char *)"n1"};

/* A worker with its loop and its bus's inbox (a join hands its frames to its members there). */
static ar__sig_srv_t *srv_new(void)
{
    ar_sig_init();
    ar__sig_srv_t *srv = su_srv_new(US);
    srv->conf = &conf;
    ar_sn_conf_t nc = {.upgrade = &upconf};
    ar_sn_handler_t h = {0};
    assert_int_equal(ar_sn_loop_new(&nc, &h, &srv->loop), 0);
    assert_int_equal(ar__sig_bus_new(srv), 0);
    npub = 0;
    return srv;
}

static ar__sig_rec_t *rec(ar__sig_srv_t *srv, char c)
{
    ar__sig_rec_t *r = ar__sig_rec_get(srv, su_peer(c));
    assert_non_null(r);
    return r;
}

/* Peer c owned here, with claims cl and a connection already gone: the handler takes its
 * messages, and nothing is written to a socket (its errors are caught above). */
static ar__sig_sess_t *session(ar__sig_srv_t *srv, char c, const ar_token_claims_t *cl,
                               ar__sig_conn_t *cn)
{
    ar__sig_rec_t *r = rec(srv, c);
    r->role = cl->role == AR_TOKEN_PATIENT ? AR_SIG_ROLE_PATIENT : AR_SIG_ROLE_STAFF;
    r->owner = US;
    ar__sig_sess_t *s = ar__sig_sess_link_new(srv, r, 0);
    assert_non_null(s);
    s->claims = ar__sig_claims_new(cl);
    assert_non_null(s->claims);
    su_conn_attach(cn, srv, s, AR__SIG_C_GONE);
    return s;
}

static void join(ar__sig_conn_t *cn, const char *room)
{
    ar_sig_msg_t m;
    ar_sig_msg_init(&m, AR_SIG_JOIN);
    m.id = 3;
    m.u.join.room = str(room);
    ar__sig_handle(cn, &m);
}

static void arrive(ar__sig_conn_t *cn, const char *clinic, const char *area)
{
    ar_sig_msg_t m;
    ar_sig_msg_init(&m, AR_SIG_ARRIVE);
    m.id = 4;
    m.u.arrive.clinic = str(clinic);
    m.u.arrive.area = str(area);
    m.u.arrive.name = str("Zoe");
    m.u.arrive.consent = 1;
    ar__sig_handle(cn, &m);
}

static void srv_free(ar__sig_srv_t *srv)
{
    su_recs_free(srv); /* the connections are the test's: their sessions let go of them */
    assert_int_equal(srv->nrooms, 0);
    assert_int_equal(srv->nclinics, 0); /* each copy went with its last room */
    ar__sig_bus_stop(srv);
    ar_sn_loop_free(srv->loop);
    su_srv_free(srv);
}

/* Up to eight members (two racing joins of two on top of a full room's four), the fifth to the
 * eighth in the overflow; a ninth is in no room. The clinic reads the same all along, and the
 * overflow goes once four are left; a member taken out of the middle leaves the others in. */
static void test_overflow(void **state)
{
    (void)state;
    ar__sig_srv_t *srv = srv_new();
    ar__sig_rec_t *r[9];
    for (int i = 0; i < 9; i++)
        r[i] = rec(srv, (char)('a' + i));
    ar__sig_rec_set_room(srv, r[0], "R");
    ar__sig_room_t *room = r[0]->in_room;
    assert_non_null(room);
    assert_int_equal(ar__sig_room_set_clinic(srv, room, "clinic-1"), 0);
    for (int i = 1; i < 8; i++) {
        ar__sig_rec_set_room(srv, r[i], "R");
        assert_ptr_equal(r[i]->in_room, room);
        assert_string_equal(ar__sig_room_clinic(room), "clinic-1");
    }
    assert_int_equal(room->nmembers, 8);
    ar__sig_rec_set_room(srv, r[8], "R"); /* full */
    assert_null(r[8]->in_room);
    assert_string_equal(ar__sig_rec_room(r[8]), "");
    for (int i = 0; i < 8; i++)
        assert_ptr_equal(ar__sig_room_member(room, (size_t)i), r[i]);
    /* Out of an inline slot: the last (from the overflow) takes its place. */
    ar__sig_rec_set_room(srv, r[1], "");
    assert_int_equal(room->nmembers, 7);
    assert_ptr_equal(ar__sig_room_member(room, 1), r[7]);
    ar__sig_rec_set_room(srv, r[5], ""); /* out of the overflow */
    ar__sig_rec_set_room(srv, r[2], "");
    assert_int_equal(room->nmembers, 5);
    ar__sig_rec_set_room(srv, r[0], ""); /* to four: the overflow goes, the clinic stays */
    assert_int_equal(room->nmembers, 4);
    assert_string_equal(ar__sig_room_clinic(room), "clinic-1");
    int in[9] = {0};
    for (size_t i = 0; i < room->nmembers; i++) {
        ar__sig_rec_t *x = ar__sig_room_member(room, i);
        assert_ptr_equal(x->in_room, room);
        for (int k = 0; k < 9; k++)
            in[k] += x == r[k];
    }
    assert_true(in[3] && in[4] && in[6] && in[7]);
    /* And again past four: the overflow is made anew. */
    ar__sig_rec_set_room(srv, r[8], "R");
    assert_int_equal(room->nmembers, 5);
    assert_ptr_equal(ar__sig_room_member(room, 4), r[8]);
    assert_string_equal(ar__sig_room_clinic(room), "clinic-1");
    assert_int_equal(srv->nclinics, 1);
    srv_free(srv);
}

/* No memory for the overflow (only a record from the bus, whose join raced, needs one): that
 * member is in no room here, the room and its members as they were. */
static void test_overflow_no_memory(void **state)
{
    (void)state;
    ar__sig_srv_t *srv = srv_new();
    ar__sig_rec_t *r[5];
    for (int i = 0; i < 5; i++)
        r[i] = rec(srv, (char)('a' + i));
    for (int i = 0; i < 4; i++)
        ar__sig_rec_set_room(srv, r[i], "R");
    ar__sig_room_t *room = r[0]->in_room;
    assert_int_equal(ar__sig_room_set_clinic(srv, room, "clinic-1"), 0);
    ar_alloc_fail_after(0);
    ar__sig_rec_set_room(srv, r[4], "R");
    assert_true(ar_alloc_fail_after(-1) > 0);
    assert_null(r[4]->in_room);
    assert_int_equal(room->nmembers, 4);
    for (int i = 0; i < 4; i++)
        assert_ptr_equal(ar__sig_room_member(room, (size_t)i), r[i]);
    assert_string_equal(ar__sig_room_clinic(room), "clinic-1");
    ar__sig_rec_set_room(srv, r[4], "R"); /* with memory */
    assert_ptr_equal(r[4]->in_room, room);
    srv_free(srv);
}

/* The rooms of one clinic share its copy; a room that changes clinic lets go of the old one,
 * which goes with its last room. Without memory for a first copy the room has no clinic. */
static void test_clinics_shared(void **state)
{
    (void)state;
    ar__sig_srv_t *srv = srv_new();
    ar__sig_rec_t *a = rec(srv, 'a'), *b = rec(srv, 'b'), *c = rec(srv, 'c');
    ar__sig_rec_set_room(srv, a, "R1");
    ar__sig_rec_set_room(srv, b, "R2");
    ar__sig_rec_set_room(srv, c, "R3");
    ar__sig_room_t *r1 = a->in_room, *r2 = b->in_room, *r3 = c->in_room;
    assert_string_equal(ar__sig_room_clinic(r1), "");
    assert_int_equal(ar__sig_room_set_clinic(srv, r1, "clinic-1"), 0);
    assert_int_equal(ar__sig_room_set_clinic(srv, r2, "clinic-1"), 0);
    assert_int_equal(ar__sig_room_set_clinic(srv, r2, "clinic-1"), 0); /* again: nothing new */
    assert_ptr_equal(ar__sig_room_clinic(r1), ar__sig_room_clinic(r2));
    assert_int_equal(srv->nclinics, 1);
    assert_int_equal(r1->u.clinic->refs, 2);
    assert_int_equal(ar__sig_room_set_clinic(srv, r2, "clinic-2"), 0);
    assert_int_equal(srv->nclinics, 2);
    assert_int_equal(r1->u.clinic->refs, 1);
    assert_string_equal(ar__sig_room_clinic(r2), "clinic-2");
    ar_alloc_fail_after(0);
    assert_int_equal(ar__sig_room_set_clinic(srv, r3, "clinic-3"), AR_ENOMEM);
    assert_int_equal(ar__sig_room_set_clinic(srv, r2, "clinic-1"), 0); /* shared: no memory */
    assert_true(ar_alloc_fail_after(-1) > 0);
    assert_string_equal(ar__sig_room_clinic(r3), "");
    assert_ptr_equal(ar__sig_room_clinic(r1), ar__sig_room_clinic(r2));
    assert_int_equal(srv->nclinics, 1); /* clinic-2 went with its last room */
    ar__sig_rec_set_room(srv, a, "");
    assert_int_equal(srv->nclinics, 1);
    assert_int_equal(ar__sig_room_set_clinic(srv, r2, ""), 0);
    assert_int_equal(srv->nclinics, 0);
    srv_free(srv);
}

/* A patient's join that opens its room, and a staff member's that opens its clinic's
 * persistent room: without memory for the clinic's copy (the room itself was made), refused,
 * in no room, no room left, nothing published. With memory, the same join goes through. */
static void test_join_no_clinic_copy(void **state)
{
    (void)state;
    ar__sig_srv_t *srv = srv_new();
    ar__sig_conn_t cn[2];
    ar_token_claims_t pc, sc;
    su_claims(&pc, AR_TOKEN_PATIENT, su_peer('p'));
    su_claims(&sc, AR_TOKEN_STAFF, su_peer('s'));
    snprintf(sc.room, sizeof(sc.room), "room-2");
    sc.nclinics = 1;
    snprintf(sc.clinics[0].id, sizeof(sc.clinics[0].id), "clinic-2");
    snprintf(sc.clinics[0].roles[0], sizeof(sc.clinics[0].roles[0]), "provider");
    sc.clinics[0].nroles = 1;
    ar__sig_sess_t *p = session(srv, 'p', &pc, &cn[0]);
    ar__sig_sess_t *s = session(srv, 's', &sc, &cn[1]);
    struct {
        ar__sig_sess_t *s;
        ar__sig_conn_t *cn;
        const char *room, *clinic;
    } cases[] = {{p, &cn[0], "room-1", "clinic-1"}, {s, &cn[1], "room-2", "clinic-2"}};
    for (size_t i = 0; i < 2; i++) {
        npub = 0;
        last_error = 0;
        ar_alloc_fail_after(1); /* the room, not its clinic's copy */
        join(cases[i].cn, cases[i].room);
        assert_true(ar_alloc_fail_after(-1) > 0);
        assert_int_equal(last_error, AR_SIG_E_INTERNAL);
        assert_null(cases[i].s->rec->in_room);
        assert_null(ar__sig_room_find(srv, cases[i].room));
        assert_int_equal(srv->nrooms, 0);
        assert_int_equal(srv->nclinics, 0);
        assert_int_equal(npub, 0);
        last_error = 0;
        join(cases[i].cn, cases[i].room);
        assert_int_equal(last_error, 0);
        assert_non_null(cases[i].s->rec->in_room);
        assert_string_equal(ar__sig_room_clinic(cases[i].s->rec->in_room), cases[i].clinic);
        assert_int_equal(cases[i].s->rec->in_room->persistent, i == 1);
        assert_true(npub > 0);
        ar__sig_rec_set_room(srv, cases[i].s->rec, "");
    }
    srv_free(srv);
}

/* A patient's arrival that opens its room: without memory for the clinic's copy, refused with
 * nothing changed (no room, no place in the queue, nothing published); then it goes through. */
static void test_arrive_no_clinic_copy(void **state)
{
    (void)state;
    ar__sig_srv_t *srv = srv_new();
    ar__sig_conn_t cn;
    ar_token_claims_t pc;
    su_claims(&pc, AR_TOKEN_PATIENT, su_peer('p'));
    snprintf(pc.area, sizeof(pc.area), "area-1");
    ar__sig_sess_t *p = session(srv, 'p', &pc, &cn);
    ar__sig_rec_t *r = p->rec;
    assert_non_null(ar__sig_rec_q(r)); /* its queue part first: the room is the next block */
    last_error = 0;
    ar_alloc_fail_after(1); /* the room, not its clinic's copy */
    arrive(&cn, "clinic-1", "area-1");
    assert_true(ar_alloc_fail_after(-1) > 0);
    assert_int_equal(last_error, AR_SIG_E_INTERNAL);
    assert_null(r->in_room);
    assert_int_equal(srv->nrooms, 0);
    assert_int_equal(srv->nclinics, 0);
    assert_null(r->q->in_area);
    assert_int_equal(r->status, 0);
    assert_null(ar__sig_rec_name(r));
    assert_int_equal(npub, 0);
    last_error = 0;
    arrive(&cn, "clinic-1", "area-1");
    assert_int_equal(last_error, 0);
    assert_non_null(r->in_room);
    assert_string_equal(ar__sig_room_clinic(r->in_room), "clinic-1");
    assert_non_null(r->q->in_area);
    assert_int_equal(r->status, AR_SIG_ST_WAITING);
    assert_true(npub > 0);
    srv_free(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_overflow),
        cmocka_unit_test(test_overflow_no_memory),
        cmocka_unit_test(test_clinics_shared),
        cmocka_unit_test(test_join_no_clinic_copy),
        cmocka_unit_test(test_arrive_no_clinic_copy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
