/*
 * The data phase: ChannelData (or, in raw mode, bare datagrams) to the echo peer and back.
 *
 * Flat out is a closed loop: each allocation keeps `inflight` packets outstanding and sends one
 * more for every echo, so the offered load follows what the relay delivers and no socket buffer
 * overflows for nothing. At a fixed rate the loop is open: packets leave on a clock whatever
 * comes back, which is what RTT percentiles and loss are measured under.
 *
 * Every payload carries its send time, so a packet is counted for the window it was sent in, and
 * RTT needs no per-packet state. The server's CPU time is read from /proc at the window's edges.
 */
#include "tl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#define DATA_IDLE_NS 300000000ull /* no echo this long: the allocation's packets are lost */

typedef struct win_s {
    uint64_t start, end;   /* measurement window, monotonic ns */
    uint64_t sent;         /* sent inside the window */
    uint64_t recv_sent_in; /* echoes of packets sent inside the window */
    uint64_t recv_in;      /* echoes that arrived inside the window */
    int stop_sending;
} win_t;

static win_t W;

static size_t frame_len(const tl_ctx_t *c, int raw)
{
    size_t n = (size_t)c->o.size + (raw ? 0 : 4);
    return c->o.transport == TL_UDP ? n : (n + 3) & ~(size_t)3;
}

static void fill_frame(const tl_ctx_t *c, const tl_alloc_t *a, int raw, uint8_t *f, uint64_t now)
{
    uint8_t *p = f;
    if (!raw) {
        f[0] = (uint8_t)(a->channel >> 8);
        f[1] = (uint8_t)a->channel;
        f[2] = (uint8_t)(c->o.size >> 8);
        f[3] = (uint8_t)c->o.size;
        p = f + 4;
    }
    uint32_t idx = (uint32_t)(a - c->a);
    memcpy(p, &now, 8);
    memcpy(p + 8, &idx, 4);
    memcpy(p + 12, &a->seq, 4);
}

/* Sends k packets on allocation a; all carry the same send time (they leave together). */
static void send_burst(tl_ctx_t *c, tl_alloc_t *a, int raw, int k)
{
    static uint8_t frame[TL_MAX_PAYLOAD + 8];
    uint64_t now = tl_now_ns();
    size_t flen = frame_len(c, raw);
    fill_frame(c, a, raw, frame, now);
    int sent = 0;
    if (c->o.transport == TL_UDP) {
        struct iovec iov = {.iov_base = frame, .iov_len = flen};
        struct mmsghdr m[TL_BATCH];
        memset(m, 0, sizeof(m));
        for (int i = 0; i < TL_BATCH; i++) {
            m[i].msg_hdr.msg_iov = &iov;
            m[i].msg_hdr.msg_iovlen = 1;
        }
        while (sent < k) {
            int want = k - sent < TL_BATCH ? k - sent : TL_BATCH;
            int n = sendmmsg(a->fd, m, (unsigned)want, 0);
            if (n <= 0)
                break; /* full socket buffer: the rest count as lost */
            sent += n;
        }
    } else {
        while (sent < k && a->tx_len + flen <= a->tx_cap) {
            memcpy(a->tx + a->tx_len, frame, flen);
            a->tx_len += flen;
            sent++;
        }
        if (tl_stream_flush(c, a) != 0)
            a->state = TL_ST_FAILED;
    }
    /* Only what left counts: a full socket buffer (or stream queue) is the client's own limit,
     * and the closed loop's idle scan starts the allocation again. */
    a->seq += (uint32_t)sent;
    a->inflight += (uint32_t)sent;
    c->st->sent += (uint64_t)sent;
    if (now >= W.start && now < W.end)
        W.sent += (uint64_t)sent;
}

/* Accounts one echoed payload. */
static void on_echo(tl_ctx_t *c, tl_alloc_t *a, const uint8_t *p, size_t len, uint64_t now)
{
    uint64_t ts;
    if (len < TL_PAYLOAD_HDR)
        return;
    memcpy(&ts, p, 8);
    c->st->recv++;
    if (a->inflight)
        a->inflight--;
    if (now >= W.start && now < W.end)
        W.recv_in++;
    if (ts >= W.start && ts < W.end) {
        W.recv_sent_in++;
        uint64_t us = (now - ts) / 1000;
        c->st->hist[us > TL_HIST_US ? TL_HIST_US : us]++;
    }
}

/* Drains a's socket; returns how many echoes arrived. */
static int on_data_readable(tl_ctx_t *c, tl_alloc_t *a, int raw)
{
    static uint8_t bufs[TL_BATCH][2048];
    uint64_t now = tl_now_ns();
    int got = 0;
    if (c->o.transport == TL_UDP) {
        struct iovec iov[TL_BATCH];
        struct mmsghdr m[TL_BATCH];
        for (;;) {
            memset(m, 0, sizeof(m));
            for (int i = 0; i < TL_BATCH; i++) {
                iov[i].iov_base = bufs[i];
                iov[i].iov_len = sizeof(bufs[i]);
                m[i].msg_hdr.msg_iov = &iov[i];
                m[i].msg_hdr.msg_iovlen = 1;
            }
            int n = recvmmsg(a->fd, m, TL_BATCH, MSG_DONTWAIT, NULL);
            if (n <= 0)
                break;
            for (int i = 0; i < n; i++) {
                const uint8_t *p = bufs[i];
                size_t len = m[i].msg_len;
                if (!raw) {
                    if (len < 4 || (p[0] & 0xc0) != 0x40)
                        continue; /* a late control answer */
                    p += 4;
                    len -= 4;
                }
                on_echo(c, a, p, len, now);
                got++;
            }
            if (n < TL_BATCH)
                break;
        }
    } else {
        if (tl_stream_read(c, a) < 0) {
            a->state = TL_ST_FAILED;
            return got;
        }
        size_t off = 0;
        while (a->rx_len - off >= 4) {
            const uint8_t *p = a->rx + off;
            size_t flen = (size_t)(p[2] << 8 | p[3]);
            int cd = (p[0] & 0xc0) == 0x40;
            size_t need = cd ? 4 + ((flen + 3) & ~(size_t)3) : 20 + flen;
            if (a->rx_len - off < need)
                break;
            if (cd) {
                on_echo(c, a, p + 4, flen, now);
                got++;
            }
            off += need;
        }
        memmove(a->rx, a->rx + off, a->rx_len - off);
        a->rx_len -= off;
    }
    if (got)
        a->last_rx_ns = now;
    return got;
}

static uint64_t percentile(const tl_stats_t *st, double q)
{
    uint64_t total = 0, acc = 0;
    for (size_t i = 0; i <= TL_HIST_US; i++)
        total += st->hist[i];
    if (!total)
        return 0;
    uint64_t want = (uint64_t)(q * (double)total);
    for (size_t i = 0; i <= TL_HIST_US; i++) {
        acc += st->hist[i];
        if (acc > want)
            return i;
    }
    return TL_HIST_US;
}

/* Grows stream buffers to data-phase size and UDP buffers to absorb bursts. */
static int prepare(tl_ctx_t *c)
{
    for (int i = 0; i < c->o.allocs; i++) {
        tl_alloc_t *a = &c->a[i];
        if (a->state != TL_ST_READY)
            return -1;
        a->last_rx_ns = tl_now_ns();
        int sz = 1 << 20;
        setsockopt(a->fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
        setsockopt(a->fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
        if (c->o.transport == TL_UDP)
            continue;
        uint8_t *rx = realloc(a->rx, TL_STREAM_RX), *tx = rx ? realloc(a->tx, TL_STREAM_TX) : 0;
        if (rx)
            a->rx = rx;
        if (!rx || !tx)
            return -1;
        a->tx = tx;
        a->rx_cap = TL_STREAM_RX;
        a->tx_cap = TL_STREAM_TX;
    }
    return 0;
}

int tl_data_run(tl_ctx_t *c, int raw)
{
    const tl_opts_t *o = &c->o;
    if (prepare(c) != 0) {
        fprintf(stderr, "ar-turnload: data phase needs every allocation ready\n");
        return 1;
    }
    uint64_t t0 = tl_now_ns();
    W.start = t0 + (uint64_t)(o->warmup * 1e9);
    W.end = W.start + (uint64_t)(o->secs * 1e9);
    uint64_t stop = W.end + 500000000ull; /* half a second to drain late echoes */
    long long srv0 = -1, srv1 = -1, me0 = 0, me1 = 0;
    int pid = o->server_pid, in_window = 0, rr = 0;
    uint64_t scheduled = 0, last_scan = t0;
    if (!o->rate)
        for (int i = 0; i < o->allocs; i++)
            send_burst(c, &c->a[i], raw, o->inflight);
    struct epoll_event evs[256];
    for (;;) {
        uint64_t now = tl_now_ns();
        if (!in_window && now >= W.start) {
            in_window = 1;
            srv0 = pid ? tl_proc_cpu_us(pid) : -1;
            me0 = tl_proc_cpu_us(getpid());
        } else if (in_window == 1 && now >= W.end) {
            in_window = 2;
            srv1 = pid ? tl_proc_cpu_us(pid) : -1;
            me1 = tl_proc_cpu_us(getpid());
            W.stop_sending = 1;
        }
        if (now >= stop)
            break;
        if (o->rate && !W.stop_sending) {
            /* Open loop: whatever the clock says is due leaves now, spread round-robin. */
            uint64_t due = (uint64_t)((double)(now - t0) / 1e9 * (double)o->rate);
            while (scheduled < due) {
                uint64_t left = due - scheduled;
                int k = (int)(left / (uint64_t)o->allocs);
                k = k < 1 ? 1 : k > TL_BATCH ? TL_BATCH : k;
                send_burst(c, &c->a[rr], raw, k);
                rr = (rr + 1) % o->allocs;
                scheduled += (uint64_t)k;
            }
        }
        int n = epoll_wait(c->ep, evs, 256, o->rate ? 1 : 10);
        for (int i = 0; i < n; i++) {
            tl_alloc_t *a = &c->a[evs[i].data.u32];
            if (a->state == TL_ST_FAILED)
                continue;
            if ((evs[i].events & EPOLLOUT) && tl_stream_flush(c, a) != 0)
                a->state = TL_ST_FAILED;
            int got = on_data_readable(c, a, raw);
            if (!o->rate && got && !W.stop_sending)
                send_burst(c, a, raw, got);
        }
        if (o->rate || W.stop_sending || now - last_scan < 100000000ull)
            continue;
        /* Closed loop: an allocation whose echoes stopped coming lost what it had in flight;
         * count that and start it again so one lost burst does not idle it for good. */
        last_scan = now;
        for (int i = 0; i < o->allocs; i++) {
            tl_alloc_t *a = &c->a[i];
            if (a->state == TL_ST_FAILED || !a->inflight || now - a->last_rx_ns < DATA_IDLE_NS)
                continue;
            c->st->lost += a->inflight;
            a->inflight = 0;
            a->last_rx_ns = now;
            send_burst(c, a, raw, o->inflight);
        }
    }
    int failed = 0;
    for (int i = 0; i < o->allocs; i++)
        failed += c->a[i].state == TL_ST_FAILED;
    double secs = o->secs;
    uint64_t relayed = 2 * W.recv_in; /* each echo was relayed twice: out and back */
    double loss = W.sent ? 1.0 - (double)W.recv_sent_in / (double)W.sent : 0.0;
    long long srv_cpu = srv0 >= 0 && srv1 >= 0 ? srv1 - srv0 : -1;
    printf("RESULT mode=%s transport=%s size=%d allocs=%d rate=%ld secs=%.1f sent=%llu "
           "recv=%llu pps=%.0f relayed_pps=%.0f loss=%.5f rtt_p50_us=%llu rtt_p99_us=%llu "
           "srv_cpu_us=%lld cpu_us_per_pkt=%.3f srv_cpu_pct=%.0f client_cpu_pct=%.0f "
           "srv_rss_kb=%ld failed=%d\n",
           raw ? "raw" : "turn",
           o->transport == TL_UDP   ? "udp"
           : o->transport == TL_TCP ? "tcp"
                                    : "tls",
           o->size, o->allocs, o->rate, secs, (unsigned long long)W.sent,
           (unsigned long long)W.recv_in, (double)W.recv_in / secs, (double)relayed / secs, loss,
           (unsigned long long)percentile(c->st, 0.50), (unsigned long long)percentile(c->st, 0.99),
           srv_cpu, srv_cpu >= 0 && relayed ? (double)srv_cpu / (double)relayed : -1.0,
           srv_cpu >= 0 ? (double)srv_cpu / (secs * 1e4) : -1.0, (double)(me1 - me0) / (secs * 1e4),
           pid ? tl_proc_rss_kb(pid) : -1L, failed);
    fflush(stdout);
    return failed == o->allocs ? 1 : 0;
}
