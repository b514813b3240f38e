/*
 * ar-turnload entry point: options, /proc sampling and the order of the phases. The result of a
 * run is one line starting with "RESULT" of key=value pairs that bench/turn/run.sh parses.
 */
#include "tl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

uint64_t tl_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int tl_set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

int tl_parse_addr(const char *s, struct sockaddr_in *out)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= sizeof(host))
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = 0;
    memset(out, 0, sizeof(*out));
    out->sin_family = AF_INET;
    out->sin_port = htons((uint16_t)atoi(colon + 1));
    return inet_pton(AF_INET, host, &out->sin_addr) == 1 ? 0 : -1;
}

long long tl_proc_cpu_us(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    /* The command name may hold spaces: fields are counted from the last ')'. utime and stime
     * are fields 14 and 15, so the 12th and 13th after the state field. */
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    unsigned long long ut = 0, stt = 0;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &stt) != 2)
        return -1;
    long hz = sysconf(_SC_CLK_TCK);
    return (long long)((ut + stt) * 1000000ull / (unsigned long long)hz);
}

long tl_proc_rss_kb(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kb = -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: ar-turnload peer --listen IP:PORT [--secs S]\n"
            "       ar-turnload turn --server IP:PORT --peer IP:PORT [--transport udp|tcp|tls]\n"
            "                   [--user U --pass P | --secret S] [--allocs N] [--window W]\n"
            "                   [--size B] [--rate PPS | --inflight K] [--warmup S] [--secs S]\n"
            "                   [--server-pid PID] [--no-data [--alloc-only] --hold S]\n"
            "                   [--bind IP [--spread K]]\n"
            "       ar-turnload raw --server IP:PORT (ar-bareforward) [same data options]\n");
}

static int run_turn(tl_ctx_t *c, int raw)
{
    int pid = c->o.server_pid;
    if (tl_ctrl_init(c) != 0 || (raw && tl_raw_open(c) != 0))
        return 1;
    if (!raw) {
        /* Phase 1 is the allocation rate test: Allocate (401, then with credentials) over all
         * allocations with `window` transactions in flight, bracketed by the server's CPU. */
        long long cpu0 = pid ? tl_proc_cpu_us(pid) : 0;
        uint64_t t0 = tl_now_ns();
        int ok = tl_ctrl_run_phase(c, 1, 60.0);
        double dt = (double)(tl_now_ns() - t0) / 1e9;
        long long cpu1 = pid ? tl_proc_cpu_us(pid) : 0;
        printf("ALLOC allocs=%d ok=%d secs=%.3f allocs_per_s=%.0f srv_cpu_us=%lld "
               "cpu_us_per_alloc=%.1f\n",
               c->o.allocs, ok, dt, ok / dt, cpu1 - cpu0, ok ? (double)(cpu1 - cpu0) / ok : 0.0);
        fflush(stdout);
        /* Phase 2: CreatePermission + ChannelBind, what a usable allocation also costs. */
        t0 = tl_now_ns();
        int ok2 = ok < c->o.allocs ? 0 : c->o.alloc_only ? ok : tl_ctrl_run_phase(c, 2, 60.0);
        dt = (double)(tl_now_ns() - t0) / 1e9;
        long long cpu2 = pid ? tl_proc_cpu_us(pid) : 0;
        printf("BIND allocs=%d ok=%d secs=%.3f srv_cpu_us=%lld\n", c->o.allocs, ok2, dt,
               cpu2 - cpu1);
        fflush(stdout);
        if (ok2 < c->o.allocs) {
            printf("FAILED allocated=%d bound=%d of %d\n", ok, ok2, c->o.allocs);
            tl_ctrl_close_all(c);
            return 1;
        }
    }
    if (c->o.no_data) {
        printf("READY allocs=%d rss_kb=%ld\n", c->o.allocs, pid ? tl_proc_rss_kb(pid) : -1);
        fflush(stdout);
        /* Keep the allocations (and, for TCP/TLS, their connections) open until told to stop:
         * run.sh reads the server's RSS meanwhile. */
        uint64_t end = tl_now_ns() + (uint64_t)(c->o.hold * 1e9);
        while (tl_now_ns() < end)
            usleep(100000);
        tl_ctrl_close_all(c);
        return 0;
    }
    int rc = tl_data_run(c, raw);
    tl_ctrl_close_all(c);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage();
        return 2;
    }
    const char *mode = argv[1];
    static tl_ctx_t ctx;
    tl_opts_t *o = &ctx.o;
    o->allocs = 1;
    o->window = 64;
    o->inflight = 8;
    o->size = 160;
    o->warmup = 1;
    o->secs = 5;
    o->spread = 1;
    o->user = "bench";
    o->pass = "bench";
    const char *listen_addr = NULL, *server = NULL, *peer = NULL;

    static const struct option lo[] = {
        {"listen", 1, 0, 'l'},    {"server", 1, 0, 's'},     {"peer", 1, 0, 'p'},
        {"transport", 1, 0, 't'}, {"user", 1, 0, 'u'},       {"pass", 1, 0, 'P'},
        {"secret", 1, 0, 'S'},    {"allocs", 1, 0, 'n'},     {"window", 1, 0, 'w'},
        {"size", 1, 0, 'b'},      {"rate", 1, 0, 'r'},       {"inflight", 1, 0, 'k'},
        {"warmup", 1, 0, 'W'},    {"secs", 1, 0, 'd'},       {"server-pid", 1, 0, 'x'},
        {"no-data", 0, 0, 'N'},   {"alloc-only", 0, 0, 'O'}, {"hold", 1, 0, 'H'},
        {"bind", 1, 0, 'B'},      {"spread", 1, 0, 'C'},     {0, 0, 0, 0},
    };
    int ch, secs_given = 0;
    optind = 2;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'l':
            listen_addr = optarg;
            break;
        case 's':
            server = optarg;
            break;
        case 'p':
            peer = optarg;
            break;
        case 't':
            o->transport = strcmp(optarg, "tcp") == 0   ? TL_TCP
                           : strcmp(optarg, "tls") == 0 ? TL_TLS
                                                        : TL_UDP;
            break;
        case 'u':
            o->user = optarg;
            break;
        case 'P':
            o->pass = optarg;
            break;
        case 'S':
            o->secret = optarg;
            break;
        case 'n':
            o->allocs = atoi(optarg);
            break;
        case 'w':
            o->window = atoi(optarg);
            break;
        case 'b':
            o->size = atoi(optarg);
            break;
        case 'r':
            o->rate = atol(optarg);
            break;
        case 'k':
            o->inflight = atoi(optarg);
            break;
        case 'W':
            o->warmup = atof(optarg);
            break;
        case 'd':
            o->secs = atof(optarg);
            secs_given = 1;
            break;
        case 'x':
            o->server_pid = atoi(optarg);
            break;
        case 'O':
            o->alloc_only = 1;
            break;
        case 'N':
            o->no_data = 1;
            break;
        case 'H':
            o->hold = atof(optarg);
            break;
        case 'C':
            o->spread = atoi(optarg);
            break;
        case 'B':
            if (inet_pton(AF_INET, optarg, &o->bind_ip) != 1) {
                usage();
                return 2;
            }
            break;
        default:
            usage();
            return 2;
        }
    }
    if (o->size < TL_PAYLOAD_HDR || o->size > TL_MAX_PAYLOAD || o->allocs < 1 || o->window < 1 ||
        o->spread < 1 || o->inflight < 1) {
        fprintf(stderr, "ar-turnload: size must be %d..%d, counts positive\n", TL_PAYLOAD_HDR,
                TL_MAX_PAYLOAD);
        return 2;
    }
    /* A peer or server that goes away must not kill us with SIGPIPE mid-write. */
    signal(SIGPIPE, SIG_IGN);
    if (strcmp(mode, "peer") == 0) {
        if (!listen_addr) {
            usage();
            return 2;
        }
        /* The peer runs until stopped, unless given a lifetime of its own. */
        return tl_peer_run(listen_addr, secs_given ? o->secs : 0) ? 1 : 0;
    }
    int raw = strcmp(mode, "raw") == 0;
    if ((!raw && strcmp(mode, "turn") != 0) || !server || tl_parse_addr(server, &o->server) != 0 ||
        (!raw && (!peer || tl_parse_addr(peer, &o->peer) != 0))) {
        usage();
        return 2;
    }
    if (raw)
        o->transport = TL_UDP;
    return run_turn(&ctx, raw);
}
