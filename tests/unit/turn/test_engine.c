/*
 * The TURN engine against a fake transport and an injected clock: allocation with the 401
 * round trip, refresh, permissions, channels, Send/Data indications, ChannelData, expiries,
 * stale nonces, wrong and expired credentials, quotas, peer policy, bandwidth cap, rate limit,
 * and the amplification bound.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "turn_test.h"

#include "anteroom/alloc.h"
#include "anteroom/turn_rest.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "anteroom/addr_policy.h"

/* A stand-in policy for engine tests: refuses 10.0.0.0/8 and loopback. The real classifier has
 * its own table test (test_policy.c). */
static int test_policy(void *ctx, const struct sockaddr *sa)
{
    (void)ctx;
    if (sa->sa_family != AF_INET)
        return 0;
    const uint8_t *ip = (const uint8_t *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;
    return ip[0] == 10 || ip[0] == 127 ? AR_EPERM : 0;
}

static ar_turn_opts_t base_opts(void)
{
    return (ar_turn_opts_t){.peer_allowed = test_policy};
}

static void test_allocate_401_then_success(void **state)
{
    (void)state;
    tc_t c;
    ar_turn_opts_t o = base_opts();
    tc_init(&c, &o);
    int code;
    /* Unsigned: 401 with REALM and NONCE, unsigned, small. */
    assert_int_equal(tc_request(&c, AR_TURN_ALLOCATE, false, NULL, NULL, &code), AR_STUN_ERROR);
    assert_int_equal(code, 401);
    ar_stun_msg_t m;
    assert_true(tc_last(&c, &m));
    assert_non_null(ar_stun_find(&m, AR_STUN_ATTR_REALM));
    assert_non_null(ar_stun_find(&m, AR_STUN_ATTR_NONCE));
    assert_null(ar_stun_find(&m, AR_STUN_ATTR_SOFTWARE));
    assert_int_equal(m.integrity_off, 0);
    assert_true(c.nonce_len > 0);
    assert_int_equal(tc_allocate(&c), 0);
    assert_true(tc_last(&c, &m));
    struct sockaddr_storage ss;
    const ar_stun_attr_t *ra = ar_stun_find(&m, AR_TURN_ATTR_XOR_RELAYED_ADDRESS);
    assert_non_null(ra);
    assert_int_equal(ar_stun_attr_xor_addr(ra, m.tid, &ss), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    const ar_stun_attr_t *ma = ar_stun_find(&m, AR_STUN_ATTR_XOR_MAPPED_ADDRESS);
    assert_non_null(ma);
    assert_int_equal(ar_stun_attr_xor_addr(ma, m.tid, &ss), 0);
    assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 40000);
    uint32_t lt;
    assert_int_equal(ar_stun_attr_u32(ar_stun_find(&m, AR_TURN_ATTR_LIFETIME), &lt), 0);
    assert_int_equal(lt, 600);
    assert_int_equal(ar_turn_stats_total(ar_turn_engine_stats(c.e)).allocations, 1);
    assert_int_equal(ar_turn_shared_allocations(c.sh), 1);
    /* A second Allocate on the same 5-tuple (new transaction) is a mismatch. */
    assert_int_equal(tc_allocate(&c), 437);
    /* Without REQUESTED-TRANSPORT: 400; TCP: 442 (another client port). */
    c.t.client.port = 40001;
    assert_int_equal(tc_request(&c, AR_TURN_ALLOCATE, true, NULL, NULL, &code), AR_STUN_ERROR);
    assert_int_equal(code, 400);
    tc_free(&c);
}

static void add_tcp(ar_stun_builder_t *b, void *arg)
{
    (void)arg;
    uint8_t v[4] = {AR_TURN_PROTO_TCP, 0, 0, 0};
    ar_stun_build_attr(b, AR_TURN_ATTR_REQUESTED_TRANSPORT, v, 4);
}

static void add_unknown(ar_stun_builder_t *b, void *arg)
{
    (void)arg;
    ar_stun_build_u32(b, 0x0077, 1);
}

static void test_allocate_errors(void **state)
{
    (void)state;
    tc_t c;
    ar_turn_opts_t o = base_opts();
    tc_init(&c, &o);
    int code;
    assert_int_equal(tc_allocate(&c), 0); /* gets a nonce */
    c.t.client.port = 40001;
    /* TCP over UDP: 400 (RFC 6062 section 5.1); TCP allocations themselves are tested below. */
    assert_int_equal(tc_request(&c, AR_TURN_ALLOCATE, true, add_tcp, NULL, &code), AR_STUN_ERROR);
    assert_int_equal(code, 400);
    assert_int_equal(tc_request(&c, AR_TURN_ALLOCATE, true, add_unknown, NULL, &code),
                     AR_STUN_ERROR);
    assert_int_equal(code, 420);
    ar_stun_msg_t m;
    assert_true(tc_last(&c, &m));
    assert_non_null(ar_stun_find(&m, AR_STUN_ATTR_UNKNOWN_ATTRIBUTES));
    /* No relay port: 508. */
    c.tp.fail_open = 1;
    assert_int_equal(tc_allocate(&c), 508);
    assert_int_equal(ar_turn_shared_allocations(c.sh), 1);
    /* Refresh without an allocation: 437. */
    c.t.client.port = 40002;
    assert_int_equal(tc_request(&c, AR_TURN_REFRESH, true, NULL, NULL, &code), AR_STUN_ERROR);
    assert_int_equal(code, 437);
    tc_free(&c);
}

static void test_retransmitted_allocate(void **state)
{
    (void)state;
    tc_t c;
    ar_turn_opts_t o = base_opts();
    tc_init(&c, &o);
    assert_int_equal(tc_allocate(&c), 0);
    /* Replay the exact request bytes: the same success, no second allocation. */
    uint8_t buf[1500];
    c.tid_ctr--; /* same transaction id as the last request */
    uint8_t v[4] = {AR_TURN_PROTO_UDP, 0, 0, 0};
    ar_stun_builder_t b;
    uint8_t tid[12] = {0};
    tid[0] = c.tid_ctr + 1;
    tid[11] = 0x5a;
    ar_stun_build_start(&b, buf, sizeof(buf), AR_TURN_ALLOCATE, AR_STUN_REQUEST, tid);
    ar_stun_build_attr(&b, AR_TURN_ATTR_REQUESTED_TRANSPORT, v, 4);
    ar_stun_build_attr(&b, AR_STUN_ATTR_USERNAME, "alice", 5);
    ar_stun_build_attr(&b, AR_STUN_ATTR_REALM, "example.org", 11);
    ar_stun_build_attr(&b, AR_STUN_ATTR_NONCE, c.nonce, c.nonce_len);
    ar_stun_build_integrity(&b, c.key, 16);
    int len = ar_stun_build_finish(&b);
    assert_true(len > 0);
    ar_turn_engine_on_client(c.e, &c.t, buf, (size_t)len);
    ar_stun_msg_t m;
    assert_true(tc_last(&c, &m));
    assert_int_equal(m.cls, AR_STUN_SUCCESS);
    assert_int_equal(c.tp.opened, 1);
    tc_free(&c);
}

static void add_lifetime(ar_stun_builder_t *b, void *arg)
{
    ar_stun_build_u32(b, AR_TURN_ATTR_LIFETIME, *(uint32_t *)arg);
}

static void test_refresh_and_expiry(void **state)
{
    (void)state;
    tc_t c;
    ar_turn_opts_t o = base_opts();
    tc_init(&c, &o);
    assert_int_equal(tc_allocate(&c), 0);
    int code;
    uint32_t lt = 3000;
    assert_int_equal(tc_request(&c, AR_TURN_REFRESH, true, add_lifetime, &lt, &code),
                     AR_STUN_SUCCESS);
    ar_stun_msg_t m;
    assert_true(tc_last(&c, &m));
    uint32_t got;
    assert_int_equal(ar_stun_attr_u32(ar_stun_find(&m, AR_TURN_ATTR_LIFETIME), &got), 0);
    assert_int_equal(got, 3000);
    /* Above the maximum: clamped to 3600; below the default: raised to 600. */
    lt = 100000;
    assert_int_equal(tc_request(&c, AR_TURN_REFRESH, true, add_lifetime, &lt, &code),
                     AR_STUN_SUCCESS);
    assert_true(tc_last(&c, &m));
    assert_int_equal(ar_stun_attr_u32(ar_stun_find(&m, AR_TURN_ATTR_LIFETIME), &got), 0);
    assert_int_equal(got, 3600);
    lt = 30;
    assert_int_equal(tc_request(&c, AR_TURN_REFRESH, true, add_lifetime, &lt, &code),
                     AR_STUN_SUCCESS);
    assert_true(tc_last(&c, &m));
    assert_int_equal(ar_stun_attr_u32(ar_stun_find(&m, AR_TURN_ATTR_LIFETIME), &got), 0);
    assert_int_equal(got, 600);
    /* Just before the lifetime ends it is alive; just after, the wheel reclaims it. */
    tc_advance(&c, 599 * 1000);
    assert_int_equal(c.tp.closed, 0);
    tc_advance(&c, 2000);
    assert_int_equal(c.tp.closed, 1);
    assert_int_equal(ar_turn_engine_stats(c.e)->alloc_expired, 1);
    assert_int_equal(ar_turn_shared_allocations(c.sh), 0);
    /* A new allocation, then Refresh with lifetime 0 deletes it. */
    c.nonce_len = 0;
    assert_int_equal(tc_allocate(&c), 0);
    lt = 0;
    assert_int_equal(tc_request(&c, AR_TURN_REFRESH, true, add_lifetime, &lt, &code),
                     AR_STUN_SUCCESS);
    assert_int_equal(c.tp.closed, 2);
    assert_int_equal(ar_turn_stats_total(ar_turn_engine_stats(c.e)).allocations, 0);
    assert_int_equal(tc_request(&c, AR_TURN_REFRESH, true, add_lifetime, &lt, &code),
                     AR_STUN_ERROR);
    assert_int_equal(code, 437);
    tc_free(&c);
}

typedef struct send_arg_s {
    const char *ip;
    uint16_t port;
    const char *data;
} send_arg_t;

static void send_indication(tc_t *c, const char *ip, uint16_t port, const char *data)
{
    uint8_t buf[1500];
    ar_turn_addr_t a;
    tc_addr(&a, ip, port);
    struct sockaddr_storage ss;
    ar_turn_addr_to_sa(&a, &ss);
    uint8_t tid[12] = {9, 9, 9};
    ar_stun_builder_t b;
    ar_stun_build_start(&b, buf, sizeof(buf), AR_TURN_SEND, AR_STUN_INDICATION, tid);
    ar_stun_build_xor_addr(&b, AR_TURN_ATTR_XOR_PEER_ADDRESS, (struct sockaddr *)&ss);
    ar_stun_build_attr(&b, AR_TURN_ATTR_DATA, data, strlen(data));
    int len = ar_stun_build_finish(&b);
    assert_true(len > 0);
    ar_turn_engine_on_client(c->e, &c->t, buf, (size_t)len);
}

static void test_permission_send_data(void **state)
{
    (void)state;
    tc_t c;
    ar_turn_opts_t o = base_opts();
    tc_init(&c, &o);
    assert_int_equal(tc_allocate(&c), 0);
    /* Without a permission, Send is dropped and peer data too. */
    send_indication(&c, "1.2.3.5", 9000, "hello");
    assert_int_equal(c.tp.npeer, 0);
    size_t before = c.tp.nclient;
    tc_from_peer(&c, "1.2.3.5", 9000, "hi", 2);
    assert_int_equal(c.tp.nclient, before);
    assert_int_equal(tc_create_permission(&c, "1.2.3.5", 0), 0);
    send_indication(&c, "1.2.3.5", 9000, "hello");
    assert_int_equal(c.tp.npeer, 1);
    assert_int_equal(c.tp.to_peer[0].len, 5);
    assert_memory_equal(c.tp.to_peer[0].data, "hello", 5);
    assert_int_equal(c.tp.to_peer[0].peer.port, 9000);
    /* The permission is per IP: another port of the same peer works too. */
    send_indication(&c, "1.2.3.5", 9001, "x");
    assert_int_equal(c.tp.npeer, 2);
    /* Peer data comes back as a Data indication with XOR-PEER-ADDRESS and DATA. */
    tc_from_peer(&c, "1.2.3.5", 9000, "world", 5);
    ar_stun_msg_t m;
    assert_true(tc_last(&c, &m));
    assert_int_equal(m.method, AR_TURN_DATA);
    assert_int_equal(m.cls, AR_STUN_INDICATION);
    const ar_stun_attr_t *d = ar_stun_find(&m, AR_TURN_ATTR_DATA);
    assert_non_null(d);
    assert_int_equal(d->len, 5);
    assert_memory_equal(d->value, "world", 5);
    struct sockaddr_storage ss;
    assert_int_equal(
        ar_stun_attr_xor_addr(ar_stun_find(&m, AR_TURN_ATTR_XOR_PEER_ADDRESS), m.tid, &ss), 0);
    assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 9000);
    /* Permissions last 300 s. */
    tc_advance(&c, 301 * 1000);
    send_indication(&c, "1.2.3.5", 9000, "late");
    assert_int_equal(c.tp.npeer, 2);
    tc_free(&c);
}

static void test_channels(void **state)
{
    (void)state;
    tc_t c;
    ar_turn_opts_t o = base_opts();
    tc_init(&c, &o);
    assert_int_equal(tc_allocate(&c), 0);
    int code;
    uint32_t lt = 3600;
    assert_int_equal(tc_request(&c, AR_TURN_REFRESH, true, add_lifetime, &lt, &code),
                     AR_STUN_SUCCESS);
    c.tc_retry_stale = true;
    assert_int_equal(tc_channel_bind(&c, 0x4001, "1.2.3.9", 7000), 0);
    /* Bad numbers and conflicts: 400. */
    assert_int_equal(tc_channel_bind(&c, 0x3fff, "1.2.3.9", 7001), 400);
    assert_int_equal(tc_channel_bind(&c, 0x8000, "1.2.3.9", 7001), 400);
    assert_int_equal(tc_channel_bind(&c, 0x4001, "1.2.3.9", 7001), 400);
    assert_int_equal(tc_channel_bind(&c, 0x4002, "1.2.3.9", 7000), 400);
    /* Rebinding the same pair refreshes it. */
    assert_int_equal(tc_channel_bind(&c, 0x4001, "1.2.3.9", 7000), 0);
    /* ChannelData from the client reaches the peer. */
    uint8_t cd[8] = {0x40, 0x01, 0, 3, 'a', 'b', 'c', 0};
    ar_turn_engine_on_client(c.e, &c.t, cd, sizeof(cd));
    assert_int_equal(c.tp.npeer, 1);
    assert_memory_equal(c.tp.to_peer[0].data, "abc", 3);
    assert_int_equal(c.tp.to_peer[0].peer.port, 7000);
    /* An unbound channel is dropped. */
    cd[1] = 0x02;
    ar_turn_engine_on_client(c.e, &c.t, cd, sizeof(cd));
    assert_int_equal(c.tp.npeer, 1);
    /* Peer data on the bound address comes back as ChannelData. */
    tc_from_peer(&c, "1.2.3.9", 7000, "xyz", 3);
    ft_msg_t *last = &c.tp.to_client[c.tp.nclient - 1];
    assert_int_equal(last->len, 7);
    assert_memory_equal(last->data, "\x40\x01\x00\x03xyz", 7);
    /* The channel's permission covers other ports of the peer, which get Data indications. */
    tc_from_peer(&c, "1.2.3.9", 7005, "q", 1);
    ar_stun_msg_t m;
    assert_true(tc_last(&c, &m));
    assert_int_equal(m.method, AR_TURN_DATA);
    /* After 600 s (permission refreshed meanwhile) the channel is gone, and its number stays
     * reserved for that peer for 5 more minutes. */
    tc_advance(&c, 290 * 1000);
    assert_int_equal(tc_create_permission(&c, "1.2.3.9", 0), 0);
    tc_advance(&c, 290 * 1000);
    assert_int_equal(tc_create_permission(&c, "1.2.3.9", 0), 0);
    tc_advance(&c, 30 * 1000);
    cd[1] = 0x01;
    ar_turn_engine_on_client(c.e, &c.t, cd, sizeof(cd));
    assert_int_equal(c.tp.npeer, 1);
    assert_int_equal(tc_channel_bind(&c, 0x4001, "1.2.3.9", 7002), 400);
    tc_advance(&c, 301 * 1000);
    assert_int_equal(tc_channel_bind(&c, 0x4001, "1.2.3.9", 7002), 0);
    tc_free(&c);
}

static void test_stale_nonce(void **state)
{
    (void)state;
    tc_t c;
    ar_turn_opts_t o = base_opts();
    tc_init(&c, &o);
    assert_int_equal(tc_allocate(&c), 0);
    int code;
    uint32_t lt = 3600;
    assert_int_equal(tc_request(&c, AR_TURN_REFRESH, true, add_lifetime, &lt, &code),
                     AR_STUN_SUCCESS);
    uint8_t old[64];
    memcpy(old, c.nonce, c.nonce_len);
    tc_advance(&c, 601 * 1000);
    assert_int_equal(tc_request(&c, AR_TURN_REFRESH, true, add_lifetime, &lt, &code),
                     AR_STUN_ERROR);
    assert_int_equal(code, 438);
    assert_memory_not_equal(old, c.nonce, c.nonce_len);
    /* The new nonce works. */
    assert_int_equal(tc_request(&c, AR_TURN_REFRESH, true, add_lifetime, &lt, &code),
                     AR_STUN_SUCCESS);
    /* Our live nonce with one character changed, or one outside base64url, is stale. */
    uint8_t good[64];
    memcpy(good, c.nonce, c.nonce_len);
    const char swaps[] = {'+', '=', '/', '.', 0};
    for (size_t i = 0; swaps[i]; i++) {
        memcpy(c.nonce, good, c.nonce_len);
        c.nonce[5] = (uint8_t)swaps[i];
        c.tc_retry_stale = false;
        assert_int_equal(tc_request(&c, AR_TURN_REFRESH, true, add_lifetime, &lt, &code),
                         AR_STUN_ERROR);
        assert_int_equal(code, 438);
    }
    memcpy(c.nonce, good, c.nonce_len);
    c.nonce[7] = c.nonce[7] == 'B' ? 'C' : 'B';
    assert_int_equal(tc_request(&c, AR_TURN_REFRESH, true, add_lifetime, &lt, &code),
                     AR_STUN_ERROR);
    assert_int_equal(code, 438);
    memcpy(c.nonce, good, c.nonce_len);
    assert_int_equal(tc_request(&c, AR_TURN_REFRESH, true, add_lifetime, &lt, &code),
                     AR_STUN_SUCCESS);
    /* A nonce from another client address is stale too. */
    c.t.client.ip[3] ^= 1;
    assert_int_equal(tc_request(&c, AR_TURN_ALLOCATE, true, NULL, NULL, &code), AR_STUN_ERROR);
    assert_int_equal(code, 438);
    /* A forged nonce is stale. */
    memset(c.nonce, 'A', c.nonce_len);
    assert_int_equal(tc_request(&c, AR_TURN_ALLOCATE, true, NULL, NULL, &code), AR_STUN_ERROR);
    assert_int_equal(code, 438);
    assert_int_equal(ar_turn_engine_stats(c.e)->stale_nonces, 8);
    tc_free(&c);
}

static void test_wrong_password_and_users(void **state)
{
    (void)state;
    tc_t c;
    ar_turn_opts_t o = base_opts();
    tc_init(&c, &o);
    tc_set_creds(&c, "alice", "wrong");
    assert_int_equal(tc_allocate(&c), 401);
    tc_set_creds(&c, "mallory", "secret");
    assert_int_equal(tc_allocate(&c), 401);
    assert_int_equal(ar_turn_engine_stats(c.e)->auth_failures, 2);
    /* bob's key was configured as 0x hex: the client signs with that key directly. */
    tc_set_creds(&c, "bob", "unused");
    const uint8_t bob[16] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
                             0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};
    memcpy(c.key, bob, 16);
    assert_int_equal(tc_allocate(&c), 0);
    /* Another user on bob's allocation: 441. */
    tc_set_creds(&c, "alice", "secret");
    assert_int_equal(tc_create_permission(&c, "203.0.113.1", 0), 441);
    /* Integrity without a NONCE: 400. */
    c.omit_nonce = true;
    int code;
    c.t.client.port = 1;
    assert_int_equal(tc_request(&c, AR_TURN_ALLOCATE, true, NULL, NULL, &code), AR_STUN_ERROR);
    assert_int_equal(code, 400);
    tc_free(&c);
}

static void test_rest_credentials(void **state)
{
    (void)state;
    tc_t c;
    ar_turn_opts_t o = base_opts();
    const char *const secrets[] = {"old-secret", "north-wind"};
    o.use_auth_secret = 1;
    o.secrets = secrets;
    o.nsecrets = 2;
    tc_init(&c, &o);
    char user[AR_TURN_REST_USER_MAX], pass[AR_TURN_REST_PASS_MAX];
    assert_int_equal(
        ar_turn_rest_mint("north-wind", 10, 3600, c.wall_s, user, sizeof(user), pass, sizeof(pass)),
        0);
    tc_set_creds(&c, user, pass);
    assert_int_equal(tc_allocate(&c), 0);
    /* Later requests on the allocation are checked with its stored key. */
    assert_int_equal(tc_create_permission(&c, "203.0.113.4", 0), 0);
    char good[AR_TURN_REST_PASS_MAX];
    strcpy(good, pass);
    tc_set_creds(&c, user, "not-the-password");
    assert_int_equal(tc_create_permission(&c, "203.0.113.4", 0), 401);
    tc_set_creds(&c, user, good);
    /* An expired username: 401, even with the right password. */
    assert_int_equal(ar_turn_rest_mint("north-wind", 10, 60, c.wall_s - 120, user, sizeof(user),
                                       pass, sizeof(pass)),
                     0);
    tc_set_creds(&c, user, pass);
    c.t.client.port = 40001;
    assert_int_equal(tc_allocate(&c), 401);
    /* A password from another secret: 401. */
    assert_int_equal(
        ar_turn_rest_mint("south-wind", 10, 600, c.wall_s, user, sizeof(user), pass, sizeof(pass)),
        0);
    tc_set_creds(&c, user, pass);
    assert_int_equal(tc_allocate(&c), 401);
    /* Not a timestamp: 401. */
    tc_set_creds(&c, "nobody", "x");
    assert_int_equal(tc_allocate(&c), 401);
    /* Static users still work beside the secret. */
    tc_set_creds(&c, "alice", "secret");
    assert_int_equal(tc_allocate(&c), 0);
    tc_free(&c);
}

static void test_quotas(void **state)
{
    (void)state;
    tc_t c;
    ar_turn_opts_t o = base_opts();
    o.user_quota = 2;
    o.total_quota = 3;
    tc_init(&c, &o);
    assert_int_equal(tc_allocate(&c), 0);
    c.t.client.port++;
    assert_int_equal(tc_allocate(&c), 0);
    c.t.client.port++;
    assert_int_equal(tc_allocate(&c), 486);
    /* bob still has room until the total is reached. */
    tc_set_creds(&c, "bob", "x");
    const uint8_t bob[16] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
                             0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};
    memcpy(c.key, bob, 16);
    assert_int_equal(tc_allocate(&c), 0);
    c.t.client.port++;
    assert_int_equal(tc_allocate(&c), 486);
    assert_int_equal(ar_turn_engine_stats(c.e)->quota_rejects, 2);
    /* Freeing one of alice's gives her quota back. */
    tc_set_creds(&c, "alice", "secret");
    c.t.client.port = 40000;
    int code;
    uint32_t lt = 0;
    assert_int_equal(tc_request(&c, AR_TURN_REFRESH, true, add_lifetime, &lt, &code),
                     AR_STUN_SUCCESS);
    c.t.client.port = 50000;
    assert_int_equal(tc_allocate(&c), 0);
    tc_free(&c);
}

static void test_peer_policy(void **state)
{
    (void)state;
    tc_t c;
    ar_turn_opts_t o = base_opts();
    tc_init(&c, &o);
    assert_int_equal(tc_allocate(&c), 0);
    assert_int_equal(tc_create_permission(&c, "10.1.2.3", 0), 403);
    assert_int_equal(tc_create_permission(&c, "127.0.0.1", 0), 403);
    assert_int_equal(tc_channel_bind(&c, 0x4000, "10.0.0.1", 80), 403);
    assert_int_equal(ar_turn_engine_stats(c.e)->denied_peers, 3);
    /* Wrong family for an IPv4 allocation: 443. */
    assert_int_equal(tc_create_permission(&c, "2001:db8::1", 0), 443);
    send_indication(&c, "10.1.2.3", 80, "x");
    assert_int_equal(c.tp.npeer, 0);
    tc_free(&c);
}

static void test_bandwidth_cap(void **state)
{
    (void)state;
    tc_t c;
    ar_turn_opts_t o = base_opts();
    o.max_bps = 1000; /* bytes per second, as coturn's max-bps */
    tc_init(&c, &o);
    assert_int_equal(tc_allocate(&c), 0);
    assert_int_equal(tc_channel_bind(&c, 0x4000, "1.2.3.9", 7000), 0);
    uint8_t cd[4 + 400] = {0x40, 0x00, 400 >> 8, 400 & 0xff};
    for (int i = 0; i < 5; i++)
        ar_turn_engine_on_client(c.e, &c.t, cd, sizeof(cd));
    assert_int_equal(c.tp.npeer, 2);
    assert_int_equal(ar_turn_engine_stats(c.e)->bw_dropped, 3);
    tc_advance(&c, 500);
    ar_turn_engine_on_client(c.e, &c.t, cd, sizeof(cd));
    assert_int_equal(c.tp.npeer, 3);
    /* The other direction has its own bucket. */
    uint8_t big[400] = {0};
    size_t before = c.tp.nclient;
    for (int i = 0; i < 4; i++)
        tc_from_peer(&c, "1.2.3.9", 7000, big, sizeof(big));
    assert_int_equal(c.tp.nclient - before, 2);
    tc_free(&c);
}

static void test_rate_limit_and_amplification(void **state)
{
    (void)state;
    tc_t c;
    ar_turn_opts_t o = base_opts();
    o.unauth_rate = 5;
    o.unauth_burst = 10;
    tc_init(&c, &o);
    int answered = 0, code;
    for (int i = 0; i < 50; i++) {
        if (tc_request(&c, AR_TURN_ALLOCATE, false, NULL, NULL, &code) == AR_STUN_ERROR)
            answered++;
    }
    assert_int_equal(answered, 10);
    assert_int_equal(ar_turn_engine_stats(c.e)->rate_limited, 40);
    /* Another source is not affected; the first refills over time. */
    c.t.client.ip[3] = 99;
    assert_int_equal(tc_request(&c, AR_TURN_ALLOCATE, false, NULL, NULL, &code), AR_STUN_ERROR);
    c.t.client.ip[3] = 7;
    tc_advance(&c, 1000);
    answered = 0;
    for (int i = 0; i < 20; i++) {
        if (tc_request(&c, AR_TURN_ALLOCATE, false, NULL, NULL, &code) == AR_STUN_ERROR)
            answered++;
    }
    assert_int_equal(answered, 5);
    /* Every answer to an unauthenticated request is at most 4x its size. */
    for (size_t i = 0; i < c.tp.nclient; i++)
        assert_true(c.tp.to_client[i].len <= 4 * 28);
    /* Binding: XOR-MAPPED-ADDRESS and FINGERPRINT. */
    tc_advance(&c, 10000);
    assert_int_equal(tc_request(&c, AR_STUN_BINDING, false, NULL, NULL, &code), AR_STUN_SUCCESS);
    ar_stun_msg_t m;
    assert_true(tc_last(&c, &m));
    assert_non_null(ar_stun_find(&m, AR_STUN_ATTR_XOR_MAPPED_ADDRESS));
    tc_free(&c);
}

static void add_v6_family(ar_stun_builder_t *b, void *arg)
{
    (void)arg;
    uint8_t rt[4] = {AR_TURN_PROTO_UDP, 0, 0, 0}, fam[4] = {2, 0, 0, 0};
    ar_stun_build_attr(b, AR_TURN_ATTR_REQUESTED_TRANSPORT, rt, 4);
    ar_stun_build_attr(b, AR_TURN_ATTR_REQUESTED_ADDRESS_FAMILY, fam, 4);
}

static void test_ipv6_allocation(void **state)
{
    (void)state;
    tc_t c;
    ar_turn_opts_t o = base_opts();
    tc_addr(&o.relay6, "2001:db8::1", 0);
    tc_init(&c, &o);
    /* REQUESTED-ADDRESS-FAMILY IPv6: an IPv6 relayed address (RFC 6156). */
    int code;
    assert_int_equal(tc_allocate(&c), 0);
    c.t.client.port = 40001;
    assert_int_equal(tc_request(&c, AR_TURN_ALLOCATE, true, add_v6_family, NULL, &code),
                     AR_STUN_SUCCESS);
    ar_stun_msg_t m;
    assert_true(tc_last(&c, &m));
    struct sockaddr_storage ss;
    assert_int_equal(
        ar_stun_attr_xor_addr(ar_stun_find(&m, AR_TURN_ATTR_XOR_RELAYED_ADDRESS), m.tid, &ss), 0);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_memory_equal(&((struct sockaddr_in6 *)&ss)->sin6_addr, c.opts.relay6.ip, 16);
    assert_int_equal(tc_create_permission(&c, "2001:db8::77", 0), 0);
    assert_int_equal(tc_create_permission(&c, "203.0.113.1", 0), 443);
    c.t.client.port = 40000;
    /* The peer's family must match the allocation's (IPv4 here). */
    assert_int_equal(tc_create_permission(&c, "203.0.113.1", 0), 0);
    tc_free(&c);
}

static void test_garbage(void **state)
{
    (void)state;
    tc_t c;
    ar_turn_opts_t o = base_opts();
    tc_init(&c, &o);
    uint8_t junk[64];
    for (int i = 0; i < 1000; i++) {
        for (size_t j = 0; j < sizeof(junk); j++)
            junk[j] = (uint8_t)(i * 31 + j * 7);
        ar_turn_engine_on_client(c.e, &c.t, junk, (size_t)(i % 64));
    }
    assert_int_equal(c.tp.nclient, 0);
    tc_free(&c);
}

static void test_alloc_failures(void **state)
{
    (void)state;
    /* Fail each allocation in turn: the engine answers 508 or nothing, and never leaks. */
    for (long n = 0; n < 8; n++) {
        tc_t c;
        ar_turn_opts_t o = base_opts();
        o.user_quota = 5;
        tc_init(&c, &o);
        ar_alloc_fail_after(n);
        int rc = tc_allocate(&c);
        if (rc == 0)
            (void)tc_channel_bind(&c, 0x4000, "1.2.3.9", 7000);
        ar_alloc_fail_after(-1);
        tc_free(&c);
    }
}

static void add_tcp_transport(ar_stun_builder_t *b, void *arg)
{
    (void)arg;
    uint8_t v[4] = {AR_TURN_PROTO_TCP, 0, 0, 0};
    ar_stun_build_attr(b, AR_TURN_ATTR_REQUESTED_TRANSPORT, v, 4);
}

static void add_xor_peer(ar_stun_builder_t *b, void *arg)
{
    const char *ip = arg;
    ar_turn_addr_t a;
    tc_addr(&a, ip, 8080);
    struct sockaddr_storage ss;
    ar_turn_addr_to_sa(&a, &ss);
    ar_stun_build_xor_addr(b, AR_TURN_ATTR_XOR_PEER_ADDRESS, (struct sockaddr *)&ss);
}

static void add_cid(ar_stun_builder_t *b, void *arg)
{
    ar_stun_build_u32(b, AR_TURN_ATTR_CONNECTION_ID, *(const uint32_t *)arg);
}

static int real_policy(void *ctx, const struct sockaddr *sa)
{
    return ar_addr_policy_check(ctx, sa);
}

/* RFC 6062 in the engine: TCP allocations only over streams, Connect checked by the real peer
 * policy (the same ar_addr_policy_check that canonicalises mapped forms for UDP paths), 446 for a
 * connection already being made, the Connect answer with CONNECTION-ID, ConnectionAttempt only with
 * a permission, ConnectionBind on a new connection, and the allocation gone with its connection. */
static void test_tcp_allocation(void **state)
{
    (void)state;
    ar_addr_policy_t *pol;
    assert_int_equal(ar_addr_policy_new(&pol), 0);
    tc_t c;
    ar_turn_opts_t o = {.peer_allowed = real_policy, .peer_ctx = pol};
    tc_init(&c, &o);
    tc_addr(&c.opts.relay6, "2001:db8::1", 0);
    int code;
    /* Over UDP: 400 (section 5.1). */
    assert_int_equal(tc_request(&c, AR_TURN_ALLOCATE, false, add_tcp_transport, NULL, &code),
                     AR_STUN_ERROR);
    assert_int_equal(code, 401);
    assert_int_equal(tc_request(&c, AR_TURN_ALLOCATE, true, add_tcp_transport, NULL, &code),
                     AR_STUN_ERROR);
    assert_int_equal(code, 400);
    c.t.proto = AR_TURN_PROTO_TCP;
    c.t.conn = 7;
    assert_int_equal(tc_request(&c, AR_TURN_ALLOCATE, true, add_tcp_transport, NULL, &code),
                     AR_STUN_SUCCESS);
    assert_int_equal(c.tp.tcp_opened, 1);
    /* Channels belong to UDP allocations. */
    assert_int_equal(tc_channel_bind(&c, 0x4000, "1.2.3.5", 80), 400);
    /* Refused peers: loopback, private, the metadata address, unspecified, documentation. */
    const char *refused[] = {"127.0.0.1", "10.0.0.1", "169.254.169.254", "0.0.0.0", "203.0.113.5"};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        assert_int_equal(
            tc_request(&c, AR_TURN_CONNECT, true, add_xor_peer, (void *)refused[i], &code),
            AR_STUN_ERROR);
        assert_int_equal(code, 403);
    }
    assert_int_equal(c.tp.connects, 0);
    /* A good peer: no answer until the transport reports. */
    size_t before = c.tp.nclient;
    (void)tc_request(&c, AR_TURN_CONNECT, true, add_xor_peer, "1.2.3.5", &code);
    assert_int_equal(c.tp.nclient, before);
    assert_int_equal(c.tp.connects, 1);
    assert_int_equal(tc_request(&c, AR_TURN_CONNECT, true, add_xor_peer, "1.2.3.5", &code),
                     AR_STUN_ERROR);
    assert_int_equal(code, 446);
    ar_turn_engine_connect_done(c.e, &c.tp.connect_ctrl, c.tp.connect_tid, 0x01020304);
    ar_stun_msg_t m;
    assert_true(tc_last(&c, &m));
    assert_int_equal(m.method, AR_TURN_CONNECT);
    assert_int_equal(m.cls, AR_STUN_SUCCESS);
    uint32_t cid = 0;
    const ar_stun_attr_t *ca = ar_stun_find(&m, AR_TURN_ATTR_CONNECTION_ID);
    assert_non_null(ca);
    assert_int_equal(ar_stun_attr_u32(ca, &cid), 0);
    assert_int_equal(cid, 0x01020304);
    assert_int_equal(ar_stun_check_integrity(&m, c.key, 16), 0);
    ar_turn_engine_connect_done(c.e, &c.tp.connect_ctrl, c.tp.connect_tid, 0);
    assert_true(tc_last(&c, &m));
    assert_int_equal(m.cls, AR_STUN_ERROR);
    /* Inbound: a ConnectionAttempt needs a permission for the peer. */
    ar_turn_addr_t peer;
    tc_addr(&peer, "1.2.3.9", 4000);
    assert_int_equal(ar_turn_engine_connection_attempt(c.e, tc_alloc(&c), &peer, 9), AR_EPERM);
    assert_int_equal(tc_create_permission(&c, "1.2.3.9", 0), 0);
    assert_int_equal(c.tp.arms, 0); /* a TCP allocation's endpoint is never a UDP relay's */
    assert_int_equal(ar_turn_engine_connection_attempt(c.e, tc_alloc(&c), &peer, 9), 0);
    assert_true(tc_last(&c, &m));
    assert_int_equal(m.method, AR_TURN_CONNECTION_ATTEMPT);
    assert_int_equal(m.cls, AR_STUN_INDICATION);
    tc_addr(&peer, "127.0.0.1", 4000);
    assert_int_equal(ar_turn_engine_connection_attempt(c.e, tc_alloc(&c), &peer, 10), AR_EPERM);
    /* ConnectionBind: on the control connection (it has an allocation) 400; on a new one it is
     * the transport's word. */
    uint32_t want = 0x01020304;
    assert_int_equal(tc_request(&c, AR_TURN_CONNECTION_BIND, true, add_cid, &want, &code),
                     AR_STUN_ERROR);
    assert_int_equal(code, 400);
    ar_turn_tuple_t ctrl = c.t;
    c.t.conn = 8;
    c.t.client.port++;
    assert_int_equal(tc_request(&c, AR_TURN_CONNECTION_BIND, true, add_cid, &want, &code),
                     AR_STUN_ERROR);
    assert_int_equal(code, 400);
    c.tp.bind_ok = 1;
    assert_int_equal(tc_request(&c, AR_TURN_CONNECTION_BIND, true, add_cid, &want, &code),
                     AR_STUN_SUCCESS);
    assert_int_equal(c.tp.bound_cid, want);
    /* The control connection closes: its allocation goes. */
    assert_true(ar_turn_engine_has_allocation(c.e, &ctrl));
    ar_turn_engine_client_closed(c.e, &ctrl);
    assert_false(ar_turn_engine_has_allocation(c.e, &ctrl));
    assert_int_equal(c.tp.tcp_closed, 1);
    tc_free(&c);
    ar_addr_policy_free(pol);
}

/*
 * The first permission readies the relay endpoint (the transport may bind it only then). When it
 * cannot (its port was taken meanwhile), CreatePermission and ChannelBind fail whole with 508,
 * nothing is installed, and a later request tries again.
 */
static void test_relay_arm_failure(void **state)
{
    (void)state;
    tc_t c;
    ar_turn_opts_t o = base_opts();
    tc_init(&c, &o);
    assert_int_equal(tc_allocate(&c), 0);
    assert_int_equal(c.tp.arms, 0); /* nothing readied at Allocate */
    c.tp.fail_arm = 1;
    assert_int_equal(tc_create_permission(&c, "1.2.3.5", 0), 508);
    assert_int_equal(tc_channel_bind(&c, 0x4000, "1.2.3.5", 9000), 508);
    assert_int_equal(ar_turn_engine_stats(c.e)->relay_bind_failed, 2);
    send_indication(&c, "1.2.3.5", 9000, "hello");
    assert_int_equal(c.tp.npeer, 0); /* no permission was installed */
    size_t before = c.tp.nclient;
    tc_from_peer(&c, "1.2.3.5", 9000, "hi", 2);
    assert_int_equal(c.tp.nclient, before);
    c.tp.fail_arm = 0;
    assert_int_equal(tc_channel_bind(&c, 0x4000, "1.2.3.5", 9000), 0);
    assert_int_equal(c.tp.arms, 3);
    assert_int_equal(tc_create_permission(&c, "1.2.3.6", 0), 0);
    assert_int_equal(c.tp.arms, 3); /* once ready, not again */
    send_indication(&c, "1.2.3.5", 9000, "hello");
    assert_int_equal(c.tp.npeer, 1);
    before = c.tp.nclient;
    tc_from_peer(&c, "1.2.3.5", 9000, "hi", 2);
    assert_int_equal(c.tp.nclient, before + 1);
    tc_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allocate_401_then_success),
        cmocka_unit_test(test_allocate_errors),
        cmocka_unit_test(test_retransmitted_allocate),
        cmocka_unit_test(test_refresh_and_expiry),
        cmocka_unit_test(test_permission_send_data),
        cmocka_unit_test(test_channels),
        cmocka_unit_test(test_stale_nonce),
        cmocka_unit_test(test_wrong_password_and_users),
        cmocka_unit_test(test_rest_credentials),
        cmocka_unit_test(test_quotas),
        cmocka_unit_test(test_peer_policy),
        cmocka_unit_test(test_bandwidth_cap),
        cmocka_unit_test(test_rate_limit_and_amplification),
        cmocka_unit_test(test_ipv6_allocation),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_tcp_allocation),
        cmocka_unit_test(test_relay_arm_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
