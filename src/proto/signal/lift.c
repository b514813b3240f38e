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

/*
 * Checks the string whose opening quote is at f[i]: returns the index of its closing quote, or 0
 * when it is not a string the SDP field accepts.
 */
size_t ar__sig_sdp_end(const char *f, size_t i, size_t len)
{
    const unsigned char *u = (const unsigned char *)f;
    size_t decoded = 0;
    for (i++; i < len;) {
        size_t plain_to = ar__sig_skip_plain(u, i, len);
        decoded += plain_to - i;
        i = plain_to;
        if (i >= len)
            break;
        unsigned char c = u[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            decoded++;
            i++;
            continue;
        }
        if (c == '"')
            return decoded >= 1 && decoded <= AR_SIG_SDP_MAX ? i : 0;
        uint32_t cp;
        if (c == '\\') {
            if (i + 1 >= len)
                return 0;
            char e = f[i + 1];
            if (e == 'r' && i + 3 < len && f[i + 2] == '\\' && f[i + 3] == 'n') {
                decoded += 2; /* the "\r\n" that ends every SDP line, as one step */
                i += 4;
                continue;
            }
            if (e == '"' || e == '\\' || e == '/' || e == 'n' || e == 'r' || e == 't') {
                decoded++;
                i += 2;
                continue;
            }
            if (e != 'u' || i + 6 > len || !hex4(f + i + 2, &cp))
                return 0; /* \b and \f are control characters the SDP charset refuses */
            i += 6;
            if (cp >= 0xdc00 && cp <= 0xdfff)
                return 0; /* a lone low surrogate */
            if (cp >= 0xd800 && cp <= 0xdbff) {
                uint32_t lo;
                if (i + 6 > len || f[i] != '\\' || f[i + 1] != 'u' || !hex4(f + i + 2, &lo) ||
                    lo < 0xdc00 || lo > 0xdfff)
                    return 0;
                i += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            if (cp == 0 || !sdp_cp_ok(cp))
                return 0;
            decoded += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
            continue;
        }
        if (c < 0x80)
            return 0; /* a raw control character or DEL */
        size_t n = utf8_at(u + i, len - i, &cp);
        if (n == 0 || !sdp_cp_ok(cp))
            return 0;
        decoded += n;
        i += n;
    }
    return 0;
}

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
