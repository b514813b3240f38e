/*
 * Record updates on the bus: JSON objects built here, sent in a fixed layout when they only
 * say who holds a session (rec_wire.c), as JSON otherwise. A writer changes the fields it is
 * responsible for and publishes only those, so updates from different workers about one
 * session (its owner marks it away, a clinician takes the patient) do not overwrite each
 * other. The subject follows the field: room changes on ar.<jur>.room.<room>, queue changes
 * on ar.<jur>.area.<clinic>.<area>, the rest on ar.<jur>.sess.<peer> (see bus.c).
 */
#include "internal.h"

#include "anteroom/alloc.h"
#include "anteroom/log.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int has(const char *fields, const char *f)
{
    if (strcmp(fields, "all") == 0)
        return 1;
    size_t n = strlen(f);
    for (const char *p = fields; (p = strstr(p, f)) != NULL; p += n)
        if ((p == fields || p[-1] == ',') && (p[n] == '\0' || p[n] == ','))
            return 1;
    return 0;
}

static void hexid(char out[17], uint64_t v)
{
    snprintf(out, 17, "%016llx", (unsigned long long)v);
}

void ar__sig_rec_publish(ar__sig_srv_t *srv, ar__sig_rec_t *r, const char *fields)
{
    char me[17], own[17], bk[17];
    hexid(me, srv->node_id);
    /* "h": the tags of the session's frames' subject (bus.c), in every update, since any of
     * them may be the first a worker hears of the session. */
    char home[18];
    snprintf(home, sizeof(home), "%08x.%08x", (unsigned)r->home[0], (unsigned)r->home[1]);
    json_t *o = json_pack("{s:s,s:s,s:s}", "o", me, "p", r->peer, "h", home);
    json_t *qt = srv->qt;
    srv->qt = NULL;
    /* A leave's "lt"/"lr" (flows.c ar__sig_room_leave), for its room update only. */
    json_t *lt = has(fields, "room") ? srv->left_told : NULL;
    if (lt)
        srv->left_told = NULL;
    if (!o) {
        json_decref(qt);
        json_decref(lt);
        return;
    }
    if (qt)
        json_object_update(o, qt);
    json_decref(qt);
    if (lt)
        json_object_update(o, lt);
    json_decref(lt);
    const char *kind = "sess", *key = r->peer;
    char area_key[2 * AR_SIG_ID_MAX + 2];
    if (strcmp(fields, "del") == 0) {
        json_object_set_new(o, "del", json_true());
        ar__sig_bus_rec(srv, kind, key, o);
        ar__sig_frames_purge(srv, r); /* what our buffers hold about a patient (purge.c) */
        ar__sig_rec_free(srv, r);
        return;
    }
    if (has(fields, "role"))
        json_object_set_new(o, "role", json_integer(r->role));
    if (has(fields, "away") || has(fields, "own")) {
        /* Every claim of a copy we promoted and no client resumed is a promotion ("pr"), not
         * only the first: an owner that missed the first (cut off from NATS, or its answer
         * "re" was lost while our subscriptions came back after a reconnect) took a later one
         * (a backup moved, sess_tick) as a hand-over, let the record name us while it held
         * the client, and answered our "held?" with "unheld": the session ended under it. */
        if (ar__sig_sess_unresumed_promotion(r->local) && r->owner == srv->node_id)
            json_object_set_new(o, "pr", json_true());
        hexid(own, r->owner);
        hexid(bk, r->backup);
        json_object_set_new(o, "away", json_integer(r->away));
        json_object_set_new(o, "own", json_string(own));
        json_object_set_new(o, "bk", json_string(bk));
    }
    if (has(fields, "name") && ar__sig_rec_name(r))
        json_object_set_new(o, "name", json_string(ar__sig_rec_name(r)));
    if (has(fields, "lang") && r->q->lang[0])
        json_object_set_new(o, "lang", json_string(r->q->lang));
    if (has(fields, "room")) {
        json_object_set_new(o, "room", json_string(ar__sig_rec_room(r)));
        if (r->in_room) {
            json_object_set_new(o, "jt", json_integer((json_int_t)r->joined_us));
            json_object_set_new(o, "rc", json_string(ar__sig_room_clinic(r->in_room)));
            json_object_set_new(o, "rp", json_integer(r->in_room->profile));
            json_object_set_new(o, "rpers", json_integer(r->in_room->persistent));
        }
        if (r->in_room)
            kind = "room", key = r->in_room->id;
        /* "rt": the members its joiner's worker told (ar__sig_announce_join follows this
         * publication), asked for by the join and the take only ("all" republishes tell
         * nobody). A worker applying it tells those of its own members it does not name. */
        json_t *rt =
            strcmp(fields, "all") != 0 && has(fields, "rt") && r->in_room ? json_array() : NULL;
        for (size_t i = 0; rt && i < r->in_room->nmembers; i++) {
            const ar__sig_rec_t *x = ar__sig_room_member(r->in_room, i);
            if (x != r)
                json_array_append_new(rt, json_string(x->peer));
        }
        if (rt)
            json_object_set_new(o, "rt", rt);
    }
    if (has(fields, "area") || has(fields, "st")) {
        json_object_set_new(o, "clinic", json_string(r->q->clinic));
        json_object_set_new(o, "area", json_string(r->q->area));
        json_object_set_new(o, "st", json_integer(r->status));
        json_object_set_new(o, "by", json_string(r->q->by));
        json_object_set_new(o, "bn", json_string(r->q->by_name));
        json_object_set_new(o, "since", json_integer(r->q->since));
        if (has(fields, "area")) {
            json_t *a = json_array();
            for (size_t i = 0; i < r->q->nans; i++)
                json_array_append_new(a, json_pack("[s,s]", r->q->ans[i].q.p, r->q->ans[i].a.p));
            json_object_set_new(o, "ans", a);
            if (ar__sig_rec_name(r))
                json_object_set_new(o, "name", json_string(ar__sig_rec_name(r)));
        }
        if (r->q->clinic[0] && r->q->area[0]) {
            snprintf(area_key, sizeof(area_key), "%s.%s", r->q->clinic, r->q->area);
            kind = "area", key = area_key;
        }
    }
    if (has(fields, "subs")) {
        json_t *a = json_array();
        for (size_t i = 0; i < r->q->nsubs; i++)
            json_array_append_new(a, json_pack("[s,s]", r->q->subs[i][0].s, r->q->subs[i][1].s));
        json_object_set_new(o, "subs", a);
    }
    ar__sig_bus_rec(srv, kind, key, o);
}

/* A patient's name from a record update: the old one wiped (ar__sig_name_wipe). */
static void set_name(char **dst, const char *v)
{
    if (*dst && v && strcmp(*dst, v) == 0)
        return;
    ar__sig_name_wipe(dst);
    *dst = v && v[0] ? ar_strndup(v, strlen(v)) : NULL;
}

/* A small number of a record update (role, status): its value, or -1 when it is no integer
 * from 0 to max. The record's bit fields hold no more, so such a value is not applied rather
 * than cut to a wrong one. */
static int small_int(const json_t *v, json_int_t max)
{
    json_int_t n = json_is_integer(v) ? json_integer_value(v) : -1;
    return n >= 0 && n <= max ? (int)n : -1;
}

static void apply_subs(ar__sig_srv_t *srv, ar__sig_rec_t *r, json_t *a)
{
    ar__sig_recq_t *q = r->q; /* its own when it has subscriptions */
    for (size_t i = 0; i < q->nsubs; i++)
        ar__sig_area_unsub(srv, r, ar__sig_area_find(srv, q->subs[i][0].s, q->subs[i][1].s));
    if (q != &ar__sig_no_q) {
        ar_free(q->subs);
        q->subs = NULL;
        q->nsubs = 0;
    }
    size_t n = json_array_size(a);
    if (n > AR__SIG_SUBS_MAX || !n || !(q = ar__sig_rec_q(r)))
        return;
    q->subs = ar_calloc(n, sizeof(*q->subs));
    if (!q->subs)
        return;
    for (size_t i = 0; i < n; i++) {
        const char *c, *ar;
        if (json_unpack(json_array_get(a, i), "[s,s]", &c, &ar) != 0 || strlen(c) > AR_SIG_ID_MAX ||
            strlen(ar) > AR_SIG_ID_MAX)
            continue;
        ar__sig_area_t *area = ar__sig_area_get(srv, c, ar);
        if (!area || ar__sig_area_sub(srv, r, area) != 0)
            continue;
        memcpy(q->subs[q->nsubs][0].s, c, strlen(c) + 1);
        memcpy(q->subs[q->nsubs][1].s, ar, strlen(ar) + 1);
        q->nsubs++;
    }
}

/*
 * A worker that saw no heartbeat from us for AR__SIG_NODE_DEAD_S promotes its backup copies of
 * our sessions (sess.c); under overload that can happen while we are alive and still hold the
 * clients. Left alone, the promoted copy would end the session at the end of its grace period
 * and close the client's connection. So (docs/signal.md, "Overload"):
 *  - an owner holding the client's connection refuses a promotion ("pr") of its session and
 *    says so by re-announcing itself ("re") with a fresh backup (CLAIM_REFUSED);
 *  - a promoter whose copy no client resumed yields to that refusal, or to any announcement of
 *    ownership by the old owner while its heartbeats say it is alive (one it published while
 *    cut off from NATS and that arrives after its reconnect): it becomes the backup again, or
 *    lets go. An update that a really dead owner published before it died, still in our
 *    backlog of records, does not count: its heartbeats stopped (they are handled first).
 * The same two rules hold for any claim by a worker without the client ("away"), not only a
 * promotion: one made from a hand-over's answer that came after the session had gone on (a
 * race of resume attempts, docs/signal.md "Resume (P6) and node failure"), taken by the owner
 * holding the client, left each record naming the other worker and the session's frames
 * dropped at both. A plain claim by a worker that has the client (away 0) is still taken, as
 * the hand-over it is: ours is then a connection that lingers after the client left it.
 */
enum { CLAIM_NONE, CLAIM_REFUSED, CLAIM_YIELD };

static int ownership_claim(ar__sig_srv_t *srv, ar__sig_rec_t *r, const ar__sig_upd_t *u)
{
    ar__sig_sess_t *s = r->local;
    if (!u->has_own || !s || s->is_backup || u->owner != u->origin)
        return CLAIM_NONE;
    /* A connection closed in this batch of events (GONE, freed later) holds no client. A
     * re-announcement ("re") comes only from a worker holding the client: never refused. */
    if (ar__sig_sess_connected(s) && (u->pr || (u->has_away && u->away && !u->re)))
        return CLAIM_REFUSED;
    if (u->re && !ar__sig_sess_connected(s))
        return CLAIM_YIELD; /* it has the client, we have not */
    if (ar__sig_sess_unresumed_promotion(s) && !u->pr && ar__sig_node_alive(srv, u->origin))
        return CLAIM_YIELD;
    return CLAIM_NONE;
}

/*
 * Whether u is a claim of ownership that a worker whose death was handled here published, for a
 * session this worker holds as its owner (promoted, or resumed here since). It may be a claim
 * published before that worker died and heard only now (it waited in nats-server's route between
 * the nodes): applied, it pointed the record back at the dead everywhere, and no resume asks a dead
 * owner (docs/performance.md, "Failover at 100,000 calls a node, continued"). So the promoter
 * keeps the session and says so again (rec_apply), and the other workers, which applied the claim
 * as any other, take that. A re-announcement ("re") answers a promotion, so it was published
 * after the death: it counts (the worker was only slow, and its heartbeat may come after it).
 */
static int dead_claim(ar__sig_srv_t *srv, const ar__sig_rec_t *r, const ar__sig_upd_t *u)
{
    const ar__sig_sess_t *s = r->local;
    return u->has_own && u->owner == u->origin && !u->re && s && !s->is_backup &&
           r->owner == srv->node_id && ar__sig_node_death_handled(srv, u->origin);
}

static void yield(ar__sig_srv_t *srv, ar__sig_rec_t *r)
{
    ar__sig_sess_t *s = r->local;
    if (s->promoted)
        ar_log0(AR_LOG_INFO, "signal_promotion_undone");
    else
        ar_log0(AR_LOG_INFO, "signal_claim_undone");
    /* A client resuming here points at s (its attempt asks the owner next tick): it stays, as a
     * backup copy, until the attempt ends. */
    if (r->backup != srv->node_id && !ar__sig_sess_resuming(srv, s)) {
        ar__sig_sess_free(srv, s);
        return;
    }
    ar__sig_sess_demote(srv, s); /* the owner's adopt (next on the bus) brings its buffer */
}

/* r, from the bus, leaves its room here: the members we own that its worker did not tell
 * ("lt": it did not know of them, their joins raced) hear of it from us, as they heard of its
 * join (ar__sig_announce_late). Without "lt" (an update that is no leave: a room's end, a
 * record from an older worker) nobody is told here. */
static void left_late(ar__sig_srv_t *srv, const ar__sig_rec_t *r, json_t *lt, json_t *lr)
{
    if (!json_is_array(lt) || !json_is_integer(lr))
        return;
    char peers[2 * AR__SIG_ROOM_MAX][AR__SIG_PEER_LEN + 1];
    size_t n = 0;
    const ar__sig_room_t *room = r->in_room;
    for (size_t i = 0; i < room->nmembers && n < sizeof(peers) / sizeof(peers[0]); i++) {
        const ar__sig_rec_t *x = ar__sig_room_member(room, i);
        if (x == r || !ar__sig_owned_here(srv, x))
            continue;
        if (!ar__sig_named(lt, x->peer))
            memcpy(peers[n++], x->peer, AR__SIG_PEER_LEN + 1);
    }
    ar__sig_announce_left(srv, r, (const char(*)[AR__SIG_PEER_LEN + 1]) peers, n,
                          (int)json_integer_value(lr));
}

/* The record's role, from an update that names it (JSON only: the fixed layout has none). */
static void apply_role(ar__sig_rec_t *r, json_t *o)
{
    json_t *v = json_object_get(o, "role");
    int n;
    if (v && (n = small_int(v, AR_SIG_ROLE_INVITEE)) >= 0)
        r->role = (unsigned)n & 3u;
}

/* A JSON update's fields beyond who holds the session: name, language, room, queue, the
 * waiting areas subscribed to, in that order. */
static void apply_fields(ar__sig_srv_t *srv, ar__sig_rec_t *r, json_t *o)
{
    json_t *v;
    const char *s;
    int n;
    ar__sig_recq_t *rq;
    /* A name gets the record its queue part (without memory it stays nameless); "" wipes the
     * one it has, and a record without the part has none to wipe. */
    if ((s = json_string_value(json_object_get(o, "name"))) &&
        (rq = s[0] ? ar__sig_rec_q(r) : r->q) && rq != &ar__sig_no_q)
        set_name(&rq->name, s);
    if ((s = json_string_value(json_object_get(o, "lang"))) && (rq = ar__sig_rec_q(r)))
        ar__sig_str_set_personal(&rq->lang, s, AR__SIG_LANG_MAX);
    int entered = 0, roomed = 0;
    if ((s = json_string_value(json_object_get(o, "room"))) && strlen(s) <= AR_SIG_ID_MAX) {
        roomed = 1;
        entered = s[0] && (!r->in_room || strcmp(r->in_room->id, s) != 0);
        if (r->in_room && strcmp(r->in_room->id, s) != 0)
            left_late(srv, r, json_object_get(o, "lt"), json_object_get(o, "lr"));
        /* A backup copy's removals numbered before this change were applied or moot by then:
         * the owner published the change after their copies (sess.c ending_action). */
        if (r->local && r->local->is_backup && strcmp(ar__sig_rec_room(r), s) != 0)
            ar__sig_sess_removals_settled(r->local);
        ar__sig_rec_set_room(srv, r, s);
        if (r->in_room) {
            const char *rc = json_string_value(json_object_get(o, "rc"));
            /* Without memory for its copy the room has no clinic here until an update brings
             * it again: no staff enter it or run its call by their clinic's roles. */
            if (rc && strlen(rc) <= AR_SIG_ID_MAX &&
                ar__sig_room_set_clinic(srv, r->in_room, rc) < 0)
                ar_log0(AR_LOG_WARN, "signal_room_clinic_lost");
            if ((v = json_object_get(o, "rp")))
                r->in_room->profile = (uint8_t)json_integer_value(v);
            if ((v = json_object_get(o, "rpers")))
                r->in_room->persistent = (uint8_t)json_integer_value(v);
            if ((v = json_object_get(o, "jt")))
                r->joined_us = (uint64_t)json_integer_value(v);
        }
    }
    const char *clinic = json_string_value(json_object_get(o, "clinic"));
    const char *area = json_string_value(json_object_get(o, "area"));
    int qfields =
        clinic && area && strlen(clinic) <= AR_SIG_ID_MAX && strlen(area) <= AR_SIG_ID_MAX;
    if (qfields)
        ar__sig_queue_catchup(srv, r, o, 0);
    /* Every session's first update carries these fields, mostly empty: a record gets its
     * queue part only for a fact (ar__sig_rec_q), and ar__sig_no_q is never written. */
    const char *by = json_string_value(json_object_get(o, "by"));
    const char *bn = json_string_value(json_object_get(o, "bn"));
    json_int_t since = json_integer_value(json_object_get(o, "since"));
    int facts = qfields && (clinic[0] || area[0] || (by && by[0]) || (bn && bn[0]) || since ||
                            json_array_size(json_object_get(o, "ans")));
    if (qfields && (rq = facts ? ar__sig_rec_q(r) : r->q)) {
        if ((v = json_object_get(o, "ans")) && rq != &ar__sig_no_q) {
            ar__sig_answers_wipe(rq);
            if (json_array_size(v) && !rq->ans)
                rq->ans = ar_calloc(AR_SIG_ANSWERS_MAX, sizeof(*rq->ans));
            for (size_t i = 0; rq->ans && i < json_array_size(v) && i < AR_SIG_ANSWERS_MAX; i++) {
                const char *q, *a;
                if (json_unpack(json_array_get(v, i), "[s,s]", &q, &a) != 0)
                    continue;
                rq->ans[rq->nans].q = (ar_sig_str_t){ar_strndup(q, strlen(q)), strlen(q)};
                rq->ans[rq->nans].a = (ar_sig_str_t){ar_strndup(a, strlen(a)), strlen(a)};
                rq->nans++;
            }
        }
        ar__sig_rec_set_area(srv, r, clinic, area);
        /* No "st" is 0 (not in a queue), as it was; a value out of range is not applied. */
        v = json_object_get(o, "st");
        if ((n = v ? small_int(v, AR_SIG_ST_HOLD) : 0) >= 0)
            r->status = (unsigned)n & 3u;
        if (rq != &ar__sig_no_q) {
            rq->since = since;
            ar__sig_str_set(&rq->by, by ? by : "", AR__SIG_PEER_LEN);
            ar__sig_str_set_personal(&rq->by_name, bn ? bn : "", SIZE_MAX);
        }
        ar__sig_queue_catchup(srv, r, o, 1);
    }
    if ((v = json_object_get(o, "subs")))
        apply_subs(srv, r, v);
    /* Two joins racing on two workers: each joiner's worker told only the members it knew.
     * Our members that r's joiner did not name hear of r from us, and r of them when their own
     * record reaches r's worker: everyone in the room, once (flows.c ar__sig_announce_late). */
    if (entered && r->in_room && (v = json_object_get(o, "rt")))
        ar__sig_announce_late(srv, r, v);
    /* Last, when the record is complete: a join that raced one on another node is undone.
     * Only an update of the room can make it too full: the others (an owner's move, most of a
     * failover's) do not look at the room. */
    if (roomed && r->in_room)
        ar__sig_room_enforce(srv, r->in_room);
}

/*
 * u from the bus, with o the JSON it came in (NULL for the fixed layout, which says nothing
 * beyond u: rec_wire.c). Who holds the session first, then o's other fields (apply_fields),
 * then what the change of holder asks of this worker.
 */
static void rec_apply(ar__sig_srv_t *srv, const ar__sig_upd_t *u, json_t *o)
{
    const char *peer = u->peer;
    if (u->origin == srv->node_id)
        return; /* our own, applied when published */
    if (u->del) {
        ar__sig_rec_t *r = ar__sig_rec_find(srv, peer);
        if (r && r->local)
            ar__sig_sess_close_conn(r->local, AR_SIG_CLOSE_ENDED);
        if (r) {
            ar__sig_frames_purge(srv, r); /* as for our own deletions (rec_publish) */
            ar__sig_rec_free(srv, r);
        }
        return;
    }
    ar__sig_rec_t *r = ar__sig_rec_get(srv, peer);
    if (!r)
        return;
    uint64_t freed = srv->recs_freed;
    int owned = ar__sig_owns(srv, r);
    if (u->has_home)
        memcpy(r->home, u->home, sizeof(r->home));
    int claim = ownership_claim(srv, r, u);
    uint64_t owner = r->owner;
    if (o)
        apply_role(r, o);
    int dead = dead_claim(srv, r, u);
    if (claim != CLAIM_REFUSED && !dead) {
        if (u->has_away)
            r->away = u->away;
        if (u->has_own)
            r->owner = u->owner;
        if (u->has_bk)
            r->backup = u->backup;
    }
    if (dead)
        ar__sig_rec_publish(srv, r, "own"); /* ours: said again, for those that took the claim */
    if (claim == CLAIM_YIELD)
        yield(srv, r);
    else if (claim == CLAIM_NONE && r->local && r->local->handed)
        ar__sig_sess_owner_seen(srv, r, u->origin); /* a hand-over confirmed */
    int moved = r->owner != owner;
    if (o)
        apply_fields(srv, r, o);
    if (claim == CLAIM_REFUSED && r->local) {
        if (u->pr)
            ar_log0(AR_LOG_INFO, "signal_promotion_refused");
        else
            ar_log0(AR_LOG_INFO, "signal_claim_refused");
        json_t *q = srv->qt ? srv->qt : json_object();
        if (q && json_object_set_new(q, "re", json_true()) == 0)
            srv->qt = q;
        ar__sig_sess_adopt(srv, r->local); /* "own" with us as owner, and a backup again */
    }
    /* A client resuming here asks the new owner (a promoter, graceful stop or death) at the
     * end of this batch of bus messages, not at the next tick. Only for a copy made for a
     * resume (provisional). Marked, not kicked here: the kick walks the connections, and a
     * node's death changes the owner of every session it held, so thousands of these in one
     * batch cost one walk (ar__sig_resume_kick_marked). Looked up again only if a record
     * went meanwhile (enforcing the room in apply_fields, or a yield, may end sessions): a
     * lookup was 7 % of a failover survivor's samples, where every worker applies every update
     * (docs/performance.md, "Failover at 100,000 calls a node: one walk for the deaths found
     * together"). */
    if (srv->recs_freed != freed && !(r = ar__sig_rec_find(srv, peer)))
        return;
    if (moved && r->local && r->local->provisional) {
        r->local->kick = 1;
        srv->kicks = 1;
    }
    /* Our copy that the update made ours to act on as owner (its record names us again), in a
     * room this worker may know was ended: ended for it now (invite.c). */
    if (!owned && ar__sig_owns(srv, r))
        ar__sig_sess_check_ended(srv, r->local);
}

void ar__sig_rec_apply(ar__sig_srv_t *srv, void *obj)
{
    ar__sig_upd_t u;
    if (ar__sig_upd_from_json(obj, &u) == 0)
        rec_apply(srv, &u, obj);
}

void ar__sig_rec_apply_compact(ar__sig_srv_t *srv, const uint8_t *d, size_t len)
{
    ar__sig_upd_t u;
    if (ar__sig_upd_read(d, len, &u) == 0)
        rec_apply(srv, &u, NULL);
}

void ar__sig_rec_apply_batch(ar__sig_srv_t *srv, const uint8_t *d, size_t len)
{
    size_t n = ar__sig_upd_batch_count(d, len);
    for (size_t i = 0; i < n; i++)
        ar__sig_rec_apply_compact(srv, d + 1 + i * AR__SIG_UPD_LEN, AR__SIG_UPD_LEN);
}
