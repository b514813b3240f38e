/*
 * Internals of the signalling transport shared by loop.c, conn.c and the TLS files. Sizes here
 * are the point of the design: keep ar_sn_conn_s small (see net.h's memory model).
 */
#ifndef ANTEROOM_SIGNAL_NET_INTERNAL_H
#define ANTEROOM_SIGNAL_NET_INTERNAL_H

#include "net.h"

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The shared read buffer: one per loop, so a connection never owns a read buffer. */
#define AR__SN_READ_BUF (64 * 1024)
/* Timer wheel of one-second slots; every timeout must be shorter than the wheel. */
#define AR__SN_WHEEL 256
#define AR__SN_MAX_LISTEN 4
/* How long a closing connection waits for the peer's FIN after ours. */
#define AR__SN_LINGER_S 2

typedef enum {
    AR__SN_TLS_HS = 0, /* TLS handshake */
    AR__SN_HTTP,       /* reading the upgrade request */
    AR__SN_OPEN,       /* WebSocket frames both ways */
    AR__SN_CLOSING,    /* our close frame (or refusal) is being flushed; input discarded */
    AR__SN_LINGER,     /* FIN sent; waiting for the peer's, input discarded */
    AR__SN_DEAD,       /* on the loop's dead list, freed after the current batch */
} ar__sn_state_t;

/* What is in flight on a connection; allocated on demand, freed as soon as it is empty. */
typedef struct ar__sn_in_s {
    uint8_t *data; /* the upgrade request, or the message being assembled */
    uint32_t len, cap;
    uint8_t ctl_len; /* a control frame split over reads */
    uint8_t has_parser;
    uint8_t ctl[AR_WS_MAX_CONTROL];
    /* The frame parser, while has_parser: only while a header, a frame or a fragmented message
     * is split across reads. Between messages a connection holds none (conn.c on_frames). */
    ar_ws_parser_t parser;
} ar__sn_in_t;

typedef struct ar__sn_out_s {
    uint32_t off, len, cap;
    uint8_t data[]; /* bytes [off, len) not yet written */
} ar__sn_out_t;

/* What a connection holds beyond an idle plain one, behind one pointer: the TLS library's
 * connection (for as long as it lives), and what is in flight (while it is). Allocated at the
 * first of them (ar__sn_ext), freed once none is left (ar__sn_ext_trim). */
typedef struct ar__sn_ext_s {
    void *tls; /* the TLS library's connection, or NULL */
    ar__sn_in_t *in;
    ar__sn_out_t *out;
} ar__sn_ext_t;

struct ar_sn_conn_s {
    int fd;
    uint8_t state; /* ar__sn_state_t */
    uint8_t flags; /* AR__SN_F_* */
    uint16_t close_code;
    uint32_t deadline;     /* loop seconds */
    uint8_t deadline_slot; /* the wheel slot it is filed in (deadline may have moved on) */
    uint8_t xflags;        /* AR__SN_X_*: what was a padding byte before tag */
    uint16_t tag;          /* what accept_cb returned; sits in what was padding before tw_next */
    ar_sn_conn_t *tw_next, *tw_prev;
    ar_sn_loop_t *loop;
    ar__sn_ext_t *ext; /* NULL for an idle plain connection */
    /* then the application's area (conf.conn_area bytes, ar_sn_conn_area) */
};
/* One per held connection, with the application's area after it in the same allocation: 48
 * bytes, so that an application's 72 bytes of state (anteroom-signal's ar__sig_conn_t) make 120
 * and glibc's 128-byte chunk, where the two apart took a 64-byte and an 80-byte one. */
_Static_assert(sizeof(struct ar_sn_conn_s) <= AR_SN_CONN_SIZE, "a connection is 48 bytes");
_Static_assert(sizeof(struct ar_sn_conn_s) % 8 == 0, "the area after it is 8-byte aligned");

/* The length of a server frame's header (no mask) for a payload of len bytes, as
 * ar_ws_frame_header writes it (RFC 6455 5.2: a 7, 16 or 64-bit length): ar_sn_send_room writes
 * the header straight in front of the payload. */
static inline size_t ar__sn_header_len(uint64_t len)
{
    return len < 126 ? 2 : len <= 0xffff ? 4 : 10;
}

static inline void *ar__sn_tls(const ar_sn_conn_t *c)
{
    return c->ext ? c->ext->tls : NULL;
}
static inline ar__sn_in_t *ar__sn_in(const ar_sn_conn_t *c)
{
    return c->ext ? c->ext->in : NULL;
}
static inline ar__sn_out_t *ar__sn_out(const ar_sn_conn_t *c)
{
    return c->ext ? c->ext->out : NULL;
}
/*
 * recv, send and epoll_wait as bare system calls: -1 with errno set on failure, as glibc's. The
 * process has threads (libnats'), so glibc's wrappers of these cancellation points turn the
 * caller's asynchronous cancellation on and off around each call (__pthread_enable_asynccancel
 * and __pthread_disable_asynccancel: about 30 instructions a call, three calls a relayed
 * message). Nothing cancels a loop's thread, so the bare call does the same work.
 */
static inline ssize_t ar__sn_recv(int fd, void *buf, size_t len)
{
    return syscall(SYS_recvfrom, fd, buf, len, 0, NULL, NULL);
}
static inline ssize_t ar__sn_send(int fd, const void *buf, size_t len)
{
    return syscall(SYS_sendto, fd, buf, len, MSG_NOSIGNAL, NULL, 0);
}
/* epoll_pwait without a signal mask is epoll_wait (epoll_pwait(2)); every Linux port has it. */
static inline int ar__sn_epoll_wait(int epfd, struct epoll_event *evs, int max, int timeout)
{
    return (int)syscall(SYS_epoll_pwait, epfd, evs, max, timeout, NULL, (size_t)(_NSIG / 8));
}

/* c's ext, allocated (empty) if it had none; NULL when out of memory. */
ar__sn_ext_t *ar__sn_ext(ar_sn_conn_t *c);
/* Frees c's ext when it holds nothing any more. */
void ar__sn_ext_trim(ar_sn_conn_t *c);

enum {
    AR__SN_F_OPENED = 1,   /* open_cb fired: close_cb is owed */
    AR__SN_F_EPOLLOUT = 2, /* registered for writability */
    AR__SN_F_NOREAD = 4,   /* reading paused (backpressure) */
    AR__SN_F_CTL = 8,      /* inside a control frame */
    AR__SN_F_BINARY = 16,  /* the open data message is binary */
    AR__SN_F_WANTW = 32,   /* the TLS library wants writability to make progress */
    AR__SN_F_INWHEEL = 64, /* filed in the timer wheel */
    AR__SN_F_FREECB = 128, /* close_cb fired: free_cb is owed when it is freed */
};

enum {
    AR__SN_X_WRITABLE = 1, /* writable_cb asked for (ar_sn_conn_notify_writable) */
};

typedef struct ar__sn_tls_ops_s {
    int (*ctx_new)(const char *cert, const char *key, void **ctx);
    void (*ctx_free)(void *ctx);
    int (*conn_new)(void *ctx, int fd, void **tls);
    void (*conn_free)(void *tls);
    /* These return >= 0 on progress (bytes, or 0 for a finished handshake / EOF on read), or
     * AR_EAGAIN with *want_write saying which readiness to wait for, or AR_ETLS. */
    int (*handshake)(void *tls, int *want_write);
    int (*read)(void *tls, uint8_t *buf, size_t cap, int *want_write);
    int (*write)(void *tls, const uint8_t *buf, size_t len, int *want_write);
    int (*pending)(void *tls);
    /* Called on the loop's thread when ar_sn_loop_run returns: frees per-thread caches. */
    void (*thread_end)(void);
} ar__sn_tls_ops_t;

struct ar_sn_tls_ctx_s {
    const ar__sn_tls_ops_t *ops;
    void *ctx;
};

extern const ar__sn_tls_ops_t ar__sn_tls_openssl;
/* Connections whose TLS 1.3 state OpenSSL handed over after the handshake (tls_openssl.c). */
extern _Atomic unsigned long ar__sn_tls_detached;
extern const ar__sn_tls_ops_t ar__sn_tls_wolfssl; /* NULL ops when not built */
/* Defined in the separately loaded BoringSSL module only; tls.c finds it with dlsym. */
extern const ar__sn_tls_ops_t ar__sn_tls_boringssl;

struct ar_sn_loop_s {
    ar_sn_conf_t conf;
    ar_sn_handler_t h;
    int epfd, stopfd;
    int listen_fd[AR__SN_MAX_LISTEN];
    int nlisten;
    struct {
        int fd;
        ar_sn_watch_cb cb;
        void *data;
    } watch[AR__SN_MAX_LISTEN];
    int nwatch;
    uint32_t last_tick;
    void (*tick_cb)(uint32_t now_s, void *data);
    void *tick_data;
    int (*idle_cb)(void *data); /* before each wait: the most ms to wait, or -1 */
    void *idle_data;
    int stop;
    uint32_t now;       /* seconds since the loop started */
    uint32_t wheel_pos; /* next second the wheel will process */
    uint64_t start_ms;
    uint64_t now_ms; /* mono_ms() when the current turn's events arrived */
    /* While message_cb runs: bytes of the connection's stream read after that message (the rest
     * of its buffer, and behind an upgrade request the rest of that read), which a connection
     * moved elsewhere would lose (ar_sn_conn_movable). msg_after: that second part. */
    size_t msg_rest, msg_after;
    size_t nconns;
    /* Descriptor exhaustion (loop.c fd_exhausted): a spare descriptor given up to accept and
     * close a connection the table has no room for, the listeners paused when even that fails,
     * and the warning's own rate limit. */
    int spare_fd;
    int accept_paused;
    uint64_t accept_resume_ms;
    uint64_t fd_log_ms;
    uint64_t fd_refused; /* connections refused since the last warning */
    ar_sn_conn_t *wheel[AR__SN_WHEEL];
    ar_sn_conn_t *dead; /* freed after each epoll batch */
    uint8_t rbuf[AR__SN_READ_BUF];
    uint8_t wbuf[AR__SN_READ_BUF]; /* scratch for framing small sends in one write */
    ar_ws_parser_t parser0;        /* a fresh parser, copied for each read (conn.c parser_take) */
};

/* loop.c */
void ar__sn_timer_set(ar_sn_conn_t *c, uint32_t seconds);
int ar__sn_epoll_update(ar_sn_conn_t *c);
void ar__sn_kill(ar_sn_conn_t *c, uint16_t code);
/* conn.c */
void ar__sn_conn_event(ar_sn_conn_t *c, uint32_t events);
void ar__sn_conn_timeout(ar_sn_conn_t *c);
void ar__sn_conn_free(ar_sn_conn_t *c);

#endif
