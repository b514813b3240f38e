/*
 * What each client message does in a room (docs/protocol.md 5.3, 5.7-5.9, 5.13): join, leave,
 * relay of offer/answer/candidate by peer id, quality profile, end. Waiting-area messages are
 * in area.c.
 *
 * Checks use the replicated view (index.c), so a room split across nodes is checked the same
 * way as a local one. Every session-level frame goes through ar__sig_to(): it is numbered by
 * the recipient's owner, wherever that is, and kept for resume.
 */
#include "internal.h"

#include "anteroom/alloc.h"
#include "anteroom/log.h"

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define REFUSE(cn, m, code) ar__sig_send_error((cn), (code), NULL, (m)->type, (m)->id)

/* now: the peer's record when the frame may be delivered at once (ar__sig_bus_to_now), with
 * about, the frame's about tag (ar__sig_about_tag). Returns the frame's length, or the build's
 * error (AR_ETOOBIG: larger than a frame may be; nothing sent). */
static int to_peer(ar__sig_srv_t *srv, const char *peer, ar_sig_msg_t *m, uint8_t action,
                   ar__sig_rec_t *now, int about)
{
    m->seq = 0; /* the owner puts the session's next seq in place of this 0 (sess.c) */
    /* Built straight after the room left for the bus header: no copy, no allocation. A relayed
     * offer, answer or candidate that the flat parse read is its client's checked bytes, copied
     * member by member with "to" become "from" (ar_sig_build_relay); anything else, and such a
     * frame the full parse read (nesting, escapes outside the SDP, non-ASCII text outside it),
     * is built from its fields. Both stop at the same size. */
    char *buf = srv->pub + AR__SIG_TO_HDR;
    size_t cap = AR_SIG_OUT_MAX + 1 - AR__SIG_SPLICE_MAX;
    int n = ar_sig_build_relay(m, buf, cap);
    if (n == 0)
        n = ar_sig_build(AR_SIG_FROM_SERVER, m, buf, cap);
    if (n < 0)
        return n;
    if (n > 0 && !(now && ar__sig_bus_to_now(srv, now, action, (size_t)n, about)))
        ar__sig_bus_to(srv, peer, action, (size_t)n);
    return n;
}

int ar__sig_to(ar__sig_srv_t *srv, const char *peer, ar_sig_msg_t *m, uint8_t action)
{
    int rc = to_peer(srv, peer, m, action, NULL, AR__SIG_ABOUT_READ);
    /* Never silent: a frame nobody gets is a gap in what its peer sees. A message the server
     * composes should always fit; the caller may split it (the queue snapshot does). */
    if (rc < 0)
        ar_log(AR_LOG_WARN, "signal_frame_unbuilt", AR_LF_INT("type", m->type),
               AR_LF_INT("rc", rc));
    return rc;
}

static ar_sig_str_t str(const char *s)
{
    return (ar_sig_str_t){s, s ? strlen(s) : 0};
}

static ar_sig_str_t opt(const char *s)
{
    return (ar_sig_str_t){s && s[0] ? s : NULL, s ? strlen(s) : 0};
}

static void peer_of(ar_sig_peer_t *p, const ar__sig_rec_t *r)
{
    memset(p, 0, sizeof(*p));
    p->peer = str(r->peer);
    p->role = r->role;
    p->name = opt(ar__sig_rec_name(r));
    p->lang = opt(r->q->lang);
    p->hold = r->status == AR_SIG_ST_HOLD;
}

ar__sig_claims_t *ar__sig_claims_new(const ar_token_claims_t *c)
{
    size_t n = c->role == AR_TOKEN_STAFF ? c->nclinics : 0;
    const char *src[3] = {c->room, c->clinic, c->area};
    size_t len[3], strs = 0;
    for (int i = 0; i < 3; i++)
        strs += (len[i] = strnlen(src[i], AR_TOKEN_ID_MAX - 1)) + 1;
    ar__sig_claims_t *k = NULL;
    /* From the clinics' offset, not sizeof: the struct's tail padding is not held for nothing. */
    size_t size = offsetof(ar__sig_claims_t, clinics) + n * sizeof(k->clinics[0]) + strs;
    k = ar_calloc(1, size);
    if (!k)
        return NULL;
    k->size = (uint32_t)size;
    /* A resume may bring an expired token (5.10): its session's time to refresh starts now. */
    int64_t now = (int64_t)time(NULL), exp = c->exp > now ? c->exp : now;
    k->exp = exp > (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)exp;
    char *p = (char *)&k->clinics[n];
    for (int i = 0; i < 3; i++) {
        memcpy(p, src[i], len[i]); /* NUL from ar_calloc */
        p += len[i] + 1;
    }
    k->clinic_at = (uint8_t)(len[0] + 1);
    k->area_at = (uint8_t)(len[0] + 1 + len[1] + 1);
    k->profile = !strcmp(c->profile, "low")    ? AR_SIG_Q_LOW
                 : !strcmp(c->profile, "high") ? AR_SIG_Q_HIGH
                                               : AR_SIG_Q_STANDARD;
    k->nclinics = (uint8_t)n;
    for (size_t i = 0; i < n; i++) {
        memcpy(k->clinics[i].id, c->clinics[i].id, sizeof(k->clinics[i].id));
        for (size_t r = 0; r < c->clinics[i].nroles; r++) {
            const char *role = c->clinics[i].roles[r];
            k->clinics[i].roles |= !strcmp(role, "provider")       ? AR__SIG_R_PROVIDER
                                   : !strcmp(role, "admin")        ? AR__SIG_R_ADMIN
                                   : !strcmp(role, "receptionist") ? AR__SIG_R_RECEPTION
                                                                   : 0;
        }
    }
    return k;
}

void ar__sig_claims_free(ar__sig_claims_t *c)
{
    ar_free_wiped(c); /* the whole block, c->size bytes and the allocator's slack */
}

static unsigned roles_in(const ar__sig_claims_t *cl, const char *clinic)
{
    unsigned roles = 0;
    for (size_t i = 0; clinic[0] && i < cl->nclinics; i++)
        if (strcmp(cl->clinics[i].id, clinic) == 0)
            roles |= cl->clinics[i].roles;
    return roles;
}

int ar__sig_can_call(const ar__sig_claims_t *cl, const char *clinic)
{
    return (roles_in(cl, clinic) & (AR__SIG_R_PROVIDER | AR__SIG_R_ADMIN)) != 0;
}

int ar__sig_can_queue(const ar__sig_claims_t *cl, const char *clinic)
{
    return (roles_in(cl, clinic) & (AR__SIG_R_PROVIDER | AR__SIG_R_ADMIN | AR__SIG_R_RECEPTION)) !=
           0;
}

/* Staff who may run the call in this room: a role in its clinic, or a persistent room. */
static int runs_room(const ar__sig_sess_t *s, const ar__sig_room_t *room)
{
    return s->rec->role == AR_SIG_ROLE_STAFF &&
           (room->persistent || ar__sig_can_call(s->claims, ar__sig_room_clinic(room)));
}

ar__sig_room_t *ar__sig_room_to_run(ar__sig_conn_t *cn, const ar_sig_msg_t *m)
{
    ar__sig_room_t *room = cn->sess->rec->in_room;
    if (!room) {
        REFUSE(cn, m, AR_SIG_E_BAD_STATE);
        return NULL;
    }
    if (!runs_room(cn->sess, room)) {
        REFUSE(cn, m, AR_SIG_E_FORBIDDEN);
        return NULL;
    }
    return room;
}

/* Sends `joined` to r and `peer_joined` about r to the others. */
void ar__sig_announce_join(ar__sig_srv_t *srv, ar__sig_rec_t *r)
{
    ar__sig_room_t *room = r->in_room;
    ar_sig_peer_t peers[AR_SIG_PEERS_MAX];
    size_t n = 0;
    for (size_t i = 0; i < room->nmembers && n < AR_SIG_PEERS_MAX; i++)
        if (ar__sig_room_member(room, i) != r)
            peer_of(&peers[n++], ar__sig_room_member(room, i));
    ar_sig_msg_t m;
    ar_sig_msg_init(&m, AR_SIG_JOINED);
    m.u.join.room = str(room->id);
    m.u.join.peers = (ar_sig_list_t){peers, n};
    m.u.join.profile = room->profile;
    char stay[AR__SIG_STAY_LEN]; /* a removal from this stay names it (remove.c) */
    size_t sn = ar__sig_stay_text(r, stay);
    m.u.join.stay = (ar_sig_str_t){sn ? stay : NULL, sn};
    ar__sig_to(srv, r->peer, &m, AR__SIG_ACT_NONE);
    ar_sig_msg_init(&m, AR_SIG_PEER_JOINED);
    peer_of(&m.u.peer_joined, r);
    for (size_t i = 0; i < room->nmembers; i++) {
        const ar__sig_rec_t *x = ar__sig_room_member(room, i);
        if (x != r)
            ar__sig_to(srv, x->peer, &m, AR__SIG_ACT_NONE);
    }
}

void ar__sig_announce_late(ar__sig_srv_t *srv, ar__sig_rec_t *r, const void *told)
{
    ar_sig_msg_t m;
    ar_sig_msg_init(&m, AR_SIG_PEER_JOINED);
    peer_of(&m.u.peer_joined, r);
    const ar__sig_room_t *room = r->in_room;
    for (size_t i = 0; i < room->nmembers; i++) {
        const ar__sig_rec_t *x = ar__sig_room_member(room, i);
        if (x == r || !ar__sig_owned_here(srv, x))
            continue; /* not ours: its own worker does the same */
        if (!ar__sig_named(told, x->peer))
            ar__sig_to(srv, x->peer, &m, AR__SIG_ACT_NONE);
    }
}

void ar__sig_announce_left(ar__sig_srv_t *srv, const ar__sig_rec_t *r,
                           const char (*peers)[AR__SIG_PEER_LEN + 1], size_t n, int reason)
{
    ar_sig_msg_t m;
    ar_sig_msg_init(&m, AR_SIG_PEER_LEFT);
    m.u.peer_left.peer = str(r->peer);
    m.u.peer_left.reason = reason;
    for (size_t i = 0; i < n; i++)
        ar__sig_to(srv, peers[i], &m, AR__SIG_ACT_NONE);
}

void ar__sig_room_leave(ar__sig_srv_t *srv, ar__sig_rec_t *r, int reason)
{
    ar__sig_room_t *room = r->in_room;
    if (!room)
        return;
    char others[2 * AR__SIG_ROOM_MAX][AR__SIG_PEER_LEN + 1];
    ar__sig_rec_t *seen[2 * AR__SIG_ROOM_MAX]; /* patients whose "seen by" may name r */
    size_t n = 0, nseen = 0;
    for (size_t i = 0; i < room->nmembers; i++) {
        ar__sig_rec_t *x = ar__sig_room_member(room, i);
        if (x == r)
            continue;
        memcpy(others[n++], x->peer, AR__SIG_PEER_LEN + 1);
        if (r->role == AR_SIG_ROLE_STAFF && x->role == AR_SIG_ROLE_PATIENT)
            seen[nseen++] = x;
    }
    ar__sig_rec_set_room(srv, r, "");
    /* Whom we tell below, named in the update ("lt", rec.c): a member we did not know of (its
     * join raced ours) hears of this from its own worker, which sent it our peer_joined. */
    json_t *lt = json_array(), *o = json_object();
    for (size_t i = 0; lt && i < n; i++)
        json_array_append_new(lt, json_string(others[i]));
    if (lt && o && json_object_set_new(o, "lt", lt) == 0 &&
        json_object_set_new(o, "lr", json_integer(reason)) == 0) {
        json_decref(srv->left_told);
        srv->left_told = o;
    } else {
        json_decref(o);
    }
    ar__sig_rec_publish(srv, r, "room");
    ar__sig_announce_left(srv, r, (const char(*)[AR__SIG_PEER_LEN + 1]) others, n, reason);
    /* Whoever leaves (leave, bye, the end of its grace period, a removal) leaves here, on its
     * own worker, once: the patient it was seeing is marked anew after the room update, so no
     * worker sees the mark move while r still seems to be in the room (protocol.md 5.3). The
     * room still holds those patients (it goes only when empty). */
    for (size_t i = 0; i < nseen; i++)
        ar__sig_seen_left(srv, seen[i], r);
}

/*
 * Two joins on two nodes within the bus's delay both see three members and both pass. Every
 * worker applies both records, sees five and ranks them by the join time the joiner's worker
 * recorded: the owner of a member ranked fifth (or later) removes it, as if refused late. The
 * others get peer_left (removed); it gets error room_full about its join (an invitee, whose token
 * opens no other room, is closed with 4005).
 */
void ar__sig_room_enforce(ar__sig_srv_t *srv, ar__sig_room_t *room)
{
    if (!room || room->nmembers <= AR__SIG_ROOM_MAX)
        return;
    ar__sig_rec_t *ranked[2 * AR__SIG_ROOM_MAX];
    size_t n = room->nmembers;
    for (size_t i = 0; i < n; i++) { /* insertion sort: at most eight members */
        ar__sig_rec_t *x = ar__sig_room_member(room, i);
        size_t j = i;
        for (; j > 0 && ar__sig_joined_before(x, ranked[j - 1]); j--)
            ranked[j] = ranked[j - 1];
        ranked[j] = x;
    }
    for (size_t i = AR__SIG_ROOM_MAX; i < n; i++) {
        ar__sig_rec_t *x = ranked[i];
        ar__sig_sess_t *s = x->local;
        if (!s || s->is_backup)
            continue; /* its owner, on its own worker, does the same */
        ar_log0(AR_LOG_INFO, "signal_room_race_removed");
        ar__sig_room_leave(srv, x, AR_SIG_LEFT_REMOVED);
        /* A connection already gone has nothing to tell: its session is away, as without one. */
        ar__sig_conn_t *cn = ar__sig_sess_connected(s) ? s->conn : NULL;
        if (cn && x->role == AR_SIG_ROLE_INVITEE) /* ended even if the error kills cn */
            ar__sig_refuse(cn, AR_SIG_E_ROOM_FULL, NULL, AR_SIG_JOIN, AR_SIG_NONE,
                           AR_SIG_CLOSE_ROOM_FULL);
        else if (cn)
            ar__sig_send_error(cn, AR_SIG_E_ROOM_FULL, NULL, AR_SIG_JOIN, AR_SIG_NONE);
    }
}

void ar__sig_refuse_ended(ar__sig_conn_t *cn, const ar_sig_msg_t *m)
{
    ar__sig_refuse(cn, AR_SIG_E_NOT_FOUND, "the consultation has ended", m->type, m->id,
                   AR_SIG_CLOSE_ENDED);
}

/*
 * Whether session s may be in room id (room: it, or NULL when it is not open), by its claims
 * (docs/protocol.md 5.7, 5.13, 5.15):
 *  - staff enter a room their token names, or a room open in a clinic where they may see
 *    patients (ar__sig_can_call); patients and invitees only the room their token names;
 *  - a one-time room that was ended (ar__sig_room_ended) opens to no one: a patient or an
 *    invitee, whose token opens nothing else, is closed with 4007 as when the room ended under it;
 *  - an invitee opens no room: the room is defined (its clinic, persistent or not) by the token
 *    it belongs to, a patient's or a staff token naming a persistent room, never by a link a
 *    clinician handed out. A room not open (over, or not begun) closes the invitee's session
 *    with 4007 too: its link opens nothing else, and its page shows the end screen;
 *  - an invitee enters no room of another clinic than the one its token was minted for (the app
 *    mints an invite for any room id it is given, in the clinic of the request).
 * The one check for a join (on_join) and for a staff session already in a room whose claims a
 * refresh or a resume replaced (refresh.c ar__sig_claims_evict). Whether the room has space is
 * not part of it: that is the join's alone.
 */
int ar__sig_join_check(ar__sig_srv_t *srv, const ar__sig_sess_t *s, const ar__sig_room_t *room,
                       const char *id)
{
    const ar__sig_rec_t *r = s->rec;
    const ar__sig_claims_t *cl = s->claims;
    int staff = r->role == AR_SIG_ROLE_STAFF, invitee = r->role == AR_SIG_ROLE_INVITEE;
    int named = strcmp(ar__sig_claims_room(cl), id) == 0;
    if (!named && !(staff && room && ar__sig_can_call(cl, ar__sig_room_clinic(room))))
        return room || !staff ? AR__SIG_JOIN_FORBIDDEN : AR__SIG_JOIN_NOT_FOUND;
    if ((!room || !room->persistent) && ar__sig_room_ended(srv, id))
        return staff ? AR__SIG_JOIN_NOT_FOUND : AR__SIG_JOIN_ENDED;
    if (invitee && !room)
        return AR__SIG_JOIN_NOT_OPEN;
    if (invitee && ar__sig_claims_clinic(cl)[0] &&
        strcmp(ar__sig_claims_clinic(cl), ar__sig_room_clinic(room)) != 0)
        return AR__SIG_JOIN_FORBIDDEN;
    return AR__SIG_JOIN_OK;
}

static void on_join(ar__sig_conn_t *cn, ar_sig_msg_t *m)
{
    ar__sig_srv_t *srv = cn->srv;
    ar__sig_sess_t *s = cn->sess;
    ar__sig_rec_t *r = s->rec;
    const ar__sig_claims_t *cl = s->claims;
    char id[AR_SIG_ID_MAX + 1];
    memcpy(id, m->u.join.room.p, m->u.join.room.len);
    id[m->u.join.room.len] = '\0';
    if (r->in_room) {
        REFUSE(cn, m, AR_SIG_E_BAD_STATE);
        return;
    }
    ar__sig_room_t *room = ar__sig_room_find(srv, id);
    switch (ar__sig_join_check(srv, s, room, id)) {
    case AR__SIG_JOIN_OK:
        break;
    case AR__SIG_JOIN_NOT_FOUND:
        REFUSE(cn, m, AR_SIG_E_NOT_FOUND);
        return;
    case AR__SIG_JOIN_ENDED:
        ar__sig_refuse_ended(cn, m);
        return;
    case AR__SIG_JOIN_NOT_OPEN:
        ar__sig_refuse(cn, AR_SIG_E_NOT_FOUND, "the call is not open", m->type, m->id,
                       AR_SIG_CLOSE_ENDED);
        return;
    default:
        REFUSE(cn, m, AR_SIG_E_FORBIDDEN);
        return;
    }
    if (room && room->nmembers >= AR__SIG_ROOM_MAX) {
        if (r->role == AR_SIG_ROLE_INVITEE) /* its token opens only this room */
            ar__sig_refuse(cn, AR_SIG_E_ROOM_FULL, NULL, m->type, m->id, AR_SIG_CLOSE_ROOM_FULL);
        else
            REFUSE(cn, m, AR_SIG_E_ROOM_FULL);
        return;
    }
    int fresh = room == NULL;
    ar__sig_rec_set_room(srv, r, id);
    if (!r->in_room) {
        REFUSE(cn, m, AR_SIG_E_INTERNAL);
        return;
    }
    if (fresh) { /* a patient's own room, or a clinic's persistent room (join check) */
        room = r->in_room;
        int staff = r->role == AR_SIG_ROLE_STAFF;
        const char *clinic = !staff         ? ar__sig_claims_clinic(cl)
                             : cl->nclinics ? cl->clinics[0].id
                                            : "";
        /* Without memory for its clinic's copy the room would be one no staff of the clinic
         * could enter or run: it goes, unseen by any other worker, and the join is refused. */
        if (ar__sig_room_set_clinic(srv, room, clinic) < 0) {
            ar__sig_rec_set_room(srv, r, "");
            REFUSE(cn, m, AR_SIG_E_INTERNAL);
            return;
        }
        room->persistent = (uint8_t)staff;
        room->profile = cl->profile;
    }
    ar__sig_rec_publish(srv, r, "room,rt");
    ar__sig_announce_join(srv, r);
}

/* The AR__SIG_PEER_LEN + 1 bytes at a and at b are the same: three words, the last overlapping
 * the second. gcc called memcmp for the fixed-size compare (about 20 instructions a relayed
 * candidate, for the first slot alone). */
static inline int same_peer(const char a[AR__SIG_PEER_LEN + 1], const char b[AR__SIG_PEER_LEN + 1])
{
    _Static_assert(AR__SIG_PEER_LEN + 1 >= 16 && AR__SIG_PEER_LEN + 1 <= 24, "three words");
    const size_t last = AR__SIG_PEER_LEN + 1 - 8;
    uint64_t a0, a1, a2, b0, b1, b2;
    memcpy(&a0, a, 8);
    memcpy(&a1, a + 8, 8);
    memcpy(&a2, a + last, 8);
    memcpy(&b0, b, 8);
    memcpy(&b1, b + 8, 8);
    memcpy(&b2, b + last, 8);
    return ((a0 ^ b0) | (a1 ^ b1) | (a2 ^ b2)) == 0;
}

/* to: a peer id of exactly AR__SIG_PEER_LEN characters (on_relay), so comparing the whole
 * arrays (same_peer, not a strcmp call per slot) is comparing the strings. */
static int cand_slot(ar__sig_sess_cold_t *c, const char to[AR__SIG_PEER_LEN + 1], int reset)
{
    int free_slot = -1;
    for (int i = 0; i < AR__SIG_ROOM_MAX - 1; i++) {
        if (same_peer(c->cand[i].peer, to)) {
            if (reset)
                c->cand[i].n = 0;
            return i;
        }
        if (!c->cand[i].peer[0] && free_slot < 0)
            free_slot = i;
    }
    if (free_slot < 0)
        free_slot = 0; /* a peer that left: reuse its slot */
    memcpy(c->cand[free_slot].peer, to, AR__SIG_PEER_LEN + 1);
    c->cand[free_slot].n = 0;
    return free_slot;
}

static void on_relay(ar__sig_conn_t *cn, ar_sig_msg_t *m)
{
    ar__sig_srv_t *srv = cn->srv;
    ar__sig_sess_t *s = cn->sess;
    ar__sig_rec_t *r = s->rec;
    ar_sig_str_t *to = m->type == AR_SIG_CANDIDATE ? &m->u.cand.peer : &m->u.sdp.peer;
    char id[AR__SIG_PEER_LEN + 1];
    if (!r->in_room) {
        REFUSE(cn, m, AR_SIG_E_BAD_STATE);
        return;
    }
    ar__sig_rec_t *t = NULL;
    if (to->len == AR__SIG_PEER_LEN) {
        memcpy(id, to->p, AR__SIG_PEER_LEN);
        id[AR__SIG_PEER_LEN] = '\0';
        t = ar__sig_rec_find_whole(srv, id);
    }
    if (!t || t == r || t->in_room != r->in_room) {
        REFUSE(cn, m, AR_SIG_E_NOT_FOUND);
        return;
    }
    if (r->status == AR_SIG_ST_HOLD || t->status == AR_SIG_ST_HOLD) {
        REFUSE(cn, m, AR_SIG_E_BAD_STATE); /* a held patient has no peer connection (5.5) */
        return;
    }
    /* The counts live in the session's cold part, made at its first candidate: an offer or an
     * answer before any has no count to reset (none is kept where there is no part). */
    if (m->type == AR_SIG_CANDIDATE) {
        ar__sig_sess_cold_t *c = ar__sig_sess_cold(s);
        if (!c) {
            REFUSE(cn, m, AR_SIG_E_INTERNAL); /* not relayed: the client may send it again */
            return;
        }
        int slot = cand_slot(c, id, 0);
        if (c->cand[slot].n >= AR__SIG_CAND_MAX) {
            REFUSE(cn, m, AR_SIG_E_TOO_MANY_CANDIDATES);
            return;
        }
        c->cand[slot].n++;
    } else if (ar__sig_sess_has_cold(s)) {
        (void)cand_slot(s->cold, id, m->type == AR_SIG_OFFER);
    }
    /* "to" becomes "from": a record's id is AR__SIG_PEER_LEN characters (ar__sig_rec_get). */
    *to = (ar_sig_str_t){r->peer, AR__SIG_PEER_LEN};
    /* A relay is the last thing its handler does and loops over nothing, so a peer this worker
     * owns gets it at once, not from the next wake-up of the bus's eventfd (docs/signal.md,
     * "Local delivery"): no queued copy, no eventfd write and read, no extra loop turn. */
    /* Its sender learns of a frame that could not be passed on (over the limit once "from" and
     * "seq" are added), rather than waiting for an answer that cannot come. */
    /* The frame is about its sender, "from" (purge.c): tagged so here rather than read back out
     * of the frame built. */
    uint8_t action = m->type == AR_SIG_OFFER ? AR__SIG_ACT_RESET_CAND : AR__SIG_ACT_NONE;
    if (to_peer(srv, id, m, action, t, ar__sig_about_one(to->p, to->len)) < 0)
        REFUSE(cn, m, AR_SIG_E_TOO_BIG);
}

static void on_quality(ar__sig_conn_t *cn, ar_sig_msg_t *m)
{
    ar__sig_srv_t *srv = cn->srv;
    ar__sig_rec_t *r = cn->sess->rec;
    ar__sig_room_t *room = ar__sig_room_to_run(cn, m);
    if (!room)
        return;
    room->profile = (uint8_t)m->u.quality.profile;
    ar__sig_rec_publish(srv, r, "room");
    ar_sig_msg_t q;
    ar_sig_msg_init(&q, AR_SIG_QUALITY);
    q.u.quality.profile = room->profile;
    q.u.quality.by = str(r->peer);
    for (size_t i = 0; i < room->nmembers; i++)
        ar__sig_to(srv, ar__sig_room_member(room, i)->peer, &q, AR__SIG_ACT_NONE);
}

/* Member x told that room `id` ended, with the action by which its owner ends a patient's or an
 * invitee's session (sess.c own_frame); a patient also leaves its queue. */
static void tell_ended(ar__sig_srv_t *srv, const char *id, ar__sig_rec_t *x)
{
    ar_sig_msg_t e;
    ar_sig_msg_init(&e, AR_SIG_ENDED);
    e.u.ended.room = str(id);
    e.u.ended.reason = AR_SIG_END_ENDED;
    ar__sig_to(srv, x->peer, &e, AR__SIG_ACT_ENDED);
    if (x->role == AR_SIG_ROLE_PATIENT && x->q->in_area)
        ar__sig_queue_remove(srv, x, AR_SIG_GONE_ENDED);
}

/* Staff stay connected (they keep their subscriptions) but leave the room, which goes with its
 * last member. */
static void staff_out(ar__sig_srv_t *srv, ar__sig_rec_t *x)
{
    if (x->role != AR_SIG_ROLE_STAFF)
        return;
    ar__sig_rec_set_room(srv, x, "");
    ar__sig_rec_publish(srv, x, "room");
}

/*
 * C5: the room goes for everyone; patients' and invitees' sessions end with it (P5, S4). Each
 * member is sent `ended` with AR__SIG_ACT_ENDED (its owner closes a patient or an invitee with
 * 4007 and deletes its record, sess.c own_frame), a patient leaves its queue, and staff leave
 * the room. mine: only the members this worker owns, for a room found open here after it was
 * marked ended elsewhere (invite.c, "A room open here when its marker comes"): the owners of
 * the others do the same on their own workers, so each member is told once.
 */
void ar__sig_room_end(ar__sig_srv_t *srv, ar__sig_room_t *room, int mine)
{
    /* Ended here: its marker, when it comes, ends nothing more (invite.c). */
    room->ended_here = 1;
    char id[AR_SIG_ID_MAX + 1];
    snprintf(id, sizeof(id), "%s", room->id); /* the id is allocated at its length */
    ar__sig_rec_t *members[2 * AR__SIG_ROOM_MAX];
    size_t n = 0;
    for (size_t i = 0; i < room->nmembers; i++) {
        ar__sig_rec_t *x = ar__sig_room_member(room, i);
        if (!mine || ar__sig_owns(srv, x))
            members[n++] = x;
    }
    for (size_t i = 0; i < n; i++)
        tell_ended(srv, id, members[i]);
    /* room is not read after this: it goes with its last member. */
    for (size_t i = 0; i < n; i++)
        staff_out(srv, members[i]);
}

void ar__sig_room_end_member(ar__sig_srv_t *srv, ar__sig_rec_t *x)
{
    if (!x->in_room)
        return;
    char id[AR_SIG_ID_MAX + 1];
    snprintf(id, sizeof(id), "%s", x->in_room->id);
    tell_ended(srv, id, x);
    staff_out(srv, x);
}

static void on_end(ar__sig_conn_t *cn, ar_sig_msg_t *m)
{
    ar__sig_srv_t *srv = cn->srv;
    ar__sig_room_t *room = ar__sig_room_to_run(cn, m);
    if (!room)
        return;
    char id[AR_SIG_ID_MAX + 1];
    snprintf(id, sizeof(id), "%s", room->id);
    int once = !room->persistent; /* read now: the room goes with its members */
    ar__sig_room_end(srv, room, 0);
    /* Gone for good: no token still valid for it opens it again (ar__sig_join_check,
     * on_arrive). A persistent room is only emptied (C6): it is meant to be opened again. */
    if (once)
        ar__sig_room_mark_ended(srv, id);
}

void ar__sig_handle(ar__sig_conn_t *cn, ar_sig_msg_t *m)
{
    ar__sig_srv_t *srv = cn->srv;
    ar__sig_sess_t *s = cn->sess;
    if (!s || !s->claims) {
        REFUSE(cn, m, AR_SIG_E_INTERNAL);
        return;
    }
    int role = s->rec->role;
    int calls = role != AR_SIG_ROLE_STAFF || s->claims->nclinics == 0 ||
                ar__sig_claims_room(s->claims)[0] != '\0';
    for (size_t i = 0; !calls && i < s->claims->nclinics; i++)
        calls = ar__sig_can_call(s->claims, s->claims->clinics[i].id);
    switch (m->type) {
    case AR_SIG_PING: {
        ar_sig_msg_t p;
        ar_sig_msg_init(&p, AR_SIG_PONG);
        p.u.ping.t = m->u.ping.t;
        ar__sig_send0(cn, &p);
        return;
    }
    case AR_SIG_PONG:
        return;
    case AR_SIG_ACK:
        ar__sig_sess_ack(srv, s, m->u.ack.seq);
        return;
    case AR_SIG_REFRESH:
        ar__sig_on_refresh(cn, m); /* refresh.c */
        return;
    case AR_SIG_BYE:
        ar__sig_sess_end(srv, s->rec, AR_SIG_LEFT_LEFT);
        ar__sig_conn_close(cn, AR_WS_CLOSE_NORMAL);
        return;
    case AR_SIG_JOIN:
    case AR_SIG_LEAVE:
    case AR_SIG_OFFER:
    case AR_SIG_ANSWER:
    case AR_SIG_CANDIDATE:
    case AR_SIG_QUALITY:
    case AR_SIG_END:
    case AR_SIG_REMOVE:
        /* Receptionists and reporters join no call (A1). */
        if (!calls) {
            REFUSE(cn, m, AR_SIG_E_FORBIDDEN);
            return;
        }
        break;
    default:
        ar__sig_area_handle(cn, m);
        return;
    }
    switch (m->type) {
    case AR_SIG_JOIN:
        on_join(cn, m);
        break;
    case AR_SIG_LEAVE:
        if (!s->rec->in_room) {
            REFUSE(cn, m, AR_SIG_E_BAD_STATE);
            break;
        }
        if (role == AR_SIG_ROLE_PATIENT && s->rec->q->in_area)
            ar__sig_queue_remove(srv, s->rec, AR_SIG_GONE_LEFT);
        ar__sig_room_leave(srv, s->rec, AR_SIG_LEFT_LEFT);
        break;
    case AR_SIG_QUALITY:
        on_quality(cn, m);
        break;
    case AR_SIG_END:
        on_end(cn, m);
        break;
    case AR_SIG_REMOVE:
        ar__sig_on_remove(cn, m); /* remove.c */
        break;
    default:
        on_relay(cn, m);
        break;
    }
}
