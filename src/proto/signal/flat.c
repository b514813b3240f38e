/*
 * The relay's parse without jansson (ar_sig_parse2 with AR_SIG_PARSE_BORROW). A relayed offer,
 * answer or candidate is one flat JSON object of a few strings and integers; jansson spends
 * about 4 µs on a 200-byte one (a tree of allocations, a byte-at-a-time lexer), most of what
 * the server's own work per relayed message costs. This reads such a frame in one pass, points
 * the message's strings into the frame, and applies the same field tables and value checks
 * (ar__sig_check) as the full parse.
 *
 * It only ever says "parsed" when it is sure the full parse would accept the frame with the same
 * values: anything it does not handle itself (nesting, escapes outside the SDP, non-ASCII
 * text outside the SDP, numbers that are not plain integers, unknown or repeated keys, a missing
 * field, any value a check refuses) sends the frame to the full parse, which then gives the
 * answer and the error it always gave. The fuzz target checks the two against each other.
 */
#include "internal.h"

#include <string.h>

/* Pairs in one frame beyond which the full parse decides. */
#define FLAT_PAIRS 16
/* Rows of a table the flat parse maps (the envelope has 3, a relayed type at most 4). */
#define FLAT_ROWS 8
_Static_assert(FLAT_PAIRS < 128, "a pair index is an int8_t (map_rows)");

typedef enum { T_STR = 1, T_INT, T_BOOL, T_NULL } tok_kind_t;

typedef struct pair_s {
    const char *key;
    size_t klen;
    const char *val; /* a string's content (between the quotes), else the token */
    size_t vlen;
    uint8_t kind;  /* tok_kind_t */
    uint8_t plain; /* a string: printable ASCII without escapes, so its bytes are its value */
    uint8_t sdp;   /* the value of "sdp", checked as the SDP field's (ar__sig_sdp_end) and kept */
    int64_t num;   /* T_INT, T_BOOL */
} pair_t;

/* Inlined, with the test that fails for every byte a compact frame has here (none is white
 * space) first: this runs around every key, colon, value and comma. */
static inline size_t ws(const char *f, size_t i, size_t len)
{
    while (i < len && (unsigned char)f[i] <= ' ' &&
           (f[i] == ' ' || f[i] == '\t' || f[i] == '\n' || f[i] == '\r'))
        i++;
    return i;
}

/* The index of the closing quote of the string opening at f[i]; 0 when it is not well formed
 * enough to skip (a raw control character, an unended string). *plain: no escape, ASCII only. */
static size_t string_end(const char *f, size_t i, size_t len, uint8_t *plain)
{
    *plain = 1;
    for (i++; i < len; i++) {
        i = ar__sig_skip_plain(f, i, len);
        if (i >= len)
            break;
        unsigned char c = (unsigned char)f[i];
        if (c == '"')
            return i;
        if (c < 0x20)
            return 0;
        if (c == '\\') {
            *plain = 0;
            if (++i >= len)
                return 0;
        } else if (c >= 0x7f) {
            *plain = 0;
        }
    }
    return 0;
}

/* A plain JSON integer (no fraction, no exponent, at most 18 digits): its end, or 0. */
static size_t integer_end(const char *f, size_t i, size_t len, int64_t *v)
{
    int neg = i < len && f[i] == '-';
    size_t s = i + (size_t)neg, e = s;
    while (e < len && f[e] >= '0' && f[e] <= '9')
        e++;
    if (e == s || e - s > 18 || (f[s] == '0' && e - s > 1))
        return 0;
    int64_t x = 0;
    for (size_t k = s; k < e; k++)
        x = x * 10 + (f[k] - '0');
    if (e < len && f[e] != ',' && f[e] != '}' && f[e] != ' ' && f[e] != '\t' && f[e] != '\n' &&
        f[e] != '\r')
        return 0; /* a fraction, an exponent, or something else jansson decides on */
    *v = neg ? -x : x;
    return e;
}

/* Splits a flat object into pairs; the count, or -1 when the full parse must decide. */
static int split(const char *f, size_t len, int keep, pair_t *p)
{
    size_t i = ws(f, 0, len);
    int n = 0;
    if (i >= len || f[i] != '{')
        return -1;
    i = ws(f, i + 1, len);
    if (i < len && f[i] == '}')
        return -1; /* an empty object: refused, by the full parse */
    for (;;) {
        if (n == FLAT_PAIRS || i >= len || f[i] != '"')
            return -1;
        uint8_t plain;
        size_t ke = string_end(f, i, len, &plain);
        if (ke == 0 || !plain)
            return -1;
        pair_t *x = &p[n++];
        memset(x, 0, sizeof(*x));
        x->key = f + i + 1;
        x->klen = ke - i - 1;
        i = ws(f, ke + 1, len);
        if (i >= len || f[i] != ':')
            return -1;
        i = ws(f, i + 1, len);
        if (i >= len)
            return -1;
        if (f[i] == '"' && keep && x->klen == 3 && memcmp(x->key, "sdp", 3) == 0) {
            /* One pass finds its end and applies the field's rules to the decoded text. */
            size_t ve = ar__sig_sdp_end(f, i, len);
            if (ve == 0)
                return -1;
            x->kind = T_STR;
            x->sdp = 1;
            x->val = f + i + 1;
            x->vlen = ve - i - 1;
            i = ve + 1;
        } else if (f[i] == '"') {
            size_t ve = string_end(f, i, len, &x->plain);
            if (ve == 0)
                return -1;
            x->kind = T_STR;
            x->val = f + i + 1;
            x->vlen = ve - i - 1;
            i = ve + 1;
        } else if (f[i] == '-' || (f[i] >= '0' && f[i] <= '9')) {
            size_t ve = integer_end(f, i, len, &x->num);
            if (ve == 0)
                return -1;
            x->kind = T_INT;
            i = ve;
        } else if (len - i >= 4 && memcmp(f + i, "true", 4) == 0) {
            x->kind = T_BOOL, x->num = 1, i += 4;
        } else if (len - i >= 5 && memcmp(f + i, "false", 5) == 0) {
            x->kind = T_BOOL, x->num = 0, i += 5;
        } else if (len - i >= 4 && memcmp(f + i, "null", 4) == 0) {
            x->kind = T_NULL, i += 4; /* a candidate's end has "mid":null */
        } else {
            return -1; /* an object, an array, or not JSON */
        }
        i = ws(f, i, len);
        if (i < len && f[i] == ',') {
            i = ws(f, i + 1, len);
            continue;
        }
        if (i < len && f[i] == '}')
            break;
        return -1;
    }
    return ws(f, i + 1, len) == len ? n : -1;
}

/* 1 when the NUL-terminated name is spelt s[0..n) (no strlen: this runs per pair and row). A
 * loop the compiler inlines rather than strncmp: the names are short and most comparisons fail
 * at the first byte, where a call to libc's strncmp cost more than the comparison. */
static inline int named(const char *name, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (name[i] != s[i] || name[i] == '\0') /* name shorter than n: never read past it */
            return 0;
    return name[n] == '\0';
}

static const pair_t *find(const pair_t *p, int n, const char *key)
{
    for (int i = 0; i < n; i++)
        if (named(key, p[i].key, p[i].klen))
            return &p[i];
    return NULL;
}

/* The row of t named like pair x, or -1: only a key of the pair's length is compared. */
static inline int row_of(const ar__sig_table_t *t, const pair_t *x)
{
    for (size_t r = 0; r < t->count; r++) {
        const ar__sig_field_t *f = &t->fields[r];
        if (f->klen == x->klen && f->key != NULL && named(f->key, x->key, x->klen))
            return (int)r;
    }
    return -1;
}

/*
 * Pairs to rows of the envelope (a) and of the type's table (b), in one pass over the pairs
 * (rather than each row looking for its pair and each pair for its row): at_a[r] is the pair
 * named like row r of a, or -1, at_b likewise. 0 when every pair names a row of either;
 * -1 when one does not (an unknown key) or a row is named twice (jansson refuses a repeated
 * key): the full parse answers. The caller checked both tables have at most FLAT_ROWS rows.
 */
static int map_rows(const ar__sig_table_t *a, const ar__sig_table_t *b, const pair_t *p, int n,
                    int8_t at_a[FLAT_ROWS], int8_t at_b[FLAT_ROWS])
{
    memset(at_a, 0xff, FLAT_ROWS); /* every slot -1 */
    memset(at_b, 0xff, FLAT_ROWS);
    for (int i = 0; i < n; i++) {
        /* A key both tables name is read by both, as the full parse does. */
        int ra = row_of(a, &p[i]), rb = row_of(b, &p[i]);
        if ((ra < 0 && rb < 0) || (ra >= 0 && at_a[ra] >= 0) || (rb >= 0 && at_b[rb] >= 0))
            return -1;
        if (ra >= 0)
            at_a[ra] = (int8_t)i;
        if (rb >= 0)
            at_b[rb] = (int8_t)i;
    }
    return 0;
}

/*
 * Reads the rows of t from the pairs into base, as ar__sig_read_object would: 0, or -1 for the
 * full parse. at[i]: the pair named like row i, or -1 (map_rows). sdp_ok: the row for "sdp" may
 * keep an escaped or non-ASCII string as sent (its content then checked by ar__sig_sdp_end).
 */
static int read_rows(const ar__sig_table_t *t, const pair_t *p, int n, const int8_t *at, void *base,
                     int sdp_ok, const char **raw)
{
    for (size_t i = 0; i < t->count; i++) {
        const ar__sig_field_t *f = &t->fields[i];
        void *dst = (char *)base + f->off;
        const pair_t *x = at[i] >= 0 ? &p[at[i]] : NULL;
        if (x != NULL && x->kind == T_NULL) {
            if (!(f->flags & AR__SIG_NULL))
                return -1;
            x = NULL; /* null means absent here */
        }
        if (x == NULL) {
            if (f->flags & AR__SIG_REQ)
                return -1;
            if (f->kind == AR__SIG_INT)
                *(int64_t *)dst = AR_SIG_NONE;
            continue;
        }
        if (f->needs != NULL && find(p, n, f->needs) == NULL)
            return -1;
        switch (f->kind) {
        case AR__SIG_STR: {
            if (x->kind != T_STR)
                return -1;
            ar_sig_str_t *s = dst;
            *s = (ar_sig_str_t){x->val, x->vlen};
            if (x->sdp) {
                /* Kept as sent; its checks were lift.c's, over the JSON text (split). */
                if (!sdp_ok || f->cs != AR__CS_SDP || f->max != AR_SIG_SDP_MAX || f->min != 1)
                    return -1;
                *raw = x->val;
                continue;
            }
            if (!x->plain)
                return -1; /* escapes or non-ASCII text outside the SDP: the full parse */
            break;
        }
        case AR__SIG_INT:
            if (x->kind != T_INT)
                return -1;
            *(int64_t *)dst = x->num;
            break;
        case AR__SIG_BOOL:
            if (x->kind != T_BOOL)
                return -1;
            *(int *)dst = (int)x->num;
            break;
        case AR__SIG_ENUM: {
            int found = 0;
            for (size_t k = 0; x->kind == T_STR && x->plain && f->values[k] && !found; k++)
                if (named(f->values[k], x->val, x->vlen))
                    found = (int)k + 1;
            if (!found)
                return -1;
            *(int *)dst = found;
            break;
        }
        default:
            return -1; /* lists and objects: never flat */
        }
        ar_sig_err_t e;
        if (ar__sig_check(f, dst, 1, f->key, &e) != 0)
            return -1;
    }
    return 0;
}

int ar__sig_parse_flat(ar_sig_dir_t dir, const char *frame, size_t len, unsigned flags,
                       ar_sig_msg_t *msg, ar_sig_err_t *err)
{
    pair_t p[FLAT_PAIRS];
    int keep = (flags & AR_SIG_PARSE_KEEP_SDP_JSON) != 0;
    int n = split(frame, len, keep, p);
    if (n < 0)
        return 0;
    const pair_t *tp = find(p, n, "type");
    if (tp == NULL || tp->kind != T_STR || !tp->plain)
        return 0;
    /* The types a relay or a keepalive brings; other handlers may expect NUL-terminated text,
     * so any other type goes to the full parse (only these six names are compared). */
    static const int flat_types[] = {AR_SIG_OFFER, AR_SIG_ANSWER, AR_SIG_CANDIDATE,
                                     AR_SIG_ACK,   AR_SIG_PING,   AR_SIG_PONG};
    int type = 0;
    for (size_t i = 0; i < sizeof(flat_types) / sizeof(flat_types[0]) && !type; i++) {
        const char *name = ar_sig_type_name(flat_types[i]);
        if (name[0] == tp->val[0] && named(name, tp->val, tp->vlen))
            type = flat_types[i];
    }
    if (type == 0)
        return 0;
    const ar__sig_table_t *t = ar__sig_types[type].table[dir];
    const ar__sig_table_t *env = &ar__sig_envelope[dir];
    if (t == NULL || t->count > FLAT_ROWS || env->count > FLAT_ROWS)
        return 0;
    /* Every key known (a row of the envelope or of the type), none twice. */
    int8_t at_env[FLAT_ROWS], at_t[FLAT_ROWS];
    if (map_rows(env, t, p, n, at_env, at_t) != 0)
        return 0;
    ar__sig_env_t e;
    memset(&e, 0, sizeof(e));
    memset(msg, 0, sizeof(*msg));
    const char *raw = NULL;
    if (read_rows(env, p, n, at_env, &e, 0, &raw) != 0 || e.v != AR_SIG_VERSION ||
        (e.fid.len && e.seq == 0) || read_rows(t, p, n, at_t, msg, keep, &raw) != 0) {
        memset(msg, 0, sizeof(*msg));
        return 0;
    }
    memset(err, 0, sizeof(*err));
    err->type = type;
    err->id = dir == AR_SIG_FROM_CLIENT ? e.id : AR_SIG_NONE;
    ar__sig_env_to_msg(dir, type, &e, msg);
    msg->sdp_raw_ = raw;
    return 1;
}
