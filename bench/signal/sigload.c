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
 *                          room: hello and join for anteroom) and hold them, answering the
 *                          pings of all held connections also while opening (one epoll loop);
 *                          prints RSS per connection and CPU per connect of the server
 *   rate  -k pairs -r msg/s -T secs   one process, k pairs, open loop at the offered rate;
 *                          -M offer (an offer of -S bytes, the default) or -M candidate (host
 *                          candidates, each connection's 16th message an offer)
 *   calls -c calls -P procs           call set-ups: two fresh connections, (hello, join,) a
 *                          4 KB offer, a 4 KB answer, four candidates each way, bye
 *   failover -n N -p A,B -P procs  (anteroom) N sessions in rooms, a pair per room, one member
 *                          on node A and one on B (-m: both on A), shared by the P client
 *                          processes (whole pairs; each at most its 20,000 files), each
 *                          opening 64 at a time; prints READY once all hold theirs
 *                          and waits for node A to die (full.sh kills it); each lost client
 *                          resumes on B (hello {token, resume, last_seq}) on the web client's
 *                          schedule, its first attempt 0.5 s + [0, -J s] after the close (2),
 *                          at most -f attempts at once per process (64); -W s after the first
 *                          close (60), who
 *                          has not resumed failed. Then each pair relays an offer both ways.
 *                          Prints the resumed and failed, the time from the first close to the
 *                          last resumed welcome, each client's close-to-welcome and
 *                          hello-to-welcome p50/p99, B's CPU (-s, -B) per resume and its RSS
 * Common: -d dialect -p port[,port2,...] (port2: the second member of each pair, another node;
 *   with rate -m, up to 8 ports: each pair on one, the pairs spread over them in turn)
 *   -s pid,.. (server processes) -B pid,.. (the bus: counted in the totals, printed apart)
 *   -K sec -l label -t (TLS) -U (anteroom: upgrade only, no hello) -m (rate with two
 *   ports or more: both members of a pair on one port, the pairs spread over the ports in turn) -H
 * secs (idle: hold that long after measuring, then count what is still open) -b N (source addresses
 * 127.1.N.x: one per client process, so many processes pass the ephemeral port limit of one
 * address) -S bytes (relayed message size) -f N (idle without TLS: connections opening at once
 * per client process, 1 to 64, default 1; every held connection's pings are answered meanwhile)
 * Output: one "RESULT key=value ..." line per measurement, read by full.sh.
 */
#include "sigload.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

sl_opts_t sl_o = {.n = 1000,
                  .procs = 2,
                  .pairs = 50,
                  .rate = 1000,
                  .secs = 5,
                  .calls = 200,
                  .size = 200,
                  .label = "server",
                  .kind = "offer",
                  .jitter = 2,
                  .bound_secs = 60};
static ar_token_key_t sl_key;
char **sl_tokens; /* one per room, minted before any measurement */
char sl_run[16];  /* makes room and peer names unique per run */

/* ---- the server, from outside ---- */

typedef struct sample_s {
    long rss_kib, anon_kib, bus_rss_kib;
    long long ticks, bus_ticks, run_ns, bus_run_ns;
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
        if (p &&
            sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2)
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
    for (int i = 0; i < sl_o.nspids; i++)
        sample_pid(sl_o.spids[i], &s->rss_kib, &s->anon_kib, &s->ticks, &s->run_ns);
    for (int i = 0; i < sl_o.nbpids; i++)
        sample_pid(sl_o.bpids[i], &s->bus_rss_kib, NULL, &s->bus_ticks, &s->bus_run_ns);
}

static double tick_us(void)
{
    return 1e6 / (double)sysconf(_SC_CLK_TCK);
}

/* ---- idle: hold N connections ---- */

/* Services readable connections (pings, peers' frames) for at most `ms`; returns 1 when the
 * hold pipe says stop. */
static int service(int ep, sl_conn_t *c, int ms)
{
    struct epoll_event evs[256];
    int k = epoll_wait(ep, evs, 256, ms);
    for (int i = 0; i < k; i++) {
        if (evs[i].data.u32 == UINT32_MAX)
            return 1;
        sl_conn_t *x = &c[evs[i].data.u32];
        int r;
        while ((r = sl_pump(x)) > 0)
            ;
        if (r < 0) {
            epoll_ctl(ep, EPOLL_CTL_DEL, x->fd, NULL);
            close(x->fd);
            x->fd = -1;
        }
    }
    return 0;
}

static void watch(int ep, sl_conn_t *c, int i)
{
    sl_set_nonblock(&c[i]);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    epoll_ctl(ep, EPOLL_CTL_ADD, c[i].fd, &ev);
}

static void hold_loop(int ep, sl_conn_t *c, int n)
{
    double next_hb = sl_now_s() + 20;
    while (!service(ep, c, 1000))
        if (sl_o.dialect == D_PEERJS && sl_now_s() >= next_hb) {
            for (int i = 0; i < n; i++)
                if (c[i].fd >= 0)
                    (void)sl_send(&c[i], "{\"type\":\"HEARTBEAT\"}");
            next_hb = sl_now_s() + 20;
        }
}

/*
 * Opening without blocking (plain TCP; TLS keeps the blocking sl_open): every connection of a
 * client process is a small state machine in one epoll loop, so the pings of the connections
 * already held are answered while new ones open, however slowly the node answers. At most
 * sl_inflight connections of a process are opening at once (-f; 1 by default, so that connects/s
 * still means one after another per client process, as the report says); each has SL_OPEN_SECS
 * to be held (the read timeout of the blocking path), else it counts as a failed connection.
 */
enum { SL_INFLIGHT = 64, SL_OPEN_SECS = 10 };
static int sl_inflight = 1;
/*
 * A node behind on its bus refuses new sessions with close 4016 "busy" (docs/protocol.md 4.2):
 * not a failure but "come back later". The connection is opened again after a back-off that
 * doubles with each refusal of this process (from SL_BACKOFF_MIN_MS, at most SL_BACKOFF_MAX_MS,
 * jittered by +-50 %) and halves with each connection held; it keeps its slot meanwhile, so a
 * refused process opens less. Refusals are counted (refused= in the RESULT line); connects/s is
 * then the rate the node admitted, back-offs included.
 */
enum { SL_CLOSE_BUSY = 4016, SL_BACKOFF_MIN_MS = 100, SL_BACKOFF_MAX_MS = 5000 };
enum { ST_NONE, ST_CONNECT, ST_UPGRADE, ST_HANDSHAKE, ST_HELD, ST_DEAD, ST_RETRY };

typedef struct opening_s {
    uint8_t *st;           /* per connection: ST_* */
    double *deadline;      /* per connection opening: when it counts as failed; ST_RETRY: when
                              it opens again */
    int slot[SL_INFLIGHT]; /* the connections opening, -1: a free slot */
    int n, next, ok, fails, stopped, port_of_b, backoff_ms;
    long long refused;
} opening_t;

static void arm(int ep, sl_conn_t *c, int i, uint32_t events, int op)
{
    struct epoll_event ev = {.events = events, .data.u32 = (uint32_t)i};
    epoll_ctl(ep, op, c[i].fd, &ev);
}

/* Starts connection i: socket, source address src (sl_src_addr), non-blocking connect to port
 * on loopback. */
static int start_open(int ep, sl_conn_t *c, int i, uint32_t src, int port)
{
    sl_conn_t *x = &c[i];
    memset(x, 0, sizeof(*x));
    x->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (x->fd < 0)
        return -1;
    int one = 1;
    setsockopt(x->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    /* The port is chosen at connect() for the whole 4-tuple, not reserved at bind(). */
    setsockopt(x->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    struct sockaddr_in s = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(src)};
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(x->fd, (struct sockaddr *)&s, sizeof(s)) != 0 ||
        (connect(x->fd, (struct sockaddr *)&a, sizeof(a)) != 0 && errno != EINPROGRESS)) {
        close(x->fd);
        x->fd = -1;
        return -1;
    }
    ar_ws_parser_init(&x->p, sl_o.dialect == D_RAW, 1 << 20);
    arm(ep, c, i, EPOLLOUT, EPOLL_CTL_ADD);
    return 0;
}

/* The upgrade request, once connected. */
static int send_upgrade(sl_conn_t *x, int port, long room, char who)
{
    if (sl_o.dialect == D_PEERJS)
        snprintf(x->id, sizeof(x->id), "%s-%ld%c", sl_run, room, who);
    return sl_send_upgrade(x, port, room);
}

/* Reads the 101 response's header and no byte more (MSG_PEEK first), so that frames sent at
 * once (PeerJS's OPEN) stay in the socket for sl_pump. 1: done, 0: not yet, -1: failed. */
static int read_upgrade(sl_conn_t *x)
{
    char resp[1024];
    ssize_t r = recv(x->fd, resp, sizeof(resp) - 1, MSG_PEEK);
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (r <= 0)
        return -1;
    resp[r] = '\0';
    char *eoh = strstr(resp, "\r\n\r\n");
    if (!eoh)
        return r == (ssize_t)sizeof(resp) - 1 ? -1 : 0;
    size_t hl = (size_t)(eoh + 4 - resp);
    if (recv(x->fd, resp, hl, 0) != (ssize_t)hl || strncmp(resp, "HTTP/1.1 101", 12) != 0)
        return -1;
    return 1;
}

/* The dialect's handshake after the upgrade: sends what is due; 1 when the connection is held. */
static int handshake_step(sl_conn_t *x, long room)
{
    if (sl_o.dialect == D_PEERJS)
        return x->open;
    if (sl_o.dialect != D_ANTEROOM || sl_o.upgrade_only)
        return 1;
    if (x->joined)
        return 1;
    char m[AR_TOKEN_MAX + 64];
    if (!x->n_offer) { /* n_offer is unused while opening: it marks "hello sent" here */
        snprintf(m, sizeof(m), "{\"v\":1,\"type\":\"hello\",\"token\":\"%s\"}", sl_tokens[room]);
        if (sl_send(x, m) != 0)
            return -1;
        x->n_offer = 1;
    } else if (x->welcome && x->n_offer == 1) {
        snprintf(m, sizeof(m), "{\"v\":1,\"type\":\"join\",\"room\":\"%s-%ld\"}", sl_run, room);
        if (sl_send(x, m) != 0)
            return -1;
        x->n_offer = 2;
    }
    return 0;
}

static void open_failed(int ep, sl_conn_t *c, int i, opening_t *o, int proc, const char *why)
{
    if (c[i].fd >= 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, c[i].fd, NULL);
        close(c[i].fd);
    }
    free(c[i].msg);
    memset(&c[i], 0, sizeof(c[i]));
    c[i].fd = -1;
    o->st[i] = ST_DEAD;
    if (sl_errors++ < 3)
        fprintf(stderr, "%s: connection %d of process %d failed: %s\n", sl_o.label, i, proc, why);
    /* A node that no longer answers within SL_OPEN_SECS: stop opening and hold what is open, so
     * the run still measures (and says) how far it got. */
    if (++o->fails >= 20 && !o->stopped) {
        fprintf(stderr,
                "%s: process %d stops after 20 failed connections in a row (%d of %d open)\n",
                sl_o.label, proc, o->ok, o->n);
        o->stopped = 1;
    }
}

/* Connection i was refused with 4016: closed, and opened again after the back-off. */
static void open_refused(int ep, sl_conn_t *c, int i, opening_t *o)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c[i].fd, NULL);
    close(c[i].fd);
    free(c[i].msg);
    memset(&c[i], 0, sizeof(c[i]));
    c[i].fd = -1;
    o->refused++;
    o->fails = 0; /* the node answered */
    o->backoff_ms = o->backoff_ms < SL_BACKOFF_MIN_MS       ? SL_BACKOFF_MIN_MS
                    : o->backoff_ms * 2 > SL_BACKOFF_MAX_MS ? SL_BACKOFF_MAX_MS
                                                            : o->backoff_ms * 2;
    o->st[i] = ST_RETRY;
    o->deadline[i] = sl_now_s() + o->backoff_ms * (0.5 + (double)rand() / RAND_MAX) / 1000.0;
}

/* One event (or a deadline check with ev 0) on connection i, in whatever state it is. */
static void advance(int ep, sl_conn_t *c, int i, uint32_t ev, opening_t *o, int proc, int first)
{
    sl_conn_t *x = &c[i];
    long room = (first + i) / 2;
    char who = (i & 1) ? 'b' : 'a';
    int port = (i & 1) && o->port_of_b ? o->port_of_b : sl_o.ports[0];
    if (o->st[i] == ST_CONNECT && (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        int err = 0;
        socklen_t el = sizeof(err);
        getsockopt(x->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err != 0)
            return open_failed(ep, c, i, o, proc, strerror(err));
        if (sl_o.dialect == D_RAW) {
            o->st[i] = ST_HANDSHAKE;
        } else {
            if (send_upgrade(x, port, room, who) != 0)
                return open_failed(ep, c, i, o, proc, "upgrade request not sent");
            o->st[i] = ST_UPGRADE;
        }
        arm(ep, c, i, EPOLLIN, EPOLL_CTL_MOD);
        if (o->st[i] == ST_UPGRADE)
            return;
    }
    if (o->st[i] == ST_UPGRADE && (ev & EPOLLIN)) {
        int r = read_upgrade(x);
        if (r < 0)
            return open_failed(ep, c, i, o, proc, "no 101 response");
        if (r == 0)
            return;
        o->st[i] = ST_HANDSHAKE;
    }
    if (o->st[i] == ST_HANDSHAKE || o->st[i] == ST_HELD) {
        int r = 1;
        if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP))
            while ((r = sl_pump(x)) > 0)
                ;
        if (r < 0 && o->st[i] == ST_HANDSHAKE && x->close_code == SL_CLOSE_BUSY)
            return open_refused(ep, c, i, o);
        if (r < 0 && o->st[i] == ST_HANDSHAKE)
            return open_failed(ep, c, i, o, proc, "closed while opening");
        if (r < 0) { /* a held connection the server closed: counted by still_open */
            epoll_ctl(ep, EPOLL_CTL_DEL, x->fd, NULL);
            close(x->fd);
            x->fd = -1;
            o->st[i] = ST_DEAD;
            return;
        }
        if (o->st[i] == ST_HANDSHAKE) {
            int h = handshake_step(x, room);
            if (h < 0 || x->errors)
                return open_failed(ep, c, i, o, proc, "handshake refused");
            if (h == 1) {
                x->n_offer = 0;
                o->st[i] = ST_HELD;
                o->ok++;
                o->fails = 0;
                o->backoff_ms /= 2;
            }
        }
    }
}

/* Opens this process's n connections, sl_inflight at a time, answering all pings meanwhile. */
static void open_all(int ep, sl_conn_t *c, opening_t *o, int proc, int first)
{
    struct epoll_event evs[256];
    for (int s = 0; s < SL_INFLIGHT; s++)
        o->slot[s] = -1;
    int slots = sl_inflight < 1 ? 1 : sl_inflight > SL_INFLIGHT ? SL_INFLIGHT : sl_inflight;
    for (;;) {
        /* Frees the slots of connections now held or failed (also past their deadline) and
         * fills them with new ones. */
        double now = sl_now_s();
        int busy = 0;
        for (int s = 0; s < slots; s++) {
            int i = o->slot[s];
            if (i >= 0 && o->st[i] == ST_RETRY && now >= o->deadline[i]) {
                int port = (i & 1) && o->port_of_b ? o->port_of_b : sl_o.ports[0];
                o->deadline[i] = now + SL_OPEN_SECS;
                o->st[i] = ST_CONNECT;
                if (o->stopped || start_open(ep, c, i, sl_src_addr(proc), port) != 0) {
                    if (!o->stopped)
                        open_failed(ep, c, i, o, proc, strerror(errno));
                    o->st[i] = ST_DEAD;
                    c[i].fd = -1;
                }
            }
            if (i >= 0 && o->st[i] != ST_HELD && o->st[i] != ST_DEAD && o->st[i] != ST_RETRY &&
                now > o->deadline[i])
                open_failed(ep, c, i, o, proc, "no answer within 10 s");
            if (i >= 0 && (o->st[i] == ST_HELD || o->st[i] == ST_DEAD))
                o->slot[s] = i = -1;
            if (i < 0 && !o->stopped && o->next < o->n) {
                i = o->slot[s] = o->next++;
                int port = (i & 1) && o->port_of_b ? o->port_of_b : sl_o.ports[0];
                o->deadline[i] = now + SL_OPEN_SECS;
                o->st[i] = ST_CONNECT;
                if (start_open(ep, c, i, sl_src_addr(proc), port) != 0) {
                    open_failed(ep, c, i, o, proc, strerror(errno));
                    o->slot[s] = i = -1;
                }
            }
            busy += i >= 0;
        }
        if (!busy && (o->stopped || o->next >= o->n))
            break;
        int k = epoll_wait(ep, evs, 256, 100);
        for (int e = 0; e < k; e++)
            if (evs[e].data.u32 != UINT32_MAX)
                advance(ep, c, (int)evs[e].data.u32, evs[e].events, o, proc, first);
    }
    if (o->stopped)
        for (int i = 0; i < o->n; i++)
            if (o->st[i] == ST_NONE)
                c[i].fd = -1;
}

static void idle_child(int proc, int first, int n, int ready_fd, int hold_fd)
{
    SSL_CTX *ctx = sl_o.tls ? sl_client_ctx() : NULL;
    sl_conn_t *c = calloc((size_t)n, sizeof(*c));
    long long refused = 0;
    int ok = 0, fails = 0, ep = epoll_create1(0);
    srand((unsigned)(getpid() ^ (unsigned)sl_now_ns()));
    struct epoll_event hev = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
    epoll_ctl(ep, EPOLL_CTL_ADD, hold_fd, &hev);
    double next = sl_now_s() + 1;
    for (int i = 0; i < n && ctx; i++) {
        long room = (first + i) / 2;
        int port = (i & 1) && sl_o.ports[1] ? sl_o.ports[1] : sl_o.ports[0];
        if (sl_open(&c[i], ctx, sl_src_addr(proc), port, room, (i & 1) ? 'b' : 'a') == 0) {
            ok++;
            fails = 0;
            watch(ep, c, i);
        } else {
            if (sl_errors++ < 3)
                fprintf(stderr, "%s: connection %d of process %d failed: %s\n", sl_o.label, i, proc,
                        strerror(errno));
            if (++fails >= 20) {
                fprintf(stderr,
                        "%s: process %d stops after 20 failed connections in a row (%d of "
                        "%d open)\n",
                        sl_o.label, proc, ok, n);
                for (int k = i + 1; k < n; k++)
                    c[k].fd = -1;
                break;
            }
        }
        /* TLS opens blocking: the pings of the first connections are answered between opens. */
        if (sl_now_s() >= next) {
            (void)service(ep, c, 0);
            next = sl_now_s() + 1;
        }
    }
    if (!ctx) {
        opening_t o = {.st = calloc((size_t)n, 1),
                       .deadline = calloc((size_t)n, sizeof(double)),
                       .n = n,
                       .port_of_b = sl_o.ports[1]};
        open_all(ep, c, &o, proc, first);
        ok = o.ok;
        refused = o.refused;
        free(o.st);
        free(o.deadline);
    }
    char msg[48];
    int len = snprintf(msg, sizeof(msg), "%d %lld\n", ok, refused);
    (void)!write(ready_fd, msg, (size_t)len);
    hold_loop(ep, c, n);
    int still = 0;
    for (int i = 0; i < n; i++)
        still += c[i].fd >= 0;
    len = snprintf(msg, sizeof(msg), "%d\n", still);
    (void)!write(ready_fd, msg, (size_t)len);
    for (int i = 0; i < n; i++)
        sl_close(&c[i]);
    _exit(0);
}

static void print_sample_delta(const char *phase, const sample_t *a, const sample_t *b, double per,
                               const char *unit)
{
    /* Both clocks: ticks are 10 ms, which at 2,000 messages a second for 10 s is 0.5 us a
     * message; the threads' run time (schedstat) is in nanoseconds (report.sh prefers it). */
    printf(" %s_cpu_us=%.2f %s_sched_us=%.2f %s_bus_cpu_us=%.2f %s_bus_sched_us=%.2f", unit,
           (double)(b->ticks - a->ticks) * tick_us() / per, unit,
           (double)(b->run_ns - a->run_ns) / 1e3 / per, unit,
           (double)(b->bus_ticks - a->bus_ticks) * tick_us() / per, unit,
           (double)(b->bus_run_ns - a->bus_run_ns) / 1e3 / per);
    (void)phase;
}

static int cmd_idle(void)
{
    sample_t s0, s2;
    /* Warm-up: 100 connections opened and closed, so code pages and loop buffers are resident
     * before the baseline and are not charged to the connections. */
    {
        SSL_CTX *ctx = sl_o.tls ? sl_client_ctx() : NULL;
        sl_conn_t w[100];
        for (int i = 0; i < 100; i++)
            (void)sl_open(&w[i], ctx, sl_src_addr(200), sl_o.ports[0], sl_o.n / 2 + 1 + i / 2,
                          (i & 1) ? 'b' : 'a');
        for (int i = 0; i < 100; i++)
            sl_close(&w[i]);
        if (ctx)
            SSL_CTX_free(ctx);
        sleep(2);
    }
    sample(&s0);
    int ready[2], hold[2];
    if (pipe(ready) || pipe(hold))
        return 1;
    double t0 = sl_now_s();
    pid_t kids[64] = {0};
    int first = 0;
    for (int i = 0; i < sl_o.procs; i++) {
        int share = sl_o.n / sl_o.procs;
        share += share & 1; /* whole pairs per process */
        if (i == sl_o.procs - 1)
            share = sl_o.n - first;
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
    long long refused = 0;
    FILE *rf = fdopen(ready[0], "r");
    for (int i = 0; i < sl_o.procs; i++) {
        int v = 0;
        long long r = 0;
        if (fscanf(rf, "%d %lld", &v, &r) == 2) {
            ok += v;
            refused += r;
        }
    }
    double wall = sl_now_s() - t0;
    sleep(3); /* freed handshake memory settles before RSS is read */
    sample(&s2);
    double per = ok ? ok : 1;
    printf("RESULT label=%s phase=idle tls=%d conns=%d of=%d secs=%.2f per_s=%.0f refused=%lld "
           "rss_b=%.0f anon_b=%.0f bus_rss_b=%.0f",
           sl_o.label, sl_o.tls, ok, sl_o.n, wall, ok / wall, refused,
           (double)(s2.rss_kib - s0.rss_kib) * 1024 / per,
           (double)(s2.anon_kib - s0.anon_kib) * 1024 / per,
           (double)(s2.bus_rss_kib - s0.bus_rss_kib) * 1024 / per);
    /* CPU to s2: the other workers apply the sessions' records from the bus after the last join */
    print_sample_delta("idle", &s0, &s2, per, "connect");
    printf(" rss_total_mib=%.0f", (double)s2.rss_kib / 1024);
    /* Held for -H seconds more (past the node's ping interval and idle timeout), then each
     * client process counts the connections the server has not closed. */
    sample_t s3 = s2;
    if (sl_o.hold_secs > 0) {
        sleep((unsigned)sl_o.hold_secs);
        /* Past the first ping, each client acknowledged what it was sent: what an idle session
         * costs once its replay buffer is empty (the joined frame and the like are freed; the
         * allocator may keep their memory, which this shows). */
        sample(&s3);
    }
    close(hold[1]);
    int still = 0;
    for (int i = 0; i < sl_o.procs; i++) {
        int v = 0;
        if (fscanf(rf, "%d", &v) == 1)
            still += v;
    }
    printf(" held_after_s=%d still_open=%d rss_held_b=%.0f anon_held_b=%.0f\n", sl_o.hold_secs,
           still, (double)(s3.rss_kib - s0.rss_kib) * 1024 / per,
           (double)(s3.anon_kib - s0.anon_kib) * 1024 / per);
    fflush(stdout);
    for (int i = 0; i < sl_o.procs; i++)
        waitpid(kids[i], NULL, 0);
    return ok == sl_o.n ? 0 : 1;
}

/* ---- rate: relay at a fixed offered rate ---- */

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double p)
{
    if (!sl_nlat)
        return 0;
    size_t i = (size_t)(p * (double)sl_nlat);
    return sl_lat[i >= sl_nlat ? sl_nlat - 1 : i];
}

static int cmd_rate(void)
{
    int n = 2 * sl_o.pairs;
    sl_conn_t *c = calloc((size_t)n, sizeof(*c));
    for (int i = 0; i < n; i++) {
        /* Two ports: the members of a pair on two nodes (or workers), or with -m both on one,
         * the pairs spread over the ports in turn (each port then carries the same load either
         * way; with a worker port each, as the app's placement by clinic puts them). */
        int port = !sl_o.ports[1]   ? sl_o.ports[0]
                   : sl_o.same_node ? sl_o.ports[(i / 2) % sl_o.nports]
                                    : sl_o.ports[i & 1];
        if (sl_open(&c[i], NULL, sl_src_addr(0), port, i / 2, (i & 1) ? 'b' : 'a') != 0) {
            fprintf(stderr, "%s: rate: connection %d failed\n", sl_o.label, i);
            return 1;
        }
    }
    for (int i = 0; i < n; i += 2)
        sl_partner(&c[i], &c[i + 1]);
    int ep = epoll_create1(0);
    for (int i = 0; i < n; i++) {
        sl_set_nonblock(&c[i]);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, c[i].fd, &ev);
    }
    sl_latcap = (size_t)sl_o.rate * (size_t)(sl_o.secs + 2);
    sl_lat = malloc(sl_latcap * sizeof(double));
    sleep(1);
    double t0 = sl_now_s(), ws = t0 + 1, we = ws + sl_o.secs, stop = we;
    long long sent = 0, relayed_all = 0;
    sample_t s0 = {0}, s1 = {0};
    int phase = 0; /* 0 warm-up, 1 window, 2 draining */
    struct epoll_event evs[256];
    for (;;) {
        double t = sl_now_s();
        if (phase == 0 && t >= ws) {
            sample(&s0);
            sl_counting = 1;
            sl_relayed = 0;
            sl_nlat = 0;
            phase = 1;
        }
        if (phase == 1 && t >= we) {
            sample(&s1);
            relayed_all = sl_relayed;
            phase = 2;
        }
        if (phase == 2 && t >= stop + 1)
            break;
        if (t < stop) {
            long long due = (long long)((t - t0) * sl_o.rate);
            while (sent < due) {
                sl_conn_t *x = &c[sent % n];
                /* Candidates trickle as in a call: every connection's 16th message is an offer,
                 * which starts a negotiation anew (anteroom refuses more than 64 candidates to a
                 * peer per negotiation, protocol.md 4). */
                const char *kind =
                    sl_o.kind[0] == 'c' && (sent / n) % 16 == 0 ? "offer" : sl_o.kind;
                if (sl_send_kind(x, kind, (size_t)sl_o.size) != 0)
                    sl_errors++;
                sent++;
            }
        }
        int k = epoll_wait(ep, evs, 256, 1);
        for (int i = 0; i < k; i++) {
            sl_conn_t *x = &c[evs[i].data.u32];
            int r;
            while ((r = sl_pump(x)) > 0)
                ;
            if (r < 0) {
                epoll_ctl(ep, EPOLL_CTL_DEL, x->fd, NULL);
                sl_errors++;
            }
        }
    }
    qsort(sl_lat, sl_nlat, sizeof(double), cmp_dbl);
    double per = relayed_all ? (double)relayed_all : 1;
    printf("RESULT label=%s phase=rate pairs=%d offered=%d secs=%d relayed=%lld msg_s=%.0f "
           "loss=%.5f p50_us=%.0f p99_us=%.0f errors=%lld",
           sl_o.label, sl_o.pairs, sl_o.rate, sl_o.secs, relayed_all,
           (double)relayed_all / (double)sl_o.secs,
           sent ? 1.0 - (double)sl_recv_all / (double)sent : 0.0, pct(0.5), pct(0.99), sl_errors);
    print_sample_delta("rate", &s0, &s1, per, "msg");
    printf("\n");
    fflush(stdout);
    for (int i = 0; i < n; i++)
        sl_close(&c[i]);
    close(ep);
    free(c);
    free(sl_lat);
    sl_lat = NULL;
    return relayed_all > 0 && sl_errors == 0 ? 0 : 1;
}

/* ---- calls: set-ups per second ---- */

static int one_call(int proc, long room)
{
    sl_conn_t a, b;
    int pb = sl_o.ports[1] ? sl_o.ports[1] : sl_o.ports[0];
    if (sl_open(&a, NULL, sl_src_addr(proc), sl_o.ports[0], room, 'a') != 0)
        return -1;
    if (sl_open(&b, NULL, sl_src_addr(proc), pb, room, 'b') != 0) {
        sl_close(&a);
        return -1;
    }
    sl_partner(&a, &b);
    int rc = -1;
    /* The newcomer offers; the other answers; four candidates each way (trickle). */
    if (sl_send_kind(&b, "offer", 4096) || sl_wait(&a, &a.n_offer, 1) ||
        sl_send_kind(&a, "answer", 4096))
        goto out;
    for (int i = 0; i < 4; i++)
        if (sl_send_kind(&a, "candidate", 0))
            goto out;
    if (sl_wait(&b, &b.n_answer, 1))
        goto out;
    for (int i = 0; i < 4; i++)
        if (sl_send_kind(&b, "candidate", 0))
            goto out;
    if (sl_wait(&b, &b.n_cand, 4) || sl_wait(&a, &a.n_cand, 4))
        goto out;
    rc = a.errors || b.errors ? -1 : 0;
out:
    sl_close(&a);
    sl_close(&b);
    return rc;
}

static int cmd_calls(void)
{
    sample_t s0, s1;
    (void)one_call(63, sl_o.calls); /* warm-up, not counted */
    sleep(1);
    sample(&s0);
    int ready[2];
    if (pipe(ready))
        return 1;
    double t0 = sl_now_s();
    pid_t kids[64] = {0};
    for (int i = 0; i < sl_o.procs; i++) {
        int per = sl_o.calls / sl_o.procs, first = i * per;
        if (i == sl_o.procs - 1)
            per = sl_o.calls - first;
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
    for (int i = 0; i < sl_o.procs; i++) {
        int v = 0;
        if (fscanf(rf, "%d", &v) == 1)
            ok += v;
    }
    double wall = sl_now_s() - t0;
    sample(&s1);
    for (int i = 0; i < sl_o.procs; i++)
        waitpid(kids[i], NULL, 0);
    double per = ok ? ok : 1;
    printf("RESULT label=%s phase=calls calls=%d of=%d procs=%d secs=%.2f per_s=%.0f", sl_o.label,
           ok, sl_o.calls, sl_o.procs, wall, ok / wall);
    print_sample_delta("calls", &s0, &s1, per, "call");
    printf("\n");
    fflush(stdout);
    return ok == sl_o.calls ? 0 : 1;
}

/* ---- failover: a node killed under N sessions ---- */

/*
 * Each client of the killed node (port A) comes back to the survivor (port B) as the web client
 * does (web/js/signal.js `retry`): 500 ms after the close, then after 1, 2, 4 and 5 s (at most)
 * while its attempts fail, a refusal with 4016 included. The web client adds no jitter of its
 * own; its clients spread by when each notices the close, which -J models: the first attempt
 * goes 0.5 s + [0, J] s after the close (-J 0: all of them at once). At most -f attempts are
 * under way at once; an attempt not welcomed within FO_ATTEMPT_SECS is closed and retried (the
 * node waits up to 8 s for a promotion before it answers a resume, signal.md).
 */
enum { FO_HELD, FO_WAIT, FO_CONNECT, FO_UPGRADE, FO_HELLO, FO_RESUMED, FO_FAILED };
enum { FO_ATTEMPT_SECS = 40 }; /* past the node's longest wait (AR__SIG_RESUME_WAIT_MAX_S, 30 s) */

/*
 * The source address of client i's resumes: one of FO_SRC_ADDRS others than its process opened
 * the sessions from (127.2-5.<base>.<proc + 1> against 127.1.<base>.<proc + 1>). The kernel picks
 * a connect()'s port by probing the range (even ports first) for a 4-tuple not in use, so a
 * process's resumes from its own address, which already held thousands of connections to the
 * survivor's port, probed thousands of ports each: the kernel's port search
 * (__inet_check_established, __inet_hash_connect) was half of the load generator's samples
 * during a failover storm, and the load generator 60 % of the machine (docs/performance.md,
 * "Failover at 100,000 calls a node: the load generator's port search"). Browsers resume from
 * addresses of their own.
 */
enum { FO_SRC_ADDRS = 4 };

static uint32_t fo_src_addr(int proc, int i)
{
    return sl_src_addr(proc) + ((uint32_t)(1 + i % FO_SRC_ADDRS) << 16);
}

typedef struct fo_s {
    double t_close, t_hello, t_done, at; /* at: FO_WAIT: when to connect; else the deadline */
    uint64_t last_seq;
    char id[48], to[48], resume[64];
    int attempt;
    uint8_t st, on_a;
} fo_t;

typedef struct fo_run_s {
    sl_conn_t *c;
    fo_t *f;
    int ep, n, proc, first, go, lost, resumed, failed, inflight, b_closed, refused, retries,
        mismatched;
    int down;  /* the parent's pipe: its end closing is the go for the relay check */
    int again; /* another: its end closing is the go for the second check (go 2) */
    double first_close, last_done;
} fo_run_t;

static void fo_drop(fo_run_t *r, int i)
{
    sl_conn_t *x = &r->c[i];
    if (x->fd >= 0) {
        epoll_ctl(r->ep, EPOLL_CTL_DEL, x->fd, NULL);
        close(x->fd);
    }
    free(x->msg);
    x->msg = NULL;
    x->mlen = x->mcap = 0;
    x->fd = -1;
}

/* The attempt of client i is over without a resumed welcome: again after the web's back-off. */
static void fo_retry(fo_run_t *r, int i)
{
    fo_t *f = &r->f[i];
    if (r->c[i].close_code == SL_CLOSE_BUSY)
        r->refused++;
    fo_drop(r, i);
    r->inflight--;
    r->retries++;
    f->attempt++;
    int ms = 500 << (f->attempt > 4 ? 4 : f->attempt);
    f->st = FO_WAIT;
    f->at = sl_now_s() + (ms > 5000 ? 5000 : ms) / 1000.0;
}

static void fo_end(fo_run_t *r, int i, int st, const char *why)
{
    fo_t *f = &r->f[i];
    if (st == FO_FAILED && r->failed < 3)
        fprintf(stderr, "%s: failover: a client did not resume: %s\n", sl_o.label, why);
    if (f->st == FO_CONNECT || f->st == FO_UPGRADE || f->st == FO_HELLO)
        r->inflight--;
    f->st = (uint8_t)st;
    f->t_done = sl_now_s();
    if (st == FO_RESUMED) {
        r->resumed++;
        r->last_done = f->t_done;
    } else {
        r->failed++;
        fo_drop(r, i);
    }
}

/* Opens client i's next attempt on port B: its peer id, partner and resume token kept. */
static void fo_connect(fo_run_t *r, int i)
{
    fo_t *f = &r->f[i];
    sl_conn_t *x = &r->c[i];
    r->inflight++;
    f->st = FO_CONNECT;
    f->at = sl_now_s() + FO_ATTEMPT_SECS;
    if (start_open(r->ep, r->c, i, fo_src_addr(r->proc, i), sl_o.ports[1]) != 0) {
        fo_retry(r, i);
        return;
    }
    memcpy(x->id, f->id, sizeof(x->id));
    memcpy(x->to, f->to, sizeof(x->to));
    x->last_seq = f->last_seq;
}

/* One event on client i while it resumes. */
static void fo_advance(fo_run_t *r, int i, uint32_t ev)
{
    fo_t *f = &r->f[i];
    sl_conn_t *x = &r->c[i];
    if (f->st == FO_CONNECT) {
        int err = 0;
        socklen_t el = sizeof(err);
        getsockopt(x->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err != 0 || sl_send_upgrade(x, sl_o.ports[1], 0) != 0)
            return fo_retry(r, i);
        f->st = FO_UPGRADE;
        arm(r->ep, r->c, i, EPOLLIN, EPOLL_CTL_MOD);
        return;
    }
    if (f->st == FO_UPGRADE) {
        int u = read_upgrade(x);
        if (u < 0)
            return fo_retry(r, i);
        if (u == 0)
            return;
        char m[AR_TOKEN_MAX + 192];
        snprintf(
            m, sizeof(m),
            "{\"v\":1,\"type\":\"hello\",\"token\":\"%s\",\"resume\":\"%s\",\"last_seq\":%llu}",
            sl_tokens[(r->first + i) / 2], f->resume, (unsigned long long)f->last_seq);
        if (sl_send(x, m) != 0)
            return fo_retry(r, i);
        f->st = FO_HELLO;
        f->t_hello = sl_now_s();
    }
    int p = 1;
    if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP))
        while ((p = sl_pump(x)) > 0 && !x->welcome)
            ;
    if (x->welcome) {
        /* resumed:false is a new session (after error resume_failed): the old one is lost */
        int same = strcmp(x->id, f->id) == 0;
        r->mismatched += x->resumed && !same;
        fo_end(r, i, x->resumed && same ? FO_RESUMED : FO_FAILED,
               !x->resumed ? "welcome {resumed:false}" : "resumed under another peer id");
        return;
    }
    if (p < 0)
        fo_retry(r, i);
}

/* A held connection is readable: pings, or its node went. */
static void fo_held(fo_run_t *r, int i)
{
    sl_conn_t *x = &r->c[i];
    fo_t *f = &r->f[i];
    int p;
    while ((p = sl_pump(x)) > 0)
        ;
    if (p >= 0)
        return;
    if (f->st == FO_RESUMED || !f->on_a) { /* a session of the survivor ended */
        r->b_closed++;
        if (r->b_closed <= 3)
            fprintf(stderr, "%s: failover: a connection on the surviving node closed (code %d)\n",
                    sl_o.label, x->close_code);
        fo_drop(r, i);
        if (f->st == FO_RESUMED) {
            r->resumed--;
            r->failed++;
        }
        f->st = FO_FAILED;
        return;
    }
    double now = sl_now_s();
    if (!r->lost++)
        r->first_close = now;
    memcpy(f->id, x->id, sizeof(f->id));
    memcpy(f->to, x->to, sizeof(f->to));
    memcpy(f->resume, x->resume, sizeof(f->resume));
    f->last_seq = x->last_seq;
    f->t_close = now;
    f->st = FO_WAIT;
    f->at = now + 0.5 + sl_o.jitter * (double)rand() / RAND_MAX;
    fo_drop(r, i);
}

static void fo_events(fo_run_t *r, int ms)
{
    struct epoll_event evs[256];
    int k = epoll_wait(r->ep, evs, 256, ms);
    for (int e = 0; e < k; e++) {
        if (evs[e].data.u32 >= UINT32_MAX - 1) { /* a go: its pipe's end closed */
            /* Out of the set: a closed pipe is readable for good, and left in it every wait
             * returned at once. The relay check then spun on its scan of every client, and
             * the 12 client processes took 60 % of the machine while the survivor relayed
             * the check's offers (docs/performance.md, "Failover at 100,000 calls a node:
             * the load generator's spin"). */
            int second = evs[e].data.u32 == UINT32_MAX - 1;
            r->go = second ? 2 : 1;
            epoll_ctl(r->ep, EPOLL_CTL_DEL, second ? r->again : r->down, NULL);
            continue;
        }
        int i = (int)evs[e].data.u32;
        uint8_t st = r->f[i].st;
        if (st == FO_HELD || st == FO_RESUMED)
            fo_held(r, i);
        else if (st == FO_CONNECT || st == FO_UPGRADE || st == FO_HELLO)
            fo_advance(r, i, evs[e].events);
    }
}

static double pct_of(double *v, int n, double p)
{
    if (n <= 0)
        return 0;
    int i = (int)(p * n);
    return v[i >= n ? n - 1 : i];
}

/* Pairs whose offers have not both arrived (or a member is gone). A pair seen through for the
 * first time gets, in done_s (when not NULL: one per pair, negative until then), the seconds
 * since t0. */
static int fo_relay_missing(const fo_run_t *r, double *done_s, double t0)
{
    int missing = 0;
    for (int i = 0; i < r->n; i += 2) {
        if (r->c[i].fd < 0 || r->c[i + 1].fd < 0)
            continue;
        if (r->c[i].n_offer < 1 || r->c[i + 1].n_offer < 1)
            missing++;
        else if (done_s && done_s[i / 2] < 0)
            done_s[i / 2] = sl_now_s() - t0;
    }
    return missing;
}

/* What each member of a room whose relay failed went through: for the next one to look at. */
static void fo_relay_tell(const fo_run_t *r, int i)
{
    static const char *const st[] = {"held",       "waiting", "connecting", "upgrading",
                                     "said hello", "resumed", "failed"};
    for (int k = i; k < i + 2; k++) {
        const sl_conn_t *x = &r->c[k];
        const fo_t *f = &r->f[k];
        fprintf(stderr,
                "%s: failover: room %d, member %d (was on %s): %s after %d attempts, "
                "connection %s (close %d), offers %d, errors %d, last_seq %llu id %s\n",
                sl_o.label, i / 2, k - i, f->on_a ? "A" : "B", st[f->st], f->attempt,
                x->fd >= 0 ? "open" : "gone", x->close_code, x->n_offer, x->errors,
                (unsigned long long)x->last_seq, x->id);
    }
}

/* The calls survived: in each pair, each member sends one offer to the other. Returns the rooms
 * whose relay failed (an offer not through within 70 s, a member gone, an error), and in *late
 * those whose offers came through after more than 10 s. Failed rooms are waited for another
 * 120 s, and *later counts those whose offers came through then: very late, not lost. done_s
 * (one per pair) gets the seconds each room took, from the first offer sent (negative: not
 * through within 70 s). All the offers go at once, so the last rooms wait for the survivor to
 * relay all the others: the same check again once the survivor is quiet tells that wait from
 * what the storm left behind. */
static int fo_relay_check(fo_run_t *r, int *late, int *later, double *done_s)
{
    int failed = 0;
    for (int i = 0; i < r->n; i++) {
        r->c[i].n_offer = 0;
        r->c[i].errors = 0;
    }
    for (int i = 0; i < r->n / 2; i++)
        done_s[i] = -1;
    double t0 = sl_now_s(), scanned = 0;
    for (int i = 0; i < r->n; i += 2) {
        sl_conn_t *a = &r->c[i], *b = &r->c[i + 1];
        if (a->fd < 0 || b->fd < 0)
            continue;
        if (sl_send_kind(a, "offer", (size_t)sl_o.size) != 0 ||
            sl_send_kind(b, "offer", (size_t)sl_o.size) != 0)
            a->errors++;
    }
    *late = -1;
    for (;;) {
        double now = sl_now_s();
        if (now - scanned < 0.05) { /* a scan of every client, not after each wake-up */
            fo_events(r, 50);
            continue;
        }
        scanned = now;
        int missing = fo_relay_missing(r, done_s, t0);
        if (*late < 0 && (!missing || now > t0 + 10))
            *late = missing;
        if (!missing || now > t0 + 70)
            break;
        fo_events(r, 50);
    }
    int missing_at_70 = fo_relay_missing(r, done_s, t0);
    *late -= missing_at_70; /* those never through are failed, not late */
    int *bad_at_70 = calloc((size_t)r->n / 2 + 1, sizeof(int));
    for (int i = 0; i < r->n; i += 2) {
        int bad = r->c[i].fd < 0 || r->c[i + 1].fd < 0 || r->c[i].n_offer < 1 ||
                  r->c[i + 1].n_offer < 1 || r->c[i].errors || r->c[i + 1].errors;
        if (bad && failed < 3)
            fo_relay_tell(r, i);
        failed += bad;
        if (bad_at_70)
            bad_at_70[i / 2] = bad;
    }
    /* Late or lost: the missing ones get more time; those through then were late. */
    *later = 0;
    if (missing_at_70 && bad_at_70) {
        double t1 = sl_now_s();
        scanned = 0;
        while (sl_now_s() < t1 + 120) {
            if (sl_now_s() - scanned >= 0.05) {
                scanned = sl_now_s();
                if (!fo_relay_missing(r, NULL, 0))
                    break;
            }
            fo_events(r, 50);
        }
        for (int i = 0; i < r->n; i += 2)
            *later += bad_at_70[i / 2] && r->c[i].fd >= 0 && r->c[i + 1].fd >= 0 &&
                      r->c[i].n_offer >= 1 && r->c[i + 1].n_offer >= 1 && !r->c[i].errors &&
                      !r->c[i + 1].errors;
    }
    free(bad_at_70);
    return failed;
}

static void fo_free(fo_run_t *r)
{
    for (int i = 0; i < r->n; i++)
        sl_close(&r->c[i]);
    free(r->c);
    free(r->f);
    close(r->ep);
}

/* What one client process of the failover saw: its counts, then the close to welcome and hello
 * to welcome times (ms) of each of its `resumed` clients (those whose state is FO_RESUMED), in
 * the file the parent gave it. */
typedef struct fo_sum_s {
    int n, on_a, lost, resumed, failed, b_closed, refused, retries, mismatched, relay_failed;
    int relay_late;  /* of the rooms relayed, those that took more than 10 s */
    int relay_later; /* of the failed, those whose offers came through 70 to 190 s after */
    int relay2_failed, relay2_late, relay2_later; /* the same of the second check */
    double first_close, last_done;
    double write_wait_s, write_wait_max_s; /* sl_write's waits for room, over the whole run */
} fo_sum_t;

/* Client process proc of the failover: sessions first .. first+n-1 (whole pairs). Tells the parent
 * (up) "R <opened> <on A>" once they are held, "D" once its lost clients resumed or failed, then
 * waits for the parent's go (down closed) to check the relay, says "C", waits for the second go
 * (again closed) to check it again, writes its fo_sum_t, its resumed clients' times and both
 * checks' room times to out, says "F" and exits. */
static void fo_child(int proc, int first, int n, int up, int down, int again, FILE *out)
{
    fo_run_t r = {.n = n, .proc = proc, .first = first, .ep = epoll_create1(0)};
    r.c = calloc((size_t)n, sizeof(*r.c));
    r.f = calloc((size_t)n, sizeof(*r.f));
    srand((unsigned)(getpid() ^ (unsigned)sl_now_ns()));
    /* Every pair split over the two nodes (a on A, b on B: every room keeps a member the whole
     * time), or with -m both on A (the rooms are empty until their members resume). */
    opening_t o = {.st = calloc((size_t)n, 1),
                   .deadline = calloc((size_t)n, sizeof(double)),
                   .n = n,
                   .port_of_b = sl_o.same_node ? 0 : sl_o.ports[1]};
    open_all(r.ep, r.c, &o, proc, first);
    free(o.st);
    free(o.deadline);
    char line[64];
    int on_a = 0;
    for (int i = 0; i < n; i++) {
        r.c[i].n_offer = 0;
        r.f[i].on_a = (uint8_t)(sl_o.same_node || !(i & 1));
        on_a += r.f[i].on_a;
    }
    if (o.ok != n) {
        fprintf(stderr, "%s: failover: process %d opened %d of %d sessions\n", sl_o.label, proc,
                o.ok, n);
        (void)!write(up, line, (size_t)snprintf(line, sizeof(line), "R %d %d\n", o.ok, on_a));
        _exit(1);
    }
    for (int i = 0; i < n; i += 2)
        sl_partner(&r.c[i], &r.c[i + 1]);
    struct epoll_event dev = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
    r.down = down;
    epoll_ctl(r.ep, EPOLL_CTL_ADD, down, &dev);
    dev.data.u32 = UINT32_MAX - 1;
    r.again = again;
    epoll_ctl(r.ep, EPOLL_CTL_ADD, again, &dev);
    /* The backups' records reach the survivor over the bus meanwhile. */
    for (double until = sl_now_s() + 3; sl_now_s() < until;)
        fo_events(&r, 100);
    (void)!write(up, line, (size_t)snprintf(line, sizeof(line), "R %d %d\n", n, on_a));
    /* Until every lost client resumed or failed; a client not resumed -W s after the first
     * close failed (the grace period is 120 s). */
    double bound = 0, tready = sl_now_s(), scanned = 0;
    for (;;) {
        double now = sl_now_s();
        if (!r.lost && now - tready > 600) {
            fprintf(stderr, "%s: failover: node A never closed\n", sl_o.label);
            _exit(1);
        }
        if (r.lost && !bound)
            bound = r.first_close + sl_o.bound_secs;
        /* The clients' timers are looked at every 10 ms, not after every wake-up: a scan of all
         * of a process's clients after each event took 99 s of the two cores' 222 over a storm
         * of 111 s, CPU the survivor then did not have (performance.md, "Failover at 100,000
         * calls a node: resumes moved to the owner's worker"). */
        if (now - scanned < 0.01) {
            fo_events(&r, 10);
            continue;
        }
        scanned = now;
        int pending = 0;
        for (int i = 0; i < n; i++) {
            fo_t *f = &r.f[i];
            if (f->st == FO_WAIT || f->st == FO_CONNECT || f->st == FO_UPGRADE ||
                f->st == FO_HELLO) {
                if (now > bound) {
                    fo_end(&r, i, FO_FAILED, "not resumed within -W s");
                    continue;
                }
                pending++;
                if (f->st != FO_WAIT && now > f->at)
                    fo_retry(&r, i);
                else if (f->st == FO_WAIT && now >= f->at && r.inflight < sl_inflight)
                    fo_connect(&r, i);
            }
        }
        /* Past the storm: every client of A closed (the node's death closes them all within
         * milliseconds) and none is still to resume. */
        if ((r.lost >= on_a && !pending) || (r.lost && now > bound))
            break;
        fo_events(&r, 10);
    }
    (void)!write(up, "D\n", 2);
    while (!r.go)
        fo_events(&r, 100);
    /* The relay check first: a connection that closes during it turns a resumed client into a
     * failed one (fo_held), and the counts below must match the times written after them. */
    int relay_late = 0, relay_later = 0, relay2_late = 0, relay2_later = 0;
    double *done_s = calloc((size_t)n, sizeof(double)); /* a half each check */
    int relay_failed = fo_relay_check(&r, &relay_late, &relay_later, done_s);
    /* The same check again once every process's first is over and the survivor is quiet. */
    (void)!write(up, "C\n", 2);
    while (r.go != 2)
        fo_events(&r, 100);
    int relay2_failed = fo_relay_check(&r, &relay2_late, &relay2_later, done_s + n / 2);
    fo_sum_t sum = {.n = n,
                    .on_a = on_a,
                    .lost = r.lost,
                    .resumed = r.resumed,
                    .failed = r.failed,
                    .b_closed = r.b_closed,
                    .refused = r.refused,
                    .retries = r.retries,
                    .mismatched = r.mismatched,
                    .relay_failed = relay_failed,
                    .relay_late = relay_late,
                    .relay_later = relay_later,
                    .relay2_failed = relay2_failed,
                    .relay2_late = relay2_late,
                    .relay2_later = relay2_later,
                    .first_close = r.first_close,
                    .last_done = r.last_done,
                    .write_wait_s = sl_write_wait_s,
                    .write_wait_max_s = sl_write_wait_max_s};
    fwrite(&sum, sizeof(sum), 1, out);
    for (int i = 0; i < n; i++)
        if (r.f[i].st == FO_RESUMED) {
            double t[2] = {(r.f[i].t_done - r.f[i].t_close) * 1e3,
                           (r.f[i].t_done - r.f[i].t_hello) * 1e3};
            fwrite(t, sizeof(t), 1, out);
        }
    fwrite(done_s, sizeof(double), (size_t)n, out);
    free(done_s);
    fflush(out);
    (void)!write(up, "F\n", 2);
    fo_free(&r);
    _exit(0);
}

/* Reads count lines of the children's "X ..." kind from up; 0 when all came. */
static int fo_expect(FILE *up, char kind, int count, int *opened, int *on_a)
{
    char line[64];
    for (int i = 0; i < count; i++) {
        if (!fgets(line, sizeof(line), up) || line[0] != kind)
            return -1;
        int a = 0, b = 0;
        if (kind == 'R' && sscanf(line + 1, "%d %d", &a, &b) == 2) {
            *opened += a;
            *on_a += b;
        }
    }
    return 0;
}

/*
 * -P client processes share the sessions (whole pairs; each process at most its 20,000 files):
 * all hold theirs before READY; node A is killed from outside; each process resumes its own lost
 * clients; the survivor's CPU counts from READY to the last process done. Resumed clients' times
 * are merged for the percentiles.
 */
static int cmd_failover(void)
{
    if (sl_o.dialect != D_ANTEROOM || !sl_o.ports[1] || sl_o.tls)
        return fprintf(stderr, "failover: anteroom, plain, -p A,B\n"), 2;
    int n = sl_o.n, procs = sl_o.procs, up[2], down[2], again[2];
    if (pipe(up) || pipe(down) || pipe(again))
        return 1;
    pid_t kids[64] = {0};
    FILE *outs[64] = {0};
    int first = 0;
    for (int i = 0; i < procs; i++) {
        int share = n / procs;
        share += share & 1; /* whole pairs per process */
        if (i == procs - 1)
            share = n - first;
        outs[i] = tmpfile();
        if (!outs[i] || share <= 0)
            return fprintf(stderr, "failover: -n %d over -P %d\n", n, procs), 2;
        kids[i] = fork();
        if (kids[i] == 0) {
            close(up[0]);
            close(down[1]);
            close(again[1]);
            fo_child(i, first, share, up[1], down[0], again[0], outs[i]);
        }
        first += share;
    }
    close(up[1]);
    close(down[0]);
    close(again[0]);
    FILE *uf = fdopen(up[0], "r");
    int opened = 0, on_a = 0, rc = 1;
    sample_t s0, s1, s2;
    double t0 = sl_now_s();
    if (fo_expect(uf, 'R', procs, &opened, &on_a) != 0 || opened != n) {
        fprintf(stderr, "%s: failover: %d of %d sessions opened\n", sl_o.label, opened, n);
        for (int i = 0; i < procs; i++)
            kill(kids[i], SIGKILL);
        goto out;
    }
    sample(&s0);
    /* The clients' own CPU over the storm: they share the machine's two cores with the
     * survivor, so what they take bounds what the survivor can have. */
    long long kid_ticks0 = 0, kid_ticks1 = 0;
    for (int i = 0; i < procs; i++) {
        long rss = 0;
        sample_pid(kids[i], &rss, NULL, &kid_ticks0, NULL);
    }
    printf("READY sessions=%d on_a=%d open_s=%.1f procs=%d\n", n, on_a, sl_now_s() - t0, procs);
    fflush(stdout);
    if (fo_expect(uf, 'D', procs, &opened, &on_a) != 0)
        goto out;
    sample(&s1);
    for (int i = 0; i < procs; i++) {
        long rss = 0;
        sample_pid(kids[i], &rss, NULL, &kid_ticks1, NULL);
    }
    /* RSS once the survivor settled: its promotions and hand-overs done */
    sleep(3);
    sample(&s2);
    printf("CHECK 1\n"); /* for a profile of the checks (full.sh FAILOVER_PERF_CHECK) */
    fflush(stdout);
    close(down[1]); /* go: each process checks its rooms relay */
    down[1] = -1;
    if (fo_expect(uf, 'C', procs, &opened, &on_a) != 0)
        goto out;
    sleep(5);
    printf("CHECK 2\n");
    fflush(stdout);
    close(again[1]); /* go again: the same check with the survivor quiet */
    again[1] = -1;
    if (fo_expect(uf, 'F', procs, &opened, &on_a) != 0)
        goto out;
    fo_sum_t all = {.first_close = 1e300};
    double *times = malloc(sizeof(double) * 2 * (size_t)(n + 1));
    /* the rooms' relay times of each check, those through within 70 s */
    double *room_s[2] = {malloc(sizeof(double) * (size_t)(n / 2 + 1)),
                         malloc(sizeof(double) * (size_t)(n / 2 + 1))};
    int rooms_through[2] = {0, 0};
    for (int i = 0; i < procs; i++) {
        fo_sum_t one;
        rewind(outs[i]);
        int ok = fread(&one, sizeof(one), 1, outs[i]) == 1 &&
                 fread(times + 2 * all.resumed, sizeof(double) * 2, (size_t)one.resumed, outs[i]) ==
                     (size_t)one.resumed;
        for (int k = 0; ok && k < 2; k++)
            for (int j = 0; ok && j < one.n / 2; j++) {
                double t = 0;
                ok = fread(&t, sizeof(t), 1, outs[i]) == 1;
                if (ok && t >= 0)
                    room_s[k][rooms_through[k]++] = t;
            }
        if (!ok) {
            fprintf(stderr, "%s: failover: process %d left no results\n", sl_o.label, i);
            free(times);
            free(room_s[0]);
            free(room_s[1]);
            goto out;
        }
        all.lost += one.lost;
        all.resumed += one.resumed;
        all.failed += one.failed;
        all.b_closed += one.b_closed;
        all.refused += one.refused;
        all.retries += one.retries;
        all.mismatched += one.mismatched;
        all.relay_failed += one.relay_failed;
        all.relay_late += one.relay_late;
        all.relay_later += one.relay_later;
        all.relay2_failed += one.relay2_failed;
        all.relay2_late += one.relay2_late;
        all.relay2_later += one.relay2_later;
        all.write_wait_s += one.write_wait_s;
        if (one.write_wait_max_s > all.write_wait_max_s)
            all.write_wait_max_s = one.write_wait_max_s;
        if (one.lost && one.first_close < all.first_close)
            all.first_close = one.first_close;
        if (one.resumed && one.last_done > all.last_done)
            all.last_done = one.last_done;
    }
    double *close_ms = malloc(sizeof(double) * (size_t)(all.resumed + 1));
    double *hello_ms = malloc(sizeof(double) * (size_t)(all.resumed + 1));
    for (int j = 0; j < all.resumed; j++) {
        close_ms[j] = times[2 * j];
        hello_ms[j] = times[2 * j + 1];
    }
    qsort(close_ms, (size_t)all.resumed, sizeof(double), cmp_dbl);
    qsort(hello_ms, (size_t)all.resumed, sizeof(double), cmp_dbl);
    for (int k = 0; k < 2; k++)
        qsort(room_s[k], (size_t)rooms_through[k], sizeof(double), cmp_dbl);
    double per = all.resumed ? all.resumed : 1;
    printf("RESULT label=%s phase=failover sessions=%d on_a=%d lost=%d resumed=%d failed=%d "
           "b_closed=%d mismatched=%d refused=%d retries=%d jitter_s=%.1f inflight=%d procs=%d "
           "storm_s=%.2f close_to_welcome_p50_ms=%.0f p99_ms=%.0f max_ms=%.0f "
           "hello_to_welcome_p50_ms=%.0f hello_p99_ms=%.0f rooms=%d relay_failed=%d relay_late=%d "
           "relay_later=%d relay_p50_s=%.1f relay_p99_s=%.1f relay_max_s=%.1f relay2_failed=%d "
           "relay2_late=%d relay2_later=%d relay2_p50_s=%.1f relay2_p99_s=%.1f relay2_max_s=%.1f "
           "clients_write_wait_s=%.1f write_wait_max_s=%.1f",
           sl_o.label, n, on_a, all.lost, all.resumed, all.failed, all.b_closed, all.mismatched,
           all.refused, all.retries, sl_o.jitter, sl_inflight, procs,
           all.resumed ? all.last_done - all.first_close : 0.0, pct_of(close_ms, all.resumed, 0.5),
           pct_of(close_ms, all.resumed, 0.99), all.resumed ? close_ms[all.resumed - 1] : 0.0,
           pct_of(hello_ms, all.resumed, 0.5), pct_of(hello_ms, all.resumed, 0.99), n / 2,
           all.relay_failed, all.relay_late, all.relay_later,
           pct_of(room_s[0], rooms_through[0], 0.5), pct_of(room_s[0], rooms_through[0], 0.99),
           rooms_through[0] ? room_s[0][rooms_through[0] - 1] : 0.0, all.relay2_failed,
           all.relay2_late, all.relay2_later, pct_of(room_s[1], rooms_through[1], 0.5),
           pct_of(room_s[1], rooms_through[1], 0.99),
           rooms_through[1] ? room_s[1][rooms_through[1] - 1] : 0.0, all.write_wait_s,
           all.write_wait_max_s);
    print_sample_delta("failover", &s0, &s1, per, "resume");
    printf(" rss_total_mib=%.0f rss_b=%.0f bus_rss_mib=%.0f clients_cpu_s=%.1f\n",
           (double)s2.rss_kib / 1024, (double)(s2.rss_kib - s0.rss_kib) * 1024 / per,
           (double)s2.bus_rss_kib / 1024, (double)(kid_ticks1 - kid_ticks0) * tick_us() / 1e6);
    fflush(stdout);
    free(times);
    free(room_s[0]);
    free(room_s[1]);
    free(close_ms);
    free(hello_ms);
    rc = all.failed == 0 && all.b_closed == 0 && all.relay_failed == 0 && all.relay2_failed == 0 &&
                 all.lost == on_a
             ? 0
             : 1;
out:
    if (down[1] >= 0)
        close(down[1]);
    if (again[1] >= 0)
        close(again[1]);
    for (int i = 0; i < procs; i++) {
        int st = 0;
        waitpid(kids[i], &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            rc = 1;
        fclose(outs[i]);
    }
    fclose(uf);
    return rc;
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
    FILE *g = fopen(sl_o.sec, "rb");
    if (!g || fread(&sl_key, sizeof(sl_key), 1, g) != 1)
        return fprintf(stderr, "cannot read the key %s\n", sl_o.sec), -1;
    fclose(g);
    sl_tokens = calloc((size_t)rooms, sizeof(char *));
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
        snprintf(cl.sub, sizeof(cl.sub), "s%s%ld", sl_run, i);
        snprintf(cl.room, sizeof(cl.room), "%s-%ld", sl_run, i);
        int n = ar_token_mint(&sl_key, &cl, tok, sizeof(tok));
        if (n < 0)
            return fprintf(stderr, "mint failed: %d\n", n), -1;
        sl_tokens[i] = strdup(tok);
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
        return fprintf(stderr,
                       "usage: ar_bench_sigload keygen|idle|rate|calls|failover [options]\n"),
               2;
    if (sodium_init() < 0)
        return 1;
    const char *cmd = argv[1];
    if (strcmp(cmd, "keygen") == 0)
        return argc == 4 ? cmd_keygen(argv[2], argv[3]) : 2;
    int opt, inflight_set = 0;
    optind = 2;
    while ((opt = getopt(argc, argv, "d:p:n:P:tUH:mk:r:T:c:S:s:B:K:l:b:f:M:J:W:")) != -1) {
        switch (opt) {
        case 'd':
            sl_o.dialect = strcmp(optarg, "peerjs") == 0 ? D_PEERJS
                           : strcmp(optarg, "ws") == 0   ? D_WS
                           : strcmp(optarg, "raw") == 0  ? D_RAW
                                                         : D_ANTEROOM;
            break;
        case 'p':
            memset(sl_o.ports, 0, sizeof(sl_o.ports));
            sl_o.nports = 0;
            for (const char *q = optarg; q && sl_o.nports < 8; q = strchr(q, ',')) {
                q += *q == ',';
                sl_o.ports[sl_o.nports++] = atoi(q);
            }
            break;
        case 'n':
            sl_o.n = atoi(optarg);
            break;
        case 'P':
            sl_o.procs = atoi(optarg);
            break;
        case 't':
            sl_o.tls = 1;
            break;
        case 'U':
            sl_o.upgrade_only = 1;
            break;
        case 'm':
            sl_o.same_node = 1;
            break;
        case 'H':
            sl_o.hold_secs = atoi(optarg);
            break;
        case 'k':
            sl_o.pairs = atoi(optarg);
            break;
        case 'r':
            sl_o.rate = atoi(optarg);
            break;
        case 'T':
            sl_o.secs = atoi(optarg);
            break;
        case 'c':
            sl_o.calls = atoi(optarg);
            break;
        case 'S':
            sl_o.size = atoi(optarg);
            break;
        case 's':
            sl_o.nspids = parse_pids(optarg, sl_o.spids, 64);
            break;
        case 'B':
            sl_o.nbpids = parse_pids(optarg, sl_o.bpids, 8);
            break;
        case 'K':
            sl_o.sec = optarg;
            break;
        case 'l':
            sl_o.label = optarg;
            break;
        case 'M':
            if (strcmp(optarg, "offer") != 0 && strcmp(optarg, "candidate") != 0) {
                fprintf(stderr, "sigload: -M offer or -M candidate\n");
                return 2;
            }
            sl_o.kind = optarg;
            break;
        case 'b':
            sl_o.srcbase = atoi(optarg);
            break;
        case 'f':
            sl_inflight = atoi(optarg);
            inflight_set = 1;
            break;
        case 'J':
            sl_o.jitter = atof(optarg);
            break;
        case 'W':
            sl_o.bound_secs = atoi(optarg);
            break;
        default:
            return 2;
        }
    }
    if (!sl_o.ports[0] || !sl_o.nspids || sl_o.procs < 1 || sl_o.procs > 60 || (sl_o.n & 1))
        return fprintf(stderr, "need -p, -s, 1..60 processes, an even -n\n"), 2;
    signal(SIGPIPE, SIG_IGN);
    srandom((unsigned)getpid());
    snprintf(sl_run, sizeof(sl_run), "r%x", (unsigned)(sl_now_ns() / 1000 % 0xffffff));
    long rooms = strcmp(cmd, "calls") == 0  ? sl_o.calls + 2
                 : strcmp(cmd, "rate") == 0 ? sl_o.pairs + 1
                                            : sl_o.n / 2 + 52;
    if (sl_o.dialect == D_ANTEROOM && (!sl_o.sec || mint_tokens(rooms) != 0))
        return fprintf(stderr, "anteroom needs -K key (from keygen)\n"), 2;
    if (strcmp(cmd, "idle") == 0)
        return cmd_idle();
    if (strcmp(cmd, "rate") == 0)
        return cmd_rate();
    if (strcmp(cmd, "calls") == 0)
        return cmd_calls();
    if (strcmp(cmd, "failover") == 0) {
        if (!inflight_set)
            sl_inflight = 64;
        return cmd_failover();
    }
    return 2;
}
