/*
 * The ASCII character classes (validate.c: a table derived at compile time, and printable ASCII
 * eight bytes at a time) against a byte-by-byte reference written from docs/protocol.md's rules:
 * every byte value at every position of strings up to 40 bytes, and random strings. Then the
 * string scanners' skip over plain bytes (internal.h: sixteen bytes at a time with SSE2, else
 * eight) against a byte loop, and the SDP string's check (lift.c) sixteen bytes at a time against
 * its word-at-a-time version.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "internal.h"

#include <stdlib.h>
#include <string.h>

static int ref_byte(int cs, unsigned char c)
{
    int alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    switch (cs) {
    case AR__CS_ID:
        return alnum || c == '.' || c == '_' || c == '-';
    case AR__CS_ASCII:
        return c >= 0x20 && c <= 0x7e;
    case AR__CS_URL:
        return c > 0x20 && c <= 0x7e && c != '"' && c != '\'' && c != '<' && c != '>' && c != '\\';
    case AR__CS_LANG:
        return alnum || c == '-';
    case AR__CS_WORD:
        return (c >= 'a' && c <= 'z') || c == '_';
    default:
        return 0;
    }
}

static int ref(int cs, const unsigned char *s, size_t len)
{
    if (cs == AR__CS_URL && !(len >= 6 && memcmp(s, "wss://", 6) == 0) &&
        !(len >= 5 && memcmp(s, "ws://", 5) == 0))
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!ref_byte(cs, s[i]))
            return 0;
    return 1;
}

static const int k_classes[] = {AR__CS_ID, AR__CS_ASCII, AR__CS_URL, AR__CS_LANG, AR__CS_WORD};

/* A string of len bytes of class cs (for URL, behind "wss://"). */
static void fill(int cs, unsigned char *s, size_t len)
{
    const char *ok = cs == AR__CS_WORD ? "abc_xyz" : "aZ09-b";
    for (size_t i = 0; i < len; i++)
        s[i] = (unsigned char)ok[i % strlen(ok)];
    if (cs == AR__CS_URL && len >= 6)
        memcpy(s, "wss://", 6);
}

static void test_every_byte_everywhere(void **state)
{
    (void)state;
    unsigned char s[70]; /* ids sixteen bytes at a time (SSE2) from 16 bytes on: 0 to 70 */
    for (size_t c = 0; c < sizeof(k_classes) / sizeof(k_classes[0]); c++) {
        int cs = k_classes[c];
        for (size_t len = 0; len <= sizeof(s); len++) {
            fill(cs, s, len);
            assert_int_equal(ar__sig_charset_ok(cs, (const char *)s, len), ref(cs, s, len));
            for (size_t at = 0; at < len; at++) {
                for (int b = 0; b < 256; b++) {
                    fill(cs, s, len);
                    s[at] = (unsigned char)b;
                    int want = ref(cs, s, len);
                    if (ar__sig_charset_ok(cs, (const char *)s, len) != want)
                        fail_msg("class %d, length %zu, byte 0x%02x at %zu: want %d", cs, len, b,
                                 at, want);
                }
            }
        }
    }
}

static void test_random(void **state)
{
    (void)state;
    unsigned char s[80];
    srand(7);
    for (int round = 0; round < 200000; round++) {
        int cs = k_classes[round % 5];
        size_t len = (size_t)(rand() % (int)sizeof(s));
        fill(cs, s, len);
        /* A few bytes anywhere, mostly near the class's edges. */
        for (int k = rand() % 3; k > 0 && len > 0; k--) {
            static const unsigned char edge[] = {
                0x00, 0x1f, 0x20, 0x21, 0x22, 0x27, 0x2d, 0x2e, 0x2f, 0x30, 0x39, 0x3a, 0x3c, 0x3e,
                0x40, 0x41, 0x5a, 0x5b, 0x5c, 0x5f, 0x60, 0x61, 0x7a, 0x7b, 0x7e, 0x7f, 0x80, 0xff};
            int b = rand() % 2 ? edge[rand() % (int)sizeof(edge)] : rand() % 256;
            s[rand() % (int)len] = (unsigned char)b;
        }
        assert_int_equal(ar__sig_charset_ok(cs, (const char *)s, len), ref(cs, s, len));
    }
}

static void test_no_class(void **state)
{
    (void)state;
    assert_int_equal(ar__sig_charset_ok(0, "", 0), 1);
    assert_int_equal(ar__sig_charset_ok(0, "a", 1), 0);
    assert_int_equal(ar__sig_charset_ok(99, "a", 1), 0);
    assert_int_equal(ar__sig_charset_ok(-1, "", 0), 1);
}

static int plain_byte(unsigned char c)
{
    return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
}

/* What ar__sig_skip_plain promises: every byte it skips is plain, and it stops at the first one
 * that is not, unless fewer than eight bytes were left to look at. */
static void check_skip(const unsigned char *s, size_t i, size_t len)
{
    size_t got = ar__sig_skip_plain(s, i, len);
    size_t want = i;
    while (want < len && plain_byte(s[want]))
        want++;
    if (got > want || (got < want && len - got >= 8))
        fail_msg("skip from %zu of %zu: got %zu, first byte not plain at %zu", i, len, got, want);
}

static void test_skip_plain(void **state)
{
    (void)state;
    unsigned char s[72];
    for (size_t len = 0; len <= 40; len++) {
        for (size_t at = 0; at < len; at++) {
            for (int b = 0; b < 256; b++) {
                memset(s, 'a', sizeof(s));
                s[at] = (unsigned char)b;
                for (size_t i = 0; i <= len && i < 3; i++)
                    check_skip(s, i, len);
            }
        }
    }
    srand(11);
    for (int round = 0; round < 300000; round++) {
        size_t len = (size_t)(rand() % (int)sizeof(s));
        memset(s, 'x', sizeof(s));
        for (int k = rand() % 4; k > 0 && len > 0; k--)
            s[rand() % (int)len] = (unsigned char)(rand() % 256);
        check_skip(s, len ? (size_t)(rand() % (int)len) : 0, len);
    }
}

/* Bytes an SDP string's content is made of in the tests: plain text, the escapes it may hold
 * (and some it may not), UTF-8 good and bad. */
static const char *const k_sdp_parts[] = {
    "a=x",
    "\\r\\n",
    "\\n",
    "\\t",
    "\\\"",
    "\\\\",
    "\\/",
    "\\b",
    "\\u00e9",
    "\\ud83d\\ude00",
    "\\udc00",
    "\\u0000",
    "\\u0085",
    "\\u12",
    "\xc3\xa9",
    "\xe2\x82\xac",
    "\xf0\x9f\x98\x80",
    "\xc2\x85",
    "\xc0\xaf",
    "\xed\xa0\x80",
    "\x7f",
    "\x01",
    "\\",
    "\r",
    "\"",
    "v=0 o=- 1 2 IN IP4 0.0.0.0",
    "r\\n",
    "\\\\r\\n",
    "\\r",
    "\\r\\",
    "n",
};

/* The SSE2 scan and the word-at-a-time one give the same answer on f[0..len), the string opening
 * at f[0]. Without SSE2 both are the same function. */
static void check_sdp(const char *f, size_t len)
{
    size_t want = ar__sig_sdp_end_words(f, 0, len), got = ar__sig_sdp_end(f, 0, len);
    if (got != want)
        fail_msg("SDP string of %zu bytes: got %zu, want %zu", len, got, want);
}

/* Every byte value at every place of contents of 0 to 70 bytes, the string closed and followed by
 * 0 to 17 more bytes: strings that end on a sixteen-byte boundary and one byte after, and frames
 * shorter than sixteen bytes. */
static void test_sdp_every_byte(void **state)
{
    (void)state;
    char f[96];
    for (size_t n = 0; n <= 70; n++) {
        for (size_t tail = 0; tail <= 17; tail += (n < 30 ? 1 : 8)) {
            size_t len = n + 2 + tail;
            for (size_t at = 0; at <= n; at++) {
                for (int b = 0; b < 256; b++) {
                    /* SDP-like text with escapes, some cut short by the string's end */
                    static const char text[] = "a=x-bench:1\\r\\nb\\\"c\\u00e9d";
                    f[0] = '"';
                    for (size_t k = 0; k < n; k++)
                        f[1 + k] = text[k % (sizeof(text) - 1)];
                    f[1 + n] = '"';
                    memset(f + 2 + n, '}', tail);
                    f[1 + at] = (char)b; /* at == n: the closing quote's place */
                    check_sdp(f, len);
                }
            }
        }
    }
}

/* Random contents from k_sdp_parts, at random offsets and lengths, cut anywhere. */
static void test_sdp_random(void **state)
{
    (void)state;
    char f[512];
    srand(13);
    for (int round = 0; round < 300000; round++) {
        size_t len = 0;
        f[len++] = '"';
        int parts = rand() % 24;
        for (int k = 0; k < parts; k++) {
            const char *p = k_sdp_parts[rand() % (int)(sizeof(k_sdp_parts) / sizeof(*k_sdp_parts))];
            size_t pl = strlen(p);
            if (len + pl + 4 > sizeof(f))
                break;
            memcpy(f + len, p, pl);
            len += pl;
        }
        if (rand() % 8 != 0)
            f[len++] = '"';
        for (int t = rand() % 18; t > 0; t--)
            f[len++] = '}';
        if (rand() % 4 == 0 && len > 1)
            len = 1 + (size_t)rand() % (len - 1); /* cut anywhere */
        check_sdp(f, len);
    }
}

/* The decoded length's bound: SDPs made of one line over and over, at every alignment, exactly
 * AR_SIG_SDP_MAX decoded bytes long (accepted) and one byte longer (refused), counted through
 * line ends that end a block, straddle one or start in its last three bytes, and through lines
 * that also hold other escapes and UTF-8 after their line end (which the SSE2 scan's fast path
 * gives up on part way), and of plain lines, whose JSON is as long as their text (the SSE2 scan
 * counts no line end when the JSON is at most AR_SIG_SDP_MAX bytes long, sdp_quoted). */
static void test_sdp_length(void **state)
{
    (void)state;
    static char f[AR_SIG_SDP_MAX * 2];
    static const struct {
        const char *raw;
        size_t decoded;
    } lines[] = {
        {"a=x-bench:1\\r\\n", 13}, /* 15 bytes */
        {"a=\\r\\n\xc3\xa9"
         "b\\tc",
         9},                                     /* 12 bytes: a line end, then é and a tab */
        {"\\r\\n\\r\\nv=0\\r\\n\\u00e9\\/", 12}, /* 24 bytes */
        {"a=x-bench:1ab", 13}, /* no escape: the JSON's length is the text's, at the bound */
    };
    for (size_t l = 0; l < sizeof(lines) / sizeof(lines[0]); l++) {
        size_t rl = strlen(lines[l].raw), dl = lines[l].decoded;
        for (size_t shift = 0; shift < 32; shift++) {
            for (size_t extra = 0; extra <= 1; extra++) {
                size_t len = 0, decoded = 0;
                f[len++] = '"';
                for (size_t k = 0; k < shift; k++, decoded++)
                    f[len++] = 'b';
                while (decoded + dl <= AR_SIG_SDP_MAX) {
                    memcpy(f + len, lines[l].raw, rl);
                    len += rl;
                    decoded += dl;
                }
                while (decoded < AR_SIG_SDP_MAX + extra)
                    f[len++] = 'c', decoded++;
                size_t quote = len;
                f[len++] = '"';
                f[len++] = '}';
                size_t want = extra ? 0 : quote;
                if (ar__sig_sdp_end_words(f, 0, len) != want || ar__sig_sdp_end(f, 0, len) != want)
                    fail_msg("line %zu, shift %zu, %s: words %zu, sse %zu, want %zu", l, shift,
                             extra ? "one byte over" : "at the bound",
                             ar__sig_sdp_end_words(f, 0, len), ar__sig_sdp_end(f, 0, len), want);
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_byte_everywhere),
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_no_class),
        cmocka_unit_test(test_skip_plain),
        cmocka_unit_test(test_sdp_every_byte),
        cmocka_unit_test(test_sdp_random),
        cmocka_unit_test(test_sdp_length),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
