/*
 * The ordered parse (flat.c, ar__sig_parse_ordered): frames as our clients write them, and every
 * way a frame can leave that shape. Each frame goes through agree.h: where the ordered parse
 * reads a frame, the pairs' parse reads it to the same message and err; and each case says
 * whether the ordered parse reads it at all, so that a fast path that read too little (or too
 * much) shows. From each of the clients' frames, members are also dropped, doubled, swapped,
 * added and spaced, one at a time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agree.h"
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define C AR_SIG_FROM_CLIENT
#define S AR_SIG_FROM_SERVER
#define CAND "candidate:842163049 1 udp 1677729535 192.0.2.10 54400 typ srflx raddr 0.0.0.0"
#define FID "AAECAwQFBgcICQoLDA0ODw"
#define ID63 "p23456789012345678901234567890123456789012345678901234567890123"

typedef struct case_s {
    int dir;
    int ordered; /* 1: the ordered parse reads it; 0: it goes to the pairs' parse */
    const char *json;
} case_t;

/* As web/js/signal.js writes them (JSON.stringify of { v: 1, type, id, ...fields }, mesh.js's
 * fields in the tables' order), as the load generator writes them (no "id"), and as the server
 * writes them. */
static const case_t clients[] = {
    {C, 1, "{\"v\":1,\"type\":\"offer\",\"id\":7,\"to\":\"p2\",\"sdp\":\"v=0\\r\\n\"}"},
    {C, 1,
     "{\"v\":1,\"type\":\"offer\",\"id\":8,\"to\":\"p2\",\"sdp\":\"v=0\\r\\n\",\"restart\":true}"},
    {C, 1,
     "{\"v\":1,\"type\":\"offer\",\"to\":\"p2\",\"sdp\":\"v=0\\r\\no=- 1 2 IN IP4 "
     "0.0.0.0\\r\\n\"}"},
    {C, 1, "{\"v\":1,\"type\":\"answer\",\"id\":9,\"to\":\"p2\",\"sdp\":\"v=0\\r\\n\"}"},
    {C, 1,
     "{\"v\":1,\"type\":\"candidate\",\"id\":10,\"to\":\"p2\",\"candidate\":\"" CAND
     "\",\"mid\":\"0\",\"mline\":0,\"ufrag\":\"EsAw\"}"},
    {C, 1,
     "{\"v\":1,\"type\":\"candidate\",\"id\":11,\"to\":\"p2\",\"candidate\":\"\",\"mid\":null,"
     "\"mline\":null,\"ufrag\":null}"},
    {C, 1,
     "{\"v\":1,\"type\":\"candidate\",\"to\":\"p2\",\"candidate\":\"" CAND
     "\",\"mid\":\"0\",\"mline\":0}"},
    {C, 1, "{\"v\":1,\"type\":\"ack\",\"seq\":42}"},
    {C, 1, "{\"v\":1,\"type\":\"ping\",\"id\":3,\"t\":5}"},
    {C, 1, "{\"v\":1,\"type\":\"pong\"}"},
    {S, 1,
     "{\"v\":1,\"type\":\"offer\",\"seq\":7,\"fid\":\"" FID
     "\",\"from\":\"p1\",\"sdp\":\"v=0\\r\\n\"}"},
    {S, 1,
     "{\"v\":1,\"type\":\"candidate\",\"seq\":0,\"from\":\"p1\",\"candidate\":\"\",\"mline\":3}"},
    {S, 1, "{\"v\":1,\"type\":\"ping\",\"seq\":0}"},
};

/* Each branch of the ordered parse, and the limits of the rows it reads. */
static const case_t branches[] = {
    /* the lead and the type's name */
    {C, 0, "{\"v\":2,\"type\":\"offer\",\"to\":\"p2\",\"sdp\":\"x\"}"},
    {C, 0, "{\"v\":01,\"type\":\"offer\",\"to\":\"p2\",\"sdp\":\"x\"}"},
    {C, 0, "{\"v\":1.0,\"type\":\"offer\",\"to\":\"p2\",\"sdp\":\"x\"}"},
    {C, 0, "{\"v\":\"1\",\"type\":\"offer\",\"to\":\"p2\",\"sdp\":\"x\"}"},
    {C, 0, "{\"v\":null,\"type\":\"offer\",\"to\":\"p2\",\"sdp\":\"x\"}"},
    {C, 0, "{\"v\":1,\"type\":\"offerx\",\"to\":\"p2\",\"sdp\":\"x\"}"},
    {C, 0, "{\"v\":1,\"type\":\"offe\",\"to\":\"p2\",\"sdp\":\"x\"}"},
    {C, 0, "{\"v\":1,\"type\":\"Offer\",\"to\":\"p2\",\"sdp\":\"x\"}"},
    {C, 0, "{\"v\":1,\"type\":\"off\\u0065r\",\"to\":\"p2\",\"sdp\":\"x\"}"},
    {C, 0, "{\"v\":1,\"type\":\"join\",\"room\":\"r1\"}"},
    {C, 0, "{\"v\":1,\"type\":\"ack\""},
    {C, 0, "{\"v\":1,\"type\":\"ack\"}"}, /* "seq" is required */
    {C, 0, "{\"v\":1,\"type\":\"welcome\",\"seq\":0}"},
    {S, 0, "{\"v\":1,\"type\":\"ack\",\"seq\":4}"}, /* never from the server */
    {C, 0, "{\"type\":\"pong\",\"v\":1}"},
    {C, 0, "{\"v\":1}"},
    {C, 0, "{}"},
    {C, 0, ""},
    /* white space anywhere: the pairs' parse */
    {C, 0, " {\"v\":1,\"type\":\"pong\"}"},
    {C, 0, "{\"v\":1,\"type\":\"pong\"} "},
    {C, 0, "{\"v\":1,\"type\":\"pong\" }"},
    {C, 0, "{\"v\":1,\"type\":\"ping\", \"t\":5}"},
    {C, 0, "{\"v\":1,\"type\":\"ping\",\"t\" :5}"},
    {C, 0, "{\"v\":1,\"type\":\"ping\",\"t\": 5}"},
    {C, 0, "{\"v\":1,\"type\":\"ping\",\"t\":5 }"},
    {C, 0, "{\"v\":1,\"type\":\"ping\",\"t\":5}\n"},
    /* what follows the last member */
    {C, 0, "{\"v\":1,\"type\":\"ping\",\"t\":5}x"},
    {C, 0, "{\"v\":1,\"type\":\"ping\",\"t\":5}}"},
    {C, 0, "{\"v\":1,\"type\":\"ping\",\"t\":5,}"},
    {C, 0, "{\"v\":1,\"type\":\"ping\",\"t\":5,"},
    {C, 0, "{\"v\":1,\"type\":\"ping\",\"t\":5"},
    {C, 0, "{\"v\":1,\"type\":\"ping\",\"t\":}"},
    {C, 0, "{\"v\":1,\"type\":\"ping\",\"t\""},
    {C, 0, "{\"v\":1,\"type\":\"ping\",\"t\":"},
    {C, 0, "{\"v\":1,\"type\":\"offer\",\"to\":\"p\",\"sdp\":"},
    {C, 0, "{\"v\":1,\"type\":\"ping\""},
    {C, 0, "{\"v\":1,\"type\":\"ping"},
    {C, 0, "{\"v\":1,\"type\":\""},
    {C, 0, "{\"v\":1,\"type\":\"pong\",}"},
    {C, 0, "{\"v\":1,\"type\":\"pong\"x"},
    /* keys: escaped, unknown, near, repeated, out of order */
    {C, 0, "{\"v\":1,\"type\":\"offer\",\"t\\u006f\":\"p2\",\"sdp\":\"x\"}"},
    {C, 0, "{\"v\":1,\"type\":\"offer\",\"to\":\"p2\",\"sdp\":\"x\",\"x\":1}"},
    {C, 0, "{\"v\":1,\"type\":\"offer\",\"tox\":\"p2\",\"sdp\":\"x\"}"},
    {C, 0, "{\"v\":1,\"type\":\"offer\",\"t\":\"p2\",\"sdp\":\"x\"}"},
    {C, 0, "{\"v\":1,\"type\":\"candidate\",\"to\":\"p2\",\"candidatx\":\"\"}"},
    {C, 0, "{\"v\":1,\"type\":\"offer\",\"to\":\"p2\",\"sdp\":\"x\",\"restartx\":true}"},
    {C, 0, "{\"v\":1,\"type\":\"offer\",\"to\":\"p2\",\"to\":\"p2\",\"sdp\":\"x\"}"},
    {C, 0, "{\"v\":1,\"type\":\"offer\",\"id\":1,\"id\":1,\"to\":\"p2\",\"sdp\":\"x\"}"},
    {C, 0, "{\"v\":1,\"type\":\"offer\",\"sdp\":\"x\",\"to\":\"p2\"}"},
    {C, 0, "{\"v\":1,\"type\":\"offer\",\"to\":\"p2\",\"id\":1,\"sdp\":\"x\"}"},
    {C, 0, "{\"v\":1,\"type\":\"offer\",\"to\":\"p2\",\"sdp\":\"x\",\"v\":1}"},
    {C, 0, "{\"v\":1,\"type\":\"offer\",\"to\":\"p2\",\"sdp\":\"x\",\"type\":\"offer\"}"},
    {C, 0,
     "{\"v\":1,\"type\":\"offer\",\"to\":\"p2\",\"sdp\":\"x\",\"restart\":true,\"restart\":true}"},
    {C, 0, "{\"v\":1,\"type\":\"offer\",\"to\":\"p2\",\"sdp\":\"x\",\"seq\":1}"},
    {C, 0,
     "{\"v\":1,\"type\":\"candidate\",\"to\":\"p2\",\"candidate\":\"\",\"mline\":0,\"mid\":\"0\"}"},
    {C, 0,
     "{\"v\":1,\"type\":\"candidate\",\"to\":\"p2\",\"candidate\":\"\",\"ufrag\":\"u\",\"mid\":"
     "\"0\"}"},
    /* rows missing */
    {C, 0, "{\"v\":1,\"type\":\"offer\",\"sdp\":\"x\"}"},
    {C, 0, "{\"v\":1,\"type\":\"offer\",\"to\":\"p2\"}"},
    {C, 0, "{\"v\":1,\"type\":\"offer\",\"id\":1}"},
    {C, 0, "{\"v\":1,\"type\":\"candidate\",\"to\":\"p2\"}"},
    {C, 1, "{\"v\":1,\"type\":\"candidate\",\"to\":\"p2\",\"candidate\":\"\"}"},
    {S, 0, "{\"v\":1,\"type\":\"ping\"}"},
    {S, 0, "{\"v\":1,\"type\":\"offer\",\"from\":\"p1\",\"sdp\":\"x\"}"},
    /* "id": present, absent, at and past its limits, of the wrong kind */
    {C, 1, "{\"v\":1,\"type\":\"ping\",\"id\":0}"},
    {C, 1, "{\"v\":1,\"type\":\"ping\",\"id\":9007199254740991}"},
    {C, 0, "{\"v\":1,\"type\":\"ping\",\"id\":9007199254740992}"},
    {C, 0, "{\"v\":1,\"type\":\"ping\",\"id\":1234567890123456789}"},
    {C, 0, "{\"v\":1,\"type\":\"ping\",\"id\":-1}"},
    {C, 0, "{\"v\":1,\"type\":\"ping\",\"id\":1.5}"},
    {C, 0, "{\"v\":1,\"type\":\"ping\",\"id\":1e2}"},
    {C, 0, "{\"v\":1,\"type\":\"ping\",\"id\":00}"},
    {C, 0, "{\"v\":1,\"type\":\"ping\",\"id\":null}"},
    {C, 0, "{\"v\":1,\"type\":\"ping\",\"id\":\"1\"}"},
    {C, 0, "{\"v\":1,\"type\":\"ping\",\"id\":true}"},
    /* numbers and booleans at the rows' limits */
    {C, 1, "{\"v\":1,\"type\":\"candidate\",\"to\":\"p2\",\"candidate\":\"\",\"mline\":255}"},
    {C, 0, "{\"v\":1,\"type\":\"candidate\",\"to\":\"p2\",\"candidate\":\"\",\"mline\":256}"},
    {C, 0, "{\"v\":1,\"type\":\"candidate\",\"to\":\"p2\",\"candidate\":\"\",\"mline\":-1}"},
    {C, 0, "{\"v\":1,\"type\":\"candidate\",\"to\":\"p2\",\"candidate\":\"\",\"mline\":\"0\"}"},
    {C, 1, "{\"v\":1,\"type\":\"ack\",\"seq\":9007199254740991}"},
    {C, 1, "{\"v\":1,\"type\":\"ack\",\"seq\":-0}"},
    {C, 1, "{\"v\":1,\"type\":\"offer\",\"to\":\"p2\",\"sdp\":\"x\",\"restart\":false}"},
    {C, 0, "{\"v\":1,\"type\":\"offer\",\"to\":\"p2\",\"sdp\":\"x\",\"restart\":1}"},
    {C, 0, "{\"v\":1,\"type\":\"offer\",\"to\":\"p2\",\"sdp\":\"x\",\"restart\":tru}"},
    {S, 1, "{\"v\":1,\"type\":\"pong\",\"seq\":1,\"fid\":\"" FID "\",\"t\":0}"},
    {S, 0, "{\"v\":1,\"type\":\"pong\",\"seq\":0,\"fid\":\"" FID "\"}"},
    {S, 0, "{\"v\":1,\"type\":\"pong\",\"seq\":1,\"fid\":\"AAECAwQFBgcICQoLDA0ODwx\"}"},
    /* null members */
    {C, 0, "{\"v\":1,\"type\":\"offer\",\"to\":null,\"sdp\":\"x\"}"},
    {C, 0, "{\"v\":1,\"type\":\"offer\",\"to\":\"p2\",\"sdp\":null}"},
    {C, 0, "{\"v\":1,\"type\":\"offer\",\"to\":\"p2\",\"sdp\":\"x\",\"restart\":null}"},
    {C, 0, "{\"v\":1,\"type\":\"candidate\",\"to\":\"p2\",\"candidate\":null}"},
    {C, 1, "{\"v\":1,\"type\":\"candidate\",\"to\":\"p2\",\"candidate\":\"\",\"ufrag\":null}"},
    {C, 0, "{\"v\":1,\"type\":\"candidate\",\"to\":\"p2\",\"candidate\":\"\",\"mid\":nul}"},
    {C, 0, "{\"v\":1,\"type\":null}"},
    /* strings: lengths, characters and escapes */
    {C, 1, "{\"v\":1,\"type\":\"offer\",\"to\":\"" ID63 "\",\"sdp\":\"x\"}"},
    {C, 0, "{\"v\":1,\"type\":\"offer\",\"to\":\"" ID63 "4\",\"sdp\":\"x\"}"},
    {C, 0, "{\"v\":1,\"type\":\"offer\",\"to\":\"\",\"sdp\":\"x\"}"},
    {C, 0, "{\"v\":1,\"type\":\"offer\",\"to\":\"p 2\",\"sdp\":\"x\"}"},
    {C, 0, "{\"v\":1,\"type\":\"offer\",\"to\":\"p\\u0032\",\"sdp\":\"x\"}"},
    {C, 0, "{\"v\":1,\"type\":\"offer\",\"to\":\"p2\",\"sdp\":\"\"}"},
    {C, 0, "{\"v\":1,\"type\":\"offer\",\"to\":\"p2\",\"sdp\":\"\\u0000\"}"},
    {C, 0, "{\"v\":1,\"type\":\"offer\",\"to\":\"p2\",\"sdp\":\"a\x01\"}"},
    {C, 0, "{\"v\":1,\"type\":\"offer\",\"to\":\"p2\",\"sdp\":\"x\\ud800\"}"},
    {C, 0, "{\"v\":1,\"type\":\"offer\",\"to\":\"p2\",\"sdp\":\"x"},
    {C, 0, "{\"v\":1,\"type\":\"offer\",\"to\":\"p2\",\"sdp\":7}"},
    {C, 0, "{\"v\":1,\"type\":\"offer\",\"to\":7,\"sdp\":\"x\"}"},
    {C, 0, "{\"v\":1,\"type\":\"offer\",\"to\":\"p2\",\"sdp\":{}}"},
    {C, 0, "{\"v\":1,\"type\":\"offer\",\"to\":\"p2\",\"sdp\":[\"x\"]}"},
    {C, 0, "{\"v\":1,\"type\":\"candidate\",\"to\":\"p2\",\"candidate\":\"caf\xc3\xa9\"}"},
    {C, 0, "{\"v\":1,\"type\":\"candidate\",\"to\":\"p2\",\"candidate\":\"\",\"mid\":\"\"}"},
};

/* One case: the pairs' parse agrees wherever the ordered parse reads it, and the ordered parse
 * reads it exactly when the case says. Returns what it did. */
static int check(const case_t *c, const char *json, size_t len)
{
    int r = ordered_agrees_both(c->dir, json, len);
    if (r < 0)
        fail_msg("%.300s: the ordered and the pairs' parse disagree", json);
    return r;
}

static void expect(const case_t *c)
{
    int r = check(c, c->json, strlen(c->json));
    if (r != c->ordered)
        fail_msg("%.300s: ordered parse %d, want %d", c->json, r, c->ordered);
}

static void test_clients_frames(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(clients) / sizeof(clients[0]); i++)
        expect(&clients[i]);
}

static void test_branches(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(branches) / sizeof(branches[0]); i++)
        expect(&branches[i]);
}

/* The members of a compact frame whose values hold no ',' '{' '[': [at[k], at[k + 1]) is member
 * k with its leading '{' or ','. The count. */
static size_t members(const char *json, size_t *at, size_t cap)
{
    size_t n = 0, len = strlen(json);
    int quoted = 0;
    for (size_t i = 0; i < len && n < cap; i++) {
        if (json[i] == '\\' && quoted)
            i++;
        else if (json[i] == '"')
            quoted = !quoted;
        else if (!quoted && (json[i] == ',' || json[i] == '{'))
            at[n++] = i;
    }
    at[n] = len - 1; /* the closing brace */
    return n;
}

static char buf[512];

/* The frame with [a, b) of it replaced by ins. */
static size_t splice(const char *json, size_t a, size_t b, const char *ins)
{
    int n = snprintf(buf, sizeof(buf), "%.*s%s%s", (int)a, json, ins, json + b);
    assert_true(n > 0 && (size_t)n < sizeof(buf));
    return (size_t)n;
}

/* From each of the clients' frames: a member dropped (read as absent when it may be), doubled,
 * swapped with the next, or followed by an unknown one; white space after each byte. None of
 * them is read by the ordered parse but a drop of an optional member; the pairs' parse agrees
 * wherever it is. */
static void test_derived(void **state)
{
    (void)state;
    int read = 0, left = 0;
    char one[256], two[256];
    for (size_t i = 0; i < sizeof(clients) / sizeof(clients[0]); i++) {
        const case_t *c = &clients[i];
        const char *j = c->json;
        size_t at[24], n = members(j, at, 23), len = strlen(j);
        for (size_t k = 1; k < n; k++) { /* member 0 is "v", whose drop leaves no lead */
            size_t a = at[k], b = at[k + 1];
            int r = check(c, buf, splice(j, a, b, ""));
            read += r;
            snprintf(one, sizeof(one), "%.*s", (int)(b - a), j + a);
            assert_int_equal(check(c, buf, splice(j, b, b, one)), 0);
            if (k + 1 < n) {
                size_t e = at[k + 2];
                snprintf(two, sizeof(two), "%.*s%.*s", (int)(e - b), j + b, (int)(b - a), j + a);
                assert_int_equal(check(c, buf, splice(j, a, e, two)), 0);
            }
            assert_int_equal(check(c, buf, splice(j, b, b, ",\"x\":1")), 0);
            left += 3;
        }
        int quoted = 0;
        for (size_t k = 0; k < len; k++) {
            if (j[k] == '\\' && quoted) {
                k++;
                continue;
            }
            quoted ^= j[k] == '"';
            /* Outside the strings, a space makes it a frame for the pairs' parse. */
            if (!quoted)
                assert_int_equal(check(c, buf, splice(j, k + 1, k + 1, " ")), 0);
        }
    }
    print_message("%d frames with a member dropped read in order, %d others left\n", read, left);
    assert_true(read > 10);
}

/* The SDP at its limit (AR_SIG_SDP_MAX bytes once decoded; here with escaped line ends, so that
 * the frame is longer still) and one byte over it. */
static void test_sdp_limit(void **state)
{
    (void)state;
    const char *head = "{\"v\":1,\"type\":\"offer\",\"to\":\"p2\",\"sdp\":\"";
    const size_t lines = 1000; /* "\r\n": two bytes decoded, four sent */
    char *f = malloc(AR_SIG_FRAME_MAX + 1);
    assert_non_null(f);
    for (size_t over = 0; over < 2; over++) {
        size_t n = strlen(head);
        memcpy(f, head, n);
        for (size_t k = 0; k < lines; k++, n += 4)
            memcpy(f + n, "\\r\\n", 4);
        size_t plain = AR_SIG_SDP_MAX + over - 2 * lines;
        memset(f + n, 'z', plain);
        n += plain;
        memcpy(f + n, "\"}", 2);
        n += 2;
        assert_true(n <= AR_SIG_FRAME_MAX);
        case_t c = {C, over ? 0 : 1, NULL};
        assert_int_equal(check(&c, f, n), c.ordered);
    }
    free(f);
}

/* An SDP with escapes and UTF-8 is kept as sent with AR_SIG_PARSE_KEEP_SDP_JSON (sdp_raw_ set,
 * as the pairs' parse sets it); without it, the ordered parse leaves it, as the pairs' parse
 * does. */
static void test_sdp_kept(void **state)
{
    (void)state;
    static const char j[] = "{\"v\":1,\"type\":\"answer\",\"id\":4,\"to\":\"p2\",\"sdp\":"
                            "\"v=0\\r\\ns=caf\xc3\xa9 \\\"x\\\" \\u00e9\\t\\/\\\\\"}";
    ar_sig_msg_t m;
    ar_sig_err_t e;
    assert_int_equal(
        ordered_agrees(C, j, sizeof(j) - 1, AR_SIG_PARSE_KEEP_SDP_JSON | AR_SIG_PARSE_BORROW), 1);
    assert_int_equal(ar__sig_parse_ordered(C, j, sizeof(j) - 1, AR_SIG_PARSE_KEEP_SDP_JSON, &m, &e),
                     1);
    assert_ptr_equal(m.sdp_raw_, strstr(j, "v=0"));
    assert_ptr_equal(m.flat_, j);
    assert_int_equal(m.flat_len_, sizeof(j) - 1);
    assert_int_equal(m.id, 4);
    assert_int_equal(e.id, 4);
    assert_int_equal(e.type, AR_SIG_ANSWER);
    assert_int_equal(ordered_agrees(C, j, sizeof(j) - 1, AR_SIG_PARSE_BORROW), 0);
    static const char plain[] = "{\"v\":1,\"type\":\"answer\",\"to\":\"p2\",\"sdp\":\"v=0\"}";
    assert_int_equal(ar__sig_parse_ordered(C, plain, sizeof(plain) - 1, 0, &m, &e), 1);
    assert_null(m.sdp_raw_);
    assert_int_equal(m.id, AR_SIG_NONE);
    assert_int_equal(e.id, AR_SIG_NONE);
}

/* A string of n bytes, each c, in out (at least n + 1 bytes). */
static const char *run_of(char *out, size_t n, char c)
{
    memset(out, c, n);
    out[n] = '\0';
    return out;
}

/* One candidate frame in the clients' order with these values: the relay's parse must refuse it
 * exactly when the full parse does, and read every frame the full parse accepts itself, in
 * order (row_passes in flat.c stands for ar__sig_check there). */
static void row_case(const char *to, const char *cand, const char *mid, const char *mline,
                     const char *ufrag)
{
    static char frame[2048];
    int n = snprintf(frame, sizeof(frame),
                     "{\"v\":1,\"type\":\"candidate\",\"to\":\"%s\",\"candidate\":\"%s\","
                     "\"mid\":\"%s\",\"mline\":%s,\"ufrag\":\"%s\"}",
                     to, cand, mid, mline, ufrag);
    assert_true(n > 0 && (size_t)n < sizeof(frame));
    ar_sig_msg_t full, relay, ord;
    ar_sig_err_t e1, e2, e3;
    int rc_full = ar_sig_parse(C, frame, (size_t)n, &full, &e1);
    int rc_relay = ar_sig_parse2(C, frame, (size_t)n,
                                 AR_SIG_PARSE_KEEP_SDP_JSON | AR_SIG_PARSE_BORROW, &relay, &e2);
    int read = ar__sig_parse_ordered(C, frame, (size_t)n, AR_SIG_PARSE_KEEP_SDP_JSON, &ord, &e3);
    if (rc_full != rc_relay || read != (rc_full == 0))
        fail_msg("%.200s: full parse %d, relay's %d, ordered read %d", frame, rc_full, rc_relay,
                 read);
    if (rc_full == 0)
        ar_sig_msg_free(&full);
    if (rc_relay == 0)
        ar_sig_msg_free(&relay);
    assert_int_equal(check(&(case_t){C, read, frame}, frame, (size_t)n), read);
}

/* Each string and integer row of a candidate at, inside and past its bounds, and with bytes its
 * class refuses though they are plain: the walk's own checks (row_passes) against the full
 * parse's (ar__sig_check). */
static void test_row_checks(void **state)
{
    (void)state;
    static char a[AR_SIG_CAND_MAX + 2], b[AR_SIG_UFRAG_MAX + 2];
    const char *ok_to = "p2", *ok_c = CAND, *ok_mid = "0", *ok_ml = "0", *ok_u = "abcd";
    const char *tos[] = {"p2", "", "p 2", "p+2", "p~", "P-._09az", ID63, ID63 "4"};
    for (size_t i = 0; i < sizeof(tos) / sizeof(tos[0]); i++)
        row_case(tos[i], ok_c, ok_mid, ok_ml, ok_u);
    const size_t lens[] = {0, 1, AR_SIG_CAND_MAX, AR_SIG_CAND_MAX + 1};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
        row_case(ok_to, run_of(a, lens[i], '~'), ok_mid, ok_ml, ok_u);
    row_case(ok_to, "a b ~ ! # $ % & ' ( ) * + , - . / : ; < = > ? @ [ ] ^ _ ` { | }", ok_mid,
             ok_ml, ok_u);
    const size_t mids[] = {0, 1, AR_SIG_MID_MAX, AR_SIG_MID_MAX + 1};
    for (size_t i = 0; i < sizeof(mids) / sizeof(mids[0]); i++)
        row_case(ok_to, ok_c, run_of(a, mids[i], ' '), ok_ml, ok_u);
    const char *mls[] = {"-1", "0", "1", "255", "256", "-0", "99999"};
    for (size_t i = 0; i < sizeof(mls) / sizeof(mls[0]); i++)
        row_case(ok_to, ok_c, ok_mid, mls[i], ok_u);
    const size_t ufrags[] = {0, 1, AR_SIG_UFRAG_MAX, AR_SIG_UFRAG_MAX + 1};
    for (size_t i = 0; i < sizeof(ufrags) / sizeof(ufrags[0]); i++)
        row_case(ok_to, ok_c, ok_mid, ok_ml, run_of(b, ufrags[i], 'u'));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clients_frames), cmocka_unit_test(test_branches),
        cmocka_unit_test(test_derived),        cmocka_unit_test(test_sdp_limit),
        cmocka_unit_test(test_sdp_kept),       cmocka_unit_test(test_row_checks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
