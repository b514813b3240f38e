/*
 * The connection: a libuv TCP stream, an optional TLS session over memory BIOs, a capped count
 * of outgoing bytes, and a state machine whose every transition goes through set_state().
 *
 * Memory: reads land in one per-thread buffer (libuv hands it back before the next read), so an
 * idle connection holds no read buffer; outgoing bytes are allocated only while the kernel
 * cannot take them, up to the cap.
 */
#include "anteroom/conn.h"

#include "anteroom/alloc.h"
#include "anteroom/buf.h"
#include "anteroom/log.h"
#include "anteroom/worker.h"
#include "tls_internal.h"

#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CONN_READ_BUF (64 * 1024)
#define CONN_PLAIN_BUF (16 * 1024) /* one TLS record's plaintext */
#define CONN_DEFAULT_CAP ((size_t)256 << 10)
#define CONN_DEFAULT_HANDSHAKE_MS 10000
#define CONN_DEFAULT_LINGER_MS 2000

struct ar_conn_s {
    uv_tcp_t tcp;
    uv_timer_t timer; /* handshake timeout, then the close linger */
    uv_connect_t connect_req;
    uv_shutdown_t shutdown_req;
    const ar_conn_cbs_t *cbs;
    void *data;
    ar__tls_t *tls;
    ar_conn_state_t state;
    ar_buf_t pending; /* plaintext written before the connection opened */
    size_t queued;    /* bytes in write requests the kernel has not taken */
    size_t out_cap;
    uint64_t handshake_ms;
    uint64_t linger_ms;
    int err;        /* what on_close reports */
    int handles;    /* libuv handles still open; freed at zero */
    int announced;  /* the owner knows this connection, so on_close is owed */
    int want_drain; /* a write was refused: call on_drain when the buffer halves */
    int paused;
    int in_progress; /* inside tls_progress: resume must not recurse into it */
};

struct ar_listener_s {
    uv_tcp_t tcp;
    ar_tls_server_t *tls;
    const ar_conn_cbs_t *cbs;
    ar_conn_opts_t opts;
    void *data;
};

typedef struct {
    uv_write_t req;
    ar_conn_t *c;
    size_t len; /* bytes counted in c->queued */
    uint8_t data[];
} wreq_t;

static const char *const state_names[] = {"connecting", "handshaking", "open", "closing", "closed"};

const char *ar_conn_state_name(ar_conn_state_t s)
{
    return (unsigned)s < sizeof(state_names) / sizeof(state_names[0]) ? state_names[s] : "?";
}

/* The one place a connection changes state, so every transition can be traced. */
static void set_state(ar_conn_t *c, ar_conn_state_t s)
{
    ar_log_field_t f[] = {
        {.key = "from", .type = AR_LF_T_KW, .v.s = ar_conn_state_name(c->state)},
        {.key = "to", .type = AR_LF_T_KW, .v.s = ar_conn_state_name(s)},
        {.key = "transport", .type = AR_LF_T_KW, .v.s = c->tls ? "tls" : "tcp"},
    };
    ar_log_fields(AR_LOG_DEBUG, "conn_state", f, 3);
    c->state = s;
}

static void fail(ar_conn_t *c, int err);
static void begin_close(ar_conn_t *c, int err);

static void on_handle_closed(uv_handle_t *h)
{
    ar_conn_t *c = h->data;
    if (--c->handles > 0)
        return;
    if (c->announced && c->cbs->on_close != NULL)
        c->cbs->on_close(c, c->err);
    ar__tls_free(c->tls);
    ar_buf_release(&c->pending);
    ar_free(c);
}

static void finish_close(ar_conn_t *c)
{
    if (c->state == AR_CONN_CLOSED)
        return;
    set_state(c, AR_CONN_CLOSED);
    /* Pending writes and the connect or shutdown request get UV_ECANCELED before these run. */
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

static void fail(ar_conn_t *c, int err)
{
    if (c->err == 0)
        c->err = err;
    finish_close(c);
}

static void on_written(uv_write_t *req, int status)
{
    wreq_t *w = (wreq_t *)req;
    ar_conn_t *c = w->c;
    c->queued -= w->len;
    ar_free(w);
    if (status < 0) {
        if (status != UV_ECANCELED)
            fail(c, AR_EIO);
        return;
    }
    if (c->want_drain && c->state == AR_CONN_OPEN && c->queued <= c->out_cap / 2) {
        c->want_drain = 0;
        if (c->cbs->on_drain != NULL)
            c->cbs->on_drain(c);
    }
}

/* Offers bytes to the kernel without queueing; *sent says how many it took. */
static int try_send(ar_conn_t *c, const uint8_t *data, size_t len, size_t *sent)
{
    *sent = 0;
    if (c->queued > 0)
        return 0; /* behind queued writes: order first */
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n >= 0)
        *sent = (size_t)n;
    else if (n != UV_EAGAIN)
        return AR_EIO;
    return 0;
}

/* Queues len bytes at base (inside w->data) behind earlier writes; takes ownership of w. */
static int queue_write(ar_conn_t *c, wreq_t *w, const uint8_t *base, size_t len)
{
    w->c = c;
    w->len = len;
    uv_buf_t b = uv_buf_init((char *)base, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
        ar_free(w);
        return AR_EIO;
    }
    c->queued += len;
    return 0;
}

/* Plain bytes to the socket: most writes fit at once, so a copy is made only for the rest. */
static int send_plain(ar_conn_t *c, const uint8_t *data, size_t len)
{
    size_t sent;
    int rc = try_send(c, data, len, &sent);
    if (rc < 0 || sent == len)
        return rc;
    wreq_t *w = ar_malloc(sizeof(*w) + (len - sent));
    if (w == NULL)
        return AR_ENOMEM;
    memcpy(w->data, data + sent, len - sent);
    return queue_write(c, w, w->data, len - sent);
}

/* Moves whatever ciphertext OpenSSL produced to the socket. */
static int flush_tls(ar_conn_t *c)
{
    size_t n = ar__tls_pending_out(c->tls);
    if (n == 0)
        return 0;
    wreq_t *w = ar_malloc(sizeof(*w) + n);
    if (w == NULL)
        return AR_ENOMEM;
    n = ar__tls_take_out(c->tls, w->data, n);
    size_t sent;
    int rc = try_send(c, w->data, n, &sent);
    if (rc < 0 || sent == n) {
        ar_free(w);
        return rc;
    }
    return queue_write(c, w, w->data + sent, n - sent);
}

/* Plaintext for an open connection, through TLS when there is TLS. */
static int send_app(ar_conn_t *c, const uint8_t *data, size_t len)
{
    if (c->tls == NULL)
        return send_plain(c, data, len);
    int rc = ar__tls_write(c->tls, data, len);
    if (rc < 0)
        return rc;
    return flush_tls(c);
}

static void become_open(ar_conn_t *c)
{
    uv_timer_stop(&c->timer);
    set_state(c, AR_CONN_OPEN);
    c->announced = 1;
    if (c->paused)
        uv_read_stop((uv_stream_t *)&c->tcp); /* a pause asked for during the handshake */
    /* Bytes written before the handshake finished go first, as they were written first. */
    if (c->pending.len > 0) {
        int rc = send_app(c, c->pending.data, c->pending.len);
        ar_buf_release(&c->pending);
        if (rc < 0) {
            fail(c, rc);
            return;
        }
    }
    ar_buf_release(&c->pending);
    if (c->cbs->on_open != NULL)
        c->cbs->on_open(c);
    /* A write refused before open is owed an on_drain even if the flush needed no request. */
    if (c->state == AR_CONN_OPEN && c->want_drain && c->queued <= c->out_cap / 2) {
        c->want_drain = 0;
        if (c->cbs->on_drain != NULL)
            c->cbs->on_drain(c);
    }
}

/* Handshake, then decrypt and deliver what the peer sent, stopping when the owner says so. */
static void tls_progress(ar_conn_t *c)
{
    static _Thread_local uint8_t plain[CONN_PLAIN_BUF];
    c->in_progress = 1;
    if (c->state == AR_CONN_HANDSHAKING) {
        int rc = ar__tls_handshake(c->tls);
        int frc = flush_tls(c); /* the next flight, or an alert telling the peer why */
        if (rc == AR_EAGAIN && frc == 0)
            goto out;
        if (rc < 0 || frc < 0) {
            fail(c, rc < 0 && rc != AR_EAGAIN ? AR_ETLS : frc);
            goto out;
        }
        become_open(c);
    }
    while (c->state == AR_CONN_OPEN && !c->paused) {
        int n = ar__tls_read(c->tls, plain, sizeof(plain));
        if (n == AR_EAGAIN)
            break;
        if (n == AR_ECLOSED) {
            begin_close(c, AR_ECLOSED);
            break;
        }
        if (n < 0) {
            fail(c, AR_ETLS);
            break;
        }
        c->cbs->on_read(c, plain, (size_t)n);
    }
    if (c->state == AR_CONN_OPEN && flush_tls(c) < 0)
        fail(c, AR_EIO);
out:
    c->in_progress = 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    /* One buffer per thread: libuv calls on_read with it before it asks again. */
    static _Thread_local char mem[CONN_READ_BUF];
    *buf = uv_buf_init(mem, sizeof(mem));
}

static void on_tcp_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    ar_conn_t *c = s->data;
    if (n == 0 || c->state >= AR_CONN_CLOSING)
        return;
    if (n < 0) {
        if (n != UV_EOF)
            fail(c, AR_EIO);
        else if (c->state == AR_CONN_OPEN)
            begin_close(c, AR_ECLOSED);
        else
            fail(c, c->tls ? AR_ETLS : AR_ECLOSED); /* the peer gave up on the handshake */
        return;
    }
    if (c->tls == NULL) {
        c->cbs->on_read(c, (const uint8_t *)buf->base, (size_t)n);
        return;
    }
    int rc = ar__tls_feed(c->tls, (const uint8_t *)buf->base, (size_t)n);
    if (rc < 0) {
        fail(c, rc);
        return;
    }
    tls_progress(c);
}

static void on_timer(uv_timer_t *t)
{
    ar_conn_t *c = t->data;
    if (c->state == AR_CONN_CLOSING)
        finish_close(c); /* the peer would not take the last bytes in time */
    else if (c->state < AR_CONN_OPEN)
        fail(c, AR_ETIMEDOUT);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    ar_conn_t *c = req->data;
    if (c->state != AR_CONN_CLOSED)
        finish_close(c);
}

/* Graceful: flush (with close_notify for TLS), half-close, then close; bounded by the linger. */
static void begin_close(ar_conn_t *c, int err)
{
    if (c->state >= AR_CONN_CLOSING)
        return;
    if (c->err == 0)
        c->err = err;
    ar_conn_state_t was = c->state;
    set_state(c, AR_CONN_CLOSING);
    uv_read_stop((uv_stream_t *)&c->tcp);
    if (was != AR_CONN_OPEN) {
        finish_close(c);
        return;
    }
    if (c->tls != NULL) {
        ar__tls_shutdown(c->tls);
        (void)flush_tls(c); /* best effort: the socket closes either way */
        if (c->state == AR_CONN_CLOSED)
            return;
    }
    c->shutdown_req.data = c;
    uv_timer_start(&c->timer, on_timer, c->linger_ms, 0);
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) != 0)
        finish_close(c);
}

static ar_conn_t *conn_new(uv_loop_t *loop, const ar_conn_cbs_t *cbs, const ar_conn_opts_t *o,
                           void *data)
{
    ar_conn_t *c = ar_calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->cbs = cbs;
    c->data = data;
    c->out_cap = o && o->out_cap ? o->out_cap : CONN_DEFAULT_CAP;
    c->handshake_ms =
        o && o->handshake_timeout_ms ? o->handshake_timeout_ms : CONN_DEFAULT_HANDSHAKE_MS;
    c->linger_ms = o && o->close_linger_ms ? o->close_linger_ms : CONN_DEFAULT_LINGER_MS;
    ar_buf_init(&c->pending, c->out_cap);
    c->state = AR_CONN_CONNECTING;
    uv_tcp_init(loop, &c->tcp);
    uv_timer_init(loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->connect_req.data = c;
    c->handles = 2;
    return c;
}

/* Starts reading and the TLS handshake, or opens at once for plain TCP. */
static void start_session(ar_conn_t *c)
{
    uv_tcp_nodelay(&c->tcp, 1);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_tcp_read) != 0) {
        fail(c, AR_EIO);
        return;
    }
    if (c->tls == NULL) {
        become_open(c);
        return;
    }
    set_state(c, AR_CONN_HANDSHAKING);
    tls_progress(c); /* a client's ClientHello; a server just waits */
}

static void on_connection(uv_stream_t *server, int status)
{
    ar_listener_t *l = server->data;
    if (status < 0)
        return;
    ar_conn_t *c = conn_new(server->loop, l->cbs, &l->opts, l->data);
    if (c == NULL) {
        /* Take the connection off the backlog anyway, or libuv would stop accepting. */
        uv_os_fd_t lfd;
        if (uv_fileno((uv_handle_t *)server, &lfd) == 0) {
            int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
            if (fd >= 0)
                close(fd);
        }
        return;
    }
    /* Not announced: the owner hears of it at on_open, so a failed handshake is silent. */
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        finish_close(c);
        return;
    }
    if (l->tls != NULL && ar__tls_new_server(l->tls, &c->tls) < 0) {
        finish_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_timer, c->handshake_ms, 0);
    start_session(c);
}

int ar_listener_start(uv_loop_t *loop, int fd, ar_tls_server_t *tls, const ar_conn_cbs_t *cbs,
                      const ar_conn_opts_t *opts, void *data, ar_listener_t **out)
{
    *out = NULL;
    ar_ignore_sigpipe();
    ar_listener_t *l = ar_calloc(1, sizeof(*l));
    if (l == NULL) {
        close(fd);
        return AR_ENOMEM;
    }
    l->tls = tls;
    l->cbs = cbs;
    if (opts != NULL)
        l->opts = *opts;
    l->data = data;
    uv_tcp_init(loop, &l->tcp);
    l->tcp.data = l;
    int rc = uv_tcp_open(&l->tcp, fd);
    if (rc != 0)
        close(fd);
    else
        rc = uv_listen((uv_stream_t *)&l->tcp, 511, on_connection);
    if (rc != 0) {
        ar_listener_close(l);
        return AR_ESYS;
    }
    *out = l;
    return 0;
}

static void on_listener_closed(uv_handle_t *h)
{
    ar_free(h->data);
}

void ar_listener_close(ar_listener_t *l)
{
    if (l != NULL && !uv_is_closing((uv_handle_t *)&l->tcp))
        uv_close((uv_handle_t *)&l->tcp, on_listener_closed);
}

static void on_connected(uv_connect_t *req, int status)
{
    ar_conn_t *c = req->data;
    if (status == UV_ECANCELED || c->state != AR_CONN_CONNECTING)
        return;
    if (status < 0) {
        fail(c, AR_EIO);
        return;
    }
    start_session(c);
}

int ar_conn_connect(uv_loop_t *loop, const struct sockaddr *addr, ar_tls_client_t *tls,
                    const char *host, const ar_conn_cbs_t *cbs, const ar_conn_opts_t *opts,
                    void *data, ar_conn_t **out)
{
    *out = NULL;
    if (addr == NULL || cbs == NULL || cbs->on_read == NULL || (tls != NULL && host == NULL))
        return AR_EINVAL;
    ar_ignore_sigpipe();
    ar_conn_t *c = conn_new(loop, cbs, opts, data);
    if (c == NULL)
        return AR_ENOMEM;
    int rc = 0;
    if (tls != NULL)
        rc = ar__tls_new_client(tls, host, &c->tls);
    if (rc == 0 && opts != NULL && opts->bind_addr != NULL) {
        int b = uv_tcp_bind(&c->tcp, opts->bind_addr, 0);
        rc = b == 0 ? 0 : b == UV_EADDRINUSE ? AR_EADDRINUSE : AR_ESYS;
    }
    if (rc == 0) {
        int r = uv_tcp_connect(&c->connect_req, &c->tcp, addr, on_connected);
        /* libuv reports a bind conflict only here, when the socket is really bound. */
        rc = r == 0 ? 0 : r == UV_EADDRINUSE ? AR_EADDRINUSE : AR_ESYS;
    }
    if (rc < 0) {
        finish_close(c); /* not announced: freed by the loop without callbacks */
        return rc;
    }
    c->announced = 1;
    uv_timer_start(&c->timer, on_timer, c->handshake_ms, 0);
    *out = c;
    return 0;
}

int ar_conn_write(ar_conn_t *c, const void *data, size_t len)
{
    if (c->state >= AR_CONN_CLOSING)
        return AR_ESTATE;
    if (len > c->out_cap)
        return AR_ETOOBIG;
    if (c->state != AR_CONN_OPEN) {
        int rc = ar_buf_append(&c->pending, data, len);
        if (rc == AR_ETOOBIG) {
            c->want_drain = 1;
            return AR_EAGAIN;
        }
        return rc;
    }
    /* The cap counts what the kernel has not taken yet; a refused write is not queued. */
    if (c->queued + len > c->out_cap) {
        c->want_drain = 1;
        return AR_EAGAIN;
    }
    int rc = send_app(c, data, len);
    if (rc < 0)
        fail(c, rc);
    return rc;
}

size_t ar_conn_outgoing(const ar_conn_t *c)
{
    return c->queued + c->pending.len;
}

int ar_conn_want_drain(ar_conn_t *c)
{
    if (c->state >= AR_CONN_CLOSING)
        return AR_ESTATE;
    if (c->state == AR_CONN_OPEN && c->queued <= c->out_cap / 2)
        return 0;
    /* on_written (open) or the flush at open (before) calls on_drain once it is down to half. */
    c->want_drain = 1;
    return 1;
}

void ar_conn_pause_read(ar_conn_t *c)
{
    if (c->paused || c->state >= AR_CONN_CLOSING)
        return;
    c->paused = 1;
    /* Before open the handshake still needs its reads; become_open applies the pause. */
    if (c->state == AR_CONN_OPEN)
        uv_read_stop((uv_stream_t *)&c->tcp);
}

void ar_conn_resume_read(ar_conn_t *c)
{
    if (!c->paused || c->state >= AR_CONN_CLOSING)
        return;
    c->paused = 0;
    if (c->state != AR_CONN_OPEN)
        return; /* reading was never stopped */
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_tcp_read) != 0) {
        fail(c, AR_EIO);
        return;
    }
    /* Records already decrypted or buffered would otherwise wait for the next packet. */
    if (c->tls != NULL && !c->in_progress)
        tls_progress(c);
}

void ar_conn_close(ar_conn_t *c)
{
    begin_close(c, 0);
}

void ar_conn_abort(ar_conn_t *c, int err)
{
    if (c->err == 0)
        c->err = err;
    /* A pending shutdown request is cancelled by the close; on_shutdown then finds CLOSED. */
    finish_close(c);
}

ar_conn_state_t ar_conn_state(const ar_conn_t *c)
{
    return c->state;
}

int ar_conn_is_tls(const ar_conn_t *c)
{
    return c->tls != NULL;
}

void ar_conn_set_data(ar_conn_t *c, void *data)
{
    c->data = data;
}

void *ar_conn_get_data(const ar_conn_t *c)
{
    return c->data;
}

int ar_conn_peer(const ar_conn_t *c, struct sockaddr_storage *out)
{
    int len = sizeof(*out);
    return uv_tcp_getpeername(&c->tcp, (struct sockaddr *)out, &len) == 0 ? 0 : AR_ESYS;
}
