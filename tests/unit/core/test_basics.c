/* Error table, capped buffers, allocation failure hook, random ids, log truncation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "anteroom/alloc.h"
#include "anteroom/buf.h"
#include "anteroom/err.h"
#include "anteroom/log.h"
#include "anteroom/rand.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <unistd.h>

static void test_err_table(void **state)
{
    (void)state;
    assert_string_equal(ar_err_name(AR_ENOMEM), "ENOMEM");
    assert_string_equal(ar_strerror(AR_ETOOBIG), "input exceeds its size cap");
    assert_string_equal(ar_err_name(-9999), "EUNKNOWN");
    assert_string_equal(ar_strerror(0), "success");
}

static void test_buf_cap(void **state)
{
    (void)state;
    ar_buf_t b;
    ar_buf_init(&b, 10);
    assert_int_equal(ar_buf_append(&b, "hello", 5), 0);
    assert_int_equal(ar_buf_append(&b, "world", 5), 0);
    assert_int_equal(ar_buf_append(&b, "!", 1), AR_ETOOBIG);
    assert_int_equal(b.len, 10);
    ar_buf_consume(&b, 5);
    assert_memory_equal(b.data, "world", 5);
    ar_buf_release(&b);
    assert_null(b.data);
}

static void test_alloc_hook(void **state)
{
    (void)state;
    ar_buf_t b;
    ar_buf_init(&b, 1024);
    ar_alloc_fail_after(0);
    assert_int_equal(ar_buf_append(&b, "x", 1), AR_ENOMEM);
    assert_int_equal(ar_alloc_fail_after(-1), 1);
    assert_int_equal(ar_buf_append(&b, "x", 1), 0);
    ar_buf_release(&b);
}

static void test_rand_id(void **state)
{
    (void)state;
    char a[32], b[32];
    assert_int_equal(ar_rand_init(), 0);
    assert_int_equal(ar_rand_id(a, sizeof(a), 16), 22);
    assert_int_equal(ar_rand_id(b, sizeof(b), 16), 22);
    assert_string_not_equal(a, b);
    assert_int_equal(ar_rand_id(a, 10, 16), AR_ETOOBIG);
}

static void test_log_truncates_addresses(void **state)
{
    (void)state;
    struct sockaddr_in v4 = {.sin_family = AF_INET};
    inet_pton(AF_INET, "203.0.113.77", &v4.sin_addr);
    char out[64];
    assert_true(ar_log_addr_truncated((struct sockaddr *)&v4, out, sizeof(out)) > 0);
    assert_string_equal(out, "203.0.113.0/24");
    struct sockaddr_in6 v6 = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, "2001:db8:1234:5678::9", &v6.sin6_addr);
    assert_true(ar_log_addr_truncated((struct sockaddr *)&v6, out, sizeof(out)) > 0);
    assert_string_equal(out, "2001:db8:1234::/48");

    int fds[2];
    assert_int_equal(pipe(fds), 0);
    ar_log_set_fd(fds[1]);
    ar_log(AR_LOG_WARN, "peer_denied", AR_LF_ADDR("peer", (struct sockaddr *)&v4),
           AR_LF_OPER("opt", "a\"b"), AR_LF_ERR("err", AR_EPERM));
    ar_log_set_fd(-1);
    char line[512] = {0};
    ssize_t n = read(fds[0], line, sizeof(line) - 1);
    assert_true(n > 0);
    assert_non_null(strstr(line, "\"peer\":\"203.0.113.0/24\""));
    assert_null(strstr(line, "77"));
    assert_non_null(strstr(line, "\"opt\":\"a\\\"b\""));
    assert_non_null(strstr(line, "\"err\":\"EPERM\""));
    close(fds[0]);
    close(fds[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_err_table),
        cmocka_unit_test(test_buf_cap),
        cmocka_unit_test(test_alloc_hook),
        cmocka_unit_test(test_rand_id),
        cmocka_unit_test(test_log_truncates_addresses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
