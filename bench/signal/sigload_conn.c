/* ar_bench_sigload's connections: see sigload.h and the comment at the top of sigload.c. */
#include "sigload.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- connections ---- */

long long sl_relayed, sl_recv_all, sl_errors;
double sl_write_wait_s, sl_write_wait_max_s;
double *sl_lat;
size_t sl_nlat, sl_latcap;
int sl_counting;

SSL_CTX *sl_client_ctx(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL); /* the benchmark's own self-signed cert */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    return ctx;
}

int sl_write(sl_conn_t *c, const void *b, size_t n)
{
    if (c->ssl)
        return SSL_write(c->ssl, b, (int)n) == (int)n ? 0 : -1;
    const uint8_t *p = b;
    double waited_from = 0;
    int rc = 0;
    while (n > 0) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN) {
            /* a full socket buffer: wait for room rather than drop a frame */
            if (!waited_from)
                waited_from = sl_now_s();
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
        if (w <= 0) {
            rc = -1;
            break;
        }
        p += w;
        n -= (size_t)w;
    }
    if (waited_from) {
        double waited = sl_now_s() - waited_from;
        sl_write_wait_s += waited;
        if (waited > sl_write_wait_max_s)
            sl_write_wait_max_s = waited;
    }
    return rc;
}

/* Writes the WebSocket upgrade request of the dialect (the room's path for the Node relay, the
 * id and token for PeerJS, /ws for anteroom). */
int sl_send_upgrade(sl_conn_t *c, int port, long room)
{
    char path[160], req[512];
    if (sl_o.dialect == D_ANTEROOM)
        snprintf(path, sizeof(path), "/ws");
    else if (sl_o.dialect == D_PEERJS)
        snprintf(path, sizeof(path), "/peerjs?key=peerjs&id=%s&token=t%ld", c->id, room);
    else
        snprintf(path, sizeof(path), "/?room=%s-%ld", sl_run, room);
    int rn = snprintf(req, sizeof(req),
                      "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      "Origin: https://bench.anteroom.invalid\r\n"
                      "Sec-WebSocket-Protocol: anteroom.v1\r\nSec-WebSocket-Version: 13\r\n\r\n",
                      path, port);
    return sl_write(c, req, (size_t)rn);
}

/* One masked frame (clients mask, RFC 6455 5.3). */
int sl_send_frame(sl_conn_t *c, uint8_t op, const char *s, size_t n)
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
    return sl_write(c, buf, h + n);
}

int sl_send(sl_conn_t *c, const char *s)
{
    return sl_send_frame(c, AR_WS_OP_TEXT, s, strlen(s));
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
        sl_recv_all++;
    if (!t || !sl_counting)
        return;
    uint64_t sent = strtoull(t + 3, NULL, 16);
    sl_relayed++;
    if (sl_nlat < sl_latcap)
        sl_lat[sl_nlat++] = (double)(sl_now_ns() - sent) / 1e3;
}

/* A whole text message from the server. */
static void on_msg(sl_conn_t *c, const char *m, size_t n)
{
    const char *end = m + n;
    const char *ty = jfind(m, n, "type");
    if (!ty)
        return;
    if (sl_o.dialect == D_ANTEROOM) {
        const char *sq = jfind(m, n, "seq");
        unsigned long long seq = sq ? strtoull(sq, NULL, 10) : 0;
        if (seq > c->last_seq) {
            c->last_seq = seq;
            if (++c->unacked >= 32) {
                char a[64];
                snprintf(a, sizeof(a), "{\"v\":1,\"type\":\"ack\",\"seq\":%llu}", seq);
                (void)sl_send(c, a);
                c->unacked = 0;
            }
        }
        if (strncmp(ty, "welcome\"", 8) == 0) {
            jcopy(c->id, sizeof(c->id), jfind(m, n, "peer"), end);
            jcopy(c->resume, sizeof(c->resume), jfind(m, n, "resume"), end);
            c->resumed = memmem(m, n, "\"resumed\":true", 14) != NULL;
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
            (void)sl_send(c, "{\"v\":1,\"type\":\"pong\"}");
            (void)sl_send(c, a);
            c->unacked = 0;
            return;
        }
        if (strncmp(ty, "error\"", 6) == 0) {
            c->errors++;
            if (sl_errors++ < 5)
                fprintf(stderr, "%s: server error: %.*s\n", sl_o.label, (int)(n > 200 ? 200 : n),
                        m);
            return;
        }
    } else if (sl_o.dialect == D_PEERJS) {
        if (strncmp(ty, "OPEN\"", 5) == 0) {
            c->open = 1;
            return;
        }
        if (strncmp(ty, "ERROR\"", 6) == 0 || strncmp(ty, "ID-TAKEN\"", 9) == 0) {
            c->errors++;
            if (sl_errors++ < 5)
                fprintf(stderr, "%s: server error: %.*s\n", sl_o.label, (int)(n > 200 ? 200 : n),
                        m);
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
static int lc_feed(sl_conn_t *c, uint8_t *b, size_t n)
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
        if (ev.type == AR_WS_EV_FRAME_START) {
            c->data_frame = ev.opcode < 8;
            c->close_frame = ev.opcode == AR_WS_OP_CLOSE;
        }
        /* The close code (4016 busy: the node asks to come back later, sigload.c). */
        if (ev.type == AR_WS_EV_DATA && c->close_frame && !c->close_code && ev.len >= 2)
            c->close_code = (int)ev.data[0] << 8 | ev.data[1];
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
                (void)sl_send_frame(c, AR_WS_OP_PONG, "", 0);
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
int sl_pump(sl_conn_t *c)
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
int sl_wait(sl_conn_t *c, const int *flag, int want)
{
    while (*flag < want)
        if (sl_pump(c) <= 0)
            return -1;
    return 0;
}

void sl_close(sl_conn_t *c)
{
    if (c->fd < 0)
        return;
    if (sl_o.dialect == D_ANTEROOM)
        (void)sl_send(c, "{\"v\":1,\"type\":\"bye\"}");
    if (c->ssl)
        SSL_free(c->ssl);
    close(c->fd);
    free(c->msg);
    memset(c, 0, sizeof(*c));
    c->fd = -1;
}

/*
 * The bare and Node relays forward frames unread, so the address in them is never looked at; it
 * still gets the length of anteroom's peer ids (SL_PEER_LEN), so that every server relays frames
 * of the same size (an empty "to" made theirs 22 bytes shorter than anteroom's).
 */
static void relay_id(sl_conn_t *c, long room, char who)
{
    char t[64];
    int n = snprintf(t, sizeof(t), "%s-%032ld%c", sl_run, room, who);
    if (n >= SL_PEER_LEN && (size_t)n < sizeof(t))
        memcpy(c->id, t + n - SL_PEER_LEN, SL_PEER_LEN + 1); /* unique: the room and who */
}

/*
 * Opens one blocking connection from source address src (0: any): TCP, TLS, the upgrade, then
 * the dialect's handshake (anteroom: hello and, with room >= 0, join; peerjs: OPEN). `who` is
 * 'a' or 'b', the member of the pair.
 */
int sl_open(sl_conn_t *c, SSL_CTX *ctx, uint32_t src, int port, long room, char who)
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
    ar_ws_parser_init(&c->p, sl_o.dialect == D_RAW, 1 << 20);
    if (sl_o.dialect == D_PEERJS)
        snprintf(c->id, sizeof(c->id), "%s-%ld%c", sl_run, room, who);
    if (sl_o.dialect == D_RAW || sl_o.dialect == D_WS)
        relay_id(c, room, who);
    if (sl_o.dialect == D_RAW)
        return 0;
    if (sl_send_upgrade(c, port, room) != 0)
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
    if (sl_o.dialect == D_PEERJS && sl_wait(c, &c->open, 1) != 0)
        goto fail;
    if (sl_o.dialect == D_ANTEROOM && !sl_o.upgrade_only) {
        char m[AR_TOKEN_MAX + 64];
        snprintf(m, sizeof(m), "{\"v\":1,\"type\":\"hello\",\"token\":\"%s\"}", sl_tokens[room]);
        if (sl_send(c, m) != 0 || sl_wait(c, &c->welcome, 1) != 0)
            goto fail;
        snprintf(m, sizeof(m), "{\"v\":1,\"type\":\"join\",\"room\":\"%s-%ld\"}", sl_run, room);
        if (sl_send(c, m) != 0 || sl_wait(c, &c->joined, 1) != 0)
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

void sl_set_nonblock(sl_conn_t *c)
{
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
}

uint32_t sl_src_addr(int proc)
{
    /* 127.1.<base>.<proc+1>: a fresh source address per client process and run */
    return (127u << 24) | (1u << 16) | ((uint32_t)(sl_o.srcbase & 255) << 8) | (uint32_t)(proc + 1);
}

/* ---- messages ---- */

/* A relayed message of about `size` bytes (offer) or a candidate, in the dialect's form. */
static int build(char *out, size_t cap, const sl_conn_t *c, const char *kind, size_t size)
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
                     (unsigned)random() % 50000u + 10000, (unsigned long long)sl_now_ns());
    } else {
        /* SDP-like lines; "\r\n" is 4 bytes once escaped in JSON */
        n = snprintf(body, sizeof(body), "v=0\\r\\no=- 1 2 IN IP4 0.0.0.0\\r\\n~T=%016llx\\r\\n",
                     (unsigned long long)sl_now_ns());
        while ((size_t)n < pad) {
            int k = snprintf(body + n, sizeof(body) - (size_t)n, "a=x-bench:%08x\\r\\n",
                             (unsigned)random());
            if (k <= 0 || (size_t)(n + k) >= sizeof(body))
                break;
            n += k;
        }
    }
    (void)n;
    if (sl_o.dialect == D_PEERJS) {
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

int sl_send_kind(sl_conn_t *c, const char *kind, size_t size)
{
    char m[12288];
    int n = build(m, sizeof(m), c, kind, size);
    return n > 0 && (size_t)n < sizeof(m) ? sl_send(c, m) : -1;
}

/* Makes a and b partners: each addresses the other. */
void sl_partner(sl_conn_t *a, sl_conn_t *b)
{
    memcpy(a->to, b->id, sizeof(a->to));
    memcpy(b->to, a->id, sizeof(b->to));
}
