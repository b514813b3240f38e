/*
 * A signalling worker for bus tests, without sockets or clients: its loop (never run), metrics
 * and bus, either started (publisher thread over the libnats stand-in, fake_nats.c) or only made
 * (an inbox to feed with ar__sig_bus_put).
 */
#ifndef AR_TEST_BUS_WORKER_H
#define AR_TEST_BUS_WORKER_H

#include "internal.h"

#include <stdint.h>

typedef struct su_worker_s {
    ar__sig_srv_t *srv;
    ar_signal_conf_t conf; /* fields set before su_worker_new are kept (admit_lag, say) */
} su_worker_t;

/* Worker `id` of jurisdiction "eu" with inbox-max inbox_max; start: its bus is started, else
 * only made. Fails the test on any error. */
void su_worker_new(su_worker_t *w, uint64_t id, int start, long inbox_max);
/* Frees its records, stops its bus (nothing if the test stopped it), frees the rest. */
void su_worker_free(su_worker_t *w);

/* A cmocka fixture of one started worker (id 1) over a reset libnats stand-in. */
typedef struct su_bus_fixture_s {
    su_worker_t w;
    ar__sig_srv_t *srv; /* w.srv */
} su_bus_fixture_t;
su_bus_fixture_t *su_bus_fixture_new(long inbox_max);
/* A cmocka teardown for it: opens the stand-in's gate (a test may have closed it), frees. */
int su_bus_fixture_teardown(void **state);

#endif
