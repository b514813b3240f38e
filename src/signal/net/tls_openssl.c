/*
 * The listener's TLS on OpenSSL 3: every OpenSSL call of the signalling transport is in this file
 * (and the record layer's cryptography in tls13_rec.c).
 *
 * Memory is the concern (docs/architecture.md): SSL_set_fd rather than memory BIOs (no ring
 * buffers of ours per connection), SSL_MODE_RELEASE_BUFFERS so an idle connection gives its read
 * and write buffers back, no session cache and no tickets (resumption state per connection is
 * what we cannot afford at 100,000 connections; a reconnecting client pays a full handshake).
 *
 * And once a TLS 1.3 handshake is done, the SSL object goes: OpenSSL keeps about 13.5 KiB per
 * idle connection whatever it is told (docs/performance.md), while the connection from then on
 * needs only its traffic keys. OpenSSL hands us the two application traffic secrets through the
 * key-log callback (the interface kernel TLS offload and SSLKEYLOGFILE use), we derive keys and
 * IVs, free the SSL object, and seal and open records ourselves (tls13_rec.c) with OpenSSL's
 * AEADs. KeyUpdate is answered; close_notify ends the stream; any other alert, a bad tag or a
 * handshake message other than KeyUpdate ends the connection. TLS 1.2 (and anything unexpected at
 * the end of a handshake) keeps the SSL object, as before.
 */
#include "internal.h"
#include "tls13_rec.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <string.h>
#include <sys/socket.h>

/* What we keep per connection instead of (after the handshake) the SSL object. */
typedef struct oconn_s {
    SSL *ssl; /* until the handshake is done; for good when it could not be let go */
    int fd;
    uint8_t secrets; /* 1: client's application traffic secret seen, 2: server's */
    uint8_t secret_len;
    uint8_t eof, failed, owe_update;
    const ar__t13_suite_t *suite;
    ar__t13_dir_t rd, wr;
    uint8_t *in; /* a partial record, kept between reads only while one is pending */
    uint32_t in_len;
    uint8_t *wp; /* sealed bytes the socket has not taken yet */
    uint32_t wp_off, wp_len, wp_plain;
} oconn_t;

_Atomic unsigned long ar__sn_tls_detached;

/* Sealing scratch: up to this many records per write call. */
#define SEAL_RECORDS 4
static _Thread_local uint8_t t_seal[SEAL_RECORDS * (AR__T13_MAX_RECORD + 1)];

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/*
 * "CLIENT_TRAFFIC_SECRET_0 <client random> <secret>", and the server's: the secrets of the
 * application traffic keys, in hex (OpenSSL wipes the line after the call).
 */
static void keylog(const SSL *ssl, const char *line)
{
    oconn_t *o = SSL_get_app_data(ssl);
    static const char cl[] = "CLIENT_TRAFFIC_SECRET_0 ", sv[] = "SERVER_TRAFFIC_SECRET_0 ";
    ar__t13_dir_t *d;
    uint8_t bit;
    if (!o)
        return;
    if (strncmp(line, cl, sizeof(cl) - 1) == 0)
        d = &o->rd, bit = 1;
    else if (strncmp(line, sv, sizeof(sv) - 1) == 0)
        d = &o->wr, bit = 2;
    else
        return;
    const char *hex = strchr(line + sizeof(cl) - 1, ' ');
    if (!hex)
        return;
    hex++;
    size_t n = strlen(hex) / 2;
    if ((n != 32 && n != 48) || strlen(hex) != 2 * n)
        return;
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return;
        d->secret[i] = (uint8_t)(hi << 4 | lo);
    }
    o->secret_len = (uint8_t)n;
    o->secrets |= bit;
}

/*
 * After a finished handshake: TLS 1.3 with both secrets, nothing read ahead and a suite we seal
 * ourselves lets go of the SSL object; anything else keeps it. Our tickets are off, so neither
 * direction has sent an application-traffic record yet: both sequence numbers start at 0.
 */
static void detach(oconn_t *o)
{
    SSL *ssl = o->ssl;
    const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
    const ar__t13_suite_t *s = c ? ar__t13_suite(SSL_CIPHER_get_protocol_id(c)) : NULL;
    if (SSL_version(ssl) != TLS1_3_VERSION || o->secrets != 3 || !s ||
        o->secret_len != s->hash_len || SSL_has_pending(ssl) || SSL_pending(ssl) ||
        ar__t13_dir_init(s, &o->rd) != 0 || ar__t13_dir_init(s, &o->wr) != 0)
        return;
    o->suite = s;
    ar__sn_tls_detached++;
    SSL_free(ssl); /* the socket BIO does not close the descriptor */
    o->ssl = NULL;
}

static int ctx_new(const char *cert, const char *key, void **out)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return AR_ENOMEM;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx, 0);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_keylog_callback(ctx, keylog);
    /* Partial writes and moving buffers: a write refused half-way is retried from our queue. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        ERR_clear_error();
        SSL_CTX_free(ctx);
        return AR_ETLS;
    }
    *out = ctx;
    return 0;
}

static void ctx_free(void *ctx)
{
    SSL_CTX_free(ctx);
}

static int conn_new(void *ctx, int fd, void **out)
{
    oconn_t *o = OPENSSL_zalloc(sizeof(*o));
    SSL *ssl = o ? SSL_new(ctx) : NULL;
    if (!ssl) {
        OPENSSL_free(o);
        return AR_ENOMEM;
    }
    o->ssl = ssl;
    o->fd = fd;
    if (SSL_set_fd(ssl, fd) != 1 || SSL_set_app_data(ssl, o) != 1) {
        SSL_free(ssl);
        OPENSSL_free(o);
        return AR_ETLS;
    }
    SSL_set_accept_state(ssl);
    *out = o;
    return 0;
}

static void conn_free(void *tls)
{
    oconn_t *o = tls;
    SSL_free(o->ssl);
    OPENSSL_clear_free(o->in, o->in_len);
    OPENSSL_clear_free(o->wp, o->wp_len);
    OPENSSL_clear_free(o, sizeof(*o)); /* the traffic secrets and keys */
}

/* Maps an SSL result to our convention; the error queue is left empty either way. */
static int result(SSL *ssl, int ret, int *want_write)
{
    switch (SSL_get_error(ssl, ret)) {
    case SSL_ERROR_WANT_READ:
        *want_write = 0;
        return AR_EAGAIN;
    case SSL_ERROR_WANT_WRITE:
        *want_write = 1;
        return AR_EAGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    default:
        ERR_clear_error();
        return AR_ETLS;
    }
}

static int handshake(void *tls, int *want_write)
{
    oconn_t *o = tls;
    ERR_clear_error();
    int r = SSL_do_handshake(o->ssl);
    if (r == 1) {
        detach(o);
        return 0;
    }
    int e = result(o->ssl, r, want_write);
    return e == 0 ? AR_ETLS : e;
}

/* Handshake messages after the handshake: only KeyUpdate (RFC 8446 4.6.3) is acceptable. */
static int post_handshake(oconn_t *o, const uint8_t *m, size_t len)
{
    while (len > 0) {
        if (len < 5 || m[0] != 24 || m[1] != 0 || m[2] != 0 || m[3] != 1 || m[4] > 1)
            return AR_ETLS;
        if (ar__t13_dir_update(o->suite, &o->rd) != 0)
            return AR_ETLS;
        if (m[4] == 1)
            o->owe_update = 1; /* ours goes before our next application data */
        m += 5;
        len -= 5;
    }
    return 0;
}

/*
 * Reads records into buf and returns the plaintext of the whole ones, packed at its start; a
 * record split over reads waits in o->in. buf must hold a whole record (the loop's 64 KiB does).
 */
static int rec_read(oconn_t *o, uint8_t *buf, size_t cap)
{
    if (o->failed)
        return AR_ETLS;
    if (o->eof)
        return 0;
    if (cap < AR__T13_MAX_RECORD)
        return AR_EINVAL;
    size_t have = 0, out = 0;
    int rounds = 0; /* reads that gave no plaintext (empty records, KeyUpdates): bounded */
    if (o->in) {
        memcpy(buf, o->in, o->in_len);
        have = o->in_len;
        OPENSSL_clear_free(o->in, o->in_len);
        o->in = NULL;
        o->in_len = 0;
    }
    for (;;) {
        ssize_t r = recv(o->fd, buf + have, cap - have, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return AR_ETLS;
        if (r == 0) {
            if (have)
                o->failed = 1; /* a record cut off */
            else
                o->eof = 1;
            return o->failed ? AR_ETLS : 0;
        }
        if (r > 0)
            have += (size_t)r;
        size_t p = 0;
        while (!o->eof && !o->failed && have - p >= AR__T13_HDR) {
            size_t rl = AR__T13_HDR + ((size_t)buf[p + 3] << 8 | buf[p + 4]);
            if (rl > AR__T13_MAX_RECORD) {
                o->failed = 1; /* record_overflow */
                break;
            }
            if (have - p < rl)
                break;
            uint8_t type;
            size_t n;
            if (ar__t13_open(o->suite, &o->rd, buf + p, rl, &type, &n) != 0) {
                o->failed = 1;
                break;
            }
            const uint8_t *pt = buf + p + AR__T13_HDR;
            if (type == 23) {
                memmove(buf + out, pt, n);
                out += n;
            } else if (type == 21) {
                /* close_notify ends the stream; every other alert is fatal in TLS 1.3. */
                if (n == 2 && pt[1] == 0)
                    o->eof = 1;
                else
                    o->failed = 1;
            } else if (type != 22 || post_handshake(o, pt, n) != 0) {
                o->failed = 1;
            }
            p += rl;
        }
        size_t left = have - p;
        /* A peer sending only records without content must not hold the loop: after a few
         * reads we return as if the socket were empty, and epoll (level-triggered) calls back. */
        int yield = r < 0 || ++rounds >= 4;
        if (left && !o->eof && !o->failed && (out > 0 || yield)) {
            o->in = OPENSSL_malloc(left);
            if (!o->in)
                return AR_ENOMEM;
            memcpy(o->in, buf + p, left);
            o->in_len = (uint32_t)left;
        }
        if (out > 0)
            return (int)out; /* an end or failure is reported by the next call */
        if (o->failed)
            return AR_ETLS;
        if (o->eof)
            return 0;
        if (yield)
            return AR_EAGAIN;
        memmove(buf, buf + p, left); /* no plaintext yet: read on behind the partial record */
        have = left;
    }
}

/* Sends sealed bytes; returns how many the socket took, or AR_ETLS. */
static int send_some(oconn_t *o, const uint8_t *b, size_t len, size_t *sent)
{
    *sent = 0;
    while (*sent < len) {
        ssize_t n = send(o->fd, b + *sent, len - *sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : AR_ETLS;
        *sent += (size_t)n;
    }
    return 0;
}

/* Keeps the unsent tail of a record that counts for `plain` bytes of the caller's data. */
static int keep_tail(oconn_t *o, const uint8_t *b, size_t len, size_t plain)
{
    o->wp = OPENSSL_malloc(len);
    if (!o->wp)
        return AR_ENOMEM;
    memcpy(o->wp, b, len);
    o->wp_off = 0;
    o->wp_len = (uint32_t)len;
    o->wp_plain = (uint32_t)plain;
    return 0;
}

/*
 * Seals and sends up to SEAL_RECORDS records of buf. As with SSL_write, a call that returns
 * AR_EAGAIN is repeated with the same bytes: a record the socket took in part is finished from
 * o->wp first and then counted; records it took none of are forgotten and their sequence
 * numbers reused (they never left this process, so no nonce is seen twice).
 */
static int rec_write(oconn_t *o, const uint8_t *buf, size_t len, int *want_write)
{
    *want_write = 1;
    if (o->failed)
        return AR_ETLS;
    if (o->wp) {
        size_t sent;
        if (send_some(o, o->wp + o->wp_off, o->wp_len - o->wp_off, &sent) != 0)
            return AR_ETLS;
        o->wp_off += (uint32_t)sent;
        if (o->wp_off < o->wp_len)
            return AR_EAGAIN;
        size_t plain = o->wp_plain;
        OPENSSL_clear_free(o->wp, o->wp_len);
        o->wp = NULL;
        if (plain)
            return (int)plain;
    }
    if (o->owe_update) {
        static const uint8_t ku[5] = {24, 0, 0, 1, 0}; /* KeyUpdate, update_not_requested */
        size_t rl = ar__t13_seal(o->suite, &o->wr, 22, ku, sizeof(ku), t_seal);
        size_t sent;
        if (rl == 0 || send_some(o, t_seal, rl, &sent) != 0)
            return AR_ETLS;
        if (sent == 0) {
            o->wr.seq--; /* not sent at all: sealed again next time */
            return AR_EAGAIN;
        }
        o->owe_update = 0;
        if (ar__t13_dir_update(o->suite, &o->wr) != 0)
            return AR_ETLS;
        if (sent < rl)
            return keep_tail(o, t_seal + sent, rl - sent, 0) ? AR_ENOMEM : AR_EAGAIN;
    }
    size_t end[SEAL_RECORDS], plain[SEAL_RECORDS], nrec = 0, total = 0, done = 0;
    while (done < len && nrec < SEAL_RECORDS) {
        size_t n = len - done < AR__T13_MAX_PLAIN ? len - done : AR__T13_MAX_PLAIN;
        size_t rl = ar__t13_seal(o->suite, &o->wr, 23, buf + done, n, t_seal + total);
        if (rl == 0)
            return AR_ETLS;
        total += rl;
        done += n;
        end[nrec] = total;
        plain[nrec++] = n;
    }
    size_t sent;
    if (send_some(o, t_seal, total, &sent) != 0)
        return AR_ETLS;
    size_t took = 0, k = 0;
    while (k < nrec && end[k] <= sent)
        took += plain[k++];
    if (k == nrec)
        return (int)took;
    size_t start = k ? end[k - 1] : 0;
    if (sent > start) { /* record k went in part */
        if (keep_tail(o, t_seal + sent, end[k] - sent, plain[k]) != 0)
            return AR_ENOMEM;
        k++;
    }
    o->wr.seq -= nrec - k;
    return took ? (int)took : AR_EAGAIN;
}

static int tls_read(void *tls, uint8_t *buf, size_t cap, int *want_write)
{
    oconn_t *o = tls;
    if (!o->ssl) {
        *want_write = 0;
        return rec_read(o, buf, cap);
    }
    size_t n = 0;
    ERR_clear_error();
    int r = SSL_read_ex(o->ssl, buf, cap, &n);
    if (r == 1)
        return (int)n;
    return result(o->ssl, r, want_write);
}

static int tls_write(void *tls, const uint8_t *buf, size_t len, int *want_write)
{
    oconn_t *o = tls;
    if (!o->ssl)
        return rec_write(o, buf, len, want_write);
    size_t n = 0;
    ERR_clear_error();
    int r = SSL_write_ex(o->ssl, buf, len, &n);
    if (r == 1)
        return (int)n;
    int e = result(o->ssl, r, want_write);
    return e == 0 ? AR_ETLS : e;
}

static int pending(void *tls)
{
    oconn_t *o = tls;
    return o->ssl ? SSL_pending(o->ssl) : 0;
}

static void thread_end(void)
{
    /* OpenSSL frees its per-thread state itself when the thread exits; ours we free here. */
    ar__t13_thread_end();
}

const ar__sn_tls_ops_t ar__sn_tls_openssl = {ctx_new,  ctx_free,  conn_new, conn_free, handshake,
                                             tls_read, tls_write, pending,  thread_end};
