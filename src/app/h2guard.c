/*
 * HTTP/2 rapid reset (CVE-2023-44487) for the app (docs/api.md, "HTTP/2 rapid reset").
 *
 * Debian's libh2o 2.2.5 predates the CVE and has no reset budget: a stream the peer resets
 * stops counting against h2o's concurrency limit at once, while the store job its request
 * started keeps running, so one connection could queue store jobs without bound. Per HTTP/2
 * connection this file counts the requests holding a store job (at most AR__H2GUARD_JOBS_MAX;
 * h2o's own limit is set to the same in server.c, so a client that does not reset never meets
 * ours) and the requests whose stream went away before their answer. When more than
 * AR__H2GUARD_ABANDON_MIN of those, and more than were answered, the connection is shut down.
 *
 * The state is the connection's own, found through its socket: allocated at the first request
 * that takes a store job and hung on the socket's on_close hook (the embedder's: h2o's own
 * server keeps its context there, and nothing in the library sets it on a server socket), so the
 * listener code needs no change. It outlives the socket while jobs of its requests still run.
 */
#include "internal.h"

#include "anteroom/alloc.h"
#include "anteroom/log.h"

#include <sys/socket.h>

struct ar__h2guard_s {
    unsigned jobs;      /* requests of this connection holding a store job */
    unsigned answered;  /* such requests answered on an open stream */
    unsigned abandoned; /* such requests whose stream was reset (or lost) first */
    int fd;             /* the socket's, for shutdown(2); -1 once it is closed */
    int shut;           /* shut down already */
};

/*
 * In h2o 2.2.5 an HTTP/2 connection (struct st_h2o_http2_conn_t, /usr/include/h2o/
 * http2_internal.h, which cannot be included: it needs khash.h, not shipped) begins with its
 * h2o_conn_t and then its socket; this prefix is all we read. Pinned to that version.
 */
#if H2O_VERSION_MAJOR != 2 || H2O_VERSION_MINOR != 2
#error "h2guard.c reads h2o 2.2's HTTP/2 connection layout: check it for this version"
#endif
typedef struct {
    h2o_conn_t super;
    h2o_socket_t *sock;
} h2_conn_prefix_t;

static void release(ar__h2guard_t *g)
{
    if (g->fd < 0 && g->jobs == 0)
        ar_free(g);
}

/* The socket is being disposed (h2o calls this after the connection's requests are gone). */
static void on_sock_close(void *data)
{
    ar__h2guard_t *g = data;
    g->fd = -1;
    release(g);
}

int ar__h2guard_take(h2o_req_t *req, ar__h2guard_t **out)
{
    *out = NULL;
    if (req->version < 0x200)
        return 0;
    h2o_socket_t *sock = ((const h2_conn_prefix_t *)req->conn)->sock;
    if (sock == NULL)
        return 0;
    ar__h2guard_t *g;
    if (sock->on_close.cb == on_sock_close) {
        g = sock->on_close.data;
    } else {
        if (sock->on_close.cb != NULL)
            return 0; /* someone else's hook: leave it (not the case in this app) */
        g = ar_calloc(1, sizeof(*g));
        if (g == NULL)
            return 0; /* no accounting rather than no service */
        g->fd = h2o_socket_get_fd(sock);
        sock->on_close.cb = on_sock_close;
        sock->on_close.data = g;
    }
    if (g->jobs >= AR__H2GUARD_JOBS_MAX)
        return AR_EQUOTA;
    g->jobs++;
    *out = g;
    return 0;
}

void ar__h2guard_done(ar__h2guard_t *g, int answered)
{
    g->jobs--;
    if (answered)
        g->answered++;
    else
        g->abandoned++;
    /* shutdown(2) rather than a close under h2o: h2o reads the end of the stream and closes
     * the connection its own way; once. */
    if (g->fd >= 0 && !g->shut && g->abandoned > AR__H2GUARD_ABANDON_MIN &&
        g->abandoned > g->answered) {
        g->shut = 1;
        ar_log(AR_LOG_WARN, "h2_reset_flood_closed", AR_LF_UINT("abandoned", g->abandoned),
               AR_LF_UINT("answered", g->answered));
        (void)shutdown(g->fd, SHUT_RDWR);
    }
    release(g);
}
