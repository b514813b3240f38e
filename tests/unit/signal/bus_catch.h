/*
 * What workers publish, caught instead of sent: for a test linked with
 * -Wl,--wrap=ar__sig_bus_rec -Wl,--wrap=ar__sig_bus_proc (bus_catch.c defines both wraps), so
 * that it can look at each record update and worker-to-worker message, and deliver the latter
 * by hand, in the order it chooses.
 */
#ifndef AR_TEST_BUS_CATCH_H
#define AR_TEST_BUS_CATCH_H

#include "internal.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define BC_MAX 32
typedef struct bc_caught_s {
    ar__sig_srv_t *from;
    uint64_t to; /* a proc message's worker; 0 for a record update */
    json_t *o;
} bc_caught_t;
extern bc_caught_t bc_caught[BC_MAX];
extern size_t bc_n;

/* Forgets (and frees) everything caught. */
void bc_clear(void);
/* The last record update srv published, or NULL. */
json_t *bc_last_rec(const ar__sig_srv_t *srv);
/* The last proc message of kind k that srv sent to worker `to` (0: to any worker), or NULL. */
json_t *bc_proc_sent(const ar__sig_srv_t *srv, uint64_t to, const char *k);
/* Delivers a caught proc message o to worker dst, as its bus would. */
void bc_deliver(ar__sig_srv_t *dst, json_t *o);

/* The hand-over tests' workers: BC_O (the owner) and BC_T (the worker a client resumes
 * through) on node-a, BC_X on node-b, where backups go. */
#define BC_O 1u
#define BC_T 2u
#define BC_X 3u
/* Worker id of node name heard by srv ago_ms before now (alive under AR__SIG_NODE_DEAD_S). */
void bc_heard(ar__sig_srv_t *srv, uint64_t id, const char *name, uint64_t ago_ms);
/* Worker id's state (su_srv_new) with conf, having heard BC_O and BC_T (but itself) and BC_X. */
ar__sig_srv_t *bc_worker(uint64_t id, ar_signal_conf_t *conf);
/* Frees srv and every record it holds. */
void bc_worker_free(ar__sig_srv_t *srv);

#endif
