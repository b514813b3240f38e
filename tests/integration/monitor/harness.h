/*
 * A real anteroom-monitor on loopback for the integration tests: the monitor runs on this
 * process's main thread and loop (so the tests can move its clock and ask for flushes), the
 * cases on another thread, and requests are made by curl processes (HTTP/2 and HTTP/1.1 from a
 * client we did not write).
 */
#ifndef AR_TEST_MONITOR_HARNESS_H
#define AR_TEST_MONITOR_HARNESS_H

#include "monitor.h"

#include "anteroom/metrics.h"
#include "anteroom/store.h"
#include "anteroom/token.h"

#include "https_client.h"
#include "serve_frame.h" /* h_clock, h_clock_set */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

extern const char *h_origin;
extern ar_token_key_t h_key; /* the signing key (the test plays the app) */
extern ar_metrics_t *h_metrics;

/* Opens the store (argv[1]: "sqlite" or "pg" with AR_PG_CONNINFO), migrates it, runs the
 * monitor on this thread and `cases` on another, then `after` once the monitor has stopped. */
void h_run(int argc, char **argv, void (*cases)(void), void (*after)(const ar_store_opts_t *));
/* Runs ar_monitor_flush on the monitor's loop and waits for it; returns its status. */
int h_flush(void);
/* Mints a monitor token for a patient of clinic/area (area NULL: a staff token of one clinic),
 * valid for an hour from the injected clock, or with audience aud. */
void h_token(const char *clinic, const char *area, const char *aud, int64_t exp_in, char *out,
             size_t cap);

#endif
