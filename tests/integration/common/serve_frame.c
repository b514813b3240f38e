/* The shared frame of the server harnesses (serve_frame.h). */
#include "serve_frame.h"

#include "https_client.h"

#include "anteroom/tls.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Atomic int64_t clock_now = 1800000000;

int64_t h_clock_cb(void *data)
{
    (void)data;
    return atomic_load(&clock_now);
}

void h_clock_set(int64_t now)
{
    atomic_store(&clock_now, now);
}

int64_t h_clock(void)
{
    return atomic_load(&clock_now);
}

static const char *frame_dir;

/* Runs at exit, so a failed check (exit(1)) leaves no temporary files either. */
static void remove_dir(void)
{
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", frame_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", frame_dir);
}

void h_frame_init(h_frame_t *f, const char *prefix, const char *db_name, const char *store_arg)
{
    memset(f, 0, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "%s.XXXXXX", prefix);
    CHECK(mkdtemp(f->dir) != NULL);
    frame_dir = f->dir;
    atexit(remove_dir);
    if (strcmp(store_arg, "pg") == 0) {
        f->store.kind = AR_STORE_PG;
        f->store.target = getenv("AR_PG_CONNINFO");
        CHECK(f->store.target != NULL);
    } else {
        f->store.kind = AR_STORE_SQLITE;
        snprintf(f->db, sizeof(f->db), "%s/%s", f->dir, db_name);
        f->store.target = f->db;
    }
    snprintf(f->cert, sizeof(f->cert), "%s/cert.pem", f->dir);
    snprintf(f->key, sizeof(f->key), "%s/key.pem", f->dir);
    CHECK(ar_tls_selfsigned_generate(f->cert, f->key, NULL, 0, 2) == 0);
}

static void (*cases_fn)(void);
static uv_async_t *stop_async;

static void cases_main(void *arg)
{
    (void)arg;
    cases_fn();
    uv_async_send(stop_async);
}

void h_frame_serve(uv_loop_t *loop, uv_async_t *stop, void (*cases)(void))
{
    uv_thread_t thread;
    cases_fn = cases;
    stop_async = stop;
    CHECK(uv_thread_create(&thread, cases_main, NULL) == 0);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_thread_join(&thread);
    CHECK(uv_loop_close(loop) == 0);
}
