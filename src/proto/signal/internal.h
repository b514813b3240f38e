/*
 * The codec's declarative field tables. Every message type has one table per direction it may
 * travel in; each row names a JSON key, its kind, whether it is required, its limits, its
 * allowed characters or values and where it lives in the C struct. One validator
 * (ar__sig_read_object) and one writer (ar__sig_write_object) apply them, so no message has
 * hand-written checks of its own and the parser and the builder cannot disagree.
 */
#ifndef AR_PROTO_SIGNAL_INTERNAL_H
#define AR_PROTO_SIGNAL_INTERNAL_H

#include "signal/signal.h"

#include <jansson.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef enum {
    AR__SIG_STR = 1, /* ar_sig_str_t */
    AR__SIG_INT,     /* int64_t, AR_SIG_NONE when absent */
    AR__SIG_BOOL,    /* int 0/1 */
    AR__SIG_ENUM,    /* int, index into values + 1, 0 when absent */
    AR__SIG_LIST,    /* ar_sig_list_t of sub->size elements */
    AR__SIG_OBJ      /* a nested object stored inline, laid out by sub */
} ar__sig_kind_t;

/* Characters a string may hold: checked on parse and on build. */
typedef enum {
    AR__CS_ID = 1, /* [A-Za-z0-9._-]: ids, resume tokens, capability tokens */
    AR__CS_NAME,   /* UTF-8 text without control or bidi-override characters */
    AR__CS_TEXT,   /* as NAME, and line feeds */
    AR__CS_SDP,    /* UTF-8 without control characters but CR, LF and tab */
    AR__CS_ASCII,  /* printable ASCII (0x20-0x7e): candidate lines, mids, ufrags */
    AR__CS_URL,    /* ws:// or wss://, then printable ASCII without space, quotes, <>, \ */
    AR__CS_LANG,   /* BCP 47 characters [A-Za-z0-9-] */
    AR__CS_WORD    /* [a-z_]: error names, type names */
} ar__sig_charset_t;

#define AR__SIG_REQ 0x1  /* must be present */
#define AR__SIG_NULL 0x2 /* JSON null is accepted and means absent */
#define AR__SIG_TRUE 0x4 /* a bool that must be true (consent) */

struct ar__sig_table_s;

typedef struct ar__sig_field_s {
    const char *key; /* NULL in a list's element table: the element is this scalar */
    uint8_t kind;    /* ar__sig_kind_t */
    uint8_t flags;   /* AR__SIG_* */
    uint8_t cs;      /* ar__sig_charset_t for strings */
    size_t off;      /* offset of the value in the struct the table lays out */
    int64_t min;     /* strings: bytes; integers: value; lists: items */
    int64_t max;
    const char *const *values;         /* AR__SIG_ENUM: allowed names, NULL-terminated */
    const struct ar__sig_table_s *sub; /* AR__SIG_LIST element / AR__SIG_OBJ layout */
    const char *needs;                 /* a key that must be present whenever this one is */
    uint8_t klen;                      /* strlen(key), so a key is compared only when it fits */
} ar__sig_field_t;

typedef struct ar__sig_table_s {
    const ar__sig_field_t *fields;
    size_t count;
    size_t size; /* sizeof the struct laid out (list elements) */
} ar__sig_table_t;

typedef struct ar__sig_type_s {
    const ar__sig_table_t *table[2]; /* indexed by ar_sig_dir_t; NULL: not in that direction */
} ar__sig_type_info_t;

/* Indexed by ar_sig_type_t. */
extern const ar__sig_type_info_t ar__sig_types[AR_SIG_TYPE_COUNT];

/* The envelope every frame carries besides its type's fields: "v", "type", and "id" (client
 * request id) or "seq" (server sequence number). Laid out by ar__sig_envelope[dir]. */
typedef struct ar__sig_env_s {
    int64_t v;
    ar_sig_str_t type;
    int64_t id;
    int64_t seq;
    ar_sig_str_t fid;
} ar__sig_env_t;

extern const ar__sig_table_t ar__sig_envelope[2];

/* parse.c: the envelope's part of a parsed message, the same for the full and the flat parse:
 * type and direction, the request id of a client frame, the seq and frame id of a server one. */
void ar__sig_env_to_msg(ar_sig_dir_t dir, int type, const ar__sig_env_t *env, ar_sig_msg_t *msg);

/*
 * Reads a JSON object into the struct at base following table t. Rejects keys found neither in
 * t nor in `also` (the other table applied to the same object, or NULL), missing required ones,
 * wrong kinds, broken limits and characters. path is the prefix used in error texts
 * ("entries[2]"). Returns 0, AR_EPARSE with err filled, or AR_ENOMEM.
 */
/*
 * lift.c: 1 with the span [*vs, *ve) of the SDP string's content when frame is an object with
 * exactly one top-level "sdp" whose string the SDP field accepts; 0: use the full parse.
 */
int ar__sig_lift_sdp(const char *frame, size_t len, size_t *vs, size_t *ve);
/* lift.c: the index of the closing quote of the string opening at f[i] when the SDP field
 * accepts it (decoded: 1 to AR_SIG_SDP_MAX bytes of the SDP charset), else 0. */
size_t ar__sig_sdp_end(const char *f, size_t i, size_t len);
/* lift.c: the same, eight bytes at a time: what ar__sig_sdp_end is without SSE2, and the
 * reference its SSE2 scan is tested against. */
size_t ar__sig_sdp_end_words(const char *f, size_t i, size_t len);

/*
 * How many of the eight bytes of w (read with memcpy), from the first, are printable ASCII that
 * a JSON string holds as it is (not a control character, DEL, a byte >= 0x80, '"' or '\\'):
 * 8 when all are. The string scanners (flat.c, lift.c) skip such runs a word at a time, as most
 * of a relayed frame is such text. Each term is the classic test "some byte is less than n"
 * ((x - n*ones) & ~x & high, n <= 128), for < 0x20 and for a zero byte of w XOR the byte looked
 * for; a borrow can only flag bytes above a byte rightly flagged, so the lowest flag is exact.
 */
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "ar__sig_plain_run reads the first byte of a word as its lowest"
#endif
static inline size_t ar__sig_plain_run(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
    uint64_t q = w ^ (ones * '"'), b = w ^ (ones * '\\'), d = w ^ (ones * 0x7f);
    uint64_t bad =
        (((w - ones * 0x20) & ~w) | ((q - ones) & ~q) | ((b - ones) & ~b) | ((d - ones) & ~d) | w) &
        high;
    return bad ? (size_t)__builtin_ctzll(bad) >> 3 : 8;
}
/* From s[i], skips plain bytes (above) eight at a time while eight remain before len: the index
 * of the first byte that is not plain, or where fewer than eight are left to look at. The
 * portable scan, and the reference the SSE2 scans are tested against (test_charset.c). */
static inline size_t ar__sig_skip_plain_words(const void *s, size_t i, size_t len)
{
    while (i + 8 <= len) {
        uint64_t w;
        memcpy(&w, (const char *)s + i, 8);
        size_t k = ar__sig_plain_run(w);
        i += k;
        if (k < 8)
            break;
    }
    return i;
}
#if defined(__SSE2__)
/* Bit k set when s[k], of the sixteen bytes at s, is not plain: '"', '\\' or DEL, or, as a
 * signed byte, below ' ' (which takes the control characters and every byte >= 0x80 at once). */
static inline unsigned ar__sig_special16(const void *s)
{
    const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'),
                  del = _mm_set1_epi8(0x7f), space = _mm_set1_epi8(' ');
    __m128i v = _mm_loadu_si128((const __m128i *)s);
    __m128i bad = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
                               _mm_or_si128(_mm_cmpeq_epi8(v, del), _mm_cmplt_epi8(v, space)));
    return (unsigned)_mm_movemask_epi8(bad);
}
#endif
/* From s[i], skips plain bytes (above) sixteen (SSE2) or eight at a time while that many remain
 * before len: the index of the first byte that is not plain, or where fewer than eight are left
 * to look at. */
static inline size_t ar__sig_skip_plain(const void *s, size_t i, size_t len)
{
#if defined(__SSE2__)
    while (i + 16 <= len) {
        unsigned m = ar__sig_special16((const char *)s + i);
        if (m != 0)
            return i + (size_t)__builtin_ctz(m);
        i += 16;
    }
#endif
    return ar__sig_skip_plain_words(s, i, len);
}
/*
 * flat.c: the parse of AR_SIG_PARSE_BORROW. 1 when it parsed the frame (msg and err filled as
 * ar_sig_parse would, strings pointing into frame); 0 when the full parse must decide.
 */
int ar__sig_parse_flat(ar_sig_dir_t dir, const char *frame, size_t len, unsigned flags,
                       ar_sig_msg_t *msg, ar_sig_err_t *err);
/* flat.c: the same for a compact frame whose keys come in the order of the envelope's rows and
 * then of the type's table, as our clients write them: 1 with msg and err filled exactly as
 * ar__sig_parse_flat fills them; 0 when it does not apply (ar__sig_parse_flat then decides).
 * It never refuses a frame itself. */
int ar__sig_parse_ordered(ar_sig_dir_t dir, const char *frame, size_t len, unsigned flags,
                          ar_sig_msg_t *msg, ar_sig_err_t *err);
/* flat.c: the rows of the envelope (*env_row) and of the type's table (*row) the flat parse
 * reads a key spelt key[0..n) into, -1 for none; -1 when type in dir is never parsed flat. For
 * the tests: the first row of each table with that key, as a search of the rows finds it. */
int ar__sig_flat_rows(ar_sig_dir_t dir, int type, const char *key, size_t n, int *env_row,
                      int *row);

int ar__sig_read_object(const ar__sig_table_t *t, const ar__sig_table_t *also, json_t *obj,
                        void *base, const char *path, ar_sig_err_t *err);
/*
 * Checks one value in its C form against its row: present when required, string length and
 * characters, integer range, enum value, list length. Shared by the reader and the writer so
 * both enforce the same rules. present says whether the value is there (the reader knows from
 * the JSON; the writer asks ar__sig_present, so an integer equal to AR_SIG_NONE is absent only
 * when building). name is the field's full name for the error text.
 */
int ar__sig_check(const ar__sig_field_t *f, const void *val, int present, const char *name,
                  ar_sig_err_t *err);
/* 1 when the value at val counts as present (what the writer emits). */
int ar__sig_present(const ar__sig_field_t *f, const void *val);
/* Writes the full name of row f under path into buf ("answers[1].a", "urls[0]", "sdp"). */
void ar__sig_name(char *buf, size_t cap, const char *path, const ar__sig_field_t *f);
/* Frees the lists a read allocated under base, recursively. */
void ar__sig_free_object(const ar__sig_table_t *t, void *base);

/* 1 when s[0..len) is allowed by charset cs. */
int ar__sig_charset_ok(int cs, const char *s, size_t len);

/*
 * Formats e->text (printf-style, the format a literal), sets e->code, and yields AR_EPARSE. A
 * macro over snprintf rather than a varargs function: no va_list to get wrong.
 */
#define AR__SIG_FAIL(e, c, ...)                                                                    \
    (snprintf((e)->text, sizeof((e)->text), __VA_ARGS__), (e)->code = (c), AR_EPARSE)

#endif
