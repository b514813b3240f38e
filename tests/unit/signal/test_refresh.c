/*
 * A staff session's token and its lifetime (refresh.c; protocol.md 5.15), without sockets or
 * NATS (record updates are caught by wrapping ar__sig_bus_rec, bus_catch.h):
 *  - the compact claims keep the token's exp, or the copy's time when the token has expired
 *    (a resume with an expired token gets one allowance from then to refresh);
 *  - claims naming fewer clinics unsubscribe the record from the areas of the dropped clinic
 *    (and only those), and every worker is told (a "subs" record update);
 *  - a refresh whose token no longer allows the room the session is in takes it out (the join's
 *    check, a persistent room too): its client is told why (peer_left about itself, "revoked"),
 *    the others get peer_left "removed", every worker the record update, and a patient it was
 *    seeing is waiting again; a token that still allows the room (a clinic where it may run
 *    calls, or naming it) changes nothing. Frames are caught by wrapping ar__sig_bus_to;
 *  - the sweep closes a connection past exp + token-allowance, not at it.
 * The whole path (hello, refresh, the close on the wire) is tests/integration/signal/
 * refresh.test.mjs.
 */
#include "bus_catch.h"
#include "internal.h"
#include "sig_util.h"

#include "anteroom/alloc.h"
#include "anteroom/log.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

static void staff_claims(ar_token_claims_t *cl, const char *clinic2)
{
    su_claims(cl, AR_TOKEN_STAFF, "subject-1");
    cl->nclinics = clinic2 ? 2 : 1;
    snprintf(cl->clinics[0].id, sizeof(cl->clinics[0].id), "clinic-1");
    snprintf(cl->clinics[0].roles[0], sizeof(cl->clinics[0].roles[0]), "provider");
    cl->clinics[0].nroles = 1;
    if (clinic2) {
        snprintf(cl->clinics[1].id, sizeof(cl->clinics[1].id), "%s", clinic2);
        snprintf(cl->clinics[1].roles[0], sizeof(cl->clinics[1].roles[0]), "receptionist");
        cl->clinics[1].nroles = 1;
    }
}

/* The compact copy's strings, found by their offsets after the clinics: each read back whole,
 * at the longest a token allows too (the offsets are single bytes); absent ones read "". */
static void test_claims_strings(void **state)
{
    (void)state;
    ar_token_claims_t cl;
    staff_claims(&cl, "clinic-2");
    memset(cl.room, 'r', sizeof(cl.room) - 1);
    cl.room[sizeof(cl.room) - 1] = '\0';
    memset(cl.clinic, 'c', sizeof(cl.clinic) - 1);
    cl.clinic[sizeof(cl.clinic) - 1] = '\0';
    memset(cl.area, 'a', sizeof(cl.area) - 1);
    cl.area[sizeof(cl.area) - 1] = '\0';
    ar__sig_claims_t *k = ar__sig_claims_new(&cl);
    assert_non_null(k);
    assert_int_equal(k->nclinics, 2);
    assert_string_equal(ar__sig_claims_room(k), cl.room);
    assert_string_equal(ar__sig_claims_clinic(k), cl.clinic);
    assert_string_equal(ar__sig_claims_area(k), cl.area);
    assert_string_equal(k->clinics[1].id, "clinic-2");
    assert_int_equal(k->size, offsetof(ar__sig_claims_t, clinics) + 2 * sizeof(k->clinics[0]) +
                                  3 * sizeof(cl.room));
    ar__sig_claims_free(k);
    cl.room[0] = cl.area[0] = '\0';
    snprintf(cl.clinic, sizeof(cl.clinic), "c1");
    k = ar__sig_claims_new(&cl);
    assert_non_null(k);
    assert_string_equal(ar__sig_claims_room(k), "");
    assert_string_equal(ar__sig_claims_clinic(k), "c1");
    assert_string_equal(ar__sig_claims_area(k), "");
    ar__sig_claims_free(k);
}

static void test_claims_exp(void **state)
{
    (void)state;
    ar_token_claims_t cl;
    staff_claims(&cl, NULL);
    ar__sig_claims_t *k = ar__sig_claims_new(&cl);
    assert_non_null(k);
    assert_int_equal(k->exp, (uint32_t)cl.exp);
    assert_int_equal(k->nclinics, 1);
    assert_true(ar__sig_can_call(k, "clinic-1"));
    ar__sig_claims_free(k);
    /* Expired an hour ago (a resume may bring that): the copy's own time counts. */
    int64_t before = (int64_t)time(NULL);
    cl.exp = before - 3600;
    k = ar__sig_claims_new(&cl);
    assert_non_null(k);
    assert_true((int64_t)k->exp >= before && (int64_t)k->exp <= (int64_t)time(NULL));
    ar__sig_claims_free(k);
}

/* As area.c's subscribe does. */
static void subscribe(ar__sig_srv_t *srv, ar__sig_rec_t *r, const char *clinic, const char *area)
{
    ar__sig_recq_t *q = ar__sig_rec_q(r);
    assert_non_null(q);
    void *ns = ar_realloc(q->subs, (q->nsubs + 1) * sizeof(*q->subs));
    assert_non_null(ns);
    q->subs = ns;
    ar__sig_area_t *a = ar__sig_area_get(srv, clinic, area);
    assert_non_null(a);
    assert_int_equal(ar__sig_area_sub(srv, r, a), 0);
    snprintf(r->q->subs[r->q->nsubs][0].s, sizeof(r->q->subs[0][0].s), "%s", clinic);
    snprintf(r->q->subs[r->q->nsubs][1].s, sizeof(r->q->subs[0][1].s), "%s", area);
    r->q->nsubs++;
}

static size_t subscribers(ar__sig_srv_t *srv, const char *clinic, const char *area)
{
    ar__sig_area_t *a = ar__sig_area_find(srv, clinic, area);
    return a ? a->nsubs : 0;
}

static void test_prune(void **state)
{
    (void)state;
    ar_log_init("signal", AR_LOG_WARN);
    ar_sig_init();
    ar__sig_srv_t *srv = su_srv_new(1);
    ar__sig_rec_t *r = ar__sig_rec_get(srv, su_peer('s'));
    assert_non_null(r);
    r->role = AR_SIG_ROLE_STAFF;
    r->owner = 1;
    ar__sig_sess_t *s = ar__sig_sess_link_new(srv, r, 0);
    assert_non_null(s);
    ar_token_claims_t cl;
    staff_claims(&cl, "clinic-2");
    s->claims = ar__sig_claims_new(&cl);
    assert_non_null(s->claims);
    subscribe(srv, r, "clinic-2", "knee");
    subscribe(srv, r, "clinic-1", "knee");
    subscribe(srv, r, "clinic-2", "hip");
    /* Nothing to drop while the claims allow every area. */
    bc_clear();
    assert_int_equal(ar__sig_claims_prune(srv, s), 0);
    assert_int_equal(r->q->nsubs, 3);
    assert_null(bc_last_rec(srv));

    /* The refreshed token names clinic-1 only. */
    staff_claims(&cl, NULL);
    ar__sig_claims_free(s->claims);
    s->claims = ar__sig_claims_new(&cl);
    assert_non_null(s->claims);
    assert_int_equal(ar__sig_claims_prune(srv, s), 1);
    assert_int_equal(r->q->nsubs, 1);
    assert_string_equal(r->q->subs[0][0].s, "clinic-1");
    assert_string_equal(r->q->subs[0][1].s, "knee");
    assert_int_equal(subscribers(srv, "clinic-2", "knee"), 0);
    assert_int_equal(subscribers(srv, "clinic-2", "hip"), 0);
    assert_int_equal(subscribers(srv, "clinic-1", "knee"), 1);
    json_t *o = bc_last_rec(srv);
    assert_non_null(o);
    json_t *subs = json_object_get(o, "subs");
    assert_true(json_is_array(subs));
    assert_int_equal(json_array_size(subs), 1);
    bc_clear();
    /* A patient's record is never pruned (its claims name no clinics). */
    r->role = AR_SIG_ROLE_PATIENT;
    assert_int_equal(ar__sig_claims_prune(srv, s), 0);
    r->role = AR_SIG_ROLE_STAFF;

    ar__sig_rec_free(srv, r);
    su_srv_free(srv);
}

/* Session-level frames sent (ar__sig_to builds them in srv->pub): whom to, and the frame. */
#define SENT_MAX 16
static struct {
    char peer[AR__SIG_PEER_LEN + 1];
    char frame[256];
} sent[SENT_MAX];
static size_t nsent;

void __wrap_ar__sig_bus_to(ar__sig_srv_t *srv, const char *peer, uint8_t action, size_t len);
void __wrap_ar__sig_bus_to(ar__sig_srv_t *srv, const char *peer, uint8_t action, size_t len)
{
    (void)action;
    assert_true(nsent < SENT_MAX);
    snprintf(sent[nsent].peer, sizeof(sent[nsent].peer), "%s", peer);
    size_t n = len < sizeof(sent[0].frame) - 1 ? len : sizeof(sent[0].frame) - 1;
    memcpy(sent[nsent].frame, srv->pub + AR__SIG_TO_HDR, n);
    sent[nsent].frame[n] = '\0';
    nsent++;
}

/* The index of the first frame sent to peer that holds every one of the (up to two) words. */
static int sent_to(const char *peer, const char *w1, const char *w2)
{
    for (size_t i = 0; i < nsent; i++)
        if (strcmp(sent[i].peer, peer) == 0 && strstr(sent[i].frame, w1) &&
            (!w2 || strstr(sent[i].frame, w2)))
            return (int)i;
    return -1;
}

/* The last record update srv published about peer. */
static json_t *rec_update(const ar__sig_srv_t *srv, const char *peer)
{
    for (size_t i = bc_n; i-- > 0;) {
        const char *p = json_string_value(json_object_get(bc_caught[i].o, "p"));
        if (bc_caught[i].from == srv && bc_caught[i].to == 0 && p && strcmp(p, peer) == 0)
            return bc_caught[i].o;
    }
    return NULL;
}

typedef struct evict_fx_s {
    ar_signal_conf_t conf;
    ar__sig_srv_t *srv;
    ar_token_key_t key;
    ar__sig_rec_t *r, *p;
    ar__sig_sess_t *s;
    ar__sig_conn_t cn;
} evict_fx_t;

/* Staff claims of subject-1: provider in clinic-1, clinic2 (with role2) when not NULL, naming
 * room when not NULL. */
static void staff_token_claims(ar_token_claims_t *cl, const char *clinic2, const char *role2,
                               const char *room)
{
    staff_claims(cl, NULL);
    cl->clinic[0] = '\0';
    snprintf(cl->room, sizeof(cl->room), "%s", room ? room : "");
    if (clinic2) {
        cl->nclinics = 2;
        snprintf(cl->clinics[1].id, sizeof(cl->clinics[1].id), "%s", clinic2);
        snprintf(cl->clinics[1].roles[0], sizeof(cl->clinics[1].roles[0]), "%s", role2);
        cl->clinics[1].nroles = 1;
    }
}

/* The session's client sends refresh with such a token, through the message's own handler. */
static void refresh(evict_fx_t *f, const char *clinic2, const char *role2, const char *room)
{
    ar_token_claims_t cl;
    staff_token_claims(&cl, clinic2, role2, room);
    char token[AR_TOKEN_MAX];
    su_mint(&f->key, &cl, token, sizeof(token));
    ar_sig_msg_t m;
    ar_sig_msg_init(&m, AR_SIG_REFRESH);
    m.u.refresh.token = (ar_sig_str_t){token, strlen(token)};
    nsent = 0;
    bc_clear();
    ar__sig_on_refresh(&f->cn, &m);
    assert_int_equal(f->s->claims->nclinics, clinic2 ? 2 : 1); /* it was taken */
}

/* room id of clinic (persistent or not) holding the staff session f->r, and the patient too
 * when with_patient. */
static ar__sig_room_t *into_room(evict_fx_t *f, const char *id, const char *clinic, int persistent,
                                 int with_patient)
{
    if (with_patient)
        ar__sig_rec_set_room(f->srv, f->p, id);
    ar__sig_rec_set_room(f->srv, f->r, id);
    ar__sig_room_t *room = f->r->in_room;
    assert_non_null(room);
    assert_int_equal(ar__sig_room_set_clinic(f->srv, room, clinic), 0);
    room->persistent = (uint8_t)persistent;
    return room;
}

static void test_refresh_leaves_room(void **state)
{
    (void)state;
    ar_log_init("signal", AR_LOG_WARN);
    ar_sig_init();
    evict_fx_t *f = ar_calloc(1, sizeof(*f));
    assert_non_null(f);
    f->conf.jurisdiction = (char *)"eu";
    f->conf.token_allowance = 120000;
    f->srv = su_srv_new(1);
    f->srv->conf = &f->conf;
    su_signer(&f->key);
    su_trust(&f->srv->keys, &f->key);

    /* A provider of clinic-1 and clinic-2, owned here, connected (the connection is closed:
     * the `refreshed` answer goes nowhere, the frames below are caught). */
    f->r = ar__sig_rec_get(f->srv, su_peer('s'));
    assert_non_null(f->r);
    f->r->role = AR_SIG_ROLE_STAFF;
    f->r->owner = 1;
    f->s = ar__sig_sess_link_new(f->srv, f->r, 0);
    assert_non_null(f->s);
    ar_token_claims_t cl;
    staff_token_claims(&cl, "clinic-2", "provider", NULL);
    f->s->claims = ar__sig_claims_new(&cl);
    assert_non_null(f->s->claims);
    ar__sig_subhash(&cl, f->s->subhash);
    su_conn_attach(&f->cn, f->srv, f->s, AR__SIG_C_GONE);

    /* A patient of clinic-2 (on another worker) it took: in its room, seen by it. */
    f->p = ar__sig_rec_get(f->srv, su_peer('p'));
    assert_non_null(f->p);
    f->p->role = AR_SIG_ROLE_PATIENT;
    f->p->owner = 2;
    ar__sig_rec_set_area(f->srv, f->p, "clinic-2", "knee");
    assert_non_null(f->p->q->in_area);
    f->p->status = AR_SIG_ST_SEEN;
    ar__sig_str_set(&f->p->q->by, f->r->peer, AR__SIG_PEER_LEN);
    ar__sig_room_t *room = into_room(f, "room-2", "clinic-2", 0, 1);
    assert_int_equal(room->nmembers, 2);

    /* The same clinics again: the call goes on, nothing is sent about it. */
    refresh(f, "clinic-2", "provider", NULL);
    assert_ptr_equal(f->r->in_room, room);
    assert_int_equal(nsent, 0);
    /* A receptionist there now: no more calls in clinic-2 (A1), as a join would be refused. */
    refresh(f, "clinic-2", "receptionist", NULL);
    assert_null(f->r->in_room);
    assert_int_equal(room->nmembers, 1); /* the patient's room stays, with the patient */
    assert_ptr_equal(f->p->in_room, room);
    /* Its client hears why first, then the patient hears it left, as after a removal. */
    assert_int_equal(sent_to(f->r->peer, "\"type\":\"peer_left\"", "\"reason\":\"revoked\""), 0);
    assert_true(sent_to(f->r->peer, f->r->peer, NULL) == 0); /* about itself */
    int i = sent_to(f->p->peer, "\"type\":\"peer_left\"", "\"reason\":\"removed\"");
    assert_true(i > 0);
    assert_non_null(strstr(sent[i].frame, f->r->peer));
    assert_true(sent_to(f->p->peer, "revoked", NULL) < 0); /* why is not the patient's business */
    /* Every worker hears it left the room. */
    json_t *o = rec_update(f->srv, f->r->peer);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "room")), "");
    /* The patient it was seeing waits again (area.c ar__sig_seen_left): told, and every worker
     * too. */
    assert_int_equal(f->p->status, AR_SIG_ST_WAITING);
    assert_string_equal(f->p->q->by, "");
    assert_true(sent_to(f->p->peer, "\"type\":\"wait\"", "\"status\":\"waiting\"") > i);
    o = rec_update(f->srv, f->p->peer);
    assert_non_null(o);
    assert_int_equal(json_integer_value(json_object_get(o, "st")), AR_SIG_ST_WAITING);
    /* Out already: a later refresh sends nothing more. */
    refresh(f, "clinic-2", "receptionist", NULL);
    assert_int_equal(nsent, 0);

    /* A persistent room follows the same rule: in clinic-2's, it goes with its calling role
     * there; one its token names it keeps (the page refreshes such a session with the room's
     * token), whatever its roles. */
    ar__sig_rec_set_room(f->srv, f->p, ""); /* the patient's room goes */
    room = into_room(f, "room-p", "clinic-2", 1, 0);
    refresh(f, "clinic-2", "provider", NULL);
    assert_ptr_equal(f->r->in_room, room);
    refresh(f, "clinic-3", "provider", NULL);
    assert_null(f->r->in_room);
    assert_int_equal(sent_to(f->r->peer, "\"type\":\"peer_left\"", "\"reason\":\"revoked\""), 0);
    room = into_room(f, "room-n", "clinic-2", 1, 0);
    refresh(f, "clinic-2", "receptionist", "room-n");
    assert_ptr_equal(f->r->in_room, room);
    assert_int_equal(nsent, 0);
    refresh(f, NULL, NULL, "room-n");
    assert_ptr_equal(f->r->in_room, room);
    refresh(f, NULL, NULL, NULL);
    assert_null(f->r->in_room);
    bc_clear();

    f->s->conn = NULL;
    ar__sig_rec_free(f->srv, f->r); /* and its session */
    ar__sig_rec_free(f->srv, f->p);
    ar_token_keyring_wipe(&f->srv->keys);
    su_srv_free(f->srv);
    ar_free(f);
}

static void test_sweep(void **state)
{
    (void)state;
    ar_signal_conf_t conf;
    memset(&conf, 0, sizeof(conf));
    conf.token_allowance = 120000; /* ms */
    ar__sig_srv_t *srv = su_srv_new(1);
    srv->conf = &conf;
    ar__sig_conn_t cn;
    memset(&cn, 0, sizeof(cn));
    cn.srv = srv;
    cn.state = AR__SIG_C_GONE; /* the refusal sends and closes nothing */
    /* The sweep reads the session's claims as they are now (a refresh replaces them). */
    ar__sig_claims_t k;
    memset(&k, 0, sizeof(k));
    k.exp = 1000000;
    ar__sig_sess_t s;
    memset(&s, 0, sizeof(s));
    s.claims = &k;
    cn.sess = &s;
    assert_int_equal(ar__sig_token_sweep(srv, &cn, 1000000 + 120), 0);
    assert_int_equal(cn.close_code, 0);
    assert_int_equal(ar__sig_token_sweep(srv, &cn, 1000000 + 121), 1);
    conf.token_allowance = 0;
    assert_int_equal(ar__sig_token_sweep(srv, &cn, 1000000), 0);
    assert_int_equal(ar__sig_token_sweep(srv, &cn, 1000001), 1);
    k.exp = 2000000; /* refreshed */
    assert_int_equal(ar__sig_token_sweep(srv, &cn, 1000001), 0);
    s.claims = NULL; /* no claims (not the owner's copy): nothing to sweep */
    assert_int_equal(ar__sig_token_sweep(srv, &cn, 3000000), 0);
    su_srv_free(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_claims_strings), cmocka_unit_test(test_claims_exp),
        cmocka_unit_test(test_prune),          cmocka_unit_test(test_refresh_leaves_room),
        cmocka_unit_test(test_sweep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
