/*
 * Relayed packets and bytes are counted by the client's transport (udp, tcp, tls), which is what
 * the daemon's metrics are labelled with: a TLS client's ChannelData and the peer's answers count
 * under tls, never under udp.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "turn_test.h"

#include <string.h>

static void relay_one_each_way(tc_t *c)
{
    assert_int_equal(tc_allocate(c), 0);
    assert_int_equal(tc_channel_bind(c, 0x4001, "1.2.3.9", 7000), 0);
    uint8_t cd[8] = {0x40, 0x01, 0, 3, 'a', 'b', 'c', 0};
    ar_turn_engine_on_client(c->e, &c->t, cd, sizeof(cd));
    tc_from_peer(c, "1.2.3.9", 7000, "wxyz", 4);
}

static void check(const ar_turn_stats_t *s, unsigned tr, uint64_t allocs)
{
    for (unsigned i = 0; i < AR_TURN_NTR; i++) {
        const ar_turn_tr_stats_t *t = &s->tr[i];
        bool mine = i == tr;
        assert_int_equal(t->allocations, mine ? allocs : 0);
        assert_int_equal(t->allocs_total, mine ? allocs : 0);
        assert_int_equal(t->pkts_out, mine ? 1 : 0);
        assert_int_equal(t->bytes_out, mine ? 3 : 0);
        assert_int_equal(t->pkts_in, mine ? 1 : 0);
        assert_int_equal(t->bytes_in, mine ? 4 : 0);
    }
    assert_int_equal(ar_turn_stats_total(s).pkts_out, 1);
    assert_int_equal(ar_turn_stats_total(s).bytes_in, 4);
}

static void test_by_transport(void **state)
{
    (void)state;
    static const struct {
        uint8_t proto, tls;
        unsigned tr;
    } cases[] = {{AR_TURN_PROTO_UDP, 0, AR_TURN_TR_UDP},
                 {AR_TURN_PROTO_TCP, 0, AR_TURN_TR_TCP},
                 {AR_TURN_PROTO_TCP, 1, AR_TURN_TR_TLS}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tc_t c;
        ar_turn_opts_t o = {0};
        tc_init(&c, &o);
        c.t.proto = cases[i].proto;
        c.t.tls = cases[i].tls;
        c.t.conn = c.t.proto == AR_TURN_PROTO_TCP ? 3 : 0;
        assert_int_equal(ar_turn_tuple_tr(&c.t), cases[i].tr);
        relay_one_each_way(&c);
        check(ar_turn_engine_stats(c.e), cases[i].tr, 1);
        /* RFC 6062 data connections report bytes only, under their own transport. */
        ar_turn_engine_count_stream(c.e, &c.t, 1, 100);
        ar_turn_engine_count_stream(c.e, &c.t, 0, 50);
        const ar_turn_tr_stats_t *t = &ar_turn_engine_stats(c.e)->tr[cases[i].tr];
        assert_int_equal(t->bytes_out, 103);
        assert_int_equal(t->bytes_in, 54);
        assert_int_equal(t->pkts_out, 1);
        /* The allocation's end takes it off its transport's gauge. */
        ar_turn_engine_client_closed(c.e, &c.t);
        assert_int_equal(ar_turn_engine_stats(c.e)->tr[cases[i].tr].allocations, 0);
        assert_int_equal(ar_turn_engine_stats(c.e)->tr[cases[i].tr].allocs_total, 1);
        tc_free(&c);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_by_transport),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
