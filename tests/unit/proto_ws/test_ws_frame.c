/*
 * WebSocket frames: RFC 6455 section 5.7's examples parse (whole and one byte at a time) and are
 * rebuilt byte for byte; fragmentation and interleaved control frames; every protocol error gives
 * its close code; UTF-8 is checked across frame boundaries; close payloads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ws/ws.h"

#include <string.h>

/* What a run of the parser saw: the last complete message and every frame's opcode. */
typedef struct seen_s {
    uint8_t msg[70000];
    size_t msg_len;
    uint8_t ctl[AR_WS_MAX_CONTROL]; /* the last control frame's payload */
    size_t ctl_len;
    int msgs;
    uint8_t ops[16];
    int frames;
    int err;
    int one_step; /* messages ar_ws_parse_message reported as AR_WS_EV_MESSAGE */
} seen_t;

static seen_t seen;
/* run() parses with ar_ws_parse_message rather than ar_ws_parse. */
static int use_message;

/* Feeds `len` bytes in chunks of `step` (copied: the parser unmasks in place). */
static int run(ar_ws_parser_t *p, const uint8_t *in, size_t len, size_t step)
{
    static uint8_t copy[70100];
    assert_true(len <= sizeof(copy));
    memcpy(copy, in, len);
    memset(&seen, 0, sizeof(seen));
    size_t cur = 0, ccur = 0;
    for (size_t off = 0; off < len; off += step) {
        size_t n = len - off < step ? len - off : step;
        size_t used = 0;
        for (;;) {
            size_t c = 0;
            ar_ws_event_t ev;
            int err = use_message ? ar_ws_parse_message(p, copy + off + used, n - used, &c, &ev)
                                  : ar_ws_parse(p, copy + off + used, n - used, &c, &ev);
            if (err) {
                seen.err = err;
                return err;
            }
            used += c;
            if (ev.type == AR_WS_EV_NEED_MORE)
                break;
            if (ev.type == AR_WS_EV_MESSAGE) {
                /* What FRAME_START, DATA and FRAME_END with msg_end would have recorded. */
                assert_true(ev.fin && ev.msg_end && ev.len == ev.frame_len && cur == 0);
                assert_ptr_equal(ev.data + ev.len, copy + off + used);
                /* At rest after it: the loop keeps no parser then (net/conn.c on_frames). */
                assert_true(ar_ws_parser_at_rest(p));
                if (seen.frames < 16)
                    seen.ops[seen.frames++] = ev.opcode;
                memcpy(seen.msg, ev.data, ev.len);
                seen.msg_len = ev.len;
                seen.msgs++;
                seen.one_step++;
                continue;
            }
            if (ev.type == AR_WS_EV_FRAME_START && seen.frames < 16)
                seen.ops[seen.frames++] = ev.opcode;
            if (ev.type == AR_WS_EV_DATA && (ev.opcode & 8)) {
                memcpy(seen.ctl + ccur, ev.data, ev.len);
                ccur += ev.len;
            } else if (ev.type == AR_WS_EV_DATA) {
                memcpy(seen.msg + cur, ev.data, ev.len);
                cur += ev.len;
            }
            if (ev.type == AR_WS_EV_FRAME_END && (ev.opcode & 8)) {
                seen.ctl_len = ccur;
                ccur = 0;
                seen.msgs++;
            } else if (ev.type == AR_WS_EV_FRAME_END && ev.msg_end) {
                seen.msg_len = cur;
                cur = 0;
                seen.msgs++;
            }
        }
        assert_int_equal(used, n);
    }
    return 0;
}

static void expect_msg(const char *text)
{
    assert_int_equal(seen.msg_len, strlen(text));
    assert_memory_equal(seen.msg, text, strlen(text));
}

static void expect_ctl(const char *text)
{
    assert_int_equal(seen.ctl_len, strlen(text));
    assert_memory_equal(seen.ctl, text, strlen(text));
}

static const uint8_t hello_unmasked[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
static const uint8_t hello_masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                       0x7f, 0x9f, 0x4d, 0x51, 0x58};
static const uint8_t mask_5_7[4] = {0x37, 0xfa, 0x21, 0x3d};

static void test_rfc_examples(void **state)
{
    (void)state;
    ar_ws_parser_t p;
    for (size_t step = 1; step <= 16; step += 15) {
        ar_ws_parser_init(&p, 0, 0);
        assert_int_equal(run(&p, hello_unmasked, sizeof(hello_unmasked), step), 0);
        expect_msg("Hello");
        assert_int_equal(seen.ops[0], AR_WS_OP_TEXT);

        ar_ws_parser_init(&p, 1, 0);
        assert_int_equal(run(&p, hello_masked, sizeof(hello_masked), step), 0);
        expect_msg("Hello");

        /* A fragmented unmasked text message: "Hel" then "lo". */
        static const uint8_t frag[] = {0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f};
        ar_ws_parser_init(&p, 0, 0);
        assert_int_equal(run(&p, frag, sizeof(frag), step), 0);
        expect_msg("Hello");
        assert_int_equal(seen.frames, 2);
        assert_int_equal(seen.ops[1], AR_WS_OP_CONT);

        /* Unmasked ping, masked pong. */
        static const uint8_t ping[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
        ar_ws_parser_init(&p, 0, 0);
        assert_int_equal(run(&p, ping, sizeof(ping), step), 0);
        expect_ctl("Hello");
        assert_int_equal(seen.ops[0], AR_WS_OP_PING);
        uint8_t pong[sizeof(hello_masked)];
        memcpy(pong, hello_masked, sizeof(pong));
        pong[0] = 0x8a;
        ar_ws_parser_init(&p, 1, 0);
        assert_int_equal(run(&p, pong, sizeof(pong), step), 0);
        expect_ctl("Hello");
    }
}

static void test_lengths(void **state)
{
    (void)state;
    static uint8_t frame[10 + 65536];
    ar_ws_parser_t p;
    /* 256 bytes: 16-bit length; 64 KiB: 64-bit length (RFC 6455 5.7). */
    static const uint8_t h256[] = {0x82, 0x7e, 0x01, 0x00};
    static const uint8_t h64k[] = {0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0};
    uint8_t h[AR_WS_MAX_HEADER];
    assert_int_equal(ar_ws_frame_header(h, AR_WS_OP_BINARY, 1, 256, NULL), 4);
    assert_memory_equal(h, h256, 4);
    assert_int_equal(ar_ws_frame_header(h, AR_WS_OP_BINARY, 1, 65536, NULL), 10);
    assert_memory_equal(h, h64k, 10);
    for (size_t i = 0; i < 65536; i++)
        frame[10 + i] = (uint8_t)i;
    memcpy(frame, h64k, 10);
    ar_ws_parser_init(&p, 0, 65536);
    assert_int_equal(run(&p, frame, sizeof(frame), 1000), 0);
    assert_int_equal(seen.msg_len, 65536);
    assert_int_equal(seen.msg[300], (uint8_t)300);
    /* Empty frames end at once. */
    static const uint8_t empty[] = {0x81, 0x00, 0x8a, 0x00};
    assert_int_equal(run(&p, empty, sizeof(empty), 4), 0);
    assert_int_equal(seen.msgs, 2);
}

static void test_build_masked(void **state)
{
    (void)state;
    uint8_t f[64];
    size_t n = ar_ws_frame_header(f, AR_WS_OP_TEXT, 1, 5, mask_5_7);
    memcpy(f + n, "Hello", 5);
    ar_ws_mask(f + n, 5, mask_5_7, 0);
    assert_int_equal(n + 5, sizeof(hello_masked));
    assert_memory_equal(f, hello_masked, sizeof(hello_masked));
    n = ar_ws_frame_header(f, AR_WS_OP_TEXT, 1, 5, NULL);
    assert_int_equal(n, 2);
    assert_memory_equal(f, hello_unmasked, 2);
}

static void test_control_inside_fragments(void **state)
{
    (void)state;
    /* "Hel", a ping, "lo": the control frame may come between fragments (5.4). */
    static const uint8_t in[] = {0x01, 0x03, 'H', 'e', 'l', 0x89, 0x01, 'x', 0x80, 0x02, 'l', 'o'};
    ar_ws_parser_t p;
    ar_ws_parser_init(&p, 0, 0);
    assert_int_equal(run(&p, in, sizeof(in), 1), 0);
    assert_int_equal(seen.msgs, 2);
    expect_msg("Hello");
    expect_ctl("x");
    assert_int_equal(seen.ops[1], AR_WS_OP_PING);
}

/* Every violation: (bytes, server?, close code). */
typedef struct bad_s {
    const char *name;
    uint8_t bytes[16];
    size_t len;
    int server;
    uint16_t code;
} bad_t;

static void test_protocol_errors(void **state)
{
    (void)state;
    static const bad_t bad[] = {
        {"rsv1", {0xc1, 0x00}, 2, 0, 1002},
        {"rsv3", {0x91, 0x00}, 2, 0, 1002},
        {"opcode 3", {0x83, 0x00}, 2, 0, 1002},
        {"opcode b", {0x8b, 0x00}, 2, 0, 1002},
        {"unmasked to server", {0x81, 0x00}, 2, 1, 1002},
        {"masked to client", {0x81, 0x80, 1, 2, 3, 4}, 6, 0, 1002},
        {"fragmented ping", {0x09, 0x00}, 2, 0, 1002},
        {"long close", {0x88, 0x7e, 0x00, 0x7e}, 4, 0, 1002},
        {"ping 126", {0x89, 0x7e}, 2, 0, 1002},
        {"lone continuation", {0x80, 0x00}, 2, 0, 1002},
        {"text inside fragments", {0x01, 0x00, 0x81, 0x00}, 4, 0, 1002},
        {"binary inside fragments", {0x02, 0x00, 0x02, 0x00}, 4, 0, 1002},
        {"16-bit length under 126", {0x82, 0x7e, 0x00, 0x7d}, 4, 0, 1002},
        {"64-bit length under 64K", {0x82, 0x7f, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, 10, 0, 1002},
        {"64-bit length MSB", {0x82, 0x7f, 0x80, 0, 0, 0, 0, 1, 0, 0}, 10, 0, 1002},
        {"too big", {0x82, 0x7e, 0x04, 0x01}, 4, 0, 1009},
        {"too big across fragments", {0x02, 0x7e, 0x02, 0x00, 0x80, 0x7e, 0x02, 0x01}, 4, 0, 1009},
        {"bad utf-8", {0x81, 0x02, 0xc0, 0x80}, 4, 0, 1007},
        {"truncated utf-8 at fin", {0x81, 0x02, 0x41, 0xe2}, 4, 0, 1007},
        {"surrogate", {0x81, 0x03, 0xed, 0xa0, 0x80}, 5, 0, 1007},
    };
    ar_ws_parser_t p;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        for (size_t step = 1; step <= 16; step += 15) {
            ar_ws_parser_init(&p, bad[i].server, 1024);
            uint8_t buf[16];
            memcpy(buf, bad[i].bytes, sizeof(buf));
            size_t len = bad[i].len;
            if (strcmp(bad[i].name, "too big across fragments") == 0) {
                /* First fragment of 512 bytes, then one of 513: 1025 > 1024. */
                static uint8_t big[4 + 512 + 4];
                memset(big, 'a', sizeof(big));
                memcpy(big, bad[i].bytes, 4);
                memcpy(big + 516, bad[i].bytes + 4, 4);
                assert_int_not_equal(run(&p, big, sizeof(big), step), 0);
            } else {
                assert_int_not_equal(run(&p, buf, len, step), 0);
            }
            assert_int_equal(p.close_code, bad[i].code);
            /* The parser stays failed. */
            size_t c;
            ar_ws_event_t ev;
            assert_int_equal(ar_ws_parse(&p, buf, 1, &c, &ev), AR_EPARSE);
        }
    }
}

/* The word-at-a-time mask and UTF-8 check agree with byte-at-a-time references at every offset,
 * length and position of a multibyte sequence or a bad byte after an ASCII run. */
static void test_mask_utf8_words(void **state)
{
    (void)state;
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    for (size_t off = 0; off < 4; off++) {
        for (size_t len = 0; len < 41; len++) {
            uint8_t a[48], b[48];
            for (size_t i = 0; i < len; i++)
                a[i] = b[i] = (uint8_t)(i * 7 + off);
            ar_ws_mask(a, len, key, off);
            for (size_t i = 0; i < len; i++)
                b[i] ^= key[(i + off) & 3];
            assert_memory_equal(a, b, len);
        }
    }
    for (size_t pos = 0; pos < 30; pos++) {
        uint8_t s[40];
        memset(s, 'a', sizeof(s));
        memcpy(s + pos, "\xe2\x82\xac", 3); /* a euro sign after pos ASCII bytes */
        assert_int_equal(ar_ws_utf8(0, s, sizeof(s)), 0);
        assert_int_not_equal(ar_ws_utf8(0, s, pos + 2), 0); /* cut inside it */
        s[pos] = 0xff;
        assert_int_equal(ar_ws_utf8(0, s, sizeof(s)), AR_WS_UTF8_REJECT);
        s[pos] = 0xe2;
        s[pos + 1] = 'a'; /* a lead byte followed by ASCII */
        assert_int_equal(ar_ws_utf8(0, s, sizeof(s)), AR_WS_UTF8_REJECT);
    }
}

/* A masked text frame of len bytes, 1 to 70 (a server's parser unmasks it and checks its UTF-8 in
 * one pass while the text is ASCII): accepted exactly when ar_ws_utf8 accepts the text, whether
 * fed whole or a few bytes at a time, through ar_ws_parse and ar_ws_parse_message, with a
 * non-ASCII byte (valid or not) at every position. */
static void test_masked_text_utf8(void **state)
{
    (void)state;
    static const uint8_t key[4] = {0x9b, 0x01, 0x7f, 0x80};
    static const uint8_t odd[] = {0x80, 0xc3, 0xe2, 0xff, 0x7f, 0x00};
    for (size_t len = 1; len <= 70; len++) {
        for (size_t at = 0; at < len; at++) {
            for (size_t o = 0; o < sizeof(odd) + 1; o++) {
                uint8_t text[70], frame[80];
                for (size_t i = 0; i < len; i++)
                    text[i] = (uint8_t)('a' + i % 26);
                if (o < sizeof(odd))
                    text[at] = odd[o];
                else if (at + 2 < len)
                    memcpy(text + at, "\xe2\x82\xac", 3); /* a whole euro sign */
                frame[0] = 0x81;
                frame[1] = (uint8_t)(0x80 | len);
                memcpy(frame + 2, key, 4);
                for (size_t i = 0; i < len; i++)
                    frame[6 + i] = text[i] ^ key[i & 3];
                int want = ar_ws_utf8(0, text, len) == 0;
                /* Whole, a byte at a time, and in chunks that start the payload's later ones
                 * at each offset of the key (sixteen bytes at a time with SSE2) */
                const size_t steps[] = {6 + len, 1, 7, 8, 9};
                for (size_t si = 0; si < 2 * sizeof(steps) / sizeof(steps[0]); si++) {
                    size_t step = steps[si % (sizeof(steps) / sizeof(steps[0]))];
                    ar_ws_parser_t p;
                    ar_ws_parser_init(&p, 1, 0);
                    use_message = si >= sizeof(steps) / sizeof(steps[0]); /* and in one step */
                    int err = run(&p, frame, 6 + len, step);
                    use_message = 0;
                    if ((err == 0) != want)
                        fail_msg("length %zu, byte %zu at %zu, step %zu: err %d", len, o, at, step,
                                 err);
                    if (want) {
                        assert_int_equal(seen.msg_len, len);
                        assert_memory_equal(seen.msg, text, len);
                    } else {
                        assert_int_equal(p.close_code, AR_WS_CLOSE_BAD_DATA);
                    }
                }
            }
        }
    }
}

static void test_utf8(void **state)
{
    (void)state;
    /* é, €, 𝄞 and U+10FFFF are valid; overlongs, surrogates and U+110000 are not. */
    static const char good[] = "\xc3\xa9\xe2\x82\xac\xf0\x9d\x84\x9e\xf4\x8f\xbf\xbf";
    assert_int_equal(ar_ws_utf8(0, (const uint8_t *)good, strlen(good)), 0);
    uint8_t st = 0;
    for (size_t i = 0; i < strlen(good); i++)
        st = ar_ws_utf8(st, (const uint8_t *)good + i, 1);
    assert_int_equal(st, 0);
    static const char *const bad[] = {
        "\xc0\x80",         "\xc1\xbf", "\xe0\x80\x80", "\xed\xbf\xbf", "\xf0\x80\x80\x80",
        "\xf4\x90\x80\x80", "\xf5",     "\x80",         "\xff",         "\xe2\x28\xa1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(ar_ws_utf8(0, (const uint8_t *)bad[i], strlen(bad[i])), AR_WS_UTF8_REJECT);
    assert_int_not_equal(ar_ws_utf8(0, (const uint8_t *)"\xe2\x82", 2), 0);

    /* A code point split across two fragments is fine. */
    static const uint8_t split[] = {0x01, 0x02, 'a', 0xe2, 0x80, 0x02, 0x82, 0xac};
    ar_ws_parser_t p;
    ar_ws_parser_init(&p, 0, 0);
    assert_int_equal(run(&p, split, sizeof(split), 3), 0);
    expect_msg("a\xe2\x82\xac");
    /* Binary messages are not checked. */
    static const uint8_t bin[] = {0x82, 0x02, 0xc0, 0x80};
    assert_int_equal(run(&p, bin, sizeof(bin), 4), 0);
}

/* One stream through ar_ws_parse and through ar_ws_parse_message in chunks of every size: the
 * same messages, control payloads, opcodes and error, with the close code. Returns how many
 * messages ar_ws_parse_message took in one step. */
static int same_as_parse(const uint8_t *in, size_t len, int server)
{
    static seen_t ref;
    int one_step = 0;
    for (size_t step = 1; step <= len; step++) {
        ar_ws_parser_t p, q;
        ar_ws_parser_init(&p, server, 300);
        use_message = 0;
        int err = run(&p, in, len, step);
        ref = seen;
        ar_ws_parser_init(&q, server, 300);
        use_message = 1;
        assert_int_equal(run(&q, in, len, step), err);
        use_message = 0;
        if (err) {
            assert_int_equal(q.close_code, p.close_code);
            continue;
        }
        assert_int_equal(seen.msgs, ref.msgs);
        assert_int_equal(seen.frames, ref.frames);
        assert_memory_equal(seen.ops, ref.ops, sizeof(ref.ops));
        assert_int_equal(seen.msg_len, ref.msg_len);
        assert_memory_equal(seen.msg, ref.msg, ref.msg_len);
        assert_int_equal(seen.ctl_len, ref.ctl_len);
        assert_memory_equal(seen.ctl, ref.ctl, ref.ctl_len);
        one_step += seen.one_step;
    }
    return one_step;
}

/* Puts a frame at out + at, masked with key unless key is NULL; returns the new length. */
static size_t put_frame(uint8_t *out, size_t at, uint8_t b0, const void *payload, size_t n,
                        const uint8_t *key)
{
    size_t h = ar_ws_frame_header(out + at, b0 & 0x0f, (b0 & 0x80) != 0, n, key);
    memcpy(out + at + h, payload, n);
    if (key)
        ar_ws_mask(out + at + h, n, key, 0);
    out[at] = b0; /* RSV bits as given */
    return at + h + n;
}

static void test_parse_message_same(void **state)
{
    (void)state;
    static const uint8_t key[4] = {0x9d, 0x31, 0xe4, 0x07};
    static const char utf8[] = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 fin";
    static const uint8_t bad_utf8[] = {'a', 'b', 0xc3, 0x28, 'c'};
    static const uint8_t cut_utf8[] = {'a', 0xe2, 0x82};
    static uint8_t big[301];
    char text[200];
    for (size_t i = 0; i < sizeof(text); i++)
        text[i] = (char)(' ' + (i * 7) % 90);
    for (int server = 0; server < 2; server++) {
        const uint8_t *k = server ? key : NULL;
        uint8_t in[800];
        size_t n;
        /* Whole messages of every length up to 40, then every 37th up to 200 (both length
         * encodings, every remainder of the unmasking's 16 and 8 byte steps), after a ping and
         * before a binary message. */
        for (size_t tl = 0; tl <= sizeof(text); tl += tl < 40 ? 1 : 37) {
            n = put_frame(in, 0, 0x89, "p", 1, k);
            n = put_frame(in, n, 0x81, text, tl, k);
            n = put_frame(in, n, 0x82, "\x00\xff", 2, k);
            assert_true(same_as_parse(in, n, server) > 0);
        }
        n = put_frame(in, 0, 0x81, utf8, strlen(utf8), k);
        assert_true(same_as_parse(in, n, server) > 0);
        /* Fragmented, with a ping between the fragments, then a whole message. */
        n = put_frame(in, 0, 0x01, text, 30, k);
        n = put_frame(in, n, 0x89, "x", 1, k);
        n = put_frame(in, n, 0x80, text + 30, 20, k);
        n = put_frame(in, n, 0x81, text, 9, k);
        assert_true(same_as_parse(in, n, server) > 0);
        /* Refused: bad and cut UTF-8, a reserved bit, a message over the cap of 300, a
         * continuation with nothing to continue, a message inside a fragmented one, a frame
         * masked the wrong way for the side. */
        n = put_frame(in, 0, 0x81, bad_utf8, sizeof(bad_utf8), k);
        same_as_parse(in, n, server);
        n = put_frame(in, 0, 0x81, cut_utf8, sizeof(cut_utf8), k);
        same_as_parse(in, n, server);
        n = put_frame(in, 0, 0xc1, text, 5, k);
        same_as_parse(in, n, server);
        n = put_frame(in, 0, 0x82, big, sizeof(big), k);
        same_as_parse(in, n, server);
        n = put_frame(in, 0, 0x80, text, 5, k);
        same_as_parse(in, n, server);
        n = put_frame(in, 0, 0x01, text, 5, k);
        n = put_frame(in, n, 0x81, text, 5, k);
        same_as_parse(in, n, server);
        n = put_frame(in, 0, 0x81, text, 5, server ? NULL : key);
        same_as_parse(in, n, server);
    }
}

static void test_close(void **state)
{
    (void)state;
    uint16_t code;
    const uint8_t *reason;
    size_t rlen;
    assert_int_equal(ar_ws_close_parse(NULL, 0, &code, &reason, &rlen), 0);
    assert_int_equal(code, AR_WS_CLOSE_NO_STATUS);
    uint8_t pl[AR_WS_MAX_CONTROL];
    size_t n = ar_ws_close_payload(pl, 1000, "bye");
    assert_int_equal(n, 5);
    assert_int_equal(ar_ws_close_parse(pl, n, &code, &reason, &rlen), 0);
    assert_int_equal(code, 1000);
    assert_int_equal(rlen, 3);
    assert_memory_equal(reason, "bye", 3);
    assert_int_equal(ar_ws_close_parse(pl, 1, &code, &reason, &rlen), AR_EPARSE);
    static const uint16_t refused[] = {0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        n = ar_ws_close_payload(pl, refused[i], NULL);
        assert_int_equal(ar_ws_close_parse(pl, n, &code, &reason, &rlen), AR_EPARSE);
    }
    n = ar_ws_close_payload(pl, 4000, NULL);
    assert_int_equal(ar_ws_close_parse(pl, n, &code, &reason, &rlen), 0);
    static const uint8_t badreason[] = {0x03, 0xe8, 0xff};
    assert_int_equal(ar_ws_close_parse(badreason, 3, &code, &reason, &rlen), AR_EPARSE);
    /* The builder truncates a long reason to fit a control frame. */
    char longr[300];
    memset(longr, 'r', sizeof(longr) - 1);
    longr[sizeof(longr) - 1] = '\0';
    assert_int_equal(ar_ws_close_payload(pl, 1000, longr), AR_WS_MAX_CONTROL);
}

/* The parser's unmasking of a text payload, each path forced (SSE2; AVX2 where the CPU has it,
 * main says whether), against a byte at a time: the same bytes and the same "all ASCII" answer,
 * for every length to 130 (every remainder of the 32, 16 and 8 byte steps), every offset of the
 * key, and a byte >= 0x80 at each place or none. */
static void test_unmask_paths(void **state)
{
    (void)state;
    static const uint8_t key[4] = {0x9b, 0x01, 0x7f, 0x80};
    for (size_t len = 0; len <= 130; len++) {
        for (size_t off = 0; off < 4; off++) {
            for (size_t hi = 0; hi <= len; hi++) { /* hi == len: none */
                uint8_t text[130], want[130], got[130];
                for (size_t i = 0; i < len; i++)
                    text[i] = (uint8_t)(i == hi ? 0x80 | (i * 13) : ' ' + (i * 7) % 90);
                for (size_t i = 0; i < len; i++)
                    want[i] = text[i] ^ key[(i + off) & 3];
                int ascii = hi == len;
                for (int avx2 = 0; avx2 < 2; avx2++) {
                    memcpy(got, want, len); /* masked: unmasking gives the text back */
                    int a = ar__ws_unmask_ascii(got, len, key, off, avx2);
                    if (a != ascii || memcmp(got, text, len) != 0)
                        fail_msg("%s, length %zu, offset %zu, high byte at %zu: ascii %d",
                                 avx2 ? "AVX2" : "SSE2", len, off, hi, a);
                }
            }
        }
    }
}

int main(void)
{
    print_message("AVX2 unmasking %s\n",
                  ar__ws_unmask_avx2() ? "tested" : "not tested: no AVX2 here");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc_examples),       cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_build_masked),       cmocka_unit_test(test_control_inside_fragments),
        cmocka_unit_test(test_protocol_errors),    cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_masked_text_utf8),   cmocka_unit_test(test_unmask_paths),
        cmocka_unit_test(test_mask_utf8_words),    cmocka_unit_test(test_close),
        cmocka_unit_test(test_parse_message_same),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
