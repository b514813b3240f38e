/*
 * The relay's fast path (ar_sig_parse2 with AR_SIG_PARSE_KEEP_SDP_JSON): an offer or answer is
 * almost all SDP, and jansson decodes a 4 KB SDP string in about 45 µs, several times what the
 * rest of a relay costs. The server never reads the SDP; it only forwards it. So the SDP's JSON
 * string is checked here, by the rules jansson and the field table apply to it, and left as it
 * came (still escaped); jansson parses the frame with a one-character stand-in for it; the
 * builder writes the original bytes back.
 *
 * This file only ever says "the fast path applies" when it is sure: the frame is one JSON object
 * whose top level has exactly one key spelled "sdp" (no escapes in keys), and that value is a
 * string whose decoded text is valid UTF-8, has no NUL or lone surrogate, obeys the SDP charset
 * (no control characters but CR, LF and tab, none of U+007F-U+009F) and is 1 to AR_SIG_SDP_MAX
 * bytes long. Anything else, and every frame the full parse would refuse, takes the full parse,
 * which then gives the same answer and the same error as without the flag.
 */
#include "internal.h"

#include <string.h>

/* Nesting the skipper follows before leaving the frame to the full parse. */
#define LIFT_DEPTH 32

static size_t skip_ws(const char *f, size_t i, size_t len)
{
    while (i < len && (f[i] == ' ' || f[i] == '\t' || f[i] == '\n' || f[i] == '\r'))
        i++;
    return i;
}

/* Past a string starting at its opening quote (escapes skipped, not checked); 0 if unended. */
static size_t skip_string(const char *f, size_t i, size_t len)
{
    for (i++; i < len; i++) {
        if (f[i] == '\\')
            i++;
        else if (f[i] == '"')
            return i + 1;
    }
    return 0;
}

/* Past any value; 0 when it is not well formed enough to skip. Jansson checks it later. */
static size_t skip_value(const char *f, size_t i, size_t len)
{
    if (i >= len)
        return 0;
    if (f[i] == '"')
        return skip_string(f, i, len);
    if (f[i] == '{' || f[i] == '[') {
        int depth = 0;
        while (i < len) {
            char c = f[i];
            if (c == '"') {
                i = skip_string(f, i, len);
                if (i == 0)
                    return 0;
                continue;
            }
            if (c == '{' || c == '[') {
                if (++depth > LIFT_DEPTH)
                    return 0;
            } else if (c == '}' || c == ']') {
                if (--depth == 0)
                    return i + 1;
            }
            i++;
        }
        return 0;
    }
    /* A number or a literal: up to the next delimiter. */
    size_t start = i;
    while (i < len && f[i] != ',' && f[i] != '}' && f[i] != ']' && f[i] != ' ' && f[i] != '\t' &&
           f[i] != '\n' && f[i] != '\r')
        i++;
    return i > start ? i : 0;
}

static int hex4(const char *p, uint32_t *v)
{
    *v = 0;
    for (int k = 0; k < 4; k++) {
        char c = p[k];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return 0;
        *v = *v << 4 | (uint32_t)d;
    }
    return 1;
}

/* The SDP charset of validate.c, on a decoded code point. */
static int sdp_cp_ok(uint32_t cp)
{
    if (cp < 0x20)
        return cp == '\r' || cp == '\n' || cp == '\t';
    return cp < 0x7f || cp > 0x9f;
}

/* Strict UTF-8 (RFC 3629) at p: the sequence's length and code point, or 0. */
static size_t utf8_at(const unsigned char *p, size_t left, uint32_t *cp)
{
    unsigned char c = p[0];
    size_t n;
    uint32_t v, min;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2, v = c & 0x1fu, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, v = c & 0x0fu, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, v = c & 0x07u, min = 0x10000;
    else
        return 0;
    if (left < n)
        return 0;
    for (size_t k = 1; k < n; k++) {
        if ((p[k] & 0xc0) != 0x80)
            return 0;
        v = v << 6 | (p[k] & 0x3fu);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return n;
}

/* The closing quote at f[i] of an SDP string whose content began at f[start] and whose escapes
 * took `saved` bytes more than the text they stand for: i when the decoded text's length is one
 * the field accepts, else 0. */
static size_t sdp_closed(size_t start, size_t i, size_t saved)
{
    size_t decoded = i - start - saved;
    return decoded >= 1 && decoded <= AR_SIG_SDP_MAX ? i : 0;
}

/* "\r\n" as it is escaped in JSON, read as a little-endian word: the end of every SDP line. */
#define ESC_CRLF ((uint32_t)'\\' | (uint32_t)'r' << 8 | (uint32_t)'\\' << 16 | (uint32_t)'n' << 24)

/*
 * The byte at f[i] that is neither plain (ar__sig_plain_run) nor the closing quote: an escape, a
 * UTF-8 sequence, or a byte the SDP field refuses. The index past it, or 0 when refused; *saved
 * grows by the bytes its JSON form takes beyond the text it decodes to.
 */
static size_t sdp_special(const char *f, size_t i, size_t len, size_t *saved)
{
    const unsigned char *u = (const unsigned char *)f;
    uint32_t cp;
    if (u[i] == '\\') {
        uint32_t w;
        if (i + 4 <= len && (memcpy(&w, f + i, 4), w == ESC_CRLF)) {
            *saved += 2; /* the "\r\n" that ends every SDP line, as one step */
            return i + 4;
        }
        if (i + 1 >= len)
            return 0;
        char e = f[i + 1];
        if (e == '"' || e == '\\' || e == '/' || e == 'n' || e == 'r' || e == 't') {
            *saved += 1;
            return i + 2;
        }
        if (e != 'u' || i + 6 > len || !hex4(f + i + 2, &cp))
            return 0; /* \b and \f are control characters the SDP charset refuses */
        size_t raw = 6;
        if (cp >= 0xdc00 && cp <= 0xdfff)
            return 0; /* a lone low surrogate */
        if (cp >= 0xd800 && cp <= 0xdbff) {
            uint32_t lo;
            if (i + 12 > len || f[i + 6] != '\\' || f[i + 7] != 'u' || !hex4(f + i + 8, &lo) ||
                lo < 0xdc00 || lo > 0xdfff)
                return 0;
            raw = 12;
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        }
        if (cp == 0 || !sdp_cp_ok(cp))
            return 0;
        *saved += raw - (cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4);
        return i + raw;
    }
    if (u[i] < 0x80)
        return 0; /* a raw control character or DEL */
    size_t n = utf8_at(u + i, len - i, &cp);
    return n != 0 && sdp_cp_ok(cp) ? i + n : 0;
}

size_t ar__sig_sdp_end_words(const char *f, size_t i, size_t len)
{
    size_t start = i + 1, saved = 0;
    for (i = start; i < len;) {
        i = ar__sig_skip_plain_words(f, i, len);
        if (i >= len)
            break;
        unsigned char c = (unsigned char)f[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            i++; /* one of the last few plain bytes, fewer than a word */
            continue;
        }
        if (c == '"')
            return sdp_closed(start, i, saved);
        i = sdp_special(f, i, len, &saved);
        if (i == 0)
            return 0;
    }
    return 0;
}

#if defined(__SSE2__)
/*
 * Up to 32 bytes from f[i] (as two blocks of sixteen; the frame's last 32 when fewer remain, the
 * mask shifted to start at f[i]: never a byte past len) when all they hold is plain bytes,
 * whole escaped "\r\n"s and perhaps the closing quote, the most an SDP's 32 bytes hold: the
 * index past them (past the last "\r\n" when it reaches out of them), or the quote's index in
 * *quote. 0 when a byte needs sdp_block, which then reads the same bytes again. Each byte that
 * is not plain, lowest first, is a backslash compared with "\r\n" as one word (the second
 * backslash of each passed over with it), or the quote, or the end of this fast path. The line
 * ends are not counted (sdp_quoted).
 */
static size_t sdp_run(const char *f, size_t i, size_t len, size_t *quote)
{
    size_t base = i + 32 <= len ? i : len - 32, end = base + 32;
    uint64_t m = ar__sig_special16(f + base) | (uint64_t)ar__sig_special16(f + base + 16) << 16;
    m >>= i - base; /* bit k: f[i + k] */
    size_t last = 0;
    while (m != 0) {
        size_t k = i + (size_t)__builtin_ctzll(m);
        uint32_t w;
        if (f[k] == '"') {
            *quote = k;
            return k;
        }
        if (k + 4 > len || (memcpy(&w, f + k, 4), w != ESC_CRLF))
            return 0;
        last = k + 4;
        m &= ~0ull << (last - i);
    }
    return last > end ? last : end; /* one in the last three bytes ends past them */
}

/*
 * The sixteen bytes from f[i] (the frame's last sixteen when fewer remain, the mask shifted to
 * start at f[i]: never a byte past len), each byte that is not plain taken lowest first from one
 * mask: the index to go on from, 0 when a byte is refused. *quote: the closing quote's index,
 * when the string ends here.
 */
static size_t sdp_block(const char *f, size_t i, size_t len, size_t *quote)
{
    /* saved: not needed (sdp_quoted) */
    size_t at = i, base = i + 16 <= len ? i : len - 16, saved = 0;
    unsigned m = ar__sig_special16(f + base) >> (at - base); /* bit k: f[at + k] */
    size_t end = base + 16;
    while (m != 0) {
        size_t k = at + (size_t)__builtin_ctz(m);
        if (f[k] == '"') {
            *quote = k;
            return k;
        }
        i = sdp_special(f, k, len, &saved);
        if (i == 0 || i >= end)
            return i; /* refused, or the escape or sequence reached past the block */
        m &= ~0u << (i - at);
    }
    return end; /* the rest of the block is plain */
}

/*
 * The closing quote at f[quote] of the SDP string whose content began at f[start], every byte
 * before it accepted: decoded, no text is longer than its JSON, and none of one byte or more is
 * empty, so 1 to AR_SIG_SDP_MAX bytes of JSON are a length the field accepts without counting
 * what the escapes saved. A longer one is read again, counted (ar__sig_sdp_end_words).
 */
static size_t sdp_quoted(const char *f, size_t start, size_t quote, size_t len)
{
    if (quote == start)
        return 0; /* "" */
    return quote - start <= AR_SIG_SDP_MAX ? quote : ar__sig_sdp_end_words(f, start - 1, len);
}

/* 32 bytes at a time when they hold plain text and line ends (sdp_run), the most an SDP has;
 * any other sixteen byte by byte of their mask (sdp_block). */
size_t ar__sig_sdp_end(const char *f, size_t i, size_t len)
{
    if (len < 32)
        return ar__sig_sdp_end_words(f, i, len);
    size_t start = i + 1, quote = 0;
    for (i = start; i < len;) {
        size_t next = sdp_run(f, i, len, &quote);
        if (next == 0)
            next = sdp_block(f, i, len, &quote);
        if (quote != 0)
            return sdp_quoted(f, start, quote, len);
        if (next == 0)
            return 0;
        i = next;
    }
    return 0;
}
#else
size_t ar__sig_sdp_end(const char *f, size_t i, size_t len)
{
    return ar__sig_sdp_end_words(f, i, len);
}
#endif

int ar__sig_lift_sdp(const char *f, size_t len, size_t *vs, size_t *ve)
{
    size_t i = skip_ws(f, 0, len), found = 0;
    if (i >= len || f[i] != '{')
        return 0;
    i = skip_ws(f, i + 1, len);
    if (i < len && f[i] == '}')
        return 0;
    for (;;) {
        if (i >= len || f[i] != '"')
            return 0;
        size_t ks = i + 1, ke = skip_string(f, i, len);
        if (ke == 0 || memchr(f + ks, '\\', ke - 1 - ks) != NULL)
            return 0; /* an escaped key could spell "sdp": the full parse decides */
        int is_sdp = ke - 1 - ks == 3 && memcmp(f + ks, "sdp", 3) == 0;
        i = skip_ws(f, ke, len);
        if (i >= len || f[i] != ':')
            return 0;
        i = skip_ws(f, i + 1, len);
        if (is_sdp) {
            if (found++ || i >= len || f[i] != '"')
                return 0;
            size_t end = ar__sig_sdp_end(f, i, len);
            if (end == 0)
                return 0;
            *vs = i + 1;
            *ve = end;
            i = end + 1;
        } else {
            i = skip_value(f, i, len);
            if (i == 0)
                return 0;
        }
        i = skip_ws(f, i, len);
        if (i < len && f[i] == ',') {
            i = skip_ws(f, i + 1, len);
            continue;
        }
        if (i < len && f[i] == '}')
            break;
        return 0;
    }
    return found == 1 && skip_ws(f, i + 1, len) == len;
}
