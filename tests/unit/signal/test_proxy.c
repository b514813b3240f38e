/*
 * The client's address behind trusted proxies (src/signal/proxy.c): CIDR parsing and matching,
 * and X-Forwarded-For read from the right, only from a trusted peer; spoofed hops are ignored.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "internal.h"

#include <arpa/inet.h>
#include <string.h>

static void key_of(const char *ip, uint8_t key[16])
{
    ar__sig_cidr_t c;
    assert_int_equal(ar__sig_cidr_parse(ip, &c), 0);
    memcpy(key, c.key, 16);
}

/* Whether the address ip is in the list l of n prefixes is want; a failure names ip. */
static void check_match(const ar__sig_cidr_t *l, size_t n, const char *ip, int want)
{
    uint8_t k[16];
    key_of(ip, k);
    if ((ar__sig_cidr_match(l, n, k) != 0) != want)
        fail_msg("%s %s the trusted list", ip, want ? "not in" : "in");
}

static void test_cidr(void **state)
{
    (void)state;
    ar__sig_cidr_t l[4];
    assert_int_equal(ar__sig_cidr_parse("10.0.0.0/8", &l[0]), 0);
    assert_int_equal(ar__sig_cidr_parse("192.0.2.17", &l[1]), 0);
    assert_int_equal(ar__sig_cidr_parse("2001:db8:1::/48", &l[2]), 0);
    assert_int_equal(ar__sig_cidr_parse("172.16.0.0/12", &l[3]), 0);
    static const struct {
        const char *ip;
        int in;
    } cases[] = {
        {"10.255.1.2", 1},
        {"11.0.0.1", 0},
        {"192.0.2.17", 1},
        {"192.0.2.16", 0},
        {"172.31.255.255", 1},
        {"172.32.0.0", 0},
        {"2001:db8:1:ffff::9", 1},
        {"2001:db8:2::9", 0},
        /* An IPv6 form embedding a trusted IPv4 address is not that address (6to4 of 10.0.0.1). */
        {"2002:a00:1::", 0},
        /* An IPv4 peer on a dual-stack socket is ::ffff:a.b.c.d and matches its IPv4 prefix. */
        {"::ffff:10.1.2.3", 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_match(l, 4, cases[i].ip, cases[i].in);
    /* 0/0 trusts every IPv4 address and no IPv6 one. */
    ar__sig_cidr_t all4;
    assert_int_equal(ar__sig_cidr_parse("0.0.0.0/0", &all4), 0);
    check_match(&all4, 1, "203.0.113.1", 1);
    check_match(&all4, 1, "2001:db8::1", 0);
    ar__sig_cidr_t bad;
    const char *bads[] = {"",           "10.0.0.0/33",  "10.0.0.0/",   "10.0.0.0/8x", "10.0.0/8",
                          "fe80::/129", "host.example", "10.0.0.0/-1", "1.2.3.4 "};
    for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++)
        assert_int_equal(ar__sig_cidr_parse(bads[i], &bad), AR_ECONFIG);
}

/* Resolves xff as seen from peer with the trusted list l; returns the key's text. */
static const char *client(const ar__sig_cidr_t *l, size_t n, const char *peer, const char *xff,
                          int cut, int *used)
{
    static char txt[INET6_ADDRSTRLEN];
    uint8_t p[16], out[16];
    key_of(peer, p);
    *used = ar__sig_client_key(p, xff, strlen(xff), cut, l, n, out);
    static const uint8_t v4[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(out, v4, 12) == 0)
        inet_ntop(AF_INET, out + 12, txt, sizeof(txt));
    else
        inet_ntop(AF_INET6, out, txt, sizeof(txt));
    return txt;
}

static void test_forwarded(void **state)
{
    (void)state;
    ar__sig_cidr_t l[2];
    assert_int_equal(ar__sig_cidr_parse("10.0.0.0/8", &l[0]), 0);
    assert_int_equal(ar__sig_cidr_parse("2001:db8:ffff::/48", &l[1]), 0);
    int used;
    /* Behind one load balancer. */
    assert_string_equal(client(l, 2, "10.0.0.5", "203.0.113.7", 0, &used), "203.0.113.7");
    assert_int_equal(used, 1);
    /* Spoofing: an untrusted peer's header is ignored, whatever it says. */
    assert_string_equal(client(l, 2, "198.51.100.1", "203.0.113.7", 0, &used), "198.51.100.1");
    assert_int_equal(used, 0);
    assert_string_equal(client(l, 2, "198.51.100.1", "10.0.0.9", 0, &used), "198.51.100.1");
    /* Without a trusted list nothing is read. */
    assert_string_equal(client(l, 0, "10.0.0.5", "203.0.113.7", 0, &used), "10.0.0.5");
    assert_int_equal(used, 0);
    /* A client that prepends made-up hops still counts as itself (the last untrusted hop). */
    assert_string_equal(client(l, 2, "10.0.0.5", "1.1.1.1, 8.8.8.8,203.0.113.7", 0, &used),
                        "203.0.113.7");
    /* Two trusted proxies in a row, then the client. */
    assert_string_equal(client(l, 2, "10.0.0.5", "9.9.9.9, 203.0.113.7, 10.0.0.6", 0, &used),
                        "203.0.113.7");
    /* A client claiming to be a trusted proxy only moves the answer to its own address. */
    assert_string_equal(client(l, 2, "10.0.0.5", "203.0.113.8, 10.1.1.1, 203.0.113.7", 0, &used),
                        "203.0.113.7");
    /* Ports and IPv6 forms. */
    assert_string_equal(client(l, 2, "10.0.0.5", "203.0.113.7:51234", 0, &used), "203.0.113.7");
    assert_string_equal(client(l, 2, "2001:db8:ffff::2", "[2001:db8::77]:443", 0, &used),
                        "2001:db8::77");
    assert_string_equal(client(l, 2, "10.0.0.5", " 2001:db8::77 ", 0, &used), "2001:db8::77");
    /* Garbage at the right: the proxy itself is counted; further left: the hop to its right. */
    assert_string_equal(client(l, 2, "10.0.0.5", "unknown", 0, &used), "10.0.0.5");
    assert_int_equal(used, 0);
    assert_string_equal(client(l, 2, "10.0.0.5", "203.0.113.7, unknown, 10.0.0.6", 0, &used),
                        "10.0.0.6");
    assert_string_equal(client(l, 2, "10.0.0.5", "", 0, &used), "10.0.0.5");
    assert_string_equal(client(l, 2, "10.0.0.5", "203.0.113.7,", 0, &used), "10.0.0.5");
    /* All hops trusted: the leftmost. */
    assert_string_equal(client(l, 2, "10.0.0.5", "10.0.0.7, 10.0.0.6", 0, &used), "10.0.0.7");
    /* A cut header: its leftmost entry may be a fragment and is never used. */
    assert_string_equal(client(l, 2, "10.0.0.5", "3.0.113.7, 10.0.0.6", 1, &used), "10.0.0.6");
    assert_string_equal(client(l, 2, "10.0.0.5", "3.0.113.7, 198.51.100.4", 1, &used),
                        "198.51.100.4");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cidr),
        cmocka_unit_test(test_forwarded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
