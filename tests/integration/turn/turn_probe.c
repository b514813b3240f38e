/*
 * turn_probe: a TURN client for hostile-input tests. It authenticates like a normal client (long-
 * term credentials, or a TURN REST username and password computed by the caller), then performs
 * one action and prints the STUN error code of each step on its own line ("allocate 0" for
 * success, "permission 403", ...), so that shell tests can assert exact answers.
 *
 *   turn_probe -s 127.0.0.1:3478 -u alice -w secret [-t] [-p PEER] [-P PEERPORT] [-H SECONDS]
 *              [-b SOURCE] ACTION [ARG]
 *
 * -b binds the client side to a source address (tests spread their many probes over
 * 127.0.1.0/24 so that a per-source limit on unauthenticated requests does not decide them).
 *
 * Actions (each starts with an authenticated Allocate; an IPv6 peer asks for an IPv6 relay):
 *   allocate [N]   N allocations from N sockets, all held open (quota tests), for -H SECONDS
 *                  more after the last one
 *   permission     CreatePermission for PEER
 *   channel        ChannelBind of 0x4000 to PEER:PEERPORT
 *   send           CreatePermission, a Send indication, ChannelBind and ChannelData to
 *                  PEER:PEERPORT while listening on [::]:PEERPORT; prints "delivered N", the
 *                  number of datagrams that reached the listener
 *   connect        (-t) a TCP allocation (RFC 6062) and Connect to PEER:PEERPORT
 *   tcplife MODE   (-t) RFC 6062 life cycle: a TCP allocation, Connect to PEER:PEERPORT (a TCP
 *                  echo), then by MODE: "refresh0" binds a data connection, checks the echo of
 *                  "hello" through it ("echo 0"), deletes the allocation (Refresh 0) and prints
 *                  "data-closed MS" when the server closed the data connection within 5 s
 *                  ("data-open" if not); "ctrlclose" does the same but closes the control
 *                  connection instead; "parked" deletes the allocation without binding;
 *                  "hold" binds, checks the echo and then holds everything open for -H SECONDS;
 *                  "bulk" binds, then echoes 16 MiB while not reading for 1 s (the relay's
 *                  backpressure), printing "bulk GOT of 16777216"
 *   dual           an Allocate with ADDITIONAL-ADDRESS-FAMILY IPv6 (RFC 8656 dual allocation):
 *                  prints "relayed IP" for each XOR-RELAYED-ADDRESS and "address-error FAM CODE"
 *                  for an ADDRESS-ERROR-CODE; then for each relayed family a permission and a
 *                  Send indication to the loopback address of that family at PEERPORT, where a
 *                  dual-stack listener prints "delivered SRC relayed=1" (1: the datagram came from
 *                  that family's relayed address) and answers, and the client prints
 *                  "data-from IP" for each Data indication that comes back
 *   bigframe       (-t) payloads at the size limits over a stream: ChannelData with 65000 bytes
 *                  to PEER:PEERPORT, where the probe listens itself and answers with a 65000-byte
 *                  datagram that must come back as ChannelData; then 65535 bytes (over the UDP
 *                  limit, so refused) and 1000 bytes (still relayed). Prints "bigframe ok", or
 *                  "bigframe fail: WHY"
 *   burst [ROUNDS] (UDP) bursts of datagrams of mixed sizes as ChannelData to PEER:PEERPORT,
 *                  where the probe listens itself and sends them back; each must arrive whole
 *                  and in order both ways (probe_burst.c). Prints "burst ok ..." or
 *                  "burst fail: WHY"
 *   stale SECONDS  waits, then Refresh with the old nonce ("refresh-stale 438" expected), then
 *                  with the nonce the server sent back ("refresh 0")
 *
 * Exit status: 0 when every step got an answer (whatever its code), 1 on a timeout, a malformed
 * answer or a success response with a wrong MESSAGE-INTEGRITY, 2 on bad usage.
 */
#include "anteroom/rand.h"
#include "probe_burst.h"
#include "stun/stun.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PROBE_MAX_ALLOCS 64
#define PROBE_TIMEOUT_MS 3000
#define PROBE_RTO_MS 500
#define PROBE_CHANNEL 0x4000

typedef struct probe_s {
    int fd;
    int tcp;
    uint8_t rx[8192]; /* stream reassembly */
    size_t rx_len;
    uint8_t key[16];
    int have_key;
    char realm[256];
    size_t realm_len;
    uint8_t nonce[256];
    size_t nonce_len;
} probe_t;

/* What a request carries besides credentials; zero means absent. */
typedef struct req_s {
    uint16_t method;
    uint8_t transport; /* REQUESTED-TRANSPORT protocol number */
    uint8_t family;    /* REQUESTED-ADDRESS-FAMILY: 1 IPv4, 2 IPv6 */
    int lifetime;      /* LIFETIME, when >= 0 */
    const struct sockaddr *peer;
    uint16_t channel;
    uint32_t cid;       /* CONNECTION-ID (ConnectionBind) */
    uint8_t additional; /* ADDITIONAL-ADDRESS-FAMILY: 2 IPv6 (1, IPv4, is refused) */
} req_t;

static const char *g_user;
static const char *g_pass;
static struct sockaddr_storage g_server;
static struct sockaddr_storage g_source;     /* ss_family 0: let the kernel choose */
static uint32_t g_last_cid;                  /* CONNECTION-ID of the last success answer */
static struct sockaddr_storage g_relayed[2]; /* XOR-RELAYED-ADDRESSes of the last success */
static int g_nrelayed;
static int g_addr_err_family, g_addr_err_code; /* ADDRESS-ERROR-CODE of the last success */

static socklen_t sa_len(const struct sockaddr *sa)
{
    return sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

/* "1.2.3.4:5", "[::1]:5" or, with port_opt, a bare address that gets port dflt. */
static int parse_addr(const char *s, int port_opt, uint16_t dflt, struct sockaddr_storage *out)
{
    char host[128];
    const char *port = NULL;
    memset(out, 0, sizeof(*out));
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (end == NULL || (size_t)(end - s - 1) >= sizeof(host))
            return -1;
        memcpy(host, s + 1, (size_t)(end - s - 1));
        host[end - s - 1] = '\0';
        if (end[1] == ':')
            port = end + 2;
    } else {
        const char *colon = strchr(s, ':');
        if (colon != NULL && strchr(colon + 1, ':') == NULL) { /* IPv4 with a port */
            if ((size_t)(colon - s) >= sizeof(host))
                return -1;
            memcpy(host, s, (size_t)(colon - s));
            host[colon - s] = '\0';
            port = colon + 1;
        } else {
            size_t n = strlen(s);
            if (n >= sizeof(host))
                return -1;
            memcpy(host, s, n + 1);
        }
    }
    long p = dflt;
    if (port != NULL) {
        char *end;
        p = strtol(port, &end, 10);
        if (*end != '\0' || p < 0 || p > 65535)
            return -1;
    } else if (!port_opt) {
        return -1;
    }
    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)p);
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)p);
    } else {
        return -1;
    }
    return 0;
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static int probe_open(probe_t *p, int tcp)
{
    memset(p, 0, sizeof(*p));
    p->tcp = tcp;
    p->fd = socket(g_server.ss_family, tcp ? SOCK_STREAM : SOCK_DGRAM, 0);
    if (p->fd >= 0 && g_source.ss_family != 0 &&
        bind(p->fd, (struct sockaddr *)&g_source, sa_len((void *)&g_source)) != 0) {
        perror("turn_probe: bind");
        return -1;
    }
    if (p->fd < 0 || connect(p->fd, (struct sockaddr *)&g_server, sa_len((void *)&g_server)) != 0) {
        perror("turn_probe: connect");
        return -1;
    }
    return 0;
}

static int send_all(probe_t *p, const uint8_t *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(p->fd, buf, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/*
 * Reads the next STUN message into out (copied to frame, which msg then points into), skipping
 * ChannelData. Returns 1 for a message, 0 on timeout, -1 on a closed or garbled connection.
 */
static int recv_msg(probe_t *p, long deadline, uint8_t *frame, size_t cap, ar_stun_msg_t *msg)
{
    for (;;) {
        if (p->tcp && p->rx_len > 0) {
            size_t need = 0;
            int kind = ar_stun_classify(p->rx, p->rx_len, &need);
            if (kind == 0)
                return -1;
            if (need > 0 && need <= p->rx_len) {
                int ok = 0;
                if (kind == 1 && need <= cap) {
                    memcpy(frame, p->rx, need);
                    ok = ar_stun_parse(frame, need, msg) == 0;
                }
                memmove(p->rx, p->rx + need, p->rx_len - need);
                p->rx_len -= need;
                if (kind == 1 && !ok)
                    return -1;
                if (ok)
                    return 1;
                continue;
            }
            if (need > sizeof(p->rx))
                return -1;
        }
        long left = deadline - now_ms();
        if (left <= 0)
            return 0;
        struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
        int r = poll(&pfd, 1, (int)left);
        if (r == 0)
            return 0;
        if (r < 0)
            return -1;
        if (p->tcp) {
            ssize_t n = recv(p->fd, p->rx + p->rx_len, sizeof(p->rx) - p->rx_len, 0);
            if (n <= 0)
                return -1;
            p->rx_len += (size_t)n;
        } else {
            ssize_t n = recv(p->fd, frame, cap, 0);
            if (n < 0)
                return errno == ECONNREFUSED ? -1 : 0;
            if (ar_stun_classify(frame, (size_t)n, NULL) == 1 &&
                ar_stun_parse(frame, (size_t)n, msg) == 0)
                return 1;
        }
    }
}

static int build(probe_t *p, const req_t *r, const uint8_t tid[12], uint8_t *buf, size_t cap,
                 int auth)
{
    ar_stun_builder_t b;
    ar_stun_build_start(&b, buf, cap, r->method, AR_STUN_REQUEST, tid);
    if (r->transport != 0) {
        uint8_t v[4] = {r->transport, 0, 0, 0};
        ar_stun_build_attr(&b, AR_TURN_ATTR_REQUESTED_TRANSPORT, v, sizeof(v));
    }
    if (r->family != 0) {
        uint8_t v[4] = {r->family, 0, 0, 0};
        ar_stun_build_attr(&b, AR_TURN_ATTR_REQUESTED_ADDRESS_FAMILY, v, sizeof(v));
    }
    if (r->additional != 0) {
        uint8_t v[4] = {r->additional, 0, 0, 0};
        ar_stun_build_attr(&b, AR_TURN_ATTR_ADDITIONAL_ADDRESS_FAMILY, v, sizeof(v));
    }
    if (r->lifetime >= 0)
        ar_stun_build_u32(&b, AR_TURN_ATTR_LIFETIME, (uint32_t)r->lifetime);
    if (r->channel != 0)
        ar_stun_build_u32(&b, AR_TURN_ATTR_CHANNEL_NUMBER, (uint32_t)r->channel << 16);
    if (r->peer != NULL)
        ar_stun_build_xor_addr(&b, AR_TURN_ATTR_XOR_PEER_ADDRESS, r->peer);
    if (r->cid != 0)
        ar_stun_build_u32(&b, AR_TURN_ATTR_CONNECTION_ID, r->cid);
    if (auth && p->have_key) {
        ar_stun_build_attr(&b, AR_STUN_ATTR_USERNAME, g_user, strlen(g_user));
        ar_stun_build_attr(&b, AR_STUN_ATTR_REALM, p->realm, p->realm_len);
        ar_stun_build_attr(&b, AR_STUN_ATTR_NONCE, p->nonce, p->nonce_len);
        ar_stun_build_integrity(&b, p->key, sizeof(p->key));
    }
    ar_stun_build_fingerprint(&b);
    return ar_stun_build_finish(&b);
}

/* Keeps the REALM and NONCE of a 401 or 438 answer for the next request. */
static void take_challenge(probe_t *p, const ar_stun_msg_t *m)
{
    const ar_stun_attr_t *realm = ar_stun_find(m, AR_STUN_ATTR_REALM);
    const ar_stun_attr_t *nonce = ar_stun_find(m, AR_STUN_ATTR_NONCE);
    if (realm != NULL && realm->len < sizeof(p->realm)) {
        memcpy(p->realm, realm->value, realm->len);
        p->realm_len = realm->len;
    }
    if (nonce != NULL && nonce->len <= sizeof(p->nonce)) {
        memcpy(p->nonce, nonce->value, nonce->len);
        p->nonce_len = nonce->len;
    }
}

/*
 * One transaction: sends r (retransmitting over UDP), returns the error code of the answer, 0 for
 * success, or -1 on timeout or a malformed answer. On a success response checks
 * MESSAGE-INTEGRITY when we authenticated.
 */
static int transact(probe_t *p, const req_t *r, int auth)
{
    uint8_t tid[AR_STUN_TID_LEN], out[1024], in[AR_STUN_MAX_MSG + 1];
    ar_rand_bytes(tid, sizeof(tid));
    int len = build(p, r, tid, out, sizeof(out), auth);
    if (len < 0) {
        fprintf(stderr, "turn_probe: cannot build request (%d)\n", len);
        return -1;
    }
    long deadline = now_ms() + PROBE_TIMEOUT_MS;
    while (now_ms() < deadline) {
        if (send_all(p, out, (size_t)len) != 0)
            return -1;
        long rto = now_ms() + (p->tcp ? PROBE_TIMEOUT_MS : PROBE_RTO_MS);
        ar_stun_msg_t m;
        int got;
        while ((got = recv_msg(p, rto < deadline ? rto : deadline, in, sizeof(in), &m)) == 1) {
            if (memcmp(m.tid, tid, sizeof(tid)) != 0 || m.method != r->method)
                continue; /* a Data indication, a late retransmission answer */
            if (m.cls == AR_STUN_SUCCESS) {
                if (auth && p->have_key && ar_stun_check_integrity(&m, p->key, 16) != 0) {
                    fprintf(stderr, "turn_probe: success response with bad integrity\n");
                    return -1;
                }
                const ar_stun_attr_t *ca = ar_stun_find(&m, AR_TURN_ATTR_CONNECTION_ID);
                if (ca != NULL && ar_stun_attr_u32(ca, &g_last_cid) != 0)
                    return -1;
                g_nrelayed = 0;
                g_addr_err_family = g_addr_err_code = 0;
                for (size_t i = 0; i < m.nattrs; i++) {
                    const ar_stun_attr_t *a = &m.attrs[i];
                    const uint8_t *reason;
                    size_t rlen;
                    if (a->type == AR_TURN_ATTR_XOR_RELAYED_ADDRESS && g_nrelayed < 2 &&
                        ar_stun_attr_xor_addr(a, m.tid, &g_relayed[g_nrelayed]) == 0)
                        g_nrelayed++;
                    if (a->type == AR_TURN_ATTR_ADDRESS_ERROR_CODE &&
                        ar_stun_attr_address_error(a, &g_addr_err_family, &g_addr_err_code, &reason,
                                                   &rlen) != 0)
                        return -1;
                }
                return 0;
            }
            const ar_stun_attr_t *e = ar_stun_find(&m, AR_STUN_ATTR_ERROR_CODE);
            int code;
            const uint8_t *reason;
            size_t rlen;
            if (m.cls != AR_STUN_ERROR || e == NULL ||
                ar_stun_attr_error(e, &code, &reason, &rlen) != 0) {
                fprintf(stderr, "turn_probe: malformed answer\n");
                return -1;
            }
            if (code == 401 || code == 438)
                take_challenge(p, &m);
            return code;
        }
        if (got < 0) {
            fprintf(stderr, "turn_probe: connection closed or garbled\n");
            return -1;
        }
    }
    fprintf(stderr, "turn_probe: no answer\n");
    return -1;
}

/* An authenticated transaction as a client makes it: learn the challenge, retry stale nonces. */
static int transact_auth(probe_t *p, const req_t *r)
{
    int code = transact(p, r, 1);
    if (code == 401 && !p->have_key && p->nonce_len > 0) {
        if (ar_stun_long_term_key(g_user, strlen(g_user), p->realm, p->realm_len, g_pass,
                                  strlen(g_pass), p->key) != 0)
            return -1;
        p->have_key = 1;
        code = transact(p, r, 1);
    }
    if (code == 438)
        code = transact(p, r, 1);
    return code;
}

/*
 * Releases an allocation (Refresh with LIFETIME 0) so that allocations do not pile up over UDP,
 * where the server cannot see the client go. Best effort: the answer is not a test result.
 */
static void release(probe_t *p)
{
    req_t r = {.method = AR_TURN_REFRESH, .lifetime = 0};
    (void)transact_auth(p, &r);
}

static int step(const char *name, int code)
{
    if (code < 0)
        return -1;
    printf("%s %d\n", name, code);
    fflush(stdout);
    return code;
}

static int allocate(probe_t *p, const struct sockaddr *peer, int tcp_relay)
{
    req_t r = {.method = AR_TURN_ALLOCATE, .transport = tcp_relay ? 6 : 17, .lifetime = -1};
    if (peer != NULL && peer->sa_family == AF_INET6)
        r.family = 2;
    return step("allocate", transact_auth(p, &r));
}

/* Sends the Send indication and ChannelData of the "send" action; no answers to wait for. */
static int send_data(probe_t *p, const struct sockaddr *peer)
{
    static const char payload[] = "anteroom-probe";
    uint8_t tid[AR_STUN_TID_LEN], out[256];
    ar_rand_bytes(tid, sizeof(tid));
    ar_stun_builder_t b;
    ar_stun_build_start(&b, out, sizeof(out), AR_TURN_SEND, AR_STUN_INDICATION, tid);
    ar_stun_build_xor_addr(&b, AR_TURN_ATTR_XOR_PEER_ADDRESS, peer);
    ar_stun_build_attr(&b, AR_TURN_ATTR_DATA, payload, sizeof(payload) - 1);
    ar_stun_build_fingerprint(&b);
    int len = ar_stun_build_finish(&b);
    if (len < 0 || send_all(p, out, (size_t)len) != 0)
        return -1;
    uint8_t cd[4 + sizeof(payload) + 3] = {PROBE_CHANNEL >> 8, PROBE_CHANNEL & 0xff, 0,
                                           sizeof(payload) - 1};
    memcpy(cd + 4, payload, sizeof(payload) - 1);
    size_t cdlen = 4 + sizeof(payload) - 1;
    if (p->tcp)
        cdlen = (cdlen + 3) & ~(size_t)3;
    return send_all(p, cd, cdlen);
}

/* Counts datagrams reaching a dual-stack listener on the peer port within ms milliseconds. */
static int count_delivered(int lfd, int ms)
{
    int n = 0;
    long deadline = now_ms() + ms;
    for (;;) {
        long left = deadline - now_ms();
        struct pollfd pfd = {.fd = lfd, .events = POLLIN};
        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
            return n;
        uint8_t buf[2048];
        if (recv(lfd, buf, sizeof(buf), 0) >= 0)
            n++;
    }
}

static int listen_udp(uint16_t port)
{
    int fd = socket(AF_INET6, SOCK_DGRAM, 0);
    int off = 0;
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
    if (fd < 0 || setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off)) != 0 ||
        bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        perror("turn_probe: peer listener");
        return -1;
    }
    return fd;
}

#define BIG_OK 65000
#define BIG_OVER 65535

/* Sends ChannelData with len bytes of a pattern on our channel, padded for the stream. */
static int send_channel(probe_t *p, size_t len)
{
    static uint8_t cd[4 + BIG_OVER + 3];
    cd[0] = PROBE_CHANNEL >> 8;
    cd[1] = PROBE_CHANNEL & 0xff;
    cd[2] = (uint8_t)(len >> 8);
    cd[3] = (uint8_t)len;
    for (size_t i = 0; i < len; i++)
        cd[4 + i] = (uint8_t)(i * 7 + len);
    memset(cd + 4 + len, 0, 3);
    return send_all(p, cd, (4 + len + 3) & ~(size_t)3);
}

/* The next datagram at lfd within ms: its length (and sender in from), or -1. */
static long recv_peer(int lfd, uint8_t *buf, size_t cap, int ms, struct sockaddr_storage *from)
{
    struct pollfd pfd = {.fd = lfd, .events = POLLIN};
    if (poll(&pfd, 1, ms) <= 0)
        return -1;
    socklen_t fl = sizeof(*from);
    return recvfrom(lfd, buf, cap, 0, (struct sockaddr *)from, &fl);
}

/* True when buf holds the pattern send_channel writes for len bytes. */
static int pattern_ok(const uint8_t *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (buf[i] != (uint8_t)(i * 7 + len))
            return 0;
    }
    return 1;
}

/* Reads stream frames until a ChannelData frame; its data length, or -1 on timeout. */
static long recv_channel(probe_t *p, uint8_t *buf, size_t cap, int ms)
{
    size_t have = p->rx_len;
    memcpy(buf, p->rx, have);
    p->rx_len = 0;
    long deadline = now_ms() + ms;
    for (;;) {
        size_t need = 0;
        int kind = have > 0 ? ar_stun_classify(buf, have, &need) : 1;
        if (kind == 0)
            return -1;
        if (need > 0 && need <= have) {
            if (kind == 2) {
                long dlen = (long)(buf[2] << 8 | buf[3]);
                memmove(buf, buf + 4, (size_t)dlen);
                return dlen;
            }
            memmove(buf, buf + need, have - need); /* a STUN message: not what we wait for */
            have -= need;
            continue;
        }
        long left = deadline - now_ms();
        struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
        if (left <= 0 || have == cap || poll(&pfd, 1, (int)left) <= 0)
            return -1;
        ssize_t n = recv(p->fd, buf + have, cap - have, 0);
        if (n <= 0)
            return -1;
        have += (size_t)n;
    }
}

static int bigframe(probe_t *p, const struct sockaddr *peer, uint16_t peer_port)
{
    static uint8_t buf[2 * (4 + BIG_OVER + 3)];
    int lfd = listen_udp(peer_port);
    int sz = 1 << 20;
    req_t perm = {.method = AR_TURN_CREATE_PERMISSION, .lifetime = -1, .peer = peer};
    req_t chan = {
        .method = AR_TURN_CHANNEL_BIND, .lifetime = -1, .peer = peer, .channel = PROBE_CHANNEL};
    if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz)) != 0 ||
        step("permission", transact_auth(p, &perm)) != 0 ||
        step("channel", transact_auth(p, &chan)) != 0)
        return -1;
    const char *why = NULL;
    struct sockaddr_storage relay;
    long n = -1;
    if (send_channel(p, BIG_OK) != 0 ||
        (n = recv_peer(lfd, buf, sizeof(buf), 3000, &relay)) != BIG_OK || !pattern_ok(buf, BIG_OK))
        why = "65000 bytes did not reach the peer whole";
    if (!why) {
        /* The echo: one 65000-byte datagram from the peer, as ChannelData on the stream. */
        if (sendto(lfd, buf, BIG_OK, 0, (struct sockaddr *)&relay, sa_len((void *)&relay)) < 0 ||
            (n = recv_channel(p, buf, sizeof(buf), 3000)) != BIG_OK || !pattern_ok(buf, BIG_OK))
            why = "the 65000-byte answer did not come back whole";
    }
    if (!why && (send_channel(p, BIG_OVER) != 0 || send_channel(p, 1000) != 0))
        why = "send failed";
    if (!why &&
        ((n = recv_peer(lfd, buf, sizeof(buf), 3000, &relay)) != 1000 || !pattern_ok(buf, 1000)))
        why = n == BIG_OVER ? "65535 bytes were relayed over UDP" : "1000 bytes after 65535 lost";
    close(lfd);
    printf(why ? "bigframe fail: %s (last %ld)\n" : "bigframe ok%s (last %ld)\n", why ? why : "",
           n);
    return why ? -1 : 0;
}

/* Milliseconds until the server closes fd (EOF or reset), -1 if not within ms. Data is skipped. */
static long wait_closed(int fd, int ms)
{
    long start = now_ms(), deadline = start + ms;
    for (;;) {
        long left = deadline - now_ms();
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
            return -1;
        uint8_t buf[512];
        if (recv(fd, buf, sizeof(buf), 0) <= 0)
            return now_ms() - start;
    }
}

/* The tcplife action (see the top of this file); p holds a TCP allocation. */
#define BULK_BYTES ((size_t)16 << 20)

/*
 * The "bulk" mode: BULK_BYTES through the echo while reading nothing for the first second, so
 * the relay's buffer towards us fills and it must stop reading the peer until it drains (the
 * peer then stops reading us). Every byte must come back, in order. Returns 0 when it did.
 */
static int bulk_echo(probe_t *d)
{
    static uint8_t out[65536], in[65536];
    size_t sent = 0, got = 0;
    long start = now_ms();
    while (got < BULK_BYTES && now_ms() - start < 20000) {
        int reading = now_ms() - start > 1000;
        struct pollfd pfd = {
            .fd = d->fd,
            .events = (short)((sent < BULK_BYTES ? POLLOUT : 0) | (reading ? POLLIN : 0))};
        if (poll(&pfd, 1, 50) < 0)
            return -1;
        if ((pfd.revents & POLLOUT) && sent < BULK_BYTES) {
            size_t n = BULK_BYTES - sent < sizeof(out) ? BULK_BYTES - sent : sizeof(out);
            for (size_t i = 0; i < n; i++)
                out[i] = (uint8_t)((sent + i) * 13);
            ssize_t w = send(d->fd, out, n, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                return -1;
            if (w > 0)
                sent += (size_t)w;
        }
        if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t r = recv(d->fd, in, sizeof(in), MSG_DONTWAIT);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
                return -1;
            for (ssize_t i = 0; i < r; i++) {
                if (in[i] != (uint8_t)((got + (size_t)i) * 13))
                    return -1;
            }
            if (r > 0)
                got += (size_t)r;
        }
    }
    printf("bulk %zu of %zu\n", got, BULK_BYTES);
    fflush(stdout);
    return got == BULK_BYTES ? 0 : -1;
}

static int tcplife(probe_t *p, const struct sockaddr *peer, const char *mode, long hold)
{
    static probe_t data;
    int parked = strcmp(mode, "parked") == 0, ctrlclose = strcmp(mode, "ctrlclose") == 0;
    int holding = strcmp(mode, "hold") == 0, bulk = strcmp(mode, "bulk") == 0;
    if (!parked && !ctrlclose && !holding && !bulk && strcmp(mode, "refresh0") != 0)
        return -1;
    req_t r = {.method = AR_TURN_CONNECT, .lifetime = -1, .peer = peer};
    g_last_cid = 0;
    int rc = step("connect", transact_auth(p, &r));
    if (rc != 0 || g_last_cid == 0)
        return rc < 0 ? -1 : 0;
    uint32_t cid = g_last_cid;
    if (!parked) {
        /* A new connection from the same client: ConnectionBind with the same credentials. */
        if (probe_open(&data, 1) != 0)
            return -1;
        if (bulk) {
            /* A small receive buffer, so bytes we do not read back up into the relay soon. */
            int sz = 262144;
            (void)setsockopt(data.fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
        }
        memcpy(data.key, p->key, sizeof(p->key));
        data.have_key = 1;
        memcpy(data.realm, p->realm, p->realm_len);
        data.realm_len = p->realm_len;
        memcpy(data.nonce, p->nonce, p->nonce_len);
        data.nonce_len = p->nonce_len;
        req_t b = {.method = AR_TURN_CONNECTION_BIND, .lifetime = -1, .cid = cid};
        if (step("bind", transact_auth(&data, &b)) != 0)
            return -1;
        /* Raw from here: the peer echoes what we send (bytes after the answer stay in rx). */
        if (send_all(&data, (const uint8_t *)"hello", 5) != 0)
            return -1;
        long deadline = now_ms() + PROBE_TIMEOUT_MS;
        while (data.rx_len < 5 && now_ms() < deadline) {
            struct pollfd pfd = {.fd = data.fd, .events = POLLIN};
            if (poll(&pfd, 1, 100) > 0) {
                ssize_t n = recv(data.fd, data.rx + data.rx_len, sizeof(data.rx) - data.rx_len, 0);
                if (n <= 0)
                    break;
                data.rx_len += (size_t)n;
            }
        }
        step("echo", data.rx_len == 5 && memcmp(data.rx, "hello", 5) == 0 ? 0 : 1);
    }
    if (bulk)
        return bulk_echo(&data);
    if (holding) {
        sleep((unsigned)hold);
        return 0;
    }
    if (ctrlclose) {
        close(p->fd);
        p->fd = -1;
    } else {
        req_t del = {.method = AR_TURN_REFRESH, .lifetime = 0};
        if (step("refresh", transact_auth(p, &del)) < 0)
            return -1;
    }
    if (!parked) {
        long ms = wait_closed(data.fd, 5000);
        if (ms >= 0)
            printf("data-closed %ld\n", ms);
        else
            printf("data-open\n");
        fflush(stdout);
    }
    return 0;
}

/* The printable address of sa, IPv4-mapped IPv6 shown as IPv4; its port in *port. */
static const char *ip_str(const struct sockaddr_storage *sa, char *buf, size_t cap, uint16_t *port)
{
    const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)sa;
    const struct sockaddr_in *v4 = (const struct sockaddr_in *)sa;
    if (sa->ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr)) {
        *port = ntohs(v6->sin6_port);
        return inet_ntop(AF_INET, v6->sin6_addr.s6_addr + 12, buf, (socklen_t)cap);
    }
    if (sa->ss_family == AF_INET6) {
        *port = ntohs(v6->sin6_port);
        return inet_ntop(AF_INET6, &v6->sin6_addr, buf, (socklen_t)cap);
    }
    *port = ntohs(v4->sin_port);
    return inet_ntop(AF_INET, &v4->sin_addr, buf, (socklen_t)cap);
}

/* The dual action (see the top of this file). */
static int dual(probe_t *p, uint16_t peer_port)
{
    req_t r = {.method = AR_TURN_ALLOCATE, .transport = 17, .lifetime = -1, .additional = 2};
    int rc = step("allocate", transact_auth(p, &r));
    if (rc != 0)
        return rc < 0 ? -1 : 0;
    struct sockaddr_storage relayed[2];
    int n = g_nrelayed;
    memcpy(relayed, g_relayed, sizeof(relayed));
    char ip[INET6_ADDRSTRLEN];
    uint16_t port;
    for (int i = 0; i < n; i++)
        printf("relayed %s\n", ip_str(&relayed[i], ip, sizeof(ip), &port));
    if (g_addr_err_code)
        printf("address-error %d %d\n", g_addr_err_family, g_addr_err_code);
    fflush(stdout);
    int lfd = listen_udp(peer_port);
    if (lfd < 0)
        return -1;
    for (int i = 0; i < n; i++) {
        struct sockaddr_storage peer = {0};
        if (relayed[i].ss_family == AF_INET) {
            struct sockaddr_in *v4 = (struct sockaddr_in *)&peer;
            v4->sin_family = AF_INET;
            v4->sin_port = htons(peer_port);
            v4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        } else {
            struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&peer;
            v6->sin6_family = AF_INET6;
            v6->sin6_port = htons(peer_port);
            v6->sin6_addr = in6addr_loopback;
        }
        req_t perm = {
            .method = AR_TURN_CREATE_PERMISSION, .lifetime = -1, .peer = (struct sockaddr *)&peer};
        if (step("permission", transact_auth(p, &perm)) != 0 ||
            send_data(p, (struct sockaddr *)&peer) != 0)
            return -1;
        /* The Send indication arrives (send_data's ChannelData has no channel: dropped). */
        struct pollfd pfd = {.fd = lfd, .events = POLLIN};
        if (poll(&pfd, 1, PROBE_TIMEOUT_MS) <= 0) {
            printf("delivered none\n");
            continue;
        }
        uint8_t buf[2048];
        struct sockaddr_storage src;
        socklen_t sl = sizeof(src);
        if (recvfrom(lfd, buf, sizeof(buf), 0, (struct sockaddr *)&src, &sl) < 0)
            return -1;
        uint16_t sport, rport;
        char rip[INET6_ADDRSTRLEN];
        ip_str(&src, ip, sizeof(ip), &sport);
        ip_str(&relayed[i], rip, sizeof(rip), &rport);
        printf("delivered %s relayed=%d\n", ip, strcmp(ip, rip) == 0 && sport == rport);
        fflush(stdout);
        (void)sendto(lfd, "back", 4, 0, (struct sockaddr *)&src, sl);
        /* The answer reaches the client as a Data indication naming the peer. */
        static uint8_t in[AR_STUN_MAX_MSG + 1];
        ar_stun_msg_t m;
        long deadline = now_ms() + PROBE_TIMEOUT_MS;
        while (recv_msg(p, deadline, in, sizeof(in), &m) == 1) {
            const ar_stun_attr_t *pa = ar_stun_find(&m, AR_TURN_ATTR_XOR_PEER_ADDRESS);
            const ar_stun_attr_t *da = ar_stun_find(&m, AR_TURN_ATTR_DATA);
            struct sockaddr_storage from;
            if (m.method != AR_TURN_DATA || m.cls != AR_STUN_INDICATION || pa == NULL ||
                da == NULL || da->len != 4 || memcmp(da->value, "back", 4) != 0 ||
                ar_stun_attr_xor_addr(pa, m.tid, &from) != 0)
                continue;
            printf("data-from %s\n", ip_str(&from, ip, sizeof(ip), &sport));
            break;
        }
        fflush(stdout);
    }
    close(lfd);
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: turn_probe -s SERVER:PORT -u USER -w PASS [-t] [-p PEER] [-P PORT] "
                    "[-H SECONDS] [-b SOURCE] allocate [N] | permission | channel | send | connect "
                    "| tcplife refresh0|ctrlclose|parked|hold | dual | bigframe | burst [ROUNDS] "
                    "| stale SECONDS\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *server = NULL, *peer_s = "127.0.0.1";
    long peer_port = 3480;
    int tcp = 0, opt;
    long hold = 0;
    const char *source = NULL;
    while ((opt = getopt(argc, argv, "s:u:w:tp:P:H:b:")) != -1) {
        switch (opt) {
        case 's':
            server = optarg;
            break;
        case 'u':
            g_user = optarg;
            break;
        case 'w':
            g_pass = optarg;
            break;
        case 't':
            tcp = 1;
            break;
        case 'p':
            peer_s = optarg;
            break;
        case 'P':
            peer_port = strtol(optarg, NULL, 10);
            break;
        case 'H':
            hold = strtol(optarg, NULL, 10);
            break;
        case 'b':
            source = optarg;
            break;
        default:
            usage();
        }
    }
    if (server == NULL || g_user == NULL || g_pass == NULL || optind >= argc || peer_port < 1 ||
        peer_port > 65535 || hold < 0 || hold > 60)
        usage();
    const char *action = argv[optind];
    const char *arg = optind + 1 < argc ? argv[optind + 1] : NULL;
    struct sockaddr_storage peer;
    if (parse_addr(server, 0, 0, &g_server) != 0 ||
        parse_addr(peer_s, 1, (uint16_t)peer_port, &peer) != 0 ||
        (source != NULL && parse_addr(source, 1, 0, &g_source) != 0))
        usage();
    if (ar_rand_init() != 0)
        return 1;
    const struct sockaddr *pa = (const struct sockaddr *)&peer;

    static probe_t probes[PROBE_MAX_ALLOCS];
    probe_t *p = &probes[0];
    int rc = 0;
    if (strcmp(action, "allocate") == 0) {
        long n = arg != NULL ? strtol(arg, NULL, 10) : 1;
        if (n < 1 || n > PROBE_MAX_ALLOCS)
            usage();
        long i;
        for (i = 0; i < n && rc >= 0; i++)
            rc = probe_open(&probes[i], tcp) != 0 ? -1 : allocate(&probes[i], pa, 0);
        if (rc >= 0)
            sleep((unsigned)hold);
        while (i-- > 0)
            release(&probes[i]);
        return rc < 0;
    }
    if (probe_open(p, tcp) != 0)
        return 1;
    if (strcmp(action, "connect") == 0) {
        if (!tcp)
            usage();
        rc = allocate(p, pa, 1);
        if (rc != 0)
            return rc < 0;
        req_t r = {.method = AR_TURN_CONNECT, .lifetime = -1, .peer = pa};
        rc = step("connect", transact_auth(p, &r));
        release(p);
        return rc < 0;
    }
    if (strcmp(action, "tcplife") == 0 && arg != NULL) {
        if (!tcp)
            usage();
        rc = allocate(p, pa, 1);
        if (rc != 0)
            return rc < 0;
        return tcplife(p, pa, arg, hold) < 0;
    }
    if (strcmp(action, "dual") == 0) {
        rc = dual(p, (uint16_t)peer_port);
        release(p);
        return rc < 0;
    }
    rc = allocate(p, pa, 0);
    if (rc != 0)
        return rc < 0;
    if (strcmp(action, "bigframe") == 0) {
        if (!tcp)
            usage();
        rc = bigframe(p, pa, (uint16_t)peer_port);
    } else if (strcmp(action, "burst") == 0) {
        long rounds = arg != NULL ? strtol(arg, NULL, 10) : 6;
        int lfd = listen_udp((uint16_t)peer_port);
        req_t perm = {.method = AR_TURN_CREATE_PERMISSION, .lifetime = -1, .peer = pa};
        req_t chan = {
            .method = AR_TURN_CHANNEL_BIND, .lifetime = -1, .peer = pa, .channel = PROBE_CHANNEL};
        if (tcp || rounds < 1 || rounds > 100)
            usage();
        if (lfd < 0 || step("permission", transact_auth(p, &perm)) != 0 ||
            step("channel", transact_auth(p, &chan)) != 0)
            return 1;
        rc = probe_burst(p->fd, lfd, PROBE_CHANNEL, (int)rounds);
        close(lfd);
    } else if (strcmp(action, "permission") == 0) {
        req_t r = {.method = AR_TURN_CREATE_PERMISSION, .lifetime = -1, .peer = pa};
        rc = step("permission", transact_auth(p, &r));
    } else if (strcmp(action, "channel") == 0) {
        req_t r = {
            .method = AR_TURN_CHANNEL_BIND, .lifetime = -1, .peer = pa, .channel = PROBE_CHANNEL};
        rc = step("channel", transact_auth(p, &r));
    } else if (strcmp(action, "send") == 0) {
        int lfd = listen_udp((uint16_t)peer_port);
        req_t perm = {.method = AR_TURN_CREATE_PERMISSION, .lifetime = -1, .peer = pa};
        req_t chan = {
            .method = AR_TURN_CHANNEL_BIND, .lifetime = -1, .peer = pa, .channel = PROBE_CHANNEL};
        if (lfd < 0 || step("permission", transact_auth(p, &perm)) < 0 ||
            step("channel", transact_auth(p, &chan)) < 0 || send_data(p, pa) != 0)
            return 1;
        printf("delivered %d\n", count_delivered(lfd, 1000));
        close(lfd);
    } else if (strcmp(action, "stale") == 0 && arg != NULL) {
        long secs = strtol(arg, NULL, 10);
        if (secs < 0 || secs > 600)
            usage();
        sleep((unsigned)secs);
        req_t r = {.method = AR_TURN_REFRESH, .lifetime = 600};
        /* No automatic retry here: the first answer to the old nonce is what is tested. */
        rc = step("refresh-stale", transact(p, &r, 1));
        if (rc == 438)
            rc = step("refresh", transact(p, &r, 1));
    } else {
        usage();
    }
    release(p);
    return rc < 0;
}
