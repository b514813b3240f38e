/*
 * The workers of a jurisdiction as the bus sees them (bus.c has the transport): heartbeats, who
 * is alive and may back a session up, a worker's departure on a graceful stop, and admission
 * control from the bus's backlog.
 */
#include "bus_internal.h"

#include "anteroom/log.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- nodes ---- */

static ar__sig_node_t *node_get(ar__sig_srv_t *srv, uint64_t id)
{
    for (size_t i = 0; i < srv->nnodes; i++)
        if (srv->nodes[i].id == id)
            return &srv->nodes[i];
    if (srv->nnodes == AR__SIG_NODES_MAX)
        return NULL;
    ar__sig_node_t *n = &srv->nodes[srv->nnodes++];
    memset(n, 0, sizeof(*n));
    n->id = id;
    return n;
}

/* How often a silent worker's process is looked at (a read of /proc each time). */
#define PROC_LOOK_MS 500u

/*
 * Whether n's silence, at now, makes it dead: past AR__SIG_NODE_DEAD_S, unless n is a worker of
 * this node (its name, on this kernel and pid namespace) whose process still runs, up to
 * AR__SIG_NODE_DEAD_LOCAL_S (worker_proc.c). Its heartbeats stop while its loop is held up (a
 * saturated node), and its sessions would be promoted by others while it holds their clients.
 */
/* n is a worker of this node: its name, on this kernel and pid namespace. */
static int same_node(const ar__sig_srv_t *srv, const ar__sig_node_t *n)
{
    uint64_t host = srv->bus ? srv->bus->host : 0;
    return host && n->host == host && strcmp(n->name, srv->conf->node_name) == 0;
}

static int silence_kills(ar__sig_srv_t *srv, ar__sig_node_t *n, uint64_t now)
{
    uint64_t silent = now - n->seen_ms;
    if (silent < (uint64_t)AR__SIG_NODE_DEAD_S * 1000u)
        return 0;
    if (!n->pid || !same_node(srv, n) || silent >= (uint64_t)AR__SIG_NODE_DEAD_LOCAL_S * 1000u)
        return 1;
    if (!n->checked_ms || now - n->checked_ms >= PROC_LOOK_MS) {
        n->running = (uint8_t)ar__sig_proc_running(n->pid, n->start);
        n->checked_ms = now ? now : 1;
    }
    return !n->running;
}

/* n, an entry of srv->nodes, alive at now. */
static int node_live(ar__sig_srv_t *srv, ar__sig_node_t *n, uint64_t now)
{
    return n->id == srv->node_id || (!n->left && !silence_kills(srv, n, now));
}

int ar__sig_node_alive(ar__sig_srv_t *srv, uint64_t id)
{
    if (id == srv->node_id)
        return 1;
    for (size_t i = 0; i < srv->nnodes; i++)
        if (srv->nodes[i].id == id)
            return node_live(srv, &srv->nodes[i], mono_ms());
    return 0;
}

int ar__sig_node_here(ar__sig_srv_t *srv, uint64_t id)
{
    for (size_t i = 0; i < srv->nnodes; i++) {
        ar__sig_node_t *n = &srv->nodes[i];
        if (n->id == id)
            return id != srv->node_id && !n->draining && same_node(srv, n) &&
                   node_live(srv, n, mono_ms());
    }
    return 0;
}

void ar__sig_nodes_judge(ar__sig_srv_t *srv, uint64_t now)
{
    /* The deaths found in this judgement, handled in one walk of the records after (a node's
     * workers go silent together). */
    uint64_t dead[AR__SIG_NODES_MAX];
    size_t ndead = 0;
    for (size_t i = 0; i < srv->nnodes; i++) {
        ar__sig_node_t *nd = &srv->nodes[i];
        if (nd->id == srv->node_id || nd->dead ||
            now - nd->seen_ms < (uint64_t)AR__SIG_NODE_DEAD_S * 1000u)
            continue;
        int same = strcmp(nd->name, srv->conf->node_name) == 0;
        if (!silence_kills(srv, nd, now)) {
            if (!nd->slow)
                ar_log(AR_LOG_INFO, "signal_worker_slow",
                       AR_LF_UINT("silent_ms", now - nd->seen_ms));
            nd->slow = 1;
            continue;
        }
        nd->dead = 1;
        ar_log(AR_LOG_INFO, "signal_worker_silent", AR_LF_UINT("silent_ms", now - nd->seen_ms),
               AR_LF_INT("same_node", same));
        dead[ndead++] = nd->id;
    }
    if (ndead)
        ar__sig_nodes_dead(srv, dead, ndead);
}

uint64_t ar__sig_pick_backup(ar__sig_srv_t *srv, uint64_t exclude)
{
    /* A live, undrained worker of another node if there is one, else any other live worker;
     * each time the next of that kind (the counter turns with every frame too, so it is spread,
     * not strictly in turn). Counted within the kind, not over the whole list: a list with this
     * node's workers before the others' made the first of the others the backup of every
     * session whose turn fell on one of ours, 12 of 23 on a node of 12, so that on our death
     * that one worker promoted and took back half our sessions (docs/performance.md, "Failover
     * at 100,000 calls a node: the survivor's own work"). */
    uint8_t kind[AR__SIG_NODES_MAX]; /* 0: not a candidate, 1: of this node, 2: of another */
    size_t count[3] = {0, 0, 0};
    uint64_t now = mono_ms();
    for (size_t i = 0; i < srv->nnodes; i++) {
        ar__sig_node_t *n = &srv->nodes[i];
        kind[i] = 0;
        if (n->id != exclude && n->id != srv->node_id && !n->draining && node_live(srv, n, now))
            kind[i] = strcmp(n->name, srv->conf->node_name) != 0 ? 2 : 1;
        count[kind[i]]++;
    }
    uint8_t want = count[2] ? 2 : 1;
    if (!count[want])
        return 0;
    size_t turn = (size_t)(srv->fid_counter++ % count[want]);
    for (size_t i = 0; i < srv->nnodes; i++)
        if (kind[i] == want && turn-- == 0)
            return srv->nodes[i].id;
    return 0; /* not reached: turn < count[want] */
}

/* n, an entry of srv->nodes, could hold a backup that survives this node: alive at now, not
 * draining, of another node. */
static int remote_backup(ar__sig_srv_t *srv, ar__sig_node_t *n, uint64_t now)
{
    return !n->draining && strcmp(n->name, srv->conf->node_name) != 0 && node_live(srv, n, now);
}

int ar__sig_remote_backup_exists(ar__sig_srv_t *srv)
{
    uint64_t now = mono_ms();
    for (size_t i = 0; i < srv->nnodes; i++)
        if (remote_backup(srv, &srv->nodes[i], now))
            return 1;
    return 0;
}

int ar__sig_backup_remote(ar__sig_srv_t *srv, uint64_t id)
{
    for (size_t i = 0; i < srv->nnodes; i++)
        if (srv->nodes[i].id == id)
            return remote_backup(srv, &srv->nodes[i], mono_ms());
    return 0;
}

/* ---- admission: no new sessions while the bus is behind ---- */

/*
 * Every worker applies every record update of the jurisdiction (index.c): sessions that arrive
 * faster than the slowest worker applies their records only grow its inbox, until messages are
 * dropped and the views of the workers part. So a worker refuses new sessions (close 4016
 * "busy", docs/protocol.md 4.2; clients come back later) while its own inbox is behind by more
 * than admit-lag (the oldest message waiting) or holds more than half of inbox-max, and while
 * any other live worker said so in a heartbeat within the last ADMIT_HEARD_MS: the records of
 * a session admitted here are applied there too. Resumes and sessions already held are never
 * refused or dropped for it.
 */
#define ADMIT_HEARD_MS 2500u

/* This worker's own backlog: 1 when it is past a bound; *age_ms and *bytes say how far. */
static int own_behind(ar__sig_bus_t *b, uint64_t *age_ms, size_t *bytes)
{
    uint64_t now = mono_ms();
    pthread_mutex_lock(&b->mu);
    *age_ms = b->head && now > b->head->at_ms ? now - b->head->at_ms : 0;
    *bytes = b->bytes;
    pthread_mutex_unlock(&b->mu);
    pthread_mutex_lock(&b->pmu); /* publications waiting count too */
    uint64_t page = b->phead && now > b->phead->at_ms ? now - b->phead->at_ms : 0;
    if (page > *age_ms)
        *age_ms = page;
    if (b->pbytes > *bytes)
        *bytes = b->pbytes;
    pthread_mutex_unlock(&b->pmu);
    return (b->admit_lag_ms && *age_ms > b->admit_lag_ms) || *bytes > b->admit_bytes;
}

static int check_behind(ar__sig_srv_t *srv)
{
    ar__sig_bus_t *b = srv->bus;
    uint64_t age;
    size_t bytes;
    int behind = own_behind(b, &age, &bytes);
    if (b->m_backlog_ms)
        ar_metric_set(b->m_backlog_ms, (int64_t)age);
    if (behind && !b->behind)
        ar_log(AR_LOG_WARN, "signal_bus_behind", AR_LF_UINT("backlog_ms", age),
               AR_LF_UINT("inbox_bytes", bytes));
    else if (!behind && b->behind)
        ar_log(AR_LOG_WARN, "signal_bus_caught_up", AR_LF_UINT("backlog_ms", age),
               AR_LF_UINT("inbox_bytes", bytes));
    b->behind = behind;
    if (behind)
        b->behind_last_ms = mono_ms();
    return behind;
}

/* The catch-up on ended rooms (invite.c, "Catching up"), begun again when the subscribing
 * connection is back after a cut: 1 while it runs, and new sessions wait. Our own recent
 * markers are sent again when either connection is back (invite.c, "Markers a cut may have
 * lost"). */
static int ended_behind(ar__sig_srv_t *srv)
{
    ar__sig_bus_t *b = srv->bus;
    pthread_mutex_lock(&b->pmu);
    uint64_t epoch = b->nc_epoch, pepoch = b->pnc_epoch;
    int up = b->nc_state == NC_UP, pup = up && b->pnc_up;
    pthread_mutex_unlock(&b->pmu);
    uint64_t now = mono_ms();
    ar__sig_rooms_ended_pub(srv, pepoch, pup, now);
    return ar__sig_rooms_ended_sync(srv, epoch, up, now);
}

/*
 * A backlog that clears releases what it held all at once, and the answers it held back (a
 * resume's owner, behind on its own bus, answers when it gets to the request) arrive in the
 * seconds after: under a failover storm 26 resumes gave up 1-2 s after the survivor caught up,
 * with no answer yet (docs/performance.md, "Failover at 100,000 calls a node, continued"). So the
 * bus counts as behind for AR__SIG_BUS_SETTLE_MS after it last was, here or anywhere.
 */
int ar__sig_bus_congested(ar__sig_srv_t *srv)
{
    ar__sig_bus_t *b = srv->bus;
    if (!b)
        return 0;
    uint64_t now = mono_ms(), last = b->behind_last_ms;
    if (b->others_behind_until_ms > last)
        last = b->others_behind_until_ms;
    return b->behind || (last && now < last + AR__SIG_BUS_SETTLE_MS);
}

int ar__sig_bus_admit(ar__sig_srv_t *srv)
{
    ar__sig_bus_t *b = srv->bus;
    if (!b)
        return 1;
    /* A worker that has not learnt which rooms ended is behind too: a patient's token of an
     * ended consultation would open it again here (invite.c). Unless it drains: its new
     * clients are sent on at once (a worker restarted on a draining node still tells them). */
    if (!check_behind(srv) && mono_ms() >= b->others_behind_until_ms &&
        (!ended_behind(srv) || srv->draining))
        return 1;
    if (b->m_refused)
        ar_metric_add(b->m_refused, 0, 1);
    return 0;
}

/* A heartbeat's body; a departure's begins with AR__SIG_LEAVE_HEAD. Its length. */
static int node_body(ar__sig_srv_t *srv, char *body, size_t cap, int leave)
{
    ar__sig_bus_t *b = srv->bus;
    int n =
        snprintf(body, cap,
                 "%s\"i\":\"%016llx\",\"n\":\"%s\",\"d\":%d,\"t\":%llu,\"b\":%d,\"ec\":%u,"
                 "\"h\":\"%016llx\",\"p\":%d,\"s\":%llu}",
                 leave ? AR__SIG_LEAVE_HEAD : "{", (unsigned long long)srv->node_id,
                 srv->conf->node_name, srv->draining || leave, (unsigned long long)ar__sig_now_us(),
                 leave ? 0 : check_behind(srv), (unsigned)ar__sig_rooms_ended_cover(srv),
                 (unsigned long long)b->host, b->pid, (unsigned long long)b->start);
    return n < 0 || (size_t)n >= cap ? (int)cap - 1 : n;
}

void ar__sig_bus_heartbeat(ar__sig_srv_t *srv)
{
    ar__sig_bus_t *b = srv->bus;
    char subj[96], body[256];
    snprintf(subj, sizeof(subj), "%snode", b->prefix);
    int n = node_body(srv, body, sizeof(body), 0);
    ar__sig_bus_nums_flush(b);
    ar__sig_bus_nums_sweep(srv);
    /*
     * At once, on the subscribing connection: a heartbeat says that the loop runs and that
     * this worker hears its subscriptions (after a reconnect, libnats sends the SUBs again
     * before anything published meanwhile), and must not wait behind the publisher thread's
     * backlog; its order against records does not matter (below). A heartbeat a second never
     * fills the socket, so the write never blocks the reader.
     */
    (void)natsConnection_Publish(b->nc, subj, body, n);
    ar_metric_add(b->m_published[K_NODE], 0, 1);
    /*
     * Workers silent for AR__SIG_NODE_DEAD_S are dead: their sessions move (sess.c). Silence is
     * measured in milliseconds: counted in the loop's whole seconds, with a heartbeat a second,
     * a worker passed for dead after anything from 2.0 to 3.0 s of silence, and a NATS server
     * stalled for 1.2 s (call.test.mjs) could make both nodes promote each other's sessions
     * while both were alive. Heartbeats already in the inbox count: taken first, so a loop that
     * was itself held up does not judge others by messages it has not read yet.
     */
    ar__sig_bus_take(srv);
    (void)ended_behind(srv); /* a catch-up after a cut begins even with no hello to admit */
    ar__sig_nodes_judge(srv, mono_ms());
}

/*
 * A graceful stop (SIGTERM, `anteroom up` stopping, a rolling restart; srv.c) hands the
 * worker's sessions over now rather than after AR__SIG_NODE_DEAD_S of silence (docs/signal.md,
 * "Graceful stop"). The departure is the worker's last publication, queued after every record
 * and numbered copy it published, on the same connection (pnc), so each backup holds
 * everything the owner numbered when it handles the departure: NATS keeps one publisher's
 * order, libnats hands all subscriptions' messages to the inbox on one thread, and a departure
 * waits in the inbox in its place, not with the heartbeats handled first (ar__sig_bus_put).
 * Every worker then does what it does on a death (ar__sig_node_dead: backups promote their
 * copies, the owners of sessions it backed up pick new backups). Nothing this worker publishes
 * afterwards goes out (bus_pub.c ar__sig_bus_publish): the sessions are the backups' now. Bounded:
 * the publisher thread publishes what is queued and ends (as at ar__sig_bus_stop), then one flush
 * of at most 1 s, so the clients are told to go only once nats-server has the departure.
 */
void ar__sig_bus_leave(ar__sig_srv_t *srv)
{
    ar__sig_bus_t *b = srv->bus;
    if (!b || !b->pnc || b->left)
        return;
    char subj[96], body[256];
    snprintf(subj, sizeof(subj), "%snode", b->prefix);
    int n = node_body(srv, body, sizeof(body), 1);
    ar__sig_bus_nums_flush(b); /* the copies batched so far go before it */
    ar__sig_bus_publish(b, subj, body, (size_t)n);
    b->left = 1;
    uint64_t t0 = mono_ms();
    natsStatus st = ar__sig_bus_pub_end(b);
    ar_log(AR_LOG_INFO, "signal_worker_leaving", AR_LF_INT("flushed", st == NATS_OK),
           AR_LF_UINT("ms", mono_ms() - t0));
}

void ar__sig_bus_on_node(ar__sig_srv_t *srv, const char *data, size_t len)
{
    json_t *o = json_loadb(data, len, 0, NULL);
    const char *id, *name;
    int drain;
    json_int_t t;
    if (o && json_unpack(o, "{s:s,s:s,s:i,s:I}", "i", &id, "n", &name, "d", &drain, "t", &t) == 0) {
        ar__sig_node_t *n = node_get(srv, strtoull(id, NULL, 16));
        /* A worker that left never comes back under its id (a restarted worker draws a new
         * one): a heartbeat it sent before its departure but that arrives after is ignored. */
        if (n && n->left)
            n = NULL;
        if (n && n->id != srv->node_id && json_integer_value(json_object_get(o, "l")) > 0) {
            n->left = n->dead = n->draining = 1;
            snprintf(n->name, sizeof(n->name), "%s", name);
            ar_log(AR_LOG_INFO, "signal_worker_left",
                   AR_LF_INT("same_node", strcmp(n->name, srv->conf->node_name) == 0));
            ar__sig_node_dead(srv, n->id); /* as on a death: the same promotions */
            n = NULL;
        }
        if (n) {
            snprintf(n->name, sizeof(n->name), "%s", name);
            n->draining = (uint8_t)drain;
            n->seen_ms = mono_ms();
            n->slow = 0;
            n->checked_ms = 0;
            /* "h", "p", "s" (absent before): its process, looked at while it is silent. */
            const char *h = json_string_value(json_object_get(o, "h"));
            json_int_t pid = json_integer_value(json_object_get(o, "p"));
            json_int_t st = json_integer_value(json_object_get(o, "s"));
            n->host = h ? strtoull(h, NULL, 16) : 0;
            n->pid = pid > 0 && pid <= INT32_MAX ? (int32_t)pid : 0;
            n->start = st > 0 ? (uint64_t)st : 0;
            if (n->dead)
                ar_log0(AR_LOG_INFO, "signal_worker_back");
            n->dead = 0;
            uint64_t now = ar__sig_now_us();
            if (n->id != srv->node_id && now >= (uint64_t)t)
                ar_metric_observe(srv->m.bus_lag_us, 0, (double)(now - (uint64_t)t));
            /* "b" (absent before admission control): that worker is behind on the bus. */
            if (n->id != srv->node_id && json_integer_value(json_object_get(o, "b")) > 0)
                srv->bus->others_behind_until_ms = n->seen_ms + ADMIT_HEARD_MS;
            /* "ec" (absent before the ended rooms' catch-up): whom to ask (invite.c). */
            json_int_t ec = json_integer_value(json_object_get(o, "ec"));
            n->ended_cover_s = ec > 0 && ec <= (json_int_t)UINT32_MAX ? (uint32_t)ec : 0;
        }
    }
    json_decref(o);
}
