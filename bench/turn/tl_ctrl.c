/*
 * The control side of the load client: sockets (UDP, TCP, TLS), and the Allocate,
 * CreatePermission and ChannelBind transactions with long-term credentials, built and parsed
 * with our own codec (src/proto/stun). Allocations are started `window` at a time so that the
 * allocation rate measures the server, not a burst of SYNs or datagrams it had to drop.
 */
#include "tl.h"

#include "proto/stun/stun.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define CTRL_RTO_NS 500000000ull /* UDP retransmission timeout; loopback answers in < 1 ms */
#define CTRL_MAX_TRIES 8

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    /* xorshift64: transaction ids need to be unique, not secret, in a benchmark. */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static int epoll_set(tl_ctx_t *c, tl_alloc_t *a, int op, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.u32 = (uint32_t)(a - c->a)};
    return epoll_ctl(c->ep, op, a->fd, &ev);
}

int tl_ctrl_init(tl_ctx_t *c)
{
    tl_opts_t *o = &c->o;
    if (getrandom(&rng_state, sizeof(rng_state), 0) != sizeof(rng_state) || rng_state == 0)
        rng_state = 0x9e3779b97f4a7c15ull ^ tl_now_ns();
    c->a = calloc((size_t)o->allocs, sizeof(*c->a));
    c->st = calloc(1, sizeof(*c->st));
    c->ep = epoll_create1(0);
    if (!c->a || !c->st || c->ep < 0)
        return -1;
    for (int i = 0; i < o->allocs; i++)
        c->a[i].fd = -1;
    if (o->transport == TL_TLS) {
        c->ssl_ctx = SSL_CTX_new(TLS_client_method());
        if (!c->ssl_ctx)
            return -1;
        SSL_CTX_set_min_proto_version(c->ssl_ctx, TLS1_2_VERSION);
        /* The servers under test use a throwaway self-signed certificate on loopback, so the
         * client does not verify it: what is measured is the cost of the encrypted relay. */
        SSL_CTX_set_verify(c->ssl_ctx, SSL_VERIFY_NONE, NULL);
        SSL_CTX_set_mode(c->ssl_ctx,
                         SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    }
    if (o->secret) {
        /* TURN REST scheme: username "expiry:user", password base64(HMAC-SHA1(secret, it)). */
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int maclen = 0;
        snprintf(c->user, sizeof(c->user), "%lld:%s", (long long)time(NULL) + 86400, o->user);
        HMAC(EVP_sha1(), o->secret, (int)strlen(o->secret), (const unsigned char *)c->user,
             strlen(c->user), mac, &maclen);
        EVP_EncodeBlock((unsigned char *)c->pass, mac, (int)maclen);
    } else {
        snprintf(c->user, sizeof(c->user), "%s", o->user);
        snprintf(c->pass, sizeof(c->pass), "%s", o->pass);
    }
    return 0;
}

int tl_stream_flush(tl_ctx_t *c, tl_alloc_t *a)
{
    size_t off = 0;
    while (off < a->tx_len) {
        long n;
        if (a->ssl) {
            ERR_clear_error();
            n = SSL_write(a->ssl, a->tx + off, (int)(a->tx_len - off));
            if (n <= 0) {
                int e = SSL_get_error(a->ssl, (int)n);
                if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ)
                    return -1;
                break;
            }
        } else {
            n = write(a->fd, a->tx + off, a->tx_len - off);
            if (n < 0) {
                if (errno != EAGAIN)
                    return -1;
                break;
            }
        }
        off += (size_t)n;
    }
    memmove(a->tx, a->tx + off, a->tx_len - off);
    a->tx_len -= off;
    int want = a->tx_len > 0;
    if (want != a->want_write) {
        a->want_write = (uint8_t)want;
        epoll_set(c, a, EPOLL_CTL_MOD, EPOLLIN | (want ? EPOLLOUT : 0u));
    }
    return 0;
}

int tl_stream_read(tl_ctx_t *c, tl_alloc_t *a)
{
    (void)c;
    int total = 0;
    while (a->rx_len < a->rx_cap) {
        long n;
        if (a->ssl) {
            ERR_clear_error();
            n = SSL_read(a->ssl, a->rx + a->rx_len, (int)(a->rx_cap - a->rx_len));
            if (n <= 0) {
                int e = SSL_get_error(a->ssl, (int)n);
                if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                    break;
                return -1;
            }
        } else {
            n = read(a->fd, a->rx + a->rx_len, a->rx_cap - a->rx_len);
            if (n == 0)
                return -1;
            if (n < 0) {
                if (errno == EAGAIN)
                    break;
                return -1;
            }
        }
        a->rx_len += (size_t)n;
        total += (int)n;
    }
    return total;
}

static int send_bytes(tl_ctx_t *c, tl_alloc_t *a, const uint8_t *buf, size_t len)
{
    if (c->o.transport == TL_UDP)
        return send(a->fd, buf, len, 0) == (ssize_t)len ? 0 : -1;
    if (a->tx_len + len > a->tx_cap)
        return -1;
    memcpy(a->tx + a->tx_len, buf, len);
    a->tx_len += len;
    return tl_stream_flush(c, a);
}

/* Builds and sends the request the allocation's state calls for; new_tid = 0 retransmits. */
static int send_ctrl(tl_ctx_t *c, tl_alloc_t *a, int new_tid)
{
    static const uint16_t methods[] = {[TL_ST_ALLOC] = AR_TURN_ALLOCATE,
                                       [TL_ST_PERM] = AR_TURN_CREATE_PERMISSION,
                                       [TL_ST_BIND] = AR_TURN_CHANNEL_BIND};
    uint8_t buf[1024];
    ar_stun_builder_t b;
    if (new_tid) {
        uint64_t r1 = rng_next(), r2 = rng_next();
        memcpy(a->tid, &r1, 8);
        memcpy(a->tid + 8, &r2, 4);
        a->tries = 0;
    }
    ar_stun_build_start(&b, buf, sizeof(buf), methods[a->state], AR_STUN_REQUEST, a->tid);
    if (a->state == TL_ST_ALLOC) {
        ar_stun_build_u32(&b, AR_TURN_ATTR_REQUESTED_TRANSPORT, 17u << 24); /* UDP */
        ar_stun_build_u32(&b, AR_TURN_ATTR_LIFETIME, 600);
    } else {
        if (a->state == TL_ST_BIND)
            ar_stun_build_u32(&b, AR_TURN_ATTR_CHANNEL_NUMBER, (uint32_t)a->channel << 16);
        ar_stun_build_xor_addr(&b, AR_TURN_ATTR_XOR_PEER_ADDRESS,
                               (const struct sockaddr *)&c->o.peer);
    }
    if (a->authed) {
        ar_stun_build_attr(&b, AR_STUN_ATTR_USERNAME, c->user, strlen(c->user));
        ar_stun_build_attr(&b, AR_STUN_ATTR_REALM, c->realm, c->realm_len);
        ar_stun_build_attr(&b, AR_STUN_ATTR_NONCE, a->nonce, a->nonce_len);
        ar_stun_build_integrity(&b, c->key, sizeof(c->key));
    }
    int len = ar_stun_build_finish(&b);
    if (len < 0)
        return -1;
    a->tries++;
    a->sent_ns = tl_now_ns();
    return send_bytes(c, a, buf, (size_t)len);
}

static void fail(tl_alloc_t *a, const char *why, int code)
{
    static const char *const steps[] = {[TL_ST_CONNECTING] = "TCP connect",
                                        [TL_ST_HANDSHAKE] = "TLS handshake",
                                        [TL_ST_ALLOC] = "Allocate",
                                        [TL_ST_ALLOCATED] = "Allocate",
                                        [TL_ST_PERM] = "CreatePermission",
                                        [TL_ST_BIND] = "ChannelBind",
                                        [TL_ST_READY] = "data",
                                        [TL_ST_FAILED] = "teardown"};
    static int reported;
    /* Socket errors read better as text; STUN error codes and states stay numbers. */
    int sys = strcmp(why, "connect") == 0 || strcmp(why, "socket") == 0 ||
              strcmp(why, "send") == 0 || strcmp(why, "bind") == 0 || strcmp(why, "write") == 0;
    char num[16];
    snprintf(num, sizeof(num), "%d", code);
    if (reported++ < 5)
        fprintf(stderr, "ar-turnload: %s failed: %s %s\n", steps[a->state], why,
                sys ? strerror(code) : num);
    a->state = TL_ST_FAILED;
}

/* Handles one STUN message for allocation a (any other frame is ignored here). */
static void on_ctrl_msg(tl_ctx_t *c, tl_alloc_t *a, const uint8_t *buf, size_t len)
{
    ar_stun_msg_t m;
    if (ar_stun_parse(buf, len, &m) != 0 || memcmp(m.tid, a->tid, 12) != 0)
        return; /* a stale retransmission's answer, or not STUN */
    if (a->state != TL_ST_ALLOC && a->state != TL_ST_PERM && a->state != TL_ST_BIND)
        return;
    if (m.cls == AR_STUN_ERROR) {
        int code = 0;
        const uint8_t *reason;
        size_t rlen;
        const ar_stun_attr_t *e = ar_stun_find(&m, AR_STUN_ATTR_ERROR_CODE);
        if (!e || ar_stun_attr_error(e, &code, &reason, &rlen) != 0)
            return fail(a, "error without ERROR-CODE", 0);
        const ar_stun_attr_t *realm = ar_stun_find(&m, AR_STUN_ATTR_REALM);
        const ar_stun_attr_t *nonce = ar_stun_find(&m, AR_STUN_ATTR_NONCE);
        /* 401 on the first request, 438 when the nonce went stale: retry with credentials. */
        if ((code != 401 && code != 438) || !nonce || nonce->len > sizeof(a->nonce) ||
            (code == 401 && a->authed))
            return fail(a, "error code", code);
        if (!c->have_realm) {
            if (!realm || realm->len >= sizeof(c->realm))
                return fail(a, "no realm", code);
            memcpy(c->realm, realm->value, realm->len);
            c->realm_len = realm->len;
            ar_stun_long_term_key(c->user, strlen(c->user), c->realm, c->realm_len, c->pass,
                                  strlen(c->pass), c->key);
            c->have_realm = 1;
        }
        memcpy(a->nonce, nonce->value, nonce->len);
        a->nonce_len = (uint8_t)nonce->len;
        a->authed = 1;
        if (send_ctrl(c, a, 1) != 0)
            fail(a, "send", errno);
        return;
    }
    if (m.cls != AR_STUN_SUCCESS)
        return;
    if (a->state == TL_ST_ALLOC) {
        a->state = TL_ST_ALLOCATED;
    } else if (a->state == TL_ST_PERM) {
        a->state = TL_ST_BIND;
        if (send_ctrl(c, a, 1) != 0)
            fail(a, "send", errno);
    } else {
        a->state = TL_ST_READY;
    }
}

static int bind_source(const tl_ctx_t *c, const tl_alloc_t *a)
{
    if (!c->o.bind_ip.s_addr)
        return 0;
    uint32_t ip = ntohl(c->o.bind_ip.s_addr) + (uint32_t)((a - c->a) % c->o.spread);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(ip)};
    return bind(a->fd, (const struct sockaddr *)&sa, sizeof(sa));
}

static void start_alloc(tl_ctx_t *c, tl_alloc_t *a)
{
    int stream = c->o.transport != TL_UDP;
    a->channel = AR_TURN_CHANNEL_MIN; /* channel numbers are per allocation */
    a->fd = socket(AF_INET, stream ? SOCK_STREAM : SOCK_DGRAM, 0);
    if (a->fd < 0 || tl_set_nonblock(a->fd) != 0)
        return fail(a, "socket", errno);
    if (stream) {
        a->rx_cap = a->tx_cap = TL_CTRL_RX;
        a->rx = malloc(a->rx_cap);
        a->tx = malloc(a->tx_cap);
        if (!a->rx || !a->tx)
            return fail(a, "memory", 0);
        int one = 1;
        setsockopt(a->fd, IPPROTO_TCP, 1 /* TCP_NODELAY */, &one, sizeof(one));
    }
    if (bind_source(c, a) != 0)
        return fail(a, "bind", errno);
    int r = connect(a->fd, (const struct sockaddr *)&c->o.server, sizeof(c->o.server));
    if (r != 0 && errno != EINPROGRESS)
        return fail(a, "connect", errno);
    if (stream) {
        a->state = TL_ST_CONNECTING;
        a->want_write = 1;
        a->sent_ns = tl_now_ns();
        epoll_set(c, a, EPOLL_CTL_ADD, EPOLLIN | EPOLLOUT);
        return;
    }
    epoll_set(c, a, EPOLL_CTL_ADD, EPOLLIN);
    a->state = TL_ST_ALLOC;
    if (send_ctrl(c, a, 1) != 0)
        fail(a, "send", errno);
}

/* Advances a stream allocation's TCP connect and TLS handshake. */
static void on_connecting(tl_ctx_t *c, tl_alloc_t *a)
{
    if (a->state == TL_ST_CONNECTING) {
        int err = 0;
        socklen_t l = sizeof(err);
        getsockopt(a->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err == EINPROGRESS)
            return;
        if (err)
            return fail(a, "connect", err);
        if (c->o.transport == TL_TLS) {
            a->ssl = SSL_new(c->ssl_ctx);
            if (!a->ssl || SSL_set_fd(a->ssl, a->fd) != 1)
                return fail(a, "tls", 0);
            a->state = TL_ST_HANDSHAKE;
        }
    }
    if (a->state == TL_ST_HANDSHAKE) {
        ERR_clear_error();
        int r = SSL_connect(a->ssl);
        if (r != 1) {
            int e = SSL_get_error(a->ssl, r);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                return fail(a, "tls handshake", e);
            a->want_write = e == SSL_ERROR_WANT_WRITE;
            epoll_set(c, a, EPOLL_CTL_MOD, EPOLLIN | (a->want_write ? EPOLLOUT : 0u));
            return;
        }
    }
    a->want_write = 0;
    epoll_set(c, a, EPOLL_CTL_MOD, EPOLLIN);
    a->state = TL_ST_ALLOC;
    if (send_ctrl(c, a, 1) != 0)
        fail(a, "send", errno);
}

/* Feeds whatever arrived on a's socket to the control state machine. */
static void on_ctrl_readable(tl_ctx_t *c, tl_alloc_t *a)
{
    uint8_t buf[2048];
    if (c->o.transport == TL_UDP) {
        ssize_t n;
        while ((n = recv(a->fd, buf, sizeof(buf), 0)) > 0)
            on_ctrl_msg(c, a, buf, (size_t)n);
        return;
    }
    if (tl_stream_read(c, a) < 0)
        return fail(a, "connection closed", 0);
    size_t off = 0;
    while (a->rx_len - off >= 4) {
        const uint8_t *p = a->rx + off;
        size_t flen = (size_t)(p[2] << 8 | p[3]);
        /* STUN: header + length; ChannelData: header + data padded to 4 over streams. */
        size_t need = (p[0] & 0xc0) == 0x40 ? 4 + ((flen + 3) & ~(size_t)3) : 20 + flen;
        if (a->rx_len - off < need)
            break;
        if ((p[0] & 0xc0) == 0)
            on_ctrl_msg(c, a, p, need);
        off += need;
    }
    memmove(a->rx, a->rx + off, a->rx_len - off);
    a->rx_len -= off;
    if (a->rx_len == a->rx_cap)
        fail(a, "oversized frame", 0);
}

static int phase_done(const tl_alloc_t *a, int phase)
{
    return a->state == TL_ST_FAILED ||
           (phase == 1 ? a->state == TL_ST_ALLOCATED : a->state == TL_ST_READY);
}

int tl_ctrl_run_phase(tl_ctx_t *c, int phase, double timeout_s)
{
    int n = c->o.allocs, next = 0, active = 0, ok = 0, failed = 0;
    uint64_t deadline = tl_now_ns() + (uint64_t)(timeout_s * 1e9), last_scan = 0;
    struct epoll_event evs[256];
    while (ok + failed < n && tl_now_ns() < deadline) {
        while (active < c->o.window && next < n) {
            tl_alloc_t *a = &c->a[next++];
            if (phase == 1) {
                start_alloc(c, a);
            } else if (a->state == TL_ST_ALLOCATED) {
                a->state = TL_ST_PERM;
                if (send_ctrl(c, a, 1) != 0)
                    fail(a, "send", errno);
            }
            if (phase_done(a, phase))
                a->state == TL_ST_FAILED ? failed++ : ok++;
            else
                active++;
        }
        int ne = epoll_wait(c->ep, evs, 256, 10);
        for (int i = 0; i < ne; i++) {
            tl_alloc_t *a = &c->a[evs[i].data.u32];
            if (phase_done(a, phase))
                continue;
            if (a->state == TL_ST_CONNECTING || a->state == TL_ST_HANDSHAKE)
                on_connecting(c, a);
            else if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                on_ctrl_readable(c, a);
            if (a->want_write && (evs[i].events & EPOLLOUT) && a->state != TL_ST_FAILED &&
                a->state != TL_ST_CONNECTING && a->state != TL_ST_HANDSHAKE &&
                tl_stream_flush(c, a) != 0)
                fail(a, "write", errno);
            if (phase_done(a, phase)) {
                active--;
                a->state == TL_ST_FAILED ? failed++ : ok++;
            }
        }
        /* Retransmit lost UDP requests; a stream that stays silent this long has failed. */
        uint64_t now = tl_now_ns();
        if (now - last_scan < 50000000ull)
            continue;
        last_scan = now;
        for (int i = 0; i < next; i++) {
            tl_alloc_t *a = &c->a[i];
            if (phase_done(a, phase) || now - a->sent_ns < CTRL_RTO_NS * a->tries)
                continue;
            if (c->o.transport != TL_UDP || a->tries >= CTRL_MAX_TRIES) {
                if (now - a->sent_ns < 10000000000ull)
                    continue;
                fail(a, "timeout, state", a->state);
            } else if (send_ctrl(c, a, 0) != 0) {
                fail(a, "send", errno);
            }
            if (phase_done(a, phase)) {
                active--;
                failed++;
            }
        }
    }
    if (failed)
        fprintf(stderr, "ar-turnload: phase %d: %d of %d failed\n", phase, failed, n);
    return ok;
}

/*
 * Deletes a UDP allocation (Refresh with LIFETIME 0), without waiting for the answer. Without it
 * the server keeps the allocation for its lifetime, and a later client socket that happens to
 * get the same port would be refused with 437 Allocation Mismatch. Closing a TCP or TLS
 * connection deletes its allocation by itself.
 */
static void deallocate(tl_ctx_t *c, tl_alloc_t *a)
{
    uint8_t buf[512];
    ar_stun_builder_t b;
    uint64_t r1 = rng_next(), r2 = rng_next();
    memcpy(a->tid, &r1, 8);
    memcpy(a->tid + 8, &r2, 4);
    ar_stun_build_start(&b, buf, sizeof(buf), AR_TURN_REFRESH, AR_STUN_REQUEST, a->tid);
    ar_stun_build_u32(&b, AR_TURN_ATTR_LIFETIME, 0);
    ar_stun_build_attr(&b, AR_STUN_ATTR_USERNAME, c->user, strlen(c->user));
    ar_stun_build_attr(&b, AR_STUN_ATTR_REALM, c->realm, c->realm_len);
    ar_stun_build_attr(&b, AR_STUN_ATTR_NONCE, a->nonce, a->nonce_len);
    ar_stun_build_integrity(&b, c->key, sizeof(c->key));
    int len = ar_stun_build_finish(&b);
    if (len > 0 && send(a->fd, buf, (size_t)len, 0) < 0)
        return;
}

void tl_ctrl_close_all(tl_ctx_t *c)
{
    for (int i = 0; i < c->o.allocs; i++) {
        tl_alloc_t *a = &c->a[i];
        if (c->o.transport == TL_UDP && a->fd >= 0 && a->authed && a->state != TL_ST_FAILED &&
            a->state != TL_ST_ALLOC) {
            deallocate(c, a);
            if (i % 32 == 31)
                usleep(1000); /* paced, so the server's socket buffer does not drop them */
        }
        if (a->ssl)
            SSL_free(a->ssl);
        if (a->fd >= 0)
            close(a->fd);
        free(a->rx);
        free(a->tx);
        a->fd = -1;
        a->ssl = NULL;
        a->rx = a->tx = NULL;
    }
    if (c->ssl_ctx)
        SSL_CTX_free(c->ssl_ctx);
    c->ssl_ctx = NULL;
}

int tl_raw_open(tl_ctx_t *c)
{
    for (int i = 0; i < c->o.allocs; i++) {
        tl_alloc_t *a = &c->a[i];
        a->fd = socket(AF_INET, SOCK_DGRAM, 0);
        if (a->fd < 0 || tl_set_nonblock(a->fd) != 0 || bind_source(c, a) != 0 ||
            connect(a->fd, (const struct sockaddr *)&c->o.server, sizeof(c->o.server)) != 0 ||
            epoll_set(c, a, EPOLL_CTL_ADD, EPOLLIN) != 0) {
            perror("ar-turnload: raw socket");
            return -1;
        }
        a->state = TL_ST_READY;
    }
    return 0;
}
