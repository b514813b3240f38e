/*
 * The report schema (docs/monitor.md), data-driven: each body with the reason it must give.
 * The address cases are the point of the exercise: nothing that looks like an IP address, a
 * candidate line or an mDNS name may pass, wherever in the body it hides.
 */
#include "stats.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

/* A valid report's required fields, then whatever a case adds. */
#define HEAD                                                                                       \
    "{\"v\":1,\"token\":\"AR1.k1.eyJhdWQiOiJtb25pdG9yIn0.c2lnbmF0dXJl\",\"interval_s\":10,"        \
    "\"call_s\":60,\"browser\":\"chrome\",\"profile\":\"standard\",\"candidate\":\"host\""
#define B(extra) HEAD extra "}"

static const struct {
    const char *json;
    ar_stats_reason_t want;
} cases[] = {
    {B(""), AR_STATS_OK},
    {B(",\"wait_s\":30,\"final\":true,\"remote_candidate\":\"relay\",\"bitrate_in_kbps\":1500,"
       "\"bitrate_out_kbps\":900,\"loss_permille\":12,\"jitter_ms\":8,\"rtt_ms\":45,\"fps\":30,"
       "\"width\":1280,\"height\":720"),
     AR_STATS_OK},
    {B(",\"final\":false"), AR_STATS_OK},
    {B(",\"loss_permille\":1000,\"rtt_ms\":60000,\"bitrate_in_kbps\":100000"), AR_STATS_OK},
    {B(",\"fps\":0,\"width\":0,\"height\":0"), AR_STATS_OK},
    /* malformed */
    {"", AR_STATS_R_MALFORMED},
    {"[]", AR_STATS_R_MALFORMED},
    {"\"x\"", AR_STATS_R_MALFORMED},
    {B("") " x", AR_STATS_R_MALFORMED},
    {HEAD, AR_STATS_R_MALFORMED},
    {B(",\"fps\":30,\"fps\":31"), AR_STATS_R_MALFORMED},
    {B(",\"x\":[[[[1]]]]"), AR_STATS_R_MALFORMED},
    {"\xff\xfe", AR_STATS_R_MALFORMED},
    {B(",\"fps\":\"a\\u0000b\""), AR_STATS_R_MALFORMED},
    /* addresses, wherever they are */
    {B(",\"ip\":\"192.0.2.1\""), AR_STATS_R_ADDRESS},
    {B(",\"note\":\"from 10.1.2.3:5000\""), AR_STATS_R_ADDRESS},
    {B(",\"192.168.1.1\":1"), AR_STATS_R_ADDRESS},
    {B(",\"x\":\"2001:db8::1\""), AR_STATS_R_ADDRESS},
    {B(",\"x\":\"::1\""), AR_STATS_R_ADDRESS},
    {B(",\"x\":\"fe80::1%eth0\""), AR_STATS_R_ADDRESS},
    {B(",\"x\":\"::ffff:192.0.2.1\""), AR_STATS_R_ADDRESS},
    {B(",\"x\":\"candidate:842163049 1 udp 1677729535 x 5000 typ srflx\""), AR_STATS_R_ADDRESS},
    {B(",\"x\":\"a=candidate:1 1 UDP 2 h 9 TYP host\""), AR_STATS_R_ADDRESS},
    {B(",\"x\":\"raddr 0.0.0.0 rport 0\""), AR_STATS_R_ADDRESS},
    {B(",\"x\":\"4f2a7c1e-9b3d-4e5f-8a6b-1c2d3e4f5a6b.local\""), AR_STATS_R_ADDRESS},
    {B(",\"x\":[\"ok\",{\"y\":\"203.0.113.9\"}]"), AR_STATS_R_ADDRESS},
    {B(",\"x\":\"\\u0031\\u0030.0.0.1\""), AR_STATS_R_ADDRESS}, /* escaped "10.0.0.1" */
    {"{\"v\":1,\"token\":\"10.0.0.1\"}", AR_STATS_R_ADDRESS},
    {"{\"browser\":\"198.51.100.7\"}", AR_STATS_R_ADDRESS},
    /* unknown fields */
    {B(",\"x\":1"), AR_STATS_R_UNKNOWN},
    {B(",\"room\":\"r1\""), AR_STATS_R_UNKNOWN},
    {B(",\"x\":{\"y\":1}"), AR_STATS_R_UNKNOWN},
    {B(",\"V\":1"), AR_STATS_R_UNKNOWN},
    /* invalid values */
    {"{}", AR_STATS_R_INVALID},
    {"{\"v\":1,\"token\":\"AR1.a.b.c\",\"interval_s\":10,\"call_s\":60,\"browser\":\"chrome\","
     "\"profile\":\"standard\"}",
     AR_STATS_R_INVALID},
    {B(",\"fps\":241"), AR_STATS_R_INVALID},
    {B(",\"fps\":-1"), AR_STATS_R_INVALID},
    {B(",\"fps\":30.5"), AR_STATS_R_INVALID},
    {B(",\"fps\":\"30\""), AR_STATS_R_INVALID},
    {B(",\"loss_permille\":1001"), AR_STATS_R_INVALID},
    /* jansson refuses an integer it cannot hold as a parse error */
    {B(",\"rtt_ms\":99999999999999999999"), AR_STATS_R_MALFORMED},
    {B(",\"final\":1"), AR_STATS_R_INVALID},
    {B(",\"remote_candidate\":\"RELAY\""), AR_STATS_R_INVALID},
    {B(",\"remote_candidate\":\"\""), AR_STATS_R_INVALID},
    {B(",\"remote_candidate\":null"), AR_STATS_R_INVALID},
    {"{\"v\":1,\"token\":\"AR1.a.b.c\",\"interval_s\":0,\"call_s\":60,\"browser\":\"chrome\","
     "\"profile\":\"standard\",\"candidate\":\"host\"}",
     AR_STATS_R_INVALID},
    {"{\"v\":1,\"token\":\"Bearer x\",\"interval_s\":10,\"call_s\":60,\"browser\":\"chrome\","
     "\"profile\":\"standard\",\"candidate\":\"host\"}",
     AR_STATS_R_INVALID},
    {"{\"v\":1,\"token\":\"AR1.a/b.c\",\"interval_s\":10,\"call_s\":60,\"browser\":\"chrome\","
     "\"profile\":\"standard\",\"candidate\":\"host\"}",
     AR_STATS_R_INVALID},
    {"{\"v\":1,\"token\":\"AR1.a.b.c\",\"interval_s\":10,\"call_s\":60,\"browser\":\"netscape\","
     "\"profile\":\"standard\",\"candidate\":\"host\"}",
     AR_STATS_R_INVALID},
    {"{\"v\":\"1\",\"token\":\"AR1.a.b.c\",\"interval_s\":10,\"call_s\":60,\"browser\":\"chrome\","
     "\"profile\":\"standard\",\"candidate\":\"host\"}",
     AR_STATS_R_INVALID},
    /* versions */
    {"{\"v\":2,\"token\":\"AR1.a.b.c\",\"interval_s\":10,\"call_s\":60,\"browser\":\"chrome\","
     "\"profile\":\"standard\",\"candidate\":\"host\"}",
     AR_STATS_R_VERSION},
    {"{\"v\":0,\"token\":\"AR1.a.b.c\",\"interval_s\":10,\"call_s\":60,\"browser\":\"chrome\","
     "\"profile\":\"standard\",\"candidate\":\"host\"}",
     AR_STATS_R_VERSION},
};

static void table_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ar_stats_report_t r;
        ar_stats_reason_t got =
            ar_stats_parse(cases[i].json, strlen(cases[i].json), AR_STATS_BODY_MAX, &r);
        if (got != cases[i].want)
            fail_msg("case %zu: %s, want %s: %s", i, ar_stats_reason_name(got),
                     ar_stats_reason_name(cases[i].want), cases[i].json);
    }
}

static void decoded_values(void **state)
{
    (void)state;
    const char *j = B(",\"wait_s\":30,\"final\":true,\"remote_candidate\":\"relay\","
                      "\"bitrate_in_kbps\":1500,\"loss_permille\":12,\"rtt_ms\":45,\"height\":720");
    ar_stats_report_t r;
    assert_int_equal(ar_stats_parse(j, strlen(j), AR_STATS_BODY_MAX, &r), AR_STATS_OK);
    assert_int_equal(r.version, 1);
    assert_string_equal(r.token, "AR1.k1.eyJhdWQiOiJtb25pdG9yIn0.c2lnbmF0dXJl");
    assert_int_equal(r.token_len, strlen(r.token));
    assert_int_equal(r.interval_s, 10);
    assert_int_equal(r.call_s, 60);
    assert_int_equal(r.wait_s, 30);
    assert_true(r.final);
    assert_int_equal(r.browser, AR_STATS_BROWSER_CHROME);
    assert_int_equal(r.profile, AR_STATS_PROFILE_STANDARD);
    assert_int_equal(r.cand, AR_STATS_CAND_HOST);
    assert_int_equal(r.remote_cand, AR_STATS_CAND_RELAY);
    assert_int_equal(r.bitrate_in_kbps, 1500);
    assert_int_equal(r.loss_permille, 12);
    assert_int_equal(r.rtt_ms, 45);
    assert_int_equal(r.height, 720);
    assert_int_equal(r.present, AR_STATS_HAS_WAIT | AR_STATS_HAS_REMOTE_CAND |
                                    AR_STATS_HAS_BITRATE_IN | AR_STATS_HAS_LOSS | AR_STATS_HAS_RTT |
                                    AR_STATS_HAS_HEIGHT);
}

static void size_cap(void **state)
{
    (void)state;
    char big[AR_STATS_BODY_MAX + 2];
    memset(big, ' ', sizeof(big));
    const char *j = B("");
    memcpy(big, j, strlen(j)); /* valid JSON followed by spaces */
    ar_stats_report_t r;
    assert_int_equal(ar_stats_parse(big, AR_STATS_BODY_MAX, AR_STATS_BODY_MAX, &r), AR_STATS_OK);
    assert_int_equal(ar_stats_parse(big, AR_STATS_BODY_MAX + 1, AR_STATS_BODY_MAX, &r),
                     AR_STATS_R_TOO_LARGE);
    assert_int_equal(ar_stats_parse(NULL, 0, AR_STATS_BODY_MAX, &r), AR_STATS_R_MALFORMED);
}

static void address_shapes(void **state)
{
    (void)state;
    static const char *const yes[] = {"1.2.3.4", "x999.999.999.999y",   "::", "a::b", "1:2:3",
                                      "fe80::",  "2001:db8:0:0:0:0:0:1"};
    static const char *const no[] = {"1.2.3", "chrome", "standard", "relay", "srflx",
                                     "a:b",   "1.2.3.", "v1.2",     "12:30", "AR1.k1.eyJ.sig"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        if (!ar_stats_has_ip(yes[i], strlen(yes[i])))
            fail_msg("not seen as an address: %s", yes[i]);
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        if (ar_stats_has_ip(no[i], strlen(no[i])))
            fail_msg("seen as an address: %s", no[i]);
    assert_true(ar_stats_has_address("x.LOCAL", 7));
    assert_true(ar_stats_has_address("Candidate:1", 11));
    assert_false(ar_stats_has_address("candidate", 9));
    assert_false(ar_stats_has_address("local", 5));
}

static void names(void **state)
{
    (void)state;
    assert_string_equal(ar_stats_reason_name(AR_STATS_R_ADDRESS), "address");
    assert_string_equal(ar_stats_browser_name(AR_STATS_BROWSER_SAFARI), "safari");
    assert_string_equal(ar_stats_profile_name(AR_STATS_PROFILE_HIGH), "high");
    assert_string_equal(ar_stats_cand_name(AR_STATS_CAND_RELAY), "relay");
    assert_string_equal(ar_stats_cand_name(99), "");
    assert_string_equal(ar_stats_browser_name(-1), "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(table_cases), cmocka_unit_test(decoded_values),
        cmocka_unit_test(size_cap),    cmocka_unit_test(address_shapes),
        cmocka_unit_test(names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
