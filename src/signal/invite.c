/*
 * One-time invite links across the jurisdiction (C4; docs/signal.md, "Invite links").
 *
 * An invitee token opens one session, on whichever worker or node it is first used. Every
 * worker keeps the set of invite tokens already used (a hash of the token's subject, the
 * session that used it, when, and the token's expiry; kept until that expiry, after which the
 * token opens nothing anyway), replicated over the bus (ar.<jur>.inv.<hash>):
 *  - a hello with an invitee token whose hash is in the set is refused (bad_token, "this
 *    invitation link was already used", close 4001);
 *  - otherwise the session is made and its claim (hash, peer, time, expiry) is published;
 *  - two claims for one token (two hellos on two workers within the bus's delay, or a worker
 *    that started after the first claim) are ranked by (claim time, peer id), the same on every
 *    worker: the owner of the later one ends it with that same error and close 4001, and the
 *    others see it leave as "removed". A worker that already held a claim older than the bus's
 *    delay when a conflicting one arrives publishes it again, since the claimer evidently never
 *    got it (it started later, or lost its bus connection meanwhile).
 * No owner and no request on the hello path: a hello is answered at once, a dead node takes
 * nothing with it, and the bus's delay is the window in which a reused link is let in briefly,
 * as for two racing joins to a room (flows.c).
 *
 * The same subjects carry the ended one-time rooms (below, "Ended one-time rooms").
 */
#include "internal.h"

#include "anteroom/alloc.h"
#include "anteroom/log.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define INV_BUCKETS 4096
#define INV_MAX 65536             /* tokens remembered at once; beyond, new invitees are refused */
#define INV_REPUBLISH_US 2000000u /* a claim this old should have reached everyone */

typedef struct inv_s {
    struct inv_s *next;
    uint8_t h[16];
    int64_t exp;
    uint64_t t; /* the claiming worker's clock, microseconds */
    char peer[AR__SIG_PEER_LEN + 1];
} inv_t;

typedef struct ended_s ended_t;

/* A catch-up on the ended rooms (below, "Catching up"): one round per bus connection. */
typedef struct ended_sync_s {
    uint8_t begun;     /* the bus started (ar__sig_rooms_ended_begin) */
    uint8_t pending;   /* this round has not finished: new sessions wait (ar__sig_bus_admit) */
    uint64_t epoch;    /* the subscribing connection's epoch this round is for (bus_pub.c) */
    uint64_t due_ms;   /* monotonic ms: when to ask (time to hear the heartbeats first) */
    uint64_t asked_ms; /* when the question went out (0: not yet) */
    uint64_t asked;    /* the worker asked (0: nobody, or its last page came) */
    uint32_t round;    /* echoed by the answers: a late answer to an older round is no "last" */
    int64_t since;     /* wall s: every marker of a room ended since then is held here */
    uint64_t learned;  /* markers taken from answers this round */
    /* Sending our own markers again after a cut (below, "Markers a cut may have lost"):
     * monotonic ms when each connection was last seen up, and the publishing connection's
     * epoch (its returns) last seen. */
    uint64_t up_ms, pup_ms, pepoch;
} ended_sync_t;

/* A marker this worker published (ar__sig_room_mark_ended), kept to be sent again. */
typedef struct own_s {
    uint8_t h[16];
    int64_t exp;
    uint64_t at_ms; /* ar__sig_rooms_ended_clock() when it was published */
} own_t;

struct ar__sig_invites_s {
    inv_t *b[INV_BUCKETS];
    size_t n;
    ended_t *ended; /* ended one-time rooms (below), allocated at the first */
    ended_sync_t sync;
    own_t *own; /* the last OWN_MAX markers this worker published: a ring, allocated at the first */
    size_t own_next, own_n;
};

/* The 16-byte key a string is known by on the bus and in the tables: never the string itself.
 * dom (its NUL included) keeps invite subjects and ended rooms apart. */
static void hash_dom(const char *dom, const char *str, uint8_t h[16])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 16);
    crypto_generichash_update(&st, (const unsigned char *)dom, strlen(dom) + 1);
    crypto_generichash_update(&st, (const unsigned char *)str, strlen(str));
    crypto_generichash_final(&st, h, 16);
}

#define DOM_INVITE "anteroom invite v1"
#define DOM_ENDED "anteroom ended room v1"

static void inv_hash(const char *sub, uint8_t h[16])
{
    hash_dom(DOM_INVITE, sub, h);
}

static void key_hex(const char *dom, const char *str, char hex[33])
{
    uint8_t h[16];
    hash_dom(dom, str, h);
    sodium_bin2hex(hex, 33, h, 16);
}

static ar__sig_invites_t *table(ar__sig_srv_t *srv)
{
    if (!srv->invites)
        srv->invites = ar_calloc(1, sizeof(ar__sig_invites_t));
    return srv->invites;
}

/* The entry for h, dropping expired entries of its bucket on the way. */
static inv_t *find(ar__sig_invites_t *tab, const uint8_t h[16], int64_t now)
{
    inv_t **pp = &tab->b[(h[0] | (unsigned)h[1] << 8) % INV_BUCKETS];
    while (*pp) {
        inv_t *e = *pp;
        if (e->exp < now) {
            *pp = e->next;
            ar_free(e);
            tab->n--;
            continue;
        }
        if (memcmp(e->h, h, 16) == 0)
            return e;
        pp = &e->next;
    }
    return NULL;
}

static void sweep(ar__sig_invites_t *tab, int64_t now)
{
    for (size_t i = 0; i < INV_BUCKETS; i++) {
        inv_t **pp = &tab->b[i];
        while (*pp) {
            inv_t *e = *pp;
            if (e->exp < now) {
                *pp = e->next;
                ar_free(e);
                tab->n--;
            } else {
                pp = &e->next;
            }
        }
    }
}

static inv_t *insert(ar__sig_invites_t *tab, const uint8_t h[16], int64_t now)
{
    if (tab->n >= INV_MAX)
        sweep(tab, now);
    if (tab->n >= INV_MAX)
        return NULL;
    inv_t *e = ar_calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    memcpy(e->h, h, 16);
    size_t k = (h[0] | (unsigned)h[1] << 8) % INV_BUCKETS;
    e->next = tab->b[k];
    tab->b[k] = e;
    tab->n++;
    return e;
}

static int earlier(uint64_t t1, const char *p1, uint64_t t2, const char *p2)
{
    return t1 != t2 ? t1 < t2 : strcmp(p1, p2) < 0;
}

static void publish(ar__sig_srv_t *srv, const inv_t *e)
{
    char hex[33], wid[17];
    sodium_bin2hex(hex, sizeof(hex), e->h, 16);
    snprintf(wid, sizeof(wid), "%016llx", (unsigned long long)srv->node_id);
    ar__sig_bus_rec(srv, "inv", hex,
                    json_pack("{s:s,s:s,s:I,s:I,s:s}", "w", wid, "h", hex, "e", (json_int_t)e->exp,
                              "t", (json_int_t)e->t, "p", e->peer));
}

void ar__sig_invite_key(const char *sub, char hex[33])
{
    key_hex(DOM_INVITE, sub, hex);
}

const char *ar__sig_invite_holder(ar__sig_srv_t *srv, const char *sub)
{
    uint8_t h[16];
    inv_hash(sub, h);
    const inv_t *e = srv->invites ? find(srv->invites, h, (int64_t)time(NULL)) : NULL;
    return e ? e->peer : NULL;
}

int ar__sig_invite_used(ar__sig_srv_t *srv, const ar_token_claims_t *cl)
{
    ar__sig_invites_t *tab = table(srv);
    if (!tab)
        return 1; /* fail closed */
    uint8_t h[16];
    inv_hash(cl->sub, h);
    return find(tab, h, (int64_t)time(NULL)) != NULL;
}

int ar__sig_invite_claim(ar__sig_srv_t *srv, const ar_token_claims_t *cl, const char *peer)
{
    ar__sig_invites_t *tab = table(srv);
    int64_t now = (int64_t)time(NULL);
    uint8_t h[16];
    inv_hash(cl->sub, h);
    inv_t *e = tab ? find(tab, h, now) : NULL;
    if (e || !tab || !(e = insert(tab, h, now)))
        return AR_EPERM; /* used meanwhile, or no room to remember it: fail closed */
    e->exp = cl->exp;
    e->t = ar__sig_now_us();
    snprintf(e->peer, sizeof(e->peer), "%s", peer);
    publish(srv, e);
    return 0;
}

/* The session that used a link another session used first: ended, if this worker owns it. */
static void end_loser(ar__sig_srv_t *srv, const char *peer)
{
    ar__sig_rec_t *r = ar__sig_rec_find(srv, peer);
    ar__sig_sess_t *s = r ? r->local : NULL;
    if (!s || s->is_backup || s->provisional || r->owner != srv->node_id)
        return; /* its owner, on its own worker, does the same */
    ar_log0(AR_LOG_INFO, "signal_invite_reuse_removed");
    if (r->in_room)
        ar__sig_room_leave(srv, r, AR_SIG_LEFT_REMOVED);
    if (ar__sig_sess_connected(s)) {
        /* Ends the session (sess.c), also when the error is what kills the connection. A
         * connection already gone would only report the network's code: ended below. */
        ar__sig_refuse(s->conn, AR_SIG_E_BAD_TOKEN, AR__SIG_INVITE_USED_TEXT, AR_SIG_HELLO,
                       AR_SIG_NONE, AR_SIG_CLOSE_BAD_TOKEN);
    } else {
        ar__sig_sess_end(srv, r, AR_SIG_LEFT_REMOVED);
    }
}

static void ended_apply(ar__sig_srv_t *srv, json_t *o);
static void own_take(ar__sig_srv_t *srv, json_t *o);

void ar__sig_invite_apply(ar__sig_srv_t *srv, const char *data, size_t len)
{
    json_t *o = json_loadb(data, len, JSON_REJECT_DUPLICATES, NULL);
    if (o && json_is_true(json_object_get(o, "end"))) {
        ended_apply(srv, o);
        json_decref(o);
        return;
    }
    const char *k = json_string_value(json_object_get(o, "k"));
    if (k) { /* on inv.resend, only a worker's own markers sent again ("Markers a cut ...") */
        if (strcmp(k, "ended!") == 0)
            own_take(srv, o);
        json_decref(o);
        return;
    }
    const char *w, *hex, *peer;
    json_int_t exp, t;
    uint8_t h[16];
    ar__sig_invites_t *tab = table(srv);
    int64_t now = (int64_t)time(NULL);
    if (!o || !tab ||
        json_unpack(o, "{s:s,s:s,s:I,s:I,s:s}", "w", &w, "h", &hex, "e", &exp, "t", &t, "p",
                    &peer) != 0 ||
        strtoull(w, NULL, 16) == srv->node_id || strlen(peer) != AR__SIG_PEER_LEN ||
        strlen(hex) != 32 || sodium_hex2bin(h, 16, hex, 32, NULL, NULL, NULL) != 0 || exp < now ||
        t < 0) {
        json_decref(o);
        return;
    }
    inv_t *e = find(tab, h, now);
    if (!e) {
        if ((e = insert(tab, h, now)) != NULL) {
            e->exp = exp;
            e->t = (uint64_t)t;
            snprintf(e->peer, sizeof(e->peer), "%s", peer);
        }
    } else if (strcmp(e->peer, peer) != 0) {
        char loser[AR__SIG_PEER_LEN + 1];
        if (earlier((uint64_t)t, peer, e->t, e->peer)) {
            snprintf(loser, sizeof(loser), "%s", e->peer);
            e->t = (uint64_t)t;
            e->exp = exp;
            snprintf(e->peer, sizeof(e->peer), "%s", peer);
        } else {
            snprintf(loser, sizeof(loser), "%s", peer);
            uint64_t now_us = ar__sig_now_us();
            if (now_us > e->t && now_us - e->t > INV_REPUBLISH_US)
                publish(srv, e);
        }
        end_loser(srv, loser);
    }
    json_decref(o);
}

static void ended_free(ended_t *t);

void ar__sig_invites_free(ar__sig_srv_t *srv)
{
    ar__sig_invites_t *tab = srv->invites;
    if (!tab)
        return;
    ended_free(tab->ended);
    ar_free(tab->own);
    for (size_t i = 0; i < INV_BUCKETS; i++) {
        inv_t *e = tab->b[i];
        while (e) {
            inv_t *n = e->next;
            ar_free(e);
            e = n;
        }
    }
    ar_free(tab);
    srv->invites = NULL;
}

/*
 * Ended one-time rooms (docs/protocol.md 5.13; docs/signal.md, "Ended rooms"). A room is made
 * again by the next join that names it, so after `end` every token still valid for it (the
 * patient's, an invite link not yet used) would open it again: a patient could queue again, or
 * meet an invitee with no clinician. Every worker therefore keeps the rooms ended in the
 * jurisdiction, replicated like invite claims (ar.<jur>.inv.<hash>, with "end": true), for as
 * long as the longest token that opens a one-time room (ENDED_KEEP_S); join and arrive in one
 * are refused. Kept: a hash of the room's id and an expiry, nothing that names anyone.
 *
 * Bounded: ENDED_MAX markers (48 bytes each with glibc's allocator: 24 MiB at most per worker),
 * 291 ends a second in the jurisdiction for 30 minutes. At the cap the oldest marker (the one
 * whose tokens run out first) is forgotten and a warning logged: that room could be opened
 * again by its patient's token for what is left of its 30 minutes, which shows the patient in
 * its clinic's queue like any arrival (an invitee still opens no room). Refusing new rooms
 * instead would refuse every new patient. Every worker holds the same set, so all reach the
 * cap together and forget the same markers.
 *
 * A worker that starts later, or comes back from a cut, asks for the markers it missed before
 * it admits a new session (below, "Catching up").
 */
#define ENDED_BUCKETS 65536
#define ENDED_MAX AR__SIG_ENDED_MAX
#define ENDED_KEEP_S 1800 /* the longest patient and invitee token: AR_APP_PATIENT_TOKEN_TTL */

typedef struct end_s {
    struct end_s *hnext, *fnext; /* its bucket; the order markers came in (oldest first) */
    int64_t exp;
    uint8_t h[16];
} end_t;

struct ended_s {
    end_t *b[ENDED_BUCKETS];
    end_t *head, *tail;
    size_t n;
    uint64_t dropped; /* forgotten at the cap */
};

static void ended_hash(const char *room, uint8_t h[16])
{
    hash_dom(DOM_ENDED, room, h);
}

static end_t **ended_bucket(ended_t *t, const uint8_t h[16])
{
    return &t->b[(h[0] | (unsigned)h[1] << 8) % ENDED_BUCKETS];
}

static end_t *ended_find(ended_t *t, const uint8_t h[16])
{
    end_t *e = t ? *ended_bucket(t, h) : NULL;
    while (e && memcmp(e->h, h, 16) != 0)
        e = e->hnext;
    return e;
}

/* The oldest marker goes: out of its bucket and the order. */
static void ended_pop(ended_t *t)
{
    end_t *e = t->head;
    end_t **pp = ended_bucket(t, e->h);
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    t->head = e->fnext;
    if (!t->head)
        t->tail = NULL;
    t->n--;
    ar_free(e);
}

/* Markers come in nearly in the order they expire (one lifetime for all; other nodes' clocks
 * may differ a little): a marker behind an unexpired one stays a little longer, never less. */
static void ended_expire(ended_t *t, int64_t now)
{
    while (t->head && t->head->exp < now)
        ended_pop(t);
}

/* 1 when the marker is new here; 0 when it was held already (its expiry may move later, never
 * earlier: a marker applied twice is applied once) or could not be kept. */
static int ended_insert(ar__sig_srv_t *srv, const uint8_t h[16], int64_t exp, int64_t now)
{
    ar__sig_invites_t *tab = table(srv);
    if (!tab)
        return 0;
    if (!tab->ended && !(tab->ended = ar_calloc(1, sizeof(ended_t))))
        return 0;
    ended_t *t = tab->ended;
    ended_expire(t, now);
    end_t *e = ended_find(t, h);
    if (e) {
        e->exp = exp > e->exp ? exp : e->exp;
        return 0;
    }
    if (t->n >= ENDED_MAX) {
        if (t->dropped++ % 65536 == 0)
            ar_log(AR_LOG_WARN, "signal_ended_rooms_full", AR_LF_INT("max", ENDED_MAX));
        ended_pop(t);
    }
    if (!(e = ar_calloc(1, sizeof(*e))))
        return 0;
    memcpy(e->h, h, 16);
    e->exp = exp;
    end_t **b = ended_bucket(t, h);
    e->hnext = *b;
    *b = e;
    if (t->tail)
        t->tail->fnext = e;
    else
        t->head = e;
    t->tail = e;
    t->n++;
    return 1;
}

static void own_add(ar__sig_srv_t *srv, const uint8_t h[16], int64_t exp);

/*
 * A room open here when its marker comes (docs/signal.md, "Ended rooms: a worker cut from the
 * bus"). A worker that did not hear a marker (cut from NATS when it went out) lets the
 * patient's token open the room again; the marker comes later, from the catch-up after the
 * cut or sent again by its publisher (below). Every worker applies it, and each ends, as `end`
 * does (flows.c ar__sig_room_end), the members of the room that it owns: so each member is
 * told `ended` once, by its own worker, and a patient's or invitee's session and record (with
 * the patient's data) go as after `end`. Done for every session of this worker's own after a new
 * marker (ar__sig_rooms_ended_sweep), and for a session this worker comes to own later, in a room
 * it may know was ended, at that moment, for that member alone (ar__sig_sess_check_ended): a
 * hand-over taken, a resume finished, a record update naming us, each session promoted at a
 * death (sess.c ar__sig_node_dead, after its walk of records). A room ended in the usual way is not
 * ended twice: its ender's worker flagged it (ended_here), and elsewhere the ender sent the
 * members `ended` (and staff their record updates) before it published the marker, on the same
 * connection, so their owners have ended them by the time the marker comes (NATS keeps a
 * publisher's order, and the inbox keeps it across subjects: bus.c). Rooms are checked by their
 * tag (index.c): the ended bucket it names, a few markers at most, and a hash of the id only
 * when one matches.
 */
static int ended_tag_held(const ended_t *t, const uint8_t tag[4], int64_t now)
{
    for (const end_t *e = t->b[(tag[0] | (unsigned)tag[1] << 8) % ENDED_BUCKETS]; e; e = e->hnext)
        if (memcmp(e->h, tag, 4) == 0 && e->exp >= now)
            return 1;
    return 0;
}

/* s is this worker's own, in a one-time room whose marker it holds (t: the markers, not empty). */
static int in_ended_room(ar__sig_srv_t *srv, const ended_t *t, int64_t now, const ar__sig_sess_t *s)
{
    const ar__sig_room_t *room = s->rec->in_room;
    return room && !room->persistent && ar__sig_owns(srv, s->rec) &&
           ended_tag_held(t, room->etag, now) && ar__sig_room_ended(srv, room->id);
}

/*
 * One session this worker has just come to own, ended alone: not the room for every member it
 * owns, and whether or not the room was ended here before (ended_here). That flag only keeps a
 * walk of sessions from ending one room once per member; a member this worker did not own then
 * (its owner elsewhere was cut from the bus, then died) was not ended by it, and would stay.
 * The callers have applied what its copy caught first (a hand-over's frames, a promoted
 * backup's "ended": sess.c), so a member already told is gone by now.
 */
void ar__sig_sess_check_ended(ar__sig_srv_t *srv, ar__sig_sess_t *s)
{
    const ended_t *t = srv->invites ? srv->invites->ended : NULL;
    if (!t || !t->n || !in_ended_room(srv, t, (int64_t)time(NULL), s))
        return;
    ar__sig_room_end_member(srv, s->rec);
    ar_log(AR_LOG_WARN, "signal_ended_room_closed", AR_LF_UINT("rooms", 1));
}

void ar__sig_rooms_ended_sweep(ar__sig_srv_t *srv)
{
    const ended_t *t = srv->invites ? srv->invites->ended : NULL;
    if (!t || !t->n)
        return;
    int64_t now = (int64_t)time(NULL);
    size_t rooms = 0;
    for (ar__sig_sess_t *s = srv->locals; s; s = s->lnext) {
        ar__sig_room_t *room = s->rec->in_room;
        if (!room || room->ended_here || !in_ended_room(srv, t, now, s))
            continue;
        /* Ending sends through the local queue (no session goes within this walk) and moves
         * staff out; the flag keeps its other members here from ending it again. */
        ar__sig_room_end(srv, room, 1);
        rooms++;
    }
    if (rooms)
        ar_log(AR_LOG_WARN, "signal_ended_room_closed", AR_LF_UINT("rooms", rooms));
}

void ar__sig_room_mark_ended(ar__sig_srv_t *srv, const char *room)
{
    uint8_t h[16];
    char hex[33], wid[17];
    int64_t now = (int64_t)time(NULL), exp = now + ENDED_KEEP_S;
    ended_hash(room, h);
    (void)ended_insert(srv, h, exp, now);
    own_add(srv, h, exp);
    sodium_bin2hex(hex, sizeof(hex), h, 16);
    snprintf(wid, sizeof(wid), "%016llx", (unsigned long long)srv->node_id);
    ar__sig_bus_rec(
        srv, "inv", hex,
        json_pack("{s:s,s:s,s:I,s:b}", "w", wid, "h", hex, "e", (json_int_t)exp, "end", 1));
}

void ar__sig_room_ended_key(const char *room, char hex[33])
{
    key_hex(DOM_ENDED, room, hex);
}

void ar__sig_room_ended_tag(const char *room, uint8_t tag[4])
{
    uint8_t h[16];
    ended_hash(room, h);
    memcpy(tag, h, 4);
}

int ar__sig_room_ended(ar__sig_srv_t *srv, const char *room)
{
    uint8_t h[16];
    ended_hash(room, h);
    const end_t *e = srv->invites ? ended_find(srv->invites->ended, h) : NULL;
    return e && e->exp >= (int64_t)time(NULL);
}

size_t ar__sig_rooms_ended_count(const ar__sig_srv_t *srv)
{
    return srv->invites && srv->invites->ended ? srv->invites->ended->n : 0;
}

static void ended_apply(ar__sig_srv_t *srv, json_t *o)
{
    const char *w, *hex;
    json_int_t exp;
    uint8_t h[16];
    int64_t now = (int64_t)time(NULL);
    if (json_unpack(o, "{s:s,s:s,s:I}", "w", &w, "h", &hex, "e", &exp) != 0 ||
        strtoull(w, NULL, 16) == srv->node_id || strlen(hex) != 32 ||
        sodium_hex2bin(h, 16, hex, 32, NULL, NULL, NULL) != 0 || exp < now)
        return;
    /* Another node's clock may run ahead: never kept longer than a token lasts, plus a minute. */
    if (exp > now + ENDED_KEEP_S + 60)
        exp = now + ENDED_KEEP_S + 60;
    if (ended_insert(srv, h, exp, now))
        ar__sig_rooms_ended_sweep(srv);
}

static void ended_free(ended_t *t)
{
    if (!t)
        return;
    while (t->head) {
        end_t *e = t->head;
        t->head = e->fnext;
        ar_free(e);
    }
    ar_free(t);
}

/*
 * Catching up (docs/signal.md, "Ended rooms: a worker that starts later"). A marker is
 * published once, when its room ends: a worker started afterwards (a new node, a worker its
 * supervisor restarted) or cut from the bus at that moment never hears it, and would let the
 * patient's token, valid for the rest of its 30 minutes, open the consultation again there.
 * So at the start of its bus, and each time its subscribing connection is back after a cut,
 * a worker asks for the markers, and holds new sessions (close 4016 "busy", as when its bus is
 * behind: bus_node.c ar__sig_bus_admit) until the answers are in: there is no window in which
 * such a worker admits a session before knowing what ended (a resume is never held: its
 * session was not ended, or it finds nothing).
 *  - Whom: each worker says in its heartbeats for how long its set has been complete ("ec",
 *    seconds since its coverage begins; 0 while it catches up), and the one that says most is
 *    asked, alone. It holds every marker any live worker could: a marker older than its
 *    coverage was heard only by workers listening before that, and any such worker alive
 *    (or any that caught up from one) would cover more. One answer per round, whatever the
 *    number of workers. At the start the worker first listens to the heartbeats for
 *    AR__SIG_ENDED_HEAR_MS (each worker beats once a second); after a cut it knows them
 *    already and asks at once.
 *  - The answer: the asked worker's markers in pages of SYNC_PAGE (the last one says so), on
 *    the asker's proc subject, with the time its own coverage begins. Once its last page
 *    came, the asker's coverage begins there too if that is earlier. A cut does not move the
 *    coverage back: what ended during it comes from the answer of the round after it.
 *  - Bounded: SYNC_ANSWER_MS after asking, an asked worker that has not answered (it died,
 *    or its answer was dropped) is given up on, logged; sessions are admitted again. At most
 *    ENDED_MAX markers an answer (24 bytes each, 48 as hex: 24 MiB at the cap, from one
 *    worker); pages are applied as markers from the bus are (expired ones skipped, a clock
 *    ahead clamped). A page's markers, older, go in behind those heard live since the start,
 *    so they stay a little longer than they need to (ended_expire takes from the head), never
 *    less.
 * Not reactive, as invite claims are: no worker sees a room's reopening as a conflict before
 * the patient is in (queued, shown to staff), and taking them out a bus's delay later leaves
 * that window; one answer per starting worker closes it.
 * During a cut nothing can be learnt, and a room reopened here meanwhile is ended when its
 * marker comes (above, "A room open here when its marker comes"); a marker the asked worker
 * missed too comes from its publisher (below, "Markers a cut may have lost"). What it does not
 * cover: markers forgotten at the cap everywhere, a marker whose publisher stopped and that
 * every live worker missed, and a jurisdiction whose every worker stopped.
 */
#define SYNC_ANSWER_MS 3000u  /* the longest wait for an asked worker's last page */
#define SYNC_PAGE 1024        /* markers a page: 48 KiB of hex */
#define SYNC_REC ((size_t)24) /* a marker in a page: its hash, its expiry (8 bytes LE) */

static uint64_t own_window(uint64_t last, uint64_t now_ms);
static void own_send(ar__sig_srv_t *srv, uint64_t to, uint64_t window_ms, int ask);

/* The round ends: answered (the asker's coverage may begin earlier now) or given up on. */
static void sync_finish(ar__sig_srv_t *srv, ended_sync_t *y, int64_t their_since, uint64_t now_ms)
{
    int answered = !y->asked;
    y->pending = 0;
    __atomic_store_n(&srv->ended_catchup, 0, __ATOMIC_RELAXED);
    if (answered && their_since < y->since)
        y->since = their_since;
    uint64_t ms = now_ms > y->asked_ms ? now_ms - y->asked_ms : 0;
    size_t held = ar__sig_rooms_ended_count(srv);
    if (!answered) /* what it alone knew stays unknown here */
        ar_log(AR_LOG_WARN, "signal_ended_catchup_unanswered", AR_LF_UINT("markers", y->learned),
               AR_LF_UINT("ms", ms), AR_LF_UINT("rooms_ended", held));
    else
        ar_log(AR_LOG_INFO, "signal_ended_caught_up", AR_LF_UINT("markers", y->learned),
               AR_LF_UINT("ms", ms), AR_LF_UINT("rooms_ended", held));
}

/* Asks the live worker whose markers are complete for longest (above); among those complete
 * for ENDED_KEEP_S, which all hold the same, one at random, so that the workers of a node
 * started at once do not all ask the same one. */
static void sync_ask(ar__sig_srv_t *srv, ended_sync_t *y, uint64_t now_ms)
{
    const ar__sig_node_t *best = NULL;
    uint32_t complete = 0;
    for (size_t i = 0; i < srv->nnodes; i++) {
        const ar__sig_node_t *n = &srv->nodes[i];
        if (n->id == srv->node_id || !ar__sig_node_alive(srv, n->id))
            continue;
        if (n->ended_cover_s >= ENDED_KEEP_S) /* reservoir sampling: each complete one alike */
            best = randombytes_uniform(++complete) == 0 ? n : best;
        else if (!complete && (!best || n->ended_cover_s > best->ended_cover_s))
            best = n;
    }
    y->asked_ms = now_ms ? now_ms : 1;
    y->round++;
    y->learned = 0;
    y->asked = best ? best->id : 0;
    if (!best) { /* nobody else: nothing to learn */
        sync_finish(srv, y, INT64_MAX, now_ms);
        return;
    }
    char me[17];
    snprintf(me, sizeof(me), "%016llx", (unsigned long long)srv->node_id);
    ar__sig_bus_proc(srv, y->asked,
                     json_pack("{s:s,s:s,s:i}", "k", "ended?", "from", me, "q", (int)y->round));
}

uint64_t ar__sig_rooms_ended_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void ar__sig_rooms_ended_begin(ar__sig_srv_t *srv, uint64_t epoch, uint64_t now_ms,
                               unsigned hear_ms)
{
    ar__sig_invites_t *tab = table(srv);
    if (!tab)
        return; /* no memory for the tables at all: nothing to hold markers in either */
    ended_sync_t *y = &tab->sync;
    if (!y->begun) /* the start: nothing before now; after a cut, still what it held */
        y->since = (int64_t)time(NULL);
    y->begun = 1;
    y->pending = 1;
    __atomic_store_n(&srv->ended_catchup, 1, __ATOMIC_RELAXED); /* read by /readyz's thread */
    y->epoch = epoch;
    y->due_ms = now_ms + hear_ms;
    y->asked_ms = 0;
    y->asked = 0;
}

int ar__sig_rooms_ended_waiting(const ar__sig_srv_t *srv)
{
    return srv->invites && srv->invites->sync.pending;
}

int ar__sig_rooms_ended_step(ar__sig_srv_t *srv, uint64_t now_ms)
{
    ended_sync_t *y = srv->invites ? &srv->invites->sync : NULL;
    if (!y || !y->pending)
        return -1;
    if (!y->asked_ms) {
        if (now_ms < y->due_ms)
            return (int)(y->due_ms - now_ms);
        sync_ask(srv, y, now_ms);
        return y->pending ? (int)SYNC_ANSWER_MS : -1;
    }
    if (now_ms - y->asked_ms >= SYNC_ANSWER_MS) {
        sync_finish(srv, y, INT64_MAX, now_ms);
        return -1;
    }
    return (int)(y->asked_ms + SYNC_ANSWER_MS - now_ms);
}

int ar__sig_rooms_ended_sync(ar__sig_srv_t *srv, uint64_t epoch, int up, uint64_t now_ms)
{
    ended_sync_t *y = srv->invites ? &srv->invites->sync : NULL;
    if (!y || !y->begun)
        return 0;
    if (up && epoch != y->epoch) {
        ar_log0(AR_LOG_INFO, "signal_ended_catchup_after_cut");
        /* Ours that the cut may have lost, and a question for everyone else's of the same
         * window (above, "Markers a cut may have lost"), besides the catch-up's one worker. */
        own_send(srv, 0, own_window(y->up_ms, now_ms), 1);
        ar__sig_rooms_ended_begin(srv, epoch, now_ms, 0); /* the workers are known: ask now */
    }
    if (up && epoch == y->epoch)
        y->up_ms = now_ms;
    ar__sig_rooms_ended_step(srv, now_ms);
    /* While cut (not up), nothing can be learnt: admission waits as the bus's backlog says. */
    return y->pending;
}

uint32_t ar__sig_rooms_ended_cover(const ar__sig_srv_t *srv)
{
    const ended_sync_t *y = srv->invites ? &srv->invites->sync : NULL;
    int64_t now = (int64_t)time(NULL);
    if (!y || !y->begun || y->pending || now <= y->since)
        return 0;
    return now - y->since > (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)(now - y->since);
}

/* The i-th record of a page in hex: a marker's hash, then its expiry (8 bytes, little-endian). */
static void page_rec(char *hex, size_t i, const uint8_t h[16], int64_t exp)
{
    uint8_t rec[SYNC_REC];
    memcpy(rec, h, 16);
    ar__sig_le_put(rec + 16, (uint64_t)exp, 8);
    sodium_bin2hex(hex + i * SYNC_REC * 2, SYNC_REC * 2 + 1, rec, SYNC_REC);
}

/* One page of the answer to worker `to` (round q): the markers' records, as hex. */
static void sync_page(ar__sig_srv_t *srv, uint64_t to, int q, const char *hex, int last)
{
    const ended_sync_t *y = &srv->invites->sync;
    /* A worker that never started a bus (tests) vouches for nothing before now. */
    int64_t since = y->begun ? y->since : (int64_t)time(NULL);
    char me[17];
    snprintf(me, sizeof(me), "%016llx", (unsigned long long)srv->node_id);
    ar__sig_bus_proc(srv, to,
                     json_pack("{s:s,s:s,s:i,s:I,s:s,s:b}", "k", "ended", "w", me, "q", q, "s",
                               (json_int_t)since, "m", hex, "b", last));
}

/* "ended?": every marker this worker holds, oldest first, to the asker. */
static void sync_answer(ar__sig_srv_t *srv, json_t *o)
{
    const char *from;
    int q;
    ar__sig_invites_t *tab = table(srv);
    if (!tab || json_unpack(o, "{s:s,s:i}", "from", &from, "q", &q) != 0)
        return;
    uint64_t to = strtoull(from, NULL, 16);
    if (!to || to == srv->node_id)
        return;
    char *hex = ar_malloc((size_t)SYNC_PAGE * SYNC_REC * 2 + 1);
    if (!hex)
        return; /* the asker gives up on us after SYNC_ANSWER_MS (logged there) */
    int64_t now = (int64_t)time(NULL);
    size_t n = 0;
    if (tab->ended)
        ended_expire(tab->ended, now);
    const end_t *e = tab->ended ? tab->ended->head : NULL;
    for (;;) {
        while (e && e->exp < now)
            e = e->fnext;
        if (!e || n == SYNC_PAGE) { /* the last page may be empty: the asker waits for it */
            hex[n * SYNC_REC * 2] = '\0';
            sync_page(srv, to, q, hex, e == NULL);
            n = 0;
            if (!e)
                break;
        }
        page_rec(hex, n++, e->h, e->exp);
        e = e->fnext;
    }
    ar_free(hex);
}

/* The markers of a page (hex of SYNC_REC-byte records), applied as markers from the bus are
 * (expired ones skipped, a clock ahead clamped); a room open here for a new one is ended
 * (ar__sig_rooms_ended_sweep). How many were taken, or -1 when the page is malformed (what came
 * before the fault is kept). */
static long page_apply(ar__sig_srv_t *srv, const char *hex, size_t len)
{
    if (len % (SYNC_REC * 2) != 0)
        return -1;
    size_t fresh = 0;
    long taken = 0;
    int64_t now = (int64_t)time(NULL);
    for (size_t i = 0; i < len; i += SYNC_REC * 2) {
        uint8_t rec[SYNC_REC];
        if (sodium_hex2bin(rec, sizeof(rec), hex + i, SYNC_REC * 2, NULL, NULL, NULL) != 0) {
            taken = -1;
            break;
        }
        uint64_t exp = ar__sig_le_get(rec + 16, 8);
        if ((int64_t)exp < now || exp > (uint64_t)INT64_MAX)
            continue;
        /* As from the bus (ended_apply): never kept longer than a token lasts, plus a minute. */
        if ((int64_t)exp > now + ENDED_KEEP_S + 60)
            exp = (uint64_t)(now + ENDED_KEEP_S + 60);
        fresh += (size_t)ended_insert(srv, rec, (int64_t)exp, now);
        taken++;
    }
    if (fresh)
        ar__sig_rooms_ended_sweep(srv);
    return taken;
}

/* "ended": a page of an answer. Its markers count whoever sent it; its end only this round's. */
static void sync_take(ar__sig_srv_t *srv, json_t *o)
{
    const char *w, *hex;
    int q, last;
    json_int_t since;
    size_t len;
    ar__sig_invites_t *tab = srv->invites;
    if (!tab || json_unpack(o, "{s:s,s:i,s:I,s:s%,s:b}", "w", &w, "q", &q, "s", &since, "m", &hex,
                            &len, "b", &last) != 0)
        return;
    ended_sync_t *y = &tab->sync;
    long taken = page_apply(srv, hex, len);
    if (taken < 0)
        return;
    y->learned += (uint64_t)taken;
    if (last && y->pending && y->asked && (uint32_t)q == y->round &&
        strtoull(w, NULL, 16) == y->asked) {
        y->asked = 0;
        sync_finish(srv, y, since, ar__sig_rooms_ended_clock());
    }
}

/*
 * Markers a cut may have lost (docs/signal.md, "Ended rooms: a worker cut from the bus"). The
 * catch-up after a cut asks one worker; a marker that worker missed too (both cut when it went
 * out: a NATS server restarted) is still held by its publisher, and a marker that left its
 * publisher just before the publisher's own cut was noticed (written to a socket nats-server
 * never read) reached nobody. So each worker keeps the last OWN_MAX markers it published, with
 * when, and sends those of a window again, as one page ("ended!", on inv.resend, applied by
 * every worker as markers from the bus are: a marker held already changes nothing):
 *  - when its subscribing connection is back after a cut: those published since OWN_MARGIN_MS
 *    before it was last seen up, and the page asks ("d": that window in ms, a duration, so the
 *    nodes' clocks do not matter) every other worker for theirs of the same window;
 *  - when its publishing connection is back (it may have been cut alone): the same, asking
 *    nothing;
 *  - asked: those of the window asked for, on the asker's proc subject, when there are any.
 * Bounded: a page is at most OWN_MAX markers (48 KiB), one per return of a connection and one
 * per question; a worker asks once per return. The margin covers what was queued or in flight
 * when the cut began (a publisher's backlog counts for admission, bus_node.c).
 */
#define OWN_MAX SYNC_PAGE
#define OWN_MARGIN_MS 30000u
#define OWN_WINDOW_MAX_MS ((uint64_t)ENDED_KEEP_S * 1000u)

static void own_add(ar__sig_srv_t *srv, const uint8_t h[16], int64_t exp)
{
    ar__sig_invites_t *tab = table(srv);
    if (!tab || (!tab->own && !(tab->own = ar_calloc(OWN_MAX, sizeof(own_t)))))
        return; /* not kept: sent once only, as before */
    own_t *o = &tab->own[tab->own_next];
    memcpy(o->h, h, 16);
    o->exp = exp;
    o->at_ms = ar__sig_rooms_ended_clock();
    tab->own_next = (tab->own_next + 1) % OWN_MAX;
    if (tab->own_n < OWN_MAX)
        tab->own_n++;
}

/* The window from `last` (when the connection was last seen up; 0: never) to now_ms. */
static uint64_t own_window(uint64_t last, uint64_t now_ms)
{
    if (!last)
        return OWN_WINDOW_MAX_MS;
    uint64_t w = (now_ms > last ? now_ms - last : 0) + OWN_MARGIN_MS;
    return w < OWN_WINDOW_MAX_MS ? w : OWN_WINDOW_MAX_MS;
}

/* Our markers published in the last window_ms, unexpired, as a page's hex (hex: room for
 * OWN_MAX records); how many. */
static size_t own_hex(const ar__sig_invites_t *tab, uint64_t window_ms, uint64_t now_ms, char *hex)
{
    size_t n = 0;
    int64_t now = (int64_t)time(NULL);
    hex[0] = '\0';
    for (size_t i = 0; tab->own && i < tab->own_n; i++) {
        /* Oldest first, as markers came in (ended_expire takes from the head). */
        const own_t *o = &tab->own[(tab->own_next + OWN_MAX - tab->own_n + i) % OWN_MAX];
        if (o->exp < now || o->at_ms + window_ms < now_ms)
            continue;
        page_rec(hex, n++, o->h, o->exp);
    }
    return n;
}

/* Our markers of the last window_ms (a duration: measured back from now on the clock they were
 * stamped with), to every worker (to: 0) or to one; ask: the page asks every worker for theirs
 * of that window. Nothing when there is nothing to send or ask. */
static void own_send(ar__sig_srv_t *srv, uint64_t to, uint64_t window_ms, int ask)
{
    uint64_t now_ms = ar__sig_rooms_ended_clock();
    ar__sig_invites_t *tab = table(srv);
    char *hex = tab ? ar_malloc((size_t)OWN_MAX * SYNC_REC * 2 + 1) : NULL;
    if (!hex)
        return; /* not sent: the others learn of these markers no better than before */
    size_t n = own_hex(tab, window_ms, now_ms, hex);
    if (n || ask) {
        char me[17];
        snprintf(me, sizeof(me), "%016llx", (unsigned long long)srv->node_id);
        json_t *o = json_pack("{s:s,s:s,s:s}", "k", "ended!", "w", me, "m", hex);
        if (o && ask)
            json_object_set_new(o, "d", json_integer((json_int_t)window_ms));
        if (to)
            ar__sig_bus_proc(srv, to, o);
        else
            ar__sig_bus_rec(srv, "inv", "resend", o);
        if (n)
            ar_log(AR_LOG_INFO, "signal_ended_resent", AR_LF_UINT("markers", n),
                   AR_LF_INT("answer", to != 0));
    }
    ar_free(hex);
}

/* "ended!": a worker's own markers sent again (or an answer to ours); with "d", it asks for
 * ours of the last d ms. */
static void own_take(ar__sig_srv_t *srv, json_t *o)
{
    const char *w, *hex;
    size_t len;
    if (json_unpack(o, "{s:s,s:s%}", "w", &w, "m", &hex, &len) != 0)
        return;
    uint64_t from = strtoull(w, NULL, 16);
    if (!from || from == srv->node_id)
        return; /* our own page, heard back */
    long taken = page_apply(srv, hex, len);
    json_int_t d = json_integer_value(json_object_get(o, "d"));
    if (taken >= 0 && d > 0) {
        uint64_t window = (uint64_t)d < OWN_WINDOW_MAX_MS ? (uint64_t)d : OWN_WINDOW_MAX_MS;
        own_send(srv, from, window, 0);
    }
}

void ar__sig_rooms_ended_pub(ar__sig_srv_t *srv, uint64_t pepoch, int up, uint64_t now_ms)
{
    ended_sync_t *y = srv->invites ? &srv->invites->sync : NULL;
    if (!y || !y->begun || !up)
        return;
    if (pepoch != y->pepoch) {
        y->pepoch = pepoch;
        own_send(srv, 0, own_window(y->pup_ms, now_ms), 0);
    }
    y->pup_ms = now_ms;
}

int ar__sig_rooms_ended_msg(ar__sig_srv_t *srv, void *json_obj)
{
    const char *k = json_string_value(json_object_get(json_obj, "k"));
    if (!k || strncmp(k, "ended", 5) != 0)
        return 0;
    if (strcmp(k, "ended?") == 0)
        sync_answer(srv, json_obj);
    else if (strcmp(k, "ended") == 0)
        sync_take(srv, json_obj);
    else if (strcmp(k, "ended!") == 0)
        own_take(srv, json_obj);
    return 1;
}
