/*
 * A worker's loop on loopback for unit tests (as test_conn.c runs one): srv.c's own callbacks
 * on a real ar_sn loop in a thread, clients as plain sockets in the test's thread, and a way to
 * run a step of the test on the loop's thread, where every srv structure lives. A client that
 * dials "/dead" gets a server side shut for writing: the server's first send to it fails and
 * the net layer drops the connection inside that send.
 */
#ifndef AR_TEST_LOOP_HARNESS_H
#define AR_TEST_LOOP_HARNESS_H

#include "internal.h"
#include "sig_util.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct lh_s {
    ar__sig_srv_t *srv;
    ar_signal_conf_t conf;
    atomic_int opened, freed;
    ar__sig_conn_t *last; /* the connection opened last (written on the loop's thread) */
} lh_t;

extern lh_t LH;

/* Starts a worker loop on 127.0.0.1 (port 0); bus: with the bus's inbox (ar__sig_bus_new,
 * not connected; admission reads it), inbox_max its bound in bytes. */
void lh_start(int bus, long inbox_max);
/* Stops the loop; frees the connections, the records and the bus. */
void lh_stop(void);
/* A WebSocket client on path, upgraded (101 read); returns when the server has opened it. */
int lh_dial(const char *path);
/* Runs fn(arg) on the loop's thread and returns when it has; fails the test there if a check
 * on the loop's thread failed (LH_CHECK). */
void lh_run(void (*fn)(void *), void *arg);
/*
 * A check in code that runs on the loop's thread, in place of cmocka's assertions: those fail
 * a test only from the test's own thread (their failure longjmps to it), and from the loop's
 * they were lost. The first failure is kept, the function returns, and lh_run (or lh_stop)
 * fails the test with it.
 */
#define LH_CHECK(cond)                                                                             \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            lh_check_failed(#cond, __FILE__, __LINE__);                                            \
            return;                                                                                \
        }                                                                                          \
    } while (0)
void lh_check_failed(const char *what, const char *file, int line);
/* One frame from the server: its opcode, the text of a text frame in text (NUL-terminated), the
 * code of a close frame in *code. -1 on EOF or after 5 s without one. */
int lh_read(int fd, char *text, size_t cap, uint16_t *code);
/* Waits up to 5 s for *v to reach want; fails the test otherwise. */
void lh_wait(atomic_int *v, int want);

/* The worker accepts tokens signed with key from now on (its public half added to the
 * worker's keyring on the loop's thread, sig_util.h su_trust). */
void lh_trust(const ar_token_key_t *key);

#endif
