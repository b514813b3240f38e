/* Invariants of the route table that no new route may break. */
#include "routes.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

static void state_changes_need_csrf(void **state)
{
    (void)state;
    size_t n;
    const ar_app_route_t *rt = ar_app_routes(&n);
    for (size_t i = 0; i < n; i++) {
        int safe = strcmp(rt[i].method, "GET") == 0 || strcmp(rt[i].method, "HEAD") == 0;
        if (!safe && !rt[i].csrf)
            fail_msg("%s %s changes state without CSRF protection", rt[i].method, rt[i].pattern);
        if (safe && rt[i].body != NULL)
            fail_msg("%s %s takes a body", rt[i].method, rt[i].pattern);
    }
}

static void routes_are_well_formed(void **state)
{
    (void)state;
    size_t n;
    const ar_app_route_t *rt = ar_app_routes(&n);
    for (size_t i = 0; i < n; i++) {
        assert_non_null(rt[i].handler);
        assert_true(strncmp(rt[i].pattern, "/api/v1/", 8) == 0);
        /* Patient entry links name their clinic but are public (no account enters). */
        int entry = strncmp(rt[i].pattern, "/api/v1/entry/", 14) == 0;
        assert_true(!entry || rt[i].auth == AR_AUTH_PUBLIC);
        int scoped = strstr(rt[i].pattern, "{clinic}") != NULL && !entry;
        /* A clinic-scoped path is authorized by roles in that clinic, and only such a path. */
        assert_int_equal(scoped, rt[i].auth == AR_AUTH_CLINIC);
        if (rt[i].auth == AR_AUTH_CLINIC)
            assert_true(rt[i].roles != 0);
        else
            assert_int_equal(rt[i].roles, 0);
        for (size_t j = 0; j < i; j++)
            assert_false(strcmp(rt[i].method, rt[j].method) == 0 &&
                         strcmp(rt[i].pattern, rt[j].pattern) == 0);
    }
}

static void find_matches_patterns(void **state)
{
    (void)state;
    int64_t clinic;
    int known;
    const ar_app_route_t *r =
        ar_app_route_find("GET", 3, "/api/v1/clinics/42", 18, &clinic, &known);
    assert_non_null(r);
    assert_int_equal(clinic, 42);
    assert_null(ar_app_route_find("POST", 4, "/api/v1/clinics/42", 18, &clinic, &known));
    assert_int_equal(known, 1);
    assert_null(ar_app_route_find("GET", 3, "/api/v1/clinics/042", 19, &clinic, &known));
    assert_int_equal(known, 0);
    assert_null(ar_app_route_find("GET", 3, "/api/v1/clinics/-1", 18, &clinic, &known));
    assert_null(ar_app_route_find("GET", 3, "/api/v1/clinics/1/", 18, &clinic, &known));
    assert_null(
        ar_app_route_find("GET", 3, "/api/v1/clinics/9999999999999999999", 35, &clinic, &known));
    assert_null(ar_app_route_find("GET", 3, "/api/v1/me/", 11, &clinic, &known));
    assert_non_null(ar_app_route_find("GET", 3, "/api/v1/me", 10, &clinic, &known));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(state_changes_need_csrf),
        cmocka_unit_test(routes_are_well_formed),
        cmocka_unit_test(find_matches_patterns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
