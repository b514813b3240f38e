/*
 * Load generator and meter for the signalling transport. It measures the SERVER, from outside:
 *  - idle phase: P client processes open N connections (TCP, optional TLS, WebSocket upgrade
 *    unless raw) one after another and keep them idle; the server's RSS delta / N (VmRSS of
 *    /proc/<pid>/status) and CPU delta / N (utime+stime of /proc/<pid>/stat, and the finer
 *    /proc/<pid>/schedstat run time) are printed;
 *  - relay phase (plain only): K pairs opened in order (servers pair connections in accept
 *    order) exchange S-byte messages ping-pong for T seconds; server CPU per relayed message and
 *    latency p50/p99 are printed.
 * Several client processes are used because one process may hold only 20,000 files.
 *
 * TLS knobs (environment): AR_BENCH_TLS12=1 caps the client at TLS 1.2; AR_BENCH_TLS13_SUITES
 * and AR_BENCH_TLS12_CIPHERS restrict its suites.
 *
 * Usage: ar_bench_signal -p PORT -s PID[,PID..] [-n N] [-P procs] [-t] [-r] [-k pairs] [-T secs]
 *                        [-S bytes] [-l label]
 */
#include "ws/ws.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct opts_s {
    int port, n, procs, tls, raw, pairs, secs, size;
    int pids[64], npids;
    const char *label;
} opts_t;

static opts_t o = {.n = 1000, .procs = 2, .secs = 10, .size = 100, .label = "server"};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Server totals over its processes: RSS in KiB, CPU in clock ticks and schedstat ns. */
typedef struct sample_s {
    long rss_kib;
    long anon_kib; /* RssAnon: the heap, without code pages */
    long long ticks;
    long long run_ns;
} sample_t;

static void sample(sample_t *s)
{
    memset(s, 0, sizeof(*s));
    char path[64], line[512];
    for (int i = 0; i < o.npids; i++) {
        snprintf(path, sizeof(path), "/proc/%d/status", o.pids[i]);
        FILE *f = fopen(path, "r");
        while (f && fgets(line, sizeof(line), f))
            if (strncmp(line, "VmRSS:", 6) == 0)
                s->rss_kib += atol(line + 6);
            else if (strncmp(line, "RssAnon:", 8) == 0)
                s->anon_kib += atol(line + 8);
        if (f)
            fclose(f);
        snprintf(path, sizeof(path), "/proc/%d/stat", o.pids[i]);
        f = fopen(path, "r");
        if (f && fgets(line, sizeof(line), f)) {
            /* Fields 14 and 15 (utime, stime) follow the ")" that ends the command name. */
            char *p = strrchr(line, ')');
            unsigned long ut = 0, st = 0;
            if (p &&
                sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2)
                s->ticks += (long long)(ut + st);
        }
        if (f)
            fclose(f);
        /* schedstat is per thread: sum the tasks (Node runs GC and I/O threads). */
        snprintf(path, sizeof(path), "/proc/%d/task", o.pids[i]);
        DIR *d = opendir(path);
        struct dirent *de;
        while (d && (de = readdir(d)) != NULL) {
            if (de->d_name[0] == '.')
                continue;
            char tp[320];
            snprintf(tp, sizeof(tp), "/proc/%d/task/%s/schedstat", o.pids[i], de->d_name);
            f = fopen(tp, "r");
            long long ns = 0;
            if (f && fscanf(f, "%lld", &ns) == 1)
                s->run_ns += ns;
            if (f)
                fclose(f);
        }
        if (d)
            closedir(d);
    }
}

static SSL_CTX *client_ctx(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL); /* our own self-signed bench certificate */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    /* Knobs to see what the server's per-connection TLS memory depends on. */
    const char *v = getenv("AR_BENCH_TLS12");
    if (v && *v == '1')
        SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
    v = getenv("AR_BENCH_TLS13_SUITES");
    if (v)
        SSL_CTX_set_ciphersuites(ctx, v);
    v = getenv("AR_BENCH_TLS12_CIPHERS");
    if (v)
        SSL_CTX_set_cipher_list(ctx, v);
    return ctx;
}

static int io_write(int fd, SSL *ssl, const void *b, size_t n)
{
    return ssl ? SSL_write(ssl, b, (int)n) : (int)send(fd, b, n, MSG_NOSIGNAL);
}

static int io_read(int fd, SSL *ssl, void *b, size_t n)
{
    return ssl ? SSL_read(ssl, b, (int)n) : (int)recv(fd, b, n, 0);
}

/* One blocking connection: TCP, TLS, upgrade. Returns the fd or -1. */
static int open_one(SSL_CTX *ctx, SSL **out_ssl)
{
    *out_ssl = NULL;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)o.port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    SSL *ssl = NULL;
    if (ctx) {
        ssl = SSL_new(ctx);
        SSL_set_fd(ssl, fd);
        if (SSL_connect(ssl) != 1) {
            SSL_free(ssl);
            close(fd);
            return -1;
        }
    }
    *out_ssl = ssl;
    if (o.raw)
        return fd;
    static const char req[] =
        "GET /signal HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Origin: https://bench.anteroom.invalid\r\n"
        "Sec-WebSocket-Protocol: anteroom.v1\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n";
    char resp[512];
    size_t got = 0;
    if (io_write(fd, ssl, req, sizeof(req) - 1) != (int)sizeof(req) - 1)
        goto fail;
    while (got < sizeof(resp) - 1) {
        int r = io_read(fd, ssl, resp + got, sizeof(resp) - 1 - got);
        if (r <= 0)
            goto fail;
        got += (size_t)r;
        resp[got] = '\0';
        if (strstr(resp, "\r\n\r\n"))
            break;
    }
    if (strncmp(resp, "HTTP/1.1 101", 12) != 0)
        goto fail;
    return fd;
fail:
    if (ssl)
        SSL_free(ssl);
    close(fd);
    return -1;
}

/* A client process: opens n connections, reports, then holds them until its pipe closes. */
static void child(int n, int ready_fd, int hold_fd)
{
    SSL_CTX *ctx = o.tls ? client_ctx() : NULL;
    int ok = 0;
    for (int i = 0; i < n; i++) {
        SSL *ssl;
        if (open_one(ctx, &ssl) >= 0)
            ok++;
    }
    char msg[32];
    int len = snprintf(msg, sizeof(msg), "%d\n", ok);
    (void)!write(ready_fd, msg, (size_t)len);
    char b;
    (void)!read(hold_fd, &b, 1);
    _exit(0);
}

/* ---- relay phase ---- */

typedef struct rconn_s {
    int fd;
    ar_ws_parser_t p;
    size_t have; /* bytes of the current message seen */
    uint8_t ts[8];
} rconn_t;

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void send_msg(rconn_t *c, double t)
{
    uint8_t buf[16 + 65536];
    size_t n = 0;
    static const uint8_t mask[4] = {1, 2, 3, 4};
    if (!o.raw)
        n = ar_ws_frame_header(buf, AR_WS_OP_BINARY, 1, (uint64_t)o.size, mask);
    memset(buf + n, 'x', (size_t)o.size);
    memcpy(buf + n, &t, sizeof(t));
    if (!o.raw)
        ar_ws_mask(buf + n, (size_t)o.size, mask, 0);
    n += (size_t)o.size;
    (void)!send(c->fd, buf, n, MSG_NOSIGNAL);
}

/* Feeds received bytes; returns how many whole messages ended (their timestamps in *ts). */
static int on_bytes(rconn_t *c, uint8_t *b, size_t n, double *ts_out)
{
    int msgs = 0;
    if (o.raw) {
        for (size_t i = 0; i < n; i++) {
            if (c->have < 8)
                c->ts[c->have] = b[i];
            if (++c->have == (size_t)o.size) {
                memcpy(ts_out, c->ts, 8);
                c->have = 0;
                msgs++;
            }
        }
        return msgs;
    }
    size_t off = 0;
    for (;;) {
        size_t used;
        ar_ws_event_t ev;
        if (ar_ws_parse(&c->p, b + off, n - off, &used, &ev) != 0)
            return -1;
        off += used;
        if (ev.type == AR_WS_EV_NEED_MORE)
            return msgs;
        if (ev.type == AR_WS_EV_DATA)
            for (size_t i = 0; i < ev.len && c->have < 8; i++)
                c->ts[c->have++] = ev.data[i];
        if (ev.type == AR_WS_EV_FRAME_END && ev.msg_end) {
            memcpy(ts_out, c->ts, 8);
            c->have = 0;
            msgs++;
        }
    }
}

static void relay_phase(void)
{
    int k = o.pairs;
    rconn_t *c = calloc((size_t)(2 * k), sizeof(*c));
    for (int i = 0; i < 2 * k; i++) {
        SSL *ssl;
        c[i].fd = open_one(NULL, &ssl);
        if (c[i].fd < 0) {
            fprintf(stderr, "relay: connect failed\n");
            exit(1);
        }
        ar_ws_parser_init(&c[i].p, 0, 1 << 20);
    }
    int ep = epoll_create1(0);
    for (int i = 0; i < 2 * k; i++) {
        fcntl(c[i].fd, F_SETFL, O_NONBLOCK);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, c[i].fd, &ev);
    }
    size_t cap = 2000000, nlat = 0;
    double *lat = malloc(cap * sizeof(double));
    long long msgs = 0;
    /* Warm up for one second so the server's buffers exist, then measure. */
    double t0 = now_s(), start = t0 + 1, end = start + o.secs;
    sample_t s0 = {0}, s1;
    int measuring = 0;
    for (int i = 0; i < k; i++)
        send_msg(&c[2 * i], now_s());
    static uint8_t buf[1 << 16];
    struct epoll_event evs[256];
    for (;;) {
        double t = now_s();
        if (!measuring && t >= start) {
            sample(&s0);
            msgs = 0;
            nlat = 0;
            measuring = 1;
        }
        if (t >= end)
            break;
        int n = epoll_wait(ep, evs, 256, 100);
        for (int i = 0; i < n; i++) {
            rconn_t *r = &c[evs[i].data.u32];
            ssize_t got = recv(r->fd, buf, sizeof(buf), 0);
            if (got <= 0)
                continue;
            double ts[1] = {0}; /* the last message's send time stands for all in this read */
            int m = on_bytes(r, buf, (size_t)got, ts);
            for (int j = 0; j < m; j++) {
                double tn = now_s();
                msgs++;
                if (nlat < cap)
                    lat[nlat++] = tn - ts[0];
                send_msg(r, tn); /* the answer goes back through the server to the pair */
            }
        }
    }
    sample(&s1);
    qsort(lat, nlat, sizeof(double), cmp_dbl);
    double secs = (double)o.secs;
    printf("%s relay: pairs %d, %d-byte messages, %.0f msg/s, server CPU %.1f us/msg "
           "(schedstat %.1f us/msg), latency p50 %.0f us p99 %.0f us\n",
           o.label, k, o.size, (double)msgs / secs,
           (double)(s1.ticks - s0.ticks) * 1e6 / (double)sysconf(_SC_CLK_TCK) / (double)msgs,
           (double)(s1.run_ns - s0.run_ns) / 1e3 / (double)msgs, nlat ? lat[nlat / 2] * 1e6 : 0.0,
           nlat ? lat[nlat * 99 / 100] * 1e6 : 0.0);
    for (int i = 0; i < 2 * k; i++)
        close(c[i].fd);
    free(lat);
    free(c);
}

int main(int argc, char **argv)
{
    int opt;
    while ((opt = getopt(argc, argv, "p:s:n:P:trk:T:S:l:")) != -1) {
        switch (opt) {
        case 'p':
            o.port = atoi(optarg);
            break;
        case 's':
            for (char *t = strtok(optarg, ","); t && o.npids < 64; t = strtok(NULL, ","))
                o.pids[o.npids++] = atoi(t);
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
        case 'r':
            o.raw = 1;
            break;
        case 'k':
            o.pairs = atoi(optarg);
            break;
        case 'T':
            o.secs = atoi(optarg);
            break;
        case 'S':
            o.size = atoi(optarg) < 8 ? 8 : atoi(optarg);
            break;
        case 'l':
            o.label = optarg;
            break;
        default:
            return 2;
        }
    }
    if (!o.port || !o.npids || o.procs < 1 || o.procs > 64 || (o.n & 1))
        return fprintf(stderr, "need -p, -s, an even -n\n"), 2;
    signal(SIGPIPE, SIG_IGN);
    /* Warm-up: 100 connections opened and closed first, so the server's code pages and loop
     * buffers are resident before the baseline and are not charged to the connections. */
    {
        SSL_CTX *ctx = o.tls ? client_ctx() : NULL;
        int fds[100];
        SSL *ssls[100];
        for (int i = 0; i < 100; i++)
            fds[i] = open_one(ctx, &ssls[i]);
        for (int i = 0; i < 100; i++) {
            if (ssls[i] && fds[i] >= 0)
                SSL_free(ssls[i]);
            if (fds[i] >= 0)
                close(fds[i]);
        }
        if (ctx)
            SSL_CTX_free(ctx);
        sleep(1);
    }
    sample_t s0, s1;
    sample(&s0);
    int ready[2], hold[2];
    if (pipe(ready) || pipe(hold))
        return 1;
    double t0 = now_s();
    pid_t kids[64];
    for (int i = 0; i < o.procs; i++) {
        int share = o.n / o.procs + (i < o.n % o.procs ? 1 : 0);
        kids[i] = fork();
        if (kids[i] == 0) {
            close(hold[1]);
            child(share, ready[1], hold[0]);
        }
    }
    close(hold[0]);
    int ok = 0;
    FILE *rf = fdopen(ready[0], "r");
    for (int i = 0; i < o.procs; i++) {
        int v = 0;
        if (fscanf(rf, "%d", &v) == 1)
            ok += v;
    }
    double wall = now_s() - t0;
    sample(&s1);
    /* Let the server settle (freed handshake memory, released TLS buffers) before RSS. */
    sleep(2);
    sample_t s2;
    sample(&s2);
    double tick_us = 1e6 / (double)sysconf(_SC_CLK_TCK);
    printf("%s idle: %d/%d connections%s%s in %.2f s (%.0f/s); server RSS +%ld KiB = %.3f KiB "
           "(%.0f B) per connection, RssAnon %.0f B per connection; server CPU %.1f us per "
           "connect (schedstat %.1f us)\n",
           o.label, ok, o.n, o.tls ? " TLS" : "", o.raw ? " raw TCP" : " WebSocket", wall,
           (double)ok / wall, s2.rss_kib - s0.rss_kib,
           (double)(s2.rss_kib - s0.rss_kib) / (ok ? ok : 1),
           (double)(s2.rss_kib - s0.rss_kib) * 1024.0 / (ok ? ok : 1),
           (double)(s2.anon_kib - s0.anon_kib) * 1024.0 / (ok ? ok : 1),
           (double)(s1.ticks - s0.ticks) * tick_us / (ok ? ok : 1),
           (double)(s1.run_ns - s0.run_ns) / 1e3 / (ok ? ok : 1));
    fflush(stdout);
    if (o.pairs > 0 && !o.tls)
        relay_phase();
    close(hold[1]);
    for (int i = 0; i < o.procs; i++)
        waitpid(kids[i], NULL, 0);
    return ok == o.n ? 0 : 1;
}
