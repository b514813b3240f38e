/*
 * RFC 6455 frames: the resumable parser, UTF-8 validation, close payloads and frame headers.
 * See ws.h for the contract. Everything a peer can get wrong is refused here, early (on the first
 * two header bytes where possible) so a hostile client costs as little as possible.
 */
#include "ws/ws.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
/* The unmasking's AVX2 code is built beside the SSE2 code (a target("avx2") function) and taken
 * only where the CPU has it: the build itself assumes no more than SSE2. */
#if defined(__SSE2__) && defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define WS_AVX2 1
#include <immintrin.h>
#else
#define WS_AVX2 0
#endif
#include <string.h>

enum {
    S_HDR = 0, /* collecting header bytes into p->hdr */
    S_PAYLOAD, /* reporting payload chunks; FRAME_END when remaining reaches 0 */
    S_FAILED,  /* a protocol error was reported; stays here */
};

enum {
    F_FIN = 1,    /* current frame has FIN */
    F_MASKED = 2, /* current frame is masked */
    F_SERVER = 4, /* we are the server: frames must be masked */
    F_TEXT = 8,   /* current frame's payload is text (TEXT, or CONT of a text message) */
};

#define DEFAULT_MAX_MESSAGE (1u << 20)

void ar_ws_parser_init(ar_ws_parser_t *p, int server, uint32_t max_message)
{
    memset(p, 0, sizeof(*p));
    p->flags = server ? F_SERVER : 0;
    p->max_message = max_message ? max_message : DEFAULT_MAX_MESSAGE;
}

static int fail(ar_ws_parser_t *p, uint16_t code, int err)
{
    p->state = S_FAILED;
    p->close_code = code;
    return err;
}

static int is_control(uint8_t op)
{
    return (op & 0x8) != 0;
}

/* Header length implied by the first two bytes. */
static uint8_t header_len(const uint8_t *hdr)
{
    uint8_t n = 2;
    uint8_t len7 = hdr[1] & 0x7f;
    if (len7 == 126)
        n += 2;
    else if (len7 == 127)
        n += 8;
    if (hdr[1] & 0x80)
        n += 4;
    return n;
}

/* Checks of the first two bytes of header h: everything that does not need the extended
 * length. */
static int check_first(ar_ws_parser_t *p, const uint8_t *h)
{
    uint8_t b0 = h[0], b1 = h[1];
    uint8_t op = b0 & 0x0f;
    int fin = (b0 & 0x80) != 0;
    int masked = (b1 & 0x80) != 0;
    /* No extension is negotiated, so every RSV bit must be 0 (5.2). */
    if (b0 & 0x70)
        return fail(p, AR_WS_CLOSE_PROTOCOL, AR_EPARSE);
    if (masked != ((p->flags & F_SERVER) != 0))
        return fail(p, AR_WS_CLOSE_PROTOCOL, AR_EPARSE);
    switch (op) {
    case AR_WS_OP_CONT:
        if (!p->msg_opcode)
            return fail(p, AR_WS_CLOSE_PROTOCOL, AR_EPARSE);
        break;
    case AR_WS_OP_TEXT:
    case AR_WS_OP_BINARY:
        /* A new data message may not start inside a fragmented one (5.4). */
        if (p->msg_opcode)
            return fail(p, AR_WS_CLOSE_PROTOCOL, AR_EPARSE);
        break;
    case AR_WS_OP_CLOSE:
    case AR_WS_OP_PING:
    case AR_WS_OP_PONG:
        /* Control frames are never fragmented and carry at most 125 bytes (5.5). */
        if (!fin || (b1 & 0x7f) > AR_WS_MAX_CONTROL)
            return fail(p, AR_WS_CLOSE_PROTOCOL, AR_EPARSE);
        break;
    default:
        return fail(p, AR_WS_CLOSE_PROTOCOL, AR_EPARSE);
    }
    return 0;
}

/* Decodes the complete header h, checks length encoding and caps, and opens the frame. */
static int open_frame(ar_ws_parser_t *p, const uint8_t *h)
{
    uint8_t len7 = h[1] & 0x7f;
    uint64_t len = len7;
    size_t off = 2;
    if (len7 == 126) {
        len = ((uint64_t)h[2] << 8) | h[3];
        off = 4;
        /* The minimal encoding must be used (5.2). */
        if (len < 126)
            return fail(p, AR_WS_CLOSE_PROTOCOL, AR_EPARSE);
    } else if (len7 == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = (len << 8) | h[2 + i];
        off = 10;
        if (len <= 0xffff || (len >> 63))
            return fail(p, AR_WS_CLOSE_PROTOCOL, AR_EPARSE);
    }
    if (h[1] & 0x80)
        memcpy(p->mask, h + off, 4);
    p->opcode = h[0] & 0x0f;
    p->flags = (uint8_t)(p->flags & F_SERVER);
    if (h[0] & 0x80)
        p->flags |= F_FIN;
    if (h[1] & 0x80)
        p->flags |= F_MASKED;
    if (!is_control(p->opcode)) {
        if (len > (uint64_t)(p->max_message - p->msg_len))
            return fail(p, AR_WS_CLOSE_TOO_BIG, AR_ETOOBIG);
        p->msg_len += (uint32_t)len;
        if (p->opcode != AR_WS_OP_CONT)
            p->msg_opcode = p->opcode;
        if (p->msg_opcode == AR_WS_OP_TEXT)
            p->flags |= F_TEXT;
    }
    p->remaining = len;
    p->mask_pos = 0;
    p->hdr_len = 0;
    p->state = S_PAYLOAD;
    return 0;
}

static void event(ar_ws_event_t *ev, ar_ws_event_type_t type, const ar_ws_parser_t *p)
{
    memset(ev, 0, sizeof(*ev));
    ev->type = type;
    ev->opcode = p->opcode;
    ev->fin = (p->flags & F_FIN) != 0;
}

static int frame_end(ar_ws_parser_t *p, ar_ws_event_t *ev)
{
    event(ev, AR_WS_EV_FRAME_END, p);
    if (!is_control(p->opcode) && (p->flags & F_FIN)) {
        /* A text message must end on a complete code point (8.1). */
        if ((p->flags & F_TEXT) && p->utf8 != 0)
            return fail(p, AR_WS_CLOSE_BAD_DATA, AR_EPARSE);
        ev->msg_end = 1;
        p->msg_opcode = 0;
        p->msg_len = 0;
        p->utf8 = 0;
    }
    p->state = S_HDR;
    p->flags = (uint8_t)(p->flags & F_SERVER);
    return 0;
}

/* The mask key repeated over eight bytes, turned so that its first byte meets data[0]. Three
 * times a frame: the key read as one word and rotated, rather than put together a byte at a
 * time. */
static uint64_t mask_word(const uint8_t mask[4], size_t offset)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint32_t m;
    memcpy(&m, mask, 4);
    unsigned r = (unsigned)(offset & 3) * 8; /* mask[offset] to the lowest byte: data[0]'s */
    if (r != 0)
        m = m >> r | m << (32 - r);
    return (uint64_t)m << 32 | m;
#else
    uint8_t k8[8];
    for (size_t j = 0; j < 8; j++)
        k8[j] = mask[(j + offset) & 3];
    uint64_t k;
    memcpy(&k, k8, 8);
    return k;
#endif
}

#if WS_AVX2
/* unmask_ascii's SSE2 blocks as 32 bytes, half as many, for len >= 32: the same bytes and the same
 * answer (test_ws_frame.c, "unmask paths"). The key is taken as the SSE2 code takes it, as one
 * 64-bit word repeated: its period, four, divides 32 too. */
__attribute__((target("avx2"))) static int unmask_ascii_avx2(uint8_t *data, size_t len, uint64_t k,
                                                             uint64_t kt)
{
    __m256i k32 = _mm256_set1_epi64x((long long)k), kt32 = _mm256_set1_epi64x((long long)kt);
    __m256i *last = (__m256i *)(void *)(data + len - 32);
    __m256i tail = _mm256_xor_si256(_mm256_loadu_si256(last), kt32), high = tail;
    for (size_t i = 0; i + 32 <= len; i += 32) {
        __m256i *at = (__m256i *)(void *)(data + i);
        __m256i w = _mm256_xor_si256(_mm256_loadu_si256(at), k32);
        high = _mm256_or_si256(high, w);
        _mm256_storeu_si256(at, w);
    }
    _mm256_storeu_si256(last, tail);
    return _mm256_movemask_epi8(high) == 0; /* no byte >= 0x80 */
}
#endif

/* Which unmasking ar__ws_unmask_ascii takes: the CPU's best (-1), else SSE2 (0) or AVX2 (1, where
 * the CPU has it). */
static int unmask_path(int want)
{
#if WS_AVX2
    int avx2 = __builtin_cpu_supports("avx2");
    return want < 0 ? avx2 : want && avx2;
#else
    (void)want;
    return 0;
#endif
}

/*
 * ar_ws_mask, and 1 when every unmasked byte is ASCII: a text frame (every frame a client sends
 * is masked, nearly every signalling frame is ASCII) then needs no second pass for its UTF-8
 * check. The high bits of all words are gathered while they are in registers anyway. avx2: as
 * unmask_path returns it.
 */
static int unmask_ascii(uint8_t *data, size_t len, const uint8_t mask[4], size_t offset, int avx2)
{
    uint64_t k = mask_word(mask, offset), high = 0;
    size_t i = 0;
#if WS_AVX2
    if (avx2 && len >= 32)
        return unmask_ascii_avx2(data, len, k, mask_word(mask, offset + len - 32));
#endif
    (void)avx2;
#if defined(__SSE2__)
    /* Sixteen bytes at a time: the key's period, four, divides sixteen as it does eight. The
     * last sixteen, which may overlap the last block, are loaded before any block is stored
     * and stored after all of them, unmasked with the key turned to where they start: an end
     * that is not a whole block costs one more block, not a byte at a time. */
    if (len >= 16) {
        __m128i k16 = _mm_set1_epi64x((long long)k);
        __m128i kt = _mm_set1_epi64x((long long)mask_word(mask, offset + len - 16));
        __m128i *last = (__m128i *)(void *)(data + len - 16);
        __m128i tail = _mm_xor_si128(_mm_loadu_si128(last), kt), high16 = tail;
        for (; i + 16 <= len; i += 16) {
            __m128i *at = (__m128i *)(void *)(data + i);
            __m128i w = _mm_xor_si128(_mm_loadu_si128(at), k16);
            high16 = _mm_or_si128(high16, w);
            _mm_storeu_si128(at, w);
        }
        _mm_storeu_si128(last, tail);
        return _mm_movemask_epi8(high16) == 0; /* no byte >= 0x80 */
    }
#endif
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, data + i, 8);
        w ^= k;
        high |= w;
        memcpy(data + i, &w, 8);
    }
    for (; i < len; i++) {
        data[i] ^= mask[(i + offset) & 3];
        high |= data[i];
    }
    return (high & 0x8080808080808080ull) == 0;
}

/* A whole header at data, read where it lies rather than collected a byte at a time (nearly
 * always): its length once checked and opened, 0 when the buffer holds less than a header
 * (nothing taken), or the parse error. */
static int take_header(ar_ws_parser_t *p, const uint8_t *data, size_t len)
{
    if (len < 2 || len < header_len(data))
        return 0;
    int err = check_first(p, data);
    if (!err)
        err = open_frame(p, data);
    return err ? err : header_len(data);
}

/* Unmasks and checks n payload bytes of the open frame, in place. */
static int take_payload(ar_ws_parser_t *p, uint8_t *data, size_t n)
{
    int ascii = 0; /* the chunk was found to be all ASCII while it was unmasked */
    if ((p->flags & F_MASKED) && (p->flags & F_TEXT) && p->utf8 == 0) {
        ascii = unmask_ascii(data, n, p->mask, p->mask_pos, unmask_path(-1));
        p->mask_pos = (uint8_t)((p->mask_pos + n) & 3);
    } else if (p->flags & F_MASKED) {
        ar_ws_mask(data, n, p->mask, p->mask_pos);
        p->mask_pos = (uint8_t)((p->mask_pos + n) & 3);
    }
    /* ASCII after a complete code point leaves the UTF-8 state where it was: at 0. */
    if ((p->flags & F_TEXT) && !ascii) {
        p->utf8 = ar_ws_utf8(p->utf8, data, n);
        if (p->utf8 == AR_WS_UTF8_REJECT)
            return fail(p, AR_WS_CLOSE_BAD_DATA, AR_EPARSE);
    }
    p->remaining -= n;
    return 0;
}

static void frame_started(const ar_ws_parser_t *p, ar_ws_event_t *ev)
{
    event(ev, AR_WS_EV_FRAME_START, p);
    ev->frame_len = p->remaining;
}

int ar_ws_parse(ar_ws_parser_t *p, uint8_t *data, size_t len, size_t *consumed, ar_ws_event_t *ev)
{
    size_t i = 0;
    *consumed = 0;
    if (p->state == S_FAILED)
        return AR_EPARSE;
    if (p->state == S_HDR && p->hdr_len == 0) {
        int hl = take_header(p, data, len);
        if (hl < 0)
            return hl;
        if (hl > 0) {
            *consumed = (size_t)hl;
            frame_started(p, ev);
            return 0;
        }
    }
    while (p->state == S_HDR) {
        if (i == len) {
            *consumed = i;
            event(ev, AR_WS_EV_NEED_MORE, p);
            return 0;
        }
        p->hdr[p->hdr_len++] = data[i++];
        if (p->hdr_len == 2) {
            int err = check_first(p, p->hdr);
            if (err)
                return err;
        }
        if (p->hdr_len >= 2 && p->hdr_len == header_len(p->hdr)) {
            int err = open_frame(p, p->hdr);
            if (err)
                return err;
            *consumed = i;
            frame_started(p, ev);
            return 0;
        }
    }
    /* S_PAYLOAD */
    if (p->remaining == 0) {
        *consumed = 0;
        return frame_end(p, ev);
    }
    if (len == 0) {
        event(ev, AR_WS_EV_NEED_MORE, p);
        return 0;
    }
    size_t n = len < p->remaining ? len : (size_t)p->remaining;
    int err = take_payload(p, data, n);
    if (err)
        return err;
    *consumed = n;
    event(ev, AR_WS_EV_DATA, p);
    ev->data = data;
    ev->len = n;
    return 0;
}

int ar_ws_parse_message(ar_ws_parser_t *p, uint8_t *data, size_t len, size_t *consumed,
                        ar_ws_event_t *ev)
{
    if (p->state != S_HDR || p->hdr_len != 0)
        return ar_ws_parse(p, data, len, consumed, ev);
    *consumed = 0;
    int hl = take_header(p, data, len);
    if (hl <= 0)
        return hl < 0 ? hl : ar_ws_parse(p, data, len, consumed, ev);
    /* A data frame that opens and ends its message (TEXT or BINARY with FIN: check_first let
     * neither start inside a fragmented one), all of it in the buffer. */
    size_t n = (size_t)p->remaining;
    if (!(p->flags & F_FIN) || is_control(p->opcode) || p->opcode == AR_WS_OP_CONT ||
        p->remaining > len - (size_t)hl) {
        *consumed = (size_t)hl;
        frame_started(p, ev);
        return 0;
    }
    int err = take_payload(p, data + hl, n);
    if (!err)
        err = frame_end(p, ev);
    if (err)
        return err;
    ev->type = AR_WS_EV_MESSAGE;
    ev->data = data + hl;
    ev->len = n;
    ev->frame_len = n;
    *consumed = (size_t)hl + n;
    return 0;
}

int ar__ws_unmask_ascii(uint8_t *data, size_t len, const uint8_t mask[4], size_t offset, int avx2)
{
    return unmask_ascii(data, len, mask, offset, unmask_path(avx2 != 0));
}

int ar__ws_unmask_avx2(void)
{
    return unmask_path(1);
}

void ar_ws_mask(uint8_t *data, size_t len, const uint8_t mask[4], size_t offset)
{
    /* Eight bytes at a time (every client frame is masked). */
    uint64_t k = mask_word(mask, offset);
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, data + i, 8);
        w ^= k;
        memcpy(data + i, &w, 8);
    }
    for (; i < len; i++)
        data[i] ^= mask[(i + offset) & 3];
}

/*
 * States: 0 accept; 1-3 that many continuation bytes of any value expected; 4-7 the second byte of
 * E0 (A0-BF), ED (80-9F, no surrogates), F0 (90-BF, no overlongs), F4 (80-8F, at most U+10FFFF).
 */
uint8_t ar_ws_utf8(uint8_t state, const uint8_t *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        /* ASCII, the bulk of every signalling frame, eight bytes at a time. */
        while (state == 0 && i + 8 <= len) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ull)
                break;
            i += 8;
        }
        if (i >= len)
            break;
        uint8_t b = s[i];
        if (state == 0) {
            if (b < 0x80)
                continue;
            if (b >= 0xc2 && b <= 0xdf)
                state = 1;
            else if (b == 0xe0)
                state = 4;
            else if (b == 0xed)
                state = 5;
            else if (b >= 0xe1 && b <= 0xef)
                state = 2;
            else if (b == 0xf0)
                state = 6;
            else if (b >= 0xf1 && b <= 0xf3)
                state = 3;
            else if (b == 0xf4)
                state = 7;
            else
                return AR_WS_UTF8_REJECT;
            continue;
        }
        uint8_t lo = 0x80, hi = 0xbf, next;
        switch (state) {
        case 1:
        case 2:
        case 3:
            next = (uint8_t)(state - 1);
            break;
        case 4:
            lo = 0xa0, next = 1;
            break;
        case 5:
            hi = 0x9f, next = 1;
            break;
        case 6:
            lo = 0x90, next = 2;
            break;
        case 7:
            hi = 0x8f, next = 2;
            break;
        default:
            return AR_WS_UTF8_REJECT;
        }
        if (b < lo || b > hi)
            return AR_WS_UTF8_REJECT;
        state = next;
    }
    return state;
}

static int close_code_ok(uint16_t c)
{
    /* 1004-1006 and 1015 are reserved and never sent on the wire (7.4.1). */
    return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
}

int ar_ws_close_parse(const uint8_t *payload, size_t len, uint16_t *code, const uint8_t **reason,
                      size_t *reason_len)
{
    *reason = NULL;
    *reason_len = 0;
    if (len == 0) {
        *code = AR_WS_CLOSE_NO_STATUS;
        return 0;
    }
    if (len == 1 || len > AR_WS_MAX_CONTROL)
        return AR_EPARSE;
    *code = (uint16_t)((payload[0] << 8) | payload[1]);
    if (!close_code_ok(*code))
        return AR_EPARSE;
    if (ar_ws_utf8(0, payload + 2, len - 2) != 0)
        return AR_EPARSE;
    *reason = payload + 2;
    *reason_len = len - 2;
    return 0;
}

size_t ar_ws_frame_header(uint8_t out[AR_WS_MAX_HEADER], uint8_t opcode, int fin, uint64_t len,
                          const uint8_t *mask)
{
    size_t n = 2;
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0f));
    uint8_t mbit = mask ? 0x80 : 0;
    if (len < 126) {
        out[1] = (uint8_t)(mbit | len);
    } else if (len <= 0xffff) {
        out[1] = (uint8_t)(mbit | 126);
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        n = 4;
    } else {
        out[1] = (uint8_t)(mbit | 127);
        for (int i = 0; i < 8; i++)
            out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
        n = 10;
    }
    if (mask) {
        memcpy(out + n, mask, 4);
        n += 4;
    }
    return n;
}

size_t ar_ws_close_payload(uint8_t out[AR_WS_MAX_CONTROL], uint16_t code, const char *reason)
{
    out[0] = (uint8_t)(code >> 8);
    out[1] = (uint8_t)code;
    size_t n = reason ? strnlen(reason, AR_WS_MAX_CONTROL - 2) : 0;
    memcpy(out + 2, reason ? reason : "", n);
    return 2 + n;
}

int ar_ws_parser_at_rest(const ar_ws_parser_t *p)
{
    return p->state == S_HDR && p->hdr_len == 0 && p->msg_opcode == 0;
}
