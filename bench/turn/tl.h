/*
 * ar-turnload: a TURN load client for the relay benchmark (bench/turn/run.sh).
 *
 * One process drives up to a few thousand allocations (one socket each, so the 20,000 open-file
 * limit per process is respected; run.sh starts several processes for 15k allocations). It is
 * single-threaded over epoll: the machine has two shared cores, so a second client thread would
 * only steal CPU from the server under test. Batched recvmmsg/sendmmsg (UDP) and one write per
 * burst (TCP/TLS) keep the client's own cost per packet small.
 *
 * Modes:
 *   peer   UDP (and TCP) echo that stands in for the remote peer, identical for every server;
 *   turn   allocate, CreatePermission + ChannelBind to the peer, then relay ChannelData;
 *   raw    the same data phase as plain datagrams through ar-bareforward (no TURN at all).
 */
#ifndef AR_BENCH_TL_H
#define AR_BENCH_TL_H

#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define TL_BATCH 64         /* datagrams per recvmmsg/sendmmsg */
#define TL_MAX_PAYLOAD 1400 /* largest payload the data phase sends */
#define TL_STREAM_RX 65536  /* receive buffer of one TCP/TLS allocation in the data phase */
#define TL_STREAM_TX 262144 /* send buffer of one TCP/TLS allocation in the data phase */
#define TL_CTRL_RX 4096     /* receive buffer while only control messages flow */
#define TL_HIST_US 1000000  /* RTT histogram: 1 us buckets up to 1 s (8 MB, allocated once) */
#define TL_PAYLOAD_HDR 16   /* send time (8) + allocation index (4) + sequence (4) */

enum tl_transport { TL_UDP, TL_TCP, TL_TLS };

enum tl_state {
    TL_ST_CONNECTING, /* TCP connect in progress */
    TL_ST_HANDSHAKE,  /* TLS handshake in progress */
    TL_ST_ALLOC,      /* Allocate sent (first without credentials, then with) */
    TL_ST_ALLOCATED,  /* waiting for the permission phase */
    TL_ST_PERM,       /* CreatePermission sent */
    TL_ST_BIND,       /* ChannelBind sent */
    TL_ST_READY,      /* channel bound: data may flow */
    TL_ST_FAILED,
};

typedef struct tl_alloc_s {
    int fd;
    SSL *ssl;
    uint8_t state;
    uint8_t tries;
    uint8_t authed; /* nonce known: requests carry credentials */
    uint8_t want_write;
    uint16_t channel;
    uint8_t tid[12];
    uint64_t sent_ns; /* when the outstanding control request was last sent */
    char nonce[128];
    uint8_t nonce_len;
    /* Stream transports only: what arrived but is not a whole frame yet, what is not sent yet. */
    uint8_t *rx;
    size_t rx_len, rx_cap;
    uint8_t *tx;
    size_t tx_len, tx_cap;
    /* Data phase. */
    uint32_t inflight;
    uint32_t seq;
    uint64_t last_rx_ns;
} tl_alloc_t;

typedef struct tl_stats_s {
    uint64_t sent, recv, lost;
    uint64_t hist[TL_HIST_US + 1];
} tl_stats_t;

typedef struct tl_opts_s {
    enum tl_transport transport;
    struct sockaddr_in server; /* TURN server, or ar-bareforward in raw mode */
    struct sockaddr_in peer;   /* the echo peer as the relay must reach it */
    const char *user, *pass, *secret;
    int allocs;          /* allocations (or raw client sockets) */
    int window;          /* control transactions in flight at once */
    int inflight;        /* data packets in flight per allocation when flat out */
    long rate;           /* offered packets/s in total; 0 = flat out (closed loop) */
    int size;            /* payload bytes per packet */
    double warmup, secs; /* seconds before and of the measurement window */
    double hold;         /* seconds to keep the allocations after setup (RSS test) */
    int server_pid;      /* process whose CPU time and RSS the client samples, 0 = none */
    int no_data;         /* set up the allocations only */
    int alloc_only;      /* Allocate only: no CreatePermission/ChannelBind (profiling) */
    /* Source address of the client sockets. Each client run of run.sh uses another 127.0.0.x,
     * so its 5-tuples never meet an allocation of an earlier run that the server has not yet
     * deleted (that would be 437 Allocation Mismatch, not a measurement). With spread > 1,
     * allocation i uses bind_ip + i % spread: many client addresses, as real clients have, so
     * per-source-address limits on unauthenticated requests apply as they would in production. */
    struct in_addr bind_ip;
    int spread;
} tl_opts_t;

typedef struct tl_ctx_s {
    tl_opts_t o;
    int ep;
    tl_alloc_t *a;
    SSL_CTX *ssl_ctx;
    uint8_t key[16]; /* long-term credential key, once the realm is known */
    char user[256];
    char pass[128];
    char realm[128];
    size_t realm_len;
    int have_realm;
    tl_stats_t *st;
    int measuring;
    uint64_t now_ns;
} tl_ctx_t;

uint64_t tl_now_ns(void);
int tl_parse_addr(const char *s, struct sockaddr_in *out);
/* CPU time (utime + stime) of pid in microseconds, and its RSS in KiB; -1 when unreadable. */
long long tl_proc_cpu_us(int pid);
long tl_proc_rss_kb(int pid);
int tl_set_nonblock(int fd);

/* Peer echo (tl_peer.c). */
int tl_peer_run(const char *listen_addr, double secs);

/* Transport and control phase (tl_ctrl.c). */
int tl_ctrl_init(tl_ctx_t *c);
/* Raw mode: plain UDP sockets connected to ar-bareforward, ready for data at once. */
int tl_raw_open(tl_ctx_t *c);
/* Runs the Allocate (phase 1) or CreatePermission + ChannelBind (phase 2) exchange for all. */
int tl_ctrl_run_phase(tl_ctx_t *c, int phase, double timeout_s);
int tl_stream_flush(tl_ctx_t *c, tl_alloc_t *a);
/* Reads what the socket of a has; for streams appends to a->rx. Returns bytes, 0, or -1 closed. */
int tl_stream_read(tl_ctx_t *c, tl_alloc_t *a);
void tl_ctrl_close_all(tl_ctx_t *c);

/* Data phase (tl_data.c): raw != 0 sends bare datagrams instead of ChannelData. */
int tl_data_run(tl_ctx_t *c, int raw);

#endif
