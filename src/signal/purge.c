/*
 * The purge of what the replay buffers hold about a patient or an invitee whose session ended
 * (P5, S4; protocol.md 5.13, docs/signal.md "Replay buffers after the end").
 *
 * A staff session keeps what its client has not acknowledged yet (up to 25 s while connected,
 * the grace period after a lost connection), and its backup keeps a copy on another node:
 * queue_add with a patient's name and answers, joined and peer_joined with names, relayed SDP
 * and candidates. When the patient's (or invitee's) record is deleted, on every worker (rec.c),
 * each of those frames is wiped and replaced, under its seq and fid, by a "redacted" frame that
 * says nothing, so a resuming client still gets seq without gaps; a queue snapshot or joined
 * that also lists others is rebuilt without the one who went. What only names them by id so
 * the client can forget them (queue_remove, peer_left, ended) stays.
 *
 * Finding the frames: each carries a 16-bit tag of whom it is about (ar__sig_frame_t about),
 * set as it enters a buffer, and the worker counts its frames per tag (srv->about_n). A relay
 * delivered at once passes the tag of its sender (ar__sig_about_one), which its builder knows,
 * and a pending frame numbered after a hand-over its pending copy's: reading the body for it
 * cost about a thirtieth of the worker's instructions per relayed message. Every other frame's
 * tag is read from its body (tag()); a tag passed must be the one the reading gives
 * (tests/unit/signal/test_about_tag.c). A
 * deletion looks at the buffers only when a frame may be about the one who went (every worker
 * applies every deletion of the jurisdiction; most hold nothing about that person), and stops
 * once the count says none is left.
 */
#include "internal.h"

#include "anteroom/alloc.h"
#include "anteroom/log.h"

#include <sodium.h>
#include <stddef.h>
#include <string.h>

/* The tag lives in what was padding: every frame held costs what it did before. */
_Static_assert(offsetof(ar__sig_frame_t, data) == 40, "a frame's header grew");

enum { K_NONE, K_FROM, K_PEER, K_MANY };

/*
 * The frames about a person, by type: a relayed offer, answer or candidate is about its sender
 * ("from"); peer_joined, hold, queue_add and queue_update about "peer" (queue_add's first
 * "peer" key is its entry's); joined and a queue snapshot about every "peer" they list. The
 * rest carry nothing about anyone but an id the client needs to forget them (peer_left,
 * queue_remove), or go to the person themselves (wait, message), or to nobody in particular.
 * The server built every frame ({"v":1,"type":"<type>","seq":0,...}), so the type is at a
 * fixed place, and a key ("peer":") cannot occur inside a string value, where every quote is
 * escaped: the first one found is the field.
 */
static int about_kind(const char *d, size_t len, size_t *first)
{
    static const char pre[] = "{\"v\":1,\"type\":\"";
    size_t pl = sizeof(pre) - 1;
    if (len < pl + 2 || memcmp(d, pre, pl) != 0)
        return K_NONE;
    const char *t = d + pl, *q = memchr(t, '"', len - pl < 16 ? len - pl : 16);
    size_t n = q ? (size_t)(q - t) : 0;
    /* Where the first field starts, after "seq":0 (the relays' "from", peer_joined's and hold's
     * "peer"): looked at there before any search. */
    *first = q && (size_t)(q - d) + 10 <= len && memcmp(q, "\",\"seq\":0,", 10) == 0
                 ? (size_t)(q - d) + 10
                 : 0;
#define IS(w) (n == sizeof(w) - 1 && memcmp(t, w, n) == 0)
    if (IS("offer") || IS("answer") || IS("candidate"))
        return K_FROM;
    if (IS("peer_joined") || IS("hold") || IS("queue_add") || IS("queue_update"))
        return K_PEER;
    if (IS("joined") || IS("queue"))
        return K_MANY;
#undef IS
    return K_NONE;
}

const char *ar__sig_frame_value(const char *d, size_t len, const char *key, size_t *pos, size_t *vn)
{
    size_t kl = strlen(key);
    if (*pos >= len)
        return NULL;
    /* memmem's set-up costs more than the rest of the tag: not when the key is where we look. */
    const char *k = len - *pos >= kl && memcmp(d + *pos, key, kl) == 0
                        ? d + *pos
                        : memmem(d + *pos, len - *pos, key, kl);
    if (!k)
        return NULL;
    const char *v = k + kl, *end = d + len;
    const char *q = memchr(
        v, '"', (size_t)(end - v) < AR_SIG_ID_MAX + 1 ? (size_t)(end - v) : AR_SIG_ID_MAX + 1);
    if (!q)
        return NULL;
    *vn = (size_t)(q - v);
    *pos = (size_t)(q - d);
    return v;
}

/* The value of key in a frame about one peer: at `first` (the first field) when it is there,
 * else the first one found. */
static const char *subject(const char *d, size_t len, const char *key, size_t first, size_t *vn)
{
    size_t pos = 0, kl = strlen(key);
    if (first && first + kl <= len && memcmp(d + first, key, kl) == 0)
        pos = first; /* ar__sig_frame_value takes it there without a search */
    return ar__sig_frame_value(d, len, key, &pos, vn);
}

/* 16 bits of the id, past the two reserved values. Peer ids are 128 random bits the server
 * drew, so their first and last eight bytes, multiplied and folded, spread well enough; shorter
 * values (never a session's) go byte by byte. Not keyed: a tag only selects the frames the
 * purge compares, so a collision someone arranged costs a comparison, nothing more. */
static uint16_t about_hash(const char *p, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ n;
    if (n >= 8) {
        uint64_t a, b;
        memcpy(&a, p, 8);
        memcpy(&b, p + n - 8, 8);
        h = (h ^ a) * 0xff51afd7ed558ccdull;
        h = (h ^ b ^ (h >> 29)) * 0xc4ceb9fe1a85ec53ull;
    } else {
        for (size_t i = 0; i < n; i++)
            h = (h ^ (uint8_t)p[i]) * 0x100000001b3ull;
    }
    h ^= h >> 32;
    return (uint16_t)(2 + (h & 0xffffu) % 65534u);
}

uint16_t ar__sig_about_one(const char *p, size_t n)
{
    return about_hash(p, n);
}

/* A frame about several (ar__sig_about_count has the rest): each peer it lists. */
void ar__sig_about_count_many(ar__sig_srv_t *srv, const ar__sig_frame_t *f, int dir)
{
    size_t pos = 0, vn;
    const char *v;
    while ((v = ar__sig_frame_value(f->data, f->len, "\"peer\":\"", &pos, &vn)))
        srv->about_n[about_hash(v, vn)] += (uint32_t)dir;
}

/* f's tag from its body, counted. */
static void tag(ar__sig_srv_t *srv, ar__sig_frame_t *f)
{
    size_t first, vn = 0;
    const char *v = NULL;
    switch (about_kind(f->data, f->len, &first)) {
    case K_FROM:
        v = subject(f->data, f->len, "\"from\":\"", first, &vn);
        break;
    case K_PEER:
        v = subject(f->data, f->len, "\"peer\":\"", first, &vn);
        break;
    case K_MANY:
        f->about = AR__SIG_ABOUT_MANY;
        ar__sig_about_count(srv, f, 1);
        return;
    default:
        break;
    }
    f->about = v ? about_hash(v, vn) : AR__SIG_ABOUT_NONE;
    ar__sig_about_count(srv, f, 1);
}

/* The peer id `peer` (AR__SIG_PEER_LEN bytes, as every session's) is v (vn bytes). */
static int same_peer(const char *v, size_t vn, const char *peer)
{
    return vn == AR__SIG_PEER_LEN && memcmp(v, peer, vn) == 0;
}

/* f (about one peer) is about `peer`. */
static int about_one(const ar__sig_frame_t *f, const char *peer)
{
    size_t first, vn = 0;
    int k = about_kind(f->data, f->len, &first);
    const char *v = k == K_FROM   ? subject(f->data, f->len, "\"from\":\"", first, &vn)
                    : k == K_PEER ? subject(f->data, f->len, "\"peer\":\"", first, &vn)
                                  : NULL;
    return v && same_peer(v, vn, peer);
}

/* f (about several) lists `peer`. */
static int about_many(const ar__sig_frame_t *f, const char *peer)
{
    size_t pos = 0, vn;
    const char *v;
    while ((v = ar__sig_frame_value(f->data, f->len, "\"peer\":\"", &pos, &vn)))
        if (same_peer(v, vn, peer))
            return 1;
    return 0;
}

/* f's body becomes b (n bytes, no longer than it was); the old one wiped. *bytes (a replay
 * buffer's count, or NULL for a pending list) follows. */
static void rewrite(ar__sig_srv_t *srv, ar__sig_frame_t *f, const char *b, size_t n,
                    uint32_t *bytes)
{
    ar__sig_about_count(srv, f, -1);
    sodium_memzero(f->data, f->len);
    memcpy(f->data, b, n);
    f->data[n] = '\0';
    if (bytes)
        *bytes -= f->len - (uint32_t)n;
    f->len = (uint32_t)n;
    tag(srv, f);
}

/* A joined or queue snapshot rebuilt without `peer`'s item: 0, or -1 when it could not be (no
 * memory, a body the codec refuses): the caller redacts it whole rather than keep it. */
static int rebuild_without(ar__sig_srv_t *srv, ar__sig_frame_t *f, const char *peer,
                           uint32_t *bytes)
{
    ar_sig_msg_t m;
    ar_sig_err_t err;
    if (ar_sig_parse(AR_SIG_FROM_SERVER, f->data, f->len, &m, &err) != 0)
        return -1;
    int rc = -1;
    ar_sig_msg_t b = m;
    ar_sig_peer_t peers[AR_SIG_PEERS_MAX];
    ar_sig_entry_t entries[AR_SIG_ENTRIES_MAX];
    size_t k = 0;
    if (m.type == AR_SIG_JOINED) {
        for (size_t i = 0; i < m.u.join.peers.count && i < AR_SIG_PEERS_MAX; i++) {
            const ar_sig_peer_t *p = AR_SIG_ITEM(m.u.join.peers, ar_sig_peer_t, i);
            if (!same_peer(p->peer.p, p->peer.len, peer))
                peers[k++] = *p;
        }
        b.u.join.peers = (ar_sig_list_t){peers, k};
    } else if (m.type == AR_SIG_QUEUE) {
        for (size_t i = 0; i < m.u.queue.entries.count && i < AR_SIG_ENTRIES_MAX; i++) {
            const ar_sig_entry_t *e = AR_SIG_ITEM(m.u.queue.entries, ar_sig_entry_t, i);
            if (!same_peer(e->peer.p, e->peer.len, peer))
                entries[k++] = *e;
        }
        b.u.queue.entries = (ar_sig_list_t){entries, k};
    } else {
        ar_sig_msg_free(&m);
        return -1;
    }
    /* Its own buffer, not srv->out: a deletion may come while a caller builds a frame there. */
    char *out = ar_malloc(f->len + 1);
    int n = out ? ar_sig_build(AR_SIG_FROM_SERVER, &b, out, f->len + 1) : AR_ENOMEM;
    if (n > 0 && (size_t)n <= f->len) {
        rewrite(srv, f, out, (size_t)n, bytes);
        rc = 0;
    }
    ar_free_wiped(out);
    sodium_memzero(peers, sizeof(peers));
    sodium_memzero(entries, sizeof(entries));
    ar_sig_msg_free(&m);
    return rc;
}

/* One frame looked at for `peer` (tag t): 1 when it was changed. */
static int purge_frame(ar__sig_srv_t *srv, ar__sig_frame_t *f, const char *peer, uint16_t t,
                       uint32_t *bytes)
{
    static const char body[] = AR__SIG_REDACTED_FRAME;
    if (f->about == AR__SIG_ABOUT_MANY) {
        if (!about_many(f, peer))
            return 0;
        if (rebuild_without(srv, f, peer, bytes) == 0)
            return 1;
    } else if (f->about != t || !about_one(f, peer)) {
        return 0;
    }
    if (f->len < sizeof(body) - 1) { /* never: any frame about someone names them */
        ar__sig_about_count(srv, f, -1);
        sodium_memzero(f->data, f->len);
        f->about = AR__SIG_ABOUT_NONE;
        return 1;
    }
    rewrite(srv, f, body, sizeof(body) - 1, bytes);
    return 1;
}

/* One who went, remembered for the frames about them still on their way (srv->gone). */
static void gone_note(ar__sig_srv_t *srv, const char *peer, uint16_t t)
{
    uint32_t i = srv->gone_next++ % AR__SIG_GONE_MAX;
    uint8_t *old = &srv->gone_n[srv->gone_tag[i]];
    if (srv->gone[i].at && *old && *old < UINT8_MAX)
        (*old)--;
    memcpy(srv->gone[i].peer, peer, AR__SIG_PEER_LEN);
    srv->gone[i].at = srv->gone_last = srv->now ? srv->now : 1;
    srv->gone_tag[i] = t;
    if (srv->gone_n[t] < UINT8_MAX)
        srv->gone_n[t]++;
}

/* A peer with tag t that went in the last AR__SIG_GONE_S seconds and that f is about; NULL. A
 * count saturated at 255 stays so: only a look more. */
static const char *gone_in(const ar__sig_srv_t *srv, const ar__sig_frame_t *f, uint16_t t)
{
    /* Checked first: a frame enters a buffer at every relay, and the count is a random line of
     * a 64 KiB table, while nobody may have gone here for a while. */
    if (!ar__sig_gone_lately(srv) || !srv->gone_n[t])
        return NULL;
    for (uint32_t i = 0; i < AR__SIG_GONE_MAX; i++) {
        if (srv->gone_tag[i] != t || !srv->gone[i].at ||
            srv->now - srv->gone[i].at > AR__SIG_GONE_S)
            continue;
        const char *p = srv->gone[i].peer;
        if (f->about == AR__SIG_ABOUT_MANY ? about_many(f, p) : about_one(f, p))
            return p;
    }
    return NULL;
}

/* Any peer f is about that went lately: NULL, or one of them. */
static const char *late(const ar__sig_srv_t *srv, const ar__sig_frame_t *f)
{
    if (f->about != AR__SIG_ABOUT_MANY)
        return f->about == AR__SIG_ABOUT_NONE ? NULL : gone_in(srv, f, f->about);
    size_t pos = 0, vn;
    const char *v, *p;
    while ((v = ar__sig_frame_value(f->data, f->len, "\"peer\":\"", &pos, &vn)))
        if ((p = gone_in(srv, f, about_hash(v, vn))))
            return p;
    return NULL;
}

void ar__sig_about_tag_all(ar__sig_srv_t *srv, ar__sig_frame_t *f, int about)
{
    if (about == AR__SIG_ABOUT_READ) {
        tag(srv, f);
    } else {
        f->about = (uint16_t)about;
        ar__sig_about_count(srv, f, 1);
    }
    /* Each pass takes one of them out of f (a snapshot may name several), or all of f. */
    const char *p;
    while (ar__sig_gone_lately(srv) && (p = late(srv, f)))
        purge_frame(srv, f, p, f->about, NULL);
}

size_t ar__sig_frames_purge(ar__sig_srv_t *srv, const ar__sig_rec_t *gone)
{
    if (gone->role != AR_SIG_ROLE_PATIENT && gone->role != AR_SIG_ROLE_INVITEE)
        return 0;
    uint16_t t = about_hash(gone->peer, AR__SIG_PEER_LEN);
    gone_note(srv, gone->peer, t);
    size_t n = 0;
    /* Every session this worker owns or backs up: a staff member who left the room or
     * unsubscribed since, or whose patient was transferred, may hold frames about it too. */
    for (ar__sig_sess_t *s = srv->locals; s && srv->about_n[t]; s = s->lnext) {
        if (s->rec == gone)
            continue; /* its own buffer goes with it, wiped */
        for (ar__sig_frame_t *f = s->head; f; f = f->next)
            n += (size_t)purge_frame(srv, f, gone->peer, t, &s->bytes);
        for (ar__sig_frame_t *f = s->cold->pending; f; f = f->next)
            n += (size_t)purge_frame(srv, f, gone->peer, t, NULL);
    }
    if (n)
        ar_log(AR_LOG_DEBUG, "signal_frames_purged", AR_LF_INT("frames", (int64_t)n));
    return n;
}
