/*
 * Fuzzes the WebSocket codec. The first input byte picks the mode: even runs the bytes through a
 * server and a client frame parser, fed whole and in chunks of the size given by the second byte,
 * and checks both feedings agree (events and payload) and that every text message completed
 * is valid UTF-8 by the separate validator, and the same again through ar_ws_parse_message
 * (whose one-step messages must digest as ar_ws_parse's three events would), and unmasks them
 * by both the SSE2 and the AVX2 path, which must agree; odd runs the rest
 * as an upgrade request (bit 1: allow requests without Origin), checks an accepted one again cut
 * to its length and one byte shorter, and writes the response. Disagreements abort.
 */
#include "ws/ws.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

typedef struct trace_s {
    uint64_t sum; /* a digest of events and payload bytes */
    size_t payload;
    int err;
    uint16_t close_code;
} trace_t;

/* A whole message ar_ws_parse_message took in one step, digested as the FRAME_START, DATA and
 * FRAME_END ar_ws_parse reports for it. */
static void digest_message(const ar_ws_event_t *ev, trace_t *t)
{
    CHECK(ev->fin && ev->msg_end && ev->len == ev->frame_len);
    CHECK(ev->opcode == AR_WS_OP_TEXT || ev->opcode == AR_WS_OP_BINARY);
    if (ev->opcode == AR_WS_OP_TEXT)
        CHECK(ar_ws_utf8(0, ev->data, ev->len) == 0);
    t->sum = t->sum * 31 + AR_WS_EV_FRAME_START * 7 + ev->opcode;
    t->payload += ev->len;
    for (size_t i = 0; i < ev->len; i++)
        t->sum = t->sum * 131 + ev->data[i];
    t->sum = t->sum * 31 + AR_WS_EV_FRAME_END * 7 + ev->opcode + 1;
}

static void parse_all(int server, int one_step, uint8_t *buf, size_t len, size_t step, trace_t *t)
{
    ar_ws_parser_t p;
    ar_ws_parser_init(&p, server, 4096);
    memset(t, 0, sizeof(*t));
    /* An oracle for the parser's own UTF-8 check (done while unmasking): every text message it
     * completes must also pass the separate validator, ar_ws_utf8, run over its payload. */
    int in_text = 0;
    uint8_t utf8 = 0;
    for (size_t off = 0; off < len; off += step) {
        size_t n = len - off < step ? len - off : step, used = 0;
        for (;;) {
            size_t c = 0;
            ar_ws_event_t ev;
            int err = one_step ? ar_ws_parse_message(&p, buf + off + used, n - used, &c, &ev)
                               : ar_ws_parse(&p, buf + off + used, n - used, &c, &ev);
            if (err) {
                CHECK(err == AR_EPARSE || err == AR_ETOOBIG);
                CHECK(p.close_code == 1002 || p.close_code == 1007 || p.close_code == 1009);
                t->err = err;
                t->close_code = p.close_code;
                return;
            }
            CHECK(c <= n - used);
            used += c;
            if (ev.type == AR_WS_EV_NEED_MORE) {
                CHECK(used == n);
                break;
            }
            if (ev.type == AR_WS_EV_MESSAGE) {
                CHECK(one_step && ev.data + ev.len == buf + off + used);
                digest_message(&ev, t);
                continue;
            }
            /* DATA events depend on the chunking; only their bytes enter the digest. */
            if (ev.type != AR_WS_EV_DATA)
                t->sum = t->sum * 31 + ev.type * 7 + ev.opcode + ev.msg_end;
            if (ev.type == AR_WS_EV_FRAME_START && ev.opcode == AR_WS_OP_TEXT)
                in_text = 1, utf8 = 0;
            if (ev.type == AR_WS_EV_DATA && in_text && !(ev.opcode & 8))
                utf8 = ar_ws_utf8(utf8, ev.data, ev.len);
            if (ev.type == AR_WS_EV_FRAME_END && ev.msg_end && !(ev.opcode & 8) && in_text) {
                CHECK(utf8 == 0);
                in_text = 0;
            }
            if (ev.type == AR_WS_EV_DATA) {
                CHECK(ev.len > 0 && ev.data == buf + off + used - c);
                t->payload += ev.len;
                for (size_t i = 0; i < ev.len; i++)
                    t->sum = t->sum * 131 + ev.data[i];
                if (ev.opcode & 8)
                    CHECK(ev.len <= AR_WS_MAX_CONTROL);
            }
        }
    }
}

static void frames(const uint8_t *data, size_t size)
{
    if (size < 1)
        return;
    size_t step = (size_t)data[0] % 17 + 1;
    data++, size--;
    uint8_t *a = malloc(size + 1), *b = malloc(size + 1);
    CHECK(a && b);
    for (int server = 0; server < 2; server++) {
        trace_t whole, chunked, whole1, chunked1;
        memcpy(a, data, size);
        memcpy(b, data, size);
        parse_all(server, 0, a, size, size ? size : 1, &whole);
        parse_all(server, 0, b, size, step, &chunked);
        memcpy(a, data, size);
        memcpy(b, data, size);
        parse_all(server, 1, a, size, size ? size : 1, &whole1);
        parse_all(server, 1, b, size, step, &chunked1);
        CHECK(whole.err == chunked.err && whole.close_code == chunked.close_code);
        CHECK(whole.err == whole1.err && whole.close_code == whole1.close_code);
        CHECK(whole.err == chunked1.err && whole.close_code == chunked1.close_code);
        /* On an error, how much payload was reported before it depends on the chunking (bad
         * UTF-8 is caught in the chunk that holds it), so only clean runs must agree. */
        if (!whole.err) {
            CHECK(whole.sum == chunked.sum && whole.payload == chunked.payload);
            CHECK(whole.sum == whole1.sum && whole.payload == whole1.payload);
            CHECK(whole.sum == chunked1.sum && whole.payload == chunked1.payload);
        }
    }
    /* The unmasking's two paths (SSE2, and AVX2 where the CPU has it) on the raw bytes, with the
     * first four as the key and each offset of it: the same bytes and the same ASCII answer. */
    if (size >= 4) {
        for (size_t off = 0; off < 4; off++) {
            memcpy(a, data + 4, size - 4);
            memcpy(b, data + 4, size - 4);
            int sse2 = ar__ws_unmask_ascii(a, size - 4, data, off, 0);
            int avx2 = ar__ws_unmask_ascii(b, size - 4, data, off, 1);
            CHECK(sse2 == avx2 && memcmp(a, b, size - 4) == 0);
        }
    }
    /* The close payload parser and UTF-8 validator on raw bytes. */
    uint16_t code;
    const uint8_t *reason;
    size_t rlen;
    if (ar_ws_close_parse(data, size, &code, &reason, &rlen) == 0 && size)
        CHECK(rlen == size - 2 && code >= 1000 && code < 5000);
    (void)ar_ws_utf8(0, data, size);
    free(a);
    free(b);
}

static void upgrade(int allow_no_origin, const uint8_t *data, size_t size)
{
    static const char *const origins[] = {"https://app.example.org"};
    ar_ws_upgrade_conf_t conf = {origins, 1, allow_no_origin, "anteroom.v1"};
    ar_ws_upgrade_t up;
    int err = ar_ws_upgrade_check((const char *)data, size, &conf, &up);
    char resp[256];
    if (err == AR_EAGAIN) {
        CHECK(size < AR_WS_MAX_REQUEST);
        return;
    }
    if (err == 0) {
        CHECK(up.status == 101 && up.consumed <= size && strlen(up.accept) == AR_WS_ACCEPT_LEN);
        CHECK(up.path_len == strlen(up.path) && up.path_len <= AR_WS_MAX_PATH);
        /* Accepted requests stay accepted with trailing bytes and are incomplete when cut. */
        ar_ws_upgrade_t again;
        CHECK(ar_ws_upgrade_check((const char *)data, up.consumed, &conf, &again) == 0);
        CHECK(ar_ws_upgrade_check((const char *)data, up.consumed - 1, &conf, &again) == AR_EAGAIN);
    } else {
        CHECK(up.status >= 400 && up.status < 600);
    }
    CHECK(ar_ws_upgrade_response(&up, &conf, resp, sizeof(resp)) > 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] & 1)
        upgrade((data[0] & 2) != 0, data + 1, size - 1);
    else
        frames(data + 1, size - 1);
    return 0;
}
