/*
 * Local sessions: numbering and the replay buffer on the owner, its mirror on one backup worker
 * of another node, the end of a session, and the grace period.
 *
 * Why a backup: a node may die (kill -9) while its clients' peers keep sending them offers and
 * candidates. Frames for a session travel on ar.<jur>.to.<peer>, which both the owner and the
 * backup subscribe to. The owner numbers each frame, sends it, keeps it until acknowledged, and
 * copies the numbered frame to the backup (one publisher, so the backup sees them in order).
 * The backup also keeps, by frame id, whatever it received on to.<peer> that the owner has not
 * confirmed yet: if the owner dies, the backup numbers those after the last confirmed one, so a
 * client resuming there gets every frame once and in order (docs/signal.md, "Resume").
 */
#include "internal.h"

#include "anteroom/alloc.h"
#include "anteroom/log.h"
#include "anteroom/rand.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

void ar__sig_subhash(const ar_token_claims_t *claims, uint8_t out[16])
{
    /* A resume must come with a token of the same subject; we keep a hash, not the subject. */
    crypto_generichash(out, 16, (const uint8_t *)claims->sub, strlen(claims->sub), NULL, 0);
}

int ar__sig_hex16(const char *hex, uint8_t out[16])
{
    uint8_t b[16];
    if (!hex || strlen(hex) != 32 || sodium_hex2bin(b, 16, hex, 32, NULL, NULL, NULL) != 0)
        return -1;
    memcpy(out, b, 16);
    return 0;
}

const ar__sig_sess_cold_t ar__sig_no_cold; /* all zero: no frames, no loss, no slots */

ar__sig_sess_cold_t *ar__sig_sess_cold(ar__sig_sess_t *s)
{
    if (ar__sig_sess_has_cold(s))
        return s->cold;
    ar__sig_sess_cold_t *c = ar_calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    s->cold = c;
    return c;
}

/* s's cold part goes when nothing in it is in use any more (the once-a-second sweep): a backup
 * catches each frame for its session as pending until the owner's numbered copy comes, and a
 * session promoted or handed over keeps a worker in it for a while; idle again, they would
 * otherwise keep the part for good. Candidate counts keep it (a call's peers relay some), and so
 * do a subscription of its own and the time it went away while that is read. */
static void cold_trim(ar__sig_sess_t *s)
{
    const ar__sig_sess_cold_t *c = s->cold;
    if (c->pending || c->lost || s->has_prev || s->handed || (s->promoted && c->prev_owner) ||
        c->sub_to)
        return;
    /* away_since is read while an owner's copy has no client (ar__sig_sess_tick), and while
     * handed or provisional. */
    if (s->provisional || (!s->is_backup && !s->conn))
        return;
    for (size_t i = 0; i < AR__SIG_ROOM_MAX - 1; i++)
        if (c->cand[i].peer[0])
            return;
    ar_free_wiped(s->cold);
    s->cold = (ar__sig_sess_cold_t *)&ar__sig_no_cold;
}

void ar__sig_sess_away_now(ar__sig_sess_t *s, uint32_t now)
{
    ar__sig_sess_cold_t *c = ar__sig_sess_cold(s);
    if (c)
        c->away_since = now;
    else
        ar_log0(AR_LOG_WARN, "signal_away_unnoted"); /* its wait is over at the next sweep */
}

void ar__sig_sess_new_resume(ar__sig_sess_t *s)
{
    randombytes_buf(s->secret, sizeof(s->secret)); /* 120 bits */
    s->has_secret = 1;
}

void ar__sig_sess_resume_text(const ar__sig_sess_t *s, char out[AR__SIG_RESUME_LEN + 1])
{
    memset(out, 0, AR__SIG_RESUME_LEN + 1); /* all of it read by secret_ok's compare */
    if (!s->has_secret)
        return;
    memcpy(out, s->rec->peer, AR__SIG_PEER_LEN);
    out[AR__SIG_PEER_LEN] = '.';
    /* 15 bytes make 20 characters exactly, and any 20 characters of the alphabet 15 bytes: the
     * text round-trips through ar__sig_sess_resume_set whatever it is. */
    sodium_bin2base64(out + AR__SIG_PEER_LEN + 1, AR__SIG_RESUME_LEN - AR__SIG_PEER_LEN, s->secret,
                      AR__SIG_SECRET_LEN, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

int ar__sig_sess_resume_set(ar__sig_sess_t *s, const char *text)
{
    const char *tail = text + AR__SIG_PEER_LEN + 1;
    size_t got = 0;
    sodium_memzero(s->secret, sizeof(s->secret));
    s->has_secret = 0;
    if (strlen(text) != AR__SIG_RESUME_LEN || memcmp(text, s->rec->peer, AR__SIG_PEER_LEN) != 0 ||
        text[AR__SIG_PEER_LEN] != '.' ||
        sodium_base642bin(s->secret, sizeof(s->secret), tail,
                          AR__SIG_RESUME_LEN - AR__SIG_PEER_LEN - 1, NULL, &got, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        got != AR__SIG_SECRET_LEN) {
        sodium_memzero(s->secret, sizeof(s->secret));
        return AR_EINVAL;
    }
    s->has_secret = 1;
    return 0;
}

static void prev_hash(const char *resume, uint8_t out[AR__SIG_PREV_LEN])
{
    uint8_t h[crypto_generichash_BYTES_MIN];
    crypto_generichash(h, sizeof(h), (const uint8_t *)resume, AR__SIG_RESUME_LEN, NULL, 0);
    memcpy(out, h, AR__SIG_PREV_LEN);
    sodium_memzero(h, sizeof(h));
}

/*
 * What is kept is the secret the client presented, whichever of the two it was: a client holds
 * either that one (the welcome with the new secret was lost) or the new one, never the secret
 * it did not present. So after two lost welcomes in a row (A presented, welcome B lost; A
 * presented again, welcome C lost) A still works and B does not, which the client never had;
 * a client that got C and presents it makes C the kept one and A goes. Only a hash is kept:
 * 64 bits, checked only with a signed token of the same subject, online, within the grace
 * period and until the client's first frame, against 120 bits for the current secret.
 */
int ar__sig_sess_rotate_resume(ar__sig_sess_t *s, const char *presented)
{
    ar__sig_sess_cold_t *c = ar__sig_sess_cold(s);
    if (!c) {
        /* Nowhere to keep the presented secret: it stays the only one (it is the client's). A
         * session with a previous secret has its cold part already: the presented one may be
         * that previous one, so it is set, not assumed. */
        ar__sig_sess_prev_wipe(s);
        (void)ar__sig_sess_resume_set(s, presented);
        return AR_ENOMEM;
    }
    prev_hash(presented, c->prev_resume);
    s->has_prev = 1;
    ar__sig_sess_new_resume(s);
    return 0;
}

void ar__sig_sess_prev_wipe(ar__sig_sess_t *s)
{
    if (ar__sig_sess_has_cold(s))
        sodium_memzero(s->cold->prev_resume, sizeof(s->cold->prev_resume));
    s->has_prev = 0;
}

int ar__sig_sess_secret_ok(const ar__sig_sess_t *s, const char *resume, const uint8_t subhash[16])
{
    if (strlen(resume) != AR__SIG_RESUME_LEN)
        return 0;
    uint8_t h[AR__SIG_PREV_LEN];
    char mine[AR__SIG_RESUME_LEN + 1];
    prev_hash(resume, h);
    ar__sig_sess_resume_text(s, mine);
    /* All compared whatever the first gives, so that the time taken does not tell which. */
    int cur = sodium_memcmp(resume, mine, AR__SIG_RESUME_LEN) == 0 && s->has_secret;
    int prev = sodium_memcmp(h, s->cold->prev_resume, AR__SIG_PREV_LEN) == 0 && s->has_prev;
    int sub = sodium_memcmp(subhash, s->subhash, 16) == 0;
    sodium_memzero(h, sizeof(h));
    sodium_memzero(mine, sizeof(mine));
    return (cur | prev) & sub;
}

void ar__sig_sess_resume_confirmed(ar__sig_srv_t *srv, ar__sig_sess_t *s)
{
    if (!s->has_prev)
        return;
    ar__sig_sess_prev_wipe(s);
    /* The backup forgets it too: promoted, it would otherwise still take a secret the client
     * has replaced. Ordered after the "adopt" or "res" that brought it (one publisher). */
    if (s->rec->backup)
        ar__sig_bus_proc(srv, s->rec->backup,
                         json_pack("{s:s,s:s}", "k", "got", "p", s->rec->peer));
}

void ar__sig_sess_prev_put(const ar__sig_sess_t *s, void *o)
{
    if (!o || !s->has_prev)
        return;
    char hex[2 * AR__SIG_PREV_LEN + 1];
    sodium_bin2hex(hex, sizeof(hex), s->cold->prev_resume, AR__SIG_PREV_LEN);
    (void)json_object_set_new(o, "q", json_string(hex));
    sodium_memzero(hex, sizeof(hex));
}

void ar__sig_sess_prev_get(ar__sig_sess_t *s, const void *o)
{
    const char *hex = json_string_value(json_object_get(o, "q"));
    uint8_t h[AR__SIG_PREV_LEN];
    ar__sig_sess_cold_t *c;
    ar__sig_sess_prev_wipe(s);
    if (hex && strlen(hex) == 2 * (size_t)AR__SIG_PREV_LEN &&
        sodium_hex2bin(h, sizeof(h), hex, strlen(hex), NULL, NULL, NULL) == 0) {
        if ((c = ar__sig_sess_cold(s))) {
            memcpy(c->prev_resume, h, sizeof(h));
            s->has_prev = 1;
        } else {
            ar_log0(AR_LOG_WARN, "signal_prev_secret_no_memory");
        }
    }
    sodium_memzero(h, sizeof(h));
}

static void frame_free_list(ar__sig_srv_t *srv, ar__sig_frame_t *f)
{
    while (f) {
        ar__sig_frame_t *n = f->next;
        ar__sig_about_count(srv, f, -1);
        ar__sig_frame_release(srv, f); /* wiped, whole */
        f = n;
    }
}

/* Whether a connection of this worker is resuming into s (its attempt still points at it). */
int ar__sig_sess_resuming(ar__sig_srv_t *srv, const ar__sig_sess_t *s)
{
    for (ar__sig_conn_t *cn = srv->resuming; cn; cn = ar__sig_conn_next_resuming(cn))
        if (cn->state == AR__SIG_C_RESUMING && cn->sess == s)
            return 1;
    return 0;
}

void ar__sig_sess_free(ar__sig_srv_t *srv, ar__sig_sess_t *s)
{
    ar__sig_bus_unsub_to(srv, s);
    if (s->lprev)
        s->lprev->lnext = s->lnext;
    else if (srv->locals == s)
        srv->locals = s->lnext;
    if (s->lnext)
        s->lnext->lprev = s->lprev;
    if (s->conn)
        s->conn->sess = NULL;
    /* A client resuming into it (its record deleted, the owner ended it) finds none at its
     * attempt's next look and fails it, instead of reading freed memory. Only for a session a
     * connection resumed into: not a walk of the connections for every session that ends. */
    if (s->resumed)
        for (ar__sig_conn_t *cn = srv->resuming; cn; cn = ar__sig_conn_next_resuming(cn))
            if (cn->state == AR__SIG_C_RESUMING && cn->sess == s)
                cn->sess = NULL;
    frame_free_list(srv, s->head);
    if (ar__sig_sess_has_cold(s)) {
        frame_free_list(srv, s->cold->pending);
        ar_free_wiped(s->cold); /* the previous secret's hash with it */
    }
    ar__sig_claims_free(s->claims);
    if (!s->is_backup && srv->nsessions)
        srv->nsessions--;
    s->rec->local = NULL;
    ar_free_wiped(s);
}

ar__sig_sess_t *ar__sig_sess_link_new(ar__sig_srv_t *srv, ar__sig_rec_t *r, int backup)
{
    ar__sig_sess_t *s = ar_calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->rec = r;
    s->cold = (ar__sig_sess_cold_t *)&ar__sig_no_cold; /* read only until ar__sig_sess_cold */
    s->is_backup = backup != 0;
    r->local = s;
    s->lnext = srv->locals;
    if (srv->locals)
        srv->locals->lprev = s;
    srv->locals = s;
    if (!backup)
        srv->nsessions++;
    return s;
}

ar__sig_sess_t *ar__sig_sess_local_new(ar__sig_srv_t *srv, ar__sig_rec_t *r, int backup, int *err)
{
    int rc = AR_ENOMEM;
    ar__sig_sess_t *s = ar__sig_sess_link_new(srv, r, backup);
    if (s && (rc = ar__sig_bus_sub_to(srv, s)) != 0) {
        ar__sig_sess_free(srv, s);
        s = NULL;
    }
    if (err)
        *err = s ? 0 : rc;
    return s;
}

void *ar__sig_frames_json(const ar__sig_sess_t *s)
{
    json_t *a = json_array();
    char hex[33];
    for (const ar__sig_frame_t *f = s->head; f && a; f = f->next) {
        sodium_bin2hex(hex, sizeof(hex), f->fid, 16);
        /* A fifth item marks an uncertain frame (promote); older workers ignore it. */
        json_t *it = json_pack("[I,s,i,s%]", (json_int_t)f->seq, hex, (int)f->action, f->data,
                               (size_t)f->len);
        if (it && f->uncertain)
            json_array_append_new(it, json_integer(1));
        json_array_append_new(a, it);
    }
    return a;
}

/* about: the frame's about tag when its builder knows it, else AR__SIG_ABOUT_READ. */
static ar__sig_frame_t *frame_new(ar__sig_srv_t *srv, const uint8_t *fid, int64_t seq,
                                  uint8_t action, const char *data, size_t len, int about)
{
    ar__sig_frame_t *f = ar__sig_frame_alloc(srv, len);
    if (!f)
        return NULL;
    f->next = NULL;
    f->seq = seq;
    memcpy(f->fid, fid, 16);
    f->action = action;
    f->uncertain = 0;
    f->len = (uint32_t)len;
    memcpy(f->data, data, len);
    f->data[len] = '\0';
    ar__sig_about_tag(srv, f, about);
    return f;
}

/* Drops acknowledged frames, then the oldest beyond the caps (a resume needing them fails). */
static void trim(ar__sig_srv_t *srv, ar__sig_sess_t *s)
{
    while (s->head && (s->head->seq <= s->acked || s->nframes > AR__SIG_REPLAY_FRAMES ||
                       s->bytes > AR__SIG_REPLAY_BYTES)) {
        ar__sig_frame_t *f = s->head;
        s->head = f->next;
        if (!s->head)
            s->tail = NULL;
        s->nframes--;
        s->bytes -= f->len;
        f->next = NULL;
        frame_free_list(srv, f);
    }
}

static void append(ar__sig_srv_t *srv, ar__sig_sess_t *s, ar__sig_frame_t *f)
{
    if (s->tail)
        s->tail->next = f;
    else
        s->head = f;
    s->tail = f;
    s->nframes++;
    s->bytes += f->len;
    /* Only the caps: every acknowledgement trims what it covers at once (ar__sig_sess_ack and
     * the other writers of acked trim after), and a new frame is numbered above acked, so the
     * oldest frame, a block apart that a relay would otherwise read, cannot be due here. */
    if (s->nframes > AR__SIG_REPLAY_FRAMES || s->bytes > AR__SIG_REPLAY_BYTES)
        trim(srv, s);
}

/* Removes a pending frame with this id; 1 when there was one. */
static int pending_take(ar__sig_srv_t *srv, ar__sig_sess_t *s, const uint8_t *fid)
{
    ar__sig_frame_t *prev = NULL;
    ar__sig_sess_cold_t *c = s->cold; /* written only when it holds the frame: its own then */
    for (ar__sig_frame_t *f = c->pending; f; prev = f, f = f->next) {
        if (memcmp(f->fid, fid, 16) != 0)
            continue;
        if (prev)
            prev->next = f->next;
        else
            c->pending = f->next;
        if (c->pending_tail == f)
            c->pending_tail = prev;
        c->npending--;
        f->next = NULL;
        frame_free_list(srv, f);
        return 1;
    }
    return 0;
}

static int numbered_has(const ar__sig_sess_t *s, const uint8_t *fid)
{
    for (const ar__sig_frame_t *f = s->head; f; f = f->next)
        if (memcmp(f->fid, fid, 16) == 0)
            return 1;
    return 0;
}

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Three bytes as four base64url characters. */
static void b64_group(const uint8_t *in, char *out)
{
    uint32_t v = (uint32_t)in[0] << 16 | (uint32_t)in[1] << 8 | in[2];
    out[0] = b64url[v >> 18];
    out[1] = b64url[(v >> 12) & 63];
    out[2] = b64url[(v >> 6) & 63];
    out[3] = b64url[v & 63];
}

/*
 * The last fid this thread (a worker) made text of, and that text. The fids a worker numbers are
 * nearly all its own, made in bus.c: bytes 0-7 its node id, 8-15 a counter, little-endian, so
 * that one differs from the last in byte 8 and only now and then in bytes 9-15. The characters
 * of bytes 0-5 (0-7) and of bytes 9-15 (12-21) are then the last text's. The fid is kept as two
 * words (bytes 0-7, 8-15), so that "only byte 8 differs", the case of nearly every frame, is two
 * comparisons of words, and then only the characters of bytes 6-8 (8-11) are made anew.
 */
static _Thread_local uint64_t last_fid[2];
static _Thread_local char last_text[AR__SIG_FID_LEN];
static _Thread_local int have_last;

/* Any other fid than one whose byte 8 alone differs from the last: apart, so that the common case
 * (ar__sig_fid_text) saves and restores none of the registers this one needs. w0, w1: the fid's
 * words, passed as values (an array's address would cost the caller a stack guard). */
__attribute__((noinline)) static void
fid_text_anew(const uint8_t fid[16], char out[AR__SIG_FID_LEN], uint64_t w0, uint64_t w1)
{
    /* Five groups of three bytes make 20 characters; the sixteenth byte makes the last two. */
    const uint8_t *last = (const uint8_t *)last_fid;
    if (have_last && memcmp(fid, last, 6) == 0) {
        memcpy(out, last_text, 8);
    } else {
        b64_group(fid, out);
        b64_group(fid + 3, out + 4);
    }
    b64_group(fid + 6, out + 8);
    if (have_last && memcmp(fid + 9, last + 9, 7) == 0) {
        memcpy(out + 12, last_text + 12, 10);
    } else {
        b64_group(fid + 9, out + 12);
        b64_group(fid + 12, out + 16);
        out[20] = b64url[fid[15] >> 2];
        out[21] = b64url[(fid[15] & 3) << 4];
    }
    last_fid[0] = w0;
    last_fid[1] = w1;
    memcpy(last_text, out, AR__SIG_FID_LEN);
    have_last = 1;
}

void ar__sig_fid_text(const uint8_t fid[16], char out[AR__SIG_FID_LEN])
{
    /* The bits of byte 8 in the word of bytes 8-15, whatever the byte order. */
    static const uint8_t byte8[8] = {0xff};
    uint64_t w0, w1, b8;
    memcpy(&w0, fid, 8);
    memcpy(&w1, fid + 8, 8);
    memcpy(&b8, byte8, 8);
    if (have_last && w0 == last_fid[0] && ((w1 ^ last_fid[1]) & ~b8) == 0) {
        /* Neither byte 8 of last_fid nor characters 8-11 of last_text are ever read (both
         * are made anew, here and in fid_text_anew), so neither is kept. */
        memcpy(out, last_text, AR__SIG_FID_LEN);
        b64_group(fid + 6, out + 8);
        return;
    }
    fid_text_anew(fid, out, w0, w1);
}

/* The first '"' or NUL in [p, end), or end: the end of a frame's type, whose first sixteen bytes
 * (every type the server builds) are looked at together where SSE2 is. */
static const char *quote_or_nul(const char *p, const char *end)
{
#if defined(__SSE2__)
    if (end - p >= 16) {
        __m128i w = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i hit = _mm_or_si128(_mm_cmpeq_epi8(w, _mm_set1_epi8('"')),
                                   _mm_cmpeq_epi8(w, _mm_setzero_si128()));
        unsigned m = (unsigned)_mm_movemask_epi8(hit);
        if (m)
            return p + __builtin_ctz(m);
        p += 16;
    }
#endif
    while (p < end && *p != '"' && *p != '\0')
        p++;
    return p;
}

/* Where a frame's ",\"seq\":0" is, as strstr finds it (the first, before any NUL): straight
 * after its type in every frame the server builds ({"v":1,"type":"<type>","seq":0,...}), looked
 * for through the whole frame only if it is not there. A NUL in the type (a bus peer's frame;
 * the fuzzer's) leaves it to strstr, which then finds none, as before. */
static const char *seq_placeholder(const ar__sig_frame_t *f)
{
    static const char pre[] = "{\"v\":1,\"type\":\"", seq0[] = ",\"seq\":0";
    size_t pl = sizeof(pre) - 1, sl = sizeof(seq0) - 1;
    if (f->len > pl && memcmp(f->data, pre, pl) == 0) {
        const char *end = f->data + f->len, *q = quote_or_nul(f->data + pl, end);
        if (q < end && *q == '"' && (size_t)(end - q) > sl && memcmp(q + 1, seq0, sl) == 0)
            return q + 1;
    }
    return strstr(f->data, seq0);
}

/* v in decimal, its last digit just before end (no NUL): where its first digit is. Two digits
 * at a time: this runs for every relayed frame. */
static char *put_decimal(char *end, uint64_t v)
{
    static const char pairs[] = "00010203040506070809101112131415161718192021222324"
                                "25262728293031323334353637383940414243444546474849"
                                "50515253545556575859606162636465666768697071727374"
                                "75767778798081828384858687888990919293949596979899";
    char *p = end;
    for (; v >= 100; v /= 100) {
        p -= 2;
        memcpy(p, pairs + 2 * (v % 100), 2);
    }
    if (v >= 10) {
        p -= 2;
        memcpy(p, pairs + 2 * v, 2);
    } else {
        *--p = (char)('0' + v);
    }
    return p;
}

size_t ar__sig_frame_wire(const ar__sig_frame_t *f, char *out, size_t cap)
{
    static const char key[] = ",\"fid\":\"";
    const char *ph = seq_placeholder(f);
    if (!ph)
        return 0;
    /* Spliced with copies rather than printf: this runs for every relayed frame. The frame id
     * goes next to seq: the client drops a frame whose fid it has processed (5.10.1). */
    size_t pre = (size_t)(ph - f->data) + 7, post = f->len - pre - 1;
    /* The seq's digits written where they go, counted first: no copy of them. */
    uint64_t seq = f->seq > 0 ? (uint64_t)f->seq : 0;
    size_t nl = 1;
    for (uint64_t p = 10; seq >= p && nl < 20; p *= 10) /* 20: UINT64_MAX's */
        nl++;
    size_t kl = sizeof(key) - 1, n = pre + nl + kl + AR__SIG_FID_LEN + 1 + post;
    if (n > cap)
        return 0;
    char *o = out;
    memcpy(o, f->data, pre);
    o += pre;
    (void)put_decimal(o + nl, seq);
    o += nl;
    memcpy(o, key, kl);
    o += kl;
    ar__sig_fid_text(f->fid, o);
    o += AR__SIG_FID_LEN;
    *o++ = '"';
    memcpy(o, f->data + pre + 1, post);
    return n;
}

/* Writes frame f to the live connection, numbered and with its frame id. */
static void send_numbered(ar__sig_srv_t *srv, ar__sig_sess_t *s, const ar__sig_frame_t *f)
{
    if (!s->conn || s->conn->state != AR__SIG_C_LIVE)
        return;
    /* Numbered behind room for the WebSocket header: sent without another copy. */
    char *wire = srv->out + AR_SN_SEND_ROOM;
    size_t n = ar__sig_frame_wire(f, wire, sizeof(srv->out) - AR_SN_SEND_ROOM);
    if (n && ar_sn_send_room(s->conn->c, AR_WS_OP_TEXT, (uint8_t *)srv->out, n) == 0) {
        s->conn->last_tx = srv->now;
        ar_metric_add(srv->m.msgs_out, 0, 1);
    }
}

/* What the owner does besides delivering a frame with this action (RESET_CAND: own_frame). May
 * end s, and free it and its record: nothing of them is read after. */
static void frame_action(ar__sig_srv_t *srv, ar__sig_sess_t *s, uint8_t action)
{
    if (action == AR__SIG_ACT_ENDED && s->rec->role != AR_SIG_ROLE_STAFF) {
        /* The consultation is over: the patient's or invitee's session goes with it (P5). */
        ar__sig_sess_close_conn(s, AR_SIG_CLOSE_ENDED);
        ar__sig_rec_publish(srv, s->rec, "del");
    } else if (action == AR__SIG_ACT_REMOVED) {
        ar__sig_removed_apply(srv, s);
    }
}

void ar__sig_sess_removals_settled(ar__sig_sess_t *s)
{
    for (ar__sig_frame_t *f = s->head; f; f = f->next)
        if (f->action == AR__SIG_ACT_REMOVED)
            f->action = AR__SIG_ACT_NONE;
}

/* Owner: number a frame, keep it, send it, mirror it. */
static void own_frame(ar__sig_srv_t *srv, ar__sig_sess_t *s, const uint8_t *fid, uint8_t action,
                      const char *frame, size_t len, int about)
{
    /* A removal from a room the member is no longer in is only delivered (remove.c). One that
     * applies is applied now: the copy kept here says NONE, so that no later holder of it (a
     * hand-over, a new backup) applies it again once the member is back in that room. The
     * backup's copy says what was done, for the owner may die before the room change it
     * makes is published (ending_action). */
    uint8_t act = action;
    if (action == AR__SIG_ACT_REMOVED && ar__sig_removal_for(s, frame, len) == AR__SIG_RM_ELSEWHERE)
        act = AR__SIG_ACT_NONE;
    uint8_t kept = act == AR__SIG_ACT_REMOVED ? AR__SIG_ACT_NONE : act;
    ar__sig_frame_t *f = frame_new(srv, fid, ++s->seq, kept, frame, len, about);
    if (!f)
        return;
    /* A promoted copy numbers after its own count, which can be below what the dead owner sent
     * the client (copies still in their batch): until the client resumes, its new frames are
     * uncertain too, so that the resume replays them whatever its last_seq (5.10.1). */
    f->uncertain = s->promoted;
    append(srv, s, f);
    if (act == AR__SIG_ACT_RESET_CAND && ar__sig_sess_has_cold(s)) /* else none to reset */
        memset(s->cold->cand, 0, sizeof(s->cold->cand));
    send_numbered(srv, s, f);
    /* Batched with the other copies for that worker (bus.c); none without a live backup. */
    if (s->rec->backup && ar__sig_node_alive(srv, s->rec->backup))
        ar__sig_bus_num(srv, s->rec->backup, s->rec->peer, s->seq, fid, act, frame, len);
    frame_action(srv, s, act); /* may end s: nothing after */
}

void ar__sig_sess_deliver(ar__sig_srv_t *srv, ar__sig_sess_t *s, const uint8_t *fid, uint8_t action,
                          const char *frame, size_t len, uint64_t sent_us)
{
    ar__sig_sess_deliver_about(srv, s, fid, action, frame, len, sent_us, AR__SIG_ABOUT_READ);
}

void ar__sig_sess_deliver_about(ar__sig_srv_t *srv, ar__sig_sess_t *s, const uint8_t *fid,
                                uint8_t action, const char *frame, size_t len, uint64_t sent_us,
                                int about)
{
    if (s->is_backup) {
        if (numbered_has(s, fid))
            return;
        /* Without memory for the list or the frame, the frame is not kept, as before the cold
         * part: the owner's numbered copy brings it, unless the owner dies first. */
        ar__sig_sess_cold_t *c = ar__sig_sess_cold(s);
        ar__sig_frame_t *f = c ? frame_new(srv, fid, 0, action, frame, len, about) : NULL;
        if (!f)
            return;
        if (c->pending_tail)
            c->pending_tail->next = f;
        else
            c->pending = f;
        c->pending_tail = f;
        /* Bounded like the replay buffer: a session away too long loses its oldest frames. */
        if (++c->npending > AR__SIG_REPLAY_FRAMES) {
            ar__sig_frame_t *old = c->pending;
            c->pending = old->next;
            old->next = NULL;
            frame_free_list(srv, old);
            c->npending--;
        }
        return;
    }
    /* 0: delivered as it was sent (a local relay, bus.c), no latency to observe. */
    uint64_t now = sent_us ? ar__sig_now_us() : 0;
    if (sent_us && now >= sent_us)
        ar_metric_observe(srv->m.relay_us, 0, (double)(now - sent_us));
    own_frame(srv, s, fid, action, frame, len, about);
}

void ar__sig_sess_close_conn(ar__sig_sess_t *s, uint16_t code)
{
    ar__sig_conn_t *cn = s->conn;
    if (cn) {
        s->conn = NULL;
        cn->sess = NULL;
        ar__sig_conn_close(cn, code);
    }
}

/* After a hand-over: frames that reached us but not the old owner are numbered now. */
void ar__sig_sess_flush_pending(ar__sig_srv_t *srv, ar__sig_sess_t *s)
{
    if (!ar__sig_sess_has_cold(s))
        return; /* none pending */
    ar__sig_frame_t *p = s->cold->pending;
    s->cold->pending = s->cold->pending_tail = NULL;
    s->cold->npending = 0;
    ar__sig_rec_t *r = s->rec;
    while (p) {
        ar__sig_frame_t *n = p->next;
        p->next = NULL;
        int gone = 0;
        if (!numbered_has(s, p->fid)) {
            /* An "ended" or "removed" frame deletes a patient's or invitee's session, r and s
             * with it: known before, and nothing of them read after. */
            gone = (p->action == AR__SIG_ACT_ENDED || p->action == AR__SIG_ACT_REMOVED) &&
                   r->role != AR_SIG_ROLE_STAFF;
            /* The same body: the same tag as the pending copy's. */
            own_frame(srv, s, p->fid, p->action, p->data, p->len, p->about);
        }
        frame_free_list(srv, p);
        p = n;
        if (gone) {
            frame_free_list(srv, p);
            return;
        }
    }
}

void ar__sig_sess_ack(ar__sig_srv_t *srv, ar__sig_sess_t *s, int64_t seq)
{
    if (seq <= s->acked || seq > s->seq)
        return;
    s->acked = seq;
    trim(srv, s);
    /* Acknowledgements come every 32 frames of a relay: no JSON for a backup that is not there. */
    if (s->rec->backup && ar__sig_node_alive(srv, s->rec->backup))
        ar__sig_bus_proc(
            srv, s->rec->backup,
            json_pack("{s:s,s:s,s:I}", "k", "ack", "p", s->rec->peer, "s", (json_int_t)seq));
}

int ar__sig_sess_resumable(const ar__sig_sess_t *s, int64_t last)
{
    /* A promoted backup may lag the client by the frames whose numbered copies were still on
     * their way when the owner died (a local frame's copy leaves after the frame reached the
     * client): the client has them, so they count as delivered. At most a replay buffer's
     * worth, so a client cannot move the numbering far. */
    if (s->promoted && last > s->seq && last - s->seq <= AR__SIG_REPLAY_FRAMES)
        return 1;
    return last >= 0 && last <= s->seq && (last == s->seq || (s->head && s->head->seq <= last + 1));
}

int ar__sig_replay_to(ar__sig_sess_t *s, int64_t after, ar__sig_frame_cb *cb, void *arg)
{
    /* After a promotion the numbers at or below the client's last_seq may name other frames
     * than those it got from the dead owner: the uncertain ones go again, once; the client
     * drops those whose fid it has (protocol.md 5.10.1). All go in the order of their numbers,
     * with the frames above last_seq: the backup numbered each sender's frames in that
     * sender's order, so a frame the client never got still comes before the later frames of
     * its sender. Only the first complete replay clears their marks, here and (by "res" or
     * "adopt") on the backup: when the connection goes during the replay, even the frames
     * already written may never have left the send buffer, so the next resume sends them all
     * again. */
    int n = 0;
    for (ar__sig_frame_t *f = s->head; f; f = f->next) {
        if (f->seq > after || f->uncertain) {
            if (cb(arg, f) != 0)
                return AR_ECLOSED;
            n += f->seq <= after;
        }
    }
    for (ar__sig_frame_t *f = s->head; f; f = f->next)
        f->uncertain = 0;
    return n;
}

typedef struct replay_arg_s {
    ar__sig_srv_t *srv;
    ar__sig_sess_t *s;
} replay_arg_t;

static int replay_cb(void *arg, const ar__sig_frame_t *f)
{
    replay_arg_t *a = arg;
    send_numbered(a->srv, a->s, f);
    return a->s->conn && a->s->conn->state == AR__SIG_C_LIVE ? 0 : AR_ECLOSED;
}

int ar__sig_replay(ar__sig_srv_t *srv, ar__sig_sess_t *s, int64_t after)
{
    if (!s->conn || s->conn->state != AR__SIG_C_LIVE)
        return AR_ECLOSED; /* the welcome did not go: the marks stay for the next resume */
    replay_arg_t a = {srv, s};
    int n = ar__sig_replay_to(s, after, replay_cb, &a);
    if (n > 0)
        ar_log(AR_LOG_INFO, "signal_replay_uncertain", AR_LF_INT("frames", (int64_t)n));
    return n;
}

/* The backup (s->rec->backup, when there is one) gets the resume secret and the buffer. */
static void send_adopt(ar__sig_srv_t *srv, ar__sig_sess_t *s)
{
    if (!s->rec->backup)
        return;
    char hex[33], res[AR__SIG_RESUME_LEN + 1];
    sodium_bin2hex(hex, sizeof(hex), s->subhash, 16);
    ar__sig_sess_resume_text(s, res); /* "r" as the client holds it, as before it was kept raw */
    /* "u": we are a promotion no client has resumed yet, so the frames we number now are
     * uncertain (own_frame), and must be on the backup too, should it be promoted in turn. */
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:o,s:b}", "k", "adopt", "p", s->rec->peer, "r",
                          res, "h", hex, "seq", (json_int_t)s->seq, "ack", (json_int_t)s->acked,
                          "fr", ar__sig_frames_json(s), "u", s->promoted);
    sodium_memzero(res, sizeof(res));
    ar__sig_sess_prev_put(s, o); /* "q": the previous secret, kept until the client's frame */
    ar__sig_bus_proc(srv, s->rec->backup, o);
}

/* Sends the backup everything it needs to take over: the resume secret and the buffer. */
void ar__sig_sess_adopt(ar__sig_srv_t *srv, ar__sig_sess_t *s)
{
    uint64_t old = s->rec->backup;
    s->rec->backup = ar__sig_pick_backup(srv, srv->node_id);
    if (old && old != s->rec->backup && ar__sig_node_alive(srv, old))
        ar__sig_bus_proc(srv, old, json_pack("{s:s,s:s}", "k", "drop", "p", s->rec->peer));
    ar__sig_rec_publish(srv, s->rec, "own");
    send_adopt(srv, s);
}

ar__sig_sess_t *ar__sig_sess_new(ar__sig_srv_t *srv, ar__sig_conn_t *cn,
                                 const ar_token_claims_t *claims)
{
    char peer[AR__SIG_PEER_LEN + 2];
    ar__sig_rec_t *r = NULL;
    for (int i = 0; i < 4 && !r; i++) {
        if (ar_rand_id(peer, sizeof(peer), 16) != AR__SIG_PEER_LEN)
            return NULL;
        if (!ar__sig_rec_find(srv, peer))
            r = ar__sig_rec_get(srv, peer);
    }
    if (!r)
        return NULL;
    /* Token roles and protocol roles share their numbers (1 to 3: internal.h). */
    r->role = (unsigned)claims->role & 3u;
    r->owner = srv->node_id;
    /* Its backup first: the two name its frames' subject for good (bus.c), and the local
     * session below subscribes to it unless we are one of them (we are). */
    r->backup = ar__sig_pick_backup(srv, srv->node_id);
    r->home[0] = ar__sig_worker_tag(r->owner);
    r->home[1] = r->backup ? ar__sig_worker_tag(r->backup) : 0;
    ar__sig_recq_t *q = claims->lang[0] ? ar__sig_rec_q(r) : r->q;
    if (q) /* "": nothing written */
        ar__sig_str_set_personal(&q->lang, claims->lang, AR__SIG_LANG_MAX);
    ar__sig_sess_t *s = ar__sig_sess_local_new(srv, r, 0, NULL);
    if (s)
        s->claims = ar__sig_claims_new(claims);
    if (!s || !s->claims) {
        ar__sig_rec_free(srv, r);
        return NULL;
    }
    ar__sig_subhash(claims, s->subhash);
    ar__sig_sess_new_resume(s);
    s->conn = cn;
    cn->sess = s;
    /* One record update for the new session, backup included: every worker of the
     * jurisdiction applies each update, so a second ("own") would cost them all again. */
    ar__sig_rec_publish(srv, r, "all");
    send_adopt(srv, s);
    return s;
}

/* The owner lost the connection (not by bye). */
void ar__sig_sess_lost(ar__sig_srv_t *srv, ar__sig_sess_t *s, uint16_t code)
{
    s->conn = NULL;
    if (s->rec->owner != srv->node_id) {
        /* Another worker took the session over while this connection lingered (a client that
         * resumed elsewhere before we saw it go): the session is theirs, ours just goes. */
        ar__sig_sess_free(srv, s);
        return;
    }
    /* These closes end the session: the client must not (or cannot usefully) resume. */
    if (code == 1000 || code == AR_SIG_CLOSE_BAD_TOKEN || code == AR_SIG_CLOSE_GARBAGE ||
        code == AR_SIG_CLOSE_ROOM_FULL || code == AR_SIG_CLOSE_ENDED ||
        code == AR_SIG_CLOSE_TOO_BIG || code == AR_SIG_CLOSE_BAD_VERSION ||
        code == AR_SIG_CLOSE_NOT_BINARY || code == AR_SIG_CLOSE_REMOVED) {
        ar__sig_sess_end(srv, s->rec, AR_SIG_LEFT_LEFT);
        return;
    }
    ar__sig_sess_away_now(s, srv->now);
    s->rec->away = 1;
    ar__sig_rec_publish(srv, s->rec, "away");
}

/* Everything about the session goes: room place, queue place, record, buffers. */
void ar__sig_sess_end(ar__sig_srv_t *srv, ar__sig_rec_t *r, int reason_left)
{
    if (r->in_room)
        ar__sig_room_leave(srv, r, reason_left);
    if (r->q->in_area)
        ar__sig_queue_remove(srv, r, AR_SIG_GONE_LEFT);
    if (r->local && r->backup && ar__sig_node_alive(srv, r->backup))
        ar__sig_bus_proc(srv, r->backup, json_pack("{s:s,s:s}", "k", "drop", "p", r->peer));
    ar__sig_rec_publish(srv, r, "del");
}

void ar__sig_sess_demote(ar__sig_srv_t *srv, ar__sig_sess_t *s)
{
    /* Not handover.c's hand_off: no client of ours to close (a GONE one lets go), the owner
     * noted the losses, and no hand-over is under way to remember. */
    if (s->conn) { /* GONE: its on_free would take the copy for a lost session of ours */
        s->conn->sess = NULL;
        s->conn = NULL;
    }
    s->is_backup = 1;
    s->promoted = 0;
    ar__sig_lost_clear(s); /* noted as owner: the owner noted them too, and tells its client */
    if (srv->nsessions)
        srv->nsessions--;
}

/* The next record update says "promotion": an owner still holding the client refuses it (rec.c). */
static void mark_promotion(ar__sig_srv_t *srv)
{
    json_t *q = srv->qt ? srv->qt : json_object();
    if (q && json_object_set_new(q, "pr", json_true()) == 0)
        srv->qt = q;
    else if (q != srv->qt)
        json_decref(q);
}

/*
 * What a backup's copy says its dead owner may have died before applying, 0 for nothing:
 *  - for a patient or an invitee, an "ended" or a "removed", numbered or not: either ends its
 *    session, whenever it came;
 *  - for staff, a "removed" from the room they are in, and from their stay in it when it names
 *    one (ar__sig_removal_for), numbered or not: a pending one from a stay before a leave and
 *    a join again that the owner published is passed over.
 *    A numbered copy keeps REMOVED only when its owner applied it (one for another room comes
 *    as NONE, own_frame) and no room change came after it: the owner publishes that change
 *    (the removal's own leave, a later join) after the copy (bus_nums.c), and its coming
 *    settles the copy (rec.c). So a REMOVED still on a numbered copy of the room they are in
 *    is one the owner died before its leave was published. A pending one (not numbered when
 *    the owner last published) is from the room they are in when it names it: a join after it
 *    would have come behind its numbered copy. One that names no room (sent by an older
 *    worker) is applied when pending only, as before: numbered, it may be from an old room.
 *    An "ended" moved staff out already (the ender's worker updates their record, flows.c).
 */
static uint8_t ending_action(const ar__sig_sess_t *s)
{
    int staff = s->rec->role == AR_SIG_ROLE_STAFF;
    const ar__sig_frame_t *lists[2] = {s->cold->pending, s->head};
    for (size_t i = 0; i < 2; i++) {
        for (const ar__sig_frame_t *f = lists[i]; f; f = f->next) {
            if (!staff && (f->action == AR__SIG_ACT_REMOVED || f->action == AR__SIG_ACT_ENDED))
                return f->action;
            if (staff && f->action == AR__SIG_ACT_REMOVED) {
                int rm = ar__sig_removal_for(s, f->data, f->len);
                if (rm == AR__SIG_RM_HERE || (rm == AR__SIG_RM_UNNAMED && i == 0))
                    return AR__SIG_ACT_REMOVED;
            }
        }
    }
    return 0;
}

/* A backup (or, with none alive, the lowest live worker) takes over an orphaned session. Its
 * end, if its frames or its room say so, comes after the caller's walk (settle_promoted). */
static void promote(ar__sig_srv_t *srv, ar__sig_rec_t *r)
{
    ar__sig_sess_t *s = r->local;
    ar_log(AR_LOG_DEBUG, "signal_promote", AR_LF_INT("backup", s && s->is_backup),
           AR_LF_INT("pending", s ? (int64_t)s->cold->npending : 0));
    if (!s && !(s = ar__sig_sess_local_new(srv, r, 1, NULL)))
        return;
    if (s->is_backup) {
        srv->nsessions++;
        s->promoted = 1; /* not when adopted without a buffer: then nothing says what was lost */
    }
    s->is_backup = 0;
    s->handed = 0; /* handed over to a worker that died before it said it took the session */
    s->settle = 1;
    s->settle_act = ending_action(s) & 3u; /* read before the pending frames are numbered */
    /* Frames the dead owner never confirmed are numbered after the last it did, or after the
     * last the client acknowledged if its copies were lost (an acknowledged number would be
     * trimmed at once). The owner may have sent them under other numbers, or not at all: they
     * are uncertain, and the first resume replays them whatever its last_seq (5.10.1). */
    if (s->acked > s->seq)
        s->seq = s->acked;
    /* Its cold part: for the frames pending (there already if any), and for the worker to ask
     * before the grace ends. Without memory for it the promotion still happens (nobody else
     * would take the session) but asks nobody: the session ends at the grace's end as one
     * whose old owner is dead, unless a client resumes it (the old owner, if alive, refuses
     * the promotion's record update anyway, rec.c). */
    ar__sig_sess_cold_t *c = ar__sig_sess_cold(s);
    ar__sig_frame_t *p = c ? c->pending : NULL;
    if (c) {
        c->pending = c->pending_tail = NULL;
        c->npending = 0;
    }
    while (p) {
        ar__sig_frame_t *n = p->next;
        p->next = NULL;
        p->seq = ++s->seq;
        p->uncertain = 1;
        append(srv, s, p);
        p = n;
    }
    /* The owner's copy keeps no removal to apply (own_frame): the one due, if any, is in
     * settle_act, and the others are from rooms it is no longer in. */
    ar__sig_sess_removals_settled(s);
    if (c) {
        c->prev_owner = r->owner;
        c->asked = 0;
    } else {
        ar_log0(AR_LOG_WARN, "signal_promote_no_memory");
    }
    r->owner = srv->node_id;
    r->backup = 0;
    r->away = 1;
    ar__sig_sess_away_now(s, srv->now);
    /* One update ("own" carries away, owner and backup): each is applied by every worker, and
     * an owner that still holds the client answers each with a re-announcement. */
    mark_promotion(srv);
    ar__sig_sess_adopt(srv, s);
}

/*
 * The sessions just promoted, after the walk of records (ending one there would free records
 * under it):
 *  - a copy holding an "ended" or "removed" its dead owner may never have applied (the frame
 *    reached both, or the owner died right after numbering it; ending_action) is ended or
 *    taken out of its room by it now (ending_action checked the room at the promotion, and
 *    nothing in the walk moves the record): the copy only numbered it;
 *  - any other in a room this worker knows ended (its marker came while the copy was a
 *    backup's: nobody ended the room for it) is ended alone (invite.c ar__sig_sess_check_ended),
 *    even in a room this worker ended for its own members before.
 */
static void settle_promoted(ar__sig_srv_t *srv)
{
    ar__sig_sess_t *next;
    for (ar__sig_sess_t *s = srv->locals; s; s = next) {
        next = s->lnext; /* s alone may go below */
        if (!s->settle)
            continue;
        s->settle = 0;
        uint8_t action = s->settle_act;
        s->settle_act = 0;
        if (action)
            frame_action(srv, s, action);
        else
            ar__sig_sess_check_ended(srv, s);
    }
}

int ar__sig_node_death_handled(const ar__sig_srv_t *srv, uint64_t id)
{
    for (size_t i = 0; i < srv->nnodes; i++)
        if (srv->nodes[i].id == id)
            return srv->nodes[i].dead;
    return 0;
}

static int among(const uint64_t *ids, size_t n, uint64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] == id)
            return 1;
    return 0;
}

/*
 * The deaths of the n workers in ids, handled in one walk of the records. A node's workers die
 * together (kill -9, a lost host) and are found dead in the same judgement: one walk of every
 * record for each of them was 8 % of the survivor's samples at 200,000 records and 12 deaths
 * (docs/performance.md, "Failover at 100,000 calls a node: one walk for the deaths found
 * together"). Every id in ids is dead already (its entry marked), so a session whose owner and
 * backup both died is seen with its backup dead, as the second of two walks saw it.
 */
void ar__sig_nodes_dead(ar__sig_srv_t *srv, const uint64_t *ids, size_t n)
{
    uint64_t lowest = srv->node_id;
    for (size_t i = 0; i < srv->nnodes; i++)
        if (srv->nodes[i].id < lowest && ar__sig_node_alive(srv, srv->nodes[i].id))
            lowest = srv->nodes[i].id;
    int64_t promoted = 0, orphans = 0, nobackup = 0;
    ar__sig_bus_hold_begin(srv); /* the walk's updates several to a bus message (bus_turn.c) */
    ar__sig_rec_walk_begin(srv);
    for (size_t b = 0; b < ar__sig_rec_buckets(srv); b++) {
        for (ar__sig_rec_t *r = srv->recs[b]; r; r = r->hnext) {
            if (among(ids, n, r->owner)) {
                if ((r->local && r->local->is_backup && !r->local->provisional) ||
                    ((!r->backup || !ar__sig_node_alive(srv, r->backup)) &&
                     lowest == srv->node_id)) {
                    orphans += !(r->local && r->local->is_backup && !r->local->provisional);
                    nobackup += !r->backup;
                    promote(srv, r);
                    promoted++;
                }
            } else if (!among(ids, n, r->backup)) {
                continue;
            } else if (r->owner == srv->node_id && r->local) {
                ar__sig_sess_adopt(srv, r->local);
            } else if (lowest == srv->node_id && ar__sig_node_death_handled(srv, r->owner)) {
                /* Its owner died first, while this backup still looked alive (its heartbeat a
                 * little younger, or it was stopping): the owner's death left the session to
                 * it. Now nobody has it: taken over as on the owner's death with no backup. */
                promote(srv, r);
                promoted++;
            }
        }
    }
    ar__sig_rec_walk_end(srv);
    ar__sig_bus_hold_end(srv);
    ar_log(AR_LOG_INFO, "signal_worker_dead", AR_LF_UINT("workers", n),
           AR_LF_INT("promoted", promoted), AR_LF_INT("orphans", orphans),
           AR_LF_INT("nobackup", nobackup));
    if (promoted)
        settle_promoted(srv);
    /* Clients resuming here meanwhile go on now: local when we promoted their session. */
    ar__sig_resume_kick(srv);
}

void ar__sig_node_dead(ar__sig_srv_t *srv, uint64_t id)
{
    ar__sig_nodes_dead(srv, &id, 1);
}

/* "own" with "re": a promoter of this session that no client resumed yields (rec.c). */
static void reassert(ar__sig_srv_t *srv, ar__sig_sess_t *s)
{
    json_t *q = srv->qt ? srv->qt : json_object();
    if (q && json_object_set_new(q, "re", json_true()) == 0)
        srv->qt = q;
    ar__sig_rec_publish(srv, s->rec, "own");
}

void ar__sig_sess_tick(ar__sig_srv_t *srv)
{
    /* Only this worker's sessions: the records of the rest of the jurisdiction (every other
     * worker's) are not visited every second. Ending a session frees only that one. */
    uint32_t grace = (uint32_t)(srv->conf->grace / 1000);
    /* Backups moved to another node every other second, when one is there to take them: on a
     * node left alone (the other died) the question is not asked of every session each time,
     * which was a walk of the workers for each. */
    int rehome = srv->now % 2 == 0 && ar__sig_remote_backup_exists(srv);
    ar__sig_sess_t *next;
    for (ar__sig_sess_t *s = srv->locals; s; s = next) {
        next = s->lnext;
        ar__sig_rec_t *r = s->rec;
        if (ar__sig_sess_has_cold(s))
            cold_trim(s);
        if (s->handed && s->provisional) {
            /* A resume's copy kept for an answer that never came (the owner died, or the
             * answer was lost): the owner or its backup still has the session. */
            if (srv->now - s->cold->away_since >= AR__SIG_RESUME_WAIT_S)
                ar__sig_sess_release(srv, s);
            continue;
        }
        if (s->handed && s->is_backup && srv->now - s->cold->away_since >= grace) {
            /* Handed over, and the new owner never announced itself in a grace period (its
             * every update lost, or the answer lost with no client left asking there): the
             * session ends as an away one does, for every worker, instead of staying on. */
            ar_log(AR_LOG_INFO, "signal_handover_unconfirmed",
                   AR_LF_INT("owner_is_taker", r->owner == s->cold->prev_owner),
                   AR_LF_INT("owner_alive", ar__sig_node_alive(srv, r->owner)),
                   AR_LF_INT("taker_here", ar__sig_node_here(srv, s->cold->prev_owner)));
            ar__sig_sess_end(srv, r, AR_SIG_LEFT_DROPPED);
            continue;
        }
        if (s->is_backup)
            continue;
        if (!s->conn && r->away && srv->now - s->cold->away_since >= grace) {
            /* A copy we promoted and no client resumed: if the worker we took it from is alive
             * (it was only slow, and our promotion or its refusal was lost on the way), it may
             * still hold the client. Ask it first; it re-announces the session (we yield) or
             * says no; no answer within AR__SIG_RESUME_WAIT_S ends the session as before. */
            ar__sig_sess_cold_t *c = s->cold; /* its own when prev_owner is set */
            if (s->promoted && c->prev_owner && ar__sig_node_alive(srv, c->prev_owner) &&
                (!c->asked || srv->now - c->asked < AR__SIG_RESUME_WAIT_S)) {
                if (!c->asked) {
                    char me[17];
                    snprintf(me, sizeof(me), "%016llx", (unsigned long long)srv->node_id);
                    c->asked = srv->now ? srv->now : 1;
                    ar_log0(AR_LOG_INFO, "signal_promotion_check");
                    ar__sig_bus_proc(
                        srv, c->prev_owner,
                        json_pack("{s:s,s:s,s:s}", "k", "held?", "p", r->peer, "from", me));
                }
                continue;
            }
            ar__sig_sess_end(srv, r, AR_SIG_LEFT_DROPPED);
            continue;
        }
        /* A session placed while no other node was known (this node just started, or the
         * others restarted) gets its backup moved to another node as soon as one appears. */
        if (rehome && !ar__sig_backup_remote(srv, r->backup)) {
            uint64_t b2 = ar__sig_pick_backup(srv, 0);
            if (b2 && ar__sig_backup_remote(srv, b2))
                ar__sig_sess_adopt(srv, s);
        }
    }
}

/* ---- messages from other workers (ar.<jur>.proc.<worker>) ---- */

void ar__sig_load_frames(ar__sig_srv_t *srv, ar__sig_sess_t *s, void *frames)
{
    json_t *fr = frames;
    frame_free_list(srv, s->head);
    s->head = s->tail = NULL;
    s->nframes = 0;
    s->bytes = 0;
    size_t i;
    json_t *it;
    /* As the owner keeps it: each frame numbered after the one before, none after the session's
     * seq (set before this), which its next frame follows. A frame out of that order (a bus
     * peer's mistake) is left out: the client would get its number twice. */
    int64_t last = 0;
    json_array_foreach(fr, i, it)
    {
        json_int_t seq;
        const char *hex, *d;
        size_t dlen;
        int action;
        uint8_t fid[16];
        if (json_unpack(it, "[I,s,i,s%]", &seq, &hex, &action, &d, &dlen) != 0 ||
            !ar__sig_seq_ok(seq, last + 1) || seq > s->seq || ar__sig_hex16(hex, fid) != 0 ||
            !ar__sig_frame_text_ok(d, dlen))
            continue;
        last = seq;
        ar__sig_frame_t *f = frame_new(srv, fid, seq, (uint8_t)action, d, dlen, AR__SIG_ABOUT_READ);
        if (f) {
            f->uncertain = json_integer_value(json_array_get(it, 4)) == 1;
            pending_take(srv, s, fid);
            append(srv, s, f);
        }
    }
    trim(srv, s); /* what the sender kept that s->acked (set before this) already covers */
}

void ar__sig_sess_take_state(ar__sig_srv_t *srv, ar__sig_sess_t *s, const void *msg,
                             const char *resume, const char *hex, int64_t seq, int64_t ack,
                             void *frames)
{
    s->provisional = 0; /* a copy kept for an attempt or a hand-over no more */
    s->handed = 0;
    (void)ar__sig_sess_resume_set(s, resume); /* malformed: no secret opens it */
    ar__sig_sess_prev_get(s, msg);
    if (ar__sig_hex16(hex, s->subhash) != 0)
        memset(s->subhash, 0, 16);
    s->seq = seq;
    s->acked = ack;
    ar__sig_load_frames(srv, s, frames);
}

static void on_adopt(ar__sig_srv_t *srv, json_t *o, ar__sig_rec_t *r)
{
    const char *resume = "", *hex = "";
    json_int_t seq = 0, ack = 0;
    json_t *fr = NULL;
    if (json_unpack(o, "{s:s,s:s,s:I,s:I,s:o}", "r", &resume, "h", &hex, "seq", &seq, "ack", &ack,
                    "fr", &fr) != 0 ||
        !ar__sig_seq_ok(seq, 0) || !ar__sig_seq_ok(ack, 0))
        return;
    ar__sig_sess_t *s = r->local;
    if (ar__sig_sess_unresumed_promotion(s) && r->owner != srv->node_id) {
        /* A copy we promoted while its owner was only cut off, and the owner took it back. */
        ar_log0(AR_LOG_INFO, "signal_promotion_undone");
        ar__sig_sess_demote(srv, s);
    }
    if (s && !s->is_backup)
        return; /* we own it (a resume raced the adoption): ignore */
    if (!s && !(s = ar__sig_sess_local_new(srv, r, 1, NULL)))
        return;
    /* A real backup now (not provisional), also when handed over and chosen as the new
     * owner's backup (not handed). */
    s->copies_uncertain = json_is_true(json_object_get(o, "u"));
    ar__sig_sess_take_state(srv, s, o, resume, hex, seq, ack, fr);
}

static void on_num(ar__sig_srv_t *srv, ar__sig_sess_t *s, json_t *o)
{
    json_int_t seq;
    const char *hex, *d;
    size_t dlen;
    int action;
    uint8_t fid[16];
    if (!s->is_backup ||
        json_unpack(o, "{s:I,s:s,s:i,s:s%}", "s", &seq, "f", &hex, "a", &action, "d", &d, &dlen) !=
            0 ||
        !ar__sig_seq_ok(seq, 1) || ar__sig_hex16(hex, fid) != 0)
        return;
    pending_take(srv, s, fid);
    ar__sig_frame_t *f = frame_new(srv, fid, seq, (uint8_t)action, d, dlen, AR__SIG_ABOUT_READ);
    if (f) {
        f->uncertain = s->copies_uncertain;
        s->seq = seq;
        append(srv, s, f);
    }
}

/* A batch of numbered copies from an owner (ar__sig_bus_num): each as on_num. */
static void on_nums(ar__sig_srv_t *srv, const uint8_t *d, size_t len)
{
    size_t i = 1;
    while (len - i >= AR__SIG_NUM_HDR) {
        char peer[AR__SIG_PEER_LEN + 1];
        memcpy(peer, d + i, AR__SIG_PEER_LEN);
        peer[AR__SIG_PEER_LEN] = '\0';
        uint64_t seq = ar__sig_le_get(d + i + AR__SIG_PEER_LEN, 8);
        const uint8_t *fid = d + i + AR__SIG_PEER_LEN + 8;
        uint8_t action = d[i + AR__SIG_PEER_LEN + 24];
        size_t fl = (size_t)ar__sig_le_get(d + i + AR__SIG_PEER_LEN + 25, 4);
        i += AR__SIG_NUM_HDR;
        if (fl > len - i || seq < 1 || seq > (uint64_t)AR_SIG_INT_MAX)
            return;
        ar__sig_rec_t *r = ar__sig_rec_find(srv, peer);
        ar__sig_sess_t *s = r ? r->local : NULL;
        if (s && s->is_backup && ar__sig_frame_text_ok((const char *)d + i, fl)) {
            pending_take(srv, s, fid);
            ar__sig_frame_t *f = frame_new(srv, fid, (int64_t)seq, action, (const char *)d + i, fl,
                                           AR__SIG_ABOUT_READ);
            if (f) {
                f->uncertain = s->copies_uncertain;
                s->seq = (int64_t)seq;
                append(srv, s, f);
            }
        }
        i += fl;
    }
}

void ar__sig_proc_msg(ar__sig_srv_t *srv, const char *data, size_t len, const char *reply)
{
    (void)reply;
    if (len > 0 && data[0] == 'N') {
        on_nums(srv, (const uint8_t *)data, len);
        return;
    }
    json_t *o = json_loadb(data, len, JSON_REJECT_DUPLICATES, NULL);
    const char *k, *peer;
    if (!o || ar__sig_rooms_ended_msg(srv, o) || /* about no session: invite.c */
        json_unpack(o, "{s:s,s:s}", "k", &k, "p", &peer) != 0) {
        json_decref(o);
        return;
    }
    ar__sig_rec_t *r = ar__sig_rec_find(srv, peer);
    if (strcmp(k, "held?") == 0) {
        /* A promoter asks before ending a session it took from us (sess_tick above). */
        const char *from;
        ar__sig_sess_t *mine = r ? r->local : NULL;
        if (mine && !mine->is_backup && mine->conn && r->owner == srv->node_id) {
            ar_log0(AR_LOG_INFO, "signal_promotion_refused");
            reassert(srv, mine);
        } else if (json_unpack(o, "{s:s}", "from", &from) == 0) {
            ar__sig_bus_proc(srv, strtoull(from, NULL, 16),
                             json_pack("{s:s,s:s}", "k", "unheld", "p", peer));
        }
        json_decref(o);
        return;
    }
    if (!r) {
        if (strcmp(k, "take") == 0)
            ar_log0(AR_LOG_DEBUG, "signal_take_unknown"); /* no answer: the asker waits */
        json_decref(o);
        return;
    }
    ar__sig_sess_t *s = r->local;
    if (strcmp(k, "adopt") == 0) {
        on_adopt(srv, o, r);
    } else if (strcmp(k, "num") == 0 && s) {
        on_num(srv, s, o);
    } else if (strcmp(k, "ack") == 0 && s && s->is_backup) {
        json_int_t seq;
        if (json_unpack(o, "{s:I}", "s", &seq) == 0 && ar__sig_seq_ok(seq, 1) && seq > s->acked) {
            s->acked = seq;
            trim(srv, s);
        }
    } else if (strcmp(k, "res") == 0 && s && s->is_backup) {
        const char *res;
        if (json_unpack(o, "{s:s}", "r", &res) == 0) {
            (void)ar__sig_sess_resume_set(s, res);
            ar__sig_sess_prev_get(s, o); /* the secret the client presented ("q") */
        }
        s->copies_uncertain = 0; /* the owner's promotion ended with this resume */
        /* The owner's resume replayed all the uncertain frames ("c"): a later promotion of
         * ours must not replay them again. Without it the replay broke off and they stay. */
        if (json_is_true(json_object_get(o, "c")))
            for (ar__sig_frame_t *f = s->head; f; f = f->next)
                f->uncertain = 0;
    } else if (strcmp(k, "got") == 0 && s && s->is_backup) {
        ar__sig_sess_prev_wipe(s); /* the client got its new secret (owner's confirmed) */
    } else if (strcmp(k, "drop") == 0 && s && s->is_backup) {
        if (!ar__sig_sess_resuming(srv, s))
            ar__sig_sess_free(srv, s);
    } else if (strcmp(k, "unheld") == 0 && s && !s->is_backup && s->promoted &&
               ar__sig_sess_has_cold(s)) {
        s->cold->prev_owner = 0; /* the grace period ends it at the next tick */
    } else if (strcmp(k, "take") == 0) {
        ar__sig_on_take(srv, o, r);
    } else if (strcmp(k, "taken") == 0) {
        ar__sig_on_taken(srv, o, r, peer);
    }
    json_decref(o);
}
