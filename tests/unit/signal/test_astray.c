/*
 * A live client connection that carries no session its worker acts for (srv.c
 * ar__sig_conn_astray): its client hears nothing more and does not know it, so the tick counts
 * such connections by kind and warns. The rule's cases on structures the test makes up.
 */
#include "internal.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

static void test_astray_kinds(void **state)
{
    (void)state;
    ar__sig_srv_t srv = {0};
    srv.node_id = 7;
    ar__sig_rec_t r = {0};
    ar__sig_sess_t s = {0};
    ar__sig_conn_t cn = {0}, other = {0};
    s.rec = &r;
    r.owner = 7;
    assert_int_equal(ar__sig_conn_astray(&srv, &cn), AR__SIG_ASTRAY_NONE);
    cn.sess = &s;
    s.conn = &other; /* the session went on with another connection */
    assert_int_equal(ar__sig_conn_astray(&srv, &cn), AR__SIG_ASTRAY_OTHER_CONN);
    s.conn = &cn;
    assert_int_equal(ar__sig_conn_astray(&srv, &cn), -1); /* ours, carried by it */
    s.is_backup = 1;                                      /* demoted under it */
    assert_int_equal(ar__sig_conn_astray(&srv, &cn), AR__SIG_ASTRAY_BACKUP);
    s.is_backup = 0;
    r.owner = 9; /* its record names another owner */
    assert_int_equal(ar__sig_conn_astray(&srv, &cn), AR__SIG_ASTRAY_ELSEWHERE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_astray_kinds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
