/*
 * A staff session's token and its lifetime (refresh.c; protocol.md 5.15), without sockets or
 * NATS (record updates are caught by wrapping ar__sig_bus_rec, bus_catch.h):
 *  - the compact claims keep the token's exp, or the copy's time when the token has expired
 *    (a resume with an expired token gets one allowance from then to refresh);
 *  - claims naming fewer clinics unsubscribe the record from the areas of the dropped clinic
 *    (and only those), and every worker is told (a "subs" record update);
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
    void *ns = ar_realloc(r->subs, (r->nsubs + 1) * sizeof(*r->subs));
    assert_non_null(ns);
    r->subs = ns;
    ar__sig_area_t *a = ar__sig_area_get(srv, clinic, area);
    assert_non_null(a);
    assert_int_equal(ar__sig_area_sub(srv, r, a), 0);
    snprintf(r->subs[r->nsubs][0].s, sizeof(r->subs[0][0].s), "%s", clinic);
    snprintf(r->subs[r->nsubs][1].s, sizeof(r->subs[0][1].s), "%s", area);
    r->nsubs++;
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
    assert_int_equal(r->nsubs, 3);
    assert_null(bc_last_rec(srv));

    /* The refreshed token names clinic-1 only. */
    staff_claims(&cl, NULL);
    ar__sig_claims_free(s->claims);
    s->claims = ar__sig_claims_new(&cl);
    assert_non_null(s->claims);
    assert_int_equal(ar__sig_claims_prune(srv, s), 1);
    assert_int_equal(r->nsubs, 1);
    assert_string_equal(r->subs[0][0].s, "clinic-1");
    assert_string_equal(r->subs[0][1].s, "knee");
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
    ar_free(srv);
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
    cn.token_exp = 1000000;
    assert_int_equal(ar__sig_token_sweep(srv, &cn, 1000000 + 120), 0);
    assert_int_equal(cn.close_code, 0);
    assert_int_equal(ar__sig_token_sweep(srv, &cn, 1000000 + 121), 1);
    conf.token_allowance = 0;
    assert_int_equal(ar__sig_token_sweep(srv, &cn, 1000000), 0);
    assert_int_equal(ar__sig_token_sweep(srv, &cn, 1000001), 1);
    ar_free(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_claims_exp),
        cmocka_unit_test(test_prune),
        cmocka_unit_test(test_sweep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
