/*
 * The relay's frame from the client's bytes (ar_sig_build_relay, build.c) against the builder:
 * for every relayed offer, answer and candidate the flat parse reads, the same bytes as
 * ar_sig_build writes for the same message, and parsed back, the client's values with "from"
 * for "to"; frames the full parse reads, and messages not from a flat parse, left to the
 * builder (0); the same AR_ETOOBIG at the same size.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "internal.h"

#include <stdio.h>
#include <string.h>

#define C AR_SIG_FROM_CLIENT
#define S AR_SIG_FROM_SERVER
#define FLAGS (AR_SIG_PARSE_KEEP_SDP_JSON | AR_SIG_PARSE_BORROW)

/* The sender's peer id, as the server's are: 22 characters of base64url. */
static const char from[] = "Ab-_0123456789abcdefgh";

static char fast[AR_SIG_OUT_MAX + 1], built[AR_SIG_OUT_MAX + 1];
static char frame[AR_SIG_FRAME_MAX + 1];

static int str_eq(ar_sig_str_t a, ar_sig_str_t b)
{
    return (a.p == NULL) == (b.p == NULL) && a.len == b.len &&
           (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static ar_sig_str_t *peer_of(ar_sig_msg_t *m)
{
    return m->type == AR_SIG_CANDIDATE ? &m->u.cand.peer : &m->u.sdp.peer;
}

/*
 * What on_relay does with frame f (parse as the server does, "to" becomes "from", seq 0), then
 * both builds at cap. flat: whether the flat parse must read it (the fast path taken). Checks
 * the two agree, and that the frame parsed back holds the client's values. Returns the length.
 */
static int relay(const char *f, size_t len, int flat, size_t cap)
{
    ar_sig_msg_t m, want, back;
    ar_sig_err_t err;
    if (ar_sig_parse2(C, f, len, FLAGS, &m, &err) != 0)
        fail_msg("refused: %s: %.100s", err.text, f);
    assert_int_equal(m.flat_ != NULL, flat);
    *peer_of(&m) = (ar_sig_str_t){from, sizeof(from) - 1};
    m.seq = 0;
    int n1 = ar_sig_build_relay(&m, fast, cap);
    int n2 = ar_sig_build(S, &m, built, cap);
    if (!flat) {
        assert_int_equal(n1, 0); /* the builder's */
        ar_sig_msg_free(&m);
        return n2;
    }
    if (n1 != n2)
        fail_msg("relay %d, builder %d for %.100s", n1, n2, f);
    if (n2 < 0) {
        ar_sig_msg_free(&m);
        return n2;
    }
    assert_memory_equal(fast, built, (size_t)n2 + 1); /* with the NUL */
    /* Parsed back (the full parse, SDP decoded): the client's values, from the sender. */
    assert_int_equal(ar_sig_parse(S, fast, (size_t)n1, &back, &err), 0);
    assert_int_equal(ar_sig_parse(C, f, len, &want, &err), 0);
    assert_int_equal(back.type, want.type);
    assert_int_equal(back.seq, 0);
    assert_int_equal(back.fid.len, 0);
    assert_true(str_eq(*peer_of(&back), (ar_sig_str_t){from, sizeof(from) - 1}));
    if (want.type == AR_SIG_CANDIDATE) {
        assert_true(str_eq(back.u.cand.candidate, want.u.cand.candidate));
        assert_true(str_eq(back.u.cand.mid, want.u.cand.mid));
        assert_true(str_eq(back.u.cand.ufrag, want.u.cand.ufrag));
        assert_int_equal(back.u.cand.mline, want.u.cand.mline);
    } else {
        assert_true(str_eq(back.u.sdp.sdp, want.u.sdp.sdp));
        assert_int_equal(back.u.sdp.restart, want.u.sdp.restart);
    }
    /* The request id is the client's alone: never in a server frame. */
    assert_null(strstr(fast, "\"id\""));
    ar_sig_msg_free(&back);
    ar_sig_msg_free(&want);
    ar_sig_msg_free(&m);
    return n1;
}

static int relay_str(const char *f, int flat)
{
    return relay(f, strlen(f), flat, sizeof(fast));
}

static void test_offers_answers(void **state)
{
    (void)state;
    relay_str("{\"v\":1,\"type\":\"offer\",\"to\":\"p2\",\"sdp\":\"v=0\\r\\no=- 1 2 IN IP4 "
              "127.0.0.1\\r\\n\"}",
              1);
    relay_str(
        "{\"v\":1,\"type\":\"offer\",\"id\":7,\"to\":\"p2\",\"sdp\":\"v=0\",\"restart\":true}", 1);
    relay_str("{\"v\":1,\"type\":\"offer\",\"to\":\"p2\",\"sdp\":\"v=0\",\"restart\":false}", 1);
    /* Any order, white space: the builder's order out, compact. */
    relay_str(
        "{\"restart\":true,\"sdp\":\"v=0\",\"to\":\"p2\",\"id\":3,\"type\":\"offer\",\"v\":1}", 1);
    relay_str("{ \"v\" : 1 ,\n\t\"type\" : \"offer\" , \"to\" : \"p2\" , \"sdp\" : \"v=0\" }\n", 1);
    /* The SDP with every kind of escape and raw UTF-8: forwarded as sent, as the builder does. */
    relay_str("{\"v\":1,\"type\":\"offer\",\"to\":\"p2\",\"sdp\":\"a=x:\\\"q\\\" \\\\ \\/ "
              "\\u00e9 \\t caf\xc3\xa9\\r\\n\"}",
              1);
    relay_str("{\"v\":1,\"type\":\"answer\",\"to\":\"p2\",\"sdp\":\"v=0\\r\\n\"}", 1);
    relay_str("{\"v\":1,\"type\":\"answer\",\"id\":9007199254740991,\"to\":\"p2\",\"sdp\":\"v\"}",
              1);
    /* Escapes outside the SDP, in a value or in a key: the full parse, then the builder. */
    relay_str("{\"v\":1,\"type\":\"offer\",\"to\":\"p\\u0032\",\"sdp\":\"v=0\"}", 0);
    relay_str("{\"v\":1,\"type\":\"answer\",\"t\\u006f\":\"p2\",\"sdp\":\"v=0\"}", 0);
}

static void test_candidates(void **state)
{
    (void)state;
    relay_str(
        "{\"v\":1,\"type\":\"candidate\",\"id\":4,\"to\":\"p2\",\"candidate\":\"candidate:1 1 "
        "udp 2122260223 192.0.2.1 54400 typ host\",\"mid\":\"0\",\"mline\":0,\"ufrag\":"
        "\"abcd\"}",
        1);
    relay_str("{\"v\":1,\"type\":\"candidate\",\"to\":\"p2\",\"candidate\":\"c\",\"mline\":3}", 1);
    relay_str("{\"v\":1,\"type\":\"candidate\",\"to\":\"p2\",\"candidate\":\"c\",\"mid\":\"a\"}",
              1);
    /* The end of candidates, nulls (absent, so left out), and -0 (written as the builder's 0). */
    relay_str("{\"v\":1,\"type\":\"candidate\",\"to\":\"p2\",\"candidate\":\"\",\"mid\":null}", 1);
    relay_str("{\"v\":1,\"type\":\"candidate\",\"to\":\"p2\",\"candidate\":\"\",\"mid\":null,"
              "\"mline\":null,\"ufrag\":null}",
              1);
    assert_int_equal(relay_str("{\"v\":1,\"type\":\"candidate\",\"to\":\"p2\",\"candidate\":\"c\","
                               "\"mline\":-0}",
                               1),
                     (int)strlen("{\"v\":1,\"type\":\"candidate\",\"seq\":0,\"from\":\"\","
                                 "\"candidate\":\"c\",\"mline\":0}") +
                         (int)sizeof(from) - 1);
    assert_non_null(strstr(fast, "\"mline\":0}"));
    /* Every mline, written as the builder writes an integer. */
    for (int line = 0; line <= 255; line++) {
        char f[128];
        snprintf(f, sizeof(f),
                 "{\"v\":1,\"type\":\"candidate\",\"to\":\"p2\",\"candidate\":\"c\",\"mline\":%d}",
                 line);
        memset(fast, 'x', 64); /* no NUL left from an earlier frame */
        relay_str(f, 1);
    }
    /* An escape in the mid, in the candidate: the full parse, then the builder. */
    relay_str(
        "{\"v\":1,\"type\":\"candidate\",\"to\":\"p2\",\"candidate\":\"c\",\"mid\":\"0\\/1\"}", 0);
    relay_str("{\"v\":1,\"type\":\"candidate\",\"to\":\"p2\",\"candidate\":\"\\\"c\\\"\"}", 0);
}

/* Every member at its largest. */
static void test_largest_members(void **state)
{
    (void)state;
    char id[AR_SIG_ID_MAX + 1], cand[AR_SIG_CAND_MAX + 1], mid[AR_SIG_MID_MAX + 1],
        ufrag[AR_SIG_UFRAG_MAX + 1];
    memset(id, 'i', sizeof(id) - 1);
    memset(cand, 'c', sizeof(cand) - 1);
    memset(mid, 'm', sizeof(mid) - 1);
    memset(ufrag, 'u', sizeof(ufrag) - 1);
    id[sizeof(id) - 1] = cand[sizeof(cand) - 1] = mid[sizeof(mid) - 1] = ufrag[sizeof(ufrag) - 1] =
        '\0';
    int n = snprintf(frame, sizeof(frame),
                     "{\"v\":1,\"type\":\"candidate\",\"to\":\"%s\",\"candidate\":\"%s\",\"mid\":"
                     "\"%s\",\"mline\":255,\"ufrag\":\"%s\"}",
                     id, cand, mid, ufrag);
    assert_true(relay(frame, (size_t)n, 1, sizeof(fast)) > AR_SIG_CAND_MAX + AR_SIG_UFRAG_MAX);
}

/*
 * The largest offer a client may send: a frame of AR_SIG_FRAME_MAX bytes whose SDP, escapes and
 * all, fills it (decoded, under AR_SIG_SDP_MAX). Relayed by the fast path under the server's cap
 * for a session-level frame (AR_SIG_OUT_MAX less the splice, src/signal/internal.h), and refused
 * with AR_ETOOBIG by both at one byte less than it needs.
 */
static size_t largest_offer(void)
{
    static const char head[] = "{\"v\":1,\"type\":\"offer\",\"id\":1,\"to\":\"p2\",\"sdp\":\"";
    size_t n = sizeof(head) - 1;
    memcpy(frame, head, n);
    while (n + 4 <= AR_SIG_FRAME_MAX - 2) {
        memcpy(frame + n, "ab\\n", 4); /* 4 bytes sent, 3 decoded */
        n += 4;
    }
    memset(frame + n, 'z', AR_SIG_FRAME_MAX - 2 - n);
    n = AR_SIG_FRAME_MAX - 2;
    memcpy(frame + n, "\"}", 2);
    n += 2;
    frame[n] = '\0';
    return n;
}

static void test_largest_offer(void **state)
{
    (void)state;
    size_t len = largest_offer();
    assert_int_equal(len, AR_SIG_FRAME_MAX);
    /* The server's cap: AR_SIG_OUT_MAX + 1 - AR__SIG_SPLICE_MAX (15 + 8 + 22 + 1). */
    int n = relay(frame, len, 1, AR_SIG_OUT_MAX + 1 - (15 + 8 + AR_SIG_FID_LEN + 1));
    assert_true(n > AR_SIG_FRAME_MAX);
    /* The boundary: room for n bytes and the NUL, then one less. */
    assert_int_equal(relay(frame, len, 1, (size_t)n + 1), n);
    assert_int_equal(relay(frame, len, 1, (size_t)n), AR_ETOOBIG);
    assert_int_equal(relay(frame, len, 1, 16), AR_ETOOBIG);
}

static void test_too_big_candidate(void **state)
{
    (void)state;
    const char *f =
        "{\"v\":1,\"type\":\"candidate\",\"to\":\"p2\",\"candidate\":\"c\",\"mid\":\"0\","
        "\"mline\":7,\"ufrag\":\"u\"}";
    int n = relay_str(f, 1);
    assert_true(n > 0);
    /* Every cap from one byte to the frame: the same AR_ETOOBIG as the builder, wherever the
     * frame is cut (a key, a copied string, the peer, an integer). */
    for (size_t cap = 1; cap <= (size_t)n; cap++)
        assert_int_equal(relay(f, strlen(f), 1, cap), AR_ETOOBIG);
    assert_int_equal(relay(f, strlen(f), 1, (size_t)n + 1), n);
}

/* What the fast path leaves to the builder, or checks as the builder does. */
static void test_left_to_builder(void **state)
{
    (void)state;
    ar_sig_msg_t m;
    ar_sig_err_t err;
    /* Built by hand: not from a frame. */
    ar_sig_msg_init(&m, AR_SIG_OFFER);
    m.u.sdp.peer = (ar_sig_str_t){from, sizeof(from) - 1};
    m.u.sdp.sdp = (ar_sig_str_t){"v=0", 3};
    m.seq = 0;
    assert_int_equal(ar_sig_build_relay(&m, fast, sizeof(fast)), 0);
    assert_int_equal(ar_sig_build_relay(NULL, fast, sizeof(fast)), 0);

    /* The frame one byte into a buffer, so that a string may point just before it. */
    static const char cf[] = "{\"v\":1,\"type\":\"candidate\",\"to\":\"p2\",\"candidate\":\"c\"}";
    char fb[sizeof(cf) + 1] = "x";
    memcpy(fb + 1, cf, sizeof(cf));
    const char *f = fb + 1;
    assert_int_equal(ar_sig_parse2(C, f, strlen(f), FLAGS, &m, &err), 0);
    assert_non_null(m.flat_);
    *peer_of(&m) = (ar_sig_str_t){from, sizeof(from) - 1};
    /* Numbered, or with a frame id: the builder's (the relay's are numbered later, sess.c). */
    m.seq = 5;
    assert_int_equal(ar_sig_build_relay(&m, fast, sizeof(fast)), 0);
    m.seq = 0;
    m.fid = (ar_sig_str_t){"AAAAAAAAAAAAAAAAAAAAAA", AR_SIG_FID_LEN};
    assert_int_equal(ar_sig_build_relay(&m, fast, sizeof(fast)), 0);
    m.fid = (ar_sig_str_t){NULL, 0};
    /* A peer the builder refuses: left to it, which says so. */
    *peer_of(&m) = (ar_sig_str_t){"a b", 3};
    assert_int_equal(ar_sig_build_relay(&m, fast, sizeof(fast)), 0);
    assert_int_equal(ar_sig_build(S, &m, built, sizeof(built)), AR_EINVAL);
    *peer_of(&m) = (ar_sig_str_t){from, sizeof(from) - 1};
    /* A string put there from elsewhere, at the edge of the frame or past it, or too long for
     * its row: never copied as it is (only the frame's were checked), but left to the builder,
     * which checks and escapes it. */
    m.u.cand.candidate = (ar_sig_str_t){"c \"q\" \\", 7};
    assert_int_equal(ar_sig_build_relay(&m, fast, sizeof(fast)), 0);
    assert_true(ar_sig_build(S, &m, built, sizeof(built)) > 0);
    assert_non_null(strstr(built, "\\\"q\\\" \\\\"));
    m.u.cand.candidate = (ar_sig_str_t){f + strlen(f) - 1, 2};
    assert_int_equal(ar_sig_build_relay(&m, fast, sizeof(fast)), 0);
    m.u.cand.candidate = (ar_sig_str_t){f + strlen(f), 0};
    assert_true(ar_sig_build_relay(&m, fast, sizeof(fast)) > 0); /* empty, at the end: in it */
    m.u.cand.candidate = (ar_sig_str_t){fb, 1};
    assert_int_equal(ar_sig_build_relay(&m, fast, sizeof(fast)), 0);
    m.u.cand.candidate = (ar_sig_str_t){f, 1};
    m.u.cand.mid = (ar_sig_str_t){f, 0}; /* a mid is 1 byte at least */
    assert_int_equal(ar_sig_build_relay(&m, fast, sizeof(fast)), 0);
    m.u.cand.mid = (ar_sig_str_t){NULL, 0};
    m.u.cand.mline = 256;
    assert_int_equal(ar_sig_build_relay(&m, fast, sizeof(fast)), 0);
    assert_int_equal(ar_sig_build(S, &m, built, sizeof(built)), AR_EINVAL);
    ar_sig_msg_free(&m);

    /* A flat type that is not relayed. */
    f = "{\"v\":1,\"type\":\"ping\",\"t\":1}";
    assert_int_equal(ar_sig_parse2(C, f, strlen(f), FLAGS, &m, &err), 0);
    assert_non_null(m.flat_);
    assert_int_equal(ar_sig_build_relay(&m, fast, sizeof(fast)), 0);
    ar_sig_msg_free(&m);
}

/*
 * The fast path copies a string the flat parse checked against the client's row into the
 * server's row at the same place: for that, every relayed type's server table must have the
 * client's rows, but for the peer's key ("to" becomes "from"), with the same limits.
 */
static void test_tables_agree(void **state)
{
    (void)state;
    const int types[] = {AR_SIG_OFFER, AR_SIG_ANSWER, AR_SIG_CANDIDATE};
    for (size_t k = 0; k < sizeof(types) / sizeof(types[0]); k++) {
        const ar__sig_table_t *c = ar__sig_types[types[k]].table[C];
        const ar__sig_table_t *s = ar__sig_types[types[k]].table[S];
        assert_int_equal(c->count, s->count);
        for (size_t i = 0; i < c->count; i++) {
            const ar__sig_field_t *a = &c->fields[i], *b = &s->fields[i];
            if (i == 0) {
                assert_string_equal(a->key, "to");
                assert_string_equal(b->key, "from");
            } else {
                assert_string_equal(a->key, b->key);
            }
            assert_true(a->kind == b->kind && a->flags == b->flags && a->cs == b->cs &&
                        a->off == b->off && a->min == b->min && a->max == b->max &&
                        a->values == b->values && a->sub == b->sub && a->needs == b->needs);
        }
    }
}

int main(void)
{
    ar_sig_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tables_agree),    cmocka_unit_test(test_offers_answers),
        cmocka_unit_test(test_candidates),      cmocka_unit_test(test_largest_members),
        cmocka_unit_test(test_largest_offer),   cmocka_unit_test(test_too_big_candidate),
        cmocka_unit_test(test_left_to_builder),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
