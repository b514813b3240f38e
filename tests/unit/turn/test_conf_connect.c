/*
 * tcp-connect-timeout (RFC 6062 Connect gives up with 447 after it): 30 s by default as RFC 6062
 * says, durations in any unit the configuration accepts, and values under 100 ms refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "turn/turn_conf.h"

static int plan_of(char **argv, int argc, uint32_t *ms)
{
    ar_turn_conf_t c;
    ar_turn_plan_t p;
    char err[256];
    int rc = ar_turn_conf_load(&c, argc, argv, err, sizeof(err));
    if (rc != 0)
        return rc;
    rc = ar_turn_conf_plan(&c, &p, err, sizeof(err));
    if (rc == 0) {
        *ms = p.tcp_connect_timeout_ms;
        ar_turn_plan_free(&p);
    }
    ar_turn_conf_free(&c);
    return rc;
}

static void test_connect_timeout(void **state)
{
    (void)state;
    uint32_t ms = 0;
    char *dflt[] = {"anteroom-turn", "--listening-ip", "127.0.0.1", "--relay-ip", "127.0.0.1"};
    assert_int_equal(plan_of(dflt, 5, &ms), 0);
    assert_int_equal(ms, 30000);
    char *half[] = {"anteroom-turn", "--listening-ip",        "127.0.0.1", "--relay-ip",
                    "127.0.0.1",     "--tcp-connect-timeout", "500ms"};
    assert_int_equal(plan_of(half, 7, &ms), 0);
    assert_int_equal(ms, 500);
    char *secs[] = {"anteroom-turn", "--listening-ip", "127.0.0.1",
                    "--relay-ip",    "127.0.0.1",      "--tcp-connect-timeout=5"};
    assert_int_equal(plan_of(secs, 6, &ms), 0);
    assert_int_equal(ms, 5000);
    char *tiny[] = {"anteroom-turn", "--listening-ip",        "127.0.0.1", "--relay-ip",
                    "127.0.0.1",     "--tcp-connect-timeout", "50ms"};
    assert_int_not_equal(plan_of(tiny, 7, &ms), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect_timeout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
