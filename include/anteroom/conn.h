/*
 * One connection interface over libuv streams with plain TCP and TLS behind it (as Redis's
 * connection.h over its socket and TLS types). Callers read and write plaintext; for TLS
 * connections the bytes pass through OpenSSL memory BIOs (tls.c) driven from the stream.
 *
 * States (ar_conn_state_name): connecting -> handshaking (TLS only) -> open -> closing -> closed.
 * Every change goes through one function that logs it at debug level.
 *
 * Callbacks, all on the loop's thread:
 *   on_open   the connection is usable (TCP connected, TLS handshake and verification done);
 *   on_read   plaintext bytes, valid only during the call;
 *   on_drain  the outgoing buffer, which had refused a write (AR_EAGAIN), is down to half its cap;
 *   on_close  always called exactly once, last: err is 0 after ar_conn_close, AR_ECLOSED when the
 *             peer closed, AR_ETLS (handshake or verification failure), AR_ETIMEDOUT (handshake
 *             timeout), AR_EIO (socket error, refused connect). The connection is freed when
 *             on_close returns. An accepted connection is announced by on_open: one that fails
 *             its handshake is dropped without any callback.
 * The first listener or connection sets SIGPIPE to ignored (ar_ignore_sigpipe in worker.h).
 * Any callback may call ar_conn_close: closing is asynchronous, so a connection is never freed
 * inside one of its own callbacks. Callback tables must outlive their connections (static const).
 */
#ifndef ANTEROOM_CONN_H
#define ANTEROOM_CONN_H

#include "anteroom/err.h"
#include "anteroom/tls.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

typedef struct ar_conn_s ar_conn_t;
typedef struct ar_listener_s ar_listener_t;

typedef enum {
    AR_CONN_CONNECTING,
    AR_CONN_HANDSHAKING,
    AR_CONN_OPEN,
    AR_CONN_CLOSING,
    AR_CONN_CLOSED,
} ar_conn_state_t;

typedef struct ar_conn_cbs_s {
    void (*on_open)(ar_conn_t *c);
    void (*on_read)(ar_conn_t *c, const uint8_t *data, size_t len);
    void (*on_drain)(ar_conn_t *c); /* may be NULL */
    void (*on_close)(ar_conn_t *c, int err);
} ar_conn_cbs_t;

typedef struct ar_conn_opts_s {
    size_t out_cap;                /* outgoing bytes a connection may hold; 0 means 256 KiB */
    uint64_t handshake_timeout_ms; /* connect + TLS handshake; 0 means 10 s */
    uint64_t close_linger_ms;      /* how long a closing connection flushes; 0 means 2 s */
    /*
     * ar_conn_connect only: the local address to connect from, or NULL for the kernel's choice
     * (a TURN relay connects from the allocation's relayed address, RFC 6062). Read during the
     * call only.
     */
    const struct sockaddr *bind_addr;
} ar_conn_opts_t;

/*
 * Serves connections on a listening socket fd (from ar_listen_socket; the listener owns it from
 * here). tls NULL means plain TCP; otherwise it must outlive the listener. Each accepted
 * connection starts with ar_conn_get_data() == data and calls cbs->on_open when usable.
 * opts may be NULL. Returns 0, AR_ENOMEM or AR_ESYS (the fd is closed on failure).
 */
AR_MUST_CHECK int ar_listener_start(uv_loop_t *loop, int fd, ar_tls_server_t *tls,
                                    const ar_conn_cbs_t *cbs, const ar_conn_opts_t *opts,
                                    void *data, ar_listener_t **out);
/* Stops accepting and frees the listener asynchronously; open connections are unaffected. */
void ar_listener_close(ar_listener_t *l);

/*
 * Connects to addr. With tls, host names the peer to verify (DNS name or IP literal) and is
 * required. Returns 0 with *out set (the outcome arrives as on_open or on_close), AR_EINVAL,
 * AR_ENOMEM, AR_EADDRINUSE (opts->bind_addr taken) or AR_ESYS.
 */
AR_MUST_CHECK int ar_conn_connect(uv_loop_t *loop, const struct sockaddr *addr,
                                  ar_tls_client_t *tls, const char *host, const ar_conn_cbs_t *cbs,
                                  const ar_conn_opts_t *opts, void *data, ar_conn_t **out);

/*
 * Queues len bytes. Before on_open the bytes wait and are sent once open. Returns 0, AR_EAGAIN
 * when they would take the outgoing buffer over its cap (nothing is queued; on_drain follows),
 * AR_ETOOBIG when len alone exceeds the cap, AR_ESTATE when closing or closed, and AR_ENOMEM,
 * AR_EIO or AR_ETLS after which the connection is closing (on_close reports it).
 */
AR_MUST_CHECK int ar_conn_write(ar_conn_t *c, const void *data, size_t len);
/* Bytes queued and not yet handed to the kernel. */
size_t ar_conn_outgoing(const ar_conn_t *c);
/*
 * Asks for on_drain without writing anything, for a caller that stops producing while the
 * outgoing buffer is more than half full (a relay stops reading its other side). Returns 1 when
 * the buffer is over half its cap (or the connection is not open yet): on_drain follows once it
 * is down to half. Returns 0 when it is at most half full already (nothing to wait for, no
 * callback), AR_ESTATE when closing or closed.
 */
int ar_conn_want_drain(ar_conn_t *c);
/* Stops and resumes on_read deliveries (backpressure towards the peer). */
void ar_conn_pause_read(ar_conn_t *c);
void ar_conn_resume_read(ar_conn_t *c);
/*
 * Closes gracefully: queued bytes (and a TLS close_notify) are flushed for up to the linger
 * time, then the socket closes and on_close(c, 0) runs from the loop. Safe to call twice.
 */
void ar_conn_close(ar_conn_t *c);
/*
 * Closes at once, without flushing: for a loop that is being torn down (a worker's stop
 * callback), where a graceful close would still be pending when the worker closes every handle
 * left. Also ends a graceful close in progress. on_close(c, err) runs from the loop. Safe to call
 * twice and after ar_conn_close.
 */
void ar_conn_abort(ar_conn_t *c, int err);

ar_conn_state_t ar_conn_state(const ar_conn_t *c);
const char *ar_conn_state_name(ar_conn_state_t s);
int ar_conn_is_tls(const ar_conn_t *c);
void ar_conn_set_data(ar_conn_t *c, void *data);
void *ar_conn_get_data(const ar_conn_t *c);
/* The peer's address: 0 or AR_ESYS. */
int ar_conn_peer(const ar_conn_t *c, struct sockaddr_storage *out);

#endif
