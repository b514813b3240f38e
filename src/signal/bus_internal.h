/*
 * What bus.c and bus_node.c share: the bus's inbox, its publication queue and its state
 * (ar__sig_bus_t). Private to src/signal/bus*.c.
 */
#ifndef ANTEROOM_SIGNAL_BUS_INTERNAL_H
#define ANTEROOM_SIGNAL_BUS_INTERNAL_H

#include "internal.h"

#include "anteroom/metrics.h"

#include <nats/nats.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/*
 * The inbox holds at most conf->inbox_max bytes (64 MiB by default) of messages the loop has
 * not taken yet; beyond (or for a message over AR_SIG_OUT_MAX * 8, or out of memory) a message is
 * dropped. Drops are counted by kind (anteroom_signal_bus_dropped_total, with the publications
 * that found no memory to wait for the publisher thread); a dropped frame for a
 * peer also leaves a marker (K_LOST) where it would have been queued, so that the session's client
 * gets error "lost" (docs/protocol.md 5.10) instead of silently missing a frame, naming exactly
 * the seq after which the gap is: the marker is handled after the frames queued before the drop
 * are numbered. At most LOST_MAX markers wait in the inbox; beyond, every session this worker
 * owns is told at the next wake-up (its seq then may be before some of the gap's predecessors).
 */
#define LOST_MAX 64

typedef struct item_s {
    struct item_s *next;
    uint64_t at_ms; /* monotonic ms when the callback queued it: the backlog's age */
    uint8_t kind;   /* K_* */
    char peer[AR__SIG_PEER_LEN + 1];
    size_t len;
    char data[];
} item_t;

enum { K_NODE, K_REC, K_TO, K_PROC, K_INV, K__COUNT };
/* An inbox item that is no message: len frames for peer were dropped here (no bytes counted). */
#define K_LOST 0xff

/* A publication waiting for the publisher thread: subject (NUL-terminated), then the data. */
typedef struct pub_s {
    struct pub_s *next;
    uint64_t at_ms;
    uint64_t sub_gen; /* subscriptions made before it was queued (ar__sig_bus_sub_to) */
    size_t slen, len;
    uint8_t notice; /* one of the bus's preallocated lost notices (below), never freed */
    char data[];
} pub_t;

/*
 * A lost notice: frames for one peer that this worker's publisher dropped (no memory for the
 * queue entry, a queue full while publications are held, or libnats refusing one), published on
 * to.<peer> where the first of them would have gone. Its owner turns it into error "lost" in
 * that place, as it does its own inbox's drops (docs/signal.md, "Messages dropped before the
 * loop takes them"). The frame part of a to.<peer> message is then the count (4 bytes, little
 * endian) and the action byte ACT_LOST, which no frame carries (internal.h AR__SIG_ACT_*).
 * NOTICE_MAX of them are allocated with the bus: a notice needs no memory when memory is
 * short, and the queue may hold them beyond inbox-max (at most NOTICE_MAX * NOTICE_SZ bytes).
 */
#define ACT_LOST 0xfe
#define NOTICE_LEN (AR__SIG_TO_HDR + 4)
#define NOTICE_MAX 64
#define NOTICE_SZ ((sizeof(pub_t) + AR__SIG_TO_SUBJ_MAX + NOTICE_LEN + 15) & ~(size_t)15)

/* The longest subject of a record update (ar.<jur>.<kind>.<key>), and the one a batch of them
 * goes on (bus_turn.c): "sess." and a word no peer id is (those are AR__SIG_PEER_LEN long). */
#define AR__SIG_REC_SUBJ_MAX 200
#define AR__SIG_RECS_SUBJ "sess.batch"
/* Worker-to-worker messages a turn of the loop holds at most (bus_turn.c). */
#define AR__SIG_HELD_MAX 128

/* The subscribing connection as the publisher thread sees it (ar__sig_bus_t.nc_state). */
enum { NC_UP, NC_DOWN, NC_BACK };

/* The numbered copies waiting for one backup worker (bus_nums.c): 'N', then entries. */
typedef struct ar__sig_nums_s {
    uint64_t worker;   /* its proc subject's worker */
    uint64_t since_us; /* when the first waiting copy came */
    uint8_t *buf;
    size_t len, cap; /* len 0: none waits */
    unsigned frames;
} ar__sig_nums_t;

/* How long a publication that libnats refuses as the publishing connection breaks is tried
 * again (bus_pub.c, refusal_passes) before it is dropped as any refusal is, and how often. */
#define AR__SIG_PUB_RETRY_MS 10000
#define AR__SIG_PUB_RETRY_EVERY_MS 50
/* How long the bus counts as behind after it last was (ar__sig_bus_congested). */
#define AR__SIG_BUS_SETTLE_MS 10000u

struct ar__sig_bus_s {
    natsConnection *nc;  /* subscriptions and heartbeats: its reader never waits for a write */
    natsConnection *pnc; /* every other publication, by the publisher thread */
    /* What this worker's heartbeats say of its process (worker_proc.c): host key, pid, start. */
    uint64_t host, start;
    int pid;
    /* The publisher thread's queue (under pmu): the loop waits only when it holds more than
     * inbox-max bytes (pfree), so that order is kept and memory bounded. */
    pthread_t pth;
    int pth_started, pstop;
    int pub_ended; /* ar__sig_bus_pub_end ran: the thread is joined, pnc flushed */
    pthread_mutex_t pmu;
    pthread_cond_t pcv, pfree;
    pub_t *phead, *ptail;
    size_t pbytes;
    /* Subscriptions made (loop, under pmu) and known to be in place at nats-server (publisher
     * thread): a publication waits for those made before it (pub_main). */
    uint64_t sub_gen, sub_done;
    /* Under pmu, written by libnats' callbacks: nc disconnected (NC_DOWN), reconnected but its
     * subscriptions not yet known to be in place again (NC_BACK), or up; nc_epoch counts the
     * changes; pnc_up: the publishing connection is connected. Publications are held unless
     * NC_UP and pnc_up (pub_main); held_ms: since when (0: not held). */
    int nc_state, pnc_up, closed; /* closed: connections whose closed callback has run */
    uint64_t nc_epoch, held_ms;
    uint64_t pnc_epoch; /* pnc's returns (reconnections), under pmu: the ended rooms' resend */
    /* The lost notices (NOTICE_MAX slots of NOTICE_SZ bytes, under pmu; a slot is in use while
     * its notice is set); untold: frames dropped with no notice free (counted, warned). */
    uint8_t *notices;
    uint32_t untold;
    /* Publications dropped on this side since the last warning (under pmu) and when that was. */
    uint32_t pdropped[K__COUNT];
    /* How libnats refused the last publication dropped since the last warning (a natsStatus; 0:
     * none refused, the drops were this side's: a full queue while held, no memory). */
    int prefused;
    uint64_t pwarn_ms;
    /* A refusal that passes (a write deadline or a socket error as pnc breaks, before libnats
     * takes publications into its reconnect buffer): since when the head has been refused so
     * (0: it is not), how (a natsStatus), and for how long it is tried again before it is
     * dropped as any refusal is (AR__SIG_PUB_RETRY_MS; tests shorten it). Under pmu. */
    uint64_t pretry_ms, pretry_max_ms;
    int pretry_status;
    ar_metric_t *m_untold;
    natsSubscription *subs[8]; /* node, sess, room, area, inv, proc, to as owner, as backup */
    int efd;
    pthread_mutex_t mu;
    item_t *head, *tail;
    item_t *nhead, *ntail; /* heartbeats, apart: handled first at every wake-up */
    size_t bytes;
    char prefix[AR_TOKEN_ID_MAX + 8]; /* "ar.<jur>." */
    size_t plen;
    ar__sig_srv_t *srv;
    item_t *lhead, *ltail; /* frames for sessions this worker owns: the loop's thread only */
    int lpoked;
    /* Numbered copies not yet published, a batch per backup worker (bus_nums.c): loop only. */
    ar__sig_nums_t *nums;
    size_t nnums, nnums_cap;
    uint64_t nbatch_us; /* copy-batch: how long a batch may wait */
    /* What this turn of the loop published, held until it ends (bus_turn.c): loop only.
     * Record updates in the fixed layout (recs[0] is set to AR__SIG_UPD_BATCH when they go
     * together; rec_subj: the first one's subject), then, in a promotion walk only,
     * worker-to-worker messages about a session, in order, each with its session's peer id. */
    uint8_t recs[1 + AR__SIG_UPD_BATCH_MAX * AR__SIG_UPD_LEN];
    unsigned nrecs, nheld;
    int holding; /* in a promotion walk: worker-to-worker messages are held (bus_turn.c) */
    char rec_subj[AR__SIG_REC_SUBJ_MAX];
    struct {
        pub_t *it;
        char peer[AR__SIG_PEER_LEN];
    } held[AR__SIG_HELD_MAX];
    ar_metric_t *m_rec_updates; /* record updates published, however many to a message */
    size_t max_bytes;
    /* Dropped messages since the loop last looked (under mu): counts by kind; K_LOST markers in
     * the inbox (lost_all when there was no room for one). */
    uint32_t dropped[K__COUNT];
    size_t nmarks;
    int lost_all;
    ar_metric_t *m_dropped[K__COUNT];
    /* Bus messages published by this worker and taken from its subscriptions, by kind: what
     * the bus carries and for what (a failover's aftermath, performance.md). */
    ar_metric_t *m_published[K__COUNT], *m_received[K__COUNT];
    /* libnats dropped messages before our callback took them (a subscription's pending limit,
     * NATS_SLOW_CONSUMER): episodes since the loop last looked (under mu), and the subscriptions'
     * dropped count the loop last reported (loop only). */
    uint32_t nats_slow;
    int64_t nats_dropped_seen;
    ar_metric_t *m_nats_dropped;
    /* Admission (ar__sig_bus_admit): bounds, until when another worker said it is behind, and
     * whether this worker was behind at its last look (logged on change). */
    uint64_t admit_lag_ms;
    size_t admit_bytes;
    uint64_t others_behind_until_ms;
    uint64_t behind_last_ms; /* when this worker last found itself behind (0: never) */
    int behind;
    ar_metric_t *m_refused, *m_backlog_ms;
    /* This worker announced that it leaves (ar__sig_bus_leave): it publishes nothing more. */
    int left;
};

/* Heartbeat ages, admission lag and publication ages are seconds or near: the coarse clock (a
 * memory read) will do, and a relayed frame with a backup asks whether the backup is alive
 * (ar__sig_node_alive). */
static inline uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* bus_pub.c: the kind of a message by its subject (K_REC for any other); *peer: a frame's
 * peer, or "". */
uint8_t ar__sig_bus_subj_kind(const ar__sig_bus_t *b, const char *subj, const char **peer);
/* bus_pub.c: queues a publication for the publisher thread (at once without one), after what
 * this turn of the loop holds (bus_turn.c). */
void ar__sig_bus_publish(ar__sig_bus_t *b, const char *subj, const void *data, size_t len);
/* bus_pub.c, the parts of ar__sig_bus_publish: a publication counted (by subj's kind); made
 * (NULL without memory); queued (NULL: dropped, counted as subj's); counted and queued (or
 * published at once without a publisher thread), not after what the turn holds. */
void ar__sig_bus_count_pub(ar__sig_bus_t *b, const char *subj);
pub_t *ar__sig_bus_pub_make(ar__sig_bus_t *b, const char *subj, const void *data, size_t len);
void ar__sig_bus_pub_queue(ar__sig_bus_t *b, pub_t *it, const char *subj);
void ar__sig_bus_pub_send(ar__sig_bus_t *b, const char *subj, const void *data, size_t len);
/* bus_pub.c, under pmu: a publication to subj was dropped on this side: counted, warned, a
 * frame's peer told by a lost notice: at the queue's tail when head_ms is 0, else at its head
 * with the dropped publication's queueing time head_ms (its age counts for admission). */
void ar__sig_bus_pub_dropped(ar__sig_bus_t *b, const char *subj, uint64_t head_ms);
/* bus_pub.c: the publisher thread (arg: the bus). */
void *ar__sig_bus_pub_main(void *arg);
/* bus_pub.c: the publisher thread publishes what is queued and ends (joined), then one flush of
 * pnc (at most 1 s) if it is connected; NATS_CONNECTION_CLOSED when it is not. Once: a later call
 * (ar__sig_bus_stop after ar__sig_bus_leave) does nothing and returns NATS_OK. */
natsStatus ar__sig_bus_pub_end(ar__sig_bus_t *b);
/* bus_pub.c: sets o's callbacks for the subscribing (pub 0) or the publishing connection. */
natsStatus ar__sig_bus_watch_conn(ar__sig_bus_t *b, natsOptions *o, int pub);
/* bus_pub.c: waits (up to 2 s) until n connections' closed callbacks have run; 1 if they have. */
int ar__sig_bus_wait_closed(ar__sig_bus_t *b, int n);
/* bus_nums.c: publishes every batch of numbered copies (ar__sig_bus_num) now. */
void ar__sig_bus_nums_flush(ar__sig_bus_t *b);
/* The loop's idle hook (data: the worker's srv), before it waits: publishes the batches as old
 * as copy-batch; the ms until the next is due, or -1 for none. */
int ar__sig_bus_nums_idle(void *data);
/* 1 when a batch of numbered copies waits: ar__sig_bus_nums_idle has one to flush or time. */
static inline int ar__sig_bus_nums_waiting(const ar__sig_bus_t *b)
{
    for (size_t i = 0; i < b->nnums; i++)
        if (b->nums[i].len)
            return 1;
    return 0;
}
/* bus_turn.c: an update in the fixed layout, for subj, waits to go out with the next ones. */
void ar__sig_bus_recs_add(ar__sig_bus_t *b, const char *subj, const uint8_t upd[AR__SIG_UPD_LEN]);
/* bus_turn.c, in a promotion walk (holding): a worker-to-worker message about session peer
 * (AR__SIG_PEER_LEN bytes) waits to go out after the walk's updates. */
void ar__sig_bus_hold(ar__sig_bus_t *b, const char *subj, const void *data, size_t len,
                      const char *peer);
/* bus_turn.c: what this turn holds goes out now: the updates (one message; the layout alone
 * for one), then the held messages in order. */
void ar__sig_bus_turn_flush(ar__sig_bus_t *b);
/* Once a second (the heartbeat): forgets the empty batches of workers no longer alive. */
void ar__sig_bus_nums_sweep(ar__sig_srv_t *srv);
/* Wipes and frees the batches (bus stop). */
void ar__sig_bus_nums_free(ar__sig_bus_t *b);
/* A worker's departure on ar.<jur>.node begins so (bus_node.c): it is no heartbeat to take
 * first, but keeps its place after that worker's records and copies (ar__sig_bus_put). */
#define AR__SIG_LEAVE_HEAD "{\"l\":1,"
/* bus.c: takes what the inbox holds now, as a wake-up of the loop would. */
void ar__sig_bus_take(ar__sig_srv_t *srv);
/* bus_node.c: a heartbeat from the bus (ar.<jur>.node). */
void ar__sig_bus_on_node(ar__sig_srv_t *srv, const char *data, size_t len);

#endif
