/*
 * The relay's fast parse (ar_sig_parse2 with AR_SIG_PARSE_KEEP_SDP_JSON, src/proto/signal/lift.c)
 * against the full parse: for every frame, the same result and the same error, and an accepted
 * offer or answer relays to the same message. Frames: the fuzz corpus (each also padded past the
 * fast path's 1 KiB threshold) and large offers with every kind of escape and bad byte.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "signal/signal.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char out1[AR_SIG_OUT_MAX + 1], out2[AR_SIG_OUT_MAX + 1], out3[AR_SIG_OUT_MAX + 1];
static int fast_taken;

/* Builds m as the server frame a relay sends (peer id and sequence number set). */
static int relay_build(ar_sig_msg_t *m, char *out)
{
    ar_sig_str_t *peer = m->type == AR_SIG_CANDIDATE ? &m->u.cand.peer : &m->u.sdp.peer;
    *peer = (ar_sig_str_t){"PPPPPPPPPPPPPPPPPPPPPP", 22};
    m->seq = 7;
    return ar_sig_build(AR_SIG_FROM_SERVER, m, out, AR_SIG_OUT_MAX + 1);
}

static void same(ar_sig_dir_t dir, const char *f, size_t len)
{
    ar_sig_msg_t m1, m2;
    ar_sig_err_t e1, e2;
    int r1 = ar_sig_parse(dir, f, len, &m1, &e1);
    int r2 = ar_sig_parse2(dir, f, len, AR_SIG_PARSE_KEEP_SDP_JSON, &m2, &e2);
    if (r1 != r2)
        fail_msg("full %d, fast %d for %.80s", r1, r2, f);
    if (r1 != 0) {
        assert_int_equal(e1.code, e2.code);
        assert_string_equal(e1.text, e2.text);
        assert_true(e1.id == e2.id && e1.type == e2.type);
        return;
    }
    assert_int_equal(m1.type, m2.type);
    fast_taken += m2.sdp_json_ != NULL;
    if (dir == AR_SIG_FROM_CLIENT &&
        (m1.type == AR_SIG_OFFER || m1.type == AR_SIG_ANSWER || m1.type == AR_SIG_CANDIDATE)) {
        /* The relayed frames differ only in how the SDP is escaped: decoded, they are one. */
        int n1 = relay_build(&m1, out1), n2 = relay_build(&m2, out2);
        assert_true(n1 > 0 && n2 > 0);
        ar_sig_msg_t m3;
        ar_sig_err_t e3;
        assert_int_equal(ar_sig_parse(AR_SIG_FROM_SERVER, out2, (size_t)n2, &m3, &e3), 0);
        int n3 = ar_sig_build(AR_SIG_FROM_SERVER, &m3, out3, sizeof(out3));
        assert_int_equal(n3, n1);
        assert_memory_equal(out3, out1, (size_t)n1);
        ar_sig_msg_free(&m3);
    } else {
        int n1 = ar_sig_build(dir, &m1, out1, sizeof(out1));
        int n2 = ar_sig_build(dir, &m2, out2, sizeof(out2));
        assert_int_equal(n1, n2);
        if (n1 > 0)
            assert_memory_equal(out1, out2, (size_t)n1);
    }
    ar_sig_msg_free(&m1);
    ar_sig_msg_free(&m2);
}

/* Each frame as it is and padded with spaces after '{' (the same JSON, past the threshold). */
static void both(ar_sig_dir_t dir, const char *f, size_t len)
{
    same(dir, f, len);
    static char padded[AR_SIG_OUT_MAX + 2048];
    const char *brace = memchr(f, '{', len);
    if (!brace || len + 1200 > sizeof(padded))
        return;
    size_t head = (size_t)(brace - f) + 1;
    memcpy(padded, f, head);
    memset(padded + head, ' ', 1200);
    memcpy(padded + head + 1200, f + head, len - head);
    same(dir, padded, len + 1200);
}

static void test_corpus(void **state)
{
    (void)state;
    DIR *d = opendir(AR_SIGNAL_CORPUS);
    assert_non_null(d);
    static char buf[AR_SIG_OUT_MAX + 64];
    int files = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", AR_SIGNAL_CORPUS, e->d_name);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        size_t n = fread(buf, 1, sizeof(buf), f);
        fclose(f);
        if (n == 0)
            continue;
        /* The fuzz target's convention: the first byte picks the direction. */
        both(buf[0] == 's' ? AR_SIG_FROM_SERVER : AR_SIG_FROM_CLIENT, buf + 1, n - 1);
        files++;
    }
    closedir(d);
    assert_true(files > 100);
}

/* An offer whose SDP is `unit` repeated to about `bytes`, put in place of fmt's "%s". */
static size_t offer(char *out, size_t cap, const char *fmt, const char *unit, size_t bytes)
{
    static char sdp[70000];
    size_t n = 0, u = strlen(unit);
    while (n + u < bytes && n + u < sizeof(sdp) - 1) {
        memcpy(sdp + n, unit, u);
        n += u;
    }
    sdp[n] = '\0';
    /* fmt's one "%s" replaced by the SDP (not printf: the templates hold JSON escapes). */
    const char *at = strstr(fmt, "%s");
    size_t head = (size_t)(at - fmt), tail = strlen(at + 2);
    assert_true(head + n + tail < cap);
    memcpy(out, fmt, head);
    memcpy(out + head, sdp, n);
    memcpy(out + head + n, at + 2, tail);
    out[head + n + tail] = '\0';
    return head + n + tail;
}

static void test_offers(void **state)
{
    (void)state;
    static const char *const units[] = {
        "a=candidate:1 1 udp 1 192.0.2.1 5 typ host\\r\\n",                /* ordinary */
        "o=- 1 2 IN IP4 127.0.0.1\\r\\ns=\\u00e9\\u00E9\\/\\\"\\\\\\t\\n", /* escapes */
        "s=caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\\r\\n",               /* raw UTF-8 */
        "s=\\ud83d\\ude00\\r\\n",                                          /* a surrogate pair */
        "a=x\\u0009y\\u000a\\u000D\\r\\n",                                 /* allowed controls */
        "a=ok\\r\\n\\ud83d",                                               /* lone high surrogate */
        "a=ok\\r\\n\\ude00",                                               /* lone low surrogate */
        "a=ok\\r\\n\\ud83d\\u0041",                                        /* high, then not low */
        "a=ok\\u0000\\r\\n",                                               /* NUL */
        "a=ok\\b\\r\\n",                                                   /* backspace */
        "a=ok\\f\\r\\n",                                                   /* form feed */
        "a=ok\\u0007\\r\\n",                                               /* bell */
        "a=ok\\u007f\\r\\n",                                               /* DEL escaped */
        "a=ok\x7f\\r\\n",                                                  /* DEL raw */
        "a=ok\\u0085\\r\\n",                                               /* C1 escaped */
        "a=ok\xc2\x85\\r\\n",                                              /* C1 raw */
        "a=ok\xc2\xa0\\r\\n",                                              /* just past C1 */
        "a=ok\\u009f\\r\\n",                                               /* last C1 */
        "a=ok\xc2\x9f\\r\\n",                                              /* last C1 raw */
        "a=ok\\u007e\\u00a0\\u001f\\r\\n",                                 /* edges */
        "a=ok\x01\\r\\n",                                                  /* raw control */
        "a=ok\t\\r\\n",                                                    /* raw tab */
        "a=ok\xc0\xaf\\r\\n",                                              /* overlong */
        "a=ok\xed\xa0\x80\\r\\n",                                          /* UTF-8 surrogate */
        "a=ok\xf4\x90\x80\x80\\r\\n",                                      /* above U+10FFFF */
        "a=ok\xe2\x82\\r\\n",                                              /* cut sequence */
        "a=ok\xff\\r\\n",                                                  /* not UTF-8 */
        "a=ok\\x\\r\\n",                                                   /* bad escape */
        "a=ok\\u12G4\\r\\n",                                               /* bad hex */
    };
    static const char *const frames[] = {
        "{\"v\":1,\"type\":\"offer\",\"to\":\"AAAAAAAAAAAAAAAAAAAAAA\",\"sdp\":\"%s\"}",
        "{\"v\":1,\"type\":\"answer\",\"id\":5,\"sdp\":\"%s\",\"to\":\"AAAAAAAAAAAAAAAAAAAAAA\"}",
        " { \"sdp\" : \"%s\" , \"type\" : \"offer\" , \"v\" : 1 , \"to\" : \"AAAA\" , "
        "\"restart\" : true } \n",
        "{\"v\":1,\"type\":\"offer\",\"to\":\"AAAA\",\"sdp\":\"%s\",\"sdp\":\"x\"}",
        "{\"v\":1,\"type\":\"offer\",\"to\":\"AAAA\",\"\\u0073dp\":\"%s\"}",
        "{\"v\":1,\"type\":\"offer\",\"to\":\"AAAA\",\"x\":{\"sdp\":\"%s\"},\"sdp\":\"v=0\"}",
        "{\"v\":1,\"type\":\"candidate\",\"to\":\"AAAA\",\"candidate\":\"c\",\"sdp\":\"%s\"}",
        "{\"v\":1,\"type\":\"message\",\"to\":\"AAAA\",\"text\":\"hi\",\"sdp\":\"%s\"}",
        "{\"v\":1,\"type\":\"offer\",\"to\":\"AAAA\",\"sdp\":\"%s\"}}",
        "{\"v\":1,\"type\":\"offer\",\"to\":\"AAAA\",\"sdp\":\"%s\"} x",
        "{\"v\":1,\"type\":\"offer\",\"to\":\"AAAA\",\"sdp\":\"%s\",}",
        "{\"v\":2,\"type\":\"offer\",\"to\":\"AAAA\",\"sdp\":\"%s\"}",
        "{\"v\":1,\"type\":\"offer\",\"to\":\"AAAA\",\"sdp\":[\"%s\"]}",
        "[{\"v\":1,\"type\":\"offer\",\"to\":\"AAAA\",\"sdp\":\"%s\"}]",
        "{\"v\":1,\"type\":\"offer\",\"to\":\"A A\",\"sdp\":\"%s\"}",
        "{\"v\":1,\"type\":\"offer\",\"to\":\"AAAA\",\"sdp\":\"%s\",\"n\":[1,{\"a\":[2,\"]\"]},-"
        "3e5]}",
        "{\"v\":1,\"type\":\"offer\",\"to\":\"AAAA\",\"sdp\":\"%s\",\"n\":tru}",
    };
    static char f[AR_SIG_OUT_MAX + 4096];
    static const size_t sizes[] = {1200, 4000, AR_SIG_SDP_MAX + 20};
    for (size_t fi = 0; fi < sizeof(frames) / sizeof(frames[0]); fi++)
        for (size_t ui = 0; ui < sizeof(units) / sizeof(units[0]); ui++)
            for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
                /* The bad unit once at the end of good ones, as well as repeated. */
                size_t n = offer(f, sizeof(f), frames[fi], units[ui], sizes[si]);
                same(AR_SIG_FROM_CLIENT, f, n);
                same(AR_SIG_FROM_SERVER, f, n);
            }
    /* The fast path was taken for the well-formed large offers (and only then mattered). */
    assert_true(fast_taken > 50);
}

static void test_exact_limit(void **state)
{
    (void)state;
    /* An SDP of exactly AR_SIG_SDP_MAX decoded bytes passes; one more is refused, both ways. */
    static char f[AR_SIG_FRAME_MAX + 64];
    for (int extra = 0; extra <= 1; extra++) {
        int head = snprintf(f, sizeof(f), "{\"v\":1,\"type\":\"offer\",\"to\":\"AAAA\",\"sdp\":\"");
        size_t n = (size_t)head;
        /* "\r\n" escaped is 4 bytes for 2 decoded: fill with 'a' and a few escapes. */
        size_t decoded = 0;
        while (decoded + 2 <= 600) {
            memcpy(f + n, "\\r\\n", 4);
            n += 4;
            decoded += 2;
        }
        while (decoded < (size_t)AR_SIG_SDP_MAX + (size_t)extra) {
            f[n++] = 'a';
            decoded++;
        }
        n += (size_t)snprintf(f + n, sizeof(f) - n, "\"}");
        same(AR_SIG_FROM_CLIENT, f, n);
        ar_sig_msg_t m;
        ar_sig_err_t e;
        int r = ar_sig_parse2(AR_SIG_FROM_CLIENT, f, n, AR_SIG_PARSE_KEEP_SDP_JSON, &m, &e);
        assert_int_equal(r, extra ? AR_EPARSE : 0);
        if (r == 0) {
            assert_non_null(m.sdp_json_);
            assert_int_equal(m.u.sdp.sdp.len, 600 * 2 + (size_t)AR_SIG_SDP_MAX - 600);
            ar_sig_msg_free(&m);
        }
    }
}

int main(void)
{
    ar_sig_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_corpus),
        cmocka_unit_test(test_offers),
        cmocka_unit_test(test_exact_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
