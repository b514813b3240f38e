/*
 * Waiting areas (docs/protocol.md 5.2-5.6; P2, P3, C1-C3): a patient arrives in the area its
 * token names, with the details it typed (kept in memory only); staff of the clinic subscribe
 * and get a snapshot, then deltas; take, hold, transfer and staff messages.
 *
 * A patient is only ever sent its own `wait` status and messages addressed to it: queue frames
 * go to subscribers, and only staff with a role in that clinic can subscribe. A peer id that is
 * not a patient of a clinic the caller works in is `not_found`, so ids cannot be probed.
 */
#include "internal.h"

#include "anteroom/alloc.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REFUSE(cn, m, code) ar__sig_send_error((cn), (code), NULL, (m)->type, (m)->id)

static ar_sig_str_t str(const char *s)
{
    return (ar_sig_str_t){s, strlen(s)};
}

static ar_sig_str_t opt(const char *s)
{
    return (ar_sig_str_t){s && s[0] ? s : NULL, s ? strlen(s) : 0};
}

static void copy(char *dst, ar_sig_str_t s)
{
    memcpy(dst, s.p, s.len);
    dst[s.len] = '\0';
}

static void entry_of(ar_sig_entry_t *e, ar__sig_rec_t *p)
{
    memset(e, 0, sizeof(*e));
    e->peer = str(p->peer);
    const char *name = ar__sig_rec_name(p);
    e->name = str(name ? name : "?");
    e->answers = (ar_sig_list_t){p->q->ans, p->q->nans};
    e->since = p->q->since;
    e->status = p->status;
    e->by = opt(p->q->by);
    e->by_name = opt(p->q->by_name);
}

static void to_subscribers(ar__sig_srv_t *srv, ar__sig_area_t *a, ar_sig_msg_t *m)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->nsubs; i++)
        ar__sig_to(srv, a->subs[i]->peer, m, AR__SIG_ACT_NONE);
}

/* Queue deltas and the race with a subscription (docs/signal.md, "Queue snapshot and deltas"):
 * the worker that changes a queue sends the delta to the subscribers it knows of and names them
 * in the record update ("qh"); a worker applying that update sends the same delta to those of
 * its own subscribers the sender did not name (their subscription had not reached it yet).
 *
 * A subscriber is named by the first TOLD_KEY characters of its peer id, the keys sorted and
 * joined in one string: 48 of the id's 128 random bits (the server drew them), so an area
 * watched by n staff makes 8n bytes, and a subscriber the sender did not know is taken for a
 * named one, and not caught up, with a chance of n in 2^48. Full ids in a JSON array (the "qt"
 * this replaced) made 25n bytes and n allocations to parse, and were capped at 64. */
#define QK_ADD 1
#define QK_UPDATE 2
#define QK_REMOVE 3
#define TOLD_KEY 8
/* Keys in one update, 64 KiB of them; beyond, the update names nobody and nobody is caught up
 * (an area watched by more than 8,192 staff at once; see signal.md). */
#define TOLD_MAX 8192

/* peer's key: its first TOLD_KEY characters, padded with '.' (never in a peer id) if shorter. */
static void told_key(const char *peer, char key[TOLD_KEY])
{
    size_t n = strnlen(peer, TOLD_KEY);
    memcpy(key, peer, n);
    memset(key + n, '.', TOLD_KEY - n);
}

static int key_cmp(const void *a, const void *b)
{
    return memcmp(a, b, TOLD_KEY);
}

static void told(ar__sig_srv_t *srv, ar__sig_area_t *a, int kind, int reason)
{
    json_decref(srv->qt);
    srv->qt = NULL;
    if (!a || a->nsubs > TOLD_MAX)
        return;
    char *keys = ar_malloc(a->nsubs * TOLD_KEY + 1); /* + 1: never a 0-byte allocation */
    if (!keys)
        return;
    for (size_t i = 0; i < a->nsubs; i++)
        told_key(a->subs[i]->peer, keys + i * TOLD_KEY);
    qsort(keys, a->nsubs, TOLD_KEY, key_cmp);
    json_t *o =
        json_pack("{s:i,s:i,s:s%}", "qk", kind, "qr", reason, "qh", keys, a->nsubs * TOLD_KEY);
    ar_free(keys);
    srv->qt = o; /* NULL when out of memory: nobody named, nobody caught up */
}

/* Whether the sorted keys (n of them) name peer. */
static int told_named(const char *keys, size_t n, const char *peer)
{
    char key[TOLD_KEY];
    told_key(peer, key);
    return bsearch(key, keys, n, TOLD_KEY, key_cmp) != NULL;
}

int ar__sig_named(const void *json_list, const char *peer)
{
    const json_t *list = json_list;
    for (size_t i = 0; i < json_array_size(list); i++) {
        const char *s = json_string_value(json_array_get(list, i));
        if (s && strcmp(s, peer) == 0)
            return 1;
    }
    return 0;
}

static void catchup(ar__sig_srv_t *srv, ar__sig_rec_t *p, void *json_obj, int after)
{
    json_t *o = json_obj, *named = json_object_get(o, "qh");
    int kind = (int)json_integer_value(json_object_get(o, "qk"));
    ar__sig_area_t *a = p->q->in_area;
    /* No keys, or not whole keys (not from a worker of ours): nobody is caught up, as when the
     * sender named nobody. Unsorted keys make wrong answers, never a read out of bounds. */
    size_t len = json_string_length(named);
    if (!json_is_string(named) || len % TOLD_KEY || !a || (kind == QK_REMOVE) == (after != 0))
        return;
    ar_sig_msg_t m;
    if (kind == QK_ADD) {
        ar_sig_msg_init(&m, AR_SIG_QUEUE_ADD);
        entry_of(&m.u.queue.entry, p);
    } else if (kind == QK_UPDATE) {
        ar_sig_msg_init(&m, AR_SIG_QUEUE_UPDATE);
        m.u.queue.peer = str(p->peer);
        m.u.queue.status = p->status;
        m.u.queue.by = opt(p->q->by);
        m.u.queue.by_name = opt(p->q->by_name);
    } else if (kind == QK_REMOVE) {
        ar_sig_msg_init(&m, AR_SIG_QUEUE_REMOVE);
        m.u.queue.peer = str(p->peer);
        m.u.queue.reason = (int)json_integer_value(json_object_get(o, "qr"));
    } else {
        return;
    }
    m.u.queue.clinic = str(a->clinic);
    m.u.queue.area = str(a->area);
    const char *keys = json_string_value(named);
    for (size_t i = 0; i < a->nsubs; i++)
        if (ar__sig_owned_here(srv, a->subs[i]) &&
            !told_named(keys, len / TOLD_KEY, a->subs[i]->peer))
            ar__sig_to(srv, a->subs[i]->peer, &m, AR__SIG_ACT_NONE);
}

static void wait_to(ar__sig_srv_t *srv, ar__sig_rec_t *p)
{
    ar_sig_msg_t m;
    ar_sig_msg_init(&m, AR_SIG_WAIT);
    m.u.wait.area = str(p->q->area);
    m.u.wait.status = p->status;
    ar__sig_to(srv, p->peer, &m, AR__SIG_ACT_NONE);
}

static void queue_update(ar__sig_srv_t *srv, ar__sig_rec_t *p)
{
    ar_sig_msg_t m;
    ar_sig_msg_init(&m, AR_SIG_QUEUE_UPDATE);
    m.u.queue.clinic = str(p->q->clinic);
    m.u.queue.area = str(p->q->area);
    m.u.queue.peer = str(p->peer);
    m.u.queue.status = p->status;
    m.u.queue.by = opt(p->q->by);
    m.u.queue.by_name = opt(p->q->by_name);
    to_subscribers(srv, p->q->in_area, &m);
}

void ar__sig_queue_remove(ar__sig_srv_t *srv, ar__sig_rec_t *p, int reason)
{
    ar__sig_area_t *a = p->q->in_area;
    if (!a)
        return;
    ar_sig_msg_t m;
    ar_sig_msg_init(&m, AR_SIG_QUEUE_REMOVE);
    m.u.queue.clinic = str(a->clinic);
    m.u.queue.area = str(a->area);
    m.u.queue.peer = str(p->peer);
    m.u.queue.reason = reason;
    to_subscribers(srv, a, &m);
    told(srv, a, QK_REMOVE, reason); /* before the area may go with its last patient */
    ar__sig_rec_set_area(srv, p, p->q->clinic, "");
    p->status = 0;
    ar__sig_rec_publish(srv, p, "st");
}

static void queue_add(ar__sig_srv_t *srv, ar__sig_rec_t *p)
{
    ar_sig_msg_t m;
    ar_sig_msg_init(&m, AR_SIG_QUEUE_ADD);
    m.u.queue.clinic = str(p->q->clinic);
    m.u.queue.area = str(p->q->area);
    entry_of(&m.u.queue.entry, p);
    to_subscribers(srv, p->q->in_area, &m);
}

/* Who sees a patient (the record's `by` and the name shown for it): by, or nobody (NULL). */
static void set_by(ar__sig_recq_t *pq, const ar__sig_rec_t *by)
{
    if (by) {
        ar__sig_str_set(&pq->by, by->peer, AR__SIG_PEER_LEN);
        const char *name = ar__sig_rec_name(by);
        ar__sig_str_set_personal(&pq->by_name, name ? name : "", SIZE_MAX);
    } else {
        ar__sig_str_free(&pq->by);
        ar__sig_str_free_personal(&pq->by_name);
    }
}

static void on_arrive(ar__sig_conn_t *cn, ar_sig_msg_t *m)
{
    ar__sig_srv_t *srv = cn->srv;
    ar__sig_rec_t *r = cn->sess->rec;
    const ar__sig_claims_t *cl = cn->sess->claims;
    if (r->role != AR_SIG_ROLE_PATIENT) {
        REFUSE(cn, m, AR_SIG_E_FORBIDDEN);
        return;
    }
    if (r->q->in_area || r->status) {
        REFUSE(cn, m, AR_SIG_E_BAD_STATE);
        return;
    }
    if (m->u.arrive.clinic.len != strlen(ar__sig_claims_clinic(cl)) ||
        m->u.arrive.area.len != strlen(ar__sig_claims_area(cl)) ||
        memcmp(m->u.arrive.clinic.p, ar__sig_claims_clinic(cl), m->u.arrive.clinic.len) != 0 ||
        memcmp(m->u.arrive.area.p, ar__sig_claims_area(cl), m->u.arrive.area.len) != 0) {
        REFUSE(cn, m, AR_SIG_E_FORBIDDEN);
        return;
    }
    ar__sig_area_t *a = ar__sig_area_find(srv, ar__sig_claims_clinic(cl), ar__sig_claims_area(cl));
    if (a && a->npatients >= AR__SIG_QUEUE_MAX) {
        REFUSE(cn, m, AR_SIG_E_QUEUE_FULL);
        return;
    }
    ar__sig_room_t *room = ar__sig_room_find(srv, ar__sig_claims_room(cl));
    if (ar__sig_room_ended(
            srv, ar__sig_claims_room(cl))) { /* its consultation is over (protocol.md 5.13) */
        ar__sig_refuse_ended(cn, m);
        return;
    }
    if (room && room->nmembers >= AR__SIG_ROOM_MAX) {
        REFUSE(cn, m, AR_SIG_E_ROOM_FULL);
        return;
    }
    ar__sig_recq_t *q = ar__sig_rec_q(r);
    if (!q) {
        REFUSE(cn, m, AR_SIG_E_INTERNAL);
        return;
    }
    /* Its room first (announced below, before its place in the queue): without memory for it,
     * or for the copy of its clinic by which staff take it and run the call, the arrival is
     * refused with nothing changed. */
    int entered = r->in_room == NULL;
    if (entered) {
        ar__sig_rec_set_room(srv, r, ar__sig_claims_room(cl));
        if (r->in_room && !room &&
            ar__sig_room_set_clinic(srv, r->in_room, ar__sig_claims_clinic(cl)) < 0)
            ar__sig_rec_set_room(srv, r, ""); /* the room it opened goes with it */
        if (!r->in_room) {
            REFUSE(cn, m, AR_SIG_E_INTERNAL);
            return;
        }
        if (!room)
            r->in_room->profile = cl->profile;
    }
    /* P2: the name and answers live in this record, in memory, for the wait and the call. A
     * record that arrived before (a patient back to status 0) drops the old ones first. */
    ar__sig_name_wipe(&q->name);
    q->name = ar_strndup(m->u.arrive.name.p, m->u.arrive.name.len);
    ar__sig_answers_wipe(q);
    if (m->u.arrive.answers.count && !q->ans)
        q->ans = ar_calloc(AR_SIG_ANSWERS_MAX, sizeof(*q->ans));
    for (size_t i = 0; q->ans && i < m->u.arrive.answers.count && i < AR_SIG_ANSWERS_MAX; i++) {
        ar_sig_answer_t *in = AR_SIG_ITEM(m->u.arrive.answers, ar_sig_answer_t, i);
        q->ans[i].q = (ar_sig_str_t){ar_strndup(in->q.p, in->q.len), in->q.len};
        q->ans[i].a = (ar_sig_str_t){ar_strndup(in->a.p, in->a.len), in->a.len};
        q->nans = (uint8_t)(i + 1);
    }
    q->since = (int64_t)time(NULL);
    r->status = AR_SIG_ST_WAITING;
    set_by(q, NULL); /* who saw the patient before: not now */
    ar__sig_rec_set_area(srv, r, ar__sig_claims_clinic(cl), ar__sig_claims_area(cl));
    if (entered)
        ar__sig_rec_publish(srv, r, "room");
    told(srv, r->q->in_area, QK_ADD, 0);
    ar__sig_rec_publish(srv, r, "area");
    wait_to(srv, r);
    queue_add(srv, r);
}

/*
 * The queue snapshot (docs/signal.md, "Queue snapshot and deltas"): up to 32 entries a frame;
 * the last one has no `more`. 32 entries whose names and answers are long and full of
 * characters JSON escapes pass the frame limit (AR_SIG_OUT_MAX): such a page is sent as two of
 * half as many entries, down to one entry a page, which always fits, so no waiting patient is
 * left out of the snapshot.
 *
 * 500 patients with the longest details come to about 1 MB of pages, more than a connection
 * may have queued (max_outgoing, srv.c): queued at once, the snapshot got its subscriber
 * dropped as a slow reader. So pages go out while the connection's output is low, SNAP_TURN
 * bytes a turn of the loop at most, and the rest when the net layer says the connection has
 * written everything (ar_sn_conn_notify_writable). Pages pass through the bus's local queue
 * (ar__sig_to), which the loop empties every turn: at most two turns' pages (if the writable
 * callback runs before the queue is emptied) and one page over each are in memory at once.
 *
 * What a snapshot still to send holds is a cursor, not a copy: a->patients[pos, end) are the
 * patients it has yet to list. The rule it keeps with the deltas, which every subscriber gets
 * from the moment its subscription is handled (to_subscribers, or a catch-up from another
 * worker's update):
 *  - it lists only the patients in the queue when the subscription was handled (end is the
 *    queue's length then; arrivals are appended after it), each once, with the state it has
 *    when its page is built. A patient who arrives later is told by its queue_add alone;
 *  - a patient removed before its page is never listed: index.c tells ar__sig_snap_removed the
 *    place it leaves, and pos and end move down past it, so no other patient is skipped;
 *  - so a queue_update or queue_remove may name a patient the snapshot has not listed yet (or
 *    never will): the client ignores it (protocol.md 5.2), and the page that lists the patient
 *    later carries its state after that update.
 * Each delta thus still reaches each subscriber once, and pages and deltas together make up
 * the queue. A subscribe to an area whose snapshot is still going starts it over. The cursor
 * goes with the connection (ar__sig_snap_conn_gone), the subscription (ar__sig_snap_unsub) and
 * the record (which unsubscribes as it is freed).
 */
#define SNAP_TURN ((size_t)64 * 1024)

struct ar__sig_snap_s {
    struct ar__sig_snap_s *next;
    ar__sig_conn_t *cn; /* the connection it goes out on */
    ar__sig_rec_t *sub; /* cn's session's record: the subscriber */
    ar__sig_area_t *a;
    uint32_t pos, end;
};

static void snap_unlink(ar__sig_srv_t *srv, ar__sig_snap_t *sn)
{
    ar__sig_snap_t **p = &srv->snaps;
    while (*p && *p != sn)
        p = &(*p)->next;
    if (*p)
        *p = sn->next;
    ar_free(sn);
    ar_metric_add(srv->m.snaps, 0, -1);
}

/* Sends sn's next pages, about *budget bytes of them (taken from it): 1 when the last went. */
static int snap_pages(ar__sig_srv_t *srv, ar__sig_snap_t *sn, size_t *budget)
{
    ar__sig_area_t *a = sn->a;
    ar_sig_entry_t entries[AR_SIG_ENTRIES_MAX];
    while (*budget > 0) {
        size_t left = sn->end - sn->pos;
        size_t n = left < AR_SIG_ENTRIES_MAX ? left : AR_SIG_ENTRIES_MAX;
        for (size_t k = 0; k < n; k++)
            entry_of(&entries[k], a->patients[sn->pos + k]);
        int rc;
        do {
            ar_sig_msg_t q;
            ar_sig_msg_init(&q, AR_SIG_QUEUE);
            q.u.queue.clinic = str(a->clinic);
            q.u.queue.area = str(a->area);
            q.u.queue.entries = (ar_sig_list_t){entries, n};
            q.u.queue.more = sn->pos + n < sn->end;
            rc = ar__sig_to(srv, sn->sub->peer, &q, AR__SIG_ACT_NONE);
        } while (rc == AR_ETOOBIG && n > 1 && (n /= 2));
        /* A page that could not be built was logged (ar__sig_to); the snapshot goes on. */
        size_t cost = rc > 0 ? (size_t)rc : 1;
        *budget -= cost < *budget ? cost : *budget;
        sn->pos += (uint32_t)n;
        if (sn->pos >= sn->end)
            return 1;
    }
    return 0;
}

/* The pages of cn's snapshots that fit this turn; asks to be called again for the rest. */
static void snap_send(ar__sig_srv_t *srv, ar__sig_conn_t *cn)
{
    size_t queued = ar_sn_conn_outgoing(cn->c);
    size_t budget = queued < SNAP_TURN ? SNAP_TURN - queued : 0;
    int more = 0;
    for (ar__sig_snap_t *sn = srv->snaps, *next; sn; sn = next) {
        next = sn->next;
        if (sn->cn != cn)
            continue;
        if (budget > 0 && snap_pages(srv, sn, &budget))
            snap_unlink(srv, sn);
        else
            more = 1;
    }
    /* Pages only go into the bus's local queue here, so cn is still open. */
    if (more && ar_sn_conn_notify_writable(cn->c) != 0)
        ar__sig_snap_conn_gone(srv, cn);
}

/* A subscription was made (or repeated): its snapshot starts on the loop's next turn. */
static void snap_start(ar__sig_conn_t *cn, ar_sig_msg_t *m, ar__sig_area_t *a)
{
    ar__sig_srv_t *srv = cn->srv;
    ar__sig_rec_t *r = cn->sess->rec;
    ar__sig_snap_t *sn = srv->snaps;
    while (sn && (sn->cn != cn || sn->a != a))
        sn = sn->next;
    if (!sn && a && (sn = ar_calloc(1, sizeof(*sn)))) {
        sn->next = srv->snaps;
        srv->snaps = sn;
        ar_metric_add(srv->m.snaps, 0, 1);
        sn->cn = cn;
        sn->sub = r;
        sn->a = a;
    }
    if (sn) {
        sn->pos = 0;
        sn->end = (uint32_t)a->npatients;
        if (ar_sn_conn_notify_writable(cn->c) != 0)
            ar__sig_snap_conn_gone(srv, cn);
        return;
    }
    /* No area (nobody waits there) or no memory: an empty snapshot now, as the queue was. */
    ar_sig_msg_t q;
    ar_sig_msg_init(&q, AR_SIG_QUEUE);
    q.u.queue.clinic = m->u.queue.clinic;
    q.u.queue.area = m->u.queue.area;
    if (a)
        REFUSE(cn, m, AR_SIG_E_INTERNAL);
    else
        ar__sig_to(srv, r->peer, &q, AR__SIG_ACT_NONE);
}

void ar__sig_snap_writable(ar__sig_conn_t *cn)
{
    if (cn->state == AR__SIG_C_LIVE && cn->sess && cn->sess->conn == cn)
        snap_send(cn->srv, cn);
}

void ar__sig_snap_removed(ar__sig_srv_t *srv, ar__sig_area_t *a, size_t i)
{
    for (ar__sig_snap_t *sn = srv->snaps; sn; sn = sn->next) {
        if (sn->a != a || i >= sn->end)
            continue;
        sn->end--;
        if (i < sn->pos)
            sn->pos--;
    }
}

void ar__sig_snap_unsub(ar__sig_srv_t *srv, const ar__sig_rec_t *r, const ar__sig_area_t *a)
{
    for (ar__sig_snap_t *sn = srv->snaps, *next; sn; sn = next) {
        next = sn->next;
        if (sn->sub == r && sn->a == a)
            snap_unlink(srv, sn);
    }
}

size_t ar__sig_snaps_pending(const ar__sig_srv_t *srv)
{
    size_t n = 0;
    for (const ar__sig_snap_t *sn = srv->snaps; sn; sn = sn->next)
        n++;
    return n;
}

void ar__sig_snap_conn_gone(ar__sig_srv_t *srv, const ar__sig_conn_t *cn)
{
    for (ar__sig_snap_t *sn = srv->snaps, *next; sn; sn = next) {
        next = sn->next;
        if (sn->cn == cn)
            snap_unlink(srv, sn);
    }
}

static void on_subscribe(ar__sig_conn_t *cn, ar_sig_msg_t *m, int on)
{
    ar__sig_srv_t *srv = cn->srv;
    ar__sig_rec_t *r = cn->sess->rec;
    char clinic[AR_SIG_ID_MAX + 1], area[AR_SIG_ID_MAX + 1];
    copy(clinic, m->u.queue.clinic);
    copy(area, m->u.queue.area);
    if (r->role == AR_SIG_ROLE_PATIENT) {
        /* A patient resynchronising after error lost (protocol.md 5.10): what it may see of a
         * queue is its own status, in its own clinic (any area: it may have been transferred). */
        if (strcmp(clinic, ar__sig_claims_clinic(cn->sess->claims)) != 0)
            REFUSE(cn, m, AR_SIG_E_FORBIDDEN);
        else if (!r->q->in_area || !r->status)
            REFUSE(cn, m, AR_SIG_E_BAD_STATE);
        else
            wait_to(srv, r);
        return;
    }
    if (!ar__sig_can_queue(cn->sess->claims, clinic)) {
        REFUSE(cn, m, AR_SIG_E_FORBIDDEN);
        return;
    }
    ar__sig_recq_t *q = r->q; /* its own when it has subscriptions */
    size_t i = 0;
    while (i < q->nsubs &&
           (strcmp(q->subs[i][0].s, clinic) != 0 || strcmp(q->subs[i][1].s, area) != 0))
        i++;
    if (!on) {
        if (i == q->nsubs) {
            REFUSE(cn, m, AR_SIG_E_NOT_FOUND);
            return;
        }
        q->subs[i][0] = q->subs[q->nsubs - 1][0];
        q->subs[i][1] = q->subs[q->nsubs - 1][1];
        q->nsubs--;
        ar__sig_area_unsub(srv, r, ar__sig_area_find(srv, clinic, area));
        ar__sig_rec_publish(srv, r, "subs");
        return;
    }
    if (i == q->nsubs) {
        if (q->nsubs >= AR__SIG_SUBS_MAX) {
            REFUSE(cn, m, AR_SIG_E_FORBIDDEN);
            return;
        }
        /* The first subscription allocates the record's queue part, which holds them. */
        q = ar__sig_rec_q(r);
        void *ns = q ? ar_realloc(q->subs, (q->nsubs + 1) * sizeof(*q->subs)) : NULL;
        ar__sig_area_t *a = ar__sig_area_get(srv, clinic, area);
        if (ns)
            q->subs = ns;
        if (!ns || !a || ar__sig_area_sub(srv, r, a) != 0) {
            REFUSE(cn, m, AR_SIG_E_INTERNAL);
            return;
        }
        memcpy(q->subs[q->nsubs][0].s, clinic, sizeof(clinic));
        memcpy(q->subs[q->nsubs][1].s, area, sizeof(area));
        q->nsubs++;
        ar__sig_rec_publish(srv, r, "subs");
    }
    snap_start(cn, m, ar__sig_area_find(srv, clinic, area));
}

/* The staff member seeing patient p: the record `by` names, while it is in p's room. A mark
 * whose member is gone from the room (a departure that raced another on a second worker,
 * docs/protocol.md 5.3) counts as none, so it never keeps the patient from being taken. */
static ar__sig_rec_t *seeing(ar__sig_srv_t *srv, const ar__sig_rec_t *p)
{
    ar__sig_rec_t *x = p->q->by[0] ? ar__sig_rec_find(srv, p->q->by) : NULL;
    return x && p->in_room && x->in_room == p->in_room ? x : NULL;
}

/* Sets who sees p (NULL: nobody; a patient seen goes back to waiting, a held one stays held)
 * and tells p, every subscriber and every worker, as a take does. */
static void mark_seen(ar__sig_srv_t *srv, ar__sig_rec_t *p, ar__sig_recq_t *pq,
                      const ar__sig_rec_t *by)
{
    int was = p->status;
    set_by(pq, by);
    if (!by && p->status == AR_SIG_ST_SEEN)
        p->status = AR_SIG_ST_WAITING;
    told(srv, p->q->in_area, QK_UPDATE, 0);
    ar__sig_rec_publish(srv, p, "st");
    if (p->status != was)
        wait_to(srv, p);
    queue_update(srv, p);
}

void ar__sig_seen_left(ar__sig_srv_t *srv, ar__sig_rec_t *p, const ar__sig_rec_t *left)
{
    if (p->role != AR_SIG_ROLE_PATIENT || !p->q->in_area || p->q == &ar__sig_no_q ||
        strcmp(p->q->by, left->peer) != 0)
        return;
    /* Another staff member still in the room goes on seeing the patient: the queue says so,
     * and a colleague's take or a receptionist's transfer does not cut into their call. */
    ar__sig_rec_t *next = NULL;
    for (size_t i = 0; p->in_room && i < p->in_room->nmembers; i++) {
        ar__sig_rec_t *x = ar__sig_room_member(p->in_room, i);
        if (x != left && x->role == AR_SIG_ROLE_STAFF && (!next || ar__sig_joined_before(x, next)))
            next = x;
    }
    mark_seen(srv, p, p->q, next);
}

void ar__sig_queue_catchup(ar__sig_srv_t *srv, ar__sig_rec_t *p, void *json_obj, int after)
{
    catchup(srv, p, json_obj, after);
    /* Another worker marked p as seen by a session of ours that has left p's room: it picked
     * that session as the one left in the room while our departure was on its way (two staff
     * members leaving at once). We handled the departure, so we know the mark is stale, and
     * only we (the session's owner) mend it, once, as if it left now (docs/signal.md, "Who is
     * seeing a patient"). */
    ar__sig_rec_t *x =
        after && p->q->in_area && p->q->by[0] ? ar__sig_rec_find(srv, p->q->by) : NULL;
    if (x && ar__sig_owned_here(srv, x) &&
        (p->status == AR_SIG_ST_SEEN || p->status == AR_SIG_ST_HOLD) && !seeing(srv, p))
        ar__sig_seen_left(srv, p, x);
}

/* The waiting patient a staff message names, if the caller may see it. */
static ar__sig_rec_t *patient(ar__sig_conn_t *cn, ar_sig_msg_t *m, ar_sig_str_t id)
{
    char peer[AR__SIG_PEER_LEN + 1];
    ar__sig_rec_t *p = NULL;
    if (id.len == AR__SIG_PEER_LEN) {
        copy(peer, id);
        p = ar__sig_rec_find(cn->srv, peer);
    }
    if (!p || p->role != AR_SIG_ROLE_PATIENT || !p->q->in_area ||
        !ar__sig_can_queue(cn->sess->claims, p->q->clinic)) {
        REFUSE(cn, m, AR_SIG_E_NOT_FOUND);
        return NULL;
    }
    return p;
}

/* patient(), with its queue facts writable in *pq (allocated if need be); NULL: m refused. */
static ar__sig_rec_t *patient_q(ar__sig_conn_t *cn, ar_sig_msg_t *m, ar__sig_recq_t **pq)
{
    ar__sig_rec_t *p = patient(cn, m, m->u.act.peer);
    if (p && !(*pq = ar__sig_rec_q(p))) {
        REFUSE(cn, m, AR_SIG_E_INTERNAL);
        return NULL;
    }
    return p;
}

static void on_take(ar__sig_conn_t *cn, ar_sig_msg_t *m)
{
    ar__sig_srv_t *srv = cn->srv;
    ar__sig_rec_t *r = cn->sess->rec;
    ar__sig_recq_t *pq;
    ar__sig_rec_t *p = patient_q(cn, m, &pq);
    if (!p)
        return;
    if (!ar__sig_can_call(cn->sess->claims, pq->clinic)) {
        REFUSE(cn, m, AR_SIG_E_FORBIDDEN);
        return;
    }
    ar__sig_rec_t *by = p->status == AR_SIG_ST_SEEN ? seeing(srv, p) : NULL;
    if (by && by != r) {
        REFUSE(cn, m, AR_SIG_E_CONFLICT);
        return;
    }
    /* Seen by nobody still in the room (a stale mark): as good as waiting. */
    int waiting = p->status == AR_SIG_ST_WAITING || (p->status == AR_SIG_ST_SEEN && !by);
    if (!waiting || !p->in_room || (r->in_room && r->in_room != p->in_room)) {
        REFUSE(cn, m, AR_SIG_E_BAD_STATE);
        return;
    }
    if (!r->in_room) {
        if (p->in_room->nmembers >= AR__SIG_ROOM_MAX) {
            REFUSE(cn, m, AR_SIG_E_ROOM_FULL);
            return;
        }
        ar__sig_rec_set_room(srv, r, ar__sig_rec_room(p));
        ar__sig_rec_publish(srv, r, "room,rt"); /* announced below */
    }
    p->status = AR_SIG_ST_SEEN;
    set_by(pq, r);
    told(srv, p->q->in_area, QK_UPDATE, 0);
    ar__sig_rec_publish(srv, p, "st");
    ar__sig_announce_join(srv, r);
    wait_to(srv, p);
    queue_update(srv, p);
}

static void on_hold(ar__sig_conn_t *cn, ar_sig_msg_t *m)
{
    ar__sig_srv_t *srv = cn->srv;
    ar__sig_recq_t *pq;
    ar__sig_rec_t *p = patient_q(cn, m, &pq);
    if (!p)
        return;
    /* A receptionist holds and releases a patient nobody is seeing; a patient in a call (held
     * in it or not) is for those who run the call (protocol.md, "Who may send what"). */
    ar__sig_rec_t *by = seeing(srv, p);
    if (by && !ar__sig_can_call(cn->sess->claims, pq->clinic)) {
        REFUSE(cn, m, AR_SIG_E_FORBIDDEN);
        return;
    }
    int on = m->u.act.on;
    if ((on && p->status == AR_SIG_ST_HOLD) || (!on && p->status != AR_SIG_ST_HOLD)) {
        REFUSE(cn, m, AR_SIG_E_BAD_STATE);
        return;
    }
    if (!by)
        set_by(pq, NULL); /* a stale mark goes with the change */
    p->status = on ? AR_SIG_ST_HOLD : by ? AR_SIG_ST_SEEN : AR_SIG_ST_WAITING;
    told(srv, p->q->in_area, QK_UPDATE, 0);
    ar__sig_rec_publish(srv, p, "st");
    wait_to(srv, p);
    ar_sig_msg_t h;
    ar_sig_msg_init(&h, AR_SIG_HOLD);
    h.u.act.peer = str(p->peer);
    h.u.act.on = on;
    for (size_t i = 0; p->in_room && i < p->in_room->nmembers; i++) {
        const ar__sig_rec_t *x = ar__sig_room_member(p->in_room, i);
        if (x != p)
            ar__sig_to(srv, x->peer, &h, AR__SIG_ACT_NONE);
    }
    queue_update(srv, p);
}

static void on_transfer(ar__sig_conn_t *cn, ar_sig_msg_t *m)
{
    ar__sig_srv_t *srv = cn->srv;
    ar__sig_recq_t *pq;
    ar__sig_rec_t *p = patient_q(cn, m, &pq);
    if (!p)
        return;
    char area[AR_SIG_ID_MAX + 1];
    copy(area, m->u.act.area);
    if (strcmp(area, pq->area) == 0) {
        REFUSE(cn, m, AR_SIG_E_BAD_STATE);
        return;
    }
    /* A receptionist moves a patient nobody is seeing; one in a call is moved by those who run
     * calls, which takes them out of it (below). */
    if (seeing(srv, p) && !ar__sig_can_call(cn->sess->claims, pq->clinic)) {
        REFUSE(cn, m, AR_SIG_E_FORBIDDEN);
        return;
    }
    /* Staff in the call are taken out of it; the patient keeps its room and details. Invitees
     * (an interpreter, family) stay with the patient, as they may join it before any take:
     * the next clinician finds them there (protocol.md 5.6). */
    ar__sig_room_t *room = p->in_room;
    for (size_t i = 0; room && i < room->nmembers;) {
        ar__sig_rec_t *x = ar__sig_room_member(room, i);
        if (x->role != AR_SIG_ROLE_STAFF) {
            i++;
            continue;
        }
        ar__sig_rec_set_room(srv, x, "");
        ar__sig_rec_publish(srv, x, "room");
        ar_sig_msg_t l;
        ar_sig_msg_init(&l, AR_SIG_PEER_LEFT);
        l.u.peer_left.peer = str(p->peer);
        l.u.peer_left.reason = AR_SIG_LEFT_REMOVED;
        ar__sig_to(srv, x->peer, &l, AR__SIG_ACT_NONE);
        l.u.peer_left.peer = str(x->peer);
        l.u.peer_left.reason = AR_SIG_LEFT_LEFT;
        ar__sig_to(srv, p->peer, &l, AR__SIG_ACT_NONE);
        room = p->in_room; /* the room may have gone with its last other member */
    }
    char clinic[AR_SIG_ID_MAX + 1];
    snprintf(clinic, sizeof(clinic), "%s", pq->clinic);
    int64_t since = pq->since;
    ar__sig_queue_remove(srv, p, AR_SIG_GONE_TRANSFERRED); /* keeps the record and pq */
    pq->since = since;
    set_by(pq, NULL);
    p->status = AR_SIG_ST_WAITING;
    ar__sig_rec_set_area(srv, p, clinic, area);
    told(srv, p->q->in_area, QK_ADD, 0);
    ar__sig_rec_publish(srv, p, "area");
    queue_add(srv, p);
    wait_to(srv, p);
}

static void on_message(ar__sig_conn_t *cn, ar_sig_msg_t *m)
{
    ar__sig_rec_t *p = patient(cn, m, m->u.act.peer);
    if (!p)
        return;
    ar_sig_msg_t t;
    ar_sig_msg_init(&t, AR_SIG_MESSAGE);
    t.u.act.text = m->u.act.text;
    ar__sig_to(cn->srv, p->peer, &t, AR__SIG_ACT_NONE);
}

void ar__sig_area_handle(ar__sig_conn_t *cn, ar_sig_msg_t *m)
{
    int staff = cn->sess->rec->role == AR_SIG_ROLE_STAFF;
    if (m->type == AR_SIG_ARRIVE) {
        on_arrive(cn, m);
        return;
    }
    if (m->type == AR_SIG_SUBSCRIBE && cn->sess->rec->role == AR_SIG_ROLE_PATIENT) {
        on_subscribe(cn, m, 1); /* its own status only (resync) */
        return;
    }
    if (!staff) {
        REFUSE(cn, m, AR_SIG_E_FORBIDDEN);
        return;
    }
    switch (m->type) {
    case AR_SIG_SUBSCRIBE:
        on_subscribe(cn, m, 1);
        break;
    case AR_SIG_UNSUBSCRIBE:
        on_subscribe(cn, m, 0);
        break;
    case AR_SIG_TAKE:
        on_take(cn, m);
        break;
    case AR_SIG_HOLD:
        on_hold(cn, m);
        break;
    case AR_SIG_TRANSFER:
        on_transfer(cn, m);
        break;
    case AR_SIG_MESSAGE:
        on_message(cn, m);
        break;
    default:
        REFUSE(cn, m, AR_SIG_E_UNKNOWN_TYPE);
        break;
    }
}
