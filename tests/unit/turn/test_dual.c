/*
 * Dual allocations (RFC 8656 section 7.2): the address-family attributes in the codec, and an
 * Allocate with ADDITIONAL-ADDRESS-FAMILY getting an IPv4 and an IPv6 relayed address when the
 * relay has both (IPv4 only, with ADDRESS-ERROR-CODE 440 for IPv6, when it has no IPv6), the
 * request errors the RFC lists, and relaying to peers of either family from the matching
 * endpoint.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "turn_test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

/* --- codec --- */

static void test_codec_family(void **state)
{
    (void)state;
    uint8_t buf[256], tid[12] = {1, 2, 3};
    ar_stun_builder_t b;
    ar_stun_build_start(&b, buf, sizeof(buf), AR_TURN_ALLOCATE, AR_STUN_REQUEST, tid);
    ar_stun_build_family(&b, AR_TURN_ATTR_REQUESTED_ADDRESS_FAMILY, 4);
    ar_stun_build_family(&b, AR_TURN_ATTR_ADDITIONAL_ADDRESS_FAMILY, 6);
    int len = ar_stun_build_finish(&b);
    assert_int_equal(len, 20 + 8 + 8);
    /* Wire form: type, length 4, family byte, three zero bytes (RFC 8656 sections 18.7, 18.11). */
    static const uint8_t want[] = {0x00, 0x17, 0, 4, 0x01, 0, 0, 0,
                                   0x80, 0x00, 0, 4, 0x02, 0, 0, 0};
    assert_memory_equal(buf + 20, want, sizeof(want));
    ar_stun_msg_t m;
    assert_int_equal(ar_stun_parse(buf, (size_t)len, &m), 0);
    int fam = 0;
    assert_int_equal(
        ar_stun_attr_family(ar_stun_find(&m, AR_TURN_ATTR_REQUESTED_ADDRESS_FAMILY), &fam), 0);
    assert_int_equal(fam, 4);
    assert_int_equal(
        ar_stun_attr_family(ar_stun_find(&m, AR_TURN_ATTR_ADDITIONAL_ADDRESS_FAMILY), &fam), 0);
    assert_int_equal(fam, 6);
    /* Unknown family values and bad lengths. */
    uint8_t v[8] = {0x03, 0, 0, 0};
    ar_stun_attr_t a = {.type = AR_TURN_ATTR_ADDITIONAL_ADDRESS_FAMILY, .len = 4, .value = v};
    assert_int_equal(ar_stun_attr_family(&a, &fam), AR_EINVAL);
    v[0] = 0;
    assert_int_equal(ar_stun_attr_family(&a, &fam), AR_EINVAL);
    v[0] = 1;
    a.len = 3;
    assert_int_equal(ar_stun_attr_family(&a, &fam), AR_EPARSE);
    a.len = 8;
    assert_int_equal(ar_stun_attr_family(&a, &fam), AR_EPARSE);
    assert_int_equal(ar_stun_attr_family(NULL, &fam), AR_EPARSE);
    /* The builder refuses other families. */
    ar_stun_build_start(&b, buf, sizeof(buf), AR_TURN_ALLOCATE, AR_STUN_REQUEST, tid);
    ar_stun_build_family(&b, AR_TURN_ATTR_REQUESTED_ADDRESS_FAMILY, 5);
    assert_int_equal(ar_stun_build_finish(&b), AR_EINVAL);
}

static void test_codec_address_error(void **state)
{
    (void)state;
    uint8_t buf[256], tid[12] = {9};
    ar_stun_builder_t b;
    ar_stun_build_start(&b, buf, sizeof(buf), AR_TURN_ALLOCATE, AR_STUN_SUCCESS, tid);
    ar_stun_build_address_error(&b, 6, 440, NULL);
    int len = ar_stun_build_finish(&b);
    assert_true(len > 0);
    /* Family, reserved, class 4, number 40, then the reason phrase. */
    static const uint8_t hdr[] = {0x80, 0x01, 0, 4 + 28, 0x02, 0, 4, 40};
    assert_memory_equal(buf + 20, hdr, sizeof(hdr));
    assert_memory_equal(buf + 28, "Address Family not Supported", 28);
    ar_stun_msg_t m;
    assert_int_equal(ar_stun_parse(buf, (size_t)len, &m), 0);
    int fam = 0, code = 0;
    const uint8_t *reason;
    size_t rlen;
    const ar_stun_attr_t *ae = ar_stun_find(&m, AR_TURN_ATTR_ADDRESS_ERROR_CODE);
    assert_int_equal(ar_stun_attr_address_error(ae, &fam, &code, &reason, &rlen), 0);
    assert_int_equal(fam, 6);
    assert_int_equal(code, 440);
    assert_int_equal(rlen, 28);
    /* IPv4 with 508 and a phrase of our own. */
    ar_stun_build_start(&b, buf, sizeof(buf), AR_TURN_ALLOCATE, AR_STUN_SUCCESS, tid);
    ar_stun_build_address_error(&b, 4, 508, "x");
    len = ar_stun_build_finish(&b);
    assert_int_equal(ar_stun_parse(buf, (size_t)len, &m), 0);
    ae = ar_stun_find(&m, AR_TURN_ATTR_ADDRESS_ERROR_CODE);
    assert_int_equal(ar_stun_attr_address_error(ae, &fam, &code, &reason, &rlen), 0);
    assert_int_equal(fam, 4);
    assert_int_equal(code, 508);
    /* A bad family byte, a bad class, too short; the builder refuses family 0 and bad codes. */
    uint8_t v[8] = {0x00, 0, 4, 40};
    ar_stun_attr_t a = {.type = AR_TURN_ATTR_ADDRESS_ERROR_CODE, .len = 4, .value = v};
    assert_int_equal(ar_stun_attr_address_error(&a, &fam, &code, &reason, &rlen), AR_EPARSE);
    v[0] = 0x02, v[2] = 9;
    assert_int_equal(ar_stun_attr_address_error(&a, &fam, &code, &reason, &rlen), AR_EPARSE);
    v[2] = 4, a.len = 3;
    assert_int_equal(ar_stun_attr_address_error(&a, &fam, &code, &reason, &rlen), AR_EPARSE);
    ar_stun_build_start(&b, buf, sizeof(buf), AR_TURN_ALLOCATE, AR_STUN_SUCCESS, tid);
    ar_stun_build_address_error(&b, 0, 440, NULL);
    assert_int_equal(ar_stun_build_finish(&b), AR_EINVAL);
    ar_stun_build_start(&b, buf, sizeof(buf), AR_TURN_ALLOCATE, AR_STUN_SUCCESS, tid);
    ar_stun_build_address_error(&b, 6, 200, NULL);
    assert_int_equal(ar_stun_build_finish(&b), AR_EINVAL);
}

/* --- engine --- */

typedef struct fam_req_s {
    int requested, additional; /* families, 0: absent; -1 for a raw value below */
    uint8_t raw_additional;    /* sent as is when additional is -1 */
    uint8_t transport;
    bool token;
} fam_req_t;

static void add_fams(ar_stun_builder_t *b, void *arg)
{
    const fam_req_t *r = arg;
    uint8_t rt[4] = {r->transport ? r->transport : AR_TURN_PROTO_UDP, 0, 0, 0};
    ar_stun_build_attr(b, AR_TURN_ATTR_REQUESTED_TRANSPORT, rt, 4);
    if (r->requested)
        ar_stun_build_family(b, AR_TURN_ATTR_REQUESTED_ADDRESS_FAMILY, r->requested);
    if (r->additional > 0)
        ar_stun_build_family(b, AR_TURN_ATTR_ADDITIONAL_ADDRESS_FAMILY, r->additional);
    if (r->additional < 0) {
        uint8_t v[4] = {r->raw_additional, 0, 0, 0};
        ar_stun_build_attr(b, AR_TURN_ATTR_ADDITIONAL_ADDRESS_FAMILY, v, 4);
    }
    if (r->token) {
        uint8_t tk[8] = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88};
        ar_stun_build_attr(b, AR_TURN_ATTR_RESERVATION_TOKEN, tk, 8);
    }
}

/* Allocates with r (the 401 round trip first); returns the final code, 0 for success. */
static int alloc_with(tc_t *c, fam_req_t *r)
{
    int code = 0;
    if (c->nonce_len == 0)
        (void)tc_request(c, AR_TURN_ALLOCATE, false, add_fams, r, &code);
    int cls = tc_request(c, AR_TURN_ALLOCATE, true, add_fams, r, &code);
    return cls == AR_STUN_SUCCESS ? 0 : code;
}

/* The relayed addresses of the last answer, in order; returns how many. */
static int relayed_of(tc_t *c, struct sockaddr_storage out[2], int *v6_err)
{
    ar_stun_msg_t m;
    assert_true(tc_last(c, &m));
    int n = 0;
    *v6_err = 0;
    for (size_t i = 0; i < m.nattrs; i++) {
        if (m.attrs[i].type == AR_TURN_ATTR_XOR_RELAYED_ADDRESS && n < 2)
            assert_int_equal(ar_stun_attr_xor_addr(&m.attrs[i], m.tid, &out[n++]), 0);
        if (m.attrs[i].type == AR_TURN_ATTR_ADDRESS_ERROR_CODE) {
            int fam, code;
            const uint8_t *reason;
            size_t rlen;
            assert_int_equal(ar_stun_attr_address_error(&m.attrs[i], &fam, &code, &reason, &rlen),
                             0);
            assert_int_equal(fam, 6);
            *v6_err = code;
        }
    }
    assert_int_equal(ar_stun_check_integrity(&m, c->key, 16), 0);
    return n;
}

static void test_dual_allocation(void **state)
{
    (void)state;
    tc_t c;
    ar_turn_opts_t o = {0};
    tc_addr(&o.relay6, "2001:db8::1", 0);
    tc_init(&c, &o);
    fam_req_t r = {.additional = 6};
    assert_int_equal(alloc_with(&c, &r), 0);
    struct sockaddr_storage ra[2];
    int v6_err;
    assert_int_equal(relayed_of(&c, ra, &v6_err), 2);
    assert_int_equal(v6_err, 0);
    assert_int_equal(ra[0].ss_family, AF_INET);
    assert_int_equal(ra[1].ss_family, AF_INET6);
    assert_int_equal(c.tp.opened, 2);
    /* Another Allocate on the same 5-tuple: 437, and no endpoint opened. */
    int before = c.tp.opened;
    int code;
    assert_int_equal(tc_request(&c, AR_TURN_ALLOCATE, true, add_fams, &r, &code), AR_STUN_ERROR);
    assert_int_equal(code, 437);
    assert_int_equal(c.tp.opened, before);
    /* Peers of both families: each relayed from its own endpoint. */
    assert_int_equal(tc_create_permission(&c, "203.0.113.9", 0), 0);
    assert_int_equal(tc_create_permission(&c, "2001:db8::9", 0), 0);
    assert_int_equal(tc_channel_bind(&c, 0x4001, "203.0.113.9", 7000), 0);
    assert_int_equal(tc_channel_bind(&c, 0x4002, "2001:db8::9", 7000), 0);
    uint8_t cd[8] = {0x40, 0x01, 0, 1, 'a', 0, 0, 0};
    ar_turn_engine_on_client(c.e, &c.t, cd, sizeof(cd));
    cd[1] = 0x02;
    ar_turn_engine_on_client(c.e, &c.t, cd, sizeof(cd));
    assert_int_equal(c.tp.npeer, 2);
    assert_int_equal(c.tp.to_peer[0].peer.family, 4);
    assert_int_equal(c.tp.to_peer[1].peer.family, 6);
    assert_int_not_equal(c.tp.to_peer[0].relay, c.tp.to_peer[1].relay);
    /* Answers from the IPv6 peer come back on the channel. */
    tc_from_peer(&c, "2001:db8::9", 7000, "z", 1);
    assert_memory_equal(c.tp.to_client[c.tp.nclient - 1].data, "\x40\x02\x00\x01z", 5);
    assert_int_equal(c.tp.closed, 0);
    tc_free(&c); /* deletes the allocation: checks both endpoints were closed */
}

/*
 * Each endpoint of a dual allocation is readied at the first permission of its family: an IPv6
 * relay port that cannot be bound fails only the IPv6 permissions (508), never the IPv4 ones.
 */
static void test_dual_arm_failure(void **state)
{
    (void)state;
    tc_t c;
    ar_turn_opts_t o = {0};
    tc_addr(&o.relay6, "2001:db8::1", 0);
    tc_init(&c, &o);
    fam_req_t r = {.additional = 6};
    assert_int_equal(alloc_with(&c, &r), 0);
    assert_int_equal(c.tp.opened, 2);
    c.tp.fail_arm_id = 2; /* the IPv6 endpoint, opened second */
    assert_int_equal(tc_create_permission(&c, "203.0.113.9", 0), 0);
    assert_int_equal(c.tp.arms, 1); /* only the IPv4 endpoint */
    assert_int_equal(tc_create_permission(&c, "2001:db8::9", 0), 508);
    assert_int_equal(tc_channel_bind(&c, 0x4002, "2001:db8::9", 7000), 508);
    assert_int_equal(ar_turn_engine_stats(c.e)->relay_bind_failed, 2);
    assert_int_equal(tc_create_permission(&c, "203.0.113.10", 0), 0);
    assert_int_equal(tc_channel_bind(&c, 0x4001, "203.0.113.9", 7000), 0);
    assert_int_equal(c.tp.arms, 3); /* IPv4 once, IPv6 twice (failed) */
    uint8_t cd[8] = {0x40, 0x01, 0, 1, 'a', 0, 0, 0};
    ar_turn_engine_on_client(c.e, &c.t, cd, sizeof(cd));
    assert_int_equal(c.tp.npeer, 1);
    assert_int_equal(c.tp.to_peer[0].relay, 1);
    /* Once the port can be bound, the IPv6 permission is installed. */
    c.tp.fail_arm_id = 0;
    assert_int_equal(tc_channel_bind(&c, 0x4002, "2001:db8::9", 7000), 0);
    assert_int_equal(tc_create_permission(&c, "2001:db8::a", 0), 0);
    assert_int_equal(c.tp.arms, 4);
    cd[1] = 0x02;
    ar_turn_engine_on_client(c.e, &c.t, cd, sizeof(cd));
    assert_int_equal(c.tp.npeer, 2);
    assert_int_equal(c.tp.to_peer[1].relay, 2);
    tc_free(&c);
}

static void test_dual_without_ipv6(void **state)
{
    (void)state;
    tc_t c;
    ar_turn_opts_t o = {0}; /* relay4 only */
    tc_init(&c, &o);
    fam_req_t r = {.additional = 6};
    assert_int_equal(alloc_with(&c, &r), 0);
    struct sockaddr_storage ra[2];
    int v6_err;
    assert_int_equal(relayed_of(&c, ra, &v6_err), 1);
    assert_int_equal(ra[0].ss_family, AF_INET);
    assert_int_equal(v6_err, 440);
    assert_int_equal(c.tp.opened, 1);
    assert_int_equal(tc_create_permission(&c, "2001:db8::9", 0), 443);
    assert_int_equal(tc_create_permission(&c, "203.0.113.9", 0), 0);
    tc_free(&c);
}

static void test_dual_ipv6_exhausted(void **state)
{
    (void)state;
    tc_t c;
    ar_turn_opts_t o = {0};
    tc_addr(&o.relay6, "2001:db8::1", 0);
    tc_init(&c, &o);
    /* Fill the fake transport so only one more endpoint opens: IPv4 yes, IPv6 508. */
    c.tp.opened = 254;
    fam_req_t r = {.additional = 6};
    assert_int_equal(alloc_with(&c, &r), 0);
    struct sockaddr_storage ra[2];
    int v6_err;
    assert_int_equal(relayed_of(&c, ra, &v6_err), 1);
    assert_int_equal(v6_err, 508);
    c.tp.closed = 254; /* the endpoints we pretended were open */
    tc_free(&c);
}

static void test_dual_request_errors(void **state)
{
    (void)state;
    tc_t c;
    ar_turn_opts_t o = {0};
    tc_addr(&o.relay6, "2001:db8::1", 0);
    tc_init(&c, &o);
    /* Both family attributes: 400. ADDITIONAL IPv4: 400. An unknown family: 440. */
    fam_req_t both = {.requested = 4, .additional = 6};
    assert_int_equal(alloc_with(&c, &both), 400);
    fam_req_t v4 = {.additional = 4};
    assert_int_equal(alloc_with(&c, &v4), 400);
    fam_req_t odd = {.additional = -1, .raw_additional = 3};
    assert_int_equal(alloc_with(&c, &odd), 440);
    /* With a RESERVATION-TOKEN (one reserved port of one family): 400. */
    fam_req_t tok = {.additional = 6, .token = true};
    assert_int_equal(alloc_with(&c, &tok), 400);
    /* RFC 6062 TCP allocations are single-family: 400. */
    c.t.proto = AR_TURN_PROTO_TCP;
    c.t.conn = 4;
    fam_req_t tcp = {.additional = 6, .transport = AR_TURN_PROTO_TCP};
    assert_int_equal(alloc_with(&c, &tcp), 400);
    assert_int_equal(c.tp.opened, 0);
    /* REQUESTED-ADDRESS-FAMILY IPv6 alone still works, and is single-family. */
    c.t.proto = AR_TURN_PROTO_UDP;
    c.t.conn = 0;
    fam_req_t six = {.requested = 6};
    assert_int_equal(alloc_with(&c, &six), 0);
    struct sockaddr_storage ra[2];
    int v6_err;
    assert_int_equal(relayed_of(&c, ra, &v6_err), 1);
    assert_int_equal(ra[0].ss_family, AF_INET6);
    tc_free(&c);
}

static void add_refresh_fam(ar_stun_builder_t *b, void *arg)
{
    ar_stun_build_family(b, AR_TURN_ATTR_REQUESTED_ADDRESS_FAMILY, *(int *)arg);
    ar_stun_build_u32(b, AR_TURN_ATTR_LIFETIME, 0);
}

static void test_dual_refresh(void **state)
{
    (void)state;
    tc_t c;
    ar_turn_opts_t o = {0};
    tc_addr(&o.relay6, "2001:db8::1", 0);
    tc_init(&c, &o);
    fam_req_t r = {.additional = 6};
    assert_int_equal(alloc_with(&c, &r), 0);
    /* Refresh naming IPv6 with LIFETIME 0 deletes the whole dual allocation. */
    int fam = 6, code;
    assert_int_equal(tc_request(&c, AR_TURN_REFRESH, true, add_refresh_fam, &fam, &code),
                     AR_STUN_SUCCESS);
    assert_int_equal(c.tp.closed, 2);
    assert_int_equal(ar_turn_stats_total(ar_turn_engine_stats(c.e)).allocations, 0);
    /* A single-family IPv4 allocation refuses a Refresh naming IPv6: 443. */
    fam_req_t plain = {0};
    assert_int_equal(alloc_with(&c, &plain), 0);
    assert_int_equal(tc_request(&c, AR_TURN_REFRESH, true, add_refresh_fam, &fam, &code),
                     AR_STUN_ERROR);
    assert_int_equal(code, 443);
    tc_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codec_family),        cmocka_unit_test(test_codec_address_error),
        cmocka_unit_test(test_dual_allocation),     cmocka_unit_test(test_dual_without_ipv6),
        cmocka_unit_test(test_dual_ipv6_exhausted), cmocka_unit_test(test_dual_request_errors),
        cmocka_unit_test(test_dual_refresh),        cmocka_unit_test(test_dual_arm_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
