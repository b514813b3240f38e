/*
 * One WebSocket connection: TLS handshake, upgrade, frames in, frames out, close.
 *
 * States (ar__sn_state_t) change only in set_state(). Input is read into the loop's shared
 * buffer and parsed where it lies; a message that arrives whole in one read is handed to the
 * application in place, without a copy or an allocation. Only what straddles reads is copied into
 * the connection's `in` (freed once delivered). Output goes straight to the socket; only what the
 * socket refuses is copied into `out` (freed once written), capped by max_outgoing.
 */
#include "internal.h"

#include "anteroom/alloc.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* Reads per readiness event, so one busy peer cannot monopolise the loop. */
#define READS_PER_EVENT 8
/* Frames up to this size go out with one send() from a copy (send_raw2): on this VM a 176-byte
 * frame cost 0.25-0.3 us less CPU this way than as a sendmsg() of header and payload
 * (bench/signal_parts/send.c, ar_bench_sig_send), and a copy of 2 KB costs well under that. */
#define SEND_COPY_MAX 2048
_Static_assert(SEND_COPY_MAX <= AR__SN_READ_BUF, "the copy fits the loop's write scratch");

static void set_state(ar_sn_conn_t *c, ar__sn_state_t st)
{
    /* One place for transitions (curl's multi_setstate): a debug hook belongs here. */
    c->state = (uint8_t)st;
}

/*
 * Input and output buffers hold what clients said (upgrade requests with their headers, messages
 * with SDP, names, tokens): they are wiped before they go back to the allocator, as records and
 * frames are elsewhere, so a later allocation or a core dump does not carry them (defence in
 * depth for privacy).
 */
static void wipe_free(void *p, size_t n)
{
    if (!p)
        return;
    explicit_bzero(p, n);
    ar_free(p);
}

static void in_free(ar__sn_in_t *in)
{
    if (!in)
        return;
    wipe_free(in->data, in->cap);
    wipe_free(in, sizeof(*in));
}

static void out_free(ar__sn_out_t *o)
{
    if (o)
        wipe_free(o, sizeof(*o) + o->cap);
}

ar__sn_ext_t *ar__sn_ext(ar_sn_conn_t *c)
{
    if (!c->ext)
        c->ext = ar_calloc(1, sizeof(*c->ext));
    return c->ext;
}

void ar__sn_ext_trim(ar_sn_conn_t *c)
{
    ar__sn_ext_t *x = c->ext;
    if (x && !x->tls && !x->in && !x->out) {
        ar_free(x);
        c->ext = NULL;
    }
}

void ar__sn_conn_free(ar_sn_conn_t *c)
{
    ar__sn_ext_t *x = c->ext;
    if (x) {
        if (x->tls)
            c->loop->conf.tls->ops->conn_free(x->tls);
        in_free(x->in);
        out_free(x->out);
        ar_free(x);
    }
    ar_free(c);
}

/* ---- output ---- */

static int raw_write(ar_sn_conn_t *c, const uint8_t *buf, size_t len)
{
    int ww = 0;
    void *tls = ar__sn_tls(c);
    if (tls) {
        int n = c->loop->conf.tls->ops->write(tls, buf, len, &ww);
        if (n == AR_EAGAIN && ww)
            c->flags |= AR__SN_F_WANTW;
        return n;
    }
    ssize_t n = ar__sn_send(c->fd, buf, len);
    if (n >= 0)
        return (int)n;
    return errno == EAGAIN || errno == EWOULDBLOCK ? AR_EAGAIN : AR_EIO;
}

/* Appends a and b to the output queue; AR_EQUOTA past the cap (the caller drops the peer). */
static int queue(ar_sn_conn_t *c, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    ar__sn_out_t *o = ar__sn_out(c);
    size_t have = o ? o->len - o->off : 0;
    size_t need = have + alen + blen;
    if (need > c->loop->conf.max_outgoing)
        return AR_EQUOTA;
    if (!o || o->cap < need) {
        size_t cap = 256;
        while (cap < need)
            cap *= 2;
        ar__sn_ext_t *x = ar__sn_ext(c);
        ar__sn_out_t *n = x ? ar_malloc(sizeof(*n) + cap) : NULL;
        if (!n) {
            ar__sn_ext_trim(c);
            return AR_ENOMEM;
        }
        if (o)
            memcpy(n->data, o->data + o->off, have);
        out_free(o);
        n->cap = (uint32_t)cap;
        o = x->out = n;
    } else if (o->off) {
        memmove(o->data, o->data + o->off, have);
    }
    o->off = 0;
    memcpy(o->data + have, a, alen);
    if (blen)
        memcpy(o->data + have + alen, b, blen);
    o->len = (uint32_t)need;
    return ar__sn_epoll_update(c);
}

static void start_linger(ar_sn_conn_t *c)
{
    /* The server closes TCP first (RFC 6455 7.1.1); we then wait briefly for the peer's FIN so a
     * reset does not destroy our close frame in flight. */
    (void)shutdown(c->fd, SHUT_WR);
    set_state(c, AR__SN_LINGER);
    ar__sn_timer_set(c, AR__SN_LINGER_S);
}

static void flush(ar_sn_conn_t *c)
{
    ar__sn_out_t *o = ar__sn_out(c);
    while (o && o->off < o->len) {
        int n = raw_write(c, o->data + o->off, o->len - o->off);
        if (n == AR_EAGAIN) {
            (void)ar__sn_epoll_update(c);
            return;
        }
        if (n < 0) {
            ar__sn_kill(c, 1006);
            return;
        }
        o->off += (uint32_t)n;
    }
    if (o) {
        out_free(o);
        c->ext->out = NULL;
        ar__sn_ext_trim(c);
    }
    c->flags &= (uint8_t)~AR__SN_F_WANTW;
    if (ar__sn_epoll_update(c) != 0) {
        ar__sn_kill(c, 1006);
        return;
    }
    if (c->state == AR__SN_CLOSING)
        start_linger(c);
}

/* Writes header+payload, queueing what the socket does not take. */
static int send_raw2(ar_sn_conn_t *c, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    int err;
    int tls = ar__sn_tls(c) != NULL;
    if (ar__sn_out(c)) {
        err = queue(c, a, alen, b, blen);
    } else if (tls ? alen + blen <= sizeof(c->loop->wbuf) : !blen || alen + blen <= SEND_COPY_MAX) {
        /* Header and payload written at once: one part as it is, two copied together. With
         * TLS: one record for both. Plain: a small frame (nearly every signalling frame) sent
         * with send(), which costs the kernel less than a two-part sendmsg (no message header or
         * iovec array to copy in) by more than the copy costs here. */
        const uint8_t *w = a;
        if (blen) {
            memcpy(c->loop->wbuf, a, alen);
            memcpy(c->loop->wbuf + alen, b, blen);
            w = c->loop->wbuf;
        }
        int n = raw_write(c, w, alen + blen);
        if (n < 0 && n != AR_EAGAIN)
            return n;
        size_t done = n < 0 ? 0 : (size_t)n;
        if (done == alen + blen)
            return 0;
        /* A retried TLS write must offer the same bytes again: queue from where it stopped. */
        err = queue(c, w + done, alen + blen - done, NULL, 0);
    } else if (!tls) {
        struct iovec iov[2] = {{(void *)a, alen}, {(void *)b, blen}};
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
        ssize_t n = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return AR_EIO;
        size_t w = n < 0 ? 0 : (size_t)n;
        if (w == alen + blen)
            return 0;
        err = w < alen ? queue(c, a + w, alen - w, b, blen)
                       : queue(c, b + (w - alen), blen - (w - alen), NULL, 0);
    } else {
        err = queue(c, a, alen, b, blen);
        if (!err)
            flush(c);
    }
    return err;
}

/* What a frame's write failing means for the connection; err again. */
static int send_done(ar_sn_conn_t *c, int err)
{
    if (err == AR_EQUOTA || err == AR_ENOMEM || err == AR_EIO || err == AR_ETLS || err == AR_ESYS) {
        /* A slow reader (or a dead socket): drop it rather than grow without bound. */
        ar__sn_kill(c, err == AR_EQUOTA ? AR_WS_CLOSE_POLICY : 1006);
    }
    return err;
}

static int send_frame(ar_sn_conn_t *c, uint8_t opcode, const void *data, size_t len)
{
    uint8_t hdr[AR_WS_MAX_HEADER];
    size_t hlen = ar_ws_frame_header(hdr, opcode, 1, len, NULL);
    return send_done(c, send_raw2(c, hdr, hlen, data, len));
}

/* What an application may send: 0 or why not. */
static int send_check(const ar_sn_conn_t *c, uint8_t opcode, size_t len)
{
    if (c->state != AR__SN_OPEN)
        return AR_ESTATE;
    if (opcode != AR_WS_OP_TEXT && opcode != AR_WS_OP_BINARY && opcode != AR_WS_OP_PING &&
        opcode != AR_WS_OP_PONG)
        return AR_EINVAL;
    if ((opcode & 8) && len > AR_WS_MAX_CONTROL)
        return AR_ETOOBIG;
    return 0;
}

int ar_sn_send(ar_sn_conn_t *c, uint8_t opcode, const void *data, size_t len)
{
    int err = send_check(c, opcode, len);
    return err ? err : send_frame(c, opcode, data, len);
}

int ar_sn_send_room(ar_sn_conn_t *c, uint8_t opcode, uint8_t *buf, size_t len)
{
    _Static_assert(AR_SN_SEND_ROOM == AR_WS_MAX_HEADER, "the room holds any frame header");
    int err = send_check(c, opcode, len);
    if (err)
        return err;
    /* Written straight in front of the payload, not copied there. */
    size_t hlen = ar__sn_header_len(len);
    uint8_t *frame = buf + AR_SN_SEND_ROOM - hlen;
    (void)ar_ws_frame_header(frame, opcode, 1, len, NULL);
    return send_done(c, send_raw2(c, frame, hlen + len, NULL, 0));
}

void ar_sn_close(ar_sn_conn_t *c, uint16_t code)
{
    if (c->state == AR__SN_TLS_HS || c->state == AR__SN_HTTP) {
        ar__sn_kill(c, code);
        return;
    }
    if (c->state != AR__SN_OPEN)
        return;
    uint8_t pl[AR_WS_MAX_CONTROL];
    size_t n = ar_ws_close_payload(pl, code, NULL);
    c->close_code = code;
    if (send_frame(c, AR_WS_OP_CLOSE, pl, n) != 0 && c->state == AR__SN_DEAD)
        return;
    set_state(c, AR__SN_CLOSING);
    ar__sn_timer_set(c, 2 * AR__SN_LINGER_S);
    if (!ar__sn_out(c))
        start_linger(c);
}

/* ---- input ---- */

static ar__sn_in_t *in_get(ar_sn_conn_t *c)
{
    ar__sn_ext_t *x = ar__sn_ext(c);
    if (!x)
        return NULL;
    if (!x->in && !(x->in = ar_calloc(1, sizeof(*x->in))))
        ar__sn_ext_trim(c);
    return x->in;
}

/* Frees `in` once nothing is in flight, so an idle connection holds no buffer. */
static void in_release(ar_sn_conn_t *c)
{
    ar__sn_in_t *in = ar__sn_in(c);
    if (in && in->len == 0 && !in->has_parser && !(c->flags & AR__SN_F_CTL)) {
        in_free(in);
        c->ext->in = NULL;
        ar__sn_ext_trim(c);
    }
}

static int in_append(ar_sn_conn_t *c, const uint8_t *p, size_t n, size_t max)
{
    ar__sn_in_t *in = in_get(c);
    if (!in)
        return AR_ENOMEM;
    if (in->len + n > max)
        return AR_ETOOBIG;
    if (in->len + n > in->cap) {
        size_t cap = in->cap ? in->cap : 256;
        while (cap < in->len + n)
            cap *= 2;
        if (cap > max)
            cap = max;
        /* Not realloc: the old block is wiped before it is given back. */
        uint8_t *d = ar_malloc(cap);
        if (!d)
            return AR_ENOMEM;
        if (in->len)
            memcpy(d, in->data, in->len);
        wipe_free(in->data, in->cap);
        in->data = d;
        in->cap = (uint32_t)cap;
    }
    memcpy(in->data + in->len, p, n);
    in->len += (uint32_t)n;
    return 0;
}

static void on_control(ar_sn_conn_t *c, uint8_t opcode, const uint8_t *p, size_t n)
{
    if (opcode == AR_WS_OP_PING || opcode == AR_WS_OP_PONG) {
        ar_sn_loop_t *l = c->loop;
        if (l->h.control_cb && l->h.control_cb(c, opcode, l->h.data) != 0)
            return; /* over the application's rate: unanswered */
        if (opcode == AR_WS_OP_PING && c->state == AR__SN_OPEN)
            (void)send_frame(c, AR_WS_OP_PONG, p, n);
    } else if (opcode == AR_WS_OP_CLOSE) {
        uint16_t code;
        const uint8_t *reason;
        size_t rlen;
        if (ar_ws_close_parse(p, n, &code, &reason, &rlen) != 0) {
            ar_sn_close(c, AR_WS_CLOSE_PROTOCOL);
            return;
        }
        /* Echo the peer's code (7.1.5); an empty close is answered with 1000. */
        ar_sn_close(c, code == AR_WS_CLOSE_NO_STATUS ? AR_WS_CLOSE_NORMAL : code);
        c->close_code = code;
    }
}

/*
 * The parser for a read: the one kept from the last read while a frame or message was split
 * across reads, else a fresh one. A copy on the stack either way, so that nothing a callback
 * below frees (a close lets go of what is in flight) is parsed into.
 */
static void parser_take(ar_sn_conn_t *c, ar_ws_parser_t *p)
{
    ar__sn_in_t *in = ar__sn_in(c);
    if (in && in->has_parser) {
        *p = in->parser;
        in->has_parser = 0;
    } else {
        *p = c->loop->parser0; /* ar_ws_parser_init's, made once: this runs for every read */
    }
}

/* After a read: p kept only when the read ended inside a header, a frame or a fragmented
 * message. -1 when there was no memory to keep it (the connection cannot go on). */
static int parser_keep(ar_sn_conn_t *c, const ar_ws_parser_t *p)
{
    if (c->state != AR__SN_OPEN || ar_ws_parser_at_rest(p))
        return 0;
    ar__sn_in_t *in = in_get(c);
    if (!in)
        return -1;
    in->parser = *p;
    in->has_parser = 1;
    return 0;
}

static void on_frames(ar_sn_conn_t *c, uint8_t *data, size_t n)
{
    ar_sn_loop_t *l = c->loop;
    ar_ws_parser_t parser;
    parser_take(c, &parser);
    size_t off = 0;
    uint64_t frame_len = UINT64_MAX; /* of a frame whose header was in this buffer */
    const uint8_t *direct = NULL;
    size_t direct_len = 0;
    while (c->state == AR__SN_OPEN) {
        size_t used = 0;
        ar_ws_event_t ev;
        int err = ar_ws_parse_message(&parser, data + off, n - off, &used, &ev);
        if (err) {
            uint16_t code = parser.close_code;
            if (err == AR_ETOOBIG && c->loop->conf.too_big_code)
                code = c->loop->conf.too_big_code; /* the application's own code for it */
            ar_sn_close(c, code);
            break;
        }
        off += used;
        if (ev.type == AR_WS_EV_NEED_MORE)
            break;
        if (ev.type == AR_WS_EV_MESSAGE) {
            /* The common case: a whole one-frame message in this buffer, used where it lies. A
             * parser at rest has no message under way to have put bytes in `in`. */
            l->msg_rest = n - off + l->msg_after;
            if (l->h.message_cb)
                l->h.message_cb(c, ev.opcode, ev.data, ev.len, l->h.data);
        } else if (ev.type == AR_WS_EV_FRAME_START) {
            frame_len = ev.frame_len;
            if (ev.opcode & 8) {
                c->flags |= AR__SN_F_CTL;
                if (!in_get(c)) {
                    ar__sn_kill(c, AR_WS_CLOSE_INTERNAL);
                    return;
                }
                ar__sn_in(c)->ctl_len = 0;
            } else if (ev.opcode == AR_WS_OP_TEXT) {
                c->flags &= (uint8_t)~AR__SN_F_BINARY;
            } else if (ev.opcode == AR_WS_OP_BINARY) {
                c->flags |= AR__SN_F_BINARY;
            }
        } else if (ev.type == AR_WS_EV_DATA && (c->flags & AR__SN_F_CTL)) {
            memcpy(ar__sn_in(c)->ctl + ar__sn_in(c)->ctl_len, ev.data, ev.len);
            ar__sn_in(c)->ctl_len = (uint8_t)(ar__sn_in(c)->ctl_len + ev.len);
        } else if (ev.type == AR_WS_EV_DATA) {
            /* The common case: a whole one-frame message in this buffer. No copy. */
            if (ev.fin && ev.len == frame_len && (!ar__sn_in(c) || ar__sn_in(c)->len == 0)) {
                direct = ev.data;
                direct_len = ev.len;
            } else if ((err = in_append(c, ev.data, ev.len, l->conf.max_message)) != 0) {
                ar_sn_close(c, err != AR_ETOOBIG            ? AR_WS_CLOSE_INTERNAL
                               : c->loop->conf.too_big_code ? c->loop->conf.too_big_code
                                                            : AR_WS_CLOSE_TOO_BIG);
                break;
            }
        } else if (ev.type == AR_WS_EV_FRAME_END && (c->flags & AR__SN_F_CTL)) {
            c->flags &= (uint8_t)~AR__SN_F_CTL;
            on_control(c, ev.opcode, ar__sn_in(c)->ctl, ar__sn_in(c)->ctl_len);
            ar__sn_in(c)->ctl_len = 0;
        } else if (ev.type == AR_WS_EV_FRAME_END && ev.msg_end) {
            uint8_t op = (c->flags & AR__SN_F_BINARY) ? AR_WS_OP_BINARY : AR_WS_OP_TEXT;
            const uint8_t *msg = direct ? direct : (ar__sn_in(c) ? ar__sn_in(c)->data : NULL);
            size_t len = direct ? direct_len : (ar__sn_in(c) ? ar__sn_in(c)->len : 0);
            static const uint8_t empty[1] = {0};
            l->msg_rest = n - off + l->msg_after;
            if (l->h.message_cb)
                l->h.message_cb(c, op, msg ? msg : empty, len, l->h.data);
            if (ar__sn_in(c))
                ar__sn_in(c)->len = 0;
            direct = NULL;
        }
        /* A frame ended with the buffer: the parser waits for a header, so asking it again
         * would only hear NEED_MORE. After a whole message it is at rest (proto_test_ws,
         * test_parse_message_same): nothing to keep, no need to ask parser_keep. */
        if (off == n && ev.type == AR_WS_EV_MESSAGE) {
            in_release(c);
            return;
        }
        if (off == n && ev.type == AR_WS_EV_FRAME_END)
            break;
    }
    if (parser_keep(c, &parser) != 0) {
        ar__sn_kill(c, AR_WS_CLOSE_INTERNAL);
        return;
    }
    in_release(c);
}

static void on_http(ar_sn_conn_t *c, uint8_t *data, size_t n)
{
    ar_sn_loop_t *l = c->loop;
    ar__sn_in_t *in = in_get(c);
    if (!in || (!in->data && !(in->data = ar_malloc(AR_WS_MAX_REQUEST)))) {
        ar__sn_kill(c, AR_WS_CLOSE_INTERNAL);
        return;
    }
    in->cap = AR_WS_MAX_REQUEST;
    size_t take = n < in->cap - in->len ? n : in->cap - in->len;
    memcpy(in->data + in->len, data, take);
    in->len += (uint32_t)take;
    ar_ws_upgrade_t up;
    int err = ar_ws_upgrade_check((const char *)in->data, in->len, l->conf.upgrade, &up);
    if (err == AR_EAGAIN)
        return;
    char resp[256];
    int rlen = ar_ws_upgrade_response(&up, l->conf.upgrade, resp, sizeof(resp));
    if (rlen < 0 || send_raw2(c, (const uint8_t *)resp, (size_t)rlen, NULL, 0) != 0) {
        ar__sn_kill(c, 1006);
        return;
    }
    if (err) {
        /* Refused: the response goes out, then the connection closes. No close_cb is owed. */
        set_state(c, AR__SN_CLOSING);
        ar__sn_timer_set(c, 2 * AR__SN_LINGER_S);
        if (!ar__sn_out(c))
            start_linger(c);
        return;
    }
    set_state(c, AR__SN_OPEN);
    ar__sn_timer_set(c, l->conf.idle_timeout_s);
    c->ext->in = NULL; /* in is freed below, after the frames behind the request */
    ar__sn_ext_trim(c);
    c->flags |= AR__SN_F_OPENED;
    if (l->h.open_cb && l->h.open_cb(c, &up, l->h.data) != 0)
        ar_sn_close(c, AR_WS_CLOSE_POLICY);
    /* Frames the client sent right behind its request: first the buffered rest, then the
     * remainder of this read that did not fit the request buffer. */
    l->msg_after = take < n ? n - take : 0;
    if (c->state == AR__SN_OPEN)
        on_frames(c, in->data + up.consumed, in->len - up.consumed);
    l->msg_after = 0;
    in_free(in);
    if (c->state == AR__SN_OPEN && take < n)
        on_frames(c, data + take, n - take);
}

static int raw_read(ar_sn_conn_t *c, uint8_t *buf, size_t cap)
{
    void *tls = ar__sn_tls(c);
    if (tls) {
        int ww = 0;
        int n = c->loop->conf.tls->ops->read(tls, buf, cap, &ww);
        if (n == AR_EAGAIN && ww)
            c->flags |= AR__SN_F_WANTW;
        return n;
    }
    ssize_t n = ar__sn_recv(c->fd, buf, cap);
    if (n >= 0)
        return (int)n;
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? AR_EAGAIN : AR_EIO;
}

static void on_readable(ar_sn_conn_t *c)
{
    ar_sn_loop_t *l = c->loop;
    for (int i = 0; i < READS_PER_EVENT && c->state != AR__SN_DEAD && !ar__sn_out(c); i++) {
        int n = raw_read(c, l->rbuf, sizeof(l->rbuf));
        if (n == AR_EAGAIN) {
            (void)ar__sn_epoll_update(c);
            return;
        }
        if (n <= 0) {
            /* EOF or error: the peer is gone (1006 unless a close handshake happened). */
            ar__sn_kill(c, c->close_code ? c->close_code : 1006);
            return;
        }
        if (c->state == AR__SN_OPEN) {
            ar__sn_timer_set(c, l->conf.idle_timeout_s);
            on_frames(c, l->rbuf, (size_t)n);
        } else if (c->state == AR__SN_HTTP) {
            on_http(c, l->rbuf, (size_t)n);
        }
        /* Plain sockets: a short read means the socket is drained; TLS may hold more inside. */
        if ((size_t)n < sizeof(l->rbuf) &&
            (!ar__sn_tls(c) || !l->conf.tls->ops->pending(ar__sn_tls(c))))
            return;
    }
}

static void on_handshake(ar_sn_conn_t *c)
{
    int ww = 0;
    int r = c->loop->conf.tls->ops->handshake(ar__sn_tls(c), &ww);
    c->flags &= (uint8_t)~AR__SN_F_WANTW;
    if (r == AR_EAGAIN) {
        if (ww)
            c->flags |= AR__SN_F_WANTW;
        (void)ar__sn_epoll_update(c);
        return;
    }
    if (r < 0) {
        ar__sn_kill(c, 1006);
        return;
    }
    set_state(c, AR__SN_HTTP);
    (void)ar__sn_epoll_update(c);
    /* The request often arrives with the client's Finished; read it now. */
    on_readable(c);
}

void ar__sn_conn_event(ar_sn_conn_t *c, uint32_t events)
{
    if (c->state == AR__SN_DEAD)
        return;
    if (c->state == AR__SN_TLS_HS) {
        on_handshake(c);
        return;
    }
    if (events & EPOLLERR) {
        ar__sn_kill(c, 1006);
        return;
    }
    int tls_wanted_write = (c->flags & AR__SN_F_WANTW) != 0;
    if ((events & EPOLLOUT) && ar__sn_out(c))
        flush(c);
    else if (tls_wanted_write && (events & EPOLLOUT))
        c->flags &= (uint8_t)~AR__SN_F_WANTW;
    if (c->state == AR__SN_DEAD || ar__sn_out(c))
        return;
    int writable = 0;
    if ((events & EPOLLOUT) && (c->xflags & AR__SN_X_WRITABLE)) {
        /* Cleared first: the callback may ask again (and send, which may queue or close). A
         * connection that is closing gets no callback, and stops asking for EPOLLOUT. */
        c->xflags &= (uint8_t)~AR__SN_X_WRITABLE;
        (void)ar__sn_epoll_update(c);
        writable = c->state == AR__SN_OPEN;
        if (writable)
            c->loop->h.writable_cb(c, c->loop->h.data);
        if (c->state == AR__SN_DEAD || ar__sn_out(c))
            return;
    }
    /* After the writable callback, input too: while output was queued, reading was off (no
     * EPOLLIN reported), and a sender that keeps the output busy (a long queue snapshot) would
     * otherwise keep the peer's messages (an unsubscribe, a take) waiting until it is done. */
    if ((events & (EPOLLIN | EPOLLHUP)) || tls_wanted_write || writable)
        on_readable(c);
}

void ar__sn_conn_timeout(ar_sn_conn_t *c)
{
    switch (c->state) {
    case AR__SN_OPEN:
        ar_sn_close(c, AR_WS_CLOSE_GOING_AWAY);
        break;
    case AR__SN_TLS_HS:
    case AR__SN_HTTP:
        ar__sn_kill(c, 1006);
        break;
    default:
        ar__sn_kill(c, c->close_code ? c->close_code : 1006);
        break;
    }
}

size_t ar_sn_conn_outgoing(const ar_sn_conn_t *c)
{
    const ar__sn_out_t *o = ar__sn_out(c);
    return o ? o->len - o->off : 0;
}

int ar_sn_conn_notify_writable(ar_sn_conn_t *c)
{
    if (c->state != AR__SN_OPEN)
        return AR_ESTATE;
    if (!c->loop->h.writable_cb)
        return AR_EINVAL;
    c->xflags |= AR__SN_X_WRITABLE;
    return ar__sn_epoll_update(c);
}

void *ar_sn_conn_area(ar_sn_conn_t *c)
{
    return c + 1;
}

size_t ar_sn_conn_area_size(const ar_sn_conn_t *c)
{
    return c->loop->conf.conn_area;
}

void ar_sn_conn_set_data(ar_sn_conn_t *c, void *data)
{
    memcpy(c + 1, &data, sizeof(data));
}

int ar_sn_conn_input_waiting(const ar_sn_conn_t *c)
{
    int n = 0;
    return c->fd >= 0 && ioctl(c->fd, FIONREAD, &n) == 0 && n > 0;
}

void *ar_sn_conn_data(const ar_sn_conn_t *c)
{
    void *data;
    memcpy(&data, c + 1, sizeof(data));
    return data;
}

uint16_t ar_sn_conn_tag(const ar_sn_conn_t *c)
{
    return c->tag;
}

void ar_sn_conn_set_tag(ar_sn_conn_t *c, uint16_t tag)
{
    if (!c->tag)
        c->tag = tag;
}

int ar_sn_conn_peer(const ar_sn_conn_t *c, struct sockaddr_storage *ss)
{
    socklen_t len = sizeof(*ss);
    if (c->fd < 0 || getpeername(c->fd, (struct sockaddr *)ss, &len) != 0)
        return AR_ESYS;
    return 0;
}

int ar_sn_conn_movable(const ar_sn_conn_t *c)
{
    /* Nothing of the stream may stay behind: TLS state (its keys and sequence numbers), output
     * not yet written, bytes read after the message being delivered. */
    if (c->state != AR__SN_OPEN || ar__sn_tls(c) || ar__sn_out(c) || c->loop->msg_rest)
        return -1;
    return c->fd;
}

void ar_sn_conn_moved(ar_sn_conn_t *c, uint16_t code)
{
    /* ar__sn_kill closes only our descriptor (no close frame, no shutdown): the socket lives on
     * in the process it was sent to. */
    ar__sn_kill(c, code);
}
