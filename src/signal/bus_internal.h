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
    char data[];
} pub_t;

struct ar__sig_bus_s {
    natsConnection *nc;  /* subscriptions and heartbeats: its reader never waits for a write */
    natsConnection *pnc; /* every other publication, by the publisher thread */
    /* The publisher thread's queue (under pmu): the loop waits only when it holds more than
     * inbox-max bytes (pfree), so that order is kept and memory bounded. */
    pthread_t pth;
    int pth_started, pstop;
    pthread_mutex_t pmu;
    pthread_cond_t pcv, pfree;
    pub_t *phead, *ptail;
    size_t pbytes;
    /* Subscriptions made (loop, under pmu) and known to be in place at nats-server (publisher
     * thread): a publication waits for those made before it (pub_main). */
    uint64_t sub_gen, sub_done;
    natsSubscription *subs[6];
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
    /* Numbered copies for one backup worker not yet published (ar__sig_bus_num): loop only. */
    uint8_t *nbuf;
    size_t nlen, ncap;
    unsigned nframes;
    uint64_t nworker, nsince_us;
    size_t max_bytes;
    /* Dropped messages since the loop last looked (under mu): counts by kind; K_LOST markers in
     * the inbox (lost_all when there was no room for one). */
    uint32_t dropped[K__COUNT];
    size_t nmarks;
    int lost_all;
    ar_metric_t *m_dropped[K__COUNT];
    /* Admission (ar__sig_bus_admit): bounds, until when another worker said it is behind, and
     * whether this worker was behind at its last look (logged on change). */
    uint64_t admit_lag_ms;
    size_t admit_bytes;
    uint64_t others_behind_until_ms;
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

/* bus.c: publishes the numbered copies batched for one backup worker (ar__sig_bus_num). */
void ar__sig_bus_nums_flush(ar__sig_bus_t *b);
/* bus.c: publishes on subj after the numbered copies batched so far, through the publisher
 * thread's queue (after everything queued before). */
void ar__sig_bus_publish(ar__sig_bus_t *b, const char *subj, const void *data, size_t len);
/* A worker's departure on ar.<jur>.node begins so (bus_node.c): it is no heartbeat to take
 * first, but keeps its place after that worker's records and copies (ar__sig_bus_put). */
#define AR__SIG_LEAVE_HEAD "{\"l\":1,"
/* bus.c: takes what the inbox holds now, as a wake-up of the loop would. */
void ar__sig_bus_take(ar__sig_srv_t *srv);
/* bus_node.c: a heartbeat from the bus (ar.<jur>.node). */
void ar__sig_bus_on_node(ar__sig_srv_t *srv, const char *data, size_t len);

#endif
