/* The relay port pool: range, even ports, RFC 8656 reservations and their tokens. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "turn/daemon.h"

#include "anteroom/alloc.h"
#include "anteroom/rand.h"

#include <string.h>

static ar__turn_ports_t *pool_new(uint16_t min, uint16_t max)
{
    ar__turn_ports_t *p = ar_calloc(1, sizeof(*p));
    pthread_mutex_init(&p->lock, NULL);
    p->min = min;
    p->max = max;
    p->used = ar_calloc((size_t)(max - min) + 1, 1);
    return p;
}

static void pool_free(ar__turn_ports_t *p)
{
    ar_free(p->used);
    pthread_mutex_destroy(&p->lock);
    ar_free(p);
}

static void test_range_and_exhaustion(void **state)
{
    (void)state;
    ar__turn_ports_t *p = pool_new(50000, 50003);
    ar_turn_relay_req_t req = {0};
    uint16_t port, seen[4];
    uint64_t token;
    int fam = 4;
    for (int i = 0; i < 4; i++) {
        assert_int_equal(ar__turn_ports_take(p, &req, &fam, &port, &token), 0);
        assert_true(port >= 50000 && port <= 50003);
        assert_int_equal(token, 0);
        for (int j = 0; j < i; j++)
            assert_int_not_equal(seen[j], port);
        seen[i] = port;
    }
    assert_int_equal(ar__turn_ports_take(p, &req, &fam, &port, &token), AR_EQUOTA);
    ar__turn_ports_give(p, seen[2], 0);
    assert_int_equal(ar__turn_ports_take(p, &req, &fam, &port, &token), 0);
    assert_int_equal(port, seen[2]);
    pool_free(p);
}

static void test_even_port_and_reservation(void **state)
{
    (void)state;
    ar__turn_ports_t *p = pool_new(50001, 50010);
    uint16_t port, port2;
    uint64_t token, token2;
    int fam = 6;
    ar_turn_relay_req_t even = {.even_port = 1};
    assert_int_equal(ar__turn_ports_take(p, &even, &fam, &port, &token), 0);
    assert_int_equal(port % 2, 0);
    ar_turn_relay_req_t resv = {.even_port = 1, .reserve_next = 1};
    assert_int_equal(ar__turn_ports_take(p, &resv, &fam, &port, &token), 0);
    assert_int_equal(port % 2, 0);
    assert_int_not_equal(token, 0);
    /* The token redeems port + 1, once, with the reservation's family. */
    ar_turn_relay_req_t redeem = {.token = token};
    int got_fam = 0;
    assert_int_equal(ar__turn_ports_take(p, &redeem, &got_fam, &port2, &token2), 0);
    assert_int_equal(port2, port + 1);
    assert_int_equal(got_fam, 6);
    assert_int_equal(ar__turn_ports_take(p, &redeem, &got_fam, &port2, &token2), AR_ENOTFOUND);
    ar_turn_relay_req_t bogus = {.token = 12345};
    assert_int_equal(ar__turn_ports_take(p, &bogus, &got_fam, &port2, &token2), AR_ENOTFOUND);
    /* Giving a port back with its token cancels the reservation and frees both ports. */
    assert_int_equal(ar__turn_ports_take(p, &resv, &fam, &port, &token), 0);
    ar__turn_ports_give(p, port, token);
    redeem.token = token;
    assert_int_equal(ar__turn_ports_take(p, &redeem, &got_fam, &port2, &token2), AR_ENOTFOUND);
    assert_int_equal(p->used[port - p->min], 0);
    assert_int_equal(p->used[port + 1 - p->min], 0);
    pool_free(p);
}

int main(void)
{
    if (ar_rand_init() != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_range_and_exhaustion),
        cmocka_unit_test(test_even_port_and_reservation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
