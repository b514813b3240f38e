/*
 * The servers file (servers.c): strict parsing, the refusals that keep each jurisdiction to its
 * own servers, relays least-loaded first from load reports, and TURN credentials the relay's
 * check accepts, and the signalling list placed per clinic.
 */
#include "load.h"
#include "servers.h"

#include "anteroom/rand.h"
#include "anteroom/turn_rest.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

static const char good[] =
    "{\"jurisdiction\": \"eu\", \"jurisdictions\": {"
    "\"eu\": {\"signal\": [\"wss://s.eu/ws\"], \"turn\": ["
    "{\"node\": \"ra\", \"host\": \"ra.eu\"}, {\"node\": \"rb\", \"host\": \"rb.eu\"},"
    "{\"node\": \"rc\", \"host\": \"rc.eu\", \"port\": 3479, \"tls_port\": 5349}]},"
    "\"us\": {\"signal\": [\"wss://s.us/ws\"], \"turn\": [{\"node\": \"ru\", \"host\": "
    "\"ru.us\"}]},"
    "\"bare\": {}}}";

static void parses_and_refuses(void **state)
{
    (void)state;
    ar_app_servers_t *s;
    char err[200];
    assert_int_equal(ar_app_servers_parse(good, strlen(good), &s, err, sizeof(err)), 0);
    assert_string_equal(ar_app_servers_node_jurisdiction(s), "eu");
    assert_true(ar_app_servers_serves(s, "eu") && ar_app_servers_serves(s, "us"));
    assert_false(ar_app_servers_serves(s, "bare") || ar_app_servers_serves(s, "mars"));
    ar_app_servers_free(s);
    static const char *const bad[] = {
        "",
        "[]",
        "{\"jurisdiction\": \"eu\"}",
        /* the node's own jurisdiction must be served */
        "{\"jurisdiction\": \"xx\", \"jurisdictions\": {\"eu\": {\"signal\": [\"wss://a/\"], "
        "\"turn\": [{\"node\": \"r\", \"host\": \"h\"}]}}}",
        /* one relay under two jurisdictions */
        "{\"jurisdiction\": \"a\", \"jurisdictions\": {"
        "\"a\": {\"signal\": [\"wss://a/\"], \"turn\": [{\"node\": \"r1\", \"host\": \"h\"}]},"
        "\"b\": {\"signal\": [\"wss://b/\"], \"turn\": [{\"node\": \"r2\", \"host\": \"h\"}]}}}",
        /* one signalling URL under two */
        "{\"jurisdiction\": \"a\", \"jurisdictions\": {"
        "\"a\": {\"signal\": [\"wss://s/\"], \"turn\": [{\"node\": \"r1\", \"host\": \"h1\"}]},"
        "\"b\": {\"signal\": [\"wss://s/\"], \"turn\": [{\"node\": \"r2\", \"host\": \"h2\"}]}}}",
        /* one monitor URL under two */
        "{\"jurisdiction\": \"a\", \"jurisdictions\": {"
        "\"a\": {\"signal\": [\"wss://s1/\"], \"turn\": [{\"node\": \"r1\", \"host\": \"h1\"}], "
        "\"monitor\": \"https://m/\"},"
        "\"b\": {\"signal\": [\"wss://s2/\"], \"turn\": [{\"node\": \"r2\", \"host\": \"h2\"}], "
        "\"monitor\": \"https://m/\"}}}",
        /* unknown keys, bad URLs, bad hosts, bad ports, bad names */
        "{\"jurisdiction\": \"a\", \"extra\": 1, \"jurisdictions\": {}}",
        "{\"jurisdiction\": \"a\", \"jurisdictions\": {\"a\": {\"signal\": [\"https://x/\"], "
        "\"turn\": [{\"node\": \"r\", \"host\": \"h\"}]}}}",
        "{\"jurisdiction\": \"a\", \"jurisdictions\": {\"a\": {\"signal\": [\"wss://x/\\\"<\"], "
        "\"turn\": [{\"node\": \"r\", \"host\": \"h\"}]}}}",
        "{\"jurisdiction\": \"a\", \"jurisdictions\": {\"a\": {\"signal\": [\"wss://x/\"], "
        "\"turn\": [{\"node\": \"r\", \"host\": \"h h\"}]}}}",
        "{\"jurisdiction\": \"a\", \"jurisdictions\": {\"a\": {\"signal\": [\"wss://x/\"], "
        "\"turn\": [{\"node\": \"r\", \"host\": \"h\", \"port\": 70000}]}}}",
        "{\"jurisdiction\": \"a b\", \"jurisdictions\": {}}",
        "{\"jurisdiction\": \"a\", \"jurisdictions\": {\"a\": {\"signal\": [\"wss://x/\"], "
        "\"turn\": [{\"node\": \"r\", \"host\": \"h\", \"colour\": 1}]}}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(ar_app_servers_parse(bad[i], strlen(bad[i]), &s, err, sizeof(err)),
                         AR_EPARSE);
        assert_true(err[0] != '\0');
        assert_null(s);
    }
}

static const char *relay_host(json_t *out, size_t i)
{
    json_t *urls = json_object_get(json_array_get(json_object_get(out, "ice_servers"), i), "urls");
    return json_string_value(json_array_get(urls, 0));
}

/* The CSP's connect-src list: each signalling origin once, nothing that could end a directive. */
static void signal_origins(void **state)
{
    (void)state;
    static const char two[] =
        "{\"jurisdiction\": \"a\", \"jurisdictions\": {"
        "\"a\": {\"signal\": [\"wss://s.a:8444/ws\", \"wss://s.a:8444/other\", \"ws://[::1]/\"], "
        "\"turn\": [{\"node\": \"r1\", \"host\": \"h1\"}], \"monitor\": "
        "\"https://m.a:8445/v1/stats\"},"
        "\"b\": {\"signal\": [\"wss://s.a:84/ws\"], \"turn\": [{\"node\": \"r2\", \"host\": "
        "\"h2\"}], \"monitor\": \"https://m.b/v1/stats\"}}}";
    ar_app_servers_t *s;
    char err[200], out[200];
    assert_int_equal(ar_app_servers_parse(two, strlen(two), &s, err, sizeof(err)), 0);
    int n = ar_app_servers_connect_origins(s, out, sizeof(out));
    assert_string_equal(out,
                        " wss://s.a:8444 ws://[::1] https://m.a:8445 wss://s.a:84 https://m.b");
    assert_int_equal(n, (int)strlen(out));
    assert_int_equal(ar_app_servers_connect_origins(s, out, 10), AR_ETOOBIG);
    /* The monitor URL reaches clients of its jurisdiction only. */
    json_t *a = ar_app_servers_for(s, "a", NULL, "k", 1, 1000, 60);
    assert_non_null(a);
    assert_string_equal(json_string_value(json_object_get(a, "monitor")),
                        "https://m.a:8445/v1/stats");
    json_decref(a);
    ar_app_servers_free(s);
    static const char nomon[] =
        "{\"jurisdiction\": \"a\", \"jurisdictions\": {\"a\": {\"signal\": [\"wss://s/\"], "
        "\"turn\": [{\"node\": \"r1\", \"host\": \"h1\"}], \"monitor\": \"http://m/\"}}}";
    assert_int_equal(ar_app_servers_parse(nomon, strlen(nomon), &s, err, sizeof(err)), AR_EPARSE);
    static const char semi[] = "{\"jurisdiction\": \"a\", \"jurisdictions\": {"
                               "\"a\": {\"signal\": [\"wss://x;script-src*/ws\"], "
                               "\"turn\": [{\"node\": \"r1\", \"host\": \"h1\"}]}}}";
    assert_int_equal(ar_app_servers_parse(semi, strlen(semi), &s, err, sizeof(err)), 0);
    assert_int_equal(ar_app_servers_connect_origins(s, out, sizeof(out)), AR_EPARSE);
    ar_app_servers_free(s);
}

static void report(ar_turn_loadboard_t *b, const char *node, double cpu, int64_t at_ms)
{
    ar_turn_load_t l = {.cpu = cpu, .capacity = 100, .at_ms = at_ms};
    snprintf(l.node, sizeof(l.node), "%s", node);
    snprintf(l.jurisdiction, sizeof(l.jurisdiction), "eu");
    assert_int_equal(ar_turn_parse_hostport("192.0.2.1:3478", 14, &l.addr), 0);
    assert_int_equal(ar_turn_loadboard_update(b, &l), 0);
}

static void least_loaded_first(void **state)
{
    (void)state;
    ar_app_servers_t *s;
    char err[200];
    assert_int_equal(ar_app_servers_parse(good, strlen(good), &s, err, sizeof(err)), 0);
    int64_t now = (int64_t)time(NULL);
    /* No reports: configuration order. */
    json_t *out = ar_app_servers_for(s, "eu", NULL, "secret", 6, now, 600);
    assert_non_null(out);
    assert_string_equal(relay_host(out, 0), "turn:ra.eu:3478?transport=udp");
    assert_string_equal(relay_host(out, 2), "turn:rc.eu:3479?transport=udp");
    json_decref(out);
    /* rc idle, ra busy, rb silent for a minute (stale: sorts after those reporting). */
    ar_turn_loadboard_t *b = ar_turn_loadboard_new("anteroom-app", "eu", 15000);
    assert_non_null(b);
    report(b, "ra", 0.9, now * 1000);
    report(b, "rc", 0.1, now * 1000);
    report(b, "rb", 0.0, (now - 60) * 1000);
    assert_int_equal(ar_app_servers_attach_board(s, "eu", b), 0);
    out = ar_app_servers_for(s, "eu", NULL, "secret", 6, now, 600);
    assert_string_equal(relay_host(out, 0), "turn:rc.eu:3479?transport=udp");
    assert_string_equal(relay_host(out, 1), "turn:ra.eu:3478?transport=udp");
    assert_string_equal(relay_host(out, 2), "turn:rb.eu:3478?transport=udp");
    /* Every relay shares one credential the relay's own check accepts. */
    json_t *e = json_array_get(json_object_get(out, "ice_servers"), 0);
    const char *u = json_string_value(json_object_get(e, "username"));
    const char *p = json_string_value(json_object_get(e, "credential"));
    assert_int_equal(ar_turn_rest_verify("secret", 6, u, strlen(u), p, strlen(p), now), 0);
    /* Nothing of another jurisdiction. */
    char *text = json_dumps(out, 0);
    assert_null(strstr(text, ".us"));
    free(text);
    json_decref(out);
    assert_null(ar_app_servers_for(s, "bare", NULL, "secret", 6, now, 600));
    assert_null(ar_app_servers_for(s, "mars", NULL, "secret", 6, now, 600));
    ar_app_servers_free(s);
}

/* The position of url in the file's list of five, or 5. */
static size_t index_of(const char *const url[5], const char *u)
{
    size_t i = 0;
    while (i < 5 && strcmp(url[i], u) != 0)
        i++;
    return i;
}

/* A clinic's clients get the signalling list in an order of the clinic's own: every URL once,
 * the same order for all of them (whatever else their tokens say), the file's order without a
 * clinic; the clinics spread over the first places, and the clinics of one entry, when it
 * fails, over all the others (rendezvous hashing, not a rotation). */
static void signal_placed_per_clinic(void **state)
{
    (void)state;
    static const char five[] =
        "{\"jurisdiction\": \"eu\", \"jurisdictions\": {\"eu\": {\"signal\": ["
        "\"wss://n1.eu:9001/ws\", \"wss://n1.eu:9002/ws\", \"wss://n2.eu:9001/ws\","
        "\"wss://n2.eu:9002/ws\", \"wss://n3.eu/ws\"],"
        "\"turn\": [{\"node\": \"ra\", \"host\": \"ra.eu\"}]}}}";
    const char *const url[5] = {"wss://n1.eu:9001/ws", "wss://n1.eu:9002/ws", "wss://n2.eu:9001/ws",
                                "wss://n2.eu:9002/ws", "wss://n3.eu/ws"};
    ar_app_servers_t *s;
    char err[200];
    assert_int_equal(ar_app_servers_parse(five, strlen(five), &s, err, sizeof(err)), 0);
    int64_t now = (int64_t)time(NULL);
    size_t first[5] = {0}, second[5][5] = {{0}};
    for (int c = 1; c <= 200; c++) {
        char id[24];
        snprintf(id, sizeof(id), "%d", c);
        /* A patient's token (the room's clinic) and a staff token naming the clinic first place
         * their holders alike. */
        ar_token_claims_t patient = {.role = AR_TOKEN_PATIENT}, staff = {.role = AR_TOKEN_STAFF};
        snprintf(patient.clinic, sizeof(patient.clinic), "%s", id);
        snprintf(staff.clinics[0].id, sizeof(staff.clinics[0].id), "%s", id);
        snprintf(staff.clinics[1].id, sizeof(staff.clinics[1].id), "%d", c + 1000);
        staff.nclinics = 2;
        assert_string_equal(ar_app_servers_place(&patient), id);
        assert_string_equal(ar_app_servers_place(&staff), id);
        json_t *a =
            ar_app_servers_for(s, "eu", ar_app_servers_place(&patient), "secret", 6, now, 600);
        json_t *b =
            ar_app_servers_for(s, "eu", ar_app_servers_place(&staff), "secret", 6, now, 600);
        assert_non_null(a);
        assert_non_null(b);
        json_t *sa = json_object_get(a, "signal"), *sb = json_object_get(b, "signal");
        assert_true(json_equal(sa, sb));
        /* Every URL once. */
        assert_int_equal(json_array_size(sa), 5);
        int seen = 0;
        for (size_t i = 0; i < 5; i++) {
            size_t at = index_of(url, json_string_value(json_array_get(sa, i)));
            assert_true(at < 5);
            seen |= 1 << at;
        }
        assert_int_equal(seen, 0x1f);
        size_t f = index_of(url, json_string_value(json_array_get(sa, 0)));
        first[f]++;
        second[f][index_of(url, json_string_value(json_array_get(sa, 1)))]++;
        json_decref(a);
        json_decref(b);
    }
    /* 200 clinics over 5 entries: each gets some, none most (a fixed hash of fixed ids: this
     * cannot flake). The clinics of each entry fall back over at least three of the four
     * others, not all onto one. */
    for (size_t i = 0; i < 5; i++) {
        assert_true(first[i] >= 20 && first[i] <= 80);
        int others = 0;
        for (size_t k = 0; k < 5; k++)
            others += k != i && second[i][k] > 0;
        assert_int_equal(second[i][i], 0);
        assert_true(others >= 3);
    }
    /* No clinic: the file's order. */
    ar_token_claims_t none = {.role = AR_TOKEN_STAFF};
    assert_null(ar_app_servers_place(&none));
    for (int k = 0; k < 2; k++) {
        json_t *out = ar_app_servers_for(s, "eu", k ? "" : NULL, "secret", 6, now, 600);
        for (size_t i = 0; i < 5; i++)
            assert_string_equal(
                json_string_value(json_array_get(json_object_get(out, "signal"), i)), url[i]);
        json_decref(out);
    }
    ar_app_servers_free(s);
}

int main(void)
{
    if (ar_rand_init() != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_and_refuses),
        cmocka_unit_test(least_loaded_first),
        cmocka_unit_test(signal_origins),
        cmocka_unit_test(signal_placed_per_clinic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
