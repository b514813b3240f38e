/*
 * Peer address classifier and policy (mission S6): every class in IPv4 and IPv6, and every IPv4
 * case again in each IPv6 form that embeds it (mapped, compatible, NAT64, 6to4, Teredo); then
 * denied/allowed ranges and the allow-loopback-peers option.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "anteroom/addr_policy.h"
#include "anteroom/alloc.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

static const struct {
    const char *ip;
    ar_addr_class_t cls;
} v4_cases[] = {
    {"8.8.8.8", AR_ADDR_PUBLIC},
    {"1.1.1.1", AR_ADDR_PUBLIC},
    {"100.63.255.255", AR_ADDR_PUBLIC}, /* just below 100.64/10 */
    {"100.128.0.0", AR_ADDR_PUBLIC},    /* just above it */
    {"172.15.255.255", AR_ADDR_PUBLIC},
    {"172.32.0.1", AR_ADDR_PUBLIC},
    {"169.253.1.1", AR_ADDR_PUBLIC},
    {"198.20.0.1", AR_ADDR_PUBLIC},
    {"223.255.255.255", AR_ADDR_PUBLIC},
    {"127.0.0.1", AR_ADDR_LOOPBACK},
    {"127.255.255.254", AR_ADDR_LOOPBACK},
    {"0.0.0.0", AR_ADDR_UNSPECIFIED},
    {"10.0.0.1", AR_ADDR_PRIVATE},
    {"10.255.255.255", AR_ADDR_PRIVATE},
    {"172.16.0.1", AR_ADDR_PRIVATE},
    {"172.31.255.255", AR_ADDR_PRIVATE},
    {"192.168.1.1", AR_ADDR_PRIVATE},
    {"100.64.0.1", AR_ADDR_SHARED},
    {"100.127.255.255", AR_ADDR_SHARED},
    {"169.254.169.254", AR_ADDR_LINK_LOCAL}, /* cloud metadata */
    {"169.254.0.1", AR_ADDR_LINK_LOCAL},
    {"224.0.0.1", AR_ADDR_MULTICAST},
    {"239.255.255.250", AR_ADDR_MULTICAST},
    {"255.255.255.255", AR_ADDR_BROADCAST},
    {"0.1.2.3", AR_ADDR_RESERVED},
    {"192.0.0.8", AR_ADDR_RESERVED},
    {"192.0.2.1", AR_ADDR_RESERVED},
    {"192.88.99.1", AR_ADDR_RESERVED},
    {"198.18.0.1", AR_ADDR_RESERVED},
    {"198.19.255.255", AR_ADDR_RESERVED},
    {"198.51.100.7", AR_ADDR_RESERVED},
    {"203.0.113.1", AR_ADDR_RESERVED},
    {"240.0.0.1", AR_ADDR_RESERVED},
    {"255.255.255.254", AR_ADDR_RESERVED},
};

static const struct {
    const char *ip;
    ar_addr_class_t cls;
} v6_cases[] = {
    {"2606:4700::1111", AR_ADDR_PUBLIC},
    {"2a00:1450:4001::1", AR_ADDR_PUBLIC},
    {"64:ff9b:1::808:808", AR_ADDR_PUBLIC}, /* local NAT64, /96 position: 8.8.8.8 */
    {"::1", AR_ADDR_LOOPBACK},
    {"::", AR_ADDR_UNSPECIFIED},
    {"fc00::1", AR_ADDR_ULA},
    {"fd12:3456::1", AR_ADDR_ULA},
    {"fe80::1", AR_ADDR_LINK_LOCAL},
    {"febf:ffff::1", AR_ADDR_LINK_LOCAL},
    {"ff02::1", AR_ADDR_MULTICAST},
    {"ff0e::1", AR_ADDR_MULTICAST},
    {"2001:db8::1", AR_ADDR_RESERVED},
    {"2001:2::1", AR_ADDR_RESERVED}, /* benchmarking, inside 2001::/23 */
    {"100::1", AR_ADDR_RESERVED},
    {"3fff::1", AR_ADDR_RESERVED},
    {"fec0::1", AR_ADDR_RESERVED},
    {"4000::1", AR_ADDR_RESERVED},
    {"64:ff9b:0:1::1", AR_ADDR_RESERVED},       /* in 64:ff9b::/32 but not the /96 */
    {"64:ff9b:1:a00:0:100::", AR_ADDR_PRIVATE}, /* local NAT64, /48 position: 10.0.0.1 */
    {"64:ff9b:1:0:100::", AR_ADDR_RESERVED},    /* u-octet set: no valid RFC 6052 form */
    /* Teredo, RFC 4380's example: client 192.0.2.45 behind server 65.54.227.120. */
    {"2001:0:4136:e378:8000:63bf:3fff:fdd2", AR_ADDR_RESERVED},
};

static socklen_t make(const char *ip, uint16_t port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        return sizeof(*s4);
    }
    assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(port);
    return sizeof(*s6);
}

static void check_class(const char *ip, ar_addr_class_t want)
{
    struct sockaddr_storage ss;
    make(ip, 3478, &ss);
    ar_addr_class_t got = ar_addr_classify((struct sockaddr *)&ss);
    if (got != want)
        print_error("%s: got %s, want %s\n", ip, ar_addr_class_name(got), ar_addr_class_name(want));
    assert_int_equal(got, want);
    int rc = ar_addr_policy_check(NULL, (struct sockaddr *)&ss);
    assert_int_equal(rc, want == AR_ADDR_PUBLIC ? 0 : AR_EPERM);
}

/* Writes the IPv6 forms of an IPv4 address; returns how many. */
static int v6_forms(const char *v4, char forms[6][64])
{
    uint8_t b[4];
    assert_int_equal(inet_pton(AF_INET, v4, b), 1);
    int n = 0;
    snprintf(forms[n++], 64, "::ffff:%s", v4);   /* mapped */
    snprintf(forms[n++], 64, "::ffff:0:%s", v4); /* translated (SIIT) */
    snprintf(forms[n++], 64, "64:ff9b::%s", v4); /* NAT64 well-known prefix */
    snprintf(forms[n++], 64, "2002:%02x%02x:%02x%02x::1", b[0], b[1], b[2], b[3]); /* 6to4 */
    snprintf(forms[n++], 64, "2001:0:4136:e378:8000:63bf:%02x%02x:%02x%02x",       /* Teredo */
             (uint8_t)~b[0], (uint8_t)~b[1], (uint8_t)~b[2], (uint8_t)~b[3]);
    if (strcmp(v4, "0.0.0.0") != 0 && strcmp(v4, "0.0.0.1") != 0)
        snprintf(forms[n++], 64, "::%s", v4); /* IPv4-compatible */
    return n;
}

static void test_classes_v4_and_embedded(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(v4_cases) / sizeof(v4_cases[0]); i++) {
        check_class(v4_cases[i].ip, v4_cases[i].cls);
        char forms[6][64];
        int n = v6_forms(v4_cases[i].ip, forms);
        for (int f = 0; f < n; f++) {
            check_class(forms[f], v4_cases[i].cls);
            /* Canonicalising gives back the IPv4 address and keeps the port. */
            struct sockaddr_storage ss, canon, want;
            make(forms[f], 5000, &ss);
            make(v4_cases[i].ip, 5000, &want);
            assert_int_equal(ar_addr_canonical((struct sockaddr *)&ss, &canon), 1);
            assert_memory_equal(&canon, &want, sizeof(struct sockaddr_in));
        }
        /* The local-use NAT64 prefix at its /96 position, unless another reading is stricter. */
        char local[64];
        snprintf(local, sizeof(local), "64:ff9b:1::%s", v4_cases[i].ip);
        if (strcmp(v4_cases[i].ip, "0.0.0.0") != 0)
            check_class(local, v4_cases[i].cls);
    }
}

static void test_classes_v6(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(v6_cases) / sizeof(v6_cases[0]); i++)
        check_class(v6_cases[i].ip, v6_cases[i].cls);
    struct sockaddr_storage ss, canon;
    make("2606:4700::1111", 1, &ss);
    assert_int_equal(ar_addr_canonical((struct sockaddr *)&ss, &canon), 0);
    assert_memory_equal(&ss, &canon, sizeof(struct sockaddr_in6));
    struct sockaddr un = {.sa_family = AF_UNIX};
    assert_int_equal(ar_addr_classify(&un), AR_ADDR_RESERVED);
    assert_int_equal(ar_addr_canonical(&un, &canon), AR_EINVAL);
    assert_int_equal(ar_addr_policy_check(NULL, &un), AR_EPERM);
    assert_string_equal(ar_addr_class_name(AR_ADDR_LINK_LOCAL), "link-local");
    assert_string_equal(ar_addr_class_name((ar_addr_class_t)99), "unknown");
}

static int check(const ar_addr_policy_t *p, const char *ip)
{
    struct sockaddr_storage ss;
    make(ip, 9, &ss);
    return ar_addr_policy_check(p, (struct sockaddr *)&ss);
}

static int add(ar_addr_policy_t *p, int allow, const char *spec)
{
    return ar_addr_policy_add(p, allow, spec, strlen(spec));
}

static void test_policy_default_and_loopback(void **state)
{
    (void)state;
    ar_addr_policy_t *p;
    assert_int_equal(ar_addr_policy_new(&p), 0);
    for (size_t i = 0; i < sizeof(v4_cases) / sizeof(v4_cases[0]); i++)
        assert_int_equal(check(p, v4_cases[i].ip),
                         v4_cases[i].cls == AR_ADDR_PUBLIC ? 0 : AR_EPERM);
    for (size_t i = 0; i < sizeof(v6_cases) / sizeof(v6_cases[0]); i++)
        assert_int_equal(check(p, v6_cases[i].ip),
                         v6_cases[i].cls == AR_ADDR_PUBLIC ? 0 : AR_EPERM);

    assert_int_equal(ar_addr_policy_option(p, "allow-loopback-peers", NULL), 0);
    assert_int_equal(check(p, "127.0.0.1"), 0);
    assert_int_equal(check(p, "::1"), 0);
    assert_int_equal(check(p, "::ffff:127.0.0.1"), 0);
    assert_int_equal(check(p, "10.0.0.1"), AR_EPERM);
    assert_int_equal(check(p, "169.254.169.254"), AR_EPERM);
    assert_int_equal(ar_addr_policy_option(p, "allow-loopback-peers", "off"), 0);
    assert_int_equal(check(p, "127.0.0.1"), AR_EPERM);
    assert_int_equal(ar_addr_policy_option(p, "allow-loopback-peers", "Yes"), 0);
    assert_int_equal(check(p, "127.0.0.1"), 0);
    assert_int_equal(ar_addr_policy_option(p, "allow-loopback-peers", "maybe"), AR_ECONFIG);
    assert_int_equal(ar_addr_policy_option(p, "listening-port", "3478"), AR_EUNKNOWNKEY);
    ar_addr_policy_free(p);
    ar_addr_policy_free(NULL);
}

static void test_policy_ranges(void **state)
{
    (void)state;
    ar_addr_policy_t *p;
    assert_int_equal(ar_addr_policy_new(&p), 0);
    /* A denied range reaches every form that embeds it. */
    assert_int_equal(ar_addr_policy_option(p, "denied-peer-ip", "8.8.8.0-8.8.8.255"), 0);
    assert_int_equal(check(p, "8.8.8.8"), AR_EPERM);
    assert_int_equal(check(p, "::ffff:8.8.8.8"), AR_EPERM);
    assert_int_equal(check(p, "64:ff9b::8.8.8.8"), AR_EPERM);
    assert_int_equal(check(p, "2002:808:808::1"), AR_EPERM);
    assert_int_equal(check(p, "8.8.4.4"), 0);
    /* Allowed overrides denied... */
    assert_int_equal(add(p, 1, "8.8.8.8"), 0);
    assert_int_equal(check(p, "8.8.8.8"), 0);
    assert_int_equal(check(p, "8.8.8.9"), AR_EPERM);
    /* ...and the default classes, but only for what it names. */
    assert_int_equal(ar_addr_policy_option(p, "allowed-peer-ip", " 10.0.0.5 "), 0);
    assert_int_equal(check(p, "10.0.0.5"), 0);
    assert_int_equal(check(p, "::ffff:10.0.0.5"), 0);
    assert_int_equal(check(p, "10.0.0.6"), AR_EPERM);
    assert_int_equal(add(p, 1, "192.168.0.0/16"), 0);
    assert_int_equal(check(p, "192.168.5.5"), 0);
    assert_int_equal(check(p, "192.169.0.1"), 0); /* public anyway */
    assert_int_equal(check(p, "172.16.0.1"), AR_EPERM);
    /* IPv6 ranges and prefixes. */
    assert_int_equal(add(p, 0, "2606:4700::-2606:4700::ffff"), 0);
    assert_int_equal(check(p, "2606:4700::1111"), AR_EPERM);
    assert_int_equal(check(p, "2606:4700::1:0"), 0);
    assert_int_equal(add(p, 1, "fd00::/8"), 0);
    assert_int_equal(check(p, "fd12::1"), 0);
    assert_int_equal(check(p, "fc00::1"), AR_EPERM);
    assert_int_equal(add(p, 0, "::/0"), 0); /* deny all IPv6 */
    assert_int_equal(check(p, "2a00:1450:4001::1"), AR_EPERM);
    assert_int_equal(check(p, "fd12::1"), 0); /* still allowed */
    ar_addr_policy_free(p);
}

static void test_policy_bad_entries(void **state)
{
    (void)state;
    ar_addr_policy_t *p;
    assert_int_equal(ar_addr_policy_new(&p), 0);
    static const char *const bad[] = {
        "",
        "  ",
        "bogus",
        "10.0.0.5-10.0.0.1",
        "10.0.0.1-::1",
        "10.0.0.0/33",
        "::/129",
        "10.0.0.1/",
        "10.0.0.1/x",
        "10.0.0.1-",
        "-10.0.0.1",
        "1.2.3.4.5",
        "fe80::1%eth0",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(add(p, 0, bad[i]), AR_ECONFIG);
    assert_int_equal(ar_addr_policy_option(p, "denied-peer-ip", NULL), AR_ECONFIG);
    /* A length that stops inside the string is honoured. */
    assert_int_equal(ar_addr_policy_add(p, 0, "9.9.9.9-garbage", 7), 0);
    assert_int_equal(check(p, "9.9.9.9"), AR_EPERM);
    /* The entry count is capped. */
    int rc = 0;
    for (int i = 0; i < 5000 && rc == 0; i++)
        rc = add(p, 1, "8.8.8.8");
    assert_int_equal(rc, AR_ETOOBIG);
    ar_addr_policy_free(p);

    /* Allocation failures surface as AR_ENOMEM. */
    ar_alloc_fail_after(0);
    assert_int_equal(ar_addr_policy_new(&p), AR_ENOMEM);
    ar_alloc_fail_after(-1);
    assert_int_equal(ar_addr_policy_new(&p), 0);
    ar_alloc_fail_after(0);
    assert_int_equal(add(p, 0, "8.8.8.8"), AR_ENOMEM);
    ar_alloc_fail_after(-1);
    assert_int_equal(check(p, "8.8.8.8"), 0);
    ar_addr_policy_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classes_v4_and_embedded),     cmocka_unit_test(test_classes_v6),
        cmocka_unit_test(test_policy_default_and_loopback), cmocka_unit_test(test_policy_ranges),
        cmocka_unit_test(test_policy_bad_entries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
