/*
 * The previous resume secret through a hand-over between workers (handover.c; sess.c
 * ar__sig_sess_rotate_resume): worker O owns an away session whose last welcome (secret s2) may
 * have been lost, so it keeps the secret its client presented then (s1). The client resumes
 * through worker T with s1; T asks O ("take"):
 *  - O hands the session over (before: refused, s1 was no longer the secret), and its answer
 *    carries the kept secret ("q"): T, taking the session as away when the client went
 *    meanwhile, accepts both s1 and s2, and so does the backup T picks ("adopt");
 *  - once the client sent a frame after that welcome (O wipes s1 and tells its backup, "got"),
 *    O refuses s1;
 *  - T dies with the answer in flight: O's copy, promoted back, still accepts both.
 * Without sockets or NATS: publications are caught by wrapping ar__sig_bus_rec and
 * ar__sig_bus_proc at link time (bus_catch.h), and ar__sig_bus_sub_to (no bus to subscribe on).
 */
#include "bus_catch.h"
#include "bus_internal.h"
#include "sig_util.h"

#include "anteroom/alloc.h"
#include "anteroom/log.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define O_ID BC_O /* the owner */
#define T_ID BC_T /* the worker the client resumes through */
#define X_ID BC_X /* a worker of another node: the backups go there */
#define B_ID 4u   /* O's backup for the session */

static ar_signal_conf_t conf = {.node_name = (char *)"node-a", .grace = 20000};

static struct {
    ar__sig_srv_t *O, *T;
    ar__sig_rec_t *ro, *rt;
    ar_token_claims_t cl;
    char s1[AR__SIG_RESUME_LEN + 1], s2[AR__SIG_RESUME_LEN + 1];
    ar__sig_conn_t cn; /* the client's connection on T */
} H;

static int accepts(const ar__sig_sess_t *s, const char *secret)
{
    uint8_t h[16];
    ar__sig_subhash(&H.cl, h);
    return ar__sig_sess_secret_ok(s, secret, h);
}

/* O owns the away session: its client resumed with s1 and was welcomed with s2, and sent no
 * frame since. T knows its record. */
static int setup(void **state)
{
    (void)state;
    memset(&H, 0, sizeof(H));
    H.O = bc_worker(O_ID, &conf);
    H.T = bc_worker(T_ID, &conf);
    su_claims(&H.cl, AR_TOKEN_PATIENT, "patient-1");
    const char *peer = su_peer('p');
    H.ro = ar__sig_rec_get(H.O, peer);
    H.rt = ar__sig_rec_get(H.T, peer);
    assert_non_null(H.ro);
    assert_non_null(H.rt);
    H.ro->owner = H.rt->owner = O_ID;
    H.ro->backup = H.rt->backup = B_ID;
    H.ro->role = H.rt->role = (unsigned)H.cl.role & 3u;
    H.ro->away = H.rt->away = 1;
    ar__sig_sess_t *s = ar__sig_sess_link_new(H.O, H.ro, 0);
    assert_non_null(s);
    ar__sig_subhash(&H.cl, s->subhash);
    ar__sig_sess_new_resume(s);
    ar__sig_sess_resume_text(s, H.s1);
    ar__sig_sess_rotate_resume(s, H.s1); /* as resume.c's finish does */
    ar__sig_sess_resume_text(s, H.s2);
    assert_string_not_equal(H.s1, H.s2);
    assert_true(accepts(s, H.s1));
    assert_true(accepts(s, H.s2));
    ar__sig_sess_away_now(s, H.O->now);
    memset(&H.cn, 0, sizeof(H.cn));
    H.cn.srv = H.T;
    H.cn.state = AR__SIG_C_HELLO;
    H.T->conns = &H.cn;
    assert_int_equal(ar__sig_resume_start(&H.cn, &H.cl, H.s1, 0), 0);
    assert_int_equal(H.cn.state, AR__SIG_C_RESUMING);
    assert_non_null(bc_proc_sent(H.T, O_ID, "take"));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    bc_clear();
    H.cn.sess = NULL;
    if (ar__sig_conn_resume(&H.cn))
        ar_free(ar__sig_conn_resume(&H.cn));
    ar_free(H.cn.cold);
    H.cn.cold = NULL;
    H.T->conns = NULL;
    bc_worker_free(H.O);
    bc_worker_free(H.T);
    return 0;
}

/* O answers T's "take" (caught); the answer, or NULL when O sent none. */
static json_t *owner_answers(void)
{
    json_t *take = json_incref(bc_proc_sent(H.T, O_ID, "take"));
    bc_deliver(H.O, take);
    json_decref(take);
    return bc_proc_sent(H.O, T_ID, "taken");
}

/* The client presented s1: O hands over, with both secrets; T (its client gone meanwhile) takes
 * the session as away and accepts either, and so does the backup it picks. */
static void test_previous_secret_handed_over(void **state)
{
    (void)state;
    H.cn.state = AR__SIG_C_GONE;
    ar__sig_resume_tick(H.T, &H.cn); /* srv.c on_close: the attempt is dropped */
    json_t *ans = owner_answers();
    assert_non_null(ans);
    assert_true(json_is_true(json_object_get(ans, "ok"))); /* before: refused */
    assert_string_equal(json_string_value(json_object_get(ans, "r")), H.s2);
    assert_non_null(json_string_value(json_object_get(ans, "q")));
    ans = json_incref(ans);
    bc_clear();
    bc_deliver(H.T, ans);
    json_decref(ans);
    ar__sig_sess_t *s = H.rt->local;
    assert_non_null(s);
    assert_false(s->is_backup);
    assert_int_equal(H.rt->owner, T_ID);
    assert_true(accepts(s, H.s1));
    assert_true(accepts(s, H.s2));

    /* T's backup (X) gets both too. */
    json_t *adopt = json_incref(bc_proc_sent(H.T, X_ID, "adopt"));
    assert_non_null(adopt);
    assert_non_null(json_string_value(json_object_get(adopt, "q")));
    ar__sig_srv_t *X = bc_worker(X_ID, &conf);
    ar__sig_rec_t *rx = ar__sig_rec_get(X, su_peer('p'));
    assert_non_null(rx);
    rx->owner = T_ID;
    rx->backup = X_ID;
    bc_deliver(X, adopt);
    json_decref(adopt);
    assert_non_null(rx->local);
    assert_true(rx->local->is_backup);
    assert_true(accepts(rx->local, H.s1));
    assert_true(accepts(rx->local, H.s2));
    char other[AR__SIG_RESUME_LEN + 1];
    memcpy(other, H.s2, sizeof(other));
    other[AR__SIG_RESUME_LEN - 1] ^= 1;
    assert_false(accepts(rx->local, other));
    ar__sig_rec_free(X, rx);
    su_srv_free(X);
}

/* The client sent a frame after its welcome (s2): O wipes s1, tells its backup, and refuses a
 * take with s1. */
static void test_confirmed_then_refused(void **state)
{
    (void)state;
    ar__sig_sess_t *s = H.ro->local;
    ar__sig_sess_resume_confirmed(H.O, s);
    assert_false(s->has_prev);
    assert_non_null(bc_proc_sent(H.O, B_ID, "got"));
    assert_false(accepts(s, H.s1));
    assert_true(accepts(s, H.s2));
    json_t *ans = owner_answers();
    assert_non_null(ans);
    assert_false(json_is_true(json_object_get(ans, "ok")));
    assert_false(H.ro->local->is_backup); /* still O's */
}

/* T dies with the answer in flight: O's copy, promoted back, accepts both secrets still. */
static void test_promoted_back_keeps_both(void **state)
{
    (void)state;
    json_t *ans = owner_answers();
    assert_non_null(ans);
    assert_true(json_is_true(json_object_get(ans, "ok")));
    assert_true(H.ro->local->is_backup);      /* handed */
    H.O->nodes[0].seen_ms = mono_ms() - 5000; /* T */
    H.O->nodes[0].dead = 1;
    ar__sig_node_dead(H.O, T_ID);
    ar__sig_sess_t *s = H.ro->local;
    assert_non_null(s);
    assert_false(s->is_backup);
    assert_int_equal(H.ro->owner, O_ID);
    assert_true(accepts(s, H.s1));
    assert_true(accepts(s, H.s2));
}

int main(void)
{
    ar_log_init("signal", AR_LOG_WARN);
    ar_sig_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_previous_secret_handed_over, setup, teardown),
        cmocka_unit_test_setup_teardown(test_confirmed_then_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_promoted_back_keeps_both, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
