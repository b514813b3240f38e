/*
 * The signalling transport: WebSocket (plain or TLS) connections on one epoll loop per worker
 * process, built to hold very many idle connections at a few hundred bytes each.
 *
 * Memory model: the loop owns one read buffer shared by all its connections. An idle connection
 * is one small fixed struct (fd, state, parser state, timer links). Memory is taken only while
 * something is in flight: the bytes of an unfinished upgrade request, an unfinished or fragmented
 * message, a control frame split over reads, or output the peer has not read yet. Each of these
 * is freed as soon as it is done. With TLS, the TLS library's per-connection state is added (see
 * tls.h; chosen by measurement, docs/architecture.md).
 *
 * Threads: none. A process runs one loop; several processes share a port with SO_REUSEPORT
 * (ar_sn_loop_listen), so the kernel spreads connections with no hand-off.
 *
 * Callbacks (ar_sn_handler_t) run on the loop. Inside any of them the application may call
 * ar_sn_send() and ar_sn_close() on any connection of the same loop. Either may close the
 * connection at once (a send to a slow reader or a dead socket): close_cb then fires inside that
 * call. The connection's memory, and free_cb, wait until the loop has finished the current batch
 * of events and the tick, so a caller still holding the connection (or what it attached with
 * ar_sn_conn_set_data) after a send or a close may keep using it: a send then returns
 * AR_ESTATE and a close does nothing. close_cb fires once for every connection whose open_cb
 * fired, and free_cb once after it.
 *
 * SIGPIPE: our own writes use MSG_NOSIGNAL, but the TLS libraries write() to the socket, so a
 * process serving TLS must ignore SIGPIPE (a peer that vanishes mid-alert would kill it).
 */
#ifndef ANTEROOM_SIGNAL_NET_H
#define ANTEROOM_SIGNAL_NET_H

#include "anteroom/err.h"
#include "ws/ws.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct ar_sn_loop_s ar_sn_loop_t;
typedef struct ar_sn_conn_s ar_sn_conn_t;
typedef struct ar_sn_tls_ctx_s ar_sn_tls_ctx_t;

typedef struct ar_sn_conf_s {
    const ar_ws_upgrade_conf_t *upgrade; /* Origin allow-list, subprotocol; must outlive the loop */
    uint32_t max_message;                /* cap on one message's payload; 0: 64 KiB */
    uint32_t max_outgoing;        /* bytes queued for a peer before it is closed as a slow reader;
                                     0: 256 KiB */
    uint16_t handshake_timeout_s; /* TLS + upgrade must finish within this; 0: 10 s */
    uint16_t idle_timeout_s;      /* closed after this long without a byte; 0: 60 s, max 240 */
    ar_sn_tls_ctx_t *tls;         /* NULL for plain WebSocket; borrowed, must outlive the loop */
    uint16_t too_big_code;        /* close code for a message over max_message; 0: 1009 (an
                                     application may name its own, e.g. 4008) */
    /* Bytes of application memory that come with each connection, zeroed, 8-byte aligned, right
     * after the library's own (ar_sn_conn_area): an application's per-connection state in the
     * same allocation, which saves a malloc chunk and a pointer per held connection. 0: one
     * pointer, the one ar_sn_conn_set_data and ar_sn_conn_data keep. At most 1,024. */
    uint16_t conn_area;
} ar_sn_conf_t;
/* The library's bytes of a connection, before its area: an application sizing its state to a
 * malloc chunk counts these with it. */
#define AR_SN_CONN_SIZE 48

typedef struct ar_sn_handler_s {
    /*
     * A TCP connection was accepted from peer, before TLS and the upgrade: the place for limits
     * on connections that may never upgrade (a per-address cap). Returns a tag (0 to 65535) the
     * connection keeps (ar_sn_conn_tag), or a negative value to refuse it: the socket is closed
     * at once and no other callback fires for it. May be NULL (every tag 0).
     */
    int (*accept_cb)(ar_sn_conn_t *c, const struct sockaddr_storage *peer, void *data);
    /*
     * The socket of a connection whose tag is not 0 was closed, whatever its state (after
     * close_cb if it was open; also inside ar_sn_loop_free): undo what accept_cb (or a later
     * ar_sn_conn_set_tag) counted. Fires once per such connection. May be NULL.
     */
    void (*release_cb)(ar_sn_conn_t *c, uint16_t tag, void *data);
    /* The upgrade succeeded (101 sent). up->path is the request target. Non-zero: close 1008. */
    int (*open_cb)(ar_sn_conn_t *c, const ar_ws_upgrade_t *up, void *data);
    /*
     * A complete text or binary message. msg points into loop-owned memory valid only during
     * the call; the payload is already unmasked and (text) checked as UTF-8.
     */
    void (*message_cb)(ar_sn_conn_t *c, uint8_t opcode, const uint8_t *msg, size_t len, void *data);
    /* The connection is gone (code: the close code sent or received, 1006 when none). */
    void (*close_cb)(ar_sn_conn_t *c, uint16_t code, void *data);
    /*
     * The connection is about to be freed (after close_cb, outside any other callback of this
     * loop's batch): the application frees what it attached with ar_sn_conn_set_data, or what
     * its area points to, here; the area itself goes with the connection after this call.
     * ar_sn_conn_data() still works; sending or closing does nothing. May be NULL.
     */
    void (*free_cb)(ar_sn_conn_t *c, void *data);
    /*
     * A ping or a pong arrived on an open connection (opcode AR_WS_OP_PING or _PONG): control
     * frames cost the loop as much as messages, so the application counts them against its
     * rate limit. 0: a ping is answered with a pong; non-zero: it is not (the application may
     * also close the connection here). May be NULL (every ping answered).
     */
    int (*control_cb)(ar_sn_conn_t *c, uint8_t opcode, void *data);
    /*
     * After ar_sn_conn_notify_writable(c): the connection has no output queued and its socket
     * takes more (EPOLLOUT). Fires once per request, from the loop, never inside a send. For a
     * sender with more to say than max_outgoing allows at once (a long queue snapshot): it
     * sends while ar_sn_conn_outgoing() is low, asks, and goes on here. If nothing is queued
     * after it, the peer's input is read next (reading is off while output is queued), so the
     * peer is heard between the sender's turns. May be NULL.
     */
    void (*writable_cb)(ar_sn_conn_t *c, void *data);
    void *data;
} ar_sn_handler_t;

/* A readable callback for an extra descriptor watched by the loop (e.g. an eventfd a bus
 * thread writes to hand messages over to the loop). */
typedef void (*ar_sn_watch_cb)(int fd, void *data);

/* Creates a loop (epoll, eventfd for stop). conf and handler are copied. */
AR_MUST_CHECK int ar_sn_loop_new(const ar_sn_conf_t *conf, const ar_sn_handler_t *handler,
                                 ar_sn_loop_t **out);
/*
 * Listens on ip:port (IPv4 or IPv6 literal) with SO_REUSEPORT so other worker processes can
 * listen on the same port. port 0 picks one; *bound (may be NULL) gets the port. A loop may
 * listen on several addresses (up to 4).
 */
AR_MUST_CHECK int ar_sn_loop_listen(ar_sn_loop_t *l, const char *ip, uint16_t port,
                                    uint16_t *bound);
/*
 * Runs until ar_sn_loop_stop(). Returns 0, or AR_ESYS when epoll fails. On return it frees the
 * TLS library's per-thread caches of the calling thread (run a loop on one thread only).
 */
AR_MUST_CHECK int ar_sn_loop_run(ar_sn_loop_t *l);
/*
 * Watches fd for readability (level-triggered) on the loop; cb runs on the loop. Up to 4
 * watches; AR_ERANGE beyond. The loop does not close fd.
 */
AR_MUST_CHECK int ar_sn_loop_watch(ar_sn_loop_t *l, int fd, ar_sn_watch_cb cb, void *data);
/* Runs cb on the loop about once a second (application timers: keepalive, grace periods). */
void ar_sn_loop_set_tick(ar_sn_loop_t *l, void (*cb)(uint32_t now_s, void *data), void *data);
/* cb runs before every wait for events and returns the most milliseconds the loop may wait
 * before running it again, or -1 for no limit: work batched across events (bus.c) goes out
 * from here. */
void ar_sn_loop_set_idle(ar_sn_loop_t *l, int (*cb)(void *data), void *data);
/* Seconds since the loop started (the clock of the tick). */
uint32_t ar_sn_loop_now(const ar_sn_loop_t *l);
/* CLOCK_MONOTONIC_COARSE in milliseconds, read when the current turn's events arrived: per-message
 * clocks (rate limits) read this instead of the clock (one read per wake-up, not per message). */
uint64_t ar_sn_loop_now_ms(const ar_sn_loop_t *l);
/* Makes ar_sn_loop_run return; async-signal-safe (one write to an eventfd). */
void ar_sn_loop_stop(ar_sn_loop_t *l);
/*
 * For tests and fuzzers that drive a loop without a listener or a thread (a socketpair per
 * client, fuzz/signal_bus/). adopt: fd, a connected non-blocking stream socket, is taken as if
 * accepted (accept_cb with its peer address, then TLS and the upgrade); on the loop's thread.
 * The loop owns fd whatever the outcome: 0, AR_EPERM (accept_cb refused it), AR_ENOMEM or
 * AR_ESYS, fd closed. turn: one batch of what is ready now (no wait), its timers and the frees
 * it leaves, as ar_sn_loop_run does between waits; its return value.
 */
AR_MUST_CHECK int ar_sn_loop_adopt(ar_sn_loop_t *l, int fd);
AR_MUST_CHECK int ar_sn_loop_turn(ar_sn_loop_t *l);
/*
 * An open plain connection another process of this machine moved here (SCM_RIGHTS; anteroom-
 * signal hands a resume to the worker that owns its session, move.c): fd becomes one of this
 * loop's, open at once, with tag as accept_cb would have given it (release_cb undoes it, even
 * when this fails: then with c NULL). open_cb fires with an upgrade that names nothing (path
 * "/", no X-Forwarded-For: the real one was checked where it arrived), then message_cb with msg,
 * a text message the other process read and did not handle (len 0: none). The loop owns fd
 * whatever the outcome: 0, AR_ENOMEM or AR_ESYS (fd closed).
 */
AR_MUST_CHECK int ar_sn_loop_adopt_open(ar_sn_loop_t *l, int fd, uint16_t tag, const uint8_t *msg,
                                        size_t len);
/* Closes every connection (close_cb fires for open ones) and frees the loop. NULL is fine. */
void ar_sn_loop_free(ar_sn_loop_t *l);
/* Connections currently held, in any state. */
size_t ar_sn_loop_conns(const ar_sn_loop_t *l);

/*
 * Sends one unfragmented message (TEXT or BINARY) or a PING/PONG. What the socket does not take
 * at once is queued; AR_EQUOTA when the queue would pass max_outgoing, and the connection is then
 * closed as a slow reader (1008 cannot reach it, so it is simply dropped). AR_ESTATE when the
 * connection is not open. While output is queued the connection is not read (backpressure).
 */
AR_MUST_CHECK int ar_sn_send(ar_sn_conn_t *c, uint8_t opcode, const void *data, size_t len);
/*
 * ar_sn_send for a payload its caller built AR_SN_SEND_ROOM bytes into its buffer: the frame's
 * header is written into that room, right before the payload, so that header and payload go out
 * as one write without first being copied together. buf[0..AR_SN_SEND_ROOM) is overwritten;
 * the payload is buf[AR_SN_SEND_ROOM..AR_SN_SEND_ROOM + len).
 */
#define AR_SN_SEND_ROOM 14 /* AR_WS_MAX_HEADER */
AR_MUST_CHECK int ar_sn_send_room(ar_sn_conn_t *c, uint8_t opcode, uint8_t *buf, size_t len);
/* Bytes queued on c for its peer (written when the socket takes them; ar_sn_send fails past
 * max_outgoing): 0 while everything sent went straight to the socket. */
size_t ar_sn_conn_outgoing(const ar_sn_conn_t *c);
/* Asks for one writable_cb on c once its queued output is written and the socket takes more
 * (at once, on the loop's next turn, when nothing is queued). AR_ESTATE when c is not open,
 * AR_EINVAL without a writable_cb. Repeated requests before it fires make one call. */
AR_MUST_CHECK int ar_sn_conn_notify_writable(ar_sn_conn_t *c);
/* Starts a clean close: a close frame with this code, then the TCP close. Idempotent. */
void ar_sn_close(ar_sn_conn_t *c, uint16_t code);
/* c's application memory (conf.conn_area bytes; zeroed when c was accepted; freed with c, after
 * free_cb), and its size. */
void *ar_sn_conn_area(ar_sn_conn_t *c);
size_t ar_sn_conn_area_size(const ar_sn_conn_t *c);
/* A pointer kept in the first bytes of c's area: for applications that keep their state
 * elsewhere (and ask for no conn_area of their own, or a larger one that starts with it). */
void ar_sn_conn_set_data(ar_sn_conn_t *c, void *data);
/* The peer's address (getpeername); AR_ESYS when the socket has none. For per-address caps:
 * never log it except through AR_LF_ADDR. */
AR_MUST_CHECK int ar_sn_conn_peer(const ar_sn_conn_t *c, struct sockaddr_storage *ss);
void *ar_sn_conn_data(const ar_sn_conn_t *c);
/* The tag accept_cb gave the connection (0 without accept_cb). */
uint16_t ar_sn_conn_tag(const ar_sn_conn_t *c);
/* Gives a connection that has tag 0 the tag of a count known only later (after the upgrade,
 * behind a proxy): release_cb then undoes it as it does accept_cb's, so a count has one
 * release path. A connection that already has a tag keeps it. */
void ar_sn_conn_set_tag(ar_sn_conn_t *c, uint16_t tag);
/* 1 when bytes from the peer wait in the socket, not yet read (FIONREAD): an idle rule judged
 * by an overloaded loop asks before closing a client whose answer is already there. */
int ar_sn_conn_input_waiting(const ar_sn_conn_t *c);

/*
 * Moving c to another process (ar_sn_loop_adopt_open there). Called from message_cb: c's
 * descriptor when nothing of its stream would stay behind (a plain connection with no output
 * queued and nothing read after the message being delivered), else -1. Once the descriptor has
 * gone (SCM_RIGHTS), ar_sn_conn_moved drops c here without a close frame or a shutdown: only our
 * descriptor is closed, and close_cb fires with code (never sent).
 */
int ar_sn_conn_movable(const ar_sn_conn_t *c);
void ar_sn_conn_moved(ar_sn_conn_t *c, uint16_t code);

/* ---- TLS (one file per library: tls_openssl.c, tls_wolfssl.c, tls_boringssl.c) ---- */

typedef enum {
    AR_SN_TLS_OPENSSL = 0,
    AR_SN_TLS_WOLFSSL = 1,   /* AR_EUNSUPPORTED when built without libwolfssl-dev */
    AR_SN_TLS_BORINGSSL = 2, /* AR_EUNSUPPORTED without android-libboringssl-dev */
} ar_sn_tls_lib_t;

/* The library the daemon's listener uses: chosen at build time (CMake AR_SIGNAL_TLS). */
#ifndef AR_SN_TLS_DEFAULT
#define AR_SN_TLS_DEFAULT AR_SN_TLS_OPENSSL
#endif

/*
 * A server TLS context: TLS 1.2+, certificate chain and key from PEM files, no session cache
 * and no tickets (idle connections must not pay for resumption state), buffers released while
 * idle where the library can. Returns AR_ETLS for bad files.
 */
AR_MUST_CHECK int ar_sn_tls_ctx_new(ar_sn_tls_lib_t lib, const char *cert_pem, const char *key_pem,
                                    ar_sn_tls_ctx_t **out);
void ar_sn_tls_ctx_free(ar_sn_tls_ctx_t *ctx);

#endif
