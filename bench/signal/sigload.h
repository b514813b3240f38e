/*
 * ar_bench_sigload's connections (sigload_conn.c): one client connection in one of four dialects,
 * opened without blocking in one epoll loop per client process for plain-TCP `idle` (so held
 * connections keep answering pings meanwhile), blocking for TLS and the other phases; the
 * commands are in sigload.c.
 */
#ifndef AR_BENCH_SIGLOAD_H
#define AR_BENCH_SIGLOAD_H

#include "anteroom/token.h"
#include "ws/ws.h"

#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

enum { D_ANTEROOM, D_PEERJS, D_WS, D_RAW };

typedef struct sl_opts_s {
    /* ports[1]: 0, or the second port of -p (see sigload.c); ports[2..]: rate -m only */
    int dialect, ports[8], nports, n, procs, tls, upgrade_only, hold_secs, same_node, pairs, rate,
        secs, calls, size, srcbase;
    int spids[64], nspids, bpids[8], nbpids;
    const char *label, *sec;
    const char *kind; /* rate: what each relayed message is, "offer" or "candidate" (-M) */
    double jitter;    /* failover: each lost client reconnects 0.5 s + [0, jitter] s after (-J) */
    int bound_secs;   /* failover: a client not resumed this long after the first close failed */
} sl_opts_t;

extern sl_opts_t sl_o;
extern char **sl_tokens; /* one per room, minted before any measurement */
extern char sl_run[16];  /* makes room and peer names unique per run */
/* What the relayed messages measured: counted while sl_counting; latencies in microseconds. */
extern long long sl_relayed, sl_recv_all, sl_errors;
/* Seconds sl_write spent waiting for room in a full socket buffer: in all, and the longest
 * single wait. The process reads none of its other connections meanwhile. */
extern double sl_write_wait_s, sl_write_wait_max_s;
extern double *sl_lat;
extern size_t sl_nlat, sl_latcap;
extern int sl_counting;

/* The length of anteroom's peer ids (base64url of 128 bits): the others' frames use it too. */
#define SL_PEER_LEN 22

typedef struct sl_conn_s {
    int fd;
    SSL *ssl;
    ar_ws_parser_t p;
    uint8_t *msg;
    uint32_t mlen, mcap;
    uint8_t data_frame;  /* the current frame carries message bytes (not a control frame) */
    uint8_t close_frame; /* the current frame is a close frame: its first two bytes are the code */
    int close_code;      /* the code of the server's close frame, 0: none (yet) */
    char id[48];         /* anteroom: our peer id (welcome); peerjs: our id */
    char to[48];         /* the other member's */
    char resume[64];     /* anteroom: the resume token of the last welcome */
    uint64_t last_seq;
    int unacked;
    int welcome, resumed, joined, open, n_offer, n_answer, n_cand, errors; /* resumed: the
                                                 last welcome said "resumed":true */
} sl_conn_t;

static inline double sl_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline uint64_t sl_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

SSL_CTX *sl_client_ctx(void);
/* Opens one blocking connection from source address src (0: any) to port, and runs the dialect's
 * handshake (anteroom: hello and join of room; peerjs: OPEN). who: 'a' or 'b' of the pair. */
int sl_open(sl_conn_t *c, SSL_CTX *ctx, uint32_t src, int port, long room, char who);
void sl_close(sl_conn_t *c);
void sl_set_nonblock(sl_conn_t *c);
uint32_t sl_src_addr(int proc);
int sl_write(sl_conn_t *c, const void *b, size_t n);
/* Writes the dialect's WebSocket upgrade request for room (c->id set first for PeerJS). */
int sl_send_upgrade(sl_conn_t *c, int port, long room);
int sl_send_frame(sl_conn_t *c, uint8_t op, const char *s, size_t n);
int sl_send(sl_conn_t *c, const char *s);
/* One read: 1 bytes came, 0 nothing yet (non-blocking), -1 the connection is over. */
int sl_pump(sl_conn_t *c);
/* Blocking: reads until *flag reaches want. */
int sl_wait(sl_conn_t *c, const int *flag, int want);
/* Sends an "offer", "answer" (about size bytes) or "candidate" to the partner, in the dialect. */
int sl_send_kind(sl_conn_t *c, const char *kind, size_t size);
void sl_partner(sl_conn_t *a, sl_conn_t *b);

#endif
