/*
 * Worker threads, each running its own libuv loop, and the sockets they share.
 *
 * A daemon opens one SO_REUSEPORT socket per worker per listening address
 * (ar_listen_socket), so the kernel spreads packets and connections over the workers with no
 * lock and no hand-off between threads. Each worker's init callback runs on the worker's own
 * thread, with its own loop, and creates its handles there: libuv handles never cross loops.
 *
 * Stopping: ar_workers_stop() may be called from any thread (it only does uv_async_send, which is
 * async-signal-safe). Each worker then runs its stop callback on its own thread so the daemon can
 * close its handles gracefully (close callbacks free the memory), after which any handle still
 * open is closed and the loop runs until nothing is left. ar_workers_join() waits for that.
 *
 * ar_workers_wait_signals() is the main thread's loop for a daemon: SIGINT and SIGTERM stop the
 * workers; SIGHUP calls the reload callback (re-read TLS certificates) on the main thread.
 */
#ifndef ANTEROOM_WORKER_H
#define ANTEROOM_WORKER_H

#include "anteroom/err.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#define AR_WORKERS_MAX 64

typedef struct ar_worker_s ar_worker_t;
typedef struct ar_workers_s ar_workers_t;

/* Runs on the worker's thread before its loop. A negative return stops every worker. */
typedef int (*ar_worker_init_cb)(ar_worker_t *w, void *data);
/* Runs on the worker's thread when a stop was requested; close the handles made in init. */
typedef void (*ar_worker_stop_cb)(ar_worker_t *w, void *data);
/* Runs on the main thread on SIGHUP. */
typedef void (*ar_reload_cb)(void *data);

uv_loop_t *ar_worker_loop(ar_worker_t *w);
/* 0..n-1: the metrics shard and the index of the worker's sockets. */
unsigned ar_worker_index(const ar_worker_t *w);
/* The worker's own pointer, free for the daemon's per-worker state. */
void ar_worker_set_data(ar_worker_t *w, void *data);
void *ar_worker_get_data(const ar_worker_t *w);

/*
 * Starts n (1..AR_WORKERS_MAX) threads and waits until every init callback has returned.
 * If any init fails, all workers are stopped and joined and its error is returned.
 * `data` is passed to both callbacks. stop may be NULL.
 */
AR_MUST_CHECK int ar_workers_start(ar_workers_t **out, unsigned n, ar_worker_init_cb init,
                                   ar_worker_stop_cb stop, void *data);
/* Asks every worker to stop; safe from any thread and from signal handlers. */
void ar_workers_stop(ar_workers_t *ws);
/* Waits for every worker thread to finish and frees ws. */
void ar_workers_join(ar_workers_t *ws);

/*
 * Runs a loop on the calling (main) thread until SIGINT or SIGTERM, calling reload (may be
 * NULL) on SIGHUP; then stops and joins the workers (ws is freed). Returns 0, or AR_ESYS if the
 * signal handlers could not be installed (the workers are still stopped and joined).
 * ar_workers_start() blocks SIGINT, SIGTERM and SIGHUP in the calling thread (the workers
 * inherit the mask; it unblocks them again if it fails) and this call unblocks them once its
 * handlers are in place, so none that arrives during start is lost or kills the process.
 */
int ar_workers_wait_signals(ar_workers_t *ws, ar_reload_cb reload, void *data);

/*
 * Sets SIGPIPE to ignored for the whole process, once: a write to a socket the peer has reset
 * must come back as an error, not kill the daemon. ar_workers_start, ar_listener_start,
 * ar_conn_connect and ar_health_start call it, so daemons need not.
 */
void ar_ignore_sigpipe(void);

/*
 * A non-blocking, close-on-exec socket bound to addr with SO_REUSEADDR and SO_REUSEPORT, so
 * that each worker can bind its own socket on the same address. type is SOCK_DGRAM or
 * SOCK_STREAM (then listen() with `backlog`). IPv6 sockets are IPV6_V6ONLY so an IPv4 socket
 * may share the port. Returns the descriptor, or AR_EADDRINUSE, AR_EINVAL or AR_ESYS.
 */
AR_MUST_CHECK int ar_listen_socket(int type, const struct sockaddr *addr, int backlog);

/*
 * 0 when nothing is bound to addr's port now (type SOCK_STREAM or SOCK_DGRAM), AR_EADDRINUSE
 * when something is, AR_EINVAL or AR_ESYS. Why: ar_listen_socket's SO_REUSEPORT lets any process
 * of the same user bind the same port, so a second daemon started on a port in use would not
 * fail: the kernel would spread connections or datagrams over both, and clients would reach the
 * wrong one at random. A daemon checks each of its ports once at start, before its own workers
 * bind them, with a socket that does not set SO_REUSEPORT, whose bind fails while any other
 * socket holds the port. (A TCP check sets SO_REUSEADDR, so connections in TIME_WAIT from a
 * previous run do not count; a UDP one does not, as UDP sockets with it share a port.) A port in
 * use is logged (port_in_use) and said on stderr as "<prog>: TCP port N is in use ...".
 */
AR_MUST_CHECK int ar_port_unclaimed(int type, const struct sockaddr *addr, const char *prog);

/*
 * Parses a numeric IPv4 or IPv6 address (no name lookup) and a port into out.
 * Returns 0 or AR_EINVAL.
 */
AR_MUST_CHECK int ar_addr_parse(const char *host, uint16_t port, struct sockaddr_storage *out);
/* Sets the port of an AF_INET or AF_INET6 address (host order given); others are left alone. */
void ar_addr_set_port(struct sockaddr_storage *ss, uint16_t port);
/* The port of an AF_INET or AF_INET6 address (host order), 0 otherwise. */
uint16_t ar_addr_port(const struct sockaddr *sa);

#endif
