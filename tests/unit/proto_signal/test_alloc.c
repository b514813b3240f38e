/*
 * Allocation failure: every valid frame is parsed with the Nth allocation failing, for every N
 * until the parse needs no more; each attempt must return AR_ENOMEM (or succeed) and leave
 * nothing allocated. The builder allocates nothing at all.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "frames.h"

#include "anteroom/alloc.h"

#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * Bytes in use on the heap (0 under ASan, whose leak checker covers that build instead). glibc
 * counts chunks parked in its per-thread cache as in use, so main() runs the test with that
 * cache off, or freed memory would look leaked.
 */
static size_t heap_in_use(void)
{
    return mallinfo2().uordblks;
}

static void parse_under_failures(int dir, const char *json, int want)
{
    size_t len = strlen(json);
    ar_sig_msg_t m;
    ar_sig_err_t err;
    /* A first run outside the measurement lets jansson do its one-time set-up. */
    if (ar_sig_parse(dir, json, len, &m, &err) == 0)
        ar_sig_msg_free(&m);
    size_t before = heap_in_use();
    long n;
    for (n = 0; n < 100000; n++) {
        ar_alloc_fail_after(n);
        int rc = ar_sig_parse(dir, json, len, &m, &err);
        long failed = ar_alloc_fail_after(-1);
        if (rc == AR_ENOMEM) {
            assert_true(failed > 0);
            assert_null(m.root_);
            if (heap_in_use() != before)
                fail_msg("%s: %zu bytes left after ENOMEM at %ld", json, heap_in_use() - before, n);
            continue;
        }
        if (rc != want)
            fail_msg("%s: %s after %ld allocations", json, ar_err_name(rc), n);
        if (rc == 0)
            ar_sig_msg_free(&m);
        if (heap_in_use() != before)
            fail_msg("%s: %zu bytes more after %ld", json, heap_in_use() - before, n);
        if (failed == 0)
            break;
    }
    assert_true(n < 100000);
}

static void test_parse_alloc_failure(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_VALID; i++)
        parse_under_failures(valid_frames[i].dir, valid_frames[i].json, 0);
    /* Failures on the way to a refusal must not turn into anything but ENOMEM either. */
    parse_under_failures(C, "{\"v\":1,\"type\":\"offer\",\"to\":\"p\",\"sdp\":\"\\u0001\"}",
                         AR_EPARSE);
    parse_under_failures(C, "{\"v\":1,\"type\":\"ping\",\"t\":1,\"t\":2}", AR_EPARSE);
    parse_under_failures(
        C,
        "{\"v\":1,\"type\":\"arrive\",\"clinic\":\"c\",\"area\":\"a\",\"name\":\"N\",\"consent\":"
        "true,\"answers\":[{\"q\":\"q\",\"a\":\"\"},{\"q\":\"q\",\"a\":\"\\u0007\"}]}",
        AR_EPARSE);
}

static void test_build_allocates_nothing(void **state)
{
    (void)state;
    static char out[AR_SIG_OUT_MAX + 1];
    for (size_t i = 0; i < N_VALID; i++) {
        ar_sig_msg_t m;
        ar_sig_err_t err;
        const char *j = valid_frames[i].json;
        assert_int_equal(ar_sig_parse(valid_frames[i].dir, j, strlen(j), &m, &err), 0);
        ar_alloc_fail_after(0);
        int n = ar_sig_build(valid_frames[i].dir, &m, out, sizeof(out));
        assert_int_equal(ar_alloc_fail_after(-1), 0);
        assert_true(n > 0);
        ar_sig_msg_free(&m);
    }
}

int main(int argc, char **argv)
{
    (void)argc;
    if (getenv("AR_TEST_NO_TCACHE") == NULL) {
        setenv("AR_TEST_NO_TCACHE", "1", 1);
        setenv("GLIBC_TUNABLES", "glibc.malloc.tcache_count=0", 1);
        execv("/proc/self/exe", argv);
        return 1;
    }
    ar_sig_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_alloc_failure),
        cmocka_unit_test(test_build_allocates_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
