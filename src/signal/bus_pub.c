/*
 * The bus's publisher thread (bus.c has the rest of the transport): the queue the loop fills
 * (ar__sig_bus_publish), its hold while a connection is away, and what is dropped on this side,
 * counted and told (lost notices, bus_internal.h).
 */
#include "bus_internal.h"

#include "anteroom/alloc.h"
#include "anteroom/log.h"

#include <nats/nats.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

uint8_t ar__sig_bus_subj_kind(const ar__sig_bus_t *b, const char *subj, const char **peer)
{
    *peer = "";
    if (strncmp(subj, b->prefix, b->plen) != 0)
        return K_REC;
    const char *rest = subj + b->plen;
    if (strcmp(rest, "node") == 0)
        return K_NODE;
    if (strncmp(rest, "to.", 3) == 0) {
        const char *last = strrchr(rest, '.'); /* to.<owner tag>.<backup tag>.<peer> (bus.c) */
        *peer = last + 1;
        return K_TO;
    }
    if (strncmp(rest, "proc.", 5) == 0)
        return K_PROC;
    if (strncmp(rest, "inv.", 4) == 0)
        return K_INV;
    return K_REC;
}

/* ---- publications dropped on this side: counted, warned, a frame's recipient told ---- */

/* Where a queued notice's count is (4 bytes, little endian), and what it says. */
static uint8_t *notice_cnt(pub_t *it)
{
    return (uint8_t *)it->data + it->slen + 1 + AR__SIG_TO_HDR;
}

static uint32_t notice_n(pub_t *it)
{
    return (uint32_t)ar__sig_le_get(notice_cnt(it), 4);
}

/* Under pmu: it goes back at the head of the queue. */
static void push_head(ar__sig_bus_t *b, pub_t *it)
{
    it->next = b->phead;
    b->phead = it;
    if (!b->ptail)
        b->ptail = it;
}

/* Under pmu: n frames dropped that nobody is told of (counted, warned). */
static void add_untold(ar__sig_bus_t *b, uint32_t n)
{
    b->untold = b->untold + n < b->untold ? UINT32_MAX : b->untold + n;
    if (b->m_untold)
        ar_metric_add(b->m_untold, 0, n);
}

/*
 * Under pmu: frames for a peer were dropped here (to: their subject after "to.", tags and peer).
 * A lost notice goes where the first of them would have gone: at the queue's tail (the loop), or
 * at its head (the publisher thread, whose dropped publication was the head). Consecutive drops
 * for one peer share the tail's notice.
 */
static void notice_lost(ar__sig_bus_t *b, const char *to, uint32_t n, uint64_t head_ms)
{
    int at_head = head_ms != 0;
    pub_t *t = b->ptail;
    if (!at_head && t && t->notice && strcmp(t->data + b->plen + 3, to) == 0) {
        uint32_t c = notice_n(t);
        ar__sig_le_put(notice_cnt(t), c + n < c ? UINT32_MAX : c + n, 4);
        return;
    }
    pub_t *it = NULL;
    for (unsigned i = 0; i < NOTICE_MAX && b->notices && !it; i++) {
        pub_t *p = (pub_t *)(void *)(b->notices + (size_t)i * NOTICE_SZ);
        if (!p->notice)
            it = p;
    }
    if (!it) { /* counted and warned: the one loss nobody else is told of (docs/signal.md) */
        add_untold(b, n);
        return;
    }
    it->notice = 1;
    it->at_ms = at_head ? head_ms : mono_ms(); /* at the head, the dropped one's age (admission) */
    it->sub_gen = 0;
    it->slen = (size_t)snprintf(it->data, NOTICE_SZ - sizeof(*it), "%sto.%s", b->prefix, to);
    it->len = NOTICE_LEN;
    uint8_t *d = (uint8_t *)it->data + it->slen + 1;
    uint64_t now = ar__sig_now_us();
    memset(d, 0, NOTICE_LEN);
    memcpy(d, &b->srv->node_id, 8); /* fid: this worker, counter 0 (never numbered) */
    memcpy(d + 16, &now, 8);
    d[24] = ACT_LOST;
    ar__sig_le_put(d + AR__SIG_TO_HDR, n, 4);
    if (at_head) {
        push_head(b, it);
    } else {
        it->next = NULL;
        if (b->ptail)
            b->ptail->next = it;
        else
            b->phead = it;
        b->ptail = it;
    }
    b->pbytes += NOTICE_SZ;
    pthread_cond_signal(&b->pcv);
}

static void warn_dropped(ar__sig_bus_t *b, int force);

/* Under pmu: drops counted and not yet in a warning. */
static int drops_pending(const ar__sig_bus_t *b)
{
    uint32_t any = b->untold;
    for (int k = 0; k < K__COUNT; k++)
        any |= b->pdropped[k];
    return any != 0;
}

/* Under pmu: a publication to subj was dropped here. Counted by kind (the metric at once); a
 * warning at most once a second with the counts since the last; a frame's peer is told. */
void ar__sig_bus_pub_dropped(ar__sig_bus_t *b, const char *subj, uint64_t head_ms)
{
    const char *peer;
    uint8_t k = ar__sig_bus_subj_kind(b, subj, &peer);
    if (b->m_dropped[k])
        ar_metric_add(b->m_dropped[k], 0, 1);
    b->pdropped[k]++;
    if (k == K_TO && strlen(peer) == AR__SIG_PEER_LEN)
        notice_lost(b, subj + b->plen + 3, 1, head_ms);
    warn_dropped(b, 0);
}

/* Under pmu: the drops counted since the last warning, logged unless one was less than a second
 * ago (the publisher thread logs those a second later, pub_main); force: whatever the time. */
static void warn_dropped(ar__sig_bus_t *b, int force)
{
    if (!drops_pending(b))
        return;
    uint64_t now = mono_ms();
    if (!force && b->pwarn_ms && now - b->pwarn_ms < 1000)
        return;
    b->pwarn_ms = now;
    uint32_t *d = b->pdropped, other = d[K_NODE] + d[K_PROC] + d[K_INV];
    ar_log(AR_LOG_WARN, "signal_bus_publish_dropped", AR_LF_UINT("frames", d[K_TO]),
           AR_LF_UINT("records", d[K_REC]), AR_LF_UINT("other", other),
           AR_LF_UINT("untold", b->untold), AR_LF_INT("held", b->held_ms != 0),
           AR_LF_INT("nats_status", b->prefused));
    memset(b->pdropped, 0, sizeof(b->pdropped));
    b->untold = 0;
    b->prefused = 0;
}

/* ---- the publisher thread ---- */

/* Under pmu: whether publications wait (nc's subscriptions not known to be in place at
 * nats-server, or pnc not connected); not once stopping (below). */
static int held(const ar__sig_bus_t *b)
{
    return b->nc_state != NC_UP || !b->pnc_up;
}

/* Under pmu: whether the queue may not drain soon: held, or its head refused as pnc breaks.
 * A loop that finds the queue full then drops instead of waiting (ar__sig_bus_publish). */
static int stalled(const ar__sig_bus_t *b)
{
    return held(b) || b->pretry_ms != 0;
}

/* A hold starts (signal_bus_released says when it ends): a long one is visible while it lasts,
 * not only once it is over. pub: the publishing connection went, else the subscribing one. */
static void log_held(int pub, size_t queued)
{
    ar_log(AR_LOG_WARN, "signal_bus_held", AR_LF_INT("publishing", pub),
           AR_LF_UINT("queued_bytes", queued));
}

/* libnats' callbacks (its own thread; in order for one connection). */
static void on_nc_down(natsConnection *nc, void *closure)
{
    ar__sig_bus_t *b = closure;
    (void)nc;
    pthread_mutex_lock(&b->pmu);
    b->nc_state = NC_DOWN;
    b->nc_epoch++;
    int start = !b->held_ms;
    if (start)
        b->held_ms = mono_ms();
    size_t queued = b->pbytes;
    pthread_cond_broadcast(
        &b->pfree); /* a loop waiting for room drops instead (ar__sig_bus_publish) */
    pthread_mutex_unlock(&b->pmu);
    if (start)
        log_held(0, queued);
}

static void on_nc_back(natsConnection *nc, void *closure)
{
    ar__sig_bus_t *b = closure;
    (void)nc;
    pthread_mutex_lock(&b->pmu);
    b->nc_state = NC_BACK; /* the publisher thread checks the subscriptions (confirm_subs) */
    b->nc_epoch++;
    pthread_cond_broadcast(&b->pcv);
    pthread_mutex_unlock(&b->pmu);
}

static void on_pnc_change(natsConnection *nc, void *closure, int up)
{
    ar__sig_bus_t *b = closure;
    (void)nc;
    pthread_mutex_lock(&b->pmu);
    b->pnc_up = up;
    if (up)
        b->pnc_epoch++; /* what it published just before it went may be lost (invite.c) */
    b->pretry_ms = 0;   /* whatever was refused as it broke is tried afresh once it is back */
    int start = !up && !b->held_ms;
    if (start)
        b->held_ms = mono_ms();
    size_t queued = b->pbytes;
    pthread_cond_broadcast(up ? &b->pcv : &b->pfree);
    pthread_mutex_unlock(&b->pmu);
    if (start)
        log_held(1, queued);
}

static void on_pnc_down(natsConnection *nc, void *closure)
{
    on_pnc_change(nc, closure, 0);
}

static void on_pnc_back(natsConnection *nc, void *closure)
{
    on_pnc_change(nc, closure, 1);
}

static void on_closed(natsConnection *nc, void *closure)
{
    ar__sig_bus_t *b = closure;
    (void)nc;
    pthread_mutex_lock(&b->pmu);
    b->closed++;
    pthread_cond_broadcast(&b->pcv);
    pthread_mutex_unlock(&b->pmu); /* b is not touched after: bus_stop may free it now */
}

natsStatus ar__sig_bus_watch_conn(ar__sig_bus_t *b, natsOptions *o, int pub)
{
    natsStatus s = natsOptions_SetDisconnectedCB(o, pub ? on_pnc_down : on_nc_down, b);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectedCB(o, pub ? on_pnc_back : on_nc_back, b);
    if (s == NATS_OK)
        s = natsOptions_SetClosedCB(o, on_closed, b);
    return s;
}

int ar__sig_bus_wait_closed(ar__sig_bus_t *b, int n)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until); /* the clock of pcv (bus.c) */
    until.tv_sec += 2;
    int rc = 0;
    pthread_mutex_lock(&b->pmu);
    while (b->closed < n && rc == 0)
        rc = pthread_cond_timedwait(&b->pcv, &b->pmu, &until);
    int done = b->closed >= n;
    pthread_mutex_unlock(&b->pmu);
    if (!done)
        ar_log0(AR_LOG_WARN, "signal_bus_close_timeout");
    return done;
}

/* Under pmu: waits up to ms for pcv (a stop, a connection's change, a publication). */
static void pause_ms(ar__sig_bus_t *b, long ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until); /* the clock of pcv (bus.c) */
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    (void)pthread_cond_timedwait(&b->pcv, &b->pmu, &until);
}

/*
 * Under pmu, with nc reconnected: libnats sent our SUBs again before anything else, so one round
 * trip on nc, asked after the reconnection, proves nats-server has them. Until then this worker
 * would publish (claims, records, hand-over answers) while it cannot hear the answers or the
 * frames for its sessions: they reached other copies of its sessions for about 2 s
 * (overload.test.mjs, "a worker cut off from NATS keeps its clients").
 */
static void confirm_subs(ar__sig_bus_t *b)
{
    uint64_t epoch = b->nc_epoch, gen = b->sub_gen;
    pthread_mutex_unlock(&b->pmu);
    natsStatus s = natsConnection_FlushTimeout(b->nc, 2000);
    pthread_mutex_lock(&b->pmu);
    if (b->nc_epoch != epoch || b->nc_state != NC_BACK)
        return; /* down again meanwhile: the next reconnection asks again */
    if (s != NATS_OK) {
        pause_ms(b, 100); /* no answer yet: ask again soon, not in a tight loop */
        return;
    }
    b->nc_state = NC_UP;
    b->sub_done = gen;
}

/*
 * A refusal of libnats' that passes. Under a failover storm nats-server, short of CPU, did not
 * read the publishing connection for 2 s: the write deadline passed (NATS_TIMEOUT), libnats
 * shut the socket, and every publication until its reader thread noticed and switched to
 * reconnecting was refused with NATS_IO_ERROR. Dropped, they were promotions' records and the
 * hand-over answers resumes waited for: a tenth of a dead node's sessions were lost
 * (docs/performance.md, "Failover at 100,000 calls a node"). Once libnats reconnects it takes
 * publications into its reconnect buffer, and its disconnected callback holds the queue: such a
 * publication is tried again, in its place, not dropped. Its reconnect buffer full
 * (NATS_INSUFFICIENT_BUFFER) or a publication it cannot take does not pass: dropped.
 */
static int refusal_passes(natsStatus s)
{
    return s == NATS_TIMEOUT || s == NATS_IO_ERROR || s == NATS_CONNECTION_DISCONNECTED ||
           s == NATS_STALE_CONNECTION;
}

/* Under pmu: the head was refused with s; 1 when it is to be tried again (the refusals started
 * less than pretry_max_ms ago), 0 when it is dropped as any refusal is. The first refusal of a
 * run is warned. */
static int retry_refused(ar__sig_bus_t *b, natsStatus s)
{
    if (!refusal_passes(s) || b->pstop)
        return 0;
    uint64_t now = mono_ms();
    if (!b->pretry_ms) {
        b->pretry_ms = now ? now : 1;
        b->pretry_status = (int)s;
        ar_log(AR_LOG_WARN, "signal_bus_publish_refused", AR_LF_INT("nats_status", (int)s),
               AR_LF_UINT("queued_bytes", b->pbytes));
        pthread_cond_broadcast(&b->pfree); /* a loop waiting for room drops instead */
    }
    return now - b->pretry_ms < b->pretry_max_ms;
}

/* Under pmu: a publication went out; a run of refusals, if any, is over (logged). */
static void refusals_over(ar__sig_bus_t *b)
{
    if (!b->pretry_ms)
        return;
    ar_log(AR_LOG_WARN, "signal_bus_publish_accepted",
           AR_LF_UINT("refused_ms", mono_ms() - b->pretry_ms),
           AR_LF_INT("nats_status", b->pretry_status));
    b->pretry_ms = 0;
    pthread_cond_broadcast(&b->pfree); /* a loop waits for room again, no longer drops */
}

/* Under pmu: waits ms before the refused head is tried again. Not cut short by the loop's
 * publications (they signal pcv all the time under load): only a stop or pnc's change. */
static void pause_retry(ar__sig_bus_t *b, long ms)
{
    uint64_t now = mono_ms(), until = now + (uint64_t)ms, epoch = b->pnc_epoch;
    int up = b->pnc_up;
    while (!b->pstop && b->pnc_up == up && b->pnc_epoch == epoch && now < until) {
        pause_ms(b, (long)(until - now));
        now = mono_ms();
    }
}

/* Under pmu: the head taken off the queue, its bytes given back to the loop. */
static void pub_done(ar__sig_bus_t *b, pub_t *it)
{
    size_t sz = it->notice ? NOTICE_SZ : sizeof(*it) + it->slen + 1 + it->len;
    b->pbytes -= sz < b->pbytes ? sz : b->pbytes;
    if (it->notice) {
        it->notice = 0; /* its slot free again */
    } else {
        /* Relayed SDP does not linger in memory. The whole block: beside the subject and the
         * message, only the header and the allocator's slack, a few dozen bytes a publication. */
        ar_free_wiped(it);
    }
    pthread_cond_broadcast(&b->pfree);
}

/*
 * Publications go through a thread of their own: natsConnection_Publish writes to nats-server
 * when libnats' buffer is full, and nats-server stops reading a publisher while the subscribers
 * it feeds are behind (or while it is short of CPU itself). The loop then stood still in a
 * publish for seconds: no client served, no heartbeat sent, and the other workers declared it
 * dead and promoted its sessions, which made more publications (performance.md, "Scale run
 * with admission control"). Now the loop only queues; the queue's age counts as backlog for
 * admission (bus_node.c).
 *
 * While the subscribing connection is down, or back but its subscriptions not yet confirmed
 * (confirm_subs), or the publishing one is down, the queue is held, in order; a loop that finds
 * it full meanwhile drops and counts (ar__sig_bus_publish). A publication libnats refuses as pnc
 * breaks is tried again in its place (refusal_passes). Stopping publishes what is queued at once.
 */
void *ar__sig_bus_pub_main(void *arg)
{
    ar__sig_bus_t *b = arg;
    pthread_mutex_lock(&b->pmu);
    for (;;) {
        if (b->nc_state == NC_BACK && !b->pstop) {
            confirm_subs(b);
            continue;
        }
        if (b->held_ms && !held(b)) {
            ar_log(AR_LOG_WARN, "signal_bus_released",
                   AR_LF_UINT("held_ms", mono_ms() - b->held_ms),
                   AR_LF_UINT("queued_bytes", b->pbytes));
            b->held_ms = 0;
        }
        if (!b->phead && b->pstop)
            break; /* stopping, and everything went out */
        warn_dropped(b, 0);
        if (!b->phead || (held(b) && !b->pstop)) {
            if (drops_pending(b)) { /* their warning is due within a second */
                pause_ms(b, 1000);
            } else {
                pthread_cond_wait(&b->pcv, &b->pmu);
            }
            continue;
        }
        pub_t *it = b->phead;
        b->phead = it->next;
        if (!b->phead)
            b->ptail = NULL;
        uint64_t gen = b->sub_gen;
        int stopping = b->pstop;
        pthread_mutex_unlock(&b->pmu);
        /* On one connection a SUB was in place before anything published after it, and a
         * session's subscription must be before the record that tells others of it: a
         * round trip on the subscribing connection first (for all subscriptions so far, on
         * this thread: the loop does not wait). Not when stopping: NATS may be gone. */
        if (it->sub_gen > b->sub_done && !stopping) {
            natsStatus fs = natsConnection_FlushTimeout(b->nc, 2000);
            pthread_mutex_lock(&b->pmu);
            if (fs != NATS_OK) {
                /* No answer: the subscriptions are not known to be in place, so it is not
                 * published yet. Back at the head, in order; tried again in 100 ms, or held
                 * if nc went away meanwhile (its disconnected callback), or published at once
                 * if stopping. */
                push_head(b, it);
                if (!b->pstop)
                    pause_ms(b, 100);
                continue;
            }
            b->sub_done = gen;
            pthread_mutex_unlock(&b->pmu);
        }
        natsStatus s =
            natsConnection_Publish(b->pnc, it->data, it->data + it->slen + 1, (int)it->len);
        pthread_mutex_lock(&b->pmu);
        if (s == NATS_OK) {
            refusals_over(b);
        } else if (retry_refused(b, s)) {
            push_head(b, it); /* in its place: what was queued after it waits behind it */
            pause_retry(b, AR__SIG_PUB_RETRY_EVERY_MS);
            continue;
        }
        if (s != NATS_OK) {
            /* libnats refused it (its reconnect buffer full, say): a notice for a frame goes
             * first, at the head, where the frame was; a notice refused waits and is tried
             * again (published at once when stopping, and dropped if refused then). */
            if (it->notice && b->pstop) { /* its count: the frames nobody is told of */
                add_untold(b, notice_n(it));
            } else if (it->notice) {
                push_head(b, it);
                pause_ms(b, 1000);
                continue;
            } else {
                b->prefused = (int)s; /* which refusal, in the warning: a failover lost these */
                ar__sig_bus_pub_dropped(b, it->data, it->at_ms ? it->at_ms : 1);
            }
        }
        pub_done(b, it);
    }
    warn_dropped(b, 1);
    pthread_mutex_unlock(&b->pmu);
    return NULL;
}

natsStatus ar__sig_bus_pub_end(ar__sig_bus_t *b)
{
    if (b->pub_ended)
        return NATS_OK;
    b->pub_ended = 1;
    if (b->pth_started) { /* it publishes what is queued, then ends */
        pthread_mutex_lock(&b->pmu);
        b->pstop = 1;
        pthread_cond_broadcast(&b->pcv);
        pthread_mutex_unlock(&b->pmu);
        pthread_join(b->pth, NULL);
        b->pth_started = 0;
    }
    if (b->pnc && natsConnection_Status(b->pnc) == NATS_CONN_STATUS_CONNECTED)
        return natsConnection_FlushTimeout(b->pnc, 1000);
    return NATS_CONNECTION_CLOSED;
}

void ar__sig_bus_count_pub(ar__sig_bus_t *b, const char *subj)
{
    const char *peer;
    ar_metric_add(b->m_published[ar__sig_bus_subj_kind(b, subj, &peer)], 0, 1);
}

pub_t *ar__sig_bus_pub_make(ar__sig_bus_t *b, const char *subj, const void *data, size_t len)
{
    size_t slen = strlen(subj);
    pub_t *it = ar_malloc(sizeof(pub_t) + slen + 1 + len);
    if (it) {
        it->next = NULL;
        it->notice = 0;
        it->at_ms = mono_ms();
        it->sub_gen = b->sub_gen; /* written by this thread only */
        it->slen = slen;
        it->len = len;
        memcpy(it->data, subj, slen + 1);
        memcpy(it->data + slen + 1, data, len);
    }
    return it;
}

void ar__sig_bus_pub_queue(ar__sig_bus_t *b, pub_t *it, const char *subj)
{
    pthread_mutex_lock(&b->pmu);
    /* Full: the loop waits for the publisher thread, so that order is kept and memory bounded;
     * not while publications are held (NATS may be gone for long) or refused: then dropped and
     * counted. */
    while (it && b->pbytes > b->max_bytes && !b->pstop && !stalled(b))
        pthread_cond_wait(&b->pfree, &b->pmu);
    if (it && b->pbytes > b->max_bytes && !b->pstop) {
        ar_free_wiped(it);
        it = NULL;
    }
    if (!it) {
        ar__sig_bus_pub_dropped(b, subj, 0);
        pthread_mutex_unlock(&b->pmu);
        return;
    }
    b->pbytes += sizeof(*it) + it->slen + 1 + it->len;
    if (b->ptail)
        b->ptail->next = it;
    else
        b->phead = it;
    b->ptail = it;
    pthread_cond_signal(&b->pcv);
    pthread_mutex_unlock(&b->pmu);
}

void ar__sig_bus_pub_send(ar__sig_bus_t *b, const char *subj, const void *data, size_t len)
{
    ar__sig_bus_count_pub(b, subj);
    if (!b->pth_started) { /* no thread: at once, as before */
        (void)natsConnection_Publish(b->pnc, subj, data, (int)len);
        return;
    }
    /* Out of memory: dropped and counted as the inbox's drops are. Published at once it would
     * overtake the queued ones, and their order is what the receivers rely on. */
    ar__sig_bus_pub_queue(b, ar__sig_bus_pub_make(b, subj, data, len), subj);
}

void ar__sig_bus_publish(ar__sig_bus_t *b, const char *subj, const void *data, size_t len)
{
    if (b->left)
        return; /* after our departure (ar__sig_bus_leave) the sessions are the backups' */
    if (b->nrecs || b->nheld) /* what this turn holds goes before it (bus_turn.c) */
        ar__sig_bus_turn_flush(b);
    ar__sig_bus_pub_send(b, subj, data, len);
}
