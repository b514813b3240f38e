/*
 * A promotion the owner never saw (docs/signal.md, "Overload"), without sockets or NATS: worker
 * C holds a patient's client; worker D, its backup, hears no heartbeat from C (C is cut off
 * from NATS) and promotes its copy. The promotion itself is lost (C's NATS server is down). C
 * comes back and receives D's next claim of the session (D moves the copy's backup, as its
 * tick does once another node is alive) and then, at the end of D's grace period, D's "held?".
 * C must keep its session and answer by re-announcing it, and D must yield to that.
 *
 * Seen in overload.test.mjs ("a worker cut off from NATS ..."): C took D's later claim (no
 * "pr" on it) as a hand-over, let its record name D while it held the client, answered
 * "held?" with "unheld", and the staff member's offer went to D's copy; with the roles swapped,
 * the promoter ended the session under its owner's client. Publications are caught by wrapping
 * ar__sig_bus_rec and ar__sig_bus_proc at link time (CMakeLists.txt).
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
#include <string.h>

#include <cmocka.h>

static const char PEER[] = "PPPPPPPPPPPPPPPPPPPPPP";
#define C_ID 1u
#define D_ID 2u

/* The session's record on workers a and b: owned by C, backed up on D. */
static void records_of_c(ar__sig_srv_t *a, ar__sig_srv_t *b, ar__sig_rec_t **ra, ar__sig_rec_t **rb)
{
    *ra = ar__sig_rec_get(a, PEER);
    *rb = ar__sig_rec_get(b, PEER);
    assert_non_null(*ra);
    assert_non_null(*rb);
    (*ra)->owner = (*rb)->owner = C_ID;
    (*ra)->backup = (*rb)->backup = D_ID;
}

static void test_lost_promotion_then_later_claim(void **state)
{
    (void)state;
    ar_log_init("signal", AR_LOG_WARN); /* promotions and refusals log at info */
    ar_sig_init();
    ar__sig_srv_t *C = su_srv_new(C_ID), *D = su_srv_new(D_ID);

    /* C owns the session and holds its client; D has the backup copy. */
    ar__sig_rec_t *rc, *rd;
    records_of_c(C, D, &rc, &rd);
    ar__sig_sess_t *sc = ar__sig_sess_link_new(C, rc, 0);
    ar__sig_sess_t *sd = ar__sig_sess_link_new(D, rd, 1);
    assert_non_null(sc);
    assert_non_null(sd);
    ar__sig_conn_t live;
    su_conn_attach(&live, C, sc, AR__SIG_C_LIVE);

    /* D declares C dead and promotes its copy; the promotion never reaches C. */
    ar__sig_node_dead(D, C_ID);
    assert_false(sd->is_backup);
    assert_true(sd->promoted);
    assert_true(json_is_true(json_object_get(bc_last_rec(D), "pr")));
    bc_clear();

    /* D's next claim of the copy no client resumed (its backup moved): C still holds the
     * client, so it is a promotion too, and C refuses it. */
    ar__sig_sess_adopt(D, sd);
    json_t *claim = json_incref(bc_last_rec(D));
    assert_non_null(claim);
    assert_string_equal(json_string_value(json_object_get(claim, "own")), "0000000000000002");
    bc_clear();
    ar__sig_rec_apply(C, claim);
    json_decref(claim);
    assert_int_equal(rc->owner, C_ID);
    assert_int_equal(rc->away, 0);
    json_t *re = bc_last_rec(C); /* refused: "own" with "re", C the owner */
    assert_non_null(re);
    assert_true(json_is_true(json_object_get(re, "re")));
    assert_string_equal(json_string_value(json_object_get(re, "own")), "0000000000000001");
    bc_clear(); /* that answer is lost too (C's subscriptions were not back yet) */

    /* D's grace period ends: it asks C, and C re-announces the session instead of "unheld". */
    json_t *ask = json_pack("{s:s,s:s,s:s}", "k", "held?", "p", PEER, "from", "0000000000000002");
    char *txt = json_dumps(ask, JSON_COMPACT);
    json_decref(ask);
    assert_non_null(txt);
    ar__sig_proc_msg(C, txt, strlen(txt), NULL);
    ar_free(txt);
    assert_null(bc_proc_sent(C, 0, "unheld"));
    re = json_incref(bc_last_rec(C));
    assert_non_null(re);
    assert_true(json_is_true(json_object_get(re, "re")));
    bc_clear();

    /* D yields: its copy is no longer an owner's, and its grace period ends nothing. */
    ar__sig_rec_apply(D, re);
    json_decref(re);
    assert_int_equal(rd->owner, C_ID);
    assert_true(rd->local == NULL || rd->local->is_backup);
    bc_clear();

    ar__sig_rec_free(D, rd);
    sc->conn = NULL;
    ar__sig_rec_free(C, rc);
    su_srv_free(C);
    su_srv_free(D);
}

/* A promoted copy that a client resumed claims the session as a plain owner: an old owner that
 * still holds a stale connection takes it as the hand-over it is (the rule above is only for
 * copies no client resumed). */
static void test_resumed_copy_claims_plainly(void **state)
{
    (void)state;
    ar__sig_srv_t *D = su_srv_new(D_ID);
    ar__sig_rec_t *rd = ar__sig_rec_get(D, PEER);
    assert_non_null(rd);
    rd->owner = C_ID;
    rd->backup = D_ID;
    ar__sig_sess_t *sd = ar__sig_sess_link_new(D, rd, 1);
    assert_non_null(sd);
    ar__sig_node_dead(D, C_ID);
    assert_true(sd->promoted);
    bc_clear();
    ar__sig_conn_t live;
    su_conn_attach(&live, D, sd, AR__SIG_C_LIVE);
    ar__sig_sess_adopt(D, sd);
    json_t *claim = bc_last_rec(D);
    assert_non_null(claim);
    assert_null(json_object_get(claim, "pr"));
    bc_clear();
    sd->conn = NULL;
    ar__sig_rec_free(D, rd);
    su_srv_free(D);
}

/* A claim its owner C published before it died, heard after C's death was handled and D's
 * promotion (it waited in nats-server's route between the nodes): D, which holds the session
 * now, keeps it and says so again; worker X, which took the claim as any other (the record
 * named dead C again), takes D's word after it. Before, every worker named dead C, and a resume
 * through X never asked D (docs/performance.md, "Failover at 100,000 calls a node, continued").
 * A re-announcement by C ("re": C was only slow, its heartbeat not yet heard) still counts: D
 * yields. */
static void test_dead_owner_late_claim(void **state)
{
    (void)state;
    static ar_signal_conf_t conf = {.node_name = (char *)"node-b", .grace = 20000};
    ar__sig_srv_t *D = su_srv_new(D_ID), *X = su_srv_new(3);
    D->conf = X->conf = &conf;
    bc_heard(D, C_ID, "node-a", 5000); /* silent 5 s */
    bc_heard(X, C_ID, "node-a", 5000);
    bc_heard(X, D_ID, "node-b", 0);
    ar__sig_rec_t *rd, *rx;
    records_of_c(D, X, &rd, &rx);
    ar__sig_sess_t *sd = ar__sig_sess_link_new(D, rd, 1);
    assert_non_null(sd);
    bc_clear();
    ar__sig_nodes_judge(D, mono_ms()); /* C dead: D promotes its copy */
    ar__sig_nodes_judge(X, mono_ms());
    assert_false(sd->is_backup);
    json_t *pr = json_incref(bc_last_rec(D));
    assert_non_null(pr);
    ar__sig_rec_apply(X, pr);
    json_decref(pr);
    assert_int_equal(rx->owner, D_ID);

    bc_clear();
    json_t *late =
        json_pack("{s:s,s:s,s:s,s:s,s:i,s:s}", "o", "0000000000000001", "p", PEER, "own",
                  "0000000000000001", "bk", "0000000000000002", "away", 0, "name", "Ann");
    ar__sig_rec_apply(X, late);
    assert_int_equal(rx->owner, C_ID); /* as any claim */
    ar__sig_rec_apply(D, late);
    json_decref(late);
    assert_int_equal(rd->owner, D_ID);
    assert_false(sd->is_backup);
    assert_string_equal(ar__sig_rec_name(rd), "Ann");
    json_t *again = bc_last_rec(D);
    assert_non_null(again);
    assert_string_equal(json_string_value(json_object_get(again, "own")), "0000000000000002");
    ar__sig_rec_apply(X, again);
    assert_int_equal(rx->owner, D_ID);

    json_t *re = json_pack("{s:s,s:s,s:s,s:s,s:i,s:b}", "o", "0000000000000001", "p", PEER, "own",
                           "0000000000000001", "bk", "0000000000000002", "away", 0, "re", 1);
    ar__sig_rec_apply(D, re);
    json_decref(re);
    assert_int_equal(rd->owner, C_ID);
    assert_true(sd->is_backup);
    bc_clear();
    bc_worker_free(D);
    bc_worker_free(X);
}

/* A claim by a worker that has no client for the session (its copy away: a hand-over's answer
 * taken after the session had gone on, docs/signal.md "Resume (P6) and node failure") reaches
 * the owner holding the client: the owner keeps the session and says so again ("re"), and the
 * claimant, whose copy holds no client, yields to that. Before, the owner took the claim, each
 * record named the other worker, and both dropped the session's frames. A claim by a worker that
 * has the client (away 0) is still taken as the hand-over it is. */
static void test_away_claim_refused(void **state)
{
    (void)state;
    enum { X_ID = 3 };
    ar__sig_srv_t *C = su_srv_new(C_ID), *X = su_srv_new(X_ID);
    ar__sig_rec_t *rc, *rx;
    records_of_c(C, X, &rc, &rx);
    ar__sig_sess_t *sc = ar__sig_sess_link_new(C, rc, 0);
    assert_non_null(sc);
    ar__sig_conn_t live;
    su_conn_attach(&live, C, sc, AR__SIG_C_LIVE);

    /* X took the session as away (handover.c take_away): it owns a copy without a client. */
    ar__sig_sess_t *sx = ar__sig_sess_link_new(X, rx, 0);
    assert_non_null(sx);
    rx->owner = X_ID;
    rx->away = 1;
    bc_clear();
    ar__sig_sess_adopt(X, sx);
    json_t *claim = json_incref(bc_last_rec(X));
    assert_non_null(claim);
    assert_int_equal(json_integer_value(json_object_get(claim, "away")), 1);
    bc_clear();

    int fd = su_log_to_file();
    ar__sig_rec_apply(C, claim);
    json_decref(claim);
    int refused = su_log_count(fd, "\"signal_claim_refused\"");
    assert_int_equal(rc->owner, C_ID);
    assert_int_equal(rc->away, 0);
    json_t *re = json_incref(bc_last_rec(C));
    assert_non_null(re);
    assert_true(json_is_true(json_object_get(re, "re")));
    assert_string_equal(json_string_value(json_object_get(re, "own")), "0000000000000001");
    bc_clear();

    ar__sig_rec_apply(X, re);
    json_decref(re);
    int undone = su_log_count(fd, "\"signal_claim_undone\"");
    su_log_back(fd);
    assert_int_equal(refused, 1);
    assert_int_equal(undone, 1);
    assert_int_equal(rx->owner, C_ID);
    assert_true(rx->local == NULL || rx->local->is_backup);
    bc_clear();

    /* The client resumed on X (X's copy connected, away 0): C's connection lingers, and C takes
     * X's claim. */
    json_t *plain = json_pack("{s:s,s:s,s:s,s:s,s:i}", "o", "0000000000000003", "p", PEER, "own",
                              "0000000000000003", "bk", "0000000000000002", "away", 0);
    ar__sig_rec_apply(C, plain);
    json_decref(plain);
    assert_int_equal(rc->owner, X_ID);
    assert_null(bc_last_rec(C));
    bc_clear();

    sc->conn = NULL;
    bc_worker_free(C);
    bc_worker_free(X);
}

/* The workers of a node die together and are found dead in one judgement: their deaths are
 * handled in one walk of the records (one "signal_worker_dead" for both), with what a walk per
 * death did: D promotes its copies of both dead workers' sessions, finds a new backup for its
 * own session that one of them backed up, and, as the lowest live worker, takes the session
 * whose owner and backup both died; a session a live worker owns stays as it was. */
static void test_deaths_found_together(void **state)
{
    (void)state;
    enum { C2_ID = 5, X_ID = 3 };
    static ar_signal_conf_t conf = {.node_name = (char *)"node-b", .grace = 20000};
    ar__sig_srv_t *D = su_srv_new(D_ID);
    D->conf = &conf;
    bc_heard(D, C_ID, "node-a", 5000); /* both silent 5 s */
    bc_heard(D, C2_ID, "node-a", 5000);
    bc_heard(D, X_ID, "node-b", 0);
    const struct {
        char c;
        uint64_t owner, backup;
        int copy; /* 1: a backup copy here, 0: owned here, -1: none */
    } want[] = {{'a', C_ID, D_ID, 1},
                {'b', C2_ID, D_ID, 1},
                {'c', D_ID, C_ID, 0},
                {'d', C_ID, C2_ID, -1},
                {'e', X_ID, C2_ID, -1}};
    ar__sig_rec_t *r[5];
    for (size_t i = 0; i < 5; i++) {
        r[i] = ar__sig_rec_get(D, su_peer(want[i].c));
        assert_non_null(r[i]);
        r[i]->owner = want[i].owner;
        r[i]->backup = want[i].backup;
        if (want[i].copy >= 0)
            assert_non_null(ar__sig_sess_link_new(D, r[i], want[i].copy));
    }
    bc_clear();
    int fd = su_log_to_file();
    ar__sig_nodes_judge(D, mono_ms());
    int silent = su_log_count(fd, "\"signal_worker_silent\"");
    int dead = su_log_count(fd, "\"signal_worker_dead\"");
    int both = su_log_count(fd, "\"workers\":2,\"promoted\":3");
    su_log_back(fd);
    assert_int_equal(silent, 2);
    assert_int_equal(dead, 1);
    assert_int_equal(both, 1);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(r[i]->owner, D_ID);
        assert_false(r[i]->local->is_backup);
    }
    assert_int_equal(r[2]->owner, D_ID);
    assert_int_equal(r[2]->backup, X_ID);
    assert_int_equal(r[3]->owner, D_ID);
    assert_non_null(r[3]->local);
    assert_int_equal(r[4]->owner, X_ID);
    assert_null(r[4]->local);
    bc_clear();
    bc_worker_free(D);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lost_promotion_then_later_claim),
        cmocka_unit_test(test_resumed_copy_claims_plainly),
        cmocka_unit_test(test_dead_owner_late_claim),
        cmocka_unit_test(test_away_claim_refused),
        cmocka_unit_test(test_deaths_found_together),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
