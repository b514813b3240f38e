/*
 * Message to frame. The server writes a frame for every relayed offer, answer and candidate, so
 * this writes JSON text straight into the caller's buffer instead of building a jansson tree
 * (one allocation per value) and dumping it. Every value is first checked against the same row
 * the parser applies (ar__sig_check), so the server cannot emit what its own clients would
 * refuse, and the strings it escapes are known to be valid UTF-8.
 */
#include "internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

typedef struct writer_s {
    char *buf;
    size_t len;
    size_t cap; /* bytes usable for text; one more is kept for the NUL */
    int over;
    const void *raw; /* a field written as it is: the SDP a parse kept escaped, or NULL */
} writer_t;

static void put(writer_t *w, const char *s, size_t n)
{
    if (n == 0)
        return;
    if (w->over || n > w->cap - w->len) {
        w->over = 1;
        return;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
}

static void put_cstr(writer_t *w, const char *s)
{
    put(w, s, strlen(s));
}

/* A string literal, its length known at compile time. */
#define PUT_LIT(w, lit) put((w), (lit), sizeof(lit) - 1)

/* "s": a value whose characters were checked to need no escape, or JSON string text kept as
 * it came (the SDP of a relay parse). */
static void put_quoted(writer_t *w, const char *s, size_t n)
{
    if (w->over || n + 2 > w->cap - w->len) {
        w->over = 1;
        return;
    }
    char *o = w->buf + w->len;
    o[0] = '"';
    memcpy(o + 1, s, n);
    o[n + 1] = '"';
    w->len += n + 2;
}

/* The classes whose characters a JSON string holds as they are: no quote, no backslash, no
 * control character, nothing above 0x7e (validate.c's tables). */
static int needs_no_escape(int cs)
{
    return cs == AR__CS_ID || cs == AR__CS_LANG || cs == AR__CS_WORD || cs == AR__CS_URL;
}

static void put_int(writer_t *w, int64_t v)
{
    char tmp[24];
    if (v >= 0 && v < 10 && !w->over && w->len < w->cap) {
        w->buf[w->len++] = (char)('0' + v); /* a relayed frame's "seq":0, written once each */
        return;
    }
    if (v >= 0) { /* by hand: every relayed frame has "seq":0, and printf costs more than it */
        size_t n = 0;
        for (uint64_t x = (uint64_t)v; n == 0 || x; x /= 10)
            tmp[sizeof(tmp) - ++n] = (char)('0' + x % 10);
        put(w, tmp + sizeof(tmp) - n, n);
        return;
    }
    int n = snprintf(tmp, sizeof(tmp), "%" PRId64, v);
    put(w, tmp, (size_t)n);
}

/* A JSON string. Runs of plain bytes are copied at once; only quotes, backslashes and control
 * characters (CR, LF and tab in SDP) need escapes. */
static void put_string(writer_t *w, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    put(w, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        /* Eight plain ASCII bytes at a time (a byte >= 0x7f also stops the skip, then goes
         * through as it is below). */
        i = ar__sig_skip_plain(s, i, n);
        if (i >= n)
            break;
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        put(w, s + run, i - run);
        run = i + 1;
        char esc[6] = {'\\', (char)c, 0, 0, 0, 0};
        size_t elen = 2;
        if (c == '\n')
            esc[1] = 'n';
        else if (c == '\r')
            esc[1] = 'r';
        else if (c == '\t')
            esc[1] = 't';
        else if (c < 0x20) {
            esc[1] = 'u';
            esc[2] = esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            elen = 6;
        }
        put(w, esc, elen);
    }
    put(w, s + run, n - run);
    put(w, "\"", 1);
}

/* ,"key": (or "key": for an object's first), the key's length from its row: one capacity check
 * and one copy. */
static void put_key(writer_t *w, const ar__sig_field_t *f, int first)
{
    size_t n = f->klen + 4 - (first != 0);
    if (w->over || n > w->cap - w->len) {
        w->over = 1;
        return;
    }
    char *o = w->buf + w->len;
    if (!first)
        *o++ = ',';
    o[0] = '"';
    memcpy(o + 1, f->key, f->klen);
    o[f->klen + 1] = '"';
    o[f->klen + 2] = ':';
    w->len += n;
}

static int write_object(const ar__sig_table_t *t, const void *base, const char *path, writer_t *w,
                        ar_sig_err_t *err);

/* Writes one value (already checked) of row f found at val. */
static int write_value(const ar__sig_field_t *f, const void *val, const char *name, writer_t *w,
                       ar_sig_err_t *err)
{
    switch (f->kind) {
    case AR__SIG_STR: {
        const ar_sig_str_t *s = val;
        if (needs_no_escape(f->cs)) /* checked against its class before it is written */
            put_quoted(w, s->p, s->len);
        else
            put_string(w, s->p, s->len);
        return 0;
    }
    case AR__SIG_INT:
        put_int(w, *(const int64_t *)val);
        return 0;
    case AR__SIG_BOOL:
        put_cstr(w, *(const int *)val ? "true" : "false");
        return 0;
    case AR__SIG_ENUM: {
        const char *s = f->values[*(const int *)val - 1];
        put_string(w, s, strlen(s));
        return 0;
    }
    case AR__SIG_LIST: {
        const ar_sig_list_t *l = val;
        const ar__sig_table_t *sub = f->sub;
        put(w, "[", 1);
        for (size_t i = 0; i < l->count; i++) {
            char path[96];
            snprintf(path, sizeof(path), "%s[%zu]", name, i);
            const void *elem = (const char *)l->items + i * sub->size;
            if (i > 0)
                put(w, ",", 1);
            int rc = sub->fields[0].key == NULL
                         ? ar__sig_check(&sub->fields[0], elem,
                                         ar__sig_present(&sub->fields[0], elem), path, err)
                         : write_object(sub, elem, path, w, err);
            if (rc == 0 && sub->fields[0].key == NULL)
                rc = write_value(&sub->fields[0], elem, path, w, err);
            if (rc != 0)
                return rc;
        }
        put(w, "]", 1);
        return 0;
    }
    default:
        return write_object(f->sub, val, name, w, err);
    }
}

static int write_fields(const ar__sig_table_t *t, const void *base, const char *path, writer_t *w,
                        int first, ar_sig_err_t *err)
{
    for (size_t i = 0; i < t->count; i++) {
        const ar__sig_field_t *f = &t->fields[i];
        const void *val = (const char *)base + f->off;
        if (f->key == NULL)
            return AR_EINVAL; /* keyless rows lay out list elements, never objects */
        char buf[96];
        const char *name = f->key;
        if (path[0] != '\0') {
            ar__sig_name(buf, sizeof(buf), path, f);
            name = buf;
        }
        if (w->raw != NULL && val == w->raw) {
            /* The SDP a parse kept escaped (AR_SIG_PARSE_KEEP_SDP_JSON), checked back then. */
            const ar_sig_str_t *sdp = val;
            put_key(w, f, first);
            first = 0;
            put_quoted(w, sdp->p, sdp->len);
            continue;
        }
        int present = ar__sig_present(f, val);
        int rc = ar__sig_check(f, val, present, name, err);
        if (rc != 0)
            return rc;
        if (!present)
            continue;
        if (f->needs != NULL) {
            const ar__sig_field_t *other = NULL;
            for (size_t j = 0; j < t->count && other == NULL; j++)
                if (t->fields[j].key != NULL && strcmp(t->fields[j].key, f->needs) == 0)
                    other = &t->fields[j];
            if (other != NULL && !ar__sig_present(other, (const char *)base + other->off))
                return AR__SIG_FAIL(err, AR_SIG_E_BAD_FIELD, "field '%s' needs field '%s'", name,
                                    f->needs);
        }
        put_key(w, f, first);
        first = 0;
        rc = write_value(f, val, name, w, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int write_object(const ar__sig_table_t *t, const void *base, const char *path, writer_t *w,
                        ar_sig_err_t *err)
{
    put(w, "{", 1);
    int rc = write_fields(t, base, path, w, 1, err);
    put(w, "}", 1);
    return rc;
}

int ar_sig_build(ar_sig_dir_t dir, const ar_sig_msg_t *msg, char *out, size_t cap)
{
    if (msg == NULL || out == NULL || cap == 0 ||
        (dir != AR_SIG_FROM_CLIENT && dir != AR_SIG_FROM_SERVER) || msg->type <= 0 ||
        msg->type >= AR_SIG_TYPE_COUNT || ar__sig_types[msg->type].table[dir] == NULL)
        return AR_EINVAL;
    const ar__sig_table_t *t = ar__sig_types[msg->type].table[dir];
    size_t limit = dir == AR_SIG_FROM_CLIENT ? AR_SIG_FRAME_MAX : AR_SIG_OUT_MAX;
    writer_t w = {out, 0, cap - 1 < limit ? cap - 1 : limit, 0, NULL};
    if (((msg->sdp_json_ != NULL && msg->u.sdp.sdp.p == msg->sdp_json_) ||
         (msg->sdp_raw_ != NULL && msg->u.sdp.sdp.p == msg->sdp_raw_)) &&
        (msg->type == AR_SIG_OFFER || msg->type == AR_SIG_ANSWER))
        w.raw = &msg->u.sdp.sdp;
    ar_sig_err_t err;

    PUT_LIT(&w, "{\"v\":1,\"type\":");
    const char *type = ar_sig_type_name(msg->type);
    put_quoted(&w, type, strlen(type));
    if (dir == AR_SIG_FROM_SERVER) {
        if (msg->seq < 0 || msg->seq > AR_SIG_INT_MAX)
            return AR_EINVAL;
        PUT_LIT(&w, ",\"seq\":");
        put_int(&w, msg->seq);
        if (msg->fid.len) {
            if (msg->fid.p == NULL || msg->fid.len != AR_SIG_FID_LEN || msg->seq < 1 ||
                !ar__sig_charset_ok(AR__CS_ID, msg->fid.p, msg->fid.len))
                return AR_EINVAL;
            PUT_LIT(&w, ",\"fid\":");
            put_quoted(&w, msg->fid.p, msg->fid.len); /* checked above: id characters */
        }
    } else if (msg->id != AR_SIG_NONE) {
        if (msg->id < 0 || msg->id > AR_SIG_INT_MAX)
            return AR_EINVAL;
        PUT_LIT(&w, ",\"id\":");
        put_int(&w, msg->id);
    }
    if (write_fields(t, msg, "", &w, 0, &err) != 0)
        return AR_EINVAL;
    put(&w, "}", 1);
    if (w.over)
        return AR_ETOOBIG;
    out[w.len] = '\0';
    return (int)w.len;
}

/* s lies wholly in the frame the flat parse read msg from (msg->flat_): checked there, and plain
 * or the SDP kept as sent. Compared as integers: s may point anywhere else. */
static int in_flat_frame(const ar_sig_msg_t *msg, const ar_sig_str_t *s)
{
    uintptr_t f = (uintptr_t)msg->flat_, p = (uintptr_t)s->p;
    return s->p != NULL && p >= f && p - f <= msg->flat_len_ && s->len <= msg->flat_len_ - (p - f);
}

/* An optional string of the frame between lo and hi bytes: absent, or in the frame (its checks
 * the parse's) within those bounds. */
static int opt_in_frame(const ar_sig_msg_t *msg, const ar_sig_str_t *s, size_t lo, size_t hi)
{
    return s->p == NULL || (in_flat_frame(msg, s) && s->len >= lo && s->len <= hi);
}

/* Appends n bytes at s to *o (the room for them was counted first). */
static inline void add(char **o, const char *s, size_t n)
{
    memcpy(*o, s, n);
    *o += n;
}

#define ADD_LIT(o, lit) add((o), (lit), sizeof(lit) - 1)

/*
 * A relayed frame's opening, up to the peer's value ({"v":1,"type":"candidate","seq":0,"from":"
 * at most), is copied as one block of RELAY_OPEN bytes, its length known at compile time, and the
 * output advanced by the opening's own length: three vector moves, where the 38 to 42 bytes of
 * the opening itself became a byte-counted string move (rep movsb),
 * about 40 of the worker's instructions a relayed message (docs/performance.md). The bytes past
 * the opening are written over by the peer and what follows: every relayed frame is longer than
 * RELAY_OPEN bytes, and its whole length was checked against the buffer's first.
 */
#define RELAY_OPEN 48
/* The opening's length: its text, the array's bytes before the first NUL (one is there: the
 * longest opening, the candidate's, has 42 bytes). */
#define OPEN_LEN(open) strlen(open)
_Static_assert(sizeof("{\"v\":1,\"type\":\"candidate\",\"seq\":0,\"from\":\"") < RELAY_OPEN,
               "every opening and a NUL fit RELAY_OPEN bytes");

static inline void add_open(char **o, const char open[RELAY_OPEN], size_t n)
{
#if defined(__SSE2__)
    /* As three vector moves spelt out: the compiler turned a memcpy of these 48 bytes, and a
     * loop of the moves, into a counted string move (rep movsl) too. */
    __m128i a = _mm_loadu_si128((const __m128i *)(const void *)open),
            b = _mm_loadu_si128((const __m128i *)(const void *)(open + 16)),
            c = _mm_loadu_si128((const __m128i *)(const void *)(open + 32));
    _mm_storeu_si128((__m128i *)(void *)*o, a);
    _mm_storeu_si128((__m128i *)(void *)(*o + 16), b);
    _mm_storeu_si128((__m128i *)(void *)(*o + 32), c);
    _Static_assert(RELAY_OPEN == 48, "three moves of sixteen bytes");
#else
    memcpy(*o, open, RELAY_OPEN);
#endif
    *o += n;
}

/*
 * The relay's frame (signal.h): the builder's bytes for the same message, written without its
 * table walk, checks and escapes. Each member is written as write_fields writes the server
 * table's row (s_offer, s_answer, s_cand in tables.c), in its order; a string of the client's
 * frame goes out as it came, as the parse checked it against the client's row at the same place
 * with the same limits (test_build_relay.c checks the tables agree, and the bytes against the
 * builder's). Its length is counted first, so the frame is refused (AR_ETOOBIG) at exactly the
 * size the builder refuses it at. The peer, the one string the server puts in, is checked as the
 * builder checks it; any other string not in the frame leaves the message to the builder.
 */
int ar_sig_build_relay(const ar_sig_msg_t *msg, char *out, size_t cap)
{
    if (msg == NULL || out == NULL || cap == 0 || msg->flat_ == NULL ||
        msg->dir_ != AR_SIG_FROM_CLIENT || msg->seq != 0 || msg->fid.len != 0)
        return 0;
    /* Each type's opening, up to the peer's value, in RELAY_OPEN bytes (zero after it). */
    static const char offer[RELAY_OPEN] = "{\"v\":1,\"type\":\"offer\",\"seq\":0,\"from\":\"",
                      answer[RELAY_OPEN] = "{\"v\":1,\"type\":\"answer\",\"seq\":0,\"from\":\"",
                      cand[RELAY_OPEN] = "{\"v\":1,\"type\":\"candidate\",\"seq\":0,\"from\":\"";
    static const char k_sdp[] = "\",\"sdp\":\"", restart[] = ",\"restart\":true",
                      k_cand[] = "\",\"candidate\":\"", k_mid[] = ",\"mid\":\"",
                      k_mline[] = ",\"mline\":", k_ufrag[] = ",\"ufrag\":\"";
    const ar_sig_str_t *peer;
    size_t n;
    char mline[3];
    size_t ml = 0;
    switch (msg->type) {
    case AR_SIG_OFFER:
    case AR_SIG_ANSWER: {
        const ar_sig_str_t *sdp = &msg->u.sdp.sdp;
        if (!in_flat_frame(msg, sdp) || sdp->len == 0)
            return 0;
        peer = &msg->u.sdp.peer;
        int restarts = msg->type == AR_SIG_OFFER && msg->u.sdp.restart;
        n = (msg->type == AR_SIG_OFFER ? OPEN_LEN(offer) : OPEN_LEN(answer)) + peer->len +
            sizeof(k_sdp) - 1 + sdp->len + 1 + (restarts ? sizeof(restart) - 1 : 0) + 1;
        break;
    }
    case AR_SIG_CANDIDATE: {
        const ar_sig_str_t *c = &msg->u.cand.candidate, *mid = &msg->u.cand.mid,
                           *ufrag = &msg->u.cand.ufrag;
        int64_t line = msg->u.cand.mline;
        if (!in_flat_frame(msg, c) || c->len > AR_SIG_CAND_MAX ||
            !opt_in_frame(msg, mid, 1, AR_SIG_MID_MAX) ||
            !opt_in_frame(msg, ufrag, 1, AR_SIG_UFRAG_MAX) ||
            (line != AR_SIG_NONE && (line < 0 || line > 255)))
            return 0;
        if (line != AR_SIG_NONE) { /* 0 to 255, as put_int writes it */
            int v = (int)line;
            if (v >= 100)
                mline[ml++] = (char)('0' + v / 100);
            if (v >= 10)
                mline[ml++] = (char)('0' + v / 10 % 10);
            mline[ml++] = (char)('0' + v % 10);
        }
        peer = &msg->u.cand.peer;
        n = OPEN_LEN(cand) + peer->len + sizeof(k_cand) - 1 + c->len + 1 +
            (mid->p ? sizeof(k_mid) - 1 + mid->len + 1 : 0) + (ml ? sizeof(k_mline) - 1 + ml : 0) +
            (ufrag->p ? sizeof(k_ufrag) - 1 + ufrag->len + 1 : 0) + 1;
        break;
    }
    default:
        return 0;
    }
    /* The peer: as the builder checks it (its row is "from", an id). */
    if (peer->p == NULL || peer->len < 1 || peer->len > AR_SIG_ID_MAX ||
        !ar__sig_charset_ok(AR__CS_ID, peer->p, peer->len))
        return 0;
    if (n > cap - 1 || n > AR_SIG_OUT_MAX)
        return AR_ETOOBIG;
    char *o = out;
    if (msg->type == AR_SIG_CANDIDATE) {
        const ar_sig_str_t *c = &msg->u.cand.candidate, *mid = &msg->u.cand.mid,
                           *ufrag = &msg->u.cand.ufrag;
        add_open(&o, cand, OPEN_LEN(cand));
        add(&o, peer->p, peer->len);
        ADD_LIT(&o, k_cand);
        add(&o, c->p, c->len);
        *o++ = '"';
        if (mid->p) {
            ADD_LIT(&o, k_mid);
            add(&o, mid->p, mid->len);
            *o++ = '"';
        }
        if (ml) {
            ADD_LIT(&o, k_mline);
            add(&o, mline, ml);
        }
        if (ufrag->p) {
            ADD_LIT(&o, k_ufrag);
            add(&o, ufrag->p, ufrag->len);
            *o++ = '"';
        }
    } else {
        if (msg->type == AR_SIG_OFFER)
            add_open(&o, offer, OPEN_LEN(offer));
        else
            add_open(&o, answer, OPEN_LEN(answer));
        add(&o, peer->p, peer->len);
        ADD_LIT(&o, k_sdp);
        add(&o, msg->u.sdp.sdp.p, msg->u.sdp.sdp.len);
        *o++ = '"';
        if (msg->type == AR_SIG_OFFER && msg->u.sdp.restart)
            ADD_LIT(&o, restart);
    }
    *o++ = '}';
    *o = '\0';
    return (int)n;
}
