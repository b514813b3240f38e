/*
 * Fuzzes the STUN/TURN codec: classification, ChannelData framing, the message parser, every
 * attribute decoder, the integrity and fingerprint checks, and a parse -> rebuild -> parse round
 * trip that must give back the same attributes. Any disagreement aborts so the fuzzer keeps it.
 */
#include "stun/stun.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

/* The key used by tests/vectors/stun/turn_seeds.py: MD5("alice:anteroom:secret"). */
static void seed_key(uint8_t key[16])
{
    CHECK(ar_stun_long_term_key("alice", 5, "anteroom", 8, "secret", 6, key) == 0);
}

static int is_xor_addr(uint16_t t)
{
    return t == AR_STUN_ATTR_XOR_MAPPED_ADDRESS || t == AR_TURN_ATTR_XOR_PEER_ADDRESS ||
           t == AR_TURN_ATTR_XOR_RELAYED_ADDRESS;
}

static int is_plain_addr(uint16_t t)
{
    return t == AR_STUN_ATTR_MAPPED_ADDRESS || t == AR_STUN_ATTR_ALTERNATE_SERVER;
}

static int is_trailer(uint16_t t)
{
    return t == AR_STUN_ATTR_MESSAGE_INTEGRITY || t == AR_STUN_ATTR_MESSAGE_INTEGRITY_SHA256 ||
           t == AR_STUN_ATTR_FINGERPRINT;
}

static void fuzz_channel(const uint8_t *data, size_t size)
{
    uint16_t ch;
    const uint8_t *d;
    size_t dlen;
    if (ar_turn_channel_parse(data, size, &ch, &d, &dlen) != 0)
        return;
    CHECK(ch >= AR_TURN_CHANNEL_MIN && ch <= AR_TURN_CHANNEL_MAX);
    CHECK(d == data + 4 && dlen <= size - 4);
    size_t need;
    CHECK(ar_stun_classify(data, size, &need) == 2 && need >= 4 + dlen);
    /* Rebuilding the header gives the same bytes and the stream padding classify assumed. */
    uint8_t hdr[4];
    int pad = ar_turn_channel_header(hdr, ch, dlen);
    CHECK(pad >= 0 && pad < 4 && memcmp(hdr, data, 4) == 0 && need == 4 + dlen + (size_t)pad);
}

/* Runs every decoder on every attribute; they must fail cleanly or stay within the value. */
static void decode_all(const ar_stun_msg_t *m)
{
    for (size_t i = 0; i < m->nattrs; i++) {
        const ar_stun_attr_t *a = &m->attrs[i];
        CHECK(a->value >= m->raw + AR_STUN_HEADER_LEN && a->value + a->len <= m->raw + m->raw_len);
        uint32_t u;
        struct sockaddr_storage ss;
        int code;
        const uint8_t *reason;
        size_t rlen;
        if (ar_stun_attr_u32(a, &u) == 0)
            CHECK(a->len == 4);
        if (ar_stun_attr_addr(a, &ss) == 0)
            CHECK(ss.ss_family == AF_INET || ss.ss_family == AF_INET6);
        if (ar_stun_attr_xor_addr(a, m->tid, &ss) == 0)
            CHECK(ss.ss_family == AF_INET || ss.ss_family == AF_INET6);
        if (ar_stun_attr_error(a, &code, &reason, &rlen) == 0)
            CHECK(code >= 300 && code <= 699 && reason + rlen == a->value + a->len);
        CHECK(ar_stun_find(m, a->type) != NULL);
    }
}

/* Rebuilds one attribute through the typed builder that matches it, or copies it raw. */
static void rebuild_attr(ar_stun_builder_t *b, const ar_stun_msg_t *m, const ar_stun_attr_t *a)
{
    struct sockaddr_storage ss;
    int code;
    const uint8_t *reason;
    size_t rlen;
    if (is_xor_addr(a->type) && ar_stun_attr_xor_addr(a, m->tid, &ss) == 0) {
        ar_stun_build_xor_addr(b, a->type, (struct sockaddr *)&ss);
    } else if (is_plain_addr(a->type) && ar_stun_attr_addr(a, &ss) == 0) {
        ar_stun_build_addr(b, a->type, (struct sockaddr *)&ss);
    } else if (a->type == AR_STUN_ATTR_ERROR_CODE &&
               ar_stun_attr_error(a, &code, &reason, &rlen) == 0 &&
               memchr(reason, 0, rlen) == NULL) {
        char text[764];
        memcpy(text, reason, rlen);
        text[rlen] = 0;
        ar_stun_build_error(b, code, text);
    } else if (a->len == 4 &&
               (a->type == AR_TURN_ATTR_LIFETIME || a->type == AR_TURN_ATTR_CHANNEL_NUMBER)) {
        uint32_t u;
        CHECK(ar_stun_attr_u32(a, &u) == 0);
        ar_stun_build_u32(b, a->type, u);
    } else {
        ar_stun_build_attr(b, a->type, a->value, a->len);
    }
}

/* Two attributes mean the same thing: equal bytes, or equal decoded address. */
static void check_same(const ar_stun_msg_t *m1, const ar_stun_attr_t *a, const ar_stun_msg_t *m2,
                       const ar_stun_attr_t *b)
{
    CHECK(a->type == b->type);
    struct sockaddr_storage s1, s2;
    if (is_xor_addr(a->type) && ar_stun_attr_xor_addr(a, m1->tid, &s1) == 0) {
        CHECK(ar_stun_attr_xor_addr(b, m2->tid, &s2) == 0);
        CHECK(memcmp(&s1, &s2, sizeof(s1)) == 0);
    } else if (is_plain_addr(a->type) && ar_stun_attr_addr(a, &s1) == 0) {
        CHECK(ar_stun_attr_addr(b, &s2) == 0);
        CHECK(memcmp(&s1, &s2, sizeof(s1)) == 0);
    } else if (a->type == AR_STUN_ATTR_ERROR_CODE) {
        /* The class byte's spare bits are dropped on rebuild; compare the decoded code. */
        int c1, c2;
        const uint8_t *r1, *r2;
        size_t l1, l2;
        if (ar_stun_attr_error(a, &c1, &r1, &l1) == 0 && memchr(r1, 0, l1) == NULL) {
            CHECK(ar_stun_attr_error(b, &c2, &r2, &l2) == 0);
            CHECK(c1 == c2 && l1 == l2 && memcmp(r1, r2, l1) == 0);
        } else {
            CHECK(a->len == b->len && memcmp(a->value, b->value, a->len) == 0);
        }
    } else {
        CHECK(a->len == b->len && memcmp(a->value, b->value, a->len) == 0);
    }
}

static void round_trip(const ar_stun_msg_t *m, const uint8_t key[16])
{
    static uint8_t out[AR_STUN_HEADER_LEN + AR_STUN_MAX_MSG];
    ar_stun_builder_t b;
    ar_stun_build_start(&b, out, sizeof(out), m->method, m->cls, m->tid);
    size_t kept = 0;
    for (size_t i = 0; i < m->nattrs; i++) {
        if (is_trailer(m->attrs[i].type))
            continue;
        rebuild_attr(&b, m, &m->attrs[i]);
        kept++;
    }
    if (m->integrity_off != 0)
        ar_stun_build_integrity(&b, key, 16);
    if (m->fingerprint_off != 0)
        ar_stun_build_fingerprint(&b);
    int n = ar_stun_build_finish(&b);
    /* Same-size or smaller attributes than the input's, so the rebuild always fits. */
    CHECK(n > 0 && (size_t)n <= m->raw_len);

    ar_stun_msg_t m2;
    CHECK(ar_stun_parse(out, (size_t)n, &m2) == 0);
    CHECK(m2.method == m->method && m2.cls == m->cls);
    CHECK(memcmp(m2.tid, m->tid, AR_STUN_TID_LEN) == 0);
    size_t j = 0;
    for (size_t i = 0; i < m->nattrs; i++) {
        if (is_trailer(m->attrs[i].type))
            continue;
        CHECK(j < m2.nattrs);
        check_same(m, &m->attrs[i], &m2, &m2.attrs[j++]);
    }
    CHECK(j == kept);
    CHECK((m2.integrity_off != 0) == (m->integrity_off != 0));
    CHECK((m2.fingerprint_off != 0) == (m->fingerprint_off != 0));
    if (m2.integrity_off != 0)
        CHECK(ar_stun_check_integrity(&m2, key, 16) == 0);
    CHECK(ar_stun_check_fingerprint(&m2) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t need = 0;
    int kind = ar_stun_classify(data, size, &need);
    CHECK(kind >= 0 && kind <= 2);
    fuzz_channel(data, size);

    /* RFC 3489 Binding: an answer is small (no amplification) and echoes the transaction id. */
    struct sockaddr_in src = {.sin_family = AF_INET, .sin_port = htons(4242)};
    uint8_t classic[64];
    int cn = ar_stun_classic_binding_response(data, size, (struct sockaddr *)&src, classic,
                                              sizeof(classic));
    CHECK(cn == 0 || (cn == 32 && size >= 20 && memcmp(classic + 4, data + 4, 16) == 0));

    ar_stun_msg_t m;
    if (ar_stun_parse(data, size, &m) != 0)
        return 0;
    CHECK(m.raw == data && m.raw_len <= size && m.nattrs <= AR_STUN_MAX_ATTRS);
    CHECK(ar_stun_classify(data, size, &need) == 1 && need == m.raw_len);
    decode_all(&m);

    uint8_t key[16];
    seed_key(key);
    (void)ar_stun_check_fingerprint(&m);
    (void)ar_stun_check_integrity(&m, key, sizeof(key));
    round_trip(&m, key);
    return 0;
}
