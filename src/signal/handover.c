/*
 * Hand-over of a session between workers (docs/signal.md, "Resume (P6) and node failure"): a
 * worker with a client resuming into a session another worker owns asks for it ("take",
 * resume.c); the owner answers with its buffer ("taken") and keeps its copy, handed, until the
 * new owner announces itself in a record update. The new owner finishes the resume, or takes
 * the session as away when the client's connection went meanwhile, so that the session always
 * has exactly one owner whose grace period runs, whatever happens to the asker on the way.
 */
#include "internal.h"

#include "anteroom/alloc.h"
#include "anteroom/log.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The old owner's count of frames dropped for the session while it was away ([n, seq before the
 * first]), added to drops noted here while the hand-over ran (this worker subscribed first):
 * the earlier position is the one the client is told.
 */
static void take_lost(ar__sig_sess_t *s, const json_t *lost)
{
    json_int_t n = 0, after = 0;
    ar__sig_sess_cold_t *c;
    if (!lost || json_unpack((json_t *)lost, "[I,I]", &n, &after) != 0 || n <= 0 || after < 0)
        return;
    if (!(c = ar__sig_sess_cold(s))) {
        /* Nowhere to keep it: the client is not told (as a loss noted nowhere; logged). */
        ar_log(AR_LOG_WARN, "signal_lost_unnoted", AR_LF_INT("frames", (int64_t)n));
        return;
    }
    if (!c->lost || after < c->lost_after)
        c->lost_after = after;
    ar__sig_lost_add(c, (uint64_t)n);
}

/*
 * The copy we answered "taken" with becomes a backup-like copy ("handed") instead of going: the
 * answer may find no client on the new owner (its connection went meanwhile, or it stops), or
 * the new owner may die with it in flight. The new owner takes the session either way (as away
 * without a client, on_taken); its first record update naming itself is what lets ours go
 * (ar__sig_sess_owner_seen). Until then r->owner names it here, so that its death promotes our
 * copy back (ar__sig_node_dead) and a client resuming here asks it. Every other worker still
 * names us until that update: a resume there asks us and is kicked to the new owner by it.
 */
static void hand_off(ar__sig_srv_t *srv, ar__sig_sess_t *s, ar__sig_sess_cold_t *c, uint64_t to)
{
    /* Not ar__sig_sess_demote: the client is closed (it resumes on `to`), the losses stay for
     * the answer (let_go forgets them), and the copy remembers whom it went to. A client still
     * connected here is replaced: its other connection asked (a flapping network), or an ask
     * from a connection it has left since (logged: a client told 4010 waits for the other). */
    if (ar__sig_sess_connected(s))
        ar_log(AR_LOG_INFO, "signal_handover_replaced",
               AR_LF_UINT("since_rx_s", srv->now - s->conn->last_rx));
    ar__sig_sess_close_conn(s, AR_SIG_CLOSE_REPLACED);
    s->is_backup = 1;
    if (srv->nsessions)
        srv->nsessions--;
    ar__sig_claims_free(s->claims); /* owner only: a copy promoted back has none either */
    s->claims = NULL;
    s->promoted = 0;
    s->handed = 1;
    c->prev_owner = to;
    /* When it was handed: no word from `to` in a grace period ends it. */
    ar__sig_sess_away_now(s, srv->now);
    s->rec->owner = to;
}

/* Whether s is the copy this worker handed over to worker `to` (hand_off) and keeps until `to`
 * announces itself; not a resume's copy kept for an answer (provisional), which went to nobody. */
static int handed_to(const ar__sig_sess_t *s, uint64_t to)
{
    return s && s->handed && s->is_backup && !s->provisional && s->cold->prev_owner == to;
}

/*
 * Whether ask o for session s comes from an attempt the client has left: s is connected here
 * through a resume that came after that attempt's hello ("t"). An overloaded worker took 40 s
 * and more to answer a resume; the client gave up on it and resumed through another worker,
 * whose record update then moved the old attempt's ask here. Handed over, the client's live
 * connection was closed with 4010 (replaced), and a client told that waits for its other
 * connection, which was gone: up to 88 clients a run of the failover at 100,000
 * (docs/performance.md, "Failover at 100,000 calls a node: one walk for the deaths found
 * together"). The newer connection is the client's. Not answered: the asker's attempt ends with
 * its connection, or as unanswered (resume.c). Wall clocks of two nodes are compared: a skew
 * larger than the seconds between the two hellos would hand such a session over, as before.
 */
static int stale_ask(const ar__sig_sess_t *s, const json_t *o)
{
    json_int_t t = json_integer_value(json_object_get(o, "t"));
    const ar__sig_conn_t *cn = ar__sig_sess_connected(s) ? s->conn : NULL;
    return t > 0 && cn && cn->cold && cn->cold->resumed_ms > (uint64_t)t;
}

/* Another worker asks for a session it has a resuming client for: hand it over. */
void ar__sig_on_take(ar__sig_srv_t *srv, void *msg, ar__sig_rec_t *r)
{
    json_t *o = msg;
    const char *resume, *hex, *from;
    json_int_t last;
    uint8_t h[16];
    if (json_unpack(o, "{s:s,s:s,s:I,s:s}", "r", &resume, "h", &hex, "l", &last, "from", &from) !=
        0)
        return;
    uint64_t to = strtoull(from, NULL, 16);
    if (ar__sig_node_death_handled(srv, to)) { /* nothing we hand it would be promoted */
        ar_log0(AR_LOG_DEBUG, "signal_take_from_dead");
        return; /* a request that waited in our inbox past its sender's death */
    }
    ar__sig_sess_t *s = r->local;
    if (s && !s->is_backup && stale_ask(s, o)) {
        ar_log0(AR_LOG_INFO, "signal_take_stale");
        return;
    }
    /* Handed to the asker already: our answer was lost, or crossed its next ask. The same
     * answer again; the new owner ignores it once it holds the session. */
    int again = handed_to(s, to);
    /* The secret may be the previous one, kept while the client may have lost the welcome
     * that replaced it (sess.c ar__sig_sess_rotate_resume). */
    int ok = s && (!s->is_backup || again) && ar__sig_hex16(hex, h) == 0 &&
             ar__sig_sess_secret_ok(s, resume, h) && ar__sig_sess_resumable(s, last);
    /* The handed copy remembers whom it went to (its cold part: there already when again).
     * Without memory for it the session is not handed over: refused, as a session that cannot
     * be had here, and the client resumes anew (here, by its next hello). */
    ar__sig_sess_cold_t *c = ok ? ar__sig_sess_cold(s) : NULL;
    if (ok && !c)
        ar_log0(AR_LOG_WARN, "signal_handover_no_memory");
    if (!c) {
        ar_log(AR_LOG_DEBUG, "signal_handover_refused", AR_LF_INT("have", s != NULL),
               AR_LF_INT("seq", s ? s->seq : -1), AR_LF_INT("last", last),
               AR_LF_INT("head", s && s->head ? s->head->seq : -1));
        if (s && !s->is_backup)
            ar__sig_bus_proc(srv, to,
                             json_pack("{s:s,s:s,s:b}", "k", "taken", "p", r->peer, "ok", 0));
        return;
    }
    if (last > s->seq)
        s->seq = last; /* a promoted backup behind its client: numbering goes on after it */
    /* The secret and the subject's hash go too (as to a backup, send_adopt), and the previous
     * secret ("q") while it is kept: a new owner whose client went meanwhile keeps the session
     * for the client's next resume (on_taken), with whichever of the two the client holds. */
    char me[17], sh[33], res[AR__SIG_RESUME_LEN + 1];
    snprintf(me, sizeof(me), "%016llx", (unsigned long long)srv->node_id);
    sodium_bin2hex(sh, sizeof(sh), s->subhash, 16);
    ar__sig_sess_resume_text(s, res);
    json_t *ans = json_pack("{s:s,s:s,s:b,s:I,s:I,s:o,s:s,s:s,s:s}", "k", "taken", "p", r->peer,
                            "ok", 1, "seq", (json_int_t)s->seq, "ack", (json_int_t)s->acked, "fr",
                            ar__sig_frames_json(s), "r", res, "h", sh, "from", me);
    sodium_memzero(res, sizeof(res));
    ar__sig_sess_prev_put(s, ans);
    /* Frames dropped for it while it was away go with it: its client is told by the new owner
     * (after the welcome, as here), not never (docs/signal.md, "Messages dropped ..."). */
    if (ans && c->lost)
        (void)json_object_set_new(
            ans, "lost", json_pack("[I,I]", (json_int_t)c->lost, (json_int_t)c->lost_after));
    ar__sig_bus_proc(srv, to, ans);
    if (!again)
        hand_off(srv, s, c, to);
}

/* A copy kept for a hand-over that is settled: it goes, unless a client resumes into it. */
void ar__sig_sess_release(ar__sig_srv_t *srv, ar__sig_sess_t *s)
{
    s->handed = 0;
    if (!ar__sig_sess_resuming(srv, s)) {
        ar__sig_sess_free(srv, s);
        return;
    }
    /* A client resuming here points at it (its attempt asks the new owner): kept for the
     * attempt as a copy made for it, never promoted (a stale copy promoted on the new owner's
     * death would be a second owner beside its backup), freed when the attempt fails. */
    s->provisional = 1;
    for (ar__sig_conn_t *cn = srv->resuming; cn; cn = ar__sig_conn_next_resuming(cn))
        if (cn->state == AR__SIG_C_RESUMING && cn->sess == s && ar__sig_conn_resume(cn))
            ar__sig_conn_resume(cn)->created_local = 1;
}

/* Our handed copy is not needed any more: the new owner announced itself. */
static void let_go(ar__sig_srv_t *srv, ar__sig_sess_t *s)
{
    s->handed = 0;
    /* The loss was told to the new owner with the answer. */
    ar__sig_lost_clear(s);
    if (s->rec->backup != srv->node_id) /* else its backup now: its adopt brings the buffer */
        ar__sig_sess_release(srv, s);
}

void ar__sig_sess_orphan(ar__sig_srv_t *srv, ar__sig_sess_t *s)
{
    /* Freed, it would leave a gap: frames sent to the session after the owner answered and
     * before a new copy subscribed here reach neither. Kept, it numbers them after the
     * owner's buffer, in the order they came (take_away, ar__sig_sess_flush_pending). */
    s->handed = 1;
    ar__sig_sess_away_now(s, srv->now);
}

void ar__sig_sess_owner_seen(ar__sig_srv_t *srv, ar__sig_rec_t *r, uint64_t origin)
{
    ar__sig_sess_t *s = r->local;
    if (s && s->handed && s->is_backup && !s->provisional && origin != srv->node_id &&
        r->owner == origin) {
        ar_log0(AR_LOG_DEBUG, "signal_handover_confirmed");
        let_go(srv, s);
    }
}

/*
 * The new owner, without a client to finish the resume with: the connection that asked went
 * (the client's network dropped again, or this worker stops), or its attempt ran out of time
 * as the answer came. The old owner has let go of the session, so we take it as away: its grace
 * period runs here, it gets a backup, and our record update tells every worker (and lets the
 * old owner's copy go). The client resumes here, or anywhere, with the secret it holds.
 */
static void take_away(ar__sig_srv_t *srv, ar__sig_rec_t *r, json_t *o, json_int_t seq,
                      json_int_t ack, json_t *fr)
{
    const char *res = "", *hex = "";
    if (json_unpack(o, "{s:s,s:s}", "r", &res, "h", &hex) != 0 || strlen(res) != AR__SIG_RESUME_LEN)
        return;
    ar__sig_sess_t *s = r->local;
    if (!s && !(s = ar__sig_sess_local_new(srv, r, 1, NULL)))
        return;
    if (s->is_backup)
        srv->nsessions++;
    s->is_backup = 0;
    s->promoted = 0; /* the old owner numbered every frame it answered with */
    ar__sig_sess_take_state(srv, s, o, res, hex, seq, ack, fr); /* as a backup's adopt does */
    if (s->cold->lost)                                          /* its own then */
        s->cold->lost_after = seq;
    take_lost(s, json_object_get(o, "lost"));
    r->owner = srv->node_id;
    r->away = 1;
    ar__sig_sess_away_now(s, srv->now);
    ar_log0(AR_LOG_INFO, "signal_handover_away");
    ar__sig_sess_adopt(srv, s); /* "own" (away, owner, backup), and the backup's buffer */
    ar__sig_sess_flush_pending(srv, s);
}

/* The owner's answer to our "take" (on_take). */
void ar__sig_on_taken(ar__sig_srv_t *srv, void *msg, ar__sig_rec_t *r, const char *peer)
{
    json_t *o = msg;
    ar__sig_sess_t *s = r->local;
    int ok = 0;
    json_int_t seq = 0, ack = 0;
    json_t *fr = NULL;
    int given = json_unpack(o, "{s:b}", "ok", &ok) == 0 && ok &&
                json_unpack(o, "{s:I,s:I,s:o}", "seq", &seq, "ack", &ack, "fr", &fr) == 0 &&
                ar__sig_seq_ok(seq, 0) && ar__sig_seq_ok(ack, 0);
    int asked = 0;
    for (ar__sig_conn_t *cn = srv->resuming; cn; cn = ar__sig_conn_next_resuming(cn)) {
        if (cn->state != AR__SIG_C_RESUMING || !s || cn->sess != s || !ar__sig_conn_resume(cn))
            continue;
        if (given) {
            s->handed = 0; /* ours again, should it be the copy we handed over before */
            s->seq = seq;
            s->acked = ack;
            ar__sig_load_frames(srv, s, fr);
            if (s->cold->lost) /* noted here while resuming: after all the owner numbered */
                s->cold->lost_after = seq;
            take_lost(s, json_object_get(o, "lost"));
            ar__sig_conn_resume(cn)->answer = 1; /* ar__sig_resume_tick finishes the resume */
        } else {
            ar__sig_conn_resume(cn)->answer = -1;
        }
        ar__sig_resume_tick(srv, cn); /* may free s */
        asked = 1;
        break;
    }
    if (!asked)
        ar_log(AR_LOG_DEBUG, "signal_taken_unclaimed", AR_LF_INT("ok", given),
               AR_LF_INT("have", s != NULL));
    if (!given) {
        /* Refused: a copy kept for the answer (no attempt left) goes. */
        if (!asked && s && s->handed && s->provisional)
            ar__sig_sess_release(srv, s);
        return;
    }
    /* Looked up again: the resume may have ended the session (an "ended" frame). Ours now when
     * it finished; else taken as away, unless the record names another owner than the one that
     * answered (an answer repeated after we handed the session on). */
    const char *from = json_string_value(json_object_get(o, "from"));
    uint64_t giver = from ? strtoull(from, NULL, 16) : 0;
    /* No attempt asked (s untouched since the top), and our copy is the one we handed over to
     * the giver itself: the answer is to an ask from before that hand-over, which the giver
     * answered again (on_take) while its own client resumed by asking us. Taken, it made us
     * claim the session a second time, after the giver's client had resumed with our answer;
     * the giver took the claim, and the session's frames were dropped at both of us (neither
     * its owner nor its backup), so its partner's frames never reached the client. */
    if (!asked && giver && handed_to(s, giver)) {
        ar_log0(AR_LOG_INFO, "signal_taken_stale");
        return;
    }
    /* The giver is the owner we know of, or the backup of a dead one (the record not yet
     * updated here: resume.c whom_to_ask asked it). Dropped, such an answer left the giver
     * waiting for an announcement that never came, and it ended the session a grace period
     * later. */
    if (!(r = ar__sig_rec_find(srv, peer)) || r->owner == srv->node_id || !giver ||
        (r->owner != giver && !(r->backup == giver && ar__sig_node_death_handled(srv, r->owner)))) {
        /* The giver keeps a handed copy until a record update names its new owner: it ends the
         * session if none comes in a grace period (ar__sig_sess_tick). */
        if (!asked && !(r && r->owner == srv->node_id)) /* not an answer repeated to its taker */
            ar_log(AR_LOG_INFO, "signal_taken_dropped", AR_LF_INT("rec", r != NULL),
                   AR_LF_INT("owner_is_giver", r && r->owner == giver),
                   AR_LF_INT("owner_alive", r && ar__sig_node_alive(srv, r->owner)),
                   AR_LF_INT("have", r && r->local != NULL));
        return;
    }
    take_away(srv, r, o, seq, ack, fr);
    /* Ours now, in a room this worker may know was ended: looked up again, as the frames its
     * copy caught (numbered in take_away) may have ended it already. */
    if ((r = ar__sig_rec_find(srv, peer)) && r->local)
        ar__sig_sess_check_ended(srv, r->local);
}
