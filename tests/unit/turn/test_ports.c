/* The relay port pool: range, even ports, RFC 8656 reservations and their tokens. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "turn/daemon.h"

#include "anteroom/alloc.h"
#include "anteroom/rand.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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

/* When the pool may hold ports unbound: never when the kernel could hand one of them out. */
static void test_lazy_ok_table(void **state)
{
    (void)state;
    static const struct {
        uint16_t min, max;
        const char *eph, *resv;
        bool want;
    } rows[] = {
        {10000, 29999, "32768\t60999\n", "\n", true},  /* the bench's range: below */
        {61000, 65535, "32768\t60999\n", "", true},    /* above */
        {49152, 65535, "32768\t60999\n", "\n", false}, /* the default range overlaps */
        {10000, 32768, "32768\t60999\n", "", false},   /* one port in common */
        {60999, 61010, "32768\t60999\n", "", false},
        {49152, 65535, "32768\t60999\n", "49152-65535\n", true}, /* reserved */
        {49152, 65535, "32768\t60999\n", "8080,49152-60999\n", true},
        {49152, 65535, "32768\t60999\n", "49152-60998\n", false}, /* one not reserved */
        {49152, 49153, "32768\t60999\n", "49152,49153", true},
        {49152, 49153, "32768\t60999\n", "49152", false},
        {10000, 29999, "", "", false}, /* unreadable or odd: bind at Allocate */
        {10000, 29999, "junk", "", false},
        {10000, 29999, NULL, NULL, false},
        {10000, 29999, "40000 30000", "", false}, /* not a range */
        {1024, 1024, "1024 1024", NULL, false},
        {1025, 1025, "1024 1024", NULL, true},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        bool got = ar__turn_ports_lazy_ok(rows[i].min, rows[i].max, rows[i].eph, rows[i].resv);
        if (got != rows[i].want)
            fail_msg("row %zu: %u-%u got %d", i, rows[i].min, rows[i].max, got);
    }
}

/* ar__turn_relay_socket binds the port it is given, and says when someone else holds it. */
static void test_relay_socket(void **state)
{
    (void)state;
    /* A port the kernel picks (ephemeral, so no fixed port is taken from anyone). */
    int holder = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(holder >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(holder, (struct sockaddr *)&sin, sizeof(sin)), 0);
    socklen_t sl = sizeof(sin);
    assert_int_equal(getsockname(holder, (struct sockaddr *)&sin, &sl), 0);
    ar_turn_addr_t local = {.family = 4, .port = ntohs(sin.sin_port), .ip = {127, 0, 0, 1}};
    int fd = -1;
    assert_int_equal(ar__turn_relay_socket(&local, false, &fd), AR_EADDRINUSE);
    assert_int_equal(fd, -1);
    close(holder);
    assert_int_equal(ar__turn_relay_socket(&local, true, &fd), 0);
    assert_true(fd >= 0);
    int v = 0;
    sl = sizeof(v);
    assert_int_equal(getsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &v, &sl), 0);
    assert_int_equal(v, IP_PMTUDISC_DO); /* DONT-FRAGMENT asked for */
    struct sockaddr_in got;
    sl = sizeof(got);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&got, &sl), 0);
    assert_int_equal(ntohs(got.sin_port), local.port);
    close(fd);
}

int main(void)
{
    if (ar_rand_init() != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_range_and_exhaustion),
        cmocka_unit_test(test_even_port_and_reservation),
        cmocka_unit_test(test_lazy_ok_table),
        cmocka_unit_test(test_relay_socket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
