/*
 * Session resume (P6, docs/protocol.md 5.10): a hello with a resume token gets its session back
 * on any worker of any node, within the grace period.
 *
 * On the owner it is local. Elsewhere the worker first subscribes to the session's frames (so
 * nothing sent during the hand-over is lost), then asks the owner over the bus to hand the
 * session over; the owner checks the secret and the token's subject, answers with its replay
 * buffer and lets go. If the owner has died, the session's backup promotes itself (sess.c)
 * and the next attempt goes there, or is local when this worker was the backup.
 */
#include "internal.h"

#include "anteroom/alloc.h"
#include "anteroom/log.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int available(const ar__sig_sess_t *s, int64_t last)
{
    return ar__sig_sess_resumable(s, last);
}

/* Attaches cn to s (which this worker now owns), welcomes and replays. presented: the secret
 * the client resumed with (checked), kept beside the new one until the client shows it got the
 * welcome. */
static void finish(ar__sig_conn_t *cn, ar__sig_sess_t *s, const ar_token_claims_t *claims,
                   const char *presented, int64_t last_seq, int moved)
{
    ar__sig_srv_t *srv = cn->srv;
    /* The new token's claims: it may name more clinics. Without memory for them the session is
     * still taken (it is ours now: the old owner may have let go), but the client gets error
     * internal and close 4014 instead of the welcome, and resumes again with the secret it
     * holds (not renewed): a copy that was a backup has no claims to serve it with. */
    ar__sig_claims_t *cl = ar__sig_claims_new(claims);
    ar__sig_conn_t *old = s->conn;
    if (old && old != cn)
        ar__sig_sess_close_conn(s, AR_SIG_CLOSE_REPLACED);
    if (cl) {
        ar__sig_claims_free(s->claims);
        s->claims = cl;
        (void)ar__sig_claims_prune(srv, s); /* areas the new token no longer allows (refresh.c) */
        s->conn = cn;
        cn->sess = s;
        /* The welcome below may be lost with cn, after which the client still holds only
         * what it presented: that one keeps working until its first frame on cn (srv.c
         * on_message), and the backup learns both ("res" below, or "adopt"). */
        if (ar__sig_sess_rotate_resume(s, presented) != 0)
            ar_log0(AR_LOG_WARN, "signal_resume_secret_kept"); /* the welcome carries it again */
        s->rec->away = 0;
        /* Without memory for it an ask from an attempt the client left can still take the
         * session from cn (handover.c stale_ask), as before it was kept. */
        ar__sig_conn_cold_t *cc = ar__sig_conn_cold(cn);
        if (cc)
            cc->resumed_ms = ar__sig_now_us() / 1000;
    } else {
        /* Refused below: the session stays away, with cn not attached, as if its connection had
         * just been lost (sess.c ar__sig_sess_lost): frames for it are kept for the next resume,
         * not sent to a connection being closed, and its grace period starts again now that
         * the client is told to come back. The rest is as with memory: the owner is us (the old
         * owner may have let go, and a promoter must yield to the copy we own again), the
         * client's last_seq is what it has (numbering goes on after it, so promoted is over),
         * and the secret it holds still works, as its subject hash is unchanged. */
        ar__sig_sess_away_now(s, srv->now);
        s->rec->away = 1;
    }
    s->rec->owner = srv->node_id;
    if (last_seq > s->seq)
        s->seq = last_seq; /* frames a promoted backup never learnt of: the client has them */
    s->promoted = 0;
    int replayed = -1;
    if (cl) {
        ar__sig_welcome(cn, s, 1);
        /* Nothing when the welcome did not go; broken off when cn goes during it. Either way
         * the uncertain marks stay (here and on the backup) for the next resume (5.10.1). */
        replayed = ar__sig_replay(srv, s, last_seq);
        ar_metric_add(srv->m.resumes, 0, 1);
    } else {
        ar_log0(AR_LOG_WARN, "signal_resume_no_memory");
        ar__sig_refuse(cn, AR_SIG_E_INTERNAL, NULL, AR_SIG_HELLO, AR_SIG_NONE,
                       AR_SIG_CLOSE_SHUTDOWN);
    }
    ar__sig_rec_publish(srv, s->rec, "away");
    char peer[AR__SIG_PEER_LEN + 1];
    memcpy(peer, s->rec->peer, sizeof(peer));
    if (moved) {
        ar__sig_sess_adopt(srv, s);         /* a new backup gets the buffer and the new secret */
        ar__sig_sess_flush_pending(srv, s); /* an "ended" frame it caught ends it, s and all */
    } else if (s->rec->backup) {
        char text[AR__SIG_RESUME_LEN + 1];
        ar__sig_sess_resume_text(s, text);
        json_t *res = json_pack("{s:s,s:s,s:s,s:b}", "k", "res", "p", s->rec->peer, "r", text, "c",
                                replayed >= 0);
        sodium_memzero(text, sizeof(text));
        ar__sig_sess_prev_put(s, res);
        ar__sig_bus_proc(srv, s->rec->backup, res);
    }
    ar__sig_rec_t *r = ar__sig_rec_find(srv, peer);
    if (!r || r->local != s)
        return; /* ended by a frame it caught: nothing of it is read after */
    /* A room the new token would not let it join is left as after a refresh (refresh.c), once
     * the session is settled here: owned, welcomed, replayed, its backup told. */
    if (cl)
        (void)ar__sig_claims_evict(srv, s);
    /* Ours now, perhaps in a room this worker knows was ended (its marker came while the
     * session was another worker's, or this copy a backup's): ended for it now. */
    ar__sig_sess_check_ended(srv, s);
}

/*
 * A client that reconnects while its earlier connection still waits for the owner's answer
 * (a flapping network): the newest connection is the client's, as finish() decides for a
 * connected session. The earlier attempt is handed to the new one (the copy it made is now
 * the new one's to free) and its connection closed with 4010; left, the owner's answer would
 * go to it, and the new connection would fail. A walk of the connections, only for a session
 * some connection resumed into before (s->resumed), of those with an attempt (srv->resuming).
 */
static void replace_attempts(ar__sig_srv_t *srv, ar__sig_sess_t *s, ar__sig_conn_t *cn,
                             ar__sig_resume_t *a)
{
    ar__sig_conn_t *next;
    for (ar__sig_conn_t *old = srv->resuming; old; old = next) {
        next = ar__sig_conn_next_resuming(old); /* kept by one that leaves (internal.h) */
        ar__sig_resume_t *o = ar__sig_conn_resume(old);
        if (old == cn || old->state != AR__SIG_C_RESUMING || old->sess != s || !o)
            continue;
        a->created_local |= o->created_local;
        a->demoted |= o->demoted;
        (void)ar__sig_conn_set_resume(old, NULL);
        ar_free_wiped(o);
        old->sess = NULL;
        ar__sig_conn_close(old, AR_SIG_CLOSE_REPLACED);
    }
}

/*
 * 0: resumed here, or waiting for the owner's answer (its cold part's resume), including a resume
 * that finish() refused for want of memory (it told the client). Otherwise nothing has changed and
 * the hello goes on (srv.c): AR_EINVAL, AR_ENOTFOUND, AR_EAUTH: the session cannot be had here
 * (the client is told resume_failed); AR_ENOMEM: no memory to start (error internal and close
 * 4014, the session left for the next resume); another code from the bus's subscription.
 */
int ar__sig_resume_start(ar__sig_conn_t *cn, const ar_token_claims_t *claims, const char *resume,
                         int64_t last_seq)
{
    ar__sig_srv_t *srv = cn->srv;
    if (strlen(resume) != AR__SIG_RESUME_LEN || resume[AR__SIG_PEER_LEN] != '.')
        return AR_EINVAL;
    char peer[AR__SIG_PEER_LEN + 1];
    memcpy(peer, resume, AR__SIG_PEER_LEN);
    peer[AR__SIG_PEER_LEN] = '\0';
    ar__sig_rec_t *r = ar__sig_rec_find(srv, peer);
    if (!r || (r->role != claims->role)) {
        ar_log0(AR_LOG_DEBUG, "signal_resume_unknown");
        return AR_ENOTFOUND;
    }
    uint8_t h[16];
    ar__sig_subhash(claims, h);
    ar__sig_sess_t *s = r->local;
    /* Another worker promoted this session while we were thought dead and its client was away:
     * its copy holds what arrived since, so the client resumes from it, asked as any other owner
     * is (taken back from ours, those frames would be lost). Only for a client that proves
     * itself here first, and with ours kept to fall back on if the promoter does not answer. */
    int ask_promoter = s && !s->is_backup && r->owner != srv->node_id &&
                       !ar__sig_sess_connected(s) && ar__sig_node_alive(srv, r->owner) &&
                       ar__sig_sess_secret_ok(s, resume, h) && available(s, last_seq);
    if (s && !s->is_backup && !ask_promoter) {
        if (!ar__sig_sess_secret_ok(s, resume, h) || !available(s, last_seq)) {
            ar_log(AR_LOG_DEBUG, "signal_resume_refused",
                   AR_LF_INT("secret", ar__sig_sess_secret_ok(s, resume, h)),
                   AR_LF_INT("seq", s->seq), AR_LF_INT("last", last_seq));
            return AR_EAUTH;
        }
        finish(cn, s, claims, resume, last_seq, 0);
        return 0;
    }
    /* The attempt, and the connection's cold part to hold it (made first: nothing below fails
     * for it once the session copy is made). */
    ar__sig_resume_t *a = ar__sig_conn_cold(cn) ? ar_calloc(1, sizeof(*a)) : NULL;
    if (!a)
        return AR_ENOMEM;
    memcpy(a->peer, peer, sizeof(peer));
    memcpy(a->resume, resume, AR__SIG_RESUME_LEN + 1);
    a->last_seq = last_seq;
    a->claims = *claims;
    a->started = srv->now;
    a->hello_ms = ar__sig_now_us() / 1000;
    a->deadline = srv->now + AR__SIG_RESUME_WAIT_S;
    if (ask_promoter) {
        ar_log0(AR_LOG_INFO, "signal_resume_from_promoter");
        ar__sig_sess_demote(srv, s);
        a->demoted = 1;
    }
    if (!s) {
        /* A copy to catch the session's frames during the hand-over: its memory, then its
         * subscription, each failure told as what it is (no memory: srv.c's hello tells the
         * client to come back; anything else fails the resume). Nothing else changed yet. */
        int rc;
        s = ar__sig_sess_local_new(srv, r, 1, &rc);
        if (!s) {
            ar_free_wiped(a);
            return rc;
        }
        a->created_local = 1;
        s->provisional = 1;
    }
    if (s->resumed)
        replace_attempts(srv, s, cn, a);
    s->kick = 0; /* marked before this attempt: its first tick below asks the owner of now */
    s->resumed = 1;
    cn->sess = s;
    (void)ar__sig_conn_set_resume(cn, a); /* its cold part is there (above) */
    cn->state = AR__SIG_C_RESUMING;
    ar__sig_resume_tick(srv, cn);
    return 0;
}

/*
 * The record of attempt a's session, or NULL. Looked up once, then again only after some record
 * was freed: the marked kick below runs after every batch of bus messages that moved a session
 * resuming here, and looked up every resuming connection's record each time (a cache miss or
 * more each in a table of 200,000 records, with thousands of them waiting on a failover
 * survivor's worker). The lookups' share of its samples went from 8.4 % to 7.7 % with this: the
 * rest is other callers' (docs/performance.md, "Failover at 100,000 calls a node: the kick's
 * lookups").
 */
static ar__sig_rec_t *attempt_rec(ar__sig_srv_t *srv, ar__sig_resume_t *a)
{
    if (!a->rec || a->rec_gen != srv->recs_freed) {
        a->rec = ar__sig_rec_find(srv, a->peer);
        a->rec_gen = srv->recs_freed;
    }
    return a->rec;
}

/*
 * The session cn resumes into when it is still its record's copy, else NULL. Through the record,
 * not cn->sess: only the pointer is compared, so a session freed during the attempt (its record
 * deleted) is never read here.
 */
static ar__sig_sess_t *resuming_into(ar__sig_srv_t *srv, const ar__sig_conn_t *cn)
{
    if (cn->state != AR__SIG_C_RESUMING || !ar__sig_conn_resume(cn) || !cn->sess)
        return NULL;
    ar__sig_rec_t *r = attempt_rec(srv, ar__sig_conn_resume(cn));
    return r && r->local == cn->sess ? r->local : NULL;
}

/* Every resuming connection (marked: only those whose session's kick is set, their record's
 * owner moved) looks at its session again at once: local now (we promoted it), or a new owner
 * to ask at once; unmarked (a death handled), an owner already asked is asked again only after
 * its gap (ask_gap). A mark matters only while a connection
 * resumes into its session, and one connection at most does (replace_attempts): it is cleared as
 * that one is kicked; a mark set with none keeps until a connection starts resuming into it, which
 * clears it (ar__sig_resume_start); a session freed while marked takes its mark with it. */
static void kick(ar__sig_srv_t *srv, int marked)
{
    ar__sig_conn_t *next;
    for (ar__sig_conn_t *cn = srv->resuming; cn; cn = next) {
        next = ar__sig_conn_next_resuming(cn); /* kept by one that leaves (internal.h) */
        if (marked) {
            ar__sig_sess_t *s = resuming_into(srv, cn);
            if (!s || !s->kick)
                continue;
            s->kick = 0; /* before the tick, which may free s */
            /* The record names another owner now: asked at once even when it was asked
             * before (as the dead owner's backup, whom_to_ask, which stays silent until it
             * has promoted its copy and says so in this very update). */
            ar__sig_conn_resume(cn)->last_try = 0;
        } else if (cn->state != AR__SIG_C_RESUMING || !ar__sig_conn_resume(cn)) {
            continue;
        }
        ar__sig_resume_tick(srv, cn); /* a new owner is asked at once (asking) */
    }
}

void ar__sig_resume_kick(ar__sig_srv_t *srv)
{
    kick(srv, 0);
}

void ar__sig_resume_kick_marked(ar__sig_srv_t *srv)
{
    if (!srv->kicks)
        return;
    srv->kicks = 0;
    kick(srv, 1);
}

/* A copy this worker held for a backup (or for a resume) is its own session again. */
static void own_again(ar__sig_srv_t *srv, ar__sig_sess_t *s)
{
    s->is_backup = 0;
    srv->nsessions++;
}

/* cn's attempt ends in its resume into s: finished, and the attempt wiped. */
static void finish_attempt(ar__sig_conn_t *cn, ar__sig_sess_t *s, int moved)
{
    ar__sig_resume_t *a = ar__sig_conn_resume(cn);
    (void)ar__sig_conn_set_resume(cn, NULL);
    finish(cn, s, &a->claims, a->resume, a->last_seq, moved);
    ar_free_wiped(a);
}

static void drop_attempt(ar__sig_srv_t *srv, ar__sig_conn_t *cn)
{
    ar__sig_resume_t *a = ar__sig_conn_resume(cn);
    ar__sig_sess_t *s = cn->sess;
    if (a->created_local && s && s->is_backup && s->provisional && a->last_try && !a->answer) {
        ar__sig_sess_orphan(srv, s); /* the owner's answer may be on its way: kept for it */
    } else if (a->created_local && s && s->is_backup && s->provisional) {
        ar__sig_sess_free(srv, s);
    } else if (s && s->is_backup) {
        ar__sig_lost_clear(s); /* noted for the resume (bus.c): the owner noted them too */
    }
    cn->sess = NULL;
    (void)ar__sig_conn_set_resume(cn, NULL);
    ar_free_wiped(a);
}

/*
 * Whether attempt a is given up now: at its deadline, unless the bus is behind here or on
 * another worker, whose backlog holds back the owner's answer or the record update naming a new
 * owner; then it waits on, up to AR__SIG_RESUME_WAIT_MAX_S from its start. A resume that fails
 * loses the session (a new one starts); one that waits costs its client seconds. Under a
 * failover of 50,000 sessions onto a node of 12 workers, 12,485 attempts gave up at 8 s with
 * no answer, their backlog up to 8 s (docs/performance.md, "Failover at 100,000 calls a node").
 */
static int attempt_late(ar__sig_srv_t *srv, const ar__sig_resume_t *a)
{
    if (srv->now < a->deadline)
        return 0;
    return srv->now - a->started >= AR__SIG_RESUME_WAIT_MAX_S || !ar__sig_bus_congested(srv);
}

/*
 * Attempt a is to ask owner (at once, or within the second): an owner not asked before (a backup
 * promoted since the attempt asked the dead owner, which takes 3 s to be declared dead, or a
 * session handed on) gets the whole AR__SIG_RESUME_WAIT_S to answer, within
 * AR__SIG_RESUME_WAIT_MAX_S of the start. Before, the promoter had only what was left of the
 * attempt's first 8 s.
 */
static int asking(ar__sig_srv_t *srv, ar__sig_resume_t *a, uint64_t owner)
{
    if (a->asked == owner)
        return 0;
    a->asked = owner;
    a->tries = 0;
    uint32_t until = srv->now + AR__SIG_RESUME_WAIT_S, cap = a->started + AR__SIG_RESUME_WAIT_MAX_S;
    until = until < cap ? until : cap;
    if (until > a->deadline)
        a->deadline = until;
    return 1;
}

/*
 * Seconds between asks of one owner: 1, 2, then 4. An ask is repeated only for an answer lost
 * on the bus (a reconnect, a slow consumer), and an owner that already handed the session over
 * answers each again with the whole buffer (handover.c on_take): asked every second, and again
 * at every kick, a node taking 100,000 resumes at once answered 142,348 asks that nobody waited
 * for any more (docs/performance.md, "Failover at 100,000 calls a node: the survivor's own
 * work"). Not longer while the bus is behind: with 8 s then, 804 of 50,000 resumes gave up
 * 3 s after the backlog cleared, their owners' answers arriving after.
 */
static uint32_t ask_gap(const ar__sig_resume_t *a)
{
    return a->tries >= 3 ? 4 : a->tries >= 2 ? 2 : 1;
}

/*
 * Whom the attempt asks for the session of record r: its owner while alive; once the owner's
 * death is handled, its backup, which promotes its copy at that death and then holds the
 * session (another worker learns that only from the promoter's record update, and a storm of
 * resumes lost such updates by the thousand with a publishing connection that timed out: the
 * record kept naming the dead, and nobody was asked for 30 s). 0: nobody (the record names this
 * worker, or nobody alive).
 */
static uint64_t whom_to_ask(ar__sig_srv_t *srv, const ar__sig_rec_t *r)
{
    if (!r || r->owner == srv->node_id)
        return 0;
    if (ar__sig_node_alive(srv, r->owner))
        return r->owner;
    if (ar__sig_node_death_handled(srv, r->owner) && r->backup && r->backup != srv->node_id &&
        ar__sig_node_alive(srv, r->backup))
        return r->backup;
    return 0;
}

/*
 * Attempt a, for the copy s of record r, ran out of time without an answer from the worker it
 * asked, which is alive: the session is most likely there still (its answer held back in a
 * backlog, or lost with a publishing connection that timed out), not gone. Under a failover of
 * 100,000 resumes onto one node, 7,652 to 16,230 a run were told resume_failed so, and each
 * client lost its session for a new one while its owner held it (docs/performance.md, "Failover
 * at 100,000 calls a node: one walk for the deaths found together").
 */
static int unanswered(ar__sig_srv_t *srv, const ar__sig_resume_t *a, const ar__sig_rec_t *r,
                      const ar__sig_sess_t *s)
{
    return r && s && r->local == s && !a->answer && a->asked && ar__sig_node_alive(srv, a->asked) &&
           attempt_late(srv, a);
}

void ar__sig_resume_tick(ar__sig_srv_t *srv, ar__sig_conn_t *cn)
{
    ar__sig_resume_t *a = ar__sig_conn_resume(cn);
    if (!a)
        return;
    if (cn->state == AR__SIG_C_GONE) {
        drop_attempt(srv, cn);
        return;
    }
    ar__sig_sess_t *s = cn->sess;
    ar__sig_rec_t *r = attempt_rec(srv, a);
    uint8_t h[16];
    ar__sig_subhash(&a->claims, h);
    /* Before the lateness below: a new owner's wait is its own, and it is asked at once. */
    uint64_t ask = whom_to_ask(srv, r);
    int fresh = ask && asking(srv, a, ask);
    /* An owner that handed the session over has let it go: its answer wins, late or not. */
    int fail = !r || !s || r->local != s || a->answer < 0 || (!a->answer && attempt_late(srv, a));
    if (!fail && a->answer > 0) {
        /* What the owner checked the client against, for its next resume (a copy made for
         * this one had neither): finish renews the secret, unless it finds no memory. The
         * client holds the secret it presented (the owner's current or previous one), so that
         * alone is kept: a previous secret this copy had as a backup goes. */
        (void)ar__sig_sess_resume_set(s, a->resume); /* checked at the hello: s's peer */
        ar__sig_sess_prev_wipe(s);
        memcpy(s->subhash, h, 16);
        s->provisional = 0;
        own_again(srv, s);
        finish_attempt(cn, s, 1);
        return;
    }
    if (!fail && !s->is_backup) {
        /* We were its backup and promoted it: the resume is local now. */
        if (ar__sig_sess_secret_ok(s, a->resume, h) && available(s, a->last_seq)) {
            finish_attempt(cn, s, 0);
            return;
        }
        fail = 1;
    }
    if (fail && a->demoted && s && r && r->local == s && s->is_backup && !s->provisional) {
        /* The promoter refused or did not answer in time: our copy is the client's again, as
         * before we asked (its own update then makes the promoter yield, rec.c). */
        ar_log0(AR_LOG_INFO, "signal_resume_promoter_silent");
        own_again(srv, s);
        finish_attempt(cn, s, 0);
        return;
    }
    if (fail && unanswered(srv, a, r, s)) {
        /* The client comes back after its back-off, as for 4016 at its hello (protocol.md 4.2),
         * and resumes again; the copy made here is kept for the answer (drop_attempt). The
         * session's grace bounds it: when it ends, its record goes and a resume fails. */
        ar_log(AR_LOG_INFO, "signal_resume_unanswered",
               AR_LF_INT("waited", (int64_t)(srv->now - a->started)));
        drop_attempt(srv, cn);
        cn->state = AR__SIG_C_HELLO;
        ar__sig_conn_close(cn, AR_SIG_CLOSE_BUSY);
        return;
    }
    if (fail) {
        ar_log(AR_LOG_INFO, "signal_resume_failed", AR_LF_INT("found", r != NULL),
               AR_LF_INT("answer", a->answer), AR_LF_INT("late", attempt_late(srv, a)),
               AR_LF_INT("local", s && !s->is_backup), AR_LF_INT("asked", a->asked != 0),
               AR_LF_INT("owner_asked", r && a->asked == r->owner),
               AR_LF_INT("backup_asked", r && a->asked && a->asked == r->backup),
               AR_LF_INT("owner_alive", r && ar__sig_node_alive(srv, r->owner)),
               AR_LF_INT("owner_dead", r && ar__sig_node_death_handled(srv, r->owner)),
               AR_LF_INT("backup_here", r && r->backup == srv->node_id),
               AR_LF_INT("backup_copy", s && s->is_backup && !s->provisional),
               AR_LF_INT("waited", (int64_t)(srv->now - a->started)));
        ar_token_claims_t claims = a->claims;
        if (s && !s->is_backup) {
            cn->sess = NULL; /* ours now, but not this client's: it stays for its owner */
            (void)ar__sig_conn_set_resume(cn, NULL);
            ar_free_wiped(a); /* the resume secret and the token's claims */
        } else {
            drop_attempt(srv, cn); /* wipes and frees the attempt */
        }
        cn->state = AR__SIG_C_HELLO;
        if (claims.exp <= (int64_t)time(NULL)) {
            /* An expired token could only resume (srv.c on_hello): no new session from it. */
            sodium_memzero(&claims, sizeof(claims));
            ar__sig_refuse(cn, AR_SIG_E_TOKEN_EXPIRED, NULL, AR_SIG_HELLO, AR_SIG_NONE,
                           AR_SIG_CLOSE_BAD_TOKEN);
            return;
        }
        ar__sig_send_error(cn, AR_SIG_E_RESUME_FAILED, NULL, AR_SIG_HELLO, AR_SIG_NONE);
        if (cn->state == AR__SIG_C_GONE)
            return; /* the error could not be sent: no new session for a gone client */
        /* A new session, as srv.c's hello makes it: admitted (4016), and not a second use of
         * an invite link. The hello's message id and name are gone by now (not kept while
         * waiting for the owner): errors name no id, and the session has no name. */
        ar__sig_sess_t *ns;
        int rc = ar__sig_hello_session(cn, &claims, AR_SIG_NONE, 1, &ns);
        sodium_memzero(&claims, sizeof(claims));
        if (rc == 0)
            ar__sig_welcome(cn, ns, 0);
        else if (rc == AR_ENOMEM) /* as srv.c's hello says it: told, not only closed */
            ar__sig_refuse(cn, AR_SIG_E_INTERNAL, NULL, AR_SIG_HELLO, AR_SIG_NONE,
                           AR_SIG_CLOSE_SHUTDOWN);
        return;
    }
    if (ask && (fresh || a->last_try == 0 || srv->now - a->last_try >= ask_gap(a))) {
        a->last_try = srv->now ? srv->now : 1;
        a->tries++;
        ar_log0(AR_LOG_DEBUG, "signal_resume_ask_owner");
        char hex[33], from[17];
        sodium_bin2hex(hex, sizeof(hex), h, 16);
        snprintf(from, sizeof(from), "%016llx", (unsigned long long)srv->node_id);
        ar__sig_bus_proc(srv, ask,
                         json_pack("{s:s,s:s,s:s,s:s,s:I,s:s,s:I}", "k", "take", "p", a->peer, "r",
                                   a->resume, "h", hex, "l", (json_int_t)a->last_seq, "from", from,
                                   "t", (json_int_t)a->hello_ms));
    }
}
