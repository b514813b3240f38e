/*
 * STUN/TURN codec: RFC 5769's vectors parse, verify and rebuild byte for byte; every builder
 * function round-trips through the parser; malformed input is AR_EPARSE.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "stun/stun.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

/* RFC 5769 section 2: the short-term password of vectors 2.1-2.3. */
static const char short_pass[] = "VOkJxbRl1RmTxUk/WvJxBt";
static const uint8_t tid_2_1[12] = {0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34,
                                    0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae};

static size_t load(const char *name, uint8_t *buf, size_t cap)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", AR_STUN_VECTOR_DIR, name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    assert_true(n > 0 && n < cap);
    return n;
}

static void assert_attr(const ar_stun_msg_t *m, uint16_t type, const void *val, size_t len)
{
    const ar_stun_attr_t *a = ar_stun_find(m, type);
    assert_non_null(a);
    assert_int_equal(a->len, len);
    assert_memory_equal(a->value, val, len);
}

/* The vectors pad with spaces where our builder writes zeros; patch the padding to match. */
static void pad_last_with_spaces(ar_stun_builder_t *b, size_t value_len)
{
    for (size_t i = value_len; i % 4 != 0; i++)
        b->buf[b->len - 4 + (i % 4)] = 0x20;
}

static void test_rfc5769_request(void **state)
{
    (void)state;
    uint8_t v[256];
    size_t n = load("rfc5769_request.bin", v, sizeof(v));
    ar_stun_msg_t m;
    assert_int_equal(ar_stun_parse(v, n, &m), 0);
    assert_int_equal(m.method, AR_STUN_BINDING);
    assert_int_equal(m.cls, AR_STUN_REQUEST);
    assert_memory_equal(m.tid, tid_2_1, 12);
    assert_int_equal(m.raw_len, n);
    assert_int_equal(m.nattrs, 6);
    assert_attr(&m, AR_STUN_ATTR_SOFTWARE, "STUN test client", 16);
    assert_attr(&m, AR_STUN_ATTR_USERNAME, "evtj:h6vY", 9);
    uint32_t prio;
    assert_int_equal(ar_stun_attr_u32(ar_stun_find(&m, AR_STUN_ATTR_PRIORITY), &prio), 0);
    assert_int_equal(prio, 0x6e0001ff);
    assert_int_equal(ar_stun_check_fingerprint(&m), 0);
    const uint8_t *key = (const uint8_t *)short_pass;
    assert_int_equal(ar_stun_check_integrity(&m, key, strlen(short_pass)), 0);
    assert_int_equal(ar_stun_check_integrity(&m, key, strlen(short_pass) - 1), AR_EAUTH);

    const uint8_t tie[8] = {0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36};
    uint8_t out[256];
    ar_stun_builder_t b;
    ar_stun_build_start(&b, out, sizeof(out), AR_STUN_BINDING, AR_STUN_REQUEST, tid_2_1);
    ar_stun_build_attr(&b, AR_STUN_ATTR_SOFTWARE, "STUN test client", 16);
    ar_stun_build_u32(&b, AR_STUN_ATTR_PRIORITY, 0x6e0001ff);
    ar_stun_build_attr(&b, AR_STUN_ATTR_ICE_CONTROLLED, tie, sizeof(tie));
    ar_stun_build_attr(&b, AR_STUN_ATTR_USERNAME, "evtj:h6vY", 9);
    pad_last_with_spaces(&b, 9);
    ar_stun_build_integrity(&b, key, strlen(short_pass));
    ar_stun_build_fingerprint(&b);
    assert_int_equal(ar_stun_build_finish(&b), n);
    assert_memory_equal(out, v, n);

    /* One flipped bit anywhere before FINGERPRINT breaks both checks. */
    v[30] ^= 1;
    assert_int_equal(ar_stun_parse(v, n, &m), 0);
    assert_int_equal(ar_stun_check_fingerprint(&m), AR_EAUTH);
    assert_int_equal(ar_stun_check_integrity(&m, key, strlen(short_pass)), AR_EAUTH);
}

static void check_response(const char *file, const struct sockaddr *want, socklen_t want_len)
{
    uint8_t v[256];
    size_t n = load(file, v, sizeof(v));
    ar_stun_msg_t m;
    assert_int_equal(ar_stun_parse(v, n, &m), 0);
    assert_int_equal(m.method, AR_STUN_BINDING);
    assert_int_equal(m.cls, AR_STUN_SUCCESS);
    assert_attr(&m, AR_STUN_ATTR_SOFTWARE, "test vector", 11);
    struct sockaddr_storage ss;
    const ar_stun_attr_t *xa = ar_stun_find(&m, AR_STUN_ATTR_XOR_MAPPED_ADDRESS);
    assert_int_equal(ar_stun_attr_xor_addr(xa, m.tid, &ss), 0);
    assert_memory_equal(&ss, want, want_len);
    assert_int_equal(ar_stun_check_fingerprint(&m), 0);
    const uint8_t *key = (const uint8_t *)short_pass;
    assert_int_equal(ar_stun_check_integrity(&m, key, strlen(short_pass)), 0);

    uint8_t out[256];
    ar_stun_builder_t b;
    ar_stun_build_start(&b, out, sizeof(out), AR_STUN_BINDING, AR_STUN_SUCCESS, tid_2_1);
    ar_stun_build_attr(&b, AR_STUN_ATTR_SOFTWARE, "test vector", 11);
    pad_last_with_spaces(&b, 11);
    ar_stun_build_xor_addr(&b, AR_STUN_ATTR_XOR_MAPPED_ADDRESS, want);
    ar_stun_build_integrity(&b, key, strlen(short_pass));
    ar_stun_build_fingerprint(&b);
    assert_int_equal(ar_stun_build_finish(&b), n);
    assert_memory_equal(out, v, n);
}

static void test_rfc5769_responses(void **state)
{
    (void)state;
    struct sockaddr_in v4 = {.sin_family = AF_INET, .sin_port = htons(32853)};
    inet_pton(AF_INET, "192.0.2.1", &v4.sin_addr);
    check_response("rfc5769_response_v4.bin", (struct sockaddr *)&v4, sizeof(v4));
    struct sockaddr_in6 v6 = {.sin6_family = AF_INET6, .sin6_port = htons(32853)};
    inet_pton(AF_INET6, "2001:db8:1234:5678:11:2233:4455:6677", &v6.sin6_addr);
    check_response("rfc5769_response_v6.bin", (struct sockaddr *)&v6, sizeof(v6));
}

static void test_rfc5769_long_term(void **state)
{
    (void)state;
    uint8_t v[256];
    size_t n = load("rfc5769_request_ltc.bin", v, sizeof(v));
    /* The username is six katakana characters; the password is "TheMatrIX" after SASLprep. */
    static const char user[] = "\xe3\x83\x9e\xe3\x83\x88\xe3\x83\xaa\xe3\x83\x83\xe3\x82\xaf"
                               "\xe3\x82\xb9";
    static const char nonce[] = "f//499k954d6OL34oL9FSTvy64sA";
    static const uint8_t tid[12] = {0x78, 0xad, 0x34, 0x33, 0xc6, 0xad,
                                    0x72, 0xc0, 0x29, 0xda, 0x41, 0x2e};
    ar_stun_msg_t m;
    assert_int_equal(ar_stun_parse(v, n, &m), 0);
    assert_int_equal(m.fingerprint_off, 0);
    assert_attr(&m, AR_STUN_ATTR_USERNAME, user, 18);
    assert_attr(&m, AR_STUN_ATTR_NONCE, nonce, 28);
    assert_attr(&m, AR_STUN_ATTR_REALM, "example.org", 11);
    uint8_t key[16];
    assert_int_equal(ar_stun_long_term_key(user, 18, "example.org", 11, "TheMatrIX", 9, key), 0);
    assert_int_equal(ar_stun_check_integrity(&m, key, sizeof(key)), 0);
    assert_int_equal(ar_stun_check_fingerprint(&m), 0);
    key[0] ^= 1;
    assert_int_equal(ar_stun_check_integrity(&m, key, sizeof(key)), AR_EAUTH);
    key[0] ^= 1;

    uint8_t out[256];
    ar_stun_builder_t b;
    ar_stun_build_start(&b, out, sizeof(out), AR_STUN_BINDING, AR_STUN_REQUEST, tid);
    ar_stun_build_attr(&b, AR_STUN_ATTR_USERNAME, user, 18);
    ar_stun_build_attr(&b, AR_STUN_ATTR_NONCE, nonce, 28);
    ar_stun_build_attr(&b, AR_STUN_ATTR_REALM, "example.org", 11);
    ar_stun_build_integrity(&b, key, sizeof(key));
    assert_int_equal(ar_stun_build_finish(&b), n);
    assert_memory_equal(out, v, n);
}

static const uint8_t tid_x[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};

/* Every method and class survives the bit interleaving of the message type. */
static void test_type_round_trip(void **state)
{
    (void)state;
    uint8_t out[64];
    for (uint16_t method = 0; method <= 0xfff; method += 7) {
        for (uint8_t cls = 0; cls < 4; cls++) {
            ar_stun_builder_t b;
            ar_stun_build_start(&b, out, sizeof(out), method, cls, tid_x);
            int n = ar_stun_build_finish(&b);
            assert_int_equal(n, 20);
            ar_stun_msg_t m;
            assert_int_equal(ar_stun_parse(out, (size_t)n, &m), 0);
            assert_int_equal(m.method, method);
            assert_int_equal(m.cls, cls);
            assert_int_equal(m.nattrs, 0);
        }
    }
    /* Known wire values: Allocate request 0x0003, ChannelBind success 0x0109, error 0x0119. */
    ar_stun_builder_t b;
    ar_stun_build_start(&b, out, sizeof(out), AR_TURN_CHANNEL_BIND, AR_STUN_ERROR, tid_x);
    assert_int_equal(out[0], 0x01);
    assert_int_equal(out[1], 0x19);
    ar_stun_build_start(&b, out, sizeof(out), AR_TURN_DATA, AR_STUN_INDICATION, tid_x);
    assert_int_equal(out[0], 0x00);
    assert_int_equal(out[1], 0x17);
    ar_stun_build_start(&b, out, sizeof(out), 0x1000, 0, tid_x);
    assert_int_equal(ar_stun_build_finish(&b), AR_EINVAL);
}

static void test_builder_round_trip(void **state)
{
    (void)state;
    uint8_t out[512];
    ar_stun_builder_t b;
    struct sockaddr_in v4 = {.sin_family = AF_INET, .sin_port = htons(3478)};
    inet_pton(AF_INET, "198.51.100.7", &v4.sin_addr);
    struct sockaddr_in6 v6 = {.sin6_family = AF_INET6, .sin6_port = htons(65535)};
    inet_pton(AF_INET6, "2001:db8::1:2", &v6.sin6_addr);
    const uint8_t token[8] = {9, 8, 7, 6, 5, 4, 3, 2};
    const uint8_t key[16] = {0xaa, 0xbb};

    ar_stun_build_start(&b, out, sizeof(out), AR_TURN_ALLOCATE, AR_STUN_SUCCESS, tid_x);
    ar_stun_build_xor_addr(&b, AR_TURN_ATTR_XOR_RELAYED_ADDRESS, (struct sockaddr *)&v4);
    ar_stun_build_xor_addr(&b, AR_STUN_ATTR_XOR_MAPPED_ADDRESS, (struct sockaddr *)&v6);
    ar_stun_build_addr(&b, AR_STUN_ATTR_MAPPED_ADDRESS, (struct sockaddr *)&v4);
    ar_stun_build_addr(&b, AR_STUN_ATTR_ALTERNATE_SERVER, (struct sockaddr *)&v6);
    ar_stun_build_u32(&b, AR_TURN_ATTR_LIFETIME, 600);
    ar_stun_build_attr(&b, AR_TURN_ATTR_RESERVATION_TOKEN, token, sizeof(token));
    ar_stun_build_attr(&b, AR_TURN_ATTR_DONT_FRAGMENT, NULL, 0);
    ar_stun_build_attr(&b, AR_STUN_ATTR_SOFTWARE, "x", 1);
    ar_stun_build_integrity(&b, key, sizeof(key));
    ar_stun_build_fingerprint(&b);
    int n = ar_stun_build_finish(&b);
    assert_true(n > 20);
    assert_int_equal(n % 4, 0);

    ar_stun_msg_t m;
    assert_int_equal(ar_stun_parse(out, (size_t)n, &m), 0);
    assert_int_equal(m.method, AR_TURN_ALLOCATE);
    assert_int_equal(m.cls, AR_STUN_SUCCESS);
    assert_int_equal(m.nattrs, 10);
    struct sockaddr_storage ss;
    assert_int_equal(
        ar_stun_attr_xor_addr(ar_stun_find(&m, AR_TURN_ATTR_XOR_RELAYED_ADDRESS), m.tid, &ss), 0);
    assert_memory_equal(&ss, &v4, sizeof(v4));
    assert_int_equal(
        ar_stun_attr_xor_addr(ar_stun_find(&m, AR_STUN_ATTR_XOR_MAPPED_ADDRESS), m.tid, &ss), 0);
    assert_memory_equal(&ss, &v6, sizeof(v6));
    assert_int_equal(ar_stun_attr_addr(ar_stun_find(&m, AR_STUN_ATTR_MAPPED_ADDRESS), &ss), 0);
    assert_memory_equal(&ss, &v4, sizeof(v4));
    assert_int_equal(ar_stun_attr_addr(ar_stun_find(&m, AR_STUN_ATTR_ALTERNATE_SERVER), &ss), 0);
    assert_memory_equal(&ss, &v6, sizeof(v6));
    uint32_t life;
    assert_int_equal(ar_stun_attr_u32(ar_stun_find(&m, AR_TURN_ATTR_LIFETIME), &life), 0);
    assert_int_equal(life, 600);
    assert_attr(&m, AR_TURN_ATTR_RESERVATION_TOKEN, token, sizeof(token));
    assert_attr(&m, AR_TURN_ATTR_DONT_FRAGMENT, "", 0);
    const ar_stun_attr_t *sw = ar_stun_find(&m, AR_STUN_ATTR_SOFTWARE);
    assert_int_equal(sw->len, 1);
    assert_int_equal(sw->value[1] | sw->value[2] | sw->value[3], 0); /* zero padding */
    assert_int_equal(ar_stun_check_integrity(&m, key, sizeof(key)), 0);
    assert_int_equal(ar_stun_check_fingerprint(&m), 0);
    assert_null(ar_stun_find(&m, AR_STUN_ATTR_NONCE));
    /* Decoders check lengths: SOFTWARE's single byte is no u32. */
    assert_int_equal(ar_stun_attr_u32(ar_stun_find(&m, AR_STUN_ATTR_SOFTWARE), &life), AR_EPARSE);
}

static void test_build_error(void **state)
{
    (void)state;
    uint8_t out[1024];
    ar_stun_builder_t b;
    static const struct {
        int code;
        const char *reason;
        const char *want;
    } cases[] = {
        {300, NULL, "Try Alternate"},
        {401, NULL, "Unauthenticated"},
        {403, NULL, "Forbidden"},
        {437, NULL, "Allocation Mismatch"},
        {438, NULL, "Stale Nonce"},
        {441, NULL, "Wrong Credentials"},
        {442, NULL, "Unsupported Transport Protocol"},
        {486, NULL, "Allocation Quota Reached"},
        {508, NULL, "Insufficient Capacity"},
        {420, "Custom", "Custom"},
        {699, NULL, ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ar_stun_build_start(&b, out, sizeof(out), AR_TURN_ALLOCATE, AR_STUN_ERROR, tid_x);
        ar_stun_build_error(&b, cases[i].code, cases[i].reason);
        int n = ar_stun_build_finish(&b);
        assert_true(n > 0);
        ar_stun_msg_t m;
        assert_int_equal(ar_stun_parse(out, (size_t)n, &m), 0);
        int code;
        const uint8_t *reason;
        size_t rlen;
        const ar_stun_attr_t *a = ar_stun_find(&m, AR_STUN_ATTR_ERROR_CODE);
        assert_int_equal(ar_stun_attr_error(a, &code, &reason, &rlen), 0);
        assert_int_equal(code, cases[i].code);
        assert_int_equal(rlen, strlen(cases[i].want));
        assert_memory_equal(reason, cases[i].want, rlen);
    }
    ar_stun_build_start(&b, out, sizeof(out), AR_TURN_ALLOCATE, AR_STUN_ERROR, tid_x);
    ar_stun_build_error(&b, 299, NULL);
    assert_int_equal(ar_stun_build_finish(&b), AR_EINVAL);
    ar_stun_build_start(&b, out, sizeof(out), AR_TURN_ALLOCATE, AR_STUN_ERROR, tid_x);
    ar_stun_build_error(&b, 700, NULL);
    assert_int_equal(ar_stun_build_finish(&b), AR_EINVAL);
    char longr[800];
    memset(longr, 'a', sizeof(longr) - 1);
    longr[sizeof(longr) - 1] = 0;
    ar_stun_build_start(&b, out, sizeof(out), AR_TURN_ALLOCATE, AR_STUN_ERROR, tid_x);
    ar_stun_build_error(&b, 400, longr);
    assert_int_equal(ar_stun_build_finish(&b), AR_EINVAL);
}

static void test_builder_errors(void **state)
{
    (void)state;
    uint8_t out[64];
    ar_stun_builder_t b;
    /* No room: the first failure sticks and later adds do nothing. */
    ar_stun_build_start(&b, out, 19, AR_STUN_BINDING, AR_STUN_REQUEST, tid_x);
    assert_int_equal(ar_stun_build_finish(&b), AR_ETOOBIG);
    ar_stun_build_start(&b, out, 32, AR_STUN_BINDING, AR_STUN_REQUEST, tid_x);
    ar_stun_build_u32(&b, AR_TURN_ATTR_LIFETIME, 1);
    ar_stun_build_u32(&b, AR_TURN_ATTR_LIFETIME, 2);
    ar_stun_build_u32(&b, AR_TURN_ATTR_LIFETIME, 3);
    assert_int_equal(ar_stun_build_finish(&b), AR_ETOOBIG);
    assert_int_equal(b.len, 28);
    ar_stun_build_start(&b, out, sizeof(out), AR_STUN_BINDING, AR_STUN_REQUEST, tid_x);
    ar_stun_build_integrity(&b, (const uint8_t *)"k", 1);
    ar_stun_build_fingerprint(&b);
    assert_int_equal(ar_stun_build_finish(&b), 20 + 24 + 8);
    ar_stun_build_fingerprint(&b);
    ar_stun_build_integrity(&b, (const uint8_t *)"k", 1);
    assert_int_equal(ar_stun_build_finish(&b), AR_EINVAL);
    /* Nothing ordinary after MESSAGE-INTEGRITY or FINGERPRINT. */
    ar_stun_build_start(&b, out, sizeof(out), AR_STUN_BINDING, AR_STUN_REQUEST, tid_x);
    ar_stun_build_fingerprint(&b);
    ar_stun_build_u32(&b, AR_TURN_ATTR_LIFETIME, 1);
    assert_int_equal(ar_stun_build_finish(&b), AR_EINVAL);
    ar_stun_build_start(&b, out, sizeof(out), AR_STUN_BINDING, AR_STUN_REQUEST, tid_x);
    ar_stun_build_integrity(&b, (const uint8_t *)"k", 1);
    ar_stun_build_attr(&b, AR_STUN_ATTR_SOFTWARE, "x", 1);
    assert_int_equal(ar_stun_build_finish(&b), AR_EINVAL);
    /* An address of an unknown family. */
    struct sockaddr sa = {.sa_family = AF_UNIX};
    ar_stun_build_start(&b, out, sizeof(out), AR_STUN_BINDING, AR_STUN_REQUEST, tid_x);
    ar_stun_build_addr(&b, AR_STUN_ATTR_MAPPED_ADDRESS, &sa);
    assert_int_equal(ar_stun_build_finish(&b), AR_EINVAL);
    ar_stun_build_start(&b, out, sizeof(out), AR_STUN_BINDING, AR_STUN_REQUEST, tid_x);
    ar_stun_build_attr(&b, AR_STUN_ATTR_SOFTWARE, NULL, 3);
    assert_int_equal(ar_stun_build_finish(&b), AR_EINVAL);
    /* A body past the 16-bit length field's reach. */
    static uint8_t big[70000];
    static uint8_t huge[70000];
    ar_stun_build_start(&b, huge, sizeof(huge), AR_STUN_BINDING, AR_STUN_REQUEST, tid_x);
    ar_stun_build_attr(&b, AR_TURN_ATTR_DATA, big, 65530);
    assert_int_equal(ar_stun_build_finish(&b), AR_ETOOBIG);
    ar_stun_build_start(&b, huge, sizeof(huge), AR_STUN_BINDING, AR_STUN_REQUEST, tid_x);
    ar_stun_build_attr(&b, AR_TURN_ATTR_DATA, big, 65528);
    int n = ar_stun_build_finish(&b);
    assert_int_equal(n, 20 + 65532);
    ar_stun_msg_t m;
    assert_int_equal(ar_stun_parse(huge, (size_t)n, &m), 0);
}

/* A valid message to break: Binding request, one 4-byte attribute, given body length. */
static size_t mk(uint8_t *buf, uint16_t body_len)
{
    memset(buf, 0, 128);
    buf[1] = 0x01;
    buf[2] = (uint8_t)(body_len >> 8);
    buf[3] = (uint8_t)body_len;
    buf[4] = 0x21, buf[5] = 0x12, buf[6] = 0xa4, buf[7] = 0x42;
    return 20 + (size_t)body_len;
}

static void put_attr(uint8_t *p, uint16_t type, uint16_t len)
{
    p[0] = (uint8_t)(type >> 8);
    p[1] = (uint8_t)type;
    p[2] = (uint8_t)(len >> 8);
    p[3] = (uint8_t)len;
}

static void test_malformed(void **state)
{
    (void)state;
    uint8_t buf[512];
    ar_stun_msg_t m;
    size_t n = mk(buf, 8);
    put_attr(buf + 20, AR_TURN_ATTR_LIFETIME, 4);
    assert_int_equal(ar_stun_parse(buf, n, &m), 0);
    assert_int_equal(ar_stun_parse(buf, 19, &m), AR_EPARSE);    /* shorter than a header */
    assert_int_equal(ar_stun_parse(buf, n - 1, &m), AR_EPARSE); /* length beyond the buffer */
    assert_int_equal(ar_stun_parse(NULL, 0, &m), AR_EPARSE);
    buf[7] = 0x43; /* bad cookie */
    assert_int_equal(ar_stun_parse(buf, n, &m), AR_EPARSE);
    buf[7] = 0x42;
    buf[0] = 0x80; /* top bits set */
    assert_int_equal(ar_stun_parse(buf, n, &m), AR_EPARSE);
    buf[0] = 0;
    buf[3] = 6; /* length not a multiple of 4 */
    assert_int_equal(ar_stun_parse(buf, n, &m), AR_EPARSE);
    buf[3] = 8;
    put_attr(buf + 20, AR_TURN_ATTR_LIFETIME, 5); /* attribute overruns the message */
    assert_int_equal(ar_stun_parse(buf, n, &m), AR_EPARSE);
    put_attr(buf + 20, AR_TURN_ATTR_LIFETIME, 0xffff);
    assert_int_equal(ar_stun_parse(buf, n, &m), AR_EPARSE);

    /* An attribute after FINGERPRINT; FINGERPRINT and MESSAGE-INTEGRITY of the wrong length. */
    n = mk(buf, 16);
    put_attr(buf + 20, AR_STUN_ATTR_FINGERPRINT, 4);
    put_attr(buf + 28, AR_TURN_ATTR_LIFETIME, 4);
    assert_int_equal(ar_stun_parse(buf, n, &m), AR_EPARSE);
    n = mk(buf, 12);
    put_attr(buf + 20, AR_STUN_ATTR_FINGERPRINT, 8);
    assert_int_equal(ar_stun_parse(buf, n, &m), AR_EPARSE);
    n = mk(buf, 12);
    put_attr(buf + 20, AR_STUN_ATTR_MESSAGE_INTEGRITY, 8);
    assert_int_equal(ar_stun_parse(buf, n, &m), AR_EPARSE);

    /* Anything but FINGERPRINT after MESSAGE-INTEGRITY; MESSAGE-INTEGRITY twice. */
    n = mk(buf, 32);
    put_attr(buf + 20, AR_STUN_ATTR_MESSAGE_INTEGRITY, 20);
    put_attr(buf + 44, AR_TURN_ATTR_LIFETIME, 4);
    assert_int_equal(ar_stun_parse(buf, n, &m), AR_EPARSE);
    put_attr(buf + 44, AR_STUN_ATTR_FINGERPRINT, 4);
    assert_int_equal(ar_stun_parse(buf, n, &m), 0);
    assert_int_equal(m.integrity_off, 20);
    assert_int_equal(m.fingerprint_off, 44);
    n = mk(buf, 48);
    put_attr(buf + 20, AR_STUN_ATTR_MESSAGE_INTEGRITY, 20);
    put_attr(buf + 44, AR_STUN_ATTR_MESSAGE_INTEGRITY, 20);
    assert_int_equal(ar_stun_parse(buf, n, &m), AR_EPARSE);
    /* MESSAGE-INTEGRITY-SHA256 may follow MESSAGE-INTEGRITY but not precede it. */
    n = mk(buf, 60);
    put_attr(buf + 20, AR_STUN_ATTR_MESSAGE_INTEGRITY, 20);
    put_attr(buf + 44, AR_STUN_ATTR_MESSAGE_INTEGRITY_SHA256, 32);
    assert_int_equal(ar_stun_parse(buf, n, &m), 0);
    assert_int_equal(m.integrity_sha256_off, 44);
    put_attr(buf + 20, AR_STUN_ATTR_MESSAGE_INTEGRITY_SHA256, 32);
    put_attr(buf + 56, AR_STUN_ATTR_MESSAGE_INTEGRITY, 20);
    assert_int_equal(ar_stun_parse(buf, n, &m), AR_EPARSE);

    /* AR_STUN_MAX_ATTRS attributes parse; one more is too many. */
    n = mk(buf, 4 * AR_STUN_MAX_ATTRS);
    for (size_t i = 0; i < AR_STUN_MAX_ATTRS; i++)
        put_attr(buf + 20 + 4 * i, AR_TURN_ATTR_DONT_FRAGMENT, 0);
    assert_int_equal(ar_stun_parse(buf, n, &m), 0);
    assert_int_equal(m.nattrs, AR_STUN_MAX_ATTRS);
    n = mk(buf, 4 * (AR_STUN_MAX_ATTRS + 1));
    for (size_t i = 0; i < AR_STUN_MAX_ATTRS + 1; i++)
        put_attr(buf + 20 + 4 * i, AR_TURN_ATTR_DONT_FRAGMENT, 0);
    assert_int_equal(ar_stun_parse(buf, n, &m), AR_EPARSE);

    /* Integrity absent is a failure; fingerprint absent is not. */
    n = mk(buf, 0);
    assert_int_equal(ar_stun_parse(buf, n, &m), 0);
    assert_int_equal(ar_stun_check_integrity(&m, (const uint8_t *)"k", 1), AR_EAUTH);
    assert_int_equal(ar_stun_check_fingerprint(&m), 0);
}

static void test_decoders_reject(void **state)
{
    (void)state;
    uint8_t v[24] = {0};
    ar_stun_attr_t a = {.type = AR_STUN_ATTR_MAPPED_ADDRESS, .len = 8, .value = v};
    struct sockaddr_storage ss;
    uint32_t u;
    v[1] = 0x03; /* unknown family */
    assert_int_equal(ar_stun_attr_addr(&a, &ss), AR_EPARSE);
    v[1] = 0x02; /* IPv6 in 8 bytes */
    assert_int_equal(ar_stun_attr_addr(&a, &ss), AR_EPARSE);
    v[1] = 0x01;
    assert_int_equal(ar_stun_attr_addr(&a, &ss), 0);
    a.len = 20; /* IPv4 in 20 bytes */
    assert_int_equal(ar_stun_attr_xor_addr(&a, tid_x, &ss), AR_EPARSE);
    a.len = 2;
    assert_int_equal(ar_stun_attr_addr(&a, &ss), AR_EPARSE);
    assert_int_equal(ar_stun_attr_u32(&a, &u), AR_EPARSE);
    assert_int_equal(ar_stun_attr_u32(NULL, &u), AR_EPARSE);
    assert_int_equal(ar_stun_attr_addr(NULL, &ss), AR_EPARSE);

    int code;
    const uint8_t *r;
    size_t rl;
    a.len = 4;
    v[2] = 2, v[3] = 0; /* class 2 is not an error */
    assert_int_equal(ar_stun_attr_error(&a, &code, &r, &rl), AR_EPARSE);
    v[2] = 4, v[3] = 100; /* number past 99 */
    assert_int_equal(ar_stun_attr_error(&a, &code, &r, &rl), AR_EPARSE);
    v[2] = 4, v[3] = 38;
    assert_int_equal(ar_stun_attr_error(&a, &code, &r, &rl), 0);
    assert_int_equal(code, 438);
    assert_int_equal(rl, 0);
    a.len = 3;
    assert_int_equal(ar_stun_attr_error(&a, &code, &r, &rl), AR_EPARSE);
}

static void test_channel_data(void **state)
{
    (void)state;
    uint8_t buf[16] = {0x40, 0x01, 0x00, 0x05, 'h', 'e', 'l', 'l', 'o', 0, 0, 0};
    uint16_t ch;
    const uint8_t *data;
    size_t dlen;
    assert_int_equal(ar_turn_channel_parse(buf, 9, &ch, &data, &dlen), 0);
    assert_int_equal(ch, 0x4001);
    assert_int_equal(dlen, 5);
    assert_memory_equal(data, "hello", 5);
    assert_int_equal(ar_turn_channel_parse(buf, 12, &ch, &data, &dlen), 0);        /* padded */
    assert_int_equal(ar_turn_channel_parse(buf, 8, &ch, &data, &dlen), AR_EPARSE); /* truncated */
    assert_int_equal(ar_turn_channel_parse(buf, 3, &ch, &data, &dlen), AR_EPARSE);
    buf[0] = 0x50; /* RFC 5766's range, still used by clients */
    assert_int_equal(ar_turn_channel_parse(buf, 9, &ch, &data, &dlen), 0);
    assert_int_equal(ch, 0x5001);
    buf[0] = 0x80; /* leading bits 10: not a channel */
    assert_int_equal(ar_turn_channel_parse(buf, 9, &ch, &data, &dlen), AR_EPARSE);
    buf[0] = 0x3f;
    assert_int_equal(ar_turn_channel_parse(buf, 9, &ch, &data, &dlen), AR_EPARSE);
    buf[0] = 0x7f, buf[1] = 0xff, buf[3] = 0;
    assert_int_equal(ar_turn_channel_parse(buf, 4, &ch, &data, &dlen), 0);
    assert_int_equal(ch, 0x7fff);
    assert_int_equal(dlen, 0);
}

/* Our two-part HMAC against OpenSSL's one-shot HMAC(), with keys shorter and longer than a block.
 */
static void test_integrity_against_openssl(void **state)
{
    (void)state;
    uint8_t key[100];
    for (size_t i = 0; i < sizeof(key); i++)
        key[i] = (uint8_t)(i * 7 + 1);
    const size_t keylens[] = {0, 1, 16, 64, 65, 100};
    for (size_t k = 0; k < sizeof(keylens) / sizeof(keylens[0]); k++) {
        uint8_t out[128];
        ar_stun_builder_t b;
        ar_stun_build_start(&b, out, sizeof(out), AR_TURN_REFRESH, AR_STUN_REQUEST, tid_x);
        ar_stun_build_attr(&b, AR_STUN_ATTR_USERNAME, "user", 4);
        ar_stun_build_u32(&b, AR_TURN_ATTR_LIFETIME, 0);
        ar_stun_build_integrity(&b, key, keylens[k]);
        ar_stun_build_fingerprint(&b);
        int n = ar_stun_build_finish(&b);
        assert_int_equal(n, 20 + 8 + 8 + 24 + 8);
        /* RFC 8489 14.5: HMAC over the message up to MESSAGE-INTEGRITY, length counting it. */
        uint8_t copy[128];
        memcpy(copy, out, 36);
        copy[2] = 0;
        copy[3] = 8 + 8 + 24;
        uint8_t mac[20];
        unsigned maclen = 0;
        assert_non_null(HMAC(EVP_sha1(), key, (int)keylens[k], copy, 36, mac, &maclen));
        assert_int_equal(maclen, 20);
        assert_memory_equal(out + 40, mac, 20);
        ar_stun_msg_t m;
        assert_int_equal(ar_stun_parse(out, (size_t)n, &m), 0);
        assert_int_equal(ar_stun_check_integrity(&m, key, keylens[k]), 0);
        assert_int_equal(ar_stun_check_fingerprint(&m), 0);
    }
}

static void test_channel_header(void **state)
{
    (void)state;
    uint8_t hdr[4];
    assert_int_equal(ar_turn_channel_header(hdr, 0x4001, 5), 3);
    assert_memory_equal(hdr, "\x40\x01\x00\x05", 4);
    assert_int_equal(ar_turn_channel_header(hdr, 0x4fff, 0), 0);
    assert_int_equal(ar_turn_channel_header(hdr, 0x4000, 65535), 1);
    assert_int_equal(ar_turn_channel_header(hdr, 0x3fff, 4), AR_EINVAL);
    assert_int_equal(ar_turn_channel_header(hdr, 0x7fff, 4), 0);
    assert_int_equal(ar_turn_channel_header(hdr, 0x8000, 4), AR_EINVAL);
    assert_int_equal(ar_turn_channel_header(hdr, 0x4000, 65536), AR_EINVAL);
    uint8_t frame[16] = {0, 0, 0, 0, 'a', 'b', 'c', 'd', 'e', 'f'};
    assert_int_equal(ar_turn_channel_header(frame, 0x4123, 6), 2);
    uint16_t ch;
    const uint8_t *data;
    size_t dlen, need;
    assert_int_equal(ar_stun_classify(frame, 12, &need), 2);
    assert_int_equal(need, 12);
    assert_int_equal(ar_turn_channel_parse(frame, 12, &ch, &data, &dlen), 0);
    assert_int_equal(ch, 0x4123);
    assert_int_equal(dlen, 6);
    assert_memory_equal(data, "abcdef", 6);
}

static void test_classify(void **state)
{
    (void)state;
    uint8_t v[256];
    size_t n = load("rfc5769_request.bin", v, sizeof(v));
    size_t need = 99;
    assert_int_equal(ar_stun_classify(v, n, &need), 1);
    assert_int_equal(need, n);
    /* Prefixes: too short to know the length, then known. */
    assert_int_equal(ar_stun_classify(v, 2, &need), 1);
    assert_int_equal(need, 0);
    assert_int_equal(ar_stun_classify(v, 4, &need), 1);
    assert_int_equal(need, n);
    assert_int_equal(ar_stun_classify(v, 20, NULL), 1);
    assert_int_equal(ar_stun_classify(v, 0, &need), 0);
    v[5] = 0; /* cookie gone */
    assert_int_equal(ar_stun_classify(v, n, &need), 0);
    v[5] = 0x12;
    v[3] = 0x57; /* length not a multiple of 4 */
    assert_int_equal(ar_stun_classify(v, n, &need), 0);

    const uint8_t cd[] = {0x40, 0x00, 0x00, 0x05, 1, 2, 3, 4, 5};
    assert_int_equal(ar_stun_classify(cd, sizeof(cd), &need), 2);
    assert_int_equal(need, 12); /* 4 + 5 rounded up to 8 over streams */
    assert_int_equal(ar_stun_classify(cd, 1, &need), 2);
    assert_int_equal(need, 0);
    const uint8_t dtls[] = {0x16, 0xfe, 0xfd, 0, 0, 0, 0, 0}; /* DTLS: top bits 00, no cookie */
    assert_int_equal(ar_stun_classify(dtls, sizeof(dtls), &need), 0);
    const uint8_t rtp[] = {0x80, 0x60, 0, 1};
    assert_int_equal(ar_stun_classify(rtp, sizeof(rtp), &need), 0);
    const uint8_t wide[] = {0x7f, 0xff, 0, 1, 9}; /* RFC 5766 channel */
    assert_int_equal(ar_stun_classify(wide, sizeof(wide), &need), 2);
    assert_int_equal(need, 8);
    const uint8_t tls[] = {0x16, 0x03, 0x01, 0x01, 0x00, 0x01, 0, 0}; /* TLS ClientHello */
    assert_int_equal(ar_stun_classify(tls, sizeof(tls), &need), 0);
}

/* RFC 3489 Binding requests, as Debian's stun 0.97 sends them, get MAPPED-ADDRESS. */
static void test_classic_binding(void **state)
{
    (void)state;
    uint8_t req[28] = {0x00, 0x01, 0x00, 0x08};
    for (int i = 4; i < 20; i++)
        req[i] = (uint8_t)(0xa0 + i); /* 128-bit transaction id, no magic cookie */
    req[21] = 0x03;                   /* CHANGE-REQUEST, length 4, no flags */
    req[23] = 0x04;
    struct sockaddr_in src = {.sin_family = AF_INET, .sin_port = htons(40000)};
    src.sin_addr.s_addr = htonl(0xc0000201); /* 192.0.2.1 */
    uint8_t out[64];
    int n = ar_stun_classic_binding_response(req, sizeof(req), (struct sockaddr *)&src, out,
                                             sizeof(out));
    assert_int_equal(n, 32);
    static const uint8_t attr[12] = {0x00, 0x01, 0x00, 0x08, 0x00, 0x01,
                                     0x9c, 0x40, 0xc0, 0x00, 0x02, 0x01};
    assert_int_equal(out[0], 0x01);
    assert_int_equal(out[1], 0x01);
    assert_int_equal(out[3], 12);
    assert_memory_equal(out + 4, req + 4, 16);
    assert_memory_equal(out + 20, attr, sizeof(attr));
    /* A change of address or port we cannot make: no answer. */
    req[27] = 0x06;
    assert_int_equal(ar_stun_classic_binding_response(req, sizeof(req), (struct sockaddr *)&src,
                                                      out, sizeof(out)),
                     0);
    req[27] = 0;
    /* A modern request (magic cookie), a wrong length, and a too small buffer. */
    uint8_t modern[20] = {0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42};
    assert_int_equal(ar_stun_classic_binding_response(modern, sizeof(modern),
                                                      (struct sockaddr *)&src, out, sizeof(out)),
                     0);
    assert_int_equal(ar_stun_classic_binding_response(req, sizeof(req) - 4, (struct sockaddr *)&src,
                                                      out, sizeof(out)),
                     0);
    assert_int_equal(
        ar_stun_classic_binding_response(req, sizeof(req), (struct sockaddr *)&src, out, 16),
        AR_ETOOBIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classic_binding),
        cmocka_unit_test(test_rfc5769_request),
        cmocka_unit_test(test_rfc5769_responses),
        cmocka_unit_test(test_rfc5769_long_term),
        cmocka_unit_test(test_type_round_trip),
        cmocka_unit_test(test_builder_round_trip),
        cmocka_unit_test(test_build_error),
        cmocka_unit_test(test_builder_errors),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_decoders_reject),
        cmocka_unit_test(test_channel_data),
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_integrity_against_openssl),
        cmocka_unit_test(test_channel_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
