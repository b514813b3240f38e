/*
 * CPU of what the owner does to a frame before writing it to a client (sess.c,
 * ar__sig_frame_wire): the session's seq and the frame id (22 characters of base64url, protocol
 * 5.10.1) spliced into the "seq":0 placeholder. Beside it, the anchor: the same frame copied once
 * (memcpy of every byte; the splice before fid was that plus the digits). For a candidate (about
 * 180 bytes) and a browser-sized offer (about 4 KB). Process CPU time over many rounds.
 * Usage: ar_bench_sig_splice [rounds=2000000]
 */
#include "../../src/signal/internal.h"

#include "anteroom/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double cpu_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static char out[AR_SIG_OUT_MAX + 64];

static void measure(const char *label, const char *frame, int rounds)
{
    size_t len = strlen(frame);
    ar__sig_frame_t *f = ar_malloc(sizeof(*f) + len + 1);
    if (!f)
        exit(1);
    memset(f, 0, sizeof(*f));
    for (int i = 0; i < 16; i++)
        f->fid[i] = (uint8_t)(i * 37 + 1);
    f->len = (uint32_t)len;
    memcpy(f->data, frame, len + 1);
    volatile size_t sink = 0;
    double t0 = cpu_ns();
    for (int i = 0; i < rounds; i++) {
        f->seq = 1000 + i;
        sink += ar__sig_frame_wire(f, out, sizeof(out));
    }
    double t1 = cpu_ns();
    for (int i = 0; i < rounds; i++) {
        memcpy(out, f->data, len);
        sink += (size_t)out[i % len];
    }
    double t2 = cpu_ns();
    printf("%-10s %5zu B  splice seq+fid %7.1f ns  copy (anchor) %7.1f ns  ratio %.2f\n", label,
           len, (t1 - t0) / rounds, (t2 - t1) / rounds, (t1 - t0) / (t2 - t1));
    (void)sink;
    ar_free(f);
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 2000000;
    if (rounds <= 0)
        return 2;
    measure("candidate",
            "{\"v\":1,\"type\":\"candidate\",\"seq\":0,\"from\":\"Qm9P3xkR0a1b2c3d4e5f6g\","
            "\"candidate\":\"candidate:842163049 1 udp 1677729535 192.0.2.10 54400 typ srflx "
            "raddr 0.0.0.0\",\"mid\":\"0\",\"mline\":0}",
            rounds);
    static char offer[4400];
    size_t o = (size_t)snprintf(offer, sizeof(offer),
                                "{\"v\":1,\"type\":\"offer\",\"seq\":0,\"from\":"
                                "\"Qm9P3xkR0a1b2c3d4e5f6g\",\"sdp\":\"v=0\\r\\n");
    while (o + 40 < 4200)
        o += (size_t)snprintf(offer + o, sizeof(offer) - o, "a=x-pad:0123456789abcdef\\r\\n");
    snprintf(offer + o, sizeof(offer) - o, "\"}");
    measure("offer", offer, rounds / 4);
    return 0;
}
