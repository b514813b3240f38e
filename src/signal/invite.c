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

struct ar__sig_invites_s {
    inv_t *b[INV_BUCKETS];
    size_t n;
};

static void inv_hash(const char *sub, uint8_t h[16])
{
    static const char dom[] = "anteroom invite v1";
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 16);
    crypto_generichash_update(&st, (const unsigned char *)dom, sizeof(dom));
    crypto_generichash_update(&st, (const unsigned char *)sub, strlen(sub));
    crypto_generichash_final(&st, h, 16);
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
    uint8_t h[16];
    inv_hash(sub, h);
    sodium_bin2hex(hex, 33, h, 16);
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

void ar__sig_invite_apply(ar__sig_srv_t *srv, const char *data, size_t len)
{
    json_t *o = json_loadb(data, len, JSON_REJECT_DUPLICATES, NULL);
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

void ar__sig_invites_free(ar__sig_srv_t *srv)
{
    ar__sig_invites_t *tab = srv->invites;
    if (!tab)
        return;
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
