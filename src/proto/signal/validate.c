/*
 * The one function that applies the field tables to JSON (ar__sig_read_object), the value
 * checks it shares with the writer, and the character classes. Error texts name the field and
 * the rule, never the value: the server sends them back and may count them, and a value could
 * be a patient's name.
 */
#include "internal.h"

#include "anteroom/alloc.h"

#include <stdio.h>
#include <string.h>

#define NAME_CAP 96

void ar__sig_name(char *buf, size_t cap, const char *path, const ar__sig_field_t *f)
{
    if (f->key == NULL)
        snprintf(buf, cap, "%s", path);
    else if (path[0] == '\0')
        snprintf(buf, cap, "%s", f->key);
    else
        snprintf(buf, cap, "%s.%s", path, f->key);
}

/*
 * Decodes one UTF-8 sequence at s (RFC 3629: no overlong forms, no surrogates, nothing above
 * U+10FFFF). Returns its length and the code point, or 0 when the bytes are not valid UTF-8.
 */
static size_t utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    size_t len;
    uint32_t min;
    if ((s[0] & 0xe0) == 0xc0) {
        len = 2, min = 0x80, *cp = s[0] & 0x1fu;
    } else if ((s[0] & 0xf0) == 0xe0) {
        len = 3, min = 0x800, *cp = s[0] & 0x0fu;
    } else if ((s[0] & 0xf8) == 0xf0) {
        len = 4, min = 0x10000, *cp = s[0] & 0x07u;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        *cp = (*cp << 6) | (s[i] & 0x3fu);
    }
    if (*cp < min || *cp > 0x10ffff || (*cp >= 0xd800 && *cp <= 0xdfff))
        return 0;
    return len;
}

/*
 * Characters refused in names and texts shown to people: controls, and the bidirectional
 * overrides and line separators with which a display name could disguise itself or break a
 * staff member's screen.
 */
static int bad_in_text(uint32_t cp, int allow_lf)
{
    if (cp == '\n')
        return !allow_lf;
    return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || (cp >= 0x2028 && cp <= 0x202e) ||
           (cp >= 0x2066 && cp <= 0x2069);
}

static int utf8_ok(int cs, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        /* Printable ASCII is allowed in every text class: skip it without decoding. */
        if (p[i] >= 0x20 && p[i] < 0x7f) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t n = utf8_next(p + i, len - i, &cp);
        if (n == 0)
            return 0;
        if (cs == AR__CS_SDP) {
            if ((cp < 0x20 && cp != '\r' && cp != '\n' && cp != '\t') || (cp >= 0x7f && cp <= 0x9f))
                return 0;
        } else if (bad_in_text(cp, cs == AR__CS_TEXT)) {
            return 0;
        }
        i += n;
    }
    return 1;
}

/*
 * The ASCII classes. Each is a set of 128 bits (two words, bit c for character c) written with
 * CB and CR, from which a table of 256 bytes is derived at compile time: byte c of the table has
 * bit (cs - 1) set when class cs allows c (bytes >= 128 are in no class). A check ANDs the
 * entries of all the string's bytes with no branch per byte, which is what an id (checked on
 * every relayed frame, in the parse and again in the build) costs most of.
 */
#define CB(c) (1ull << ((c)&63))
#define CR(lo, hi) ((~0ull >> (63 - ((hi) - (lo)))) << ((lo)&63)) /* lo..hi in one word */
#define ID_LO (CB('-') | CB('.') | CR('0', '9'))
#define ID_HI (CR('A', 'Z') | CB('_') | CR('a', 'z'))
#define ASCII_LO CR(0x20, 0x3f)
#define ASCII_HI CR(0x40, 0x7e)
#define URL_LO (CR(0x21, 0x3f) & ~(CB('"') | CB('\'') | CB('<') | CB('>')))
#define URL_HI (CR(0x40, 0x7e) & ~CB('\\'))
#define LANG_LO (CB('-') | CR('0', '9'))
#define LANG_HI (CR('A', 'Z') | CR('a', 'z'))
#define WORD_LO 0ull
#define WORD_HI (CR('a', 'z') | CB('_'))
#define IN(c, lo, hi) ((c) < 128 && ((((c) < 64 ? (lo) : (hi)) >> ((c)&63)) & 1))
#define BIT(cs) (1u << ((cs)-1))
#define E(c)                                                                                       \
    (uint8_t)((IN(c, ID_LO, ID_HI) ? BIT(AR__CS_ID) : 0) |                                         \
              (IN(c, ASCII_LO, ASCII_HI) ? BIT(AR__CS_ASCII) : 0) |                                \
              (IN(c, URL_LO, URL_HI) ? BIT(AR__CS_URL) : 0) |                                      \
              (IN(c, LANG_LO, LANG_HI) ? BIT(AR__CS_LANG) : 0) |                                   \
              (IN(c, WORD_LO, WORD_HI) ? BIT(AR__CS_WORD) : 0))
#define E4(c) E(c), E((c) + 1), E((c) + 2), E((c) + 3)
#define E16(c) E4(c), E4((c) + 4), E4((c) + 8), E4((c) + 12)
#define E64(c) E16(c), E16((c) + 16), E16((c) + 32), E16((c) + 48)
static const uint8_t ascii_class[256] = {E64(0u), E64(64u), E64(128u), E64(192u)};
_Static_assert(AR__CS_WORD <= 8, "a class is a bit of a byte");
#undef E64
#undef E16
#undef E4
#undef E
#undef IN
#undef CB
#undef CR

/* Printable ASCII (0x20-0x7e), eight bytes at a time: candidate lines, the longest ASCII-class
 * values a relay carries. A byte below 0x20 borrows and one above 0x7e carries into its high
 * bit, as does any byte >= 0x80 itself; a borrow or carry can only come from a lower byte that
 * is itself flagged, so no printable word is ever flagged and every other word is. */
static int printable_all(const unsigned char *s, size_t len)
{
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
    uint64_t bad = 0;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        bad |= w | (w + ones) | (w - ones * 0x20);
    }
    uint8_t acc = BIT(AR__CS_ASCII);
    for (; i < len; i++)
        acc &= ascii_class[s[i]];
    return !(bad & high) && acc;
}

#if defined(__SSE2__)
/* 0xff in each byte of v that is in [0, hi] as an unsigned byte. */
static inline __m128i id_upto(__m128i v, char hi)
{
    return _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(hi)), v);
}

/* 0xff in each byte of the sixteen at s that is in the ID class [A-Za-z0-9._-]. Each range is
 * one unsigned comparison of the byte less its low end: '-' '.' '/' '0'-'9' are 0 to 12 less
 * '-' ('/' then taken out), and A-Z a-z with bit 5 set (which moves no other byte into a-z)
 * 0 to 25 less 'a'; a byte >= 0x80 is above every range. */
static inline __m128i id_ok16(const unsigned char *s)
{
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)s);
    __m128i alpha =
        id_upto(_mm_sub_epi8(_mm_or_si128(v, _mm_set1_epi8(0x20)), _mm_set1_epi8('a')), 'z' - 'a');
    __m128i num = _mm_andnot_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('/')),
                                   id_upto(_mm_sub_epi8(v, _mm_set1_epi8('-')), '9' - '-'));
    return _mm_or_si128(_mm_or_si128(alpha, num), _mm_cmpeq_epi8(v, _mm_set1_epi8('_')));
}

/* An id (the 22 characters of a peer or frame id, checked in the parse of every relayed frame
 * and again in its build) sixteen bytes at a time; the last few as the string's last sixteen,
 * which looks at some bytes twice but at none outside it. From sixteen bytes on; up to 32 (an
 * id's length) as two blocks and one mask. */
static int id_all16(const unsigned char *s, size_t len)
{
    __m128i ok = id_ok16(s + len - 16);
    if (len <= 32)
        return _mm_movemask_epi8(_mm_and_si128(id_ok16(s), ok)) == 0xffff;
    for (size_t i = 0; i + 16 < len; i += 16)
        ok = _mm_and_si128(ok, id_ok16(s + i));
    return _mm_movemask_epi8(ok) == 0xffff;
}
#endif

/* Every byte of s in class cs (an ASCII class). */
static int ascii_all(int cs, const unsigned char *s, size_t len)
{
    if (cs == AR__CS_ASCII)
        return printable_all(s, len);
    /* Four bytes a round into two accumulators: the lookups do not wait on each other. */
    uint8_t a = 0xff, b = 0xff;
    size_t i = 0;
    for (; i + 4 <= len; i += 4) {
        a &= (uint8_t)(ascii_class[s[i]] & ascii_class[s[i + 1]]);
        b &= (uint8_t)(ascii_class[s[i + 2]] & ascii_class[s[i + 3]]);
    }
    for (; i < len; i++)
        a &= ascii_class[s[i]];
    return (a & b & BIT(cs)) != 0;
}

int ar__sig_charset_ok(int cs, const char *s, size_t len)
{
#if defined(__SSE2__)
    /* First: ids are what a relay checks, twice a message ("to" in the parse, "from" in the
     * build). */
    if (cs == AR__CS_ID && len >= 16)
        return id_all16((const unsigned char *)s, len);
#endif
    if (cs == AR__CS_NAME || cs == AR__CS_TEXT || cs == AR__CS_SDP)
        return utf8_ok(cs, s, len);
    if (cs == AR__CS_URL && !(len >= 6 && memcmp(s, "wss://", 6) == 0) &&
        !(len >= 5 && memcmp(s, "ws://", 5) == 0))
        return 0;
    if (cs != AR__CS_ID && cs != AR__CS_ASCII && cs != AR__CS_URL && cs != AR__CS_LANG &&
        cs != AR__CS_WORD)
        return len == 0; /* no class: no character is allowed */
    return ascii_all(cs, (const unsigned char *)s, len);
}

static const char *charset_rule(int cs)
{
    switch (cs) {
    case AR__CS_ID:
        return "only A-Z a-z 0-9 . _ -";
    case AR__CS_NAME:
        return "UTF-8 text without control or direction-override characters";
    case AR__CS_TEXT:
        return "UTF-8 text without control characters but line feeds";
    case AR__CS_SDP:
        return "UTF-8 without control characters but CR, LF and tab";
    case AR__CS_ASCII:
        return "printable ASCII";
    case AR__CS_URL:
        return "a ws:// or wss:// URL";
    case AR__CS_LANG:
        return "a language tag (A-Z a-z 0-9 -)";
    default:
        return "only a-z and _";
    }
}

static size_t enum_count(const char *const *values)
{
    size_t n = 0;
    while (values[n] != NULL)
        n++;
    return n;
}

static int fail_enum(const ar__sig_field_t *f, const char *name, ar_sig_err_t *err)
{
    char list[64] = "";
    size_t used = 0;
    for (size_t i = 0; f->values[i] != NULL && used < sizeof(list); i++) {
        int w = snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "", f->values[i]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
    return AR__SIG_FAIL(err, AR_SIG_E_BAD_FIELD, "field '%s' must be one of: %s", name, list);
}

int ar__sig_present(const ar__sig_field_t *f, const void *val)
{
    switch (f->kind) {
    case AR__SIG_STR:
        return ((const ar_sig_str_t *)val)->p != NULL;
    case AR__SIG_INT:
        return *(const int64_t *)val != AR_SIG_NONE;
    case AR__SIG_BOOL:
        return (f->flags & AR__SIG_REQ) || *(const int *)val != 0;
    case AR__SIG_ENUM:
        return *(const int *)val != 0;
    case AR__SIG_LIST:
        return (f->flags & AR__SIG_REQ) || ((const ar_sig_list_t *)val)->count > 0;
    default:
        return 1;
    }
}

int ar__sig_check(const ar__sig_field_t *f, const void *val, int present, const char *name,
                  ar_sig_err_t *err)
{
    const int bad = AR_SIG_E_BAD_FIELD;
    if (!present)
        return (f->flags & AR__SIG_REQ) ? AR__SIG_FAIL(err, bad, "field '%s' is missing", name) : 0;
    switch (f->kind) {
    case AR__SIG_STR: {
        const ar_sig_str_t *s = val;
        if (s->len > (size_t)f->max)
            return AR__SIG_FAIL(err, bad, "field '%s' exceeds %lld bytes", name, (long long)f->max);
        if (s->len < (size_t)f->min)
            return f->min == 1 ? AR__SIG_FAIL(err, bad, "field '%s' must not be empty", name)
                               : AR__SIG_FAIL(err, bad, "field '%s' is shorter than %lld bytes",
                                              name, (long long)f->min);
        if (!ar__sig_charset_ok(f->cs, s->p, s->len))
            return AR__SIG_FAIL(err, bad, "field '%s' must hold %s", name, charset_rule(f->cs));
        return 0;
    }
    case AR__SIG_INT: {
        int64_t v = *(const int64_t *)val;
        if (v < f->min || v > f->max)
            return AR__SIG_FAIL(err, bad, "field '%s' must be between %lld and %lld", name,
                                (long long)f->min, (long long)f->max);
        return 0;
    }
    case AR__SIG_BOOL: {
        int v = *(const int *)val;
        if (v != 0 && v != 1)
            return AR__SIG_FAIL(err, bad, "field '%s' must be a boolean", name);
        if ((f->flags & AR__SIG_TRUE) && v != 1)
            return AR__SIG_FAIL(err, bad, "field '%s' must be true", name);
        return 0;
    }
    case AR__SIG_ENUM: {
        int v = *(const int *)val;
        if (v < 1 || (size_t)v > enum_count(f->values))
            return fail_enum(f, name, err);
        return 0;
    }
    case AR__SIG_LIST: {
        const ar_sig_list_t *l = val;
        if (l->count > (size_t)f->max)
            return AR__SIG_FAIL(err, bad, "field '%s' has more than %lld items", name,
                                (long long)f->max);
        if (l->count < (size_t)f->min)
            return AR__SIG_FAIL(err, bad, "field '%s' needs at least %lld item%s", name,
                                (long long)f->min, f->min == 1 ? "" : "s");
        if (l->count > 0 && l->items == NULL)
            return AR__SIG_FAIL(err, bad, "field '%s' has no items", name);
        return 0;
    }
    default:
        return 0;
    }
}

static const char *kind_word(int kind)
{
    switch (kind) {
    case AR__SIG_STR:
        return "a string";
    case AR__SIG_INT:
        return "an integer";
    case AR__SIG_BOOL:
        return "a boolean";
    case AR__SIG_ENUM:
        return "a string";
    case AR__SIG_LIST:
        return "an array";
    default:
        return "an object";
    }
}

static int kind_matches(int kind, const json_t *v)
{
    switch (kind) {
    case AR__SIG_STR:
    case AR__SIG_ENUM:
        return json_is_string(v);
    case AR__SIG_INT:
        return json_is_integer(v);
    case AR__SIG_BOOL:
        return json_is_boolean(v);
    case AR__SIG_LIST:
        return json_is_array(v);
    default:
        return json_is_object(v);
    }
}

static int read_value(const ar__sig_field_t *f, json_t *v, void *dst, const char *name,
                      ar_sig_err_t *err);

static int read_list(const ar__sig_field_t *f, json_t *v, ar_sig_list_t *l, const char *name,
                     ar_sig_err_t *err)
{
    size_t n = json_array_size(v);
    /* Check the count before allocating, so a huge array costs nothing. */
    ar_sig_list_t probe = {(void *)1, n};
    int rc = ar__sig_check(f, &probe, 1, name, err);
    if (rc != 0 || n == 0)
        return rc;
    const ar__sig_table_t *sub = f->sub;
    l->items = ar_calloc(n, sub->size);
    if (l->items == NULL)
        return AR_ENOMEM;
    l->count = n;
    for (size_t i = 0; i < n; i++) {
        char path[NAME_CAP];
        snprintf(path, sizeof(path), "%s[%zu]", name, i);
        void *elem = (char *)l->items + i * sub->size;
        json_t *item = json_array_get(v, i);
        if (sub->fields[0].key == NULL)
            rc = read_value(&sub->fields[0], item, elem, path, err);
        else if (!json_is_object(item))
            rc = AR__SIG_FAIL(err, AR_SIG_E_BAD_FIELD, "field '%s' must be an object", path);
        else
            rc = ar__sig_read_object(sub, NULL, item, elem, path, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Converts one present JSON value to its C form at dst, then checks it. */
static int read_value(const ar__sig_field_t *f, json_t *v, void *dst, const char *name,
                      ar_sig_err_t *err)
{
    if (!kind_matches(f->kind, v))
        return AR__SIG_FAIL(err, AR_SIG_E_BAD_FIELD, "field '%s' must be %s", name,
                            kind_word(f->kind));
    switch (f->kind) {
    case AR__SIG_STR: {
        ar_sig_str_t *s = dst;
        s->p = json_string_value(v);
        s->len = json_string_length(v);
        break;
    }
    case AR__SIG_INT:
        *(int64_t *)dst = json_integer_value(v);
        break;
    case AR__SIG_BOOL:
        *(int *)dst = json_is_true(v);
        break;
    case AR__SIG_ENUM: {
        int found = 0;
        for (size_t i = 0; f->values[i] != NULL && !found; i++)
            if (strcmp(json_string_value(v), f->values[i]) == 0)
                found = (int)i + 1;
        if (!found)
            return fail_enum(f, name, err);
        *(int *)dst = found;
        break;
    }
    case AR__SIG_LIST:
        return read_list(f, v, dst, name, err);
    default:
        return ar__sig_read_object(f->sub, NULL, v, dst, name, err);
    }
    return ar__sig_check(f, dst, 1, name, err);
}

static const ar__sig_field_t *find_row(const ar__sig_table_t *t, const char *key)
{
    for (size_t i = 0; t != NULL && i < t->count; i++)
        if (t->fields[i].key != NULL && strcmp(t->fields[i].key, key) == 0)
            return &t->fields[i];
    return NULL;
}

/* Keys are echoed only when they look like a field name, so no typed value comes back. */
static int fail_unknown_key(const char *key, const char *path, ar_sig_err_t *err)
{
    size_t n = strlen(key);
    int plain = n > 0 && n <= 24;
    for (size_t i = 0; plain && i < n; i++)
        plain = (ascii_class[(unsigned char)key[i]] & BIT(AR__CS_WORD)) ||
                (key[i] >= '0' && key[i] <= '9');
    const char *in = path[0] ? " in " : "";
    if (plain)
        return AR__SIG_FAIL(err, AR_SIG_E_BAD_FIELD, "unknown field '%s'%s%s", key, in, path);
    return AR__SIG_FAIL(err, AR_SIG_E_BAD_FIELD, "unknown field%s%s", in, path);
}

int ar__sig_read_object(const ar__sig_table_t *t, const ar__sig_table_t *also, json_t *obj,
                        void *base, const char *path, ar_sig_err_t *err)
{
    const char *key;
    json_t *v;
    /* Unknown keys first: a misspelt key explains a "missing" one better than the reverse. */
    json_object_foreach(obj, key, v)
    {
        if (find_row(t, key) == NULL && find_row(also, key) == NULL)
            return fail_unknown_key(key, path, err);
    }
    for (size_t i = 0; i < t->count; i++) {
        const ar__sig_field_t *f = &t->fields[i];
        void *dst = (char *)base + f->off;
        /* Top-level names need no copy: formatting one per field would cost every relay. */
        char buf[NAME_CAP];
        const char *name = f->key;
        if (path[0] != '\0') {
            ar__sig_name(buf, sizeof(buf), path, f);
            name = buf;
        }
        v = json_object_get(obj, f->key);
        if (v != NULL && json_is_null(v) && (f->flags & AR__SIG_NULL))
            v = NULL;
        if (v == NULL) {
            if (f->kind == AR__SIG_INT)
                *(int64_t *)dst = AR_SIG_NONE;
            if (f->flags & AR__SIG_REQ)
                return AR__SIG_FAIL(err, AR_SIG_E_BAD_FIELD, "field '%s' is missing", name);
            continue;
        }
        if (f->needs != NULL && json_object_get(obj, f->needs) == NULL)
            return AR__SIG_FAIL(err, AR_SIG_E_BAD_FIELD, "field '%s' needs field '%s'", name,
                                f->needs);
        int rc = read_value(f, v, dst, name, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

void ar__sig_free_object(const ar__sig_table_t *t, void *base)
{
    for (size_t i = 0; i < t->count; i++) {
        const ar__sig_field_t *f = &t->fields[i];
        void *at = (char *)base + f->off;
        if (f->kind == AR__SIG_OBJ) {
            ar__sig_free_object(f->sub, at);
        } else if (f->kind == AR__SIG_LIST) {
            ar_sig_list_t *l = at;
            for (size_t j = 0; l->items != NULL && j < l->count; j++)
                ar__sig_free_object(f->sub, (char *)l->items + j * f->sub->size);
            ar_free(l->items);
            l->items = NULL;
            l->count = 0;
        }
    }
}
