/*
 * A staff session's token renewed in place (docs/protocol.md 5.15; docs/signal.md, "Sessions and
 * their tokens' lifetime").
 *
 * A token is proven at hello; staff tokens live 10 minutes (the app's AR_APP_STAFF_TOKEN_TTL),
 * and a connection may stay up for days. So a staff client sends `refresh {token}` with the
 * next token the app gives it, before the current one expires. The token is checked exactly as
 * at hello (signature, audience, jurisdiction, expiry) and must name the session's subject and
 * role; the session then takes its claims, so that a clinic or a role the app withdrew stops
 * applying at once: every action checks the claims when it is asked for, the waiting areas
 * the new claims no longer allow are unsubscribed here (no more queue frames, with their
 * patients' names and answers), and a room they would no longer let it join is left (no more
 * of that call's media negotiation: offers, answers, candidates). A staff member whose account
 * lost its roles gets no token from the app: its session is closed by the once-a-second sweep
 * (srv.c ar__sig_srv_tick) when the token it holds is past its exp by more than the
 * token-allowance.
 *
 * Patients and invitees are not watched: their sessions end with their consultation, and a
 * patient may resume with an expired token by design (5.10).
 */
#include "internal.h"

#include "anteroom/alloc.h"
#include "anteroom/log.h"

#include <sodium.h>
#include <string.h>
#include <time.h>

int ar__sig_claims_prune(ar__sig_srv_t *srv, ar__sig_sess_t *s)
{
    ar__sig_rec_t *r = s->rec;
    if (!r || r->role != AR_SIG_ROLE_STAFF || !s->claims)
        return 0;
    int dropped = 0;
    for (size_t i = r->q->nsubs; i-- > 0;) {
        if (ar__sig_can_queue(s->claims, r->q->subs[i][0].s))
            continue;
        /* As an unsubscribe does (area.c on_subscribe): the pair goes from the record, the
         * record from the area's subscribers, and every worker is told below. */
        ar__sig_area_t *a = ar__sig_area_find(srv, r->q->subs[i][0].s, r->q->subs[i][1].s);
        r->q->subs[i][0] = r->q->subs[r->q->nsubs - 1][0];
        r->q->subs[i][1] = r->q->subs[r->q->nsubs - 1][1];
        r->q->nsubs--;
        ar__sig_area_unsub(srv, r, a);
        dropped = 1;
    }
    if (dropped)
        ar__sig_rec_publish(srv, r, "subs");
    return dropped;
}

int ar__sig_claims_evict(ar__sig_srv_t *srv, ar__sig_sess_t *s)
{
    ar__sig_rec_t *r = s->rec;
    if (!r || r->role != AR_SIG_ROLE_STAFF || !s->claims || s->is_backup || !r->in_room)
        return 0;
    /* The join's own check (flows.c), not a copy of it: whatever a join of this room would be
     * refused for now, the session may not stay for. A persistent room included: its staff
     * token names it (the page refreshes such a session with the room's token, so it stays)
     * or its clinic is one where the session may see patients. */
    if (ar__sig_join_check(srv, s, r->in_room, r->in_room->id) == AR__SIG_JOIN_OK)
        return 0;
    ar_log0(AR_LOG_INFO, "signal_claims_left_room");
    /* The client hears why, in a session-level frame (kept for a resume, like remove.c's): a
     * colleague's `remove` says "removed" (it may join again), this that its own access went
     * (a join would be refused). It goes before the leave's frames, as a removal's does. */
    ar__sig_announce_left(srv, r, &r->peer, 1, AR_SIG_LEFT_REVOKED);
    /* As a client's `leave` (flows.c): the others get peer_left "removed" (taken out by the
     * server; why is the staff member's business, not the patient's), every worker the record
     * update, and a patient this session was seeing is marked anew (area.c ar__sig_seen_left:
     * by a colleague still in the room, else nobody), so no patient stays "seen" by someone
     * who may no longer see it. The areas were pruned first, so the queue_update that marks the
     * patient waiting again goes to the clinic's subscribers, not to this session. */
    ar__sig_room_leave(srv, r, AR_SIG_LEFT_REMOVED);
    return 1;
}

static void refused(ar__sig_conn_t *cn, const ar_sig_msg_t *m, int code, const char *text)
{
    /* A refresh that fails leaves the session as it was (its old token's time still runs): the
     * client may try again with another token before the sweep closes it. */
    ar__sig_send_error(cn, code, text, m->type, m->id);
}

void ar__sig_on_refresh(ar__sig_conn_t *cn, ar_sig_msg_t *m)
{
    ar__sig_srv_t *srv = cn->srv;
    ar__sig_sess_t *s = cn->sess;
    if (s->rec->role != AR_SIG_ROLE_STAFF) {
        refused(cn, m, AR_SIG_E_FORBIDDEN, "only staff sessions refresh their token");
        return;
    }
    /* On the heap as at hello: ar_token_claims_t is 3.4 KiB. */
    ar_token_claims_t *cl = ar_malloc(sizeof(*cl));
    if (!cl) {
        refused(cn, m, AR_SIG_E_INTERNAL, NULL);
        return;
    }
    int64_t now = (int64_t)time(NULL);
    int rc = ar_token_verify(&srv->keys, m->u.refresh.token.p, m->u.refresh.token.len, "signal",
                             now, cl);
    if (rc == 0 && strcmp(cl->jur, srv->conf->jurisdiction) != 0)
        rc = AR_EPERM; /* S10, as at hello */
    uint8_t h[16] = {0};
    if (rc == 0)
        ar__sig_subhash(cl, h);
    ar__sig_claims_t *k = NULL;
    if (rc != 0) {
        refused(cn, m, rc == AR_EEXPIRED ? AR_SIG_E_TOKEN_EXPIRED : AR_SIG_E_BAD_TOKEN, NULL);
    } else if (cl->role != AR_TOKEN_STAFF || sodium_memcmp(h, s->subhash, sizeof(h)) != 0) {
        /* Another subject is another person's (or another sign-in's) token: a session is not
         * handed from one to another. A resume tests the subject too (ar__sig_sess_secret_ok). */
        refused(cn, m, AR_SIG_E_FORBIDDEN, "the token names another subject or role");
    } else if (!(k = ar__sig_claims_new(cl))) {
        refused(cn, m, AR_SIG_E_INTERNAL, NULL);
    }
    ar_free_wiped(cl);
    sodium_memzero(h, sizeof(h));
    if (!k)
        return;
    ar__sig_claims_free(s->claims);
    s->claims = k; /* its exp is what the sweep reads now */
    if (ar__sig_claims_prune(srv, s))
        ar_log0(AR_LOG_INFO, "signal_refresh_unsubscribed");
    /* Before the answer, while s is surely there (a send may close cn); its frames still come
     * after the answer: ar__sig_to queues them (bus.c), never writes them from this handler. */
    (void)ar__sig_claims_evict(srv, s);
    ar_sig_msg_t a;
    ar_sig_msg_init(&a, AR_SIG_REFRESHED);
    a.u.refresh.exp = k->exp;
    ar__sig_send0(cn, &a);
}

int ar__sig_token_sweep(ar__sig_srv_t *srv, ar__sig_conn_t *cn, int64_t wall)
{
    int64_t allowance = srv->conf->token_allowance / 1000;
    const ar__sig_claims_t *k = cn->sess ? cn->sess->claims : NULL;
    if (!k || wall <= (int64_t)k->exp + allowance)
        return 0;
    ar_log0(AR_LOG_INFO, "signal_token_expired_closed");
    /* 4001 ends the session (sess.c): its room and subscriptions go as after a bye. */
    ar__sig_refuse(cn, AR_SIG_E_TOKEN_EXPIRED, "the token expired and was not refreshed", 0,
                   AR_SIG_NONE, AR_SIG_CLOSE_BAD_TOKEN);
    return 1;
}
