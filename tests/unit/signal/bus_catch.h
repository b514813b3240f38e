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

#endif
