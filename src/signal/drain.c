/*
 * Drain, paced (docs/signal.md, "Drain"). Told all at once, every client of a node moves at
 * once: 200,000 token requests to the app and 200,000 resumes on the other nodes within a
 * second, which trips their admission control. So each worker tells the connections it holds
 * when the drain starts in batches, one a tick, over the first half of drain-within; the
 * second half is left for the slowest clients to finish moving before the node closes the rest
 * with 4006. The server paces: how fast a node empties does not depend on its clients.
 *
 * A cursor walks the worker's list of connections. New connections go to the head of the list,
 * before the cursor, and are told at their welcome (srv.c), so the cursor meets only those that
 * were there at the start. A connection marked drain_wait is still to be told; the mark is
 * cleared when it is told (at its welcome or by the cursor) or closes, and srv->drain_left
 * counts the marked. A connection that closes while the cursor points at it moves the cursor
 * on (ar__sig_drain_forget, from on_close, before it is unlinked), so the cursor never points
 * at a connection that may be freed before the next tick.
 */
#include "internal.h"

#include <string.h>

/* The drain frame: the drain-urls, and the seconds left until the node closes with 4006. */
void ar__sig_drain_send(ar__sig_srv_t *srv, ar__sig_conn_t *cn)
{
    if (cn->drain_wait) {
        cn->drain_wait = 0;
        srv->drain_left--;
    }
    ar_sig_str_t urls[AR_SIG_URLS_MAX];
    size_t n = 0;
    for (size_t i = 0; i < srv->conf->drain_urls.count && n < AR_SIG_URLS_MAX; i++) {
        const char *u = srv->conf->drain_urls.items[i];
        urls[n++] = (ar_sig_str_t){u, strlen(u)};
    }
    if (n == 0)
        return;
    ar_sig_msg_t m;
    ar_sig_msg_init(&m, AR_SIG_DRAIN);
    m.u.drain.urls = (ar_sig_list_t){urls, n};
    m.u.drain.within = srv->drain_at > srv->now ? srv->drain_at - srv->now : 0;
    ar__sig_send0(cn, &m);
}

size_t ar__sig_drain_batch(size_t left, uint32_t from, uint32_t at, uint32_t now)
{
    uint32_t ticks = at > from ? (at - from) / AR__SIG_DRAIN_SPREAD_PART : 0;
    uint32_t done = now > from ? now - from : 0; /* ticks gone by, this one not counted */
    if (ticks <= done + 1)
        return left; /* the last batch (or a window too short to spread): everyone now */
    uint32_t rest = ticks - done; /* this tick's batch and the ones after it */
    return left / rest + (left % rest != 0);
}

void ar__sig_drain_begin(ar__sig_srv_t *srv, uint32_t now)
{
    srv->draining = 1;
    srv->drain_from = now;
    srv->drain_at = now + (uint32_t)(srv->conf->drain_within / 1000);
    srv->drain_cur = srv->conns;
    srv->drain_left = 0;
    for (ar__sig_conn_t *cn = srv->conns; cn; cn = cn->next) {
        cn->drain_wait = 1;
        srv->drain_left++;
    }
}

void ar__sig_drain_tick(ar__sig_srv_t *srv)
{
    if (!srv->draining || srv->now >= srv->drain_at)
        return; /* at drain_at the tick closes the rest with 4006 (srv.c) */
    size_t n = ar__sig_drain_batch(srv->drain_left, srv->drain_from, srv->drain_at, srv->now);
    while (n > 0 && srv->drain_cur) {
        ar__sig_conn_t *cn = srv->drain_cur;
        /* On before the send: a send that kills cn (a slow reader) unlinks it, and the close
         * moves the cursor only when it points at the closing connection. */
        srv->drain_cur = cn->next;
        if (!cn->drain_wait)
            continue; /* told at its welcome already */
        n--;
        if (cn->state == AR__SIG_C_LIVE) {
            ar__sig_drain_send(srv, cn);
        } else {
            /* Not welcomed yet (hello, resuming): its welcome tells it (srv.c). */
            cn->drain_wait = 0;
            srv->drain_left--;
        }
    }
}

void ar__sig_drain_forget(ar__sig_srv_t *srv, ar__sig_conn_t *cn)
{
    if (srv->drain_cur == cn)
        srv->drain_cur = cn->next; /* still linked: cn is unlinked only after this */
    if (cn->drain_wait) {
        cn->drain_wait = 0;
        srv->drain_left--;
    }
}
