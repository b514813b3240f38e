/*
 * Record updates in the fixed layout, several to a bus message (docs/signal.md, "Record updates
 * on the wire").
 *
 * Every worker of a jurisdiction takes every record update: one NATS message each cost
 * nats-server a delivery to every worker, and each worker a hand-off from libnats' thread, an
 * inbox entry and a wake-up. After a node's death with 100,000 calls, the survivor's 12
 * workers published about 300,000 of them (a promotion and two more per resume), nats-server
 * delivered 3.6 million, and 2.35 million of those came while the relay check ran: nats-server
 * took 38 % of the machine and the check's offers took twice as long as on a quiet node
 * (docs/performance.md, "Failover at 100,000 calls a node: the check's burst").
 *
 * So updates wait here, within one turn of the loop, and go out together (AR__SIG_UPD_BATCH):
 * before the loop waits again (bus.c bus_idle), once AR__SIG_UPD_BATCH_MAX wait, and before
 * anything else this worker publishes (ar__sig_bus_publish sends them first), so every receiver
 * sees this worker's updates, frames, copies and hand-overs in the order they were made. A batch
 * of one goes as it always did: the layout alone, on its session's subject.
 *
 * In a promotion walk (sess.c ar__sig_nodes_dead) each session's update is followed by an
 * "adopt" for its new backup, which would send every batch off at one update. There, and only
 * there, worker-to-worker messages about a session wait too (the held list), behind the batch,
 * until the walk ends: a receiver may then get a promotion before the adopt of another session
 * promoted earlier in the walk, never before its own session's (an update about a session that a
 * held message names sends everything held first). Held more widely (every resume's "ack" and
 * "res") it was not kept: full-size failovers lost sessions with it, as the code before this
 * change did on the same host that day, and one run each could not tell its effect
 * (docs/performance.md, "Failover at 100,000 calls a node: record updates several to a
 * message").
 */
#include "bus_internal.h"

#include "anteroom/alloc.h"

#include <stdio.h>
#include <string.h>

/* 1 when a held message names peer. */
static int held_about(const ar__sig_bus_t *b, const char *peer)
{
    for (unsigned i = 0; i < b->nheld; i++)
        if (memcmp(b->held[i].peer, peer, AR__SIG_PEER_LEN) == 0)
            return 1;
    return 0;
}

void ar__sig_bus_recs_add(ar__sig_bus_t *b, const char *subj, const uint8_t upd[AR__SIG_UPD_LEN])
{
    /* The update's peer id is at its end (rec_wire.c): after a held message about it, it goes
     * after that message, as it was made. */
    if (b->nrecs == AR__SIG_UPD_BATCH_MAX ||
        (b->nheld && held_about(b, (const char *)upd + AR__SIG_UPD_LEN - AR__SIG_PEER_LEN)))
        ar__sig_bus_turn_flush(b);
    if (!b->nrecs) /* the subject it goes on if it stays alone */
        snprintf(b->rec_subj, sizeof(b->rec_subj), "%s", subj);
    memcpy(b->recs + 1 + (size_t)b->nrecs * AR__SIG_UPD_LEN, upd, AR__SIG_UPD_LEN);
    b->nrecs++;
}

void ar__sig_bus_hold(ar__sig_bus_t *b, const char *subj, const void *data, size_t len,
                      const char *peer)
{
    if (b->left)
        return; /* as ar__sig_bus_publish */
    if (!b->pth_started || b->nheld == AR__SIG_HELD_MAX) {
        /* Without a publisher thread (tests) it goes now, after what the turn holds; so does
         * one that finds the list full. */
        ar__sig_bus_publish(b, subj, data, len);
        return;
    }
    ar__sig_bus_count_pub(b, subj);
    pub_t *it = ar__sig_bus_pub_make(b, subj, data, len);
    if (!it) { /* dropped for want of memory, in its place: after what is held */
        ar__sig_bus_turn_flush(b);
        ar__sig_bus_pub_queue(b, NULL, subj);
        return;
    }
    b->held[b->nheld].it = it;
    memcpy(b->held[b->nheld].peer, peer, AR__SIG_PEER_LEN);
    b->nheld++;
}

/* The updates waiting, as one publication (the layout alone for one). */
static void recs_go(ar__sig_bus_t *b)
{
    unsigned n = b->nrecs;
    b->nrecs = 0;
    if (n == 1) {
        ar__sig_bus_pub_send(b, b->rec_subj, b->recs + 1, AR__SIG_UPD_LEN);
        return;
    }
    char subj[AR__SIG_REC_SUBJ_MAX];
    snprintf(subj, sizeof(subj), "%s%s", b->prefix, AR__SIG_RECS_SUBJ);
    b->recs[0] = AR__SIG_UPD_BATCH;
    ar__sig_bus_pub_send(b, subj, b->recs, 1 + (size_t)n * AR__SIG_UPD_LEN);
}

void ar__sig_bus_turn_flush(ar__sig_bus_t *b)
{
    if (b->left) { /* nothing goes after our departure (ar__sig_bus_publish) */
        for (unsigned i = 0; i < b->nheld; i++)
            ar_free_wiped(b->held[i].it);
        b->nheld = b->nrecs = 0;
        return;
    }
    if (b->nrecs)
        recs_go(b);
    unsigned n = b->nheld;
    b->nheld = 0;
    for (unsigned i = 0; i < n; i++) {
        pub_t *it = b->held[i].it;
        ar__sig_bus_pub_queue(b, it, it->data);
    }
}

void ar__sig_bus_hold_begin(ar__sig_srv_t *srv)
{
    if (srv->bus)
        srv->bus->holding = 1;
}

void ar__sig_bus_hold_end(ar__sig_srv_t *srv)
{
    if (!srv->bus)
        return;
    srv->bus->holding = 0;
    ar__sig_bus_turn_flush(srv->bus);
}
