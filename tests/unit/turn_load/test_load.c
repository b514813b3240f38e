/* Load report codec, the alternate-relay board, and address text forms. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "load.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

static ar_turn_load_t report(const char *node, const char *jur, const char *addr, uint64_t allocs,
                             uint64_t cap, double cpu, int64_t at)
{
    ar_turn_load_t l;
    memset(&l, 0, sizeof(l));
    snprintf(l.node, sizeof(l.node), "%s", node);
    snprintf(l.jurisdiction, sizeof(l.jurisdiction), "%s", jur);
    assert_int_equal(ar_turn_parse_hostport(addr, strlen(addr), &l.addr), 0);
    l.allocations = allocs;
    l.capacity = cap;
    l.cpu = cpu;
    l.bps = 123456;
    l.at_ms = at;
    return l;
}

static void test_roundtrip(void **state)
{
    (void)state;
    ar_turn_load_t in = report("relay-1", "eu-de", "[2001:db8::5]:3478", 10, 100, 0.25, 1700);
    char json[AR_TURN_LOAD_REPORT_MAX];
    int n = ar_turn_load_encode(&in, json, sizeof(json));
    assert_true(n > 0);
    ar_turn_load_t out;
    assert_int_equal(ar_turn_load_decode(json, (size_t)n, &out), 0);
    assert_string_equal(out.node, "relay-1");
    assert_string_equal(out.jurisdiction, "eu-de");
    assert_int_equal(out.allocations, 10);
    assert_int_equal(out.capacity, 100);
    assert_int_equal(out.bps, 123456);
    assert_int_equal(out.at_ms, 1700);
    assert_true(out.cpu > 0.2499 && out.cpu < 0.2501);
    char addr[80];
    assert_int_equal(ar_turn_format_hostport((struct sockaddr *)&out.addr, addr, sizeof(addr)), 18);
    assert_string_equal(addr, "[2001:db8::5]:3478");
    assert_int_equal(ar_turn_load_encode(&in, json, 20), AR_ETOOBIG);
}

static void test_decode_refuses(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "[]",
        "{\"v\":1}",
        /* wrong version */
        "{\"v\":2,\"node\":\"a\",\"jurisdiction\":\"j\",\"addr\":\"1.2.3.4:1\",\"allocations\":1,"
        "\"capacity\":1,\"bps\":1,\"cpu\":0.1,\"at_ms\":1}",
        /* unknown extra field */
        "{\"v\":1,\"node\":\"a\",\"jurisdiction\":\"j\",\"addr\":\"1.2.3.4:1\",\"allocations\":1,"
        "\"capacity\":1,\"bps\":1,\"cpu\":0.1,\"at_ms\":1,\"x\":1}",
        /* a name with characters outside the allowed set */
        "{\"v\":1,\"node\":\"a b\",\"jurisdiction\":\"j\",\"addr\":\"1.2.3.4:1\",\"allocations\":1,"
        "\"capacity\":1,\"bps\":1,\"cpu\":0.1,\"at_ms\":1}",
        /* cpu out of range */
        "{\"v\":1,\"node\":\"a\",\"jurisdiction\":\"j\",\"addr\":\"1.2.3.4:1\",\"allocations\":1,"
        "\"capacity\":1,\"bps\":1,\"cpu\":1.5,\"at_ms\":1}",
        /* a host name instead of an address */
        "{\"v\":1,\"node\":\"a\",\"jurisdiction\":\"j\",\"addr\":\"relay.example:1\","
        "\"allocations\":1,\"capacity\":1,\"bps\":1,\"cpu\":0.1,\"at_ms\":1}",
        /* negative count */
        "{\"v\":1,\"node\":\"a\",\"jurisdiction\":\"j\",\"addr\":\"1.2.3.4:1\",\"allocations\":-1,"
        "\"capacity\":1,\"bps\":1,\"cpu\":0.1,\"at_ms\":1}",
        /* duplicate key */
        "{\"v\":1,\"v\":1,\"node\":\"a\",\"jurisdiction\":\"j\",\"addr\":\"1.2.3.4:1\","
        "\"allocations\":1,\"capacity\":1,\"bps\":1,\"cpu\":0.1}",
    };
    ar_turn_load_t out;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = ar_turn_load_decode(bad[i], strlen(bad[i]), &out);
        if (rc != AR_EPARSE)
            fail_msg("case %zu: got %d", i, rc);
    }
    char big[AR_TURN_LOAD_REPORT_MAX + 2];
    memset(big, ' ', sizeof(big));
    assert_int_equal(ar_turn_load_decode(big, sizeof(big), &out), AR_ETOOBIG);
}

static void test_hostport(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    static const char *const bad[] = {"1.2.3.4",  "1.2.3.4:0", "1.2.3.4:65536", "[::1]",
                                      "::1:3478", "[::1]x3",   "1.2.3.4:12a",   ":1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(ar_turn_parse_hostport(bad[i], strlen(bad[i]), &ss), AR_EPARSE);
    assert_int_equal(ar_turn_parse_hostport("10.1.2.3:443", 12, &ss), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 443);
}

static void test_board_picks_least_loaded_fresh_peer(void **state)
{
    (void)state;
    ar_turn_loadboard_t *b = ar_turn_loadboard_new("self", "eu", 3000);
    assert_non_null(b);
    ar_turn_load_t busy = report("busy", "eu", "192.0.2.1:3478", 90, 100, 0.1, 10000);
    ar_turn_load_t calm = report("calm", "eu", "192.0.2.2:3478", 10, 100, 0.2, 10000);
    ar_turn_load_t stale = report("stale", "eu", "192.0.2.3:3478", 0, 100, 0.0, 1000);
    ar_turn_load_t foreign = report("far", "us", "192.0.2.4:3478", 0, 100, 0.0, 10000);
    ar_turn_load_t self = report("self", "eu", "192.0.2.5:3478", 0, 100, 0.0, 10000);
    assert_int_equal(ar_turn_loadboard_update(b, &busy), 0);
    assert_int_equal(ar_turn_loadboard_update(b, &calm), 0);
    assert_int_equal(ar_turn_loadboard_update(b, &stale), 0);
    assert_int_equal(ar_turn_loadboard_update(b, &foreign), AR_EPERM);
    assert_int_equal(ar_turn_loadboard_update(b, &self), AR_EEXIST);

    struct sockaddr_storage pick;
    char text[80];
    assert_int_equal(ar_turn_loadboard_pick(b, 11000, 0.8, &pick), 0);
    ar_turn_format_hostport((struct sockaddr *)&pick, text, sizeof(text));
    /* "stale" is idle but 10 s old: ignored. "calm" scores 0.2, "busy" 0.9. */
    assert_string_equal(text, "192.0.2.2:3478");

    /* A newer report from calm raises its load; an older one arriving late changes nothing. */
    ar_turn_load_t calm2 = report("calm", "eu", "192.0.2.2:3478", 95, 100, 0.2, 10500);
    ar_turn_load_t calm_old = report("calm", "eu", "192.0.2.2:3478", 0, 100, 0.0, 9000);
    assert_int_equal(ar_turn_loadboard_update(b, &calm2), 0);
    assert_int_equal(ar_turn_loadboard_update(b, &calm_old), 0);
    assert_int_equal(ar_turn_loadboard_pick(b, 11000, 0.8, &pick), AR_ENOTFOUND);
    assert_int_equal(ar_turn_loadboard_pick(b, 11000, 1.0, &pick), 0);
    ar_turn_format_hostport((struct sockaddr *)&pick, text, sizeof(text));
    assert_string_equal(text, "192.0.2.1:3478");
    ar_turn_loadboard_free(b);
}

static void test_score(void **state)
{
    (void)state;
    ar_turn_load_t l = report("a", "eu", "192.0.2.1:1", 50, 100, 0.7, 0);
    assert_true(ar_turn_load_score(&l) > 0.69 && ar_turn_load_score(&l) < 0.71);
    l.capacity = 0; /* unbounded: CPU alone */
    l.cpu = 0.3;
    assert_true(ar_turn_load_score(&l) > 0.29 && ar_turn_load_score(&l) < 0.31);
    ar_turn_cpu_sampler_t s;
    ar_turn_cpu_sampler_init(&s);
    double share = ar_turn_cpu_sample(&s);
    assert_true(share >= 0.0 && share <= 1.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_decode_refuses),
        cmocka_unit_test(test_hostport),
        cmocka_unit_test(test_board_picks_least_loaded_fresh_peer),
        cmocka_unit_test(test_score),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
