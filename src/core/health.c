/*
 * The operator HTTP endpoint. Each connection has a parser, an idle timer and a count of bytes
 * in the current request; responses are built whole (they are small, or a metrics page under a
 * cap) and queued with uv_write, which keeps pipelined responses in order.
 */
#include "anteroom/health.h"

#include "anteroom/alloc.h"
#include "anteroom/log.h"
#include "anteroom/worker.h"

#include <arpa/inet.h>
#include <http_parser.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define HEALTH_METRICS_CAP ((size_t)8 << 20) /* one scrape's text */
#define HEALTH_WRITE_QUEUE_CAP ((size_t)16 << 20)
#define HEALTH_URL_MAX 256

typedef struct hconn_s hconn_t;

struct ar_health_s {
    uv_loop_t *loop;
    uv_tcp_t listener;
    ar_health_opts_t opts;
    uint16_t port;
    unsigned nconns;
    hconn_t *conns; /* doubly linked so stop can close them all */
    int stopping;
    unsigned open_handles; /* the listener plus two per connection; free h at zero */
};

struct hconn_s {
    ar_health_t *h;
    hconn_t *prev, *next;
    uv_tcp_t tcp;
    uv_timer_t timer;
    http_parser parser;
    size_t request_bytes;
    char url[HEALTH_URL_MAX];
    size_t url_len;
    int url_too_long;
    int has_origin;   /* the request carries an Origin header (a browser sent it) */
    int allow_post;   /* the route of the current request is the POST-only action */
    size_t field_len; /* bytes of the current header name seen, capped */
    char field[8];    /* its first bytes, enough to recognise "origin" */
    int closing;
    int last_request; /* a response said "Connection: close": read nothing more */
    int pending_handles;
};

typedef struct {
    uv_write_t req;
    hconn_t *c;
    int close_after;
    size_t len;
    char data[];
} hwrite_t;

static void maybe_free_server(ar_health_t *h)
{
    if (h->stopping && h->open_handles == 0)
        ar_free(h);
}

static void on_conn_handle_closed(uv_handle_t *handle)
{
    hconn_t *c = handle->data;
    ar_health_t *h = c->h;
    h->open_handles--;
    if (--c->pending_handles == 0) {
        ar_free(c);
        maybe_free_server(h);
    }
}

/* Closing is asynchronous: the connection is freed by the last close callback, never here. */
static void conn_close(hconn_t *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    ar_health_t *h = c->h;
    if (c->prev)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    h->nconns--;
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
}

static void on_written(uv_write_t *req, int status)
{
    hwrite_t *w = (hwrite_t *)req;
    if ((status < 0 || w->close_after) && !w->c->closing)
        conn_close(w->c);
    ar_free(w);
}

static void respond(hconn_t *c, int code, const char *ctype, const char *body, size_t body_len,
                    int head_only, int close_after)
{
    const char *reason = code == 200   ? "OK"
                         : code == 202 ? "Accepted"
                         : code == 400 ? "Bad Request"
                         : code == 403 ? "Forbidden"
                         : code == 404 ? "Not Found"
                         : code == 405 ? "Method Not Allowed"
                         : code == 413 ? "Request Header Fields Too Large"
                         : code == 414 ? "URI Too Long"
                                       : "Service Unavailable";
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\n%sConnection: %s\r\n\r\n",
                     code, reason, ctype, body_len,
                     code != 405     ? ""
                     : c->allow_post ? "Allow: POST\r\n"
                                     : "Allow: GET, HEAD\r\n",
                     close_after ? "close" : "keep-alive");
    size_t blen = head_only ? 0 : body_len;
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > HEALTH_WRITE_QUEUE_CAP) {
        conn_close(c); /* a client that pipelines without reading gets dropped */
        return;
    }
    hwrite_t *w = ar_malloc(sizeof(*w) + (size_t)n + blen);
    if (w == NULL) {
        conn_close(c);
        return;
    }
    w->c = c;
    w->close_after = close_after;
    w->len = (size_t)n + blen;
    memcpy(w->data, head, (size_t)n);
    if (blen > 0)
        memcpy(w->data + n, body, blen);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)w->len);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
        ar_free(w);
        conn_close(c);
    }
}

static void respond_text(hconn_t *c, int code, const char *text, int head_only, int close_after)
{
    respond(c, code, "text/plain; charset=utf-8", text, strlen(text), head_only, close_after);
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    hconn_t *c = p->data;
    if (len > sizeof(c->url) - 1 - c->url_len) {
        c->url_too_long = 1;
        return 0;
    }
    memcpy(c->url + c->url_len, at, len);
    c->url_len += len;
    c->url[c->url_len] = '\0';
    return 0;
}

/* Operator actions are taken from this host only: 127.0.0.0/8, ::1 or ::ffff:127.0.0.0/104. */
static int peer_is_loopback(hconn_t *c)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0)
        return 0;
    if (ss.ss_family == AF_INET)
        return (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >> 24) == 127;
    if (ss.ss_family != AF_INET6)
        return 0;
    const struct in6_addr *a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
}

static void action(hconn_t *c, int close_after)
{
    ar_health_t *h = c->h;
    if ((int)c->parser.method != HTTP_POST) {
        c->allow_post = 1;
        respond_text(c, 405, "method not allowed\n", 0, close_after);
        c->allow_post = 0;
    } else if (!peer_is_loopback(c) || c->has_origin) {
        respond_text(c, 403, "forbidden\n", 0, close_after);
    } else if (h->opts.action(h->opts.action_data) < 0) {
        respond_text(c, 503, "unavailable\n", 0, close_after);
    } else {
        respond_text(c, 202, "accepted\n", 0, close_after);
    }
}

static void route(hconn_t *c, int close_after)
{
    ar_health_t *h = c->h;
    int method = (int)c->parser.method;
    int head_only = method == HTTP_HEAD;
    size_t plen = strcspn(c->url, "?"); /* a query string does not change the resource */
    c->url[plen] = '\0';
    enum { NONE, METRICS, HEALTHZ, READYZ, EXTRA } what = NONE;
    if (strcmp(c->url, "/metrics") == 0)
        what = METRICS;
    else if (strcmp(c->url, "/healthz") == 0)
        what = HEALTHZ;
    else if (strcmp(c->url, "/readyz") == 0)
        what = READYZ;
    else if (h->opts.extra_path && h->opts.extra && strcmp(c->url, h->opts.extra_path) == 0)
        what = EXTRA;
    if (c->url_too_long) {
        respond_text(c, 414, "uri too long\n", head_only, 1);
        return;
    }
    if (what == NONE && h->opts.action_path && h->opts.action &&
        strcmp(c->url, h->opts.action_path) == 0) {
        action(c, close_after);
        return;
    }
    if (what == NONE) {
        respond_text(c, 404, "not found\n", head_only, close_after);
        return;
    }
    if (method != HTTP_GET && method != HTTP_HEAD) {
        respond_text(c, 405, "method not allowed\n", 0, close_after);
        return;
    }
    if (what == HEALTHZ) {
        respond_text(c, 200, "ok\n", head_only, close_after);
    } else if (what == READYZ) {
        int ready = h->opts.ready == NULL || h->opts.ready(h->opts.ready_data);
        respond_text(c, ready ? 200 : 503, ready ? "ready\n" : "not ready\n", head_only,
                     close_after);
    } else if (what == EXTRA) {
        char body[4096];
        int n = h->opts.extra(h->opts.extra_data, body, sizeof(body));
        if (n < 0 || (size_t)n > sizeof(body))
            respond_text(c, 503, "unavailable\n", head_only, close_after);
        else
            respond(c, 200, "application/json", body, (size_t)n, head_only, close_after);
    } else {
        ar_buf_t b;
        ar_buf_init(&b, HEALTH_METRICS_CAP);
        int rc = h->opts.metrics ? ar_metrics_render(h->opts.metrics, &b) : 0;
        if (rc < 0) {
            ar_log(AR_LOG_WARN, "metrics_render_failed", AR_LF_ERR("err", rc));
            respond_text(c, 503, "metrics unavailable\n", head_only, close_after);
        } else {
            respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", (const char *)b.data, b.len,
                    head_only, close_after);
        }
        ar_buf_release(&b);
    }
}

static int on_message_begin(http_parser *p)
{
    hconn_t *c = p->data;
    c->url_len = 0;
    c->url[0] = '\0';
    c->url_too_long = 0;
    c->has_origin = 0;
    c->field_len = 0;
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    hconn_t *c = p->data;
    for (size_t i = 0; i < len; i++, c->field_len++)
        if (c->field_len < sizeof(c->field))
            c->field[c->field_len] = (char)(at[i] | 0x20); /* ASCII letters to lower case */
    return 0;
}

/* A header's name is complete when its value starts. */
static int on_header_value(http_parser *p, const char *at, size_t len)
{
    (void)at;
    (void)len;
    hconn_t *c = p->data;
    if (c->field_len == 6 && memcmp(c->field, "origin", 6) == 0)
        c->has_origin = 1;
    c->field_len = 0;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    (void)p;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    hconn_t *c = p->data;
    c->request_bytes = 0;
    int close_after = !http_should_keep_alive(p);
    route(c, close_after);
    if (close_after) {
        /* Bytes after a closing request are ignored, not parsed into more responses. */
        c->last_request = 1;
        http_parser_pause(p, 1);
    }
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_message_complete = on_message_complete,
};

static void on_idle(uv_timer_t *t)
{
    conn_close(t->data);
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    (void)handle;
    (void)suggested;
    /* Each loop serves one health endpoint at most, and the data is parsed before the next read. */
    static _Thread_local char mem[4096];
    *buf = uv_buf_init(mem, sizeof(mem));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    hconn_t *c = s->data;
    if (c->closing || n == 0)
        return;
    if (n < 0) {
        conn_close(c);
        return;
    }
    uv_timer_again(&c->timer);
    /*
     * Bytes of the request in progress, counted before parsing, so a request that never ends
     * (an endless header or body) hits the cap instead of growing the parser's work.
     */
    c->request_bytes += (size_t)n;
    size_t done = http_parser_execute(&c->parser, &parser_settings, buf->base, (size_t)n);
    if (c->closing)
        return;
    if (c->last_request) {
        uv_read_stop(s);
        return;
    }
    if (HTTP_PARSER_ERRNO(&c->parser) != HPE_OK || done != (size_t)n) {
        uv_read_stop(s);
        respond_text(c, 400, "bad request\n", 0, 1);
        return;
    }
    if (c->request_bytes > c->h->opts.max_request) {
        uv_read_stop(s);
        respond_text(c, 413, "request too large\n", 0, 1);
        return;
    }
    if (c->parser.upgrade) {
        uv_read_stop(s);
        respond_text(c, 400, "bad request\n", 0, 1);
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    ar_health_t *h = server->data;
    if (status < 0 || h->stopping)
        return;
    hconn_t *c = ar_calloc(1, sizeof(*c));
    if (c == NULL) {
        /* Still take the connection off the backlog (or libuv would stop accepting), then drop. */
        uv_os_fd_t lfd;
        if (uv_fileno((uv_handle_t *)server, &lfd) == 0) {
            int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
            if (fd >= 0)
                close(fd);
        }
        return;
    }
    c->h = h;
    uv_tcp_init(h->loop, &c->tcp);
    uv_timer_init(h->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->pending_handles = 2;
    h->open_handles += 2;
    c->next = h->conns;
    if (h->conns)
        h->conns->prev = c;
    h->conns = c;
    h->nconns++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 || h->nconns > h->opts.max_conns) {
        conn_close(c);
        return;
    }
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    uv_timer_start(&c->timer, on_idle, h->opts.idle_timeout_ms, h->opts.idle_timeout_ms);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void on_listener_closed(uv_handle_t *handle)
{
    ar_health_t *h = handle->data;
    h->open_handles--;
    maybe_free_server(h);
}

int ar_health_start(uv_loop_t *loop, const ar_health_opts_t *opts, ar_health_t **out)
{
    *out = NULL;
    struct sockaddr_storage addr;
    if (ar_addr_parse(opts->host ? opts->host : "127.0.0.1", opts->port, &addr) < 0)
        return AR_EINVAL;
    ar_ignore_sigpipe();
    ar_health_t *h = ar_calloc(1, sizeof(*h));
    if (h == NULL)
        return AR_ENOMEM;
    h->loop = loop;
    h->opts = *opts;
    if (h->opts.max_request == 0)
        h->opts.max_request = 8192;
    if (h->opts.idle_timeout_ms == 0)
        h->opts.idle_timeout_ms = 10000;
    if (h->opts.max_conns == 0)
        h->opts.max_conns = 64;
    h->opts.host = NULL; /* not kept: the caller's string may not outlive us */
    int fd = ar_listen_socket(SOCK_STREAM, (struct sockaddr *)&addr, 64);
    if (fd < 0) {
        ar_free(h);
        return fd;
    }
    uv_tcp_init(loop, &h->listener);
    h->listener.data = h;
    h->open_handles = 1;
    int rc = uv_tcp_open(&h->listener, fd);
    if (rc != 0)
        close(fd); /* not adopted by the handle, so still ours */
    else
        rc = uv_listen((uv_stream_t *)&h->listener, 64, on_connection);
    if (rc != 0) {
        /* h is freed by the close callback once the loop runs. */
        h->stopping = 1;
        uv_close((uv_handle_t *)&h->listener, on_listener_closed);
        return AR_ESYS;
    }
    struct sockaddr_storage bound;
    int len = sizeof(bound);
    uv_tcp_getsockname(&h->listener, (struct sockaddr *)&bound, &len);
    h->port = ar_addr_port((struct sockaddr *)&bound);
    ar_log(AR_LOG_INFO, "health_listening", AR_LF_ADDR("addr", (struct sockaddr *)&bound),
           AR_LF_UINT("port", h->port));
    *out = h;
    return 0;
}

uint16_t ar_health_port(const ar_health_t *h)
{
    return h->port;
}

void ar_health_stop(ar_health_t *h)
{
    if (h == NULL || h->stopping)
        return;
    h->stopping = 1;
    while (h->conns != NULL)
        conn_close(h->conns);
    uv_close((uv_handle_t *)&h->listener, on_listener_closed);
}
