/*
 * ar_bench_sigload: the load generator of the signalling benchmark (bench/signal/full.sh). The
 * same code drives every server, in its own dialect:
 *   anteroom  protocol.md: upgrade with anteroom.v1, hello {token}, join {room}, offer/answer/
 *             candidate addressed by peer id, ack every 32 numbered frames, pong to ping, bye
 *   peerjs    the PeerJS server (npm `peer`): /peerjs?key&id&token, OPEN, OFFER/ANSWER/CANDIDATE
 *             with dst, HEARTBEAT
 *   ws        the Node `ws` room relay (node/room_relay.js): /?room=R, every message goes to the
 *             other member; the frames are anteroom's JSON, unread by the relay
 *   raw       the bare relay (bare_relay.c): TCP paired in accept order; the client sends the same
 *             masked WebSocket frames and the peer parses them as a server would
 * Every relayed message carries "~T=<send time, ns hex>", so the receiver knows its latency.
 *
 * Commands (the server is measured from outside: /proc/<pid>/stat, status, schedstat):
 *   keygen PUB SEC         an Ed25519 token key: PUB for anteroom-signal --keys, SEC for -K
 *   idle  -n N -P procs    P client processes open N connections one after another (a pair per
 *                          room: hello and join for anteroom) and hold them, answering pings;
 *                          prints RSS per connection and CPU per connect of the server
 *   rate  -k pairs -r msg/s -T secs   one process, k pairs, open loop at the offered rate
 *   calls -c calls -P procs           call set-ups: two fresh connections, (hello, join,) a
 *                          4 KB offer, a 4 KB answer, four candidates each way, bye
 * Common: -d dialect -p port[,port2] (port2: the second member of each pair, another node)
 *   -s pid,.. (server processes) -B pid,.. (the bus: counted in the totals, printed apart)
 *   -K sec -l label -t (TLS) -U (anteroom: upgrade only, no hello) -H secs (idle:
 *   hold that long after measuring, then count what is still open) -b N (source addresses 127.1.N.x: one per client process, so many
 *   processes pass the ephemeral port limit of one address) -S bytes (relayed message size)
 * Output: one "RESULT key=value ..." line per measurement, read by full.sh.
 */
#include "anteroom/token.h"
#include "ws/ws.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { D_ANTEROOM, D_PEERJS, D_WS, D_RAW };

typedef struct opts_s {
    int dialect, ports[2], n, procs, tls, upgrade_only, hold_secs, pairs, rate, secs, calls, size, srcbase;
    int spids[64], nspids, bpids[8], nbpids;
    const char *label, *sec;
} opts_t;

static opts_t o = {.n = 1000, .procs = 2, .pairs = 50, .rate = 1000, .secs = 5, .calls = 200,
                   .size = 200, .label = "server"};
static ar_token_key_t g_key;
static char **g_tokens; /* one per room, minted before any measurement */
static char g_run[16];  /* makes room and peer names unique per run */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- the server, from outside ---- */

typedef struct sample_s {
    long rss_kib, anon_kib, bus_rss_kib;
    long long ticks, bus_ticks, run_ns;
} sample_t;

static void sample_pid(int pid, long *rss, long *anon, long long *ticks, long long *run_ns)
{
    char path[64], line[512];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            *rss += atol(line + 6);
        else if (anon && strncmp(line, "RssAnon:", 8) == 0)
            *anon += atol(line + 8);
    if (f)
        fclose(f);
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    f = fopen(path, "r");
    if (f && fgets(line, sizeof(line), f)) {
        /* utime and stime (fields 14, 15) follow the ")" that ends the command name. */
        char *p = strrchr(line, ')');
        unsigned long ut = 0, st = 0;
        if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2)
            *ticks += (long long)(ut + st);
    }
    if (f)
        fclose(f);
    if (!run_ns)
        return;
    /* schedstat is per thread: Node has GC and I/O threads, libnats its own. */
    snprintf(path, sizeof(path), "/proc/%d/task", pid);
    DIR *d = opendir(path);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char tp[320];
        snprintf(tp, sizeof(tp), "/proc/%d/task/%s/schedstat", pid, de->d_name);
        f = fopen(tp, "r");
        long long ns = 0;
        if (f && fscanf(f, "%lld", &ns) == 1)
            *run_ns += ns;
        if (f)
            fclose(f);
    }
    if (d)
        closedir(d);
}

static void sample(sample_t *s)
{
    memset(s, 0, sizeof(*s));
    for (int i = 0; i < o.nspids; i++)
        sample_pid(o.spids[i], &s->rss_kib, &s->anon_kib, &s->ticks, &s->run_ns);
    for (int i = 0; i < o.nbpids; i++)
        sample_pid(o.bpids[i], &s->bus_rss_kib, NULL, &s->bus_ticks, NULL);
}

static double tick_us(void)
{
    return 1e6 / (double)sysconf(_SC_CLK_TCK);
}

/* ---- connections ---- */

typedef struct lc_s {
    int fd;
    SSL *ssl;
    ar_ws_parser_t p;
    uint8_t *msg;
    uint32_t mlen, mcap;
    uint8_t data_frame; /* the current frame carries message bytes (not a control frame) */
    char id[48];        /* anteroom: our peer id (welcome); peerjs: our id */
    char to[48];        /* the other member's */
    uint64_t last_seq;
    int unacked;
    int welcome, joined, open, n_offer, n_answer, n_cand, errors;
} lc_t;

static long long g_relayed, g_recv_all, g_errors;
static double *g_lat;
static size_t g_nlat, g_latcap;
static int g_counting;

static SSL_CTX *client_ctx(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL); /* the benchmark's own self-signed cert */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    return ctx;
}

static int lc_write(lc_t *c, const void *b, size_t n)
{
    if (c->ssl)
        return SSL_write(c->ssl, b, (int)n) == (int)n ? 0 : -1;
    const uint8_t *p = b;
    while (n > 0) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN) {
            /* a full socket buffer: wait for room rather than drop a frame */
            fd_set wf;
            FD_ZERO(&wf);
            if (c->fd >= FD_SETSIZE)
                usleep(200);
            else {
                FD_SET(c->fd, &wf);
                struct timeval tv = {1, 0};
                (void)select(c->fd + 1, NULL, &wf, NULL, &tv);
            }
            continue;
        }
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* One masked frame (clients mask, RFC 6455 5.3). */
static int lc_send_frame(lc_t *c, uint8_t op, const char *s, size_t n)
{
    uint8_t buf[AR_WS_MAX_HEADER + 16384];
    if (n > 16384)
        return -1;
    uint8_t mask[4];
    uint32_t r = (uint32_t)random();
    memcpy(mask, &r, 4);
    size_t h = ar_ws_frame_header(buf, op, 1, n, mask);
    memcpy(buf + h, s, n);
    ar_ws_mask(buf + h, n, mask, 0);
    return lc_write(c, buf, h + n);
}

static int lc_send(lc_t *c, const char *s)
{
    return lc_send_frame(c, AR_WS_OP_TEXT, s, strlen(s));
}

/* Finds "key": and returns the start of its value (after a quote for strings), or NULL. */
static const char *jfind(const char *m, size_t n, const char *key)
{
    char pat[40];
    int k = snprintf(pat, sizeof(pat), "\"%s\":", key);
    const char *p = memmem(m, n, pat, (size_t)k);
    if (!p)
        return NULL;
    p += k;
    return *p == '"' ? p + 1 : p;
}

static void jcopy(char *dst, size_t cap, const char *v, const char *end)
{
    size_t i = 0;
    while (v && v < end && *v != '"' && i + 1 < cap)
        dst[i++] = *v++;
    dst[i] = '\0';
}

static void on_relayed(const char *m, size_t n)
{
    const char *t = memmem(m, n, "~T=", 3);
    if (t)
        g_recv_all++;
    if (!t || !g_counting)
        return;
    uint64_t sent = strtoull(t + 3, NULL, 16);
    g_relayed++;
    if (g_nlat < g_latcap)
        g_lat[g_nlat++] = (double)(now_ns() - sent) / 1e3;
}

/* A whole text message from the server. */
static void on_msg(lc_t *c, const char *m, size_t n)
{
    const char *end = m + n;
    const char *ty = jfind(m, n, "type");
    if (!ty)
        return;
    if (o.dialect == D_ANTEROOM) {
        const char *sq = jfind(m, n, "seq");
        unsigned long long seq = sq ? strtoull(sq, NULL, 10) : 0;
        if (seq > c->last_seq) {
            c->last_seq = seq;
            if (++c->unacked >= 32) {
                char a[64];
                snprintf(a, sizeof(a), "{\"v\":1,\"type\":\"ack\",\"seq\":%llu}", seq);
                (void)lc_send(c, a);
                c->unacked = 0;
            }
        }
        if (strncmp(ty, "welcome\"", 8) == 0) {
            jcopy(c->id, sizeof(c->id), jfind(m, n, "peer"), end);
            c->welcome = 1;
            return;
        }
        if (strncmp(ty, "joined\"", 7) == 0) {
            c->joined = 1;
            return;
        }
        if (strncmp(ty, "ping\"", 5) == 0) {
            char a[64];
            snprintf(a, sizeof(a), "{\"v\":1,\"type\":\"ack\",\"seq\":%llu}",
                     (unsigned long long)c->last_seq);
            (void)lc_send(c, "{\"v\":1,\"type\":\"pong\"}");
            (void)lc_send(c, a);
            c->unacked = 0;
            return;
        }
        if (strncmp(ty, "error\"", 6) == 0) {
            c->errors++;
            if (g_errors++ < 5)
                fprintf(stderr, "%s: server error: %.*s\n", o.label, (int)(n > 200 ? 200 : n), m);
            return;
        }
    } else if (o.dialect == D_PEERJS) {
        if (strncmp(ty, "OPEN\"", 5) == 0) {
            c->open = 1;
            return;
        }
        if (strncmp(ty, "ERROR\"", 6) == 0 || strncmp(ty, "ID-TAKEN\"", 9) == 0) {
            c->errors++;
            if (g_errors++ < 5)
                fprintf(stderr, "%s: server error: %.*s\n", o.label, (int)(n > 200 ? 200 : n), m);
            return;
        }
    }
    if (strncasecmp(ty, "offer\"", 6) == 0)
        c->n_offer++;
    else if (strncasecmp(ty, "answer\"", 7) == 0)
        c->n_answer++;
    else if (strncasecmp(ty, "candidate\"", 10) == 0)
        c->n_cand++;
    else
        return;
    on_relayed(m, n);
}

/* Feeds bytes from the server through the WebSocket parser. Returns -1 when the connection is
 * over (close frame or protocol error). */
static int lc_feed(lc_t *c, uint8_t *b, size_t n)
{
    size_t off = 0;
    for (;;) { /* until NEED_MORE: a frame's end is reported after its last byte is consumed */
        size_t used;
        ar_ws_event_t ev;
        if (ar_ws_parse(&c->p, b + off, n - off, &used, &ev) != 0)
            return -1;
        off += used;
        if (ev.type == AR_WS_EV_NEED_MORE)
            break;
        if (ev.type == AR_WS_EV_FRAME_START)
            c->data_frame = ev.opcode < 8;
        if (ev.type == AR_WS_EV_DATA && c->data_frame) {
            if (c->mlen + ev.len > c->mcap) {
                uint32_t cap = c->mlen + (uint32_t)ev.len + 256;
                uint8_t *nm = realloc(c->msg, cap);
                if (!nm)
                    return -1;
                c->msg = nm;
                c->mcap = cap;
            }
            memcpy(c->msg + c->mlen, ev.data, ev.len);
            c->mlen += (uint32_t)ev.len;
        }
        if (ev.type == AR_WS_EV_FRAME_END) {
            if (ev.opcode == AR_WS_OP_CLOSE)
                return -1;
            if (ev.opcode == AR_WS_OP_PING)
                (void)lc_send_frame(c, AR_WS_OP_PONG, "", 0);
            if (ev.msg_end) {
                on_msg(c, (const char *)c->msg, c->mlen);
                c->mlen = 0;
                if (c->mcap > 8192) { /* keep held connections small */
                    free(c->msg);
                    c->msg = NULL;
                    c->mcap = 0;
                }
            }
        }
    }
    return 0;
}

/* One read. Returns 1 when bytes came, 0 for nothing yet (non-blocking), -1 when it is over. */
static int lc_pump(lc_t *c)
{
    static uint8_t buf[1 << 16];
    int r;
    if (c->ssl) {
        r = SSL_read(c->ssl, buf, sizeof(buf));
        if (r <= 0) {
            int e = SSL_get_error(c->ssl, r);
            return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? 0 : -1;
        }
    } else {
        r = (int)recv(c->fd, buf, sizeof(buf), 0);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            return 0;
        if (r <= 0)
            return -1;
    }
    return lc_feed(c, buf, (size_t)r) < 0 ? -1 : 1;
}

/* Blocking: reads until *flag reaches want (SO_RCVTIMEO bounds every read). */
static int lc_wait(lc_t *c, const int *flag, int want)
{
    while (*flag < want)
        if (lc_pump(c) <= 0)
            return -1;
    return 0;
}

static void lc_close(lc_t *c)
{
    if (c->fd < 0)
        return;
    if (o.dialect == D_ANTEROOM)
        (void)lc_send(c, "{\"v\":1,\"type\":\"bye\"}");
    if (c->ssl)
        SSL_free(c->ssl);
    close(c->fd);
    free(c->msg);
    memset(c, 0, sizeof(*c));
    c->fd = -1;
}

/*
 * Opens one blocking connection from source address src (0: any): TCP, TLS, the upgrade, then
 * the dialect's handshake (anteroom: hello and, with room >= 0, join; peerjs: OPEN). `who` is
 * 'a' or 'b', the member of the pair.
 */
static int lc_open(lc_t *c, SSL_CTX *ctx, uint32_t src, int port, long room, char who)
{
    memset(c, 0, sizeof(*c));
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0)
        return -1;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct timeval tv = {10, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (src) {
        /* The port is chosen at connect() for the whole 4-tuple, not reserved at bind(). */
        setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        struct sockaddr_in s = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(src)};
        if (bind(c->fd, (struct sockaddr *)&s, sizeof(s)) != 0)
            goto fail;
    }
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) != 0)
        goto fail;
    if (ctx) {
        c->ssl = SSL_new(ctx);
        SSL_set_fd(c->ssl, c->fd);
        if (SSL_connect(c->ssl) != 1)
            goto fail;
    }
    ar_ws_parser_init(&c->p, o.dialect == D_RAW, 1 << 20);
    if (o.dialect == D_PEERJS)
        snprintf(c->id, sizeof(c->id), "%s-%ld%c", g_run, room, who);
    if (o.dialect == D_RAW)
        return 0;
    char path[160], req[512];
    if (o.dialect == D_ANTEROOM)
        snprintf(path, sizeof(path), "/ws");
    else if (o.dialect == D_PEERJS)
        snprintf(path, sizeof(path), "/peerjs?key=peerjs&id=%s&token=t%ld", c->id, room);
    else
        snprintf(path, sizeof(path), "/?room=%s-%ld", g_run, room);
    int rn = snprintf(req, sizeof(req),
                      "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      "Origin: https://bench.anteroom.invalid\r\n"
                      "Sec-WebSocket-Protocol: anteroom.v1\r\nSec-WebSocket-Version: 13\r\n\r\n",
                      path, port);
    if (lc_write(c, req, (size_t)rn) != 0)
        goto fail;
    uint8_t resp[1024];
    size_t got = 0;
    char *eoh = NULL;
    while (!eoh && got < sizeof(resp) - 1) {
        int r = c->ssl ? SSL_read(c->ssl, resp + got, (int)(sizeof(resp) - 1 - got))
                       : (int)recv(c->fd, resp + got, sizeof(resp) - 1 - got, 0);
        if (r <= 0)
            goto fail;
        got += (size_t)r;
        resp[got] = '\0';
        eoh = strstr((char *)resp, "\r\n\r\n");
    }
    if (!eoh || strncmp((char *)resp, "HTTP/1.1 101", 12) != 0)
        goto fail;
    /* Frames may follow the header in the same read (PeerJS sends OPEN at once). */
    size_t hl = (size_t)(eoh + 4 - (char *)resp);
    if (got > hl && lc_feed(c, resp + hl, got - hl) < 0)
        goto fail;
    if (o.dialect == D_PEERJS && lc_wait(c, &c->open, 1) != 0)
        goto fail;
    if (o.dialect == D_ANTEROOM && !o.upgrade_only) {
        char m[AR_TOKEN_MAX + 64];
        snprintf(m, sizeof(m), "{\"v\":1,\"type\":\"hello\",\"token\":\"%s\"}", g_tokens[room]);
        if (lc_send(c, m) != 0 || lc_wait(c, &c->welcome, 1) != 0)
            goto fail;
        snprintf(m, sizeof(m), "{\"v\":1,\"type\":\"join\",\"room\":\"%s-%ld\"}", g_run, room);
        if (lc_send(c, m) != 0 || lc_wait(c, &c->joined, 1) != 0)
            goto fail;
    }
    return 0;
fail:
    if (c->ssl)
        SSL_free(c->ssl);
    close(c->fd);
    c->ssl = NULL;
    c->fd = -1;
    return -1;
}

static void set_nonblock(lc_t *c)
{
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
}

static uint32_t src_addr(int proc)
{
    /* 127.1.<base>.<proc+1>: a fresh source address per client process and run */
    return (127u << 24) | (1u << 16) | ((uint32_t)(o.srcbase & 255) << 8) | (uint32_t)(proc + 1);
}

/* ---- messages ---- */

/* A relayed message of about `size` bytes (offer) or a candidate, in the dialect's form. */
static int build(char *out, size_t cap, const lc_t *c, const char *kind, size_t size)
{
    char body[8192];
    size_t pad = size < 120 ? 0 : size - 120;
    if (pad > sizeof(body) - 64)
        pad = sizeof(body) - 64;
    int n;
    if (kind[0] == 'c') {
        n = snprintf(body, sizeof(body),
                     "candidate:%u 1 udp 2122260223 192.0.2.%u %u typ host generation 0 ~T=%016llx",
                     (unsigned)random() % 100000u, (unsigned)random() % 250u + 1,
                     (unsigned)random() % 50000u + 10000, (unsigned long long)now_ns());
    } else {
        /* SDP-like lines; "\r\n" is 4 bytes once escaped in JSON */
        n = snprintf(body, sizeof(body), "v=0\\r\\no=- 1 2 IN IP4 0.0.0.0\\r\\n~T=%016llx\\r\\n",
                     (unsigned long long)now_ns());
        while ((size_t)n < pad) {
            int k = snprintf(body + n, sizeof(body) - (size_t)n, "a=x-bench:%08x\\r\\n",
                             (unsigned)random());
            if (k <= 0 || (size_t)(n + k) >= sizeof(body))
                break;
            n += k;
        }
    }
    (void)n;
    if (o.dialect == D_PEERJS) {
        const char *T = kind[0] == 'o' ? "OFFER" : kind[0] == 'a' ? "ANSWER" : "CANDIDATE";
        if (kind[0] == 'c')
            return snprintf(out, cap,
                            "{\"type\":\"%s\",\"dst\":\"%s\",\"payload\":{\"candidate\":{"
                            "\"candidate\":\"%s\",\"sdpMid\":\"0\",\"sdpMLineIndex\":0},"
                            "\"type\":\"media\",\"connectionId\":\"mc_1\"}}",
                            T, c->to, body);
        return snprintf(out, cap,
                        "{\"type\":\"%s\",\"dst\":\"%s\",\"payload\":{\"sdp\":{\"type\":\"%s\","
                        "\"sdp\":\"%s\"},\"type\":\"media\",\"connectionId\":\"mc_1\"}}",
                        T, c->to, kind, body);
    }
    if (kind[0] == 'c')
        return snprintf(out, cap,
                        "{\"v\":1,\"type\":\"candidate\",\"to\":\"%s\",\"candidate\":\"%s\","
                        "\"mid\":\"0\",\"mline\":0}",
                        c->to, body);
    return snprintf(out, cap, "{\"v\":1,\"type\":\"%s\",\"to\":\"%s\",\"sdp\":\"%s\"}", kind, c->to,
                    body);
}

static int send_kind(lc_t *c, const char *kind, size_t size)
{
    char m[12288];
    int n = build(m, sizeof(m), c, kind, size);
    return n > 0 && (size_t)n < sizeof(m) ? lc_send(c, m) : -1;
}

/* Makes a and b partners: each addresses the other. */
static void partner(lc_t *a, lc_t *b)
{
    memcpy(a->to, b->id, sizeof(a->to));
    memcpy(b->to, a->id, sizeof(b->to));
}

/* ---- idle: hold N connections ---- */

/* Services readable connections (pings, peers' frames) for at most `ms`; returns 1 when the
 * hold pipe says stop. */
static int service(int ep, lc_t *c, int ms)
{
    struct epoll_event evs[256];
    int k = epoll_wait(ep, evs, 256, ms);
    for (int i = 0; i < k; i++) {
        if (evs[i].data.u32 == UINT32_MAX)
            return 1;
        lc_t *x = &c[evs[i].data.u32];
        int r;
        while ((r = lc_pump(x)) > 0)
            ;
        if (r < 0) {
            epoll_ctl(ep, EPOLL_CTL_DEL, x->fd, NULL);
            close(x->fd);
            x->fd = -1;
        }
    }
    return 0;
}

static void watch(int ep, lc_t *c, int i)
{
    set_nonblock(&c[i]);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    epoll_ctl(ep, EPOLL_CTL_ADD, c[i].fd, &ev);
}

static void hold_loop(int ep, lc_t *c, int n)
{
    double next_hb = now_s() + 20;
    while (!service(ep, c, 1000))
        if (o.dialect == D_PEERJS && now_s() >= next_hb) {
            for (int i = 0; i < n; i++)
                if (c[i].fd >= 0)
                    (void)lc_send(&c[i], "{\"type\":\"HEARTBEAT\"}");
            next_hb = now_s() + 20;
        }
}

static void idle_child(int proc, int first, int n, int ready_fd, int hold_fd)
{
    SSL_CTX *ctx = o.tls ? client_ctx() : NULL;
    lc_t *c = calloc((size_t)n, sizeof(*c));
    int ok = 0, ep = epoll_create1(0);
    struct epoll_event hev = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
    epoll_ctl(ep, EPOLL_CTL_ADD, hold_fd, &hev);
    double next = now_s() + 1;
    for (int i = 0; i < n; i++) {
        long room = (first + i) / 2;
        int port = (i & 1) && o.ports[1] ? o.ports[1] : o.ports[0];
        if (lc_open(&c[i], ctx, src_addr(proc), port, room, (i & 1) ? 'b' : 'a') == 0) {
            ok++;
            watch(ep, c, i);
        } else if (ok == i && g_errors++ < 3)
            fprintf(stderr, "%s: connection %d of process %d failed: %s\n", o.label, i, proc,
                    strerror(errno));
        /* A long opening (the scale run) still answers the pings of the first connections:
         * the node closes a connection that sends nothing for 60 s. */
        if (now_s() >= next) {
            (void)service(ep, c, 0);
            next = now_s() + 1;
        }
    }
    char msg[32];
    int len = snprintf(msg, sizeof(msg), "%d\n", ok);
    (void)!write(ready_fd, msg, (size_t)len);
    hold_loop(ep, c, n);
    int still = 0;
    for (int i = 0; i < n; i++)
        still += c[i].fd >= 0;
    len = snprintf(msg, sizeof(msg), "%d\n", still);
    (void)!write(ready_fd, msg, (size_t)len);
    for (int i = 0; i < n; i++)
        lc_close(&c[i]);
    _exit(0);
}

static void print_sample_delta(const char *phase, const sample_t *a, const sample_t *b, double per,
                               const char *unit)
{
    printf(" %s_cpu_us=%.2f %s_sched_us=%.2f %s_bus_cpu_us=%.2f", unit,
           (double)(b->ticks - a->ticks) * tick_us() / per, unit,
           (double)(b->run_ns - a->run_ns) / 1e3 / per, unit,
           (double)(b->bus_ticks - a->bus_ticks) * tick_us() / per);
    (void)phase;
}

static int cmd_idle(void)
{
    sample_t s0, s1, s2;
    /* Warm-up: 100 connections opened and closed, so code pages and loop buffers are resident
     * before the baseline and are not charged to the connections. */
    {
        SSL_CTX *ctx = o.tls ? client_ctx() : NULL;
        lc_t w[100];
        for (int i = 0; i < 100; i++)
            (void)lc_open(&w[i], ctx, src_addr(200), o.ports[0], o.n / 2 + 1 + i / 2,
                          (i & 1) ? 'b' : 'a');
        for (int i = 0; i < 100; i++)
            lc_close(&w[i]);
        if (ctx)
            SSL_CTX_free(ctx);
        sleep(2);
    }
    sample(&s0);
    int ready[2], hold[2];
    if (pipe(ready) || pipe(hold))
        return 1;
    double t0 = now_s();
    pid_t kids[64];
    int first = 0;
    for (int i = 0; i < o.procs; i++) {
        int share = o.n / o.procs;
        share += share & 1; /* whole pairs per process */
        if (i == o.procs - 1)
            share = o.n - first;
        kids[i] = fork();
        if (kids[i] == 0) {
            close(hold[1]);
            close(ready[0]);
            idle_child(i, first, share, ready[1], hold[0]);
        }
        first += share;
    }
    close(hold[0]);
    close(ready[1]);
    int ok = 0;
    FILE *rf = fdopen(ready[0], "r");
    for (int i = 0; i < o.procs; i++) {
        int v = 0;
        if (fscanf(rf, "%d", &v) == 1)
            ok += v;
    }
    double wall = now_s() - t0;
    sample(&s1);
    sleep(3); /* freed handshake memory settles before RSS is read */
    sample(&s2);
    double per = ok ? ok : 1;
    printf("RESULT label=%s phase=idle tls=%d conns=%d of=%d secs=%.2f per_s=%.0f "
           "rss_b=%.0f anon_b=%.0f bus_rss_b=%.0f",
           o.label, o.tls, ok, o.n, wall, ok / wall, (double)(s2.rss_kib - s0.rss_kib) * 1024 / per,
           (double)(s2.anon_kib - s0.anon_kib) * 1024 / per,
           (double)(s2.bus_rss_kib - s0.bus_rss_kib) * 1024 / per);
    print_sample_delta("idle", &s0, &s1, per, "connect");
    printf(" rss_total_mib=%.0f", (double)s2.rss_kib / 1024);
    /* Held for -H seconds more (past the node's ping interval and idle timeout), then each
     * client process counts the connections the server has not closed. */
    if (o.hold_secs > 0)
        sleep((unsigned)o.hold_secs);
    close(hold[1]);
    int still = 0;
    for (int i = 0; i < o.procs; i++) {
        int v = 0;
        if (fscanf(rf, "%d", &v) == 1)
            still += v;
    }
    printf(" held_after_s=%d still_open=%d\n", o.hold_secs, still);
    fflush(stdout);
    for (int i = 0; i < o.procs; i++)
        waitpid(kids[i], NULL, 0);
    return ok == o.n ? 0 : 1;
}

/* ---- rate: relay at a fixed offered rate ---- */

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double p)
{
    if (!g_nlat)
        return 0;
    size_t i = (size_t)(p * (double)g_nlat);
    return g_lat[i >= g_nlat ? g_nlat - 1 : i];
}

static int cmd_rate(void)
{
    int n = 2 * o.pairs;
    lc_t *c = calloc((size_t)n, sizeof(*c));
    for (int i = 0; i < n; i++) {
        int port = (i & 1) && o.ports[1] ? o.ports[1] : o.ports[0];
        if (lc_open(&c[i], NULL, src_addr(0), port, i / 2, (i & 1) ? 'b' : 'a') != 0) {
            fprintf(stderr, "%s: rate: connection %d failed\n", o.label, i);
            return 1;
        }
    }
    for (int i = 0; i < n; i += 2)
        partner(&c[i], &c[i + 1]);
    int ep = epoll_create1(0);
    for (int i = 0; i < n; i++) {
        set_nonblock(&c[i]);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, c[i].fd, &ev);
    }
    g_latcap = (size_t)o.rate * (size_t)(o.secs + 2);
    g_lat = malloc(g_latcap * sizeof(double));
    sleep(1);
    double t0 = now_s(), ws = t0 + 1, we = ws + o.secs, stop = we;
    long long sent = 0, relayed_all = 0;
    sample_t s0 = {0}, s1 = {0};
    int phase = 0; /* 0 warm-up, 1 window, 2 draining */
    struct epoll_event evs[256];
    for (;;) {
        double t = now_s();
        if (phase == 0 && t >= ws) {
            sample(&s0);
            g_counting = 1;
            g_relayed = 0;
            g_nlat = 0;
            phase = 1;
        }
        if (phase == 1 && t >= we) {
            sample(&s1);
            relayed_all = g_relayed;
            phase = 2;
        }
        if (phase == 2 && t >= stop + 1)
            break;
        if (t < stop) {
            long long due = (long long)((t - t0) * o.rate);
            while (sent < due) {
                lc_t *x = &c[sent % n];
                if (send_kind(x, "offer", (size_t)o.size) != 0)
                    g_errors++;
                sent++;
            }
        }
        int k = epoll_wait(ep, evs, 256, 1);
        for (int i = 0; i < k; i++) {
            lc_t *x = &c[evs[i].data.u32];
            int r;
            while ((r = lc_pump(x)) > 0)
                ;
            if (r < 0) {
                epoll_ctl(ep, EPOLL_CTL_DEL, x->fd, NULL);
                g_errors++;
            }
        }
    }
    qsort(g_lat, g_nlat, sizeof(double), cmp_dbl);
    double per = relayed_all ? (double)relayed_all : 1;
    printf("RESULT label=%s phase=rate pairs=%d offered=%d secs=%d relayed=%lld msg_s=%.0f "
           "loss=%.5f p50_us=%.0f p99_us=%.0f errors=%lld",
           o.label, o.pairs, o.rate, o.secs, relayed_all, (double)relayed_all / (double)o.secs,
           sent ? 1.0 - (double)g_recv_all / (double)sent : 0.0, pct(0.5),
           pct(0.99), g_errors);
    print_sample_delta("rate", &s0, &s1, per, "msg");
    printf("\n");
    fflush(stdout);
    for (int i = 0; i < n; i++)
        lc_close(&c[i]);
    return relayed_all > 0 && g_errors == 0 ? 0 : 1;
}

/* ---- calls: set-ups per second ---- */

static int one_call(int proc, long room)
{
    lc_t a, b;
    int pb = o.ports[1] ? o.ports[1] : o.ports[0];
    if (lc_open(&a, NULL, src_addr(proc), o.ports[0], room, 'a') != 0)
        return -1;
    if (lc_open(&b, NULL, src_addr(proc), pb, room, 'b') != 0) {
        lc_close(&a);
        return -1;
    }
    partner(&a, &b);
    int rc = -1;
    /* The newcomer offers; the other answers; four candidates each way (trickle). */
    if (send_kind(&b, "offer", 4096) || lc_wait(&a, &a.n_offer, 1) ||
        send_kind(&a, "answer", 4096))
        goto out;
    for (int i = 0; i < 4; i++)
        if (send_kind(&a, "candidate", 0))
            goto out;
    if (lc_wait(&b, &b.n_answer, 1))
        goto out;
    for (int i = 0; i < 4; i++)
        if (send_kind(&b, "candidate", 0))
            goto out;
    if (lc_wait(&b, &b.n_cand, 4) || lc_wait(&a, &a.n_cand, 4))
        goto out;
    rc = a.errors || b.errors ? -1 : 0;
out:
    lc_close(&a);
    lc_close(&b);
    return rc;
}

static int cmd_calls(void)
{
    sample_t s0, s1;
    (void)one_call(63, o.calls); /* warm-up, not counted */
    sleep(1);
    sample(&s0);
    int ready[2];
    if (pipe(ready))
        return 1;
    double t0 = now_s();
    pid_t kids[64];
    for (int i = 0; i < o.procs; i++) {
        int per = o.calls / o.procs, first = i * per;
        if (i == o.procs - 1)
            per = o.calls - first;
        kids[i] = fork();
        if (kids[i] == 0) {
            close(ready[0]);
            int ok = 0;
            for (int k = 0; k < per; k++)
                ok += one_call(i, first + k) == 0;
            char m[32];
            int len = snprintf(m, sizeof(m), "%d\n", ok);
            (void)!write(ready[1], m, (size_t)len);
            _exit(0);
        }
    }
    close(ready[1]);
    FILE *rf = fdopen(ready[0], "r");
    int ok = 0;
    for (int i = 0; i < o.procs; i++) {
        int v = 0;
        if (fscanf(rf, "%d", &v) == 1)
            ok += v;
    }
    double wall = now_s() - t0;
    sample(&s1);
    for (int i = 0; i < o.procs; i++)
        waitpid(kids[i], NULL, 0);
    double per = ok ? ok : 1;
    printf("RESULT label=%s phase=calls calls=%d of=%d procs=%d secs=%.2f per_s=%.0f", o.label, ok,
           o.calls, o.procs, wall, ok / wall);
    print_sample_delta("calls", &s0, &s1, per, "call");
    printf("\n");
    fflush(stdout);
    return ok == o.calls ? 0 : 1;
}

/* ---- tokens ---- */

static int cmd_keygen(const char *pub, const char *sec)
{
    ar_token_key_t k;
    if (ar_token_key_generate(&k, "bench") != 0)
        return 1;
    char b64[64];
    sodium_bin2base64(b64, sizeof(b64), k.pk, sizeof(k.pk),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    FILE *f = fopen(pub, "w");
    FILE *g = fopen(sec, "wb");
    if (!f || !g)
        return 1;
    fprintf(f, "%s %s\n", k.kid, b64);
    fwrite(&k, sizeof(k), 1, g);
    fclose(f);
    fclose(g);
    return 0;
}

/* One patient token per room: both members of a pair present it (it opens only that room). */
static int mint_tokens(long rooms)
{
    FILE *g = fopen(o.sec, "rb");
    if (!g || fread(&g_key, sizeof(g_key), 1, g) != 1)
        return fprintf(stderr, "cannot read the key %s\n", o.sec), -1;
    fclose(g);
    g_tokens = calloc((size_t)rooms, sizeof(char *));
    ar_token_claims_t cl;
    memset(&cl, 0, sizeof(cl));
    snprintf(cl.aud, sizeof(cl.aud), "signal");
    cl.role = AR_TOKEN_PATIENT;
    snprintf(cl.jur, sizeof(cl.jur), "eu");
    snprintf(cl.clinic, sizeof(cl.clinic), "c1");
    snprintf(cl.area, sizeof(cl.area), "a1");
    cl.iat = (int64_t)time(NULL) - 5;
    cl.exp = cl.iat + 7200;
    char tok[AR_TOKEN_MAX];
    for (long i = 0; i < rooms; i++) {
        snprintf(cl.sub, sizeof(cl.sub), "s%s%ld", g_run, i);
        snprintf(cl.room, sizeof(cl.room), "%s-%ld", g_run, i);
        int n = ar_token_mint(&g_key, &cl, tok, sizeof(tok));
        if (n < 0)
            return fprintf(stderr, "mint failed: %d\n", n), -1;
        g_tokens[i] = strdup(tok);
    }
    return 0;
}

static int parse_pids(char *s, int *out, int max)
{
    int n = 0;
    for (char *t = strtok(s, ","); t && n < max; t = strtok(NULL, ","))
        out[n++] = atoi(t);
    return n;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return fprintf(stderr, "usage: ar_bench_sigload keygen|idle|rate|calls [options]\n"), 2;
    if (sodium_init() < 0)
        return 1;
    const char *cmd = argv[1];
    if (strcmp(cmd, "keygen") == 0)
        return argc == 4 ? cmd_keygen(argv[2], argv[3]) : 2;
    int opt;
    optind = 2;
    while ((opt = getopt(argc, argv, "d:p:n:P:tUH:k:r:T:c:S:s:B:K:l:b:")) != -1) {
        switch (opt) {
        case 'd':
            o.dialect = strcmp(optarg, "peerjs") == 0 ? D_PEERJS
                        : strcmp(optarg, "ws") == 0   ? D_WS
                        : strcmp(optarg, "raw") == 0  ? D_RAW
                                                      : D_ANTEROOM;
            break;
        case 'p':
            o.ports[0] = atoi(optarg);
            o.ports[1] = strchr(optarg, ',') ? atoi(strchr(optarg, ',') + 1) : 0;
            break;
        case 'n':
            o.n = atoi(optarg);
            break;
        case 'P':
            o.procs = atoi(optarg);
            break;
        case 't':
            o.tls = 1;
            break;
        case 'U':
            o.upgrade_only = 1;
            break;
        case 'H':
            o.hold_secs = atoi(optarg);
            break;
        case 'k':
            o.pairs = atoi(optarg);
            break;
        case 'r':
            o.rate = atoi(optarg);
            break;
        case 'T':
            o.secs = atoi(optarg);
            break;
        case 'c':
            o.calls = atoi(optarg);
            break;
        case 'S':
            o.size = atoi(optarg);
            break;
        case 's':
            o.nspids = parse_pids(optarg, o.spids, 64);
            break;
        case 'B':
            o.nbpids = parse_pids(optarg, o.bpids, 8);
            break;
        case 'K':
            o.sec = optarg;
            break;
        case 'l':
            o.label = optarg;
            break;
        case 'b':
            o.srcbase = atoi(optarg);
            break;
        default:
            return 2;
        }
    }
    if (!o.ports[0] || !o.nspids || o.procs < 1 || o.procs > 60 || (o.n & 1))
        return fprintf(stderr, "need -p, -s, 1..60 processes, an even -n\n"), 2;
    signal(SIGPIPE, SIG_IGN);
    srandom((unsigned)getpid());
    snprintf(g_run, sizeof(g_run), "r%x", (unsigned)(now_ns() / 1000 % 0xffffff));
    long rooms = strcmp(cmd, "calls") == 0 ? o.calls + 2
                 : strcmp(cmd, "rate") == 0 ? o.pairs + 1
                                            : o.n / 2 + 52;
    if (o.dialect == D_ANTEROOM && (!o.sec || mint_tokens(rooms) != 0))
        return fprintf(stderr, "anteroom needs -K key (from keygen)\n"), 2;
    if (strcmp(cmd, "idle") == 0)
        return cmd_idle();
    if (strcmp(cmd, "rate") == 0)
        return cmd_rate();
    if (strcmp(cmd, "calls") == 0)
        return cmd_calls();
    return 2;
}
