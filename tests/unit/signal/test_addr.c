/*
 * The per-address counts (src/signal/addr.c): exact per address (IPv4) or /64 (IPv6), so that
 * addresses whose hashes collide never share a count, checked against a plain model through
 * many adds and releases (deletion by backward shift).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "internal.h"

#include <sodium.h>
#include <string.h>

static void key_of(const char *ip, uint8_t key[16])
{
    ar__sig_cidr_t c;
    assert_int_equal(ar__sig_cidr_parse(ip, &c), 0);
    memcpy(key, c.key, 16);
}

/* The bucket the counts used to share: FNV-1a over the /64 (or the IPv4 address), mod 4096. */
static uint32_t old_bucket(const uint8_t key[16])
{
    static const uint8_t v4[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    const uint8_t *p = memcmp(key, v4, 12) == 0 ? key + 12 : key;
    size_t n = p == key ? 8 : 4;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h % 4096;
}

/* An attacker's /48 holds 65,536 /64 prefixes: one of them lands in the victim's old bucket. */
static void test_collision_is_not_shared(void **state)
{
    (void)state;
    ar__sig_addrs_t t = {0};
    uint8_t victim[16], attacker[16];
    key_of("2001:db8:c11:1::7", victim);
    key_of("2001:db8:bad::1", attacker);
    uint32_t i;
    for (i = 0; i < 65536; i++) {
        attacker[6] = (uint8_t)(i >> 8);
        attacker[7] = (uint8_t)i;
        if (old_bucket(attacker) == old_bucket(victim))
            break;
    }
    assert_true(i < 65536);
    assert_int_not_equal(memcmp(attacker, victim, 8), 0);
    /* The attacker fills its count first; the victim still gets its own. */
    assert_true(ar__sig_addrs_add(&t, attacker, 2) > 0);
    assert_true(ar__sig_addrs_add(&t, attacker, 2) > 0);
    assert_int_equal(ar__sig_addrs_add(&t, attacker, 2), AR_EQUOTA);
    assert_true(ar__sig_addrs_add(&t, victim, 2) > 0);
    assert_int_equal(ar__sig_addrs_count(&t, victim), 1);
    assert_int_equal(ar__sig_addrs_count(&t, attacker), 2);
    /* Same for IPv4: a colliding address (found by search) is counted apart. */
    uint8_t v4a[16], v4b[16];
    key_of("198.51.100.7", v4a);
    key_of("203.0.113.0", v4b);
    for (i = 0; i < 65536; i++) {
        v4b[14] = (uint8_t)(i >> 8);
        v4b[15] = (uint8_t)i;
        if (old_bucket(v4b) == old_bucket(v4a))
            break;
    }
    assert_true(i < 65536);
    assert_true(ar__sig_addrs_add(&t, v4b, 1) > 0);
    assert_true(ar__sig_addrs_add(&t, v4a, 1) > 0);
    ar__sig_addrs_free(&t);
}

static void test_prefixes(void **state)
{
    (void)state;
    ar__sig_addrs_t t = {0};
    uint8_t a[16], b[16], c[16], d[16];
    key_of("2001:db8:1:2::1", a);
    key_of("2001:db8:1:2:ffff::9", b); /* the same /64 */
    key_of("2001:db8:1:3::1", c);      /* the next /64 */
    key_of("192.0.2.1", d);
    int ea = ar__sig_addrs_add(&t, a, 2);
    assert_true(ea > 0);
    assert_int_equal(ar__sig_addrs_add(&t, b, 2), ea);
    assert_int_equal(ar__sig_addrs_add(&t, b, 2), AR_EQUOTA);
    assert_true(ar__sig_addrs_add(&t, c, 2) > 0);
    assert_true(ar__sig_addrs_add(&t, d, 2) > 0);
    assert_int_equal(ar__sig_addrs_count(&t, a), 2);
    ar__sig_addrs_release(&t, (uint16_t)ea);
    assert_int_equal(ar__sig_addrs_count(&t, b), 1);
    ar__sig_addrs_release(&t, (uint16_t)ea);
    assert_int_equal(ar__sig_addrs_count(&t, a), 0);
    assert_int_equal(ar__sig_addrs_count(&t, c), 1);
    assert_int_equal(ar__sig_addrs_count(&t, d), 1);
    ar__sig_addrs_free(&t);
}

/* Random adds and releases over 3,000 addresses against a plain array of counts. */
#define N_ADDR 3000
static void test_model(void **state)
{
    (void)state;
    static uint8_t keys[N_ADDR][16];
    static uint32_t want[N_ADDR];
    static uint16_t held[N_ADDR][3]; /* the tags of each address's counted connections */
    ar__sig_addrs_t t = {0};
    memset(want, 0, sizeof(want));
    for (uint32_t i = 0; i < N_ADDR; i++) {
        key_of("203.0.113.0", keys[i]);
        keys[i][13] = (uint8_t)(i >> 8);
        keys[i][14] = (uint8_t)i;
    }
    uint32_t rnd = 12345;
    for (int step = 0; step < 200000; step++) {
        rnd = rnd * 1103515245u + 12345u;
        uint32_t k = (rnd >> 8) % N_ADDR;
        if ((rnd >> 30) & 1) {
            int e = ar__sig_addrs_add(&t, keys[k], 3);
            if (want[k] == 3) {
                assert_int_equal(e, AR_EQUOTA);
            } else {
                assert_true(e > 0);
                held[k][want[k]++] = (uint16_t)e;
            }
        } else if (want[k]) {
            ar__sig_addrs_release(&t, held[k][--want[k]]);
        }
        if (step % 5000 == 0)
            for (uint32_t j = 0; j < N_ADDR; j++)
                assert_int_equal(ar__sig_addrs_count(&t, keys[j]), want[j]);
    }
    for (uint32_t j = 0; j < N_ADDR; j++)
        while (want[j])
            ar__sig_addrs_release(&t, held[j][--want[j]]);
    assert_int_equal(t.live, 0);
    for (uint32_t j = 0; j < t.nslots; j++)
        assert_int_equal(t.slots[j], 0);
    ar__sig_addrs_free(&t);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_collision_is_not_shared),
        cmocka_unit_test(test_prefixes),
        cmocka_unit_test(test_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
