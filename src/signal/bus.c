/*
 * The bus between workers and nodes: NATS (libnats), subjects under ar.<jurisdiction>. so
 * a bus shared by several jurisdictions never mixes them (S10):
 *   ar.<jur>.node                 heartbeats: worker id, node name, draining, send time
 *   ar.<jur>.sess.<peer>          record updates of a session (role, away, owner, backup, ...)
 *   ar.<jur>.room.<room>          record updates that change room membership or the profile
 *   ar.<jur>.area.<clinic>.<area> record updates that change a queue
 *   ar.<jur>.to.<o>.<b>.<peer>    session-level frames for a peer: <o> and <b> are the tags of
 *                                 the owner and backup it was created with (below)
 *   ar.<jur>.proc.<worker>        worker to worker: hand-over, backup mirroring, the ended
 *                                 rooms a starting worker asks for (invite.c)
 *   ar.<jur>.inv.<hash>           an invite token used for a session, an ended room (invite.c)
 *   ar.<jur>.inv.resend           a worker's ended rooms sent again after a cut (invite.c)
 * Every worker subscribes to node, sess.>, room.>, area.> and inv.>: the control records are small
 * and replicated (index.c); relayed SDP and candidates go only to the peer's two workers.
 *
 * Those two take a session's frames through two subscriptions per worker, not one per session
 * (466 bytes here and 864 in nats-server each, docs/signal.md): a session's subject names the
 * owner and backup it was created with, by their tags, and never changes, and every worker
 * subscribes to to.<its tag>.*.* and to.*.<its tag>.*. Only a worker that holds a session
 * without being one of those two (a resume on another worker, a backup chosen later) subscribes
 * to its subject alone (to.*.*.<peer>), before the record that names it goes out, as every
 * holder once did. The subject stays one per session, so a sender's frames keep their order and
 * none is lost in a move; a worker of the first pair that no longer holds the session drops
 * what still reaches it (ar__sig_to_msg). A sender finds the tags in the session's record,
 * which every record update carries ("h", rec.c).
 *
 * libnats calls back on its own thread; the callback copies the message into an inbox and
 * pokes an eventfd the loop watches, so all state stays on the loop's thread. One delivery
 * thread for all subscriptions keeps a publisher's messages in the order it sent them.
 *
 * Two NATS connections per worker: every subscription (and the heartbeats) on one (nc), every
 * other publication on the other (pnc), written by a publisher thread. libnats' reader thread takes
 * the connection's lock after each read, and a write that blocks (libnats' flusher or our publish,
 * when nats-server stops reading us to slow us down) holds that lock: on one connection, a worker
 * that nats-server was throttling stopped reading too, its pending data at nats-server grew,
 * nats-server throttled its publications harder, and after 10 s nats-server dropped it as a slow
 * consumer (docs/signal.md, "Overload"). Apart, the reading connection never waits for a write to
 * nats-server. A publisher's records and frames still reach each subscriber in order (one
 * connection each way), and the publisher thread makes a SUB reach nats-server before what was
 * published after it (pub_main).
 *
 * A frame for a session this worker owns does not go through NATS (docs/signal.md, "Local
 * delivery"): it is queued on the loop's thread and delivered from the same eventfd wake-up,
 * so the caller's loop over a room's members never sees a delivery's side effects (an "ended"
 * frame deletes the session) in the middle, as with the bus. Whether the session is still ours
 * is decided when the queue is drained; if it has moved meanwhile, the frame is published then,
 * and while the queue is not empty every frame joins it, so one sender's frames keep their order.
 */
#include "bus_internal.h"

#include "anteroom/alloc.h"
#include "anteroom/log.h"

#include <jansson.h>
#include <nats/nats.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define PNC_WRITE_DEADLINE_MS 60000
/* libnats' bound on a subscription's messages waiting for our callback: at least this, and
 * four times inbox-max (subscribe). */
#define NATS_PENDING_BYTES ((size_t)256 << 20)

static const char *const k_kind_label[K__COUNT] = {
    "kind=\"node\"", "kind=\"record\"", "kind=\"frame\"", "kind=\"proc\"", "kind=\"invite\""};

/* Frees an inbox item, wiped: record updates carry names and answers, frames SDP (P5, S4).
 * The whole block, header and a K_LOST marker's (whose len is a count) included: per relayed
 * message that is the header and the allocator's slack beyond len, a few dozen bytes beside
 * the message's own, and one malloc_usable_size (a read of the chunk's header). */
static void item_free(item_t *it)
{
    ar_free_wiped(it);
}

/* A lost notice's count (bus_internal.h), or 0 when data is no notice. */
static uint32_t notice_count(const uint8_t *data, size_t len)
{
    if (len != NOTICE_LEN || data[24] != ACT_LOST)
        return 0;
    uint32_t n = (uint32_t)ar__sig_le_get(data + AR__SIG_TO_HDR, 4);
    return n ? n : 1;
}

/* Under b->mu: one message of this kind (for peer, when a frame) was dropped; a frame's drop is
 * marked where the frame would have gone, after everything already queued. notice: it was a
 * lost notice for that many frames: the marker carries its count, and it is not counted as a
 * drop here (the sender counted the frames). */
static void note_drop(ar__sig_bus_t *b, uint8_t kind, const char *peer, uint32_t notice)
{
    if (!notice)
        b->dropped[kind]++;
    if (kind != K_TO)
        return;
    uint32_t n = notice ? notice : 1;
    item_t *t = b->tail;
    if (t && t->kind == K_LOST && strcmp(t->peer, peer) == 0) {
        t->len = t->len + n > UINT32_MAX ? UINT32_MAX : t->len + n;
        return;
    }
    item_t *m = b->nmarks < LOST_MAX ? ar_malloc(sizeof(*m)) : NULL;
    if (!m) {
        b->lost_all = 1;
        return;
    }
    m->next = NULL;
    m->at_ms = mono_ms(); /* at the head, it is the backlog's age (own_behind) */
    m->kind = K_LOST;
    snprintf(m->peer, sizeof(m->peer), "%s", peer);
    m->len = n;
    if (t)
        t->next = m;
    else
        b->head = m;
    b->tail = m;
    b->nmarks++;
}

void ar__sig_bus_put(ar__sig_bus_t *b, const char *subj, const void *data, size_t len)
{
    const char *peer;
    uint8_t kind = ar__sig_bus_subj_kind(b, subj, &peer);
    ar_metric_add(b->m_received[kind], 0, 1);
    item_t *it = len <= (size_t)AR_SIG_OUT_MAX * 8u ? ar_malloc(sizeof(*it) + len + 1) : NULL;
    if (it) {
        it->next = NULL;
        it->at_ms = mono_ms();
        it->kind = kind;
        snprintf(it->peer, sizeof(it->peer), "%s", peer);
        it->len = len;
        memcpy(it->data, data, len);
        it->data[len] = '\0';
    }
    pthread_mutex_lock(&b->mu);
    /* The loop takes the whole inbox (and the drop counts) at each wake-up: only a message
     * that finds the inbox empty needs to poke it; the others find a poke pending. */
    int poke = b->head == NULL;
    if (it && b->bytes + len > b->max_bytes) {
        item_free(it);
        it = NULL;
    }
    if (it) {
        b->bytes += len;
        /* A departure is handled in its place, after the leaving worker's copies (bus_node.c). */
        int beat = kind == K_NODE &&
                   !(len >= sizeof(AR__SIG_LEAVE_HEAD) - 1 &&
                     memcmp(data, AR__SIG_LEAVE_HEAD, sizeof(AR__SIG_LEAVE_HEAD) - 1) == 0);
        item_t **head = beat ? &b->nhead : &b->head;
        item_t **tail = beat ? &b->ntail : &b->tail;
        if (*tail)
            (*tail)->next = it;
        else
            *head = it;
        *tail = it;
    } else {
        note_drop(b, kind, peer, kind == K_TO ? notice_count(data, len) : 0);
    }
    pthread_mutex_unlock(&b->mu);
    /* A drop wakes the loop too: the session is told now, not at the next message. */
    uint64_t one = 1;
    if (poke)
        (void)!write(b->efd, &one, sizeof(one));
}

static void on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    ar__sig_bus_put(closure, natsMsg_GetSubject(msg), natsMsg_GetData(msg),
                    (size_t)natsMsg_GetDataLength(msg));
    natsMsg_Destroy(msg);
}

/*
 * libnats' error callback (its thread). A subscription whose messages our callback has not
 * taken yet holds at most its pending limit (subscribe, below); beyond it libnats drops
 * them, silently but for this. Which frames went is unknown, so every session is told it may
 * have lost some, as when the inbox had no room for a marker; a dropped record leaves this
 * worker's view of it stale until its next update, as an inbox drop does.
 */
static void on_nats_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure)
{
    (void)nc;
    (void)sub;
    ar__sig_bus_t *b = closure;
    if (err != NATS_SLOW_CONSUMER)
        return;
    pthread_mutex_lock(&b->mu);
    int poke = b->head == NULL;
    b->nats_slow++;
    b->lost_all = 1;
    pthread_mutex_unlock(&b->mu);
    uint64_t one = 1;
    if (poke)
        (void)!write(b->efd, &one, sizeof(one));
}

/* On the loop, after libnats said it dropped messages: how many, counted and warned. */
static void report_nats_drops(ar__sig_bus_t *b, uint32_t episodes)
{
    int64_t total = 0, n = 0;
    for (size_t i = 0; i < sizeof(b->subs) / sizeof(b->subs[0]); i++)
        if (b->subs[i] && natsSubscription_GetDropped(b->subs[i], &n) == NATS_OK)
            total += n;
    int64_t fresh = total > b->nats_dropped_seen ? total - b->nats_dropped_seen : 0;
    b->nats_dropped_seen = total;
    if (fresh && b->m_nats_dropped)
        ar_metric_add(b->m_nats_dropped, 0, (uint64_t)fresh);
    ar_log(AR_LOG_WARN, "signal_bus_slow_consumer", AR_LF_UINT("times", episodes),
           AR_LF_INT("messages", fresh));
}

/* ---- frames lost before numbering: the client is told (docs/protocol.md 5.10) ---- */

/* error lost to s's live client about n frames after seq after: 1 when it was sent. */
static int tell_lost(ar__sig_sess_t *s, uint32_t n, int64_t after)
{
    ar__sig_conn_t *cn = s->conn;
    if (s->is_backup || !cn || cn->state != AR__SIG_C_LIVE)
        return 0;
    char text[AR_SIG_ERR_TEXT];
    snprintf(text, sizeof(text), "%u messages for this session were lost after seq %lld",
             (unsigned)n, (long long)after);
    /* A send that kills cn leaves cn and s allocated (srv.c, on_close). */
    ar__sig_send_error(cn, AR_SIG_E_LOST, text, 0, AR_SIG_NONE);
    return cn->state == AR__SIG_C_LIVE;
}

void ar__sig_sess_report_lost(ar__sig_sess_t *s)
{
    /* The loss is cleared only once it was told, else the next welcome tells it. */
    if (s->cold->lost && tell_lost(s, s->cold->lost, s->cold->lost_after))
        s->cold->lost = 0; /* its own: lost was set */
}

static void sess_lost(ar__sig_sess_t *s, uint32_t n)
{
    ar__sig_sess_cold_t *c = ar__sig_sess_cold(s);
    if (!c) {
        /* Nowhere to keep the count: a live client is told now, an away one never (logged). */
        if (!tell_lost(s, n, s->seq))
            ar_log(AR_LOG_WARN, "signal_lost_unnoted", AR_LF_INT("frames", (int64_t)n));
        return;
    }
    if (!c->lost)
        c->lost_after = s->seq;
    ar__sig_lost_add(c, n);
    ar__sig_sess_report_lost(s);
}

/*
 * The owner's, and a copy's that a client of this worker is resuming into (the old owner may
 * have handed the session over already, and then nobody else would tell it; the new owner
 * places them at the hand-over's seq, sess.c "taken"). A plain backup that misses a frame still
 * gets the owner's numbered copy. A loss both the old owner and the resuming copy saw (a lost
 * notice reaches both) is counted by each and told as their sum: an over-count, accepted (the
 * client is told of a gap either way; docs/signal.md).
 */
void ar__sig_sess_frames_lost(ar__sig_srv_t *srv, const char *peer, uint32_t n)
{
    ar__sig_rec_t *r = ar__sig_rec_find(srv, peer);
    if (!r || !r->local)
        return;
    ar__sig_sess_t *s = r->local;
    if ((!s->provisional && !s->is_backup && r->owner == srv->node_id) ||
        ar__sig_sess_resuming(srv, s))
        sess_lost(s, n);
}

void ar__sig_sess_lost_all(ar__sig_srv_t *srv)
{
    ar__sig_rec_walk_begin(srv);
    for (size_t i = 0; i < ar__sig_rec_buckets(srv); i++)
        for (ar__sig_rec_t *r = srv->recs[i]; r; r = r->hnext)
            if (r->local && !r->local->provisional && !r->local->is_backup &&
                r->owner == srv->node_id)
                sess_lost(r->local, 1);
    ar__sig_rec_walk_end(srv);
    /* and the copies being resumed */
    for (ar__sig_conn_t *cn = srv->resuming; cn; cn = ar__sig_conn_next_resuming(cn))
        if (cn->state == AR__SIG_C_RESUMING && cn->sess && cn->sess->is_backup)
            sess_lost(cn->sess, 1);
}

static void on_wake(int fd, void *data);

/* ---- the inbox, drained on the loop ---- */

/* On the loop: the subject of peer's frames (n >= AR__SIG_TO_SUBJ_MAX), from r, its record (NULL
 * when this worker holds none: no tags, so only a worker holding it by its subject alone
 * hears). The callers have looked the record up already: one lookup per frame. */
static void to_subject(ar__sig_bus_t *b, const ar__sig_rec_t *r, const char *peer, char *subj,
                       size_t n)
{
    int k = snprintf(subj, n, "%sto.%08x.%08x.%s", b->prefix, r ? (unsigned)r->home[0] : 0u,
                     r ? (unsigned)r->home[1] : 0u, peer);
    if (k < 0 || (size_t)k >= n) /* not with a jurisdiction id and a peer id at their limits */
        subj[0] = '\0';
}

/* A relayed frame: the numbered copies batched so far may stay behind it (bus_nums.c). */
static void publish_to(ar__sig_bus_t *b, const ar__sig_rec_t *r, const char *peer, const void *buf,
                       size_t len)
{
    char subj[AR__SIG_TO_SUBJ_MAX];
    to_subject(b, r, peer, subj, sizeof(subj));
    ar__sig_bus_publish(b, subj, buf, len);
}

static void local_drain(ar__sig_srv_t *srv)
{
    ar__sig_bus_t *b = srv->bus;
    b->lpoked = 0;
    while (b->lhead) {
        item_t *it = b->lhead;
        b->lhead = it->next;
        if (!b->lhead)
            b->ltail = NULL;
        const uint8_t *d = (const uint8_t *)it->data;
        ar__sig_rec_t *r = ar__sig_rec_find(srv, it->peer);
        if (r && ar__sig_owned_here(srv, r)) {
            uint64_t sent;
            memcpy(&sent, d + 16, 8);
            ar__sig_sess_deliver(srv, r->local, d, d[24], it->data + AR__SIG_TO_HDR,
                                 it->len - AR__SIG_TO_HDR, sent);
        } else {
            publish_to(b, r, it->peer, d, it->len); /* moved meanwhile: its new owner gets it */
        }
        item_free(it);
    }
}

/*
 * Items handled per wake-up. An overloaded worker (more record updates than it can apply) used
 * to apply its whole inbox before its loop could tick: seconds without a heartbeat of its own,
 * so the others declared it dead and promoted its sessions (docs/signal.md, "Overload"). The
 * rest waits for the next turn of the loop, after the clients' input and the tick.
 */
#define WAKE_BATCH 1024

/* What an item counts for against WAKE_BATCH: a batch of record updates, each of them. */
static size_t item_weight(const item_t *it)
{
    size_t n = it->kind == K_REC ? ar__sig_upd_batch_count((const uint8_t *)it->data, it->len) : 0;
    return n ? n : 1;
}

static void handle_item(ar__sig_srv_t *srv, item_t *it)
{
    if (it->kind == K_LOST) {
        /* Here, in order: the frames for it queued before the drop are numbered already. */
        ar__sig_sess_frames_lost(srv, it->peer, (uint32_t)it->len);
    } else if (it->kind == K_TO) {
        ar__sig_to_msg(srv, it->peer, (const uint8_t *)it->data, it->len);
    } else if (it->kind == K_PROC) {
        ar__sig_proc_msg(srv, it->data, it->len, NULL);
    } else if (it->kind == K_INV) {
        ar__sig_invite_apply(srv, it->data, it->len);
    } else if (it->kind == K_NODE) {
        ar__sig_bus_on_node(srv, it->data, it->len); /* a departure */
    } else if (it->len && (uint8_t)it->data[0] == AR__SIG_UPD_MAGIC) {
        ar__sig_rec_apply_compact(srv, (const uint8_t *)it->data, it->len); /* rec_wire.c */
    } else if (it->len && (uint8_t)it->data[0] == AR__SIG_UPD_BATCH) {
        ar__sig_rec_apply_batch(srv, (const uint8_t *)it->data, it->len); /* bus_turn.c */
    } else {
        json_t *o = json_loadb(it->data, it->len, JSON_REJECT_DUPLICATES, NULL);
        if (o)
            ar__sig_rec_apply(srv, o);
        json_decref(o);
    }
}

static void on_wake(int fd, void *data)
{
    uint64_t v;
    (void)!read(fd, &v, sizeof(v));
    ar__sig_bus_wake(data);
}

void ar__sig_bus_take(ar__sig_srv_t *srv)
{
    on_wake(srv->bus->efd, srv);
}

void ar__sig_bus_wake(ar__sig_srv_t *srv)
{
    ar__sig_bus_t *b = srv->bus;
    srv->now = ar_sn_loop_now(srv->loop); /* not the last tick's: a heartbeat is seen now */
    uint32_t dropped[K__COUNT];
    int lost_all;
    pthread_mutex_lock(&b->mu);
    item_t *beats = b->nhead;
    b->nhead = b->ntail = NULL;
    item_t *head = b->head, *last = NULL;
    size_t n = 0;
    for (item_t *p = head; p && n < WAKE_BATCH; p = p->next) {
        n += item_weight(p);
        last = p;
    }
    item_t *rest = last ? last->next : NULL;
    if (last)
        last->next = NULL;
    size_t taken = 0;
    for (int q = 0; q < 2; q++)
        for (item_t *p = q ? beats : head; p; p = p->next) {
            if (p->kind == K_LOST)
                b->nmarks--; /* a count, not bytes */
            else
                taken += p->len;
        }
    b->head = rest;
    if (!rest)
        b->tail = NULL;
    b->bytes -= taken < b->bytes ? taken : b->bytes;
    memcpy(dropped, b->dropped, sizeof(dropped));
    memset(b->dropped, 0, sizeof(b->dropped));
    lost_all = b->lost_all;
    b->lost_all = 0;
    uint32_t nats_slow = b->nats_slow;
    b->nats_slow = 0;
    pthread_mutex_unlock(&b->mu);
    if (nats_slow)
        report_nats_drops(b, nats_slow);
    if (rest) {
        uint64_t one = 1; /* come back after the clients' input and the tick */
        (void)!write(b->efd, &one, sizeof(one));
    }
    /* Heartbeats first: whether a worker is alive is judged by when its heartbeat arrived, not
     * by how far behind it this worker's backlog of records is. Their order against records
     * does not matter (a heartbeat only says alive, draining and when it was sent). */
    while (beats) {
        item_t *next = beats->next;
        ar__sig_bus_on_node(srv, beats->data, beats->len);
        ar_free(beats);
        beats = next;
    }
    /* Losses with no marker next (see LOST_MAX); the others are told in their place. */
    uint64_t total = 0;
    for (int k = 0; k < K__COUNT; k++) {
        if (dropped[k] && b->m_dropped[k])
            ar_metric_add(b->m_dropped[k], 0, dropped[k]);
        total += dropped[k];
    }
    if (total)
        ar_log(AR_LOG_WARN, "signal_bus_dropped", AR_LF_UINT("frames", dropped[K_TO]),
               AR_LF_UINT("records", dropped[K_REC]),
               AR_LF_UINT("other", total - dropped[K_TO] - dropped[K_REC]));
    if (lost_all)
        ar__sig_sess_lost_all(srv);
    item_t *it = head;
    while (it) {
        item_t *next = it->next;
        handle_item(srv, it);
        item_free(it);
        it = next;
        /* Frames an item made (a queue catch-up, area.c) go out before the next item's: a
         * removal that follows an arrival on the bus never overtakes its catch-up. */
        if (b->lhead)
            local_drain(srv);
    }
    /* Clients resuming through this worker whose sessions this batch moved ask the new owner
     * now: one walk of the connections for the batch, not one per record (resume.c). Before
     * the drain: a kick can finish a resume here, and its frames go out in this turn. */
    ar__sig_resume_kick_marked(srv);
    local_drain(srv);
}

/* A publication to subj dropped here for want of memory: at the queue's tail (bus_pub.c). */
static void pub_dropped(ar__sig_bus_t *b, const char *subj)
{
    pthread_mutex_lock(&b->pmu);
    ar__sig_bus_pub_dropped(b, subj, 0);
    pthread_mutex_unlock(&b->pmu);
}

/* Why a frame for r's session is not delivered here (AR__SIG_UNHELD_*), or -1 to deliver it. */
static int unheld_why(const ar__sig_srv_t *srv, const ar__sig_rec_t *r, const uint8_t *data,
                      size_t len)
{
    if (!r)
        return AR__SIG_UNHELD_NO_RECORD;
    if (!r->local)
        return r->owner == srv->node_id ? AR__SIG_UNHELD_OURS_NO_COPY : AR__SIG_UNHELD_ELSEWHERE;
    if (!r->local->is_backup && r->owner != srv->node_id)
        return AR__SIG_UNHELD_NOT_OURS;
    if (len < AR__SIG_TO_HDR ||
        !ar__sig_frame_text_ok((const char *)data + AR__SIG_TO_HDR, len - AR__SIG_TO_HDR))
        return AR__SIG_UNHELD_BAD;
    return -1;
}

/* A frame for a peer: fid(16) | sent_us(8) | action(1) | frame. */
void ar__sig_to_msg(ar__sig_srv_t *srv, const char *peer, const uint8_t *data, size_t len)
{
    uint32_t lost = notice_count(data, len);
    if (lost) { /* the sender's publisher dropped some */
        ar__sig_sess_frames_lost(srv, peer, lost);
        return;
    }
    ar__sig_rec_t *r = ar__sig_rec_find(srv, peer);
    /* Only the owner numbers frames (and a backup keeps its copy): a session this worker no
     * longer owns may still linger here with its old connection until it closes. */
    int why = unheld_why(srv, r, data, len);
    if (why >= 0) {
        if (srv->m.unheld[why])
            ar_metric_add(srv->m.unheld[why], 0, 1);
        return;
    }
    uint64_t sent;
    memcpy(&sent, data + 16, 8);
    ar__sig_sess_deliver(srv, r->local, data, data[24], (const char *)data + 25, len - 25, sent);
}

void ar__sig_bus_to(ar__sig_srv_t *srv, const char *peer, uint8_t action, size_t len)
{
    ar__sig_bus_t *b = srv->bus;
    if (!b)
        return;
    uint8_t *buf = (uint8_t *)srv->pub;
    uint64_t ctr = ++srv->fid_counter, now = ar__sig_now_us();
    memcpy(buf, &srv->node_id, 8);
    memcpy(buf + 8, &ctr, 8);
    memcpy(buf + 16, &now, 8);
    buf[24] = action;
    size_t n = len + AR__SIG_TO_HDR;
    const ar__sig_rec_t *r = ar__sig_rec_find(srv, peer);
    int mine = r && ar__sig_owned_here(srv, r);
    if (b->lhead || mine) {
        item_t *it = ar_malloc(sizeof(*it) + n + 1);
        if (it) {
            it->next = NULL;
            it->at_ms = mono_ms();
            it->kind = K_TO;
            snprintf(it->peer, sizeof(it->peer), "%s", peer);
            it->len = n;
            memcpy(it->data, buf, n);
            it->data[n] = '\0';
            if (b->ltail)
                b->ltail->next = it;
            else
                b->lhead = it;
            b->ltail = it;
            if (!b->lpoked) {
                uint64_t one = 1;
                b->lpoked = 1;
                (void)!write(b->efd, &one, sizeof(one));
            }
            return;
        }
        if (b->lhead) { /* out of memory: dropped, as the inbox drops (never out of order) */
            if (mine) {
                if (b->m_dropped[K_TO])
                    ar_metric_add(b->m_dropped[K_TO], 0, 1);
                ar__sig_sess_frames_lost(srv, peer, 1);
                return;
            }
            /* Owned elsewhere: counted, and its owner told by a lost notice (which needs no
             * memory). It may overtake frames for the peer still in the local queue: the
             * client is then told of the gap a little early, never not at all. */
            char subj[AR__SIG_TO_SUBJ_MAX];
            to_subject(b, r, peer, subj, sizeof(subj));
            pub_dropped(b, subj);
            return;
        }
    }
    publish_to(b, r, peer, buf, n);
}

int ar__sig_bus_to_now(ar__sig_srv_t *srv, ar__sig_rec_t *r, uint8_t action, size_t len, int about)
{
    ar__sig_bus_t *b = srv->bus;
    /* Only when no local frame waits: one sender's frames keep their order. */
    if (!b || b->lhead || action == AR__SIG_ACT_ENDED || action == AR__SIG_ACT_REMOVED ||
        !ar__sig_owned_here(srv, r))
        return 0;
    ar__sig_sess_t *s = r->local;
    uint8_t *buf = (uint8_t *)srv->pub;
    uint64_t ctr = ++srv->fid_counter;
    memcpy(buf, &srv->node_id, 8);
    memcpy(buf + 8, &ctr, 8);
    ar__sig_sess_deliver_about(srv, s, buf, action, srv->pub + AR__SIG_TO_HDR, len, 0, about);
    return 1;
}

/* o, a record update when rec: one about who holds a session only goes in the fixed layout
 * every worker reads without a parse (rec_wire.c). */
static void publish_json(ar__sig_srv_t *srv, const char *subj, json_t *o, int rec)
{
    ar__sig_bus_t *b = srv->bus;
    uint8_t upd[AR__SIG_UPD_LEN];
    if (b && rec && ar__sig_upd_compact(o, upd) == 0) {
        ar__sig_bus_nums_flush(b);
        ar__sig_bus_recs_add(b, subj, upd); /* with the next ones, in this turn (bus_turn.c) */
        json_decref(o);
        return;
    }
    char *s = b ? json_dumps(o, JSON_COMPACT) : NULL;
    /* In a promotion walk a worker-to-worker message about a session waits behind the walk's
     * updates (bus_turn.c); looked up only then, not for every acknowledgement. */
    const char *about = !rec && b && b->holding ? json_string_value(json_object_get(o, "p")) : NULL;
    if (s) {
        ar__sig_bus_nums_flush(b);
        if (about && strlen(about) == AR__SIG_PEER_LEN)
            ar__sig_bus_hold(b, subj, s, strlen(s), about);
        else
            ar__sig_bus_publish(b, subj, s, strlen(s));
        /* A record's text (a patient's name and answers): wiped, as jansson's blocks are. */
        ar_free_wiped(s); /* jansson allocates with ar_malloc (ar_sig_init) */
    } else if (b) {
        /* Out of memory: dropped as a publication the queue has no memory for is (publish).
         * A record's drop leaves the other workers' view of it stale until its next update
         * (docs/signal.md, "Messages dropped before the loop takes them"). */
        pub_dropped(b, subj);
    }
    json_decref(o);
}

void ar__sig_bus_proc(ar__sig_srv_t *srv, uint64_t worker, void *json_obj)
{
    char subj[96];
    if (!srv->bus) {
        json_decref(json_obj);
        return;
    }
    snprintf(subj, sizeof(subj), "%sproc.%016llx", srv->bus->prefix, (unsigned long long)worker);
    if (json_obj)
        publish_json(srv, subj, json_obj, 0);
}

void ar__sig_bus_rec(ar__sig_srv_t *srv, const char *kind, const char *key, void *json_obj)
{
    char subj[AR__SIG_REC_SUBJ_MAX];
    if (!srv->bus) {
        json_decref(json_obj);
        return;
    }
    ar_metric_add(srv->bus->m_rec_updates, 0, 1);
    snprintf(subj, sizeof(subj), "%s%s.%s", srv->bus->prefix, kind, key);
    if (json_obj)
        publish_json(srv, subj, json_obj, 1);
}

/*
 * Subscribes to subj on the reading connection. What waits in libnats for our callback is
 * bounded in bytes, not by a count: libnats' default bound, 65,536 messages, is 3.6 MB of
 * 56-byte record updates, far below the inbox's 64 MiB, and beyond it libnats drops them, told
 * only to its error callback (on_nats_error), with no peer to tell. In a failover storm every
 * worker of the survivor takes every record update of 100,000 resumes. Our callback only moves
 * a message into the inbox, whose own bound counts every drop and tells the peer's session
 * where its gap is; so libnats' bound is well above it (NATS_PENDING_BYTES), only for a
 * delivery thread starved of CPU.
 */
static natsStatus subscribe(ar__sig_bus_t *b, const char *subj, natsSubscription **sub)
{
    natsStatus s = natsConnection_Subscribe(sub, b->nc, subj, on_msg, b);
    size_t bytes = b->max_bytes * 4 > NATS_PENDING_BYTES ? b->max_bytes * 4 : NATS_PENDING_BYTES;
    if (s == NATS_OK)
        s = natsSubscription_SetPendingLimits(*sub, -1,
                                              bytes < (size_t)INT_MAX ? (int)bytes : INT_MAX);
    return s;
}

int ar__sig_bus_sub_to(ar__sig_srv_t *srv, ar__sig_sess_t *s)
{
    char subj[AR__SIG_TO_SUBJ_MAX];
    if (!srv->bus)
        return AR_ESTATE;
    uint32_t me = ar__sig_worker_tag(srv->node_id);
    if (s->rec->home[0] == me || s->rec->home[1] == me)
        return 0; /* ours by a tag: the subscriptions of the bus's start bring its frames */
    ar__sig_sess_cold_t *c = ar__sig_sess_cold(s); /* where the subscription is kept */
    if (!c)
        return AR_ENOMEM;
    snprintf(subj, sizeof(subj), "%sto.*.*.%s", srv->bus->prefix, s->rec->peer);
    natsSubscription *sub = NULL;
    if (subscribe(srv->bus, subj, &sub) != NATS_OK) {
        natsSubscription_Destroy(sub);
        return AR_EIO;
    }
    c->sub_to = sub;
    pthread_mutex_lock(&srv->bus->pmu);
    srv->bus->sub_gen++;
    pthread_mutex_unlock(&srv->bus->pmu);
    return 0;
}

void ar__sig_bus_unsub_to(ar__sig_srv_t *srv, ar__sig_sess_t *s)
{
    (void)srv;
    ar__sig_sess_cold_t *c = s->cold; /* its own when it holds a subscription */
    if (c->sub_to) {
        (void)natsSubscription_Unsubscribe(c->sub_to);
        natsSubscription_Destroy(c->sub_to);
        c->sub_to = NULL;
    }
}

int ar__sig_bus_new(ar__sig_srv_t *srv)
{
    ar__sig_bus_t *b = ar_calloc(1, sizeof(*b));
    if (!b)
        return AR_ENOMEM;
    srv->bus = b;
    b->srv = srv;
    b->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    pthread_mutex_init(&b->mu, NULL);
    pthread_mutex_init(&b->pmu, NULL);
    /* Timed waits (bus_pub.c) count on the monotonic clock: a step of the wall clock (NTP,
     * an operator) neither stretches nor cuts them short. */
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->pcv, &ca);
    pthread_cond_init(&b->pfree, &ca);
    pthread_condattr_destroy(&ca);
    b->plen = (size_t)snprintf(b->prefix, sizeof(b->prefix), "ar.%s.", srv->conf->jurisdiction);
    b->pid = (int)getpid();
    b->host = ar__sig_proc_state(b->pid, &b->start) ? ar__sig_host_key() : 0;
    b->max_bytes = srv->conf->inbox_max > 0 ? (size_t)srv->conf->inbox_max : (size_t)64 << 20;
    b->pnc_up = 1;
    b->pretry_max_ms = AR__SIG_PUB_RETRY_MS;
    b->notices = ar_calloc(NOTICE_MAX, NOTICE_SZ);
    if (!b->notices)
        return AR_ENOMEM;
    static const char dropped_help[] =
        "bus messages dropped before the loop took them (inbox-max, out of memory)";
    for (int k = 0; k < K__COUNT && srv->metrics; k++) {
        b->m_dropped[k] = ar_metrics_counter(srv->metrics, "anteroom_signal_bus_dropped_total",
                                             dropped_help, k_kind_label[k]);
        b->m_published[k] =
            ar_metrics_counter(srv->metrics, "anteroom_signal_bus_published_total",
                               "bus messages this worker published", k_kind_label[k]);
        b->m_received[k] =
            ar_metrics_counter(srv->metrics, "anteroom_signal_bus_received_total",
                               "bus messages that reached this worker", k_kind_label[k]);
    }
    if (srv->metrics) /* beside kind="record": how many updates those messages carried */
        b->m_rec_updates =
            ar_metrics_counter(srv->metrics, "anteroom_signal_bus_record_updates_total",
                               "record updates this worker published (several to a message)", NULL);
    if (srv->metrics) /* libnats' own drops (on_nats_error) */
        b->m_nats_dropped = ar_metrics_counter(srv->metrics, "anteroom_signal_bus_dropped_total",
                                               dropped_help, "kind=\"nats\"");
    if (srv->metrics)
        b->m_untold = ar_metrics_counter(
            srv->metrics, "anteroom_signal_bus_lost_untold_total",
            "frames this worker dropped whose recipient got no lost notice (all notices in use)",
            NULL);
    b->admit_lag_ms = (uint64_t)srv->conf->admit_lag;
    b->nbatch_us = (uint64_t)srv->conf->copy_batch * 1000;
    b->admit_bytes = b->max_bytes / 2;
    if (srv->metrics) {
        b->m_refused = ar_metrics_counter(srv->metrics, "anteroom_signal_busy_refused_total",
                                          "new sessions refused with 4016 busy (bus behind)", NULL);
        b->m_backlog_ms = ar_metrics_gauge(
            srv->metrics, "anteroom_signal_bus_backlog_ms",
            "age of the oldest bus message waiting for the loop, at the last look", NULL);
    }
    return b->efd < 0 ? AR_ESYS : 0;
}

/* Before every wait of the loop: the record updates of this turn, the copy batches due, and
 * the next step of a catch-up on the ended rooms (invite.c), so that it asks and gives up on
 * time, not at the next tick. */
static int bus_idle(void *data)
{
    ar__sig_srv_t *srv = data;
    /* Each asked only when it has something to do: this runs before every wait of the loop,
     * nearly always with no batch waiting and no catch-up under way. */
    if (srv->bus && (srv->bus->nrecs || srv->bus->nheld)) /* what this turn held (bus_turn.c) */
        ar__sig_bus_turn_flush(srv->bus);
    int a = srv->bus && ar__sig_bus_nums_waiting(srv->bus) ? ar__sig_bus_nums_idle(srv) : -1;
    int e = ar__sig_rooms_ended_waiting(srv) ? ar__sig_rooms_ended_step(srv, mono_ms()) : -1;
    return a < 0 ? e : e < 0 || a < e ? a : e;
}

int ar__sig_bus_start(ar__sig_srv_t *srv)
{
    int rc = ar__sig_bus_new(srv);
    if (rc != 0)
        return rc;
    ar__sig_bus_t *b = srv->bus;
    if (ar_sn_loop_watch(srv->loop, b->efd, on_wake, srv) != 0)
        return AR_ESYS;
    ar_sn_loop_set_idle(srv->loop, bus_idle, srv);
    /* Rooms ended before we listened: asked for once the heartbeats are heard (invite.c). */
    ar__sig_rooms_ended_begin(srv, 0, mono_ms(), AR__SIG_ENDED_HEAR_MS);
    natsOptions *o = NULL;
    natsStatus s = natsOptions_Create(&o);
    if (s == NATS_OK)
        s = natsOptions_SetServers(o, (const char **)srv->conf->nats.items,
                                   (int)srv->conf->nats.count);
    /*
     * The servers the operator listed, in the order listed (the node's own nats-server first),
     * and no others: a reconnect that took a server of the cluster that nats-server told us of
     * put this worker's traffic through the route between the servers. Under a failover storm a
     * worker whose publishing connection timed out reconnected to the dead node's server, the
     * route fell behind by more than its 10 s write deadline, and answers and record updates
     * came tens of seconds late (docs/performance.md, "Failover at 100,000 calls a node: the
     * survivor's own work"). List each server a node may fall back to (--nats, repeated).
     */
    if (s == NATS_OK)
        s = natsOptions_SetNoRandomize(o, true);
    if (s == NATS_OK)
        s = natsOptions_SetIgnoreDiscoveredServers(o, true);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(o, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(o, 200);
    if (s == NATS_OK)
        s = natsOptions_UseGlobalMessageDelivery(o, true);
    if (s == NATS_OK)
        s = natsOptions_SetRetryOnFailedConnect(o, true, NULL, NULL);
    if (s == NATS_OK)
        s = natsOptions_SetErrorHandler(o, on_nats_error, b);
    /* Each connection tells the publisher thread when it goes and comes back (bus_pub.c). */
    if (s == NATS_OK)
        s = ar__sig_bus_watch_conn(b, o, 0);
    if (s == NATS_OK)
        s = natsConnection_Connect(&b->nc, o);
    if (s == NATS_OK)
        s = ar__sig_bus_watch_conn(b, o, 1);
    /*
     * The publishing connection writes each publication at once. Otherwise libnats' flusher
     * thread sleeps a millisecond before every write (to gather more), which was most of what a
     * hop between nodes added (about 1 ms at p50). Our publisher thread already hands libnats
     * whatever accumulated, and backup copies are batched before that (ar__sig_bus_num); the
     * A/B (performance.md, "Bus: publications written at once") found no more CPU per message.
     */
    if (s == NATS_OK)
        s = natsOptions_SetSendAsap(o, true);
    /*
     * A write to a nats-server that does not read gives up after PNC_WRITE_DEADLINE_MS (libnats
     * then treats the connection as broken and reconnects; publications are held meanwhile,
     * bus_pub.c): without it the publisher thread, and so bus_stop's join, could wait on a
     * blocked socket without end. What the socket's buffers hold when libnats gives up is lost
     * with the connection, unseen by anyone: so the deadline is for a nats-server that is stuck,
     * not one that holds a publisher back. nats-server stops reading a publisher while the
     * subscribers it feeds are behind, and under a failover storm it did so for up to 21 s at a
     * time ("Readloop processing time" in its log). At 2 s the promotions of thousands of
     * sessions went with the connection (docs/performance.md, "Failover at 100,000 calls a node,
     * continued"); at 10 s, 20 breaks in the relay check after a full-size storm lost 95,412
     * of its 200,000 offers ("Failover at 100,000 calls a node: late or lost").
     */
    if (s == NATS_OK)
        s = natsOptions_SetWriteDeadline(o, PNC_WRITE_DEADLINE_MS);
    if (s == NATS_OK)
        s = natsConnection_Connect(&b->pnc, o);
    natsOptions_Destroy(o);
    if (s == NATS_OK && pthread_create(&b->pth, NULL, ar__sig_bus_pub_main, b) == 0)
        b->pth_started = 1;
    const char *wild[] = {"node", "sess.>", "room.>", "area.>", "inv.>"};
    char subj[128];
    unsigned tag = ar__sig_worker_tag(srv->node_id);
    for (size_t i = 0; i < sizeof(b->subs) / sizeof(b->subs[0]) && s == NATS_OK; i++) {
        if (i < sizeof(wild) / sizeof(wild[0]))
            snprintf(subj, sizeof(subj), "%s%s", b->prefix, wild[i]);
        else if (i == 5)
            snprintf(subj, sizeof(subj), "%sproc.%016llx", b->prefix,
                     (unsigned long long)srv->node_id);
        else /* the frames of the sessions created with us as their owner, then backup */
            snprintf(subj, sizeof(subj), i == 6 ? "%sto.%08x.*.*" : "%sto.*.%08x.*", b->prefix,
                     tag);
        s = subscribe(b, subj, &b->subs[i]);
    }
    pthread_mutex_lock(&b->pmu); /* the first publication waits for these too (bus_pub.c) */
    b->sub_gen++;
    pthread_mutex_unlock(&b->pmu);
    if (s != NATS_OK) {
        ar_log(AR_LOG_ERROR, "signal_bus_connect_failed", AR_LF_INT("nats_status", s));
        return AR_EIO;
    }
    return 0;
}

void ar__sig_bus_stop(ar__sig_srv_t *srv)
{
    ar__sig_bus_t *b = srv->bus;
    if (!b)
        return;
    /*
     * The last publications (sessions going away) are worth a short wait, not the client's
     * default 10 s: under `anteroom up` the NATS server gets SIGTERM at the same time and may be
     * gone already, and a node that is reconnecting has nothing to flush to.
     */
    if (b->pnc) {
        ar__sig_bus_turn_flush(b); /* older than any copy waiting (bus_turn.c) */
        ar__sig_bus_nums_flush(b);
    }
    (void)ar__sig_bus_pub_end(b); /* once: not again after ar__sig_bus_leave */
    for (size_t i = 0; i < sizeof(b->subs) / sizeof(b->subs[0]); i++)
        natsSubscription_Destroy(b->subs[i]);
    natsConnection *cs[2] = {b->nc, b->pnc};
    int nconn = 0;
    for (int i = 0; i < 2; i++) {
        if (cs[i]) {
            natsConnection_Close(cs[i]);
            natsConnection_Destroy(cs[i]);
            nconn++;
        }
    }
    /* libnats calls back (disconnected, then closed) on its own thread after Close: b is freed
     * only once both connections' last callback has run. Not waited for without end: after 2 s
     * b is left allocated (a leak at exit rather than a callback into freed memory). */
    if (!ar__sig_bus_wait_closed(b, nconn))
        return;
    for (int q = 0; q < 3; q++) {
        item_t *it = q == 2 ? b->nhead : q ? b->lhead : b->head;
        while (it) {
            item_t *n = it->next;
            item_free(it);
            it = n;
        }
    }
    ar__sig_bus_nums_free(b);
    ar_free(b->notices);
    if (b->efd >= 0)
        close(b->efd);
    pthread_mutex_destroy(&b->mu);
    pthread_mutex_destroy(&b->pmu);
    pthread_cond_destroy(&b->pcv);
    pthread_cond_destroy(&b->pfree);
    ar_free(b);
    srv->bus = NULL;
}
