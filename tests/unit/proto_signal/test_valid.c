/*
 * Valid frames: every message type parses in the direction it travels (and only there), typed
 * values land where the header says, and build and parse are inverse (a round trip reaches a
 * fixed point, and a relayed offer keeps its SDP byte for byte). Run with --write-corpus DIR to
 * write the frames out as fuzz seeds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agree.h"
#include "frames.h"
#include "internal.h"

#include <stdio.h>
#include <string.h>

static char out1[AR_SIG_OUT_MAX + 1];
static char out2[AR_SIG_OUT_MAX + 1];

static void parse_ok(int dir, const char *json, ar_sig_msg_t *m)
{
    ar_sig_err_t err;
    int rc = ar_sig_parse(dir, json, strlen(json), m, &err);
    if (rc != 0)
        fail_msg("%s: %s (%s)", json, err.text, ar_sig_err_name(err.code));
}

static int str_is(ar_sig_str_t s, const char *want)
{
    return s.p != NULL && s.len == strlen(want) && memcmp(s.p, want, s.len) == 0;
}

static void test_every_frame_parses(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_VALID; i++) {
        ar_sig_msg_t m;
        parse_ok(valid_frames[i].dir, valid_frames[i].json, &m);
        assert_int_equal(m.type, valid_frames[i].type);
        ar_sig_msg_free(&m);
    }
}

/*
 * The relay's parse (AR_SIG_PARSE_KEEP_SDP_JSON | AR_SIG_PARSE_BORROW) accepts every valid frame
 * with the same values: its message builds to the full parse's frame once the kept SDP is
 * decoded. Offers, answers, candidates, acks, pings and pongs take the flat path (no jansson
 * tree), with their strings in the frame.
 */
static void test_relay_parse_agrees(void **state)
{
    (void)state;
    int flat = 0;
    for (size_t i = 0; i < N_VALID; i++) {
        const frame_case_t *fc = &valid_frames[i];
        ar_sig_msg_t m, f, g;
        ar_sig_err_t err;
        parse_ok(fc->dir, fc->json, &m);
        size_t len = strlen(fc->json);
        assert_int_equal(ar_sig_parse2(fc->dir, fc->json, len,
                                       AR_SIG_PARSE_KEEP_SDP_JSON | AR_SIG_PARSE_BORROW, &f, &err),
                         0);
        assert_int_equal(f.type, m.type);
        assert_int_equal(f.id, m.id);
        assert_int_equal(f.seq, m.seq);
        int t = f.type;
        int flat_type = t == AR_SIG_OFFER || t == AR_SIG_ANSWER || t == AR_SIG_CANDIDATE ||
                        t == AR_SIG_ACK || t == AR_SIG_PING || t == AR_SIG_PONG;
        if (flat_type) {
            assert_null(f.root_);
            flat++;
        }
        /* Every frame here is written in the clients' order: the ordered parse reads each one of
         * a flat type, as the pairs' parse does. */
        int ordered = ordered_agrees_both(fc->dir, fc->json, len);
        if (ordered != flat_type)
            fail_msg("%s: ordered parse %d", fc->name, ordered);
        int n = ar_sig_build(fc->dir, &f, out2, sizeof(out2));
        assert_true(n > 0);
        parse_ok(fc->dir, out2, &g);
        n = ar_sig_build(fc->dir, &g, out2, sizeof(out2));
        int n1 = ar_sig_build(fc->dir, &m, out1, sizeof(out1));
        assert_int_equal(n, n1);
        assert_memory_equal(out1, out2, (size_t)n);
        ar_sig_msg_free(&f);
        ar_sig_msg_free(&g);
        ar_sig_msg_free(&m);
    }
    assert_true(flat >= 6);
}

/* Each type and direction that has a table has at least one valid frame here. */
static void test_every_type_covered(void **state)
{
    (void)state;
    for (int t = 1; t < AR_SIG_TYPE_COUNT; t++)
        for (int d = 0; d < 2; d++) {
            if (ar__sig_types[t].table[d] == NULL)
                continue;
            int found = 0;
            for (size_t i = 0; i < N_VALID; i++)
                found |= valid_frames[i].type == t && valid_frames[i].dir == d;
            if (!found)
                fail_msg("no valid frame for %s in direction %d", ar_sig_type_name(t), d);
        }
}

/* Every row's klen (the flat parse compares a key only with rows of its length) is its key's
 * length, in every table and the tables below them. */
static void check_klen(const ar__sig_table_t *t)
{
    for (size_t i = 0; t != NULL && i < t->count; i++) {
        const ar__sig_field_t *f = &t->fields[i];
        assert_int_equal(f->klen, f->key ? strlen(f->key) : 0);
        if (f->sub != NULL)
            check_klen(f->sub);
    }
}

static void test_key_lengths(void **state)
{
    (void)state;
    for (int t = 1; t < AR_SIG_TYPE_COUNT; t++)
        for (int d = 0; d < 2; d++)
            check_klen(ar__sig_types[t].table[d]);
    check_klen(&ar__sig_envelope[0]);
    check_klen(&ar__sig_envelope[1]);
}

/* A one-way type is refused the other way, naming the type. */
static void test_wrong_direction(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_VALID; i++) {
        int other = !valid_frames[i].dir;
        if (ar__sig_types[valid_frames[i].type].table[other] != NULL)
            continue;
        ar_sig_msg_t m;
        ar_sig_err_t err;
        const char *j = valid_frames[i].json;
        assert_int_equal(ar_sig_parse(other, j, strlen(j), &m, &err), AR_EPARSE);
        assert_int_equal(err.code, AR_SIG_E_UNKNOWN_TYPE);
        assert_non_null(strstr(err.text, "is not sent by"));
        assert_int_equal(err.type, valid_frames[i].type);
    }
}

static void test_round_trip(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_VALID; i++) {
        int dir = valid_frames[i].dir;
        ar_sig_msg_t a, b;
        parse_ok(dir, valid_frames[i].json, &a);
        int n1 = ar_sig_build(dir, &a, out1, sizeof(out1));
        if (n1 < 0)
            fail_msg("%s: build %s", valid_frames[i].name, ar_err_name(n1));
        assert_int_equal((size_t)n1, strlen(out1));
        parse_ok(dir, out1, &b);
        int n2 = ar_sig_build(dir, &b, out2, sizeof(out2));
        assert_int_equal(n1, n2);
        assert_string_equal(out1, out2);
        assert_int_equal(a.id, b.id);
        assert_int_equal(a.seq, b.seq);
        assert_int_equal(a.fid.len, b.fid.len);
        if (strstr(valid_frames[i].json, "\"fid\":\"AAECAwQFBgcICQoLDA0ODw\""))
            assert_memory_equal(a.fid.p, "AAECAwQFBgcICQoLDA0ODw", AR_SIG_FID_LEN);
        else
            assert_int_equal(a.fid.len, 0);
        ar_sig_msg_free(&a);
        ar_sig_msg_free(&b);
    }
}

static void test_values(void **state)
{
    (void)state;
    ar_sig_msg_t m;
    parse_ok(C, valid_frames[1].json, &m); /* hello with resume */
    assert_true(str_is(m.u.hello.resume, "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5"));
    assert_int_equal(m.u.hello.last_seq, 17);
    assert_null(m.u.hello.name.p);
    assert_int_equal(m.id, AR_SIG_NONE);
    ar_sig_msg_free(&m);

    parse_ok(C, valid_frames[4].json, &m); /* arrive */
    assert_true(str_is(m.u.arrive.name, "Zo\xc3\xab \xe6\x9d\x8e"));
    assert_int_equal(m.u.arrive.answers.count, 2);
    assert_true(str_is(AR_SIG_ITEM(m.u.arrive.answers, ar_sig_answer_t, 0)->a, "Knee pain"));
    assert_true(str_is(AR_SIG_ITEM(m.u.arrive.answers, ar_sig_answer_t, 1)->a, ""));
    assert_int_equal(m.u.arrive.consent, 1);
    ar_sig_msg_free(&m);

    const char *end =
        "{\"v\":1,\"type\":\"candidate\",\"to\":\"p2\",\"candidate\":\"\",\"mid\":null}";
    parse_ok(C, end, &m);
    assert_true(str_is(m.u.cand.candidate, ""));
    assert_null(m.u.cand.mid.p);
    assert_int_equal(m.u.cand.mline, AR_SIG_NONE);
    ar_sig_msg_free(&m);

    const char *msg = "{\"v\":1,\"type\":\"message\",\"id\":3,\"to\":\"p9\",\"text\":\"a\\nb\"}";
    parse_ok(C, msg, &m);
    assert_true(str_is(m.u.act.text, "a\nb"));
    assert_true(str_is(m.u.act.peer, "p9"));
    assert_int_equal(m.id, 3);
    ar_sig_msg_free(&m);

    parse_ok(S,
             "{\"v\":1,\"type\":\"queue\",\"seq\":1,\"clinic\":\"c\",\"area\":\"a\",\"entries\":"
             "[{\"peer\":\"p\",\"name\":\"N\",\"answers\":[{\"q\":\"q\",\"a\":\"x\"}],"
             "\"since\":5,\"status\":\"hold\"}]}",
             &m);
    assert_int_equal(m.u.queue.entries.count, 1);
    ar_sig_entry_t *e = AR_SIG_ITEM(m.u.queue.entries, ar_sig_entry_t, 0);
    assert_int_equal(e->status, AR_SIG_ST_HOLD);
    assert_int_equal(e->since, 5);
    assert_true(str_is(AR_SIG_ITEM(e->answers, ar_sig_answer_t, 0)->q, "q"));
    assert_int_equal(m.u.queue.more, 0);
    ar_sig_msg_free(&m);

    /* A staff session taken out of its room by a refresh hears why (protocol.md 5.15). */
    parse_ok(S, "{\"v\":1,\"type\":\"peer_left\",\"seq\":7,\"peer\":\"s1\",\"reason\":\"revoked\"}",
             &m);
    assert_int_equal(m.u.peer_left.reason, AR_SIG_LEFT_REVOKED);
    assert_true(str_is(m.u.peer_left.peer, "s1"));
    assert_null(m.u.peer_left.room.p); /* optional: only a removal names its room */
    assert_null(m.u.peer_left.stay.p);
    ar_sig_msg_free(&m);

    /* A removal names the room it was made for (protocol.md 5.7.1), and builds back to it; one
     * from a worker before stays names no stay. */
    parse_ok(S,
             "{\"v\":1,\"type\":\"peer_left\",\"seq\":9,\"peer\":\"s2\",\"reason\":"
             "\"removed\",\"room\":\"r-7f3a9c0b\"}",
             &m);
    assert_int_equal(m.u.peer_left.reason, AR_SIG_LEFT_REMOVED);
    assert_true(str_is(m.u.peer_left.room, "r-7f3a9c0b"));
    assert_null(m.u.peer_left.stay.p);
    ar_sig_msg_free(&m);

    /* And the member's stay in that room, as its joined named it. */
    parse_ok(S,
             "{\"v\":1,\"type\":\"peer_left\",\"seq\":9,\"peer\":\"s2\",\"reason\":"
             "\"removed\",\"room\":\"r-7f3a9c0b\",\"stay\":\"1764489600123456\"}",
             &m);
    assert_true(str_is(m.u.peer_left.stay, "1764489600123456"));
    ar_sig_msg_free(&m);
    parse_ok(S,
             "{\"v\":1,\"type\":\"joined\",\"seq\":1,\"room\":\"r1\",\"peers\":[],"
             "\"profile\":\"low\",\"stay\":\"7\"}",
             &m);
    assert_true(str_is(m.u.join.stay, "7"));
    ar_sig_msg_free(&m);

    parse_ok(S, valid_frames[N_VALID - 1].json, &m); /* drain */
    assert_int_equal(m.u.drain.urls.count, 2);
    assert_true(
        str_is(*AR_SIG_ITEM(m.u.drain.urls, ar_sig_str_t, 1), "wss://sig3.example.org:8443/ws"));
    assert_int_equal(m.u.drain.within, 30);
    ar_sig_msg_free(&m);
}

/* What the server does with an offer: parse it, swap "to" for "from", add seq, build. */
static void test_relay_offer(void **state)
{
    (void)state;
    static char sdp[AR_SIG_SDP_MAX + 1];
    static char frame[AR_SIG_FRAME_MAX + 1];
    /* The largest SDP allowed, with CRLF line ends and some UTF-8, must relay unchanged. */
    static const char line[] = "a=x-line:caf\xc3\xa9 \"q\" \\ tab\there 0123\r\n";
    size_t n = 0;
    while (n + sizeof(line) < AR_SIG_SDP_MAX) {
        memcpy(sdp + n, line, sizeof(line) - 1);
        n += sizeof(line) - 1;
    }
    memset(sdp + n, 'z', AR_SIG_SDP_MAX - n);
    n = AR_SIG_SDP_MAX;
    sdp[n] = '\0';
    ar_sig_msg_t m;
    ar_sig_msg_init(&m, AR_SIG_OFFER);
    m.u.sdp.peer = (ar_sig_str_t){"peer-b", 6};
    m.u.sdp.sdp = (ar_sig_str_t){sdp, n};
    int len = ar_sig_build(C, &m, frame, sizeof(frame));
    /* Escapes make this SDP larger than a client frame may be: the builder says so. */
    assert_int_equal(len, AR_ETOOBIG);
    /* Cut at a line end so no UTF-8 sequence is split. */
    size_t cut = 50000 / (sizeof(line) - 1) * (sizeof(line) - 1);
    m.u.sdp.sdp.len = cut;
    len = ar_sig_build(C, &m, frame, sizeof(frame));
    assert_true(len > (int)cut);

    ar_sig_msg_t in, back;
    parse_ok(C, frame, &in);
    in.u.sdp.peer = (ar_sig_str_t){"peer-a", 6};
    in.seq = 123456789;
    assert_true(ar_sig_build(S, &in, out1, sizeof(out1)) > 0);
    parse_ok(S, out1, &back);
    assert_int_equal(back.seq, 123456789);
    assert_true(str_is(back.u.sdp.peer, "peer-a"));
    assert_int_equal(back.u.sdp.sdp.len, cut);
    assert_memory_equal(back.u.sdp.sdp.p, sdp, cut);
    ar_sig_msg_free(&in);
    ar_sig_msg_free(&back);
}

/* The builder refuses what the parser would refuse, and a buffer too small. */
static void test_build_checks(void **state)
{
    (void)state;
    char buf[256];
    ar_sig_msg_t m;
    ar_sig_msg_init(&m, AR_SIG_WAIT);
    assert_int_equal(ar_sig_build(S, &m, buf, sizeof(buf)), AR_EINVAL); /* area missing */
    m.u.wait.area = (ar_sig_str_t){"a b", 3};
    m.u.wait.status = AR_SIG_ST_WAITING;
    assert_int_equal(ar_sig_build(S, &m, buf, sizeof(buf)), AR_EINVAL); /* space in an id */
    m.u.wait.area.len = 1;
    m.u.wait.status = 4;
    assert_int_equal(ar_sig_build(S, &m, buf, sizeof(buf)), AR_EINVAL); /* no such status */
    m.u.wait.status = AR_SIG_ST_SEEN;
    m.seq = 3;
    assert_int_equal(ar_sig_build(C, &m, buf, sizeof(buf)), AR_EINVAL); /* server-only */
    int n = ar_sig_build(S, &m, buf, sizeof(buf));
    assert_string_equal(buf,
                        "{\"v\":1,\"type\":\"wait\",\"seq\":3,\"area\":\"a\",\"status\":\"seen\"}");
    assert_int_equal(n, strlen(buf));
    for (size_t cap = 1; cap <= (size_t)n; cap++)
        assert_int_equal(ar_sig_build(S, &m, buf, cap), AR_ETOOBIG);
    assert_int_equal(ar_sig_build(S, &m, buf, (size_t)n + 1), n);
    m.fid = (ar_sig_str_t){"AAECAwQFBgcICQoLDA0ODw", AR_SIG_FID_LEN};
    assert_true(ar_sig_build(S, &m, buf, sizeof(buf)) > 0);
    assert_string_equal(buf,
                        "{\"v\":1,\"type\":\"wait\",\"seq\":3,\"fid\":\"AAECAwQFBgcICQoLDA0ODw\","
                        "\"area\":\"a\",\"status\":\"seen\"}");
    m.fid.len = 21;
    assert_int_equal(ar_sig_build(S, &m, buf, sizeof(buf)), AR_EINVAL); /* not 22 characters */
    m.fid = (ar_sig_str_t){"AAECAwQFBgcICQoLDA0O w", AR_SIG_FID_LEN};
    assert_int_equal(ar_sig_build(S, &m, buf, sizeof(buf)), AR_EINVAL); /* not base64url */
    m.fid = (ar_sig_str_t){"AAECAwQFBgcICQoLDA0ODw", AR_SIG_FID_LEN};
    m.seq = 0;
    assert_int_equal(ar_sig_build(S, &m, buf, sizeof(buf)), AR_EINVAL); /* connection-level */
    m.fid = (ar_sig_str_t){NULL, 0};
    m.seq = 3;

    ar_sig_msg_init(&m, AR_SIG_HELLO);
    m.u.hello.token = (ar_sig_str_t){"t", 1};
    m.u.hello.resume = (ar_sig_str_t){"0123456789abcdef", 16};
    assert_int_equal(ar_sig_build(C, &m, buf, sizeof(buf)), AR_EINVAL); /* resume needs last_seq */
    m.u.hello.last_seq = 0;
    assert_true(ar_sig_build(C, &m, buf, sizeof(buf)) > 0);

    ar_sig_msg_init(&m, AR_SIG_ARRIVE);
    m.u.arrive.clinic = m.u.arrive.area = m.u.arrive.name = (ar_sig_str_t){"x", 1};
    assert_int_equal(ar_sig_build(C, &m, buf, sizeof(buf)), AR_EINVAL); /* consent must be true */
    m.u.arrive.consent = 1;
    m.u.arrive.answers.count = 1; /* a count without items */
    assert_int_equal(ar_sig_build(C, &m, buf, sizeof(buf)), AR_EINVAL);
    m.u.arrive.answers.count = 0;
    m.u.arrive.name = (ar_sig_str_t){"a\xe2\x80\xae", 4}; /* RIGHT-TO-LEFT OVERRIDE */
    assert_int_equal(ar_sig_build(C, &m, buf, sizeof(buf)), AR_EINVAL);
}

/* The standard error frame for a parse failure, as the server sends it back. */
static void test_error_frame(void **state)
{
    (void)state;
    ar_sig_msg_t m, e, back;
    ar_sig_err_t err;
    const char *bad = "{\"v\":1,\"type\":\"offer\",\"id\":12,\"to\":\"p2\"}";
    assert_int_equal(ar_sig_parse(C, bad, strlen(bad), &m, &err), AR_EPARSE);
    ar_sig_error_msg(&e, &err);
    assert_true(ar_sig_build(S, &e, out1, sizeof(out1)) > 0);
    parse_ok(S, out1, &back);
    assert_int_equal(back.u.error.code, AR_SIG_E_BAD_FIELD);
    assert_true(str_is(back.u.error.name, "bad_field"));
    assert_true(str_is(back.u.error.text, "field 'sdp' is missing"));
    assert_true(str_is(back.u.error.about, "offer"));
    assert_int_equal(back.u.error.ref, 12);
    ar_sig_msg_free(&back);

    /* Every code has a name and a text that make a valid error frame. */
    for (int code = 1; code <= AR_SIG_E_INTERNAL; code++) {
        ar_sig_err_t plain = {.code = code, .id = AR_SIG_NONE};
        ar_sig_error_msg(&e, &plain);
        assert_true(ar_sig_build(S, &e, out1, sizeof(out1)) > 0);
        assert_string_not_equal(ar_sig_err_name(code), "?");
    }
    assert_string_equal(ar_sig_close_name(AR_SIG_CLOSE_DRAINED), "drained");
    assert_string_equal(ar_sig_close_name(1000), "?");
    assert_string_equal(ar_sig_type_name(AR_SIG_TYPE_COUNT), "?");
}

/* The largest queue snapshot a frame may carry (every field at its limit) fits a server frame,
 * so the server can page a queue by AR_SIG_ENTRIES_MAX without measuring. */
static void test_largest_snapshot_fits(void **state)
{
    (void)state;
    static char id[AR_SIG_ID_MAX + 1], name[AR_SIG_NAME_MAX + 1], ans[AR_SIG_ANSWER_MAX + 1];
    memset(id, 'i', AR_SIG_ID_MAX);
    /* Two-byte characters: as long in bytes, as short in characters as a name can get. */
    for (size_t i = 0; i < AR_SIG_NAME_MAX; i += 2)
        memcpy(name + i, "\xc3\xa9", 2);
    for (size_t i = 0; i < AR_SIG_ANSWER_MAX; i += 2)
        memcpy(ans + i, "\xc3\xa9", 2);
    ar_sig_answer_t answers[AR_SIG_ANSWERS_MAX];
    for (size_t i = 0; i < AR_SIG_ANSWERS_MAX; i++)
        answers[i] = (ar_sig_answer_t){{id, AR_SIG_ID_MAX}, {ans, AR_SIG_ANSWER_MAX}};
    ar_sig_entry_t entries[AR_SIG_ENTRIES_MAX];
    for (size_t i = 0; i < AR_SIG_ENTRIES_MAX; i++)
        entries[i] = (ar_sig_entry_t){
            {id, AR_SIG_ID_MAX},    {name, AR_SIG_NAME_MAX}, {answers, AR_SIG_ANSWERS_MAX},
            AR_SIG_INT_MAX,         AR_SIG_ST_SEEN,          {id, AR_SIG_ID_MAX},
            {name, AR_SIG_NAME_MAX}};
    ar_sig_msg_t m;
    ar_sig_msg_init(&m, AR_SIG_QUEUE);
    m.seq = AR_SIG_INT_MAX;
    m.u.queue.clinic = m.u.queue.area = (ar_sig_str_t){id, AR_SIG_ID_MAX};
    m.u.queue.entries = (ar_sig_list_t){entries, AR_SIG_ENTRIES_MAX};
    m.u.queue.more = 1;
    int n = ar_sig_build(S, &m, out1, sizeof(out1));
    assert_true(n > 0);
    print_message("largest queue frame: %d bytes\n", n);
    ar_sig_msg_t back;
    parse_ok(S, out1, &back);
    assert_int_equal(back.u.queue.entries.count, AR_SIG_ENTRIES_MAX);
    ar_sig_msg_free(&back);
    /* One entry more is refused by the builder. */
    m.u.queue.entries.count = AR_SIG_ENTRIES_MAX + 1;
    assert_int_equal(ar_sig_build(S, &m, out1, sizeof(out1)), AR_EINVAL);
}

static int write_corpus(const char *dir)
{
    for (size_t i = 0; i < N_VALID; i++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", dir, valid_frames[i].name);
        FILE *f = fopen(path, "wb");
        if (f == NULL)
            return 1;
        /* The fuzz target reads the first byte as the direction. */
        fputc(valid_frames[i].dir == C ? 'c' : 's', f);
        fputs(valid_frames[i].json, f);
        fclose(f);
    }
    return 0;
}

int main(int argc, char **argv)
{
    ar_sig_init();
    if (argc == 3 && strcmp(argv[1], "--write-corpus") == 0)
        return write_corpus(argv[2]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_frame_parses),
        cmocka_unit_test(test_every_type_covered),
        cmocka_unit_test(test_key_lengths),
        cmocka_unit_test(test_relay_parse_agrees),
        cmocka_unit_test(test_wrong_direction),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_relay_offer),
        cmocka_unit_test(test_build_checks),
        cmocka_unit_test(test_error_frame),
        cmocka_unit_test(test_largest_snapshot_fits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
