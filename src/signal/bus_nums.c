/*
 * Numbered copies to backups, batched (docs/signal.md, "Resume (P6) and node failure").
 *
 * Each frame an owner numbers is copied to the session's backup (sess.c). One NATS message per
 * copy cost more than the relay itself on a two-worker node (performance.md): a publish,
 * hand-offs between libnats' threads on both workers, nats-server, the backup's eventfd and a
 * parse. So the copies for one backup worker go out together, in a binary batch ('N', then
 * entries of AR__SIG_NUM_HDR bytes and the frame), at most copy-batch after the first, or
 * sooner when the batch is full or the worker publishes anything but a relayed frame.
 *
 * One batch per backup worker: a node's sessions have their backups spread over the workers of
 * other nodes (ar__sig_pick_backup), so with a single batch every change of backup sent it off
 * and it rarely held more than one copy.
 *
 * The order the bus sees: everything but a relayed frame publishes all batches first, so a
 * backup still applies every copy before the record updates, hand-overs and departures that
 * followed it. A relayed frame (to.<peer>, bus.c publish_to) does not: it is for a session this
 * worker does not own, and copies are of sessions it owns, so no receiver can tell the order.
 *
 * How long (copy-batch, default 10 ms) trades CPU against what a machine's death loses. On a
 * two-worker node at 2,000 relayed messages/s, 1 ms batches carried about one copy each and the
 * relay cost 88 to 101 us of CPU per message (workers and nats-server), 10 ms batches 39 to 43
 * (performance.md, "Relay with a backup: the copy batch"). Copies still in a batch when the
 * owner dies are not lost to the client when the owner's frames reached it (a process killed
 * leaves its sockets' written data to the kernel) or came over the bus (the backup has them,
 * numbered as uncertain, protocol.md 5.10.1); what a longer batch can lose is a frame from a
 * sender on the owner's own worker still in the owner's user-space send queue when it was
 * killed, or in its kernel when its machine died (docs/signal.md, "What the copy batch risks").
 */
#include "bus_internal.h"

#include "anteroom/alloc.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define NUM_BATCH_BYTES (32u << 10)
#define NUM_BATCH_FRAMES 64u
#define NUM_BUF_MIN 4096u
/* A buffer grown past this for a big batch is given back once that batch went: a batch per
 * backup worker, each kept at its largest, would hold up to 128 KiB per worker for nothing. */
#define NUM_BUF_KEEP (2 * (size_t)NUM_BUF_MIN)

static void batch_flush(ar__sig_bus_t *b, ar__sig_nums_t *q)
{
    if (!q->len)
        return;
    char subj[96];
    snprintf(subj, sizeof(subj), "%sproc.%016llx", b->prefix, (unsigned long long)q->worker);
    ar__sig_bus_publish(b, subj, q->buf, q->len);
    sodium_memzero(q->buf, q->len); /* relayed SDP does not linger in memory */
    q->len = 0;
    q->frames = 0;
    if (q->cap > NUM_BUF_KEEP) {
        ar_free(q->buf);
        q->buf = NULL;
        q->cap = 0;
    }
}

void ar__sig_bus_nums_flush(ar__sig_bus_t *b)
{
    for (size_t i = 0; i < b->nnums; i++)
        batch_flush(b, &b->nums[i]);
}

/* The batch for worker, made when there is none (NULL without memory). */
static ar__sig_nums_t *batch_of(ar__sig_bus_t *b, uint64_t worker)
{
    for (size_t i = 0; i < b->nnums; i++)
        if (b->nums[i].worker == worker)
            return &b->nums[i];
    if (b->nnums == b->nnums_cap) {
        size_t cap = b->nnums_cap ? 2 * b->nnums_cap : 8;
        ar__sig_nums_t *n = ar_realloc(b->nums, cap * sizeof(*n)); /* no frame bytes in it */
        if (!n)
            return NULL;
        b->nums = n;
        b->nnums_cap = cap;
    }
    ar__sig_nums_t *q = &b->nums[b->nnums++];
    memset(q, 0, sizeof(*q));
    q->worker = worker;
    return q;
}

/* Room for need more bytes; a bigger buffer is a new one, the old wiped (not realloc'd). */
static int batch_room(ar__sig_nums_t *q, size_t need)
{
    if (q->len + need <= q->cap)
        return 0;
    size_t cap = q->cap ? q->cap : NUM_BUF_MIN;
    while (cap < q->len + need)
        cap *= 2;
    uint8_t *n = ar_malloc(cap);
    if (!n)
        return -1;
    if (q->buf) {
        memcpy(n, q->buf, q->len);
        ar_free_wiped(q->buf); /* its cap whole, not only len: on growth only, not per message */
    }
    q->buf = n;
    q->cap = cap;
    return 0;
}

void ar__sig_bus_num(ar__sig_srv_t *srv, uint64_t worker, const char *peer, int64_t seq,
                     const uint8_t fid[16], uint8_t action, const char *frame, size_t len)
{
    ar__sig_bus_t *b = srv->bus;
    size_t need = AR__SIG_NUM_HDR + len;
    if (!b || len > AR_SIG_OUT_MAX || seq < 0)
        return;
    ar__sig_nums_t *q = batch_of(b, worker);
    if (!q)
        return; /* no memory: as a copy lost in flight, the backup numbers the frame itself */
    if (q->len && q->len + need > 1 + NUM_BATCH_BYTES)
        batch_flush(b, q);
    if (batch_room(q, (q->len ? 0 : 1) + need) != 0)
        return;
    if (!q->len) {
        q->buf[0] = 'N';
        q->len = 1;
        q->since_us = ar__sig_now_us();
    }
    uint8_t *p = q->buf + q->len;
    memcpy(p, peer, AR__SIG_PEER_LEN);
    ar__sig_le_put(p + AR__SIG_PEER_LEN, (uint64_t)seq, 8);
    memcpy(p + AR__SIG_PEER_LEN + 8, fid, 16);
    p[AR__SIG_PEER_LEN + 24] = action;
    ar__sig_le_put(p + AR__SIG_PEER_LEN + 25, len, 4);
    memcpy(p + AR__SIG_NUM_HDR, frame, len);
    q->len += need;
    if (++q->frames >= NUM_BATCH_FRAMES || q->len >= NUM_BATCH_BYTES || !b->nbatch_us)
        batch_flush(b, q);
}

int ar__sig_bus_nums_idle(void *data)
{
    ar__sig_bus_t *b = ((ar__sig_srv_t *)data)->bus;
    if (!b)
        return -1;
    /* Before every wait of the loop: the clock is read only when a batch waits. */
    uint64_t now = 0, wait_us = UINT64_MAX;
    for (size_t i = 0; i < b->nnums; i++) {
        ar__sig_nums_t *q = &b->nums[i];
        if (!q->len)
            continue;
        if (!now)
            now = ar__sig_now_us();
        uint64_t age = now - q->since_us;
        if (age >= b->nbatch_us)
            batch_flush(b, q);
        else if (b->nbatch_us - age < wait_us)
            wait_us = b->nbatch_us - age;
    }
    return wait_us == UINT64_MAX ? -1 : (int)((wait_us + 999) / 1000);
}

void ar__sig_bus_nums_sweep(ar__sig_srv_t *srv)
{
    ar__sig_bus_t *b = srv->bus;
    for (size_t i = 0; b && i < b->nnums;) {
        ar__sig_nums_t *q = &b->nums[i];
        if (!q->len && !ar__sig_node_alive(srv, q->worker)) {
            /* A worker gone for good (its id is never reused) keeps no batch here. */
            ar_free(q->buf); /* wiped when its last batch went */
            *q = b->nums[--b->nnums];
            continue;
        }
        i++;
    }
}

void ar__sig_bus_nums_free(ar__sig_bus_t *b)
{
    for (size_t i = 0; i < b->nnums; i++) {
        ar_free_wiped(b->nums[i].buf);
    }
    ar_free(b->nums);
    b->nums = NULL;
    b->nnums = b->nnums_cap = 0;
}
