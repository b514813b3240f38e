/*
 * One-time invite links across the jurisdiction (src/signal/invite.c): the used-token set, the
 * claims other workers publish, and how two claims for one token are ranked. No sockets and no
 * bus: claims are applied as the bus would deliver them.
 */
#include "internal.h"
#include "sig_util.h"

#include "anteroom/alloc.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

/* A session this worker owns for peer id c (away: no connection). */
static ar__sig_sess_t *owned(ar__sig_srv_t *srv, char c)
{
    ar__sig_rec_t *r = ar__sig_rec_get(srv, su_peer(c));
    assert_non_null(r);
    r->owner = srv->node_id;
    ar__sig_sess_t *s = ar__sig_sess_link_new(srv, r, 0);
    assert_non_null(s);
    return s;
}

static void claims(ar_token_claims_t *cl, const char *sub, int64_t exp)
{
    memset(cl, 0, sizeof(*cl));
    snprintf(cl->sub, sizeof(cl->sub), "%s", sub);
    cl->role = AR_TOKEN_INVITEE;
    cl->exp = exp;
}

/* A claim as another worker (w) publishes it. */
static void apply(ar__sig_srv_t *srv, const char *w, const char *sub, int64_t exp, uint64_t t,
                  const char *p)
{
    char hex[33], msg[256];
    ar__sig_invite_key(sub, hex);
    int n =
        snprintf(msg, sizeof(msg), "{\"w\":\"%s\",\"h\":\"%s\",\"e\":%lld,\"t\":%llu,\"p\":\"%s\"}",
                 w, hex, (long long)exp, (unsigned long long)t, p);
    ar__sig_invite_apply(srv, msg, (size_t)n);
}

static void test_used_once(void **state)
{
    (void)state;
    ar__sig_srv_t *srv = su_srv_new(1);
    int64_t exp = (int64_t)time(NULL) + 600;
    ar_token_claims_t cl;
    claims(&cl, "invite-1", exp);
    assert_int_equal(ar__sig_invite_used(srv, &cl), 0);
    assert_int_equal(ar__sig_invite_claim(srv, &cl, su_peer('a')), 0);
    assert_int_equal(ar__sig_invite_used(srv, &cl), 1);
    assert_int_equal(ar__sig_invite_claim(srv, &cl, su_peer('b')), AR_EPERM);
    assert_string_equal(ar__sig_invite_holder(srv, "invite-1"), su_peer('a'));
    /* Another token is unaffected. */
    claims(&cl, "invite-2", exp);
    assert_int_equal(ar__sig_invite_used(srv, &cl), 0);
    /* A claim from another worker marks it used here. */
    apply(srv, "0000000000000002", "invite-2", exp, 1000, su_peer('c'));
    assert_int_equal(ar__sig_invite_used(srv, &cl), 1);
    ar__sig_invites_free(srv);
    assert_null(srv->invites);
    su_srv_free(srv);
}

static void test_ranking(void **state)
{
    (void)state;
    ar__sig_srv_t *srv = su_srv_new(1);
    int64_t exp = (int64_t)time(NULL) + 600;
    /* The earliest claim holds the token, whatever order the claims arrive in. */
    apply(srv, "0000000000000002", "t", exp, 2000, su_peer('m'));
    apply(srv, "0000000000000003", "t", exp, 1000, su_peer('z'));
    assert_string_equal(ar__sig_invite_holder(srv, "t"), su_peer('z'));
    apply(srv, "0000000000000004", "t", exp, 3000, su_peer('b'));
    assert_string_equal(ar__sig_invite_holder(srv, "t"), su_peer('z'));
    /* Same time: the smaller peer id. */
    apply(srv, "0000000000000005", "t", exp, 1000, su_peer('y'));
    assert_string_equal(ar__sig_invite_holder(srv, "t"), su_peer('y'));
    apply(srv, "0000000000000005", "t", exp, 1000, su_peer('z'));
    assert_string_equal(ar__sig_invite_holder(srv, "t"), su_peer('y'));
    ar__sig_invites_free(srv);
    su_srv_free(srv);
}

/*
 * A session this worker owns used the link after another worker's session did: ours is ended,
 * record and all. gone: its connection was closed by the network in this batch of events (GONE,
 * not yet freed); the session is still ended, not left resumable with the network's close code,
 * and the connection lets go of it. Without: the session is away (no connection).
 */
static void loser_ended(int gone)
{
    ar__sig_srv_t *srv = su_srv_new(1);
    int64_t exp = (int64_t)time(NULL) + 600;
    ar_token_claims_t cl;
    claims(&cl, "race", exp);
    ar__sig_sess_t *s = owned(srv, 'q');
    ar__sig_conn_t cn;
    if (gone) {
        su_conn_attach(&cn, srv, s, AR__SIG_C_GONE);
        cn.close_code = 1006;
    }
    assert_int_equal(ar__sig_invite_claim(srv, &cl, s->rec->peer), 0);
    apply(srv, "0000000000000002", "race", exp, 1, su_peer('p'));
    assert_null(ar__sig_rec_find(srv, su_peer('q')));
    assert_string_equal(ar__sig_invite_holder(srv, "race"), su_peer('p'));
    if (gone)
        assert_null(cn.sess); /* let go of: on_free has no session to report lost */
    ar__sig_invites_free(srv);
    su_srv_free(srv);
}

static void test_loser_ended_here(void **state)
{
    (void)state;
    loser_ended(0);
}

static void test_loser_ended_gone_conn(void **state)
{
    (void)state;
    loser_ended(1);
}

static void test_ignored(void **state)
{
    (void)state;
    ar__sig_srv_t *srv = su_srv_new(1);
    int64_t now = (int64_t)time(NULL);
    /* Our own claims come back from NATS: already applied. */
    apply(srv, "0000000000000001", "own", now + 600, 1, su_peer('a'));
    assert_null(ar__sig_invite_holder(srv, "own"));
    /* An expired token opens nothing: nothing to remember. */
    apply(srv, "0000000000000002", "old", now - 1, 1, su_peer('a'));
    assert_null(ar__sig_invite_holder(srv, "old"));
    /* Malformed claims. */
    const char *bad[] = {"", "{", "[]", "{\"w\":\"2\"}",
                         "{\"w\":\"2\",\"h\":\"zz\",\"e\":1,\"t\":1,\"p\":\"x\"}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ar__sig_invite_apply(srv, bad[i], strlen(bad[i]));
    apply(srv, "0000000000000002", "short", now + 600, 1, "tooshort");
    assert_null(ar__sig_invite_holder(srv, "short"));
    ar__sig_invites_free(srv);
    su_srv_free(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_used_once),        cmocka_unit_test(test_ranking),
        cmocka_unit_test(test_loser_ended_here), cmocka_unit_test(test_loser_ended_gone_conn),
        cmocka_unit_test(test_ignored),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
