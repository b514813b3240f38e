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
 *
 * Two walks read such a frame: the pairs' parse (ar__sig_parse_flat), which takes its keys in
 * any order, and before it the ordered parse (ar__sig_parse_ordered, at the end of this file),
 * which reads only frames written as our clients write them and leaves every other to the
 * pairs' parse. Both read values and rows through the same functions (value, read_row).
 */
#include "internal.h"

#include <pthread.h>
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
    uint64_t kw;     /* the key's first eight bytes (key_word) */
    const char *val; /* a string's content (between the quotes), else the token */
    size_t vlen;
    uint8_t kind; /* tok_kind_t; every string but the SDP's is plain (plain_end) */
    uint8_t sdp;  /* the value of "sdp", checked as the SDP field's (ar__sig_sdp_end) and kept */
    int64_t num;  /* T_INT, T_BOOL */
} pair_t;

/* The first eight bytes of k[0..n) (all of them when n < 8), zero-padded, as one word: most keys
 * are shorter, so one comparison and one multiplication compare and hash them. avail: bytes that
 * may be read from k, at least n; a key is followed by its closing quote and more. */
static inline uint64_t key_word(const char *k, size_t n, size_t avail)
{
    uint64_t w = 0;
    if (avail >= 8) {
        memcpy(&w, k, 8);
        return n >= 8 ? w : w & ((1ull << (8 * n)) - 1);
    }
    memcpy(&w, k, n);
    return w;
}

/* Inlined, with the test that fails for every byte a compact frame has here (none is white
 * space) first: this runs around every key, colon, value and comma. */
static inline size_t ws(const char *f, size_t i, size_t len)
{
    while (i < len && (unsigned char)f[i] <= ' ' &&
           (f[i] == ' ' || f[i] == '\t' || f[i] == '\n' || f[i] == '\r'))
        i++;
    return i;
}

/* Past the byte c at f[i], or at the end of white space from there: the index after it, or 0
 * when another byte is there. A compact frame has c at i, which is looked at first. */
static inline size_t past(const char *f, size_t i, size_t len, char c)
{
    if (i < len && f[i] == c)
        return i + 1;
    i = ws(f, i, len);
    return i < len && f[i] == c ? i + 1 : 0;
}

/*
 * The index of the closing quote of the string opening at f[i] when all it holds is plain
 * (printable ASCII without '"' or '\\', ar__sig_plain_run), else 0. Any other string but the
 * SDP's (ar__sig_sdp_end) goes to the full parse anyway: a key must be plain to name a row, and
 * read_rows takes only plain string values. So the first byte that is not plain decides, and
 * only the quote is taken.
 */
static inline size_t plain_end(const char *f, size_t i, size_t len)
{
    i++;
#if defined(__SSE2__)
    for (; i + 16 <= len; i += 16) {
        unsigned m = ar__sig_special16(f + i);
        if (m != 0) {
            i += (size_t)__builtin_ctz(m);
            return f[i] == '"' ? i : 0;
        }
    }
#endif
    i = ar__sig_skip_plain_words(f, i, len);
    while (i < len && f[i] >= 0x20 && f[i] < 0x7f && f[i] != '"' && f[i] != '\\')
        i++; /* the last few bytes of the frame, fewer than a word */
    return i < len && f[i] == '"' ? i : 0;
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

/* Reads the value at f[i] into x: the index past it, or 0 when the full parse must decide. sdp:
 * the value of "sdp" with AR_SIG_PARSE_KEEP_SDP_JSON, whose string is kept as sent. */
static inline size_t value(const char *f, size_t i, size_t len, int sdp, pair_t *x)
{
    if (f[i] == '"' && sdp) {
        /* One pass finds its end and applies the field's rules to the decoded text. */
        size_t ve = ar__sig_sdp_end(f, i, len);
        if (ve == 0)
            return 0;
        x->kind = T_STR;
        x->sdp = 1;
        x->val = f + i + 1;
        x->vlen = ve - i - 1;
        return ve + 1;
    }
    if (f[i] == '"') {
        size_t ve = plain_end(f, i, len);
        if (ve == 0)
            return 0;
        x->kind = T_STR;
        x->val = f + i + 1;
        x->vlen = ve - i - 1;
        return ve + 1;
    }
    if (f[i] == '-' || (f[i] >= '0' && f[i] <= '9')) {
        x->kind = T_INT;
        return integer_end(f, i, len, &x->num);
    }
    if (len - i >= 4 && memcmp(f + i, "true", 4) == 0) {
        x->kind = T_BOOL, x->num = 1;
        return i + 4;
    }
    if (len - i >= 5 && memcmp(f + i, "false", 5) == 0) {
        x->kind = T_BOOL, x->num = 0;
        return i + 5;
    }
    if (len - i >= 4 && memcmp(f + i, "null", 4) == 0) {
        x->kind = T_NULL; /* a candidate's end has "mid":null */
        return i + 4;
    }
    return 0; /* an object, an array, or not JSON */
}

/* The object's grammar, one step each, for split and for the ordered parse alike. Each separator
 * is looked for where a compact frame has it, white space skipped only when it is not there
 * (past). */

/* The index of the first key's opening quote of the object that frame f opens, or 0 (not an
 * object, or an empty one: refused, by the full parse). */
static inline size_t first_key(const char *f, size_t len)
{
    size_t i = past(f, 0, len, '{');
    if (i == 0)
        return 0;
    i = ws(f, i, len);
    return i < len && f[i] == '"' ? i : 0;
}

/* The index of the value after the key whose closing quote is at f[ke], or 0. */
static inline size_t value_at(const char *f, size_t ke, size_t len)
{
    size_t i = past(f, ke + 1, len, ':');
    if (i == 0)
        return 0;
    i = ws(f, i, len);
    return i < len ? i : 0;
}

/* After a value ending before f[i]: the index of the next key's opening quote, or with *done set
 * when the object closes there and nothing but white space follows, len; 0 when neither. */
static inline size_t next_key(const char *f, size_t i, size_t len, int *done)
{
    size_t comma = past(f, i, len, ',');
    if (comma != 0) {
        i = ws(f, comma, len);
        return i < len && f[i] == '"' ? i : 0;
    }
    i = past(f, i, len, '}');
    *done = i != 0 && ws(f, i, len) == len;
    return *done ? len : 0;
}

/* "sdp" spelt k[0..n): the key whose string AR_SIG_PARSE_KEEP_SDP_JSON keeps as sent. */
static inline int sdp_key(const char *k, size_t n)
{
    return n == 3 && k[0] == 's' && k[1] == 'd' && k[2] == 'p';
}

/* Splits a flat object into pairs; the count, or -1 when the full parse must decide. */
static int split(const char *f, size_t len, int keep, pair_t *p)
{
    size_t i = first_key(f, len);
    int n = 0, done = 0;
    while (i != 0 && !done) {
        if (n == FLAT_PAIRS)
            return -1;
        size_t ke = plain_end(f, i, len);
        if (ke == 0)
            return -1;
        pair_t *x = &p[n++];
        memset(x, 0, sizeof(*x));
        x->key = f + i + 1;
        x->klen = ke - i - 1;
        x->kw = key_word(x->key, x->klen, len - i - 1);
        i = value_at(f, ke, len);
        if (i == 0 || (i = value(f, i, len, keep && sdp_key(x->key, x->klen), x)) == 0)
            return -1;
        i = next_key(f, i, len, &done);
    }
    return done ? n : -1;
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

/* a[0..n) and b[0..n) are the same bytes. For a key's few bytes, compared a word at a time
 * where one fits (never past n), rather than a byte at a time or a call to memcmp. */
static inline int same_bytes(const char *a, const char *b, size_t n)
{
    uint64_t x, y;
    for (; n >= 8; n -= 8, a += 8, b += 8) {
        memcpy(&x, a, 8);
        memcpy(&y, b, 8);
        if (x != y)
            return 0;
    }
    uint32_t u = 0, v = 0;
    if (n >= 4) {
        memcpy(&u, a, 4);
        memcpy(&v, b, 4);
        n -= 4, a += 4, b += 4;
    }
    uint16_t w = 0, z = 0;
    if (n >= 2) {
        memcpy(&w, a, 2);
        memcpy(&z, b, 2);
        n -= 2, a += 2, b += 2;
    }
    return u == v && w == z && (n == 0 || *a == *b);
}

static const pair_t *find(const pair_t *p, int n, const char *key)
{
    for (int i = 0; i < n; i++)
        if (named(key, p[i].key, p[i].klen))
            return &p[i];
    return NULL;
}

/*
 * Which rows a key names. Each pair's key used to be compared with every row of the envelope
 * and of its type's table, a byte at a time; here a key goes straight to its slot in a small
 * open-addressed table per direction and flat type, built once from the field tables, and is
 * compared with the one key found there, of the same length, a word at a time: with the
 * type's name compared so too, about 200 of the worker's instructions a relayed message less
 * (docs/performance.md, "Relay: the about tag at build, and key matching"). A key's first eight
 * bytes, read once as a word (key_word), are both its hash and its comparison, all of it for
 * every key the tables have but "candidate" ("Relay: strings sixteen bytes at a time"). It says
 * what the rows' search said: the first row of each table whose key is spelt exactly so (named), or
 * none.
 */
typedef struct key_slot_s {
    const char *key; /* NULL: an empty slot */
    uint64_t kw;     /* key_word of the key */
    uint8_t klen;    /* as the row's */
    int16_t env_row; /* its row in the envelope, or -1 */
    int16_t row;     /* its row in the type's table, or -1 */
} key_slot_t;

/* A power of two, twice the most keys an index holds (both tables at FLAT_ROWS): a key's slot
 * is seldom taken by another. */
#define KEY_BITS 5
#define KEY_SLOTS (1u << KEY_BITS)
_Static_assert(KEY_SLOTS >= 2 * 2 * FLAT_ROWS && (KEY_SLOTS & (KEY_SLOTS - 1)) == 0,
               "room for every key of two tables, half empty");

typedef struct key_index_s {
    key_slot_t slot[KEY_SLOTS];
} key_index_t;

/* The types a relay or a keepalive brings; other handlers may expect NUL-terminated text, so
 * any other type goes to the full parse. */
static const int flat_types[] = {AR_SIG_OFFER, AR_SIG_ANSWER, AR_SIG_CANDIDATE,
                                 AR_SIG_ACK,   AR_SIG_PING,   AR_SIG_PONG};
#define FLAT_TYPES (sizeof(flat_types) / sizeof(flat_types[0]))

/* By direction and place in flat_types, and the types' names with their lengths: written once
 * (pthread_once), then only read. */
static key_index_t key_index[2][FLAT_TYPES];
static const char *flat_name[FLAT_TYPES];
static size_t flat_name_len[FLAT_TYPES];
static pthread_once_t key_index_once = PTHREAD_ONCE_INIT;

/* Where a key of n bytes whose key_word is w starts looking: the top bits of a multiplicative
 * hash of both. */
static inline unsigned key_hash(uint64_t w, size_t n)
{
    return (unsigned)(((w ^ n) * 0x9e3779b97f4a7c15ull) >> (64 - KEY_BITS));
}

/* A slot holds the key spelt k[0..n), whose key_word is w: the word, the length, and any bytes
 * beyond the first eight. */
static inline int key_is(const key_slot_t *s, const char *k, size_t n, uint64_t w)
{
    return s->kw == w && s->klen == n && (n <= 8 || same_bytes(s->key + 8, k + 8, n - 8));
}

/* The slot of the key spelt k[0..n), whose key_word is w, or NULL when neither table has it. */
static inline const key_slot_t *key_find(const key_index_t *ix, const char *k, size_t n, uint64_t w)
{
    unsigned h = key_hash(w, n);
    for (unsigned i = 0; i < KEY_SLOTS; i++, h = (h + 1) & (KEY_SLOTS - 1)) {
        const key_slot_t *s = &ix->slot[h];
        if (s->key == NULL)
            return NULL;
        if (key_is(s, k, n, w))
            return s;
    }
    return NULL;
}

/* Row r of a table (of the envelope when env) into ix: a key already there keeps the first row
 * of each table that names it, as the rows' search found the first. */
static void key_put(key_index_t *ix, const ar__sig_field_t *f, int r, int env)
{
    /* A list's element row has no key. One whose length is not its klen (a NUL inside) names no
     * key of a pair either: the rows' search compared up to the NUL and the length. */
    if (f->key == NULL || strlen(f->key) != f->klen)
        return;
    size_t n = f->klen;
    uint64_t w = key_word(f->key, n, n);
    unsigned h = key_hash(w, n);
    for (unsigned i = 0; i < KEY_SLOTS; i++, h = (h + 1) & (KEY_SLOTS - 1)) {
        key_slot_t *s = &ix->slot[h];
        if (s->key == NULL)
            *s = (key_slot_t){f->key, w, f->klen, -1, -1};
        else if (!key_is(s, f->key, n, w))
            continue;
        int16_t *row = env ? &s->env_row : &s->row;
        if (*row < 0)
            *row = (int16_t)r;
        return;
    }
}

/* The type's table in dir when the flat parse reads it, else NULL. */
static const ar__sig_table_t *flat_table(int dir, int type)
{
    const ar__sig_table_t *t = ar__sig_types[type].table[dir];
    return t == NULL || t->count > FLAT_ROWS || ar__sig_envelope[dir].count > FLAT_ROWS ? NULL : t;
}

/*
 * The rows as the ordered parse walks them (at the end of this file). Every frame of our clients
 * opens with the same bytes, `{"v":1,"type":"`, the lead (lead[dir]), then a type's name and its
 * closing quote. A type's plan lists the rows of the envelope and then those of its table, each
 * with the bytes that open its member in a compact frame, `"key":`, zero-padded to sixteen and
 * held as two words with the masks of the bytes they fill, which the frame's next sixteen bytes
 * are compared with. The lead and the name stand for the first two steps.
 */
#define HEAD_MAX 16

typedef struct step_s {
    const ar__sig_field_t *f;
    uint64_t w[2], mask[2];
    char head[HEAD_MAX];
    uint8_t n;      /* bytes of head: the key's and three; 0 for none */
    uint8_t in_msg; /* a row of the type's table, laid out in the message; else the envelope's */
    uint8_t sdp;    /* keyed "sdp": with AR_SIG_PARSE_KEEP_SDP_JSON, its string is kept (value) */
} step_t;

typedef struct plan_s {
    step_t step[2 * FLAT_ROWS];
    size_t count;
    step_t name; /* the type's name and the closing quote, which follow the lead */
    int ok;      /* 0: never walked, the frames go to the pairs' parse */
} plan_t;

static step_t lead[2];
static plan_t type_plan[2][FLAT_TYPES];

/* The key of row f is one a frame spells as it is, that the pairs' parse would read too: every
 * byte plain (plain_end), the key as long as its klen, and no other row to check with it; and
 * its member's head fits a step. */
static int plain_key(const ar__sig_field_t *f)
{
    if (f->key == NULL || f->needs != NULL || strlen(f->key) != f->klen || f->klen + 3 > HEAD_MAX)
        return 0;
    for (size_t i = 0; i < f->klen; i++)
        if (f->key[i] < 0x20 || f->key[i] >= 0x7f || f->key[i] == '"' || f->key[i] == '\\')
            return 0;
    return 1;
}

/* 1 when row r of the envelope (env) or of the type's table is the one row of both tables with
 * its key in the type's key index ix. The walk compares a member with one row's key at a time
 * and takes the first row that matches, so it must be the row the pairs' parse maps the key to
 * (map_rows), and no other. */
static int row_is_only(const key_index_t *ix, const ar__sig_field_t *f, int r, int env)
{
    const key_slot_t *s = key_find(ix, f->key, f->klen, key_word(f->key, f->klen, f->klen));
    return s != NULL && (env ? s->env_row == r && s->row < 0 : s->row == r && s->env_row < 0);
}

/* 1 when row f's check (ar__sig_check) passes the value at v. */
static int check_passes(const ar__sig_field_t *f, const void *v)
{
    ar_sig_err_t e;
    return ar__sig_check(f, v, 1, f->key, &e) == 0;
}

/* Step s's head from its n bytes: the words and the masks of the bytes they fill. */
static void head_words(step_t *s)
{
    memcpy(s->w, s->head, HEAD_MAX);
    s->mask[0] = s->n >= 8 ? ~0ull : (1ull << (8 * s->n)) - 1;
    s->mask[1] = s->n <= 8 ? 0 : s->n >= 16 ? ~0ull : (1ull << (8 * (s->n - 8))) - 1;
}

/* Row r of the envelope or (in_msg) of the type's table, as plan's next step; ix: the type's key
 * index. */
static void plan_add(plan_t *plan, const ar__sig_field_t *f, int r, int in_msg,
                     const key_index_t *ix)
{
    step_t *s = &plan->step[plan->count++];
    memset(s, 0, sizeof(*s));
    s->f = f;
    if (!plain_key(f) || !row_is_only(ix, f, r, !in_msg)) {
        plan->ok = 0;
        return;
    }
    s->n = (uint8_t)(f->klen + 3);
    s->head[0] = '"';
    memcpy(s->head + 1, f->key, f->klen);
    memcpy(s->head + 1 + f->klen, "\":", 2);
    head_words(s);
    s->in_msg = (uint8_t)in_msg;
    s->sdp = (uint8_t)sdp_key(f->key, f->klen);
}

/*
 * The lead of direction d: the opening brace, the envelope's first row "v" with AR_SIG_VERSION,
 * and the head of its second, "type", with the quote that opens the name (n 0 when the envelope
 * does not begin so). The pairs' parse reads no other version, and the check of "v" against its
 * row is made here, once; so is that of each type's name (plan_name). So the walk stores both
 * without checking them again, the checks that cost the most of a relayed frame's envelope.
 */
static void lead_build(int d)
{
    const ar__sig_table_t *env = &ar__sig_envelope[d];
    const ar__sig_field_t *v = &env->fields[0], *type = &env->fields[1];
    const int64_t version = AR_SIG_VERSION;
    char text[64];
    if (env->count < 2 || v->off != offsetof(ar__sig_env_t, v) || v->kind != AR__SIG_INT ||
        type->off != offsetof(ar__sig_env_t, type) || type->kind != AR__SIG_STR || !plain_key(v) ||
        !plain_key(type) || !check_passes(v, &version))
        return;
    int n = snprintf(text, sizeof(text), "{\"%s\":%d,\"%s\":\"", v->key, AR_SIG_VERSION, type->key);
    if (n <= 0 || n > HEAD_MAX)
        return;
    memcpy(lead[d].head, text, (size_t)n);
    lead[d].n = (uint8_t)n;
    head_words(&lead[d]);
}

/* Plan's name: the name of the flat type ti and its closing quote, when the envelope's "type"
 * row passes the name; else the plan is never walked. */
static void plan_name(plan_t *plan, int d, size_t ti)
{
    const ar_sig_str_t name = {flat_name[ti], flat_name_len[ti]};
    step_t *s = &plan->name;
    if (lead[d].n == 0 || name.len + 1 > HEAD_MAX ||
        !check_passes(&ar__sig_envelope[d].fields[1], &name)) {
        plan->ok = 0;
        return;
    }
    memcpy(s->head, name.p, name.len);
    s->head[name.len] = '"';
    s->n = (uint8_t)(name.len + 1);
    head_words(s);
}

/* The plan of type ti in direction d, whose table is t and key index ix. No more rows than the
 * pairs' parse reads pairs, so that it reads every frame the walk reads. */
static void plan_build(plan_t *plan, int d, size_t ti, const ar__sig_table_t *t,
                       const key_index_t *ix)
{
    const ar__sig_table_t *env = &ar__sig_envelope[d];
    plan->count = 0;
    plan->ok = env->count + t->count <= FLAT_PAIRS;
    for (size_t r = 0; plan->ok && r < env->count; r++)
        plan_add(plan, &env->fields[r], (int)r, 0, ix);
    for (size_t r = 0; plan->ok && r < t->count; r++)
        plan_add(plan, &t->fields[r], (int)r, 1, ix);
    if (plan->ok)
        plan_name(plan, d, ti);
}

static void key_index_build(void)
{
    for (size_t i = 0; i < FLAT_TYPES; i++) {
        flat_name[i] = ar_sig_type_name(flat_types[i]);
        flat_name_len[i] = strlen(flat_name[i]);
    }
    for (int d = 0; d < 2; d++) {
        const ar__sig_table_t *env = &ar__sig_envelope[d];
        lead_build(d);
        for (size_t i = 0; i < FLAT_TYPES; i++) {
            const ar__sig_table_t *t = flat_table(d, flat_types[i]);
            if (t == NULL)
                continue;
            for (size_t r = 0; r < env->count; r++)
                key_put(&key_index[d][i], &env->fields[r], (int)r, 1);
            for (size_t r = 0; r < t->count; r++)
                key_put(&key_index[d][i], &t->fields[r], (int)r, 0);
            plan_build(&type_plan[d][i], d, i, t, &key_index[d][i]);
        }
    }
}

int ar__sig_flat_rows(ar_sig_dir_t dir, int type, const char *key, size_t n, int *env_row, int *row)
{
    *env_row = *row = -1;
    size_t i = 0;
    while (i < FLAT_TYPES && flat_types[i] != type)
        i++;
    if (i == FLAT_TYPES || (dir != AR_SIG_FROM_CLIENT && dir != AR_SIG_FROM_SERVER) ||
        flat_table(dir, type) == NULL)
        return -1;
    pthread_once(&key_index_once, key_index_build);
    const key_slot_t *s = key_find(&key_index[dir][i], key, n, key_word(key, n, n));
    if (s) {
        *env_row = s->env_row;
        *row = s->row;
    }
    return 0;
}

/*
 * Pairs to rows of the envelope and of the type's table (ix), in one pass over the pairs:
 * at_env[r] is the pair named like row r of the envelope, or -1, at_t likewise. 0 when every
 * pair names a row of either; -1 when one does not (an unknown key) or a row is named twice
 * (jansson refuses a repeated key): the full parse answers. The caller checked both tables
 * have at most FLAT_ROWS rows.
 */
static int map_rows(const key_index_t *ix, const pair_t *p, int n, int8_t at_env[FLAT_ROWS],
                    int8_t at_t[FLAT_ROWS])
{
    memset(at_env, 0xff, FLAT_ROWS); /* every slot -1 */
    memset(at_t, 0xff, FLAT_ROWS);
    for (int i = 0; i < n; i++) {
        const key_slot_t *s = key_find(ix, p[i].key, p[i].klen, p[i].kw);
        if (s == NULL)
            return -1; /* a slot has a row in one table at least */
        /* A key both tables name is read by both, as the full parse does. */
        if (s->env_row >= 0) {
            if (at_env[s->env_row] >= 0)
                return -1;
            at_env[s->env_row] = (int8_t)i;
        }
        if (s->row >= 0) {
            if (at_t[s->row] >= 0)
                return -1;
            at_t[s->row] = (int8_t)i;
        }
    }
    return 0;
}

/* The pair keyed "type", as find(p, n, "type"), by its key_word. */
static const pair_t *type_pair(const pair_t *p, int n)
{
    const uint64_t type =
        (uint64_t)'t' | (uint64_t)'y' << 8 | (uint64_t)'p' << 16 | (uint64_t)'e' << 24;
    for (int i = 0; i < n; i++)
        if (p[i].kw == type && p[i].klen == 4)
            return &p[i];
    return NULL;
}

/*
 * ar__sig_check's verdict on the value at dst of row f that read_row took from a frame: 1 when
 * it passes. Every string but the SDP kept as sent (which never gets here) is plain (value,
 * plain_end): printable ASCII without '"' or '\\', so for the printable ASCII class (a
 * candidate's line, mid and ufrag, the longest strings of a relay but its SDP) only the bounds
 * are left to check, not every byte again; an id's bytes go straight to the class's scan, and an
 * integer's bounds are compared here. Any other row is ar__sig_check's. The same verdict as
 * ar__sig_check for every value read_row stores (test_ordered.c, "row checks"; the fuzz target
 * compares the relay's parse with the full one).
 */
static inline int row_passes(const ar__sig_field_t *f, const void *dst)
{
    if (f->kind == AR__SIG_STR) {
        const ar_sig_str_t *s = dst;
        if (s->len > (size_t)f->max || s->len < (size_t)f->min)
            return 0;
        return f->cs == AR__CS_ASCII || ar__sig_charset_ok(f->cs, s->p, s->len);
    }
    if (f->kind == AR__SIG_INT) {
        int64_t v = *(const int64_t *)dst;
        return v >= f->min && v <= f->max;
    }
    ar_sig_err_t e;
    return ar__sig_check(f, dst, 1, f->key, &e) == 0;
}

/*
 * Reads one row f from the value x (NULL: absent) into dst, as ar__sig_read_object would: 0, or
 * -1 for the full parse. sdp_ok: the row for "sdp" may keep an escaped or non-ASCII string as
 * sent (its content then checked by ar__sig_sdp_end), whose start goes to *raw. A row that
 * needs another is the caller's to check. Both the pairs' parse and the ordered one read
 * every row through here.
 */
static inline int read_row(const ar__sig_field_t *f, const pair_t *x, void *dst, int sdp_ok,
                           const char **raw)
{
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
        return 0;
    }
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
            return 0;
        }
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
        for (size_t k = 0; x->kind == T_STR && f->values[k] && !found; k++)
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
    return row_passes(f, dst) ? 0 : -1;
}

/* Reads the rows of t from the pairs into base (read_row): 0, or -1 for the full parse. at[i]:
 * the pair named like row i, or -1 (map_rows). */
static int read_rows(const ar__sig_table_t *t, const pair_t *p, int n, const int8_t *at, void *base,
                     int sdp_ok, const char **raw)
{
    for (size_t i = 0; i < t->count; i++) {
        const ar__sig_field_t *f = &t->fields[i];
        const pair_t *x = at[i] >= 0 ? &p[at[i]] : NULL;
        if (x != NULL && x->kind != T_NULL && f->needs != NULL && find(p, n, f->needs) == NULL)
            return -1;
        if (read_row(f, x, (char *)base + f->off, sdp_ok, raw) != 0)
            return -1;
    }
    return 0;
}

/* The place in flat_types of the type named s[0..n), or -1: only the flat types' names are
 * compared. */
static int flat_type_at(const char *s, size_t n)
{
    for (size_t ti = 0; ti < FLAT_TYPES; ti++)
        if (n == flat_name_len[ti] && same_bytes(flat_name[ti], s, n))
            return (int)ti;
    return -1;
}

/* What a parse that read the frame reports, the same for both: not the whole of err, as on
 * success only its type and request id are read (signal.h). */
static void flat_done(ar_sig_dir_t dir, int type, const ar__sig_env_t *e, const char *frame,
                      size_t len, const char *raw, ar_sig_msg_t *msg, ar_sig_err_t *err)
{
    err->code = 0;
    err->text[0] = '\0';
    err->type = type;
    err->id = dir == AR_SIG_FROM_CLIENT ? e->id : AR_SIG_NONE;
    ar__sig_env_to_msg(dir, type, e, msg);
    msg->sdp_raw_ = raw;
    msg->flat_ = frame;
    msg->flat_len_ = len;
}

int ar__sig_parse_flat(ar_sig_dir_t dir, const char *frame, size_t len, unsigned flags,
                       ar_sig_msg_t *msg, ar_sig_err_t *err)
{
    pair_t p[FLAT_PAIRS];
    int keep = (flags & AR_SIG_PARSE_KEEP_SDP_JSON) != 0;
    int n = split(frame, len, keep, p);
    if (n < 0)
        return 0;
    const pair_t *tp = type_pair(p, n);
    if (tp == NULL || tp->kind != T_STR)
        return 0;
    pthread_once(&key_index_once, key_index_build);
    int ti = flat_type_at(tp->val, tp->vlen);
    if (ti < 0)
        return 0;
    int type = flat_types[ti];
    const ar__sig_table_t *t = flat_table(dir, type);
    const ar__sig_table_t *env = &ar__sig_envelope[dir];
    if (t == NULL)
        return 0;
    /* Every key known (a row of the envelope or of the type), none twice. */
    int8_t at_env[FLAT_ROWS], at_t[FLAT_ROWS];
    if (map_rows(&key_index[dir][ti], p, n, at_env, at_t) != 0)
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
    flat_done(dir, type, &e, frame, len, raw, msg, err);
    return 1;
}

/*
 * The parse of frames in the clients' order (docs/performance.md, "Relay: the parse of frames in
 * the clients' order"). The web client sends JSON.stringify({v: 1, type, id, ...fields}), its
 * fields in its type's table order, and the load generator the same without "id": compact
 * frames whose members name the rows of the envelope and then of the type's table, in their
 * order, some left out. So the frame's opening is compared with the lead and a type's name at
 * once, and each member's `"key":` after them with the one of the row after the last one named,
 * then of the next (a plan's steps); a row passed over is absent. A frame so written is read in
 * one pass, without the pairs, the keys' hash and the map of rows. Any other (white space, a key
 * out of order, unknown or repeated, a required row missing, and everything the pairs' parse
 * would not read either) goes to the pairs' parse, which then answers. Each value and each row
 * is read as that parse reads it (value, read_row), and a compact frame is one its grammar
 * (split) takes, so a frame both read is read the same.
 */

/*
 * memset(msg, 0, sizeof(*msg)) for the walk, which zeroes a message for every relayed frame: its
 * 304 bytes as sixteen-byte stores where SSE2 is. gcc -O3 wrote that memset as rep stosq, one
 * counted iteration a word, about 40 of the worker's instructions a relayed message; and it
 * turns a loop of stores back into that memset unless the loop is unrolled first.
 */
static inline void msg_zero(ar_sig_msg_t *msg)
{
#if defined(__SSE2__)
    enum { WHOLE = sizeof(*msg) / 16 * 16 };
    char *p = (char *)msg;
    const __m128i z = _mm_setzero_si128();
#pragma GCC unroll 32
    for (size_t k = 0; k < WHOLE; k += 16)
        _mm_storeu_si128((__m128i *)(void *)(p + k), z);
    memset(p + WHOLE, 0, sizeof(*msg) - WHOLE);
#else
    memset(msg, 0, sizeof(*msg));
#endif
}

typedef struct ordered_s {
    const plan_t *plan; /* the type's */
    size_t at;          /* the next step a member may open with */
    char *base[2];      /* where the envelope's rows and the type's are laid out (step in_msg) */
    int keep;           /* AR_SIG_PARSE_KEEP_SDP_JSON */
    const char *raw;    /* the SDP kept as sent (read_row) */
} ordered_t;

/* The member at `at` (avail: bytes from there to the frame's end) opens with step s's head:
 * compared as two words when sixteen bytes are there. */
static inline int step_here(const step_t *s, const char *at, size_t avail)
{
    if (avail < HEAD_MAX)
        return s->n <= avail && memcmp(at, s->head, s->n) == 0;
    uint64_t w[2];
    memcpy(w, at, HEAD_MAX);
    return ((w[0] & s->mask[0]) == s->w[0]) & ((w[1] & s->mask[1]) == s->w[1]);
}

/* Step s's row is absent (read_row): 0, or -1 when it may not be. */
static inline int step_absent(ordered_t *o, const step_t *s)
{
    return read_row(s->f, NULL, o->base[s->in_msg] + s->f->off, 0, &o->raw);
}

/* The next step whose head the member at `at` opens with (step_here), the rows passed over read
 * as absent: NULL when none is left, or a row passed over may not be absent. */
static inline const step_t *ordered_step(ordered_t *o, const char *at, size_t avail)
{
    /* In locals: the rows' stores could alias o for all the compiler knows. */
    const step_t *s = &o->plan->step[o->at], *end = &o->plan->step[o->plan->count];
    for (; s < end; s++) {
        if (step_here(s, at, avail)) {
            o->at = (size_t)(s + 1 - o->plan->step);
            return s;
        }
        if (step_absent(o, s) != 0)
            return NULL;
    }
    return NULL;
}

/* The member whose opening quote is at frame[i], read into its row: the index past its value,
 * or 0. */
static inline size_t ordered_member(ordered_t *o, const char *frame, size_t i, size_t len)
{
    const step_t *s = ordered_step(o, frame + i, len - i);
    if (s == NULL || i + s->n >= len) /* a frame may end right after a head */
        return 0;
    pair_t x = {.sdp = 0};
    i = value(frame, i + s->n, len, o->keep && s->sdp, &x);
    void *dst = o->base[s->in_msg] + s->f->off;
    return i == 0 || read_row(s->f, &x, dst, s->in_msg && o->keep, &o->raw) != 0 ? 0 : i;
}

/* The frame opens with the lead and the name of a type the walk reads: "v" and "type" read as
 * lead_build says, the walk set to go on with the type's plan; the index past the name's
 * closing quote, else 0. */
static size_t ordered_lead(ordered_t *o, ar_sig_dir_t dir, const char *frame, size_t len,
                           ar__sig_env_t *e, int *type)
{
    const step_t *l = &lead[dir];
    if (l->n == 0 || !step_here(l, frame, len))
        return 0;
    const char *name = frame + l->n;
    for (size_t ti = 0; ti < FLAT_TYPES; ti++) {
        const plan_t *plan = &type_plan[dir][ti];
        if (plan->ok && step_here(&plan->name, name, len - l->n)) {
            e->v = AR_SIG_VERSION;
            e->type = (ar_sig_str_t){name, plan->name.n - 1u};
            *type = flat_types[ti];
            o->plan = plan;
            o->at = 2; /* past "v" and "type" */
            return l->n + plan->name.n;
        }
    }
    return 0;
}

/* The frame's members after the type: 1 when they are read to its closing brace, the rows after
 * the last one absent. i: the index past the type's name. */
static int ordered_members(ordered_t *o, const char *frame, size_t i, size_t len)
{
    while (i != 0 && i + 1 < len && frame[i] == ',')
        i = ordered_member(o, frame, i + 1, len);
    if (i == 0 || i + 1 != len || frame[i] != '}')
        return 0;
    while (o->at < o->plan->count)
        if (step_absent(o, &o->plan->step[o->at++]) != 0)
            return 0;
    return 1;
}

int ar__sig_parse_ordered(ar_sig_dir_t dir, const char *frame, size_t len, unsigned flags,
                          ar_sig_msg_t *msg, ar_sig_err_t *err)
{
    pthread_once(&key_index_once, key_index_build);
    ar__sig_env_t e;
    memset(&e, 0, sizeof(e));
    ordered_t o = {
        NULL, 0, {(char *)&e, (char *)msg}, (flags & AR_SIG_PARSE_KEEP_SDP_JSON) != 0, NULL};
    int type = 0;
    size_t i = ordered_lead(&o, dir, frame, len, &e, &type);
    if (i == 0)
        return 0;
    msg_zero(msg);
    if (!ordered_members(&o, frame, i, len) || (e.fid.len && e.seq == 0)) {
        memset(msg, 0, sizeof(*msg));
        return 0;
    }
    flat_done(dir, type, &e, frame, len, o.raw, msg, err);
    return 1;
}
