/*
 * The frame the end-to-end harnesses of the app and the monitor share
 * (tests/integration/app/harness.c, tests/integration/monitor/harness.c):
 *   - an injected clock the cases move and the server reads (its clock callback);
 *   - a temporary directory, removed at exit even after a failed CHECK, holding a self-signed
 *     certificate and, on SQLite, the store's file; the store chosen by argv[1] ("pg" takes
 *     AR_PG_CONNINFO, anything else SQLite);
 *   - the cases run on their own thread while the server runs on the main thread's loop: h2o
 *     keeps per-thread allocation caches that a finished thread would leave behind
 *     (LeakSanitizer sees them).
 */
#ifndef AR_TEST_SERVE_FRAME_H
#define AR_TEST_SERVE_FRAME_H

#include "anteroom/store.h"

#include <stdint.h>
#include <uv.h>

int64_t h_clock(void);
void h_clock_set(int64_t now);
/* The clock callback the server is given (data is unused). */
int64_t h_clock_cb(void *data);

typedef struct {
    char dir[256];
    char cert[300], key[300]; /* PEM files in dir */
    char db[300];             /* the SQLite file (unused on PostgreSQL) */
    ar_store_opts_t store;    /* points into db, or at AR_PG_CONNINFO */
} h_frame_t;

/* Makes the directory from prefix ("/tmp/ar-app-test"), its certificate, and the store options
 * for store_arg (argv[1]) with db_name as the SQLite file. f must outlive the process (it is
 * removed at exit). */
void h_frame_init(h_frame_t *f, const char *prefix, const char *db_name, const char *store_arg);

/* Runs cases on a new thread, then sends stop (whose callback stops the server and closes the
 * loop's handles); meanwhile runs loop on this thread until it has nothing left, then joins the
 * thread and closes the loop. */
void h_frame_serve(uv_loop_t *loop, uv_async_t *stop, void (*cases)(void));

#endif
