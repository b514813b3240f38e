/*
 * Payload size limits of the TURN engine (AR_TURN_MAX_UDP_PAYLOAD): what a client or peer may
 * send is relayed whole up to the limit and refused past it, counted in oversize_dropped, never
 * dropped silently; and ChannelData towards a stream client is padded to 4 (RFC 8656 12.5).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "turn_test.h"

#include <string.h>

#define MAXP AR_TURN_MAX_UDP_PAYLOAD

static uint8_t g_buf[AR_TURN_HEADROOM + 65536 + 8];

static const ar_turn_stats_t *stats(tc_t *c)
{
    return ar_turn_engine_stats(c->e);
}

/* ChannelData from the client with len data bytes on channel 0x4001 (padded to 4 as a stream
 * frame would be; the engine reads the length field). */
static void channel_data(tc_t *c, size_t len)
{
    g_buf[0] = 0x40;
    g_buf[1] = 0x01;
    g_buf[2] = (uint8_t)(len >> 8);
    g_buf[3] = (uint8_t)len;
    memset(g_buf + 4, 0xab, len);
    ar_turn_engine_on_client(c->e, &c->t, g_buf, 4 + ((len + 3) & ~(size_t)3));
}

/* A datagram of len bytes from peer ip:port. */
static void from_peer(tc_t *c, const char *ip, uint16_t port, size_t len)
{
    ar_turn_addr_t peer;
    tc_addr(&peer, ip, port);
    memset(g_buf + AR_TURN_HEADROOM, 0xcd, len);
    ar_turn_engine_on_peer(c->e, tc_alloc(c), &peer, g_buf, len);
}

static void setup(tc_t *c, int proto)
{
    ar_turn_opts_t o = {0};
    tc_init(c, &o);
    c->t.proto = (uint8_t)proto;
    assert_int_equal(tc_allocate(c), 0);
    c->tc_retry_stale = true;
    assert_int_equal(tc_channel_bind(c, 0x4001, "192.0.2.9", 7000), 0);
}

static void test_client_to_peer_limit(void **state)
{
    (void)state;
    tc_t c;
    setup(&c, AR_TURN_PROTO_TCP);
    size_t n0 = c.tp.npeer;
    channel_data(&c, 1400); /* over the 1280 bytes once copied silently or not at all */
    channel_data(&c, MAXP);
    assert_int_equal(c.tp.npeer, n0 + 2);
    assert_int_equal(c.tp.to_peer[n0].len, 1400);
    assert_int_equal(c.tp.to_peer[n0 + 1].len, MAXP);
    assert_int_equal(c.tp.to_peer[n0 + 1].data[0], 0xab);
    assert_int_equal(stats(&c)->oversize_dropped, 0);
    /* One byte more than a UDP datagram holds: refused and counted, not relayed. */
    uint64_t out = ar_turn_stats_total(stats(&c)).pkts_out;
    channel_data(&c, MAXP + 1);
    channel_data(&c, 65535);
    assert_int_equal(c.tp.npeer, n0 + 2);
    assert_int_equal(stats(&c)->oversize_dropped, 2);
    assert_int_equal(ar_turn_stats_total(stats(&c)).pkts_out, out);
    /* The connection goes on relaying after a refusal. */
    channel_data(&c, 5);
    assert_int_equal(c.tp.npeer, n0 + 3);
    tc_free(&c);
}

static void test_peer_to_client_limit(void **state)
{
    (void)state;
    tc_t c;
    setup(&c, AR_TURN_PROTO_UDP);
    size_t n0 = c.tp.nclient;
    /* Bound peer: ChannelData, unpadded over UDP. */
    from_peer(&c, "192.0.2.9", 7000, MAXP);
    assert_int_equal(c.tp.nclient, n0 + 1);
    assert_int_equal(c.tp.to_client[n0].len, 4 + MAXP);
    /* Other port of the same peer: a Data indication, 20 + 12 (XOR-PEER-ADDRESS) + 4 + data
     * padded to 4; its STUN length still fits 16 bits. */
    from_peer(&c, "192.0.2.9", 7005, MAXP);
    assert_int_equal(c.tp.nclient, n0 + 2);
    assert_int_equal(c.tp.to_client[n0 + 1].len, 20 + 12 + 4 + ((MAXP + 3) & ~3));
    assert_int_equal(stats(&c)->oversize_dropped, 0);
    from_peer(&c, "192.0.2.9", 7000, MAXP + 1);
    from_peer(&c, "192.0.2.9", 7005, MAXP + 1);
    assert_int_equal(c.tp.nclient, n0 + 2);
    assert_int_equal(stats(&c)->oversize_dropped, 2);
    tc_free(&c);
}

static void test_stream_channel_padding(void **state)
{
    (void)state;
    tc_t c;
    setup(&c, AR_TURN_PROTO_TCP);
    size_t n0 = c.tp.nclient;
    for (size_t len = 1397; len <= 1400; len++) {
        memset(g_buf + AR_TURN_HEADROOM + len, 0xee, 4); /* the tailroom must be zeroed */
        from_peer(&c, "192.0.2.9", 7000, len);
        ft_msg_t *m = &c.tp.to_client[c.tp.nclient - 1];
        assert_int_equal(m->len, 4 + ((len + 3) & ~(size_t)3));
        assert_int_equal(m->data[2] << 8 | m->data[3], len); /* the length field is unpadded */
        for (size_t i = 4 + len; i < m->len; i++)
            assert_int_equal(m->data[i], 0);
    }
    assert_int_equal(c.tp.nclient, n0 + 4);
    tc_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_to_peer_limit),
        cmocka_unit_test(test_peer_to_client_limit),
        cmocka_unit_test(test_stream_channel_padding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
