/*
 * The session layer of one worker: connections from ar_signal_net become protocol sessions.
 * Here: hello and the token check, the handshake and idle timers, keepalive, per-connection
 * rate limit and garbage counter, the per-address cap, drain, and the worker's main loop.
 *
 * Every limit closes with the protocol's own close code (docs/protocol.md 4.2), so a client (and
 * a test) can tell why it was dropped. Nothing here logs an id, a name or an address.
 */
#include "internal.h"

#include "anteroom/alloc.h"
#include "anteroom/health.h"
#include "anteroom/log.h"
#include "anteroom/rand.h"
#include "anteroom/sched.h"

#include <errno.h>
#include <netinet/in.h>
#include <sodium.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t g_drain, g_stop;
static ar_sn_loop_t *g_loop;
/* The node's supervisor (supervise.c), which forwards a drain to every worker; 0: none. */
pid_t ar__sig_supervisor;

uint64_t ar__sig_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ---- sending ---- */

void ar__sig_send0(ar__sig_conn_t *cn, const ar_sig_msg_t *msg)
{
    ar__sig_srv_t *srv = cn->srv;
    if (cn->state == AR__SIG_C_GONE)
        return;
    int n = ar_sig_build(AR_SIG_FROM_SERVER, msg, srv->out, sizeof(srv->out));
    if (n < 0) {
        ar_log(AR_LOG_ERROR, "signal_build_failed", AR_LF_KW("type", "seq0"), AR_LF_ERR("err", n));
        return;
    }
    if (ar_sn_send(cn->c, AR_WS_OP_TEXT, srv->out, (size_t)n) == 0)
        ar_metric_add(srv->m.msgs_out, 0, 1);
}

void ar__sig_send_error(ar__sig_conn_t *cn, int code, const char *text, int about, int64_t id)
{
    ar_sig_err_t err = {.code = code, .type = about, .id = id};
    if (text)
        snprintf(err.text, sizeof(err.text), "%s", text);
    ar_sig_msg_t m;
    ar_sig_error_msg(&m, &err);
    ar_metric_add(cn->srv->m.errors, 0, 1);
    ar__sig_send0(cn, &m);
}

void ar__sig_conn_close(ar__sig_conn_t *cn, uint16_t code)
{
    if (cn->state == AR__SIG_C_GONE)
        return;
    if (!cn->close_code)
        cn->close_code = code;
    ar_sn_close(cn->c, code);
}

void ar__sig_refuse(ar__sig_conn_t *cn, int code, const char *text, int about, int64_t id,
                    uint16_t close_code)
{
    if (cn->state != AR__SIG_C_GONE && !cn->close_code)
        cn->close_code = close_code;
    ar__sig_send_error(cn, code, text, about, id);
    ar__sig_conn_close(cn, close_code);
}

void ar__sig_welcome(ar__sig_conn_t *cn, ar__sig_sess_t *s, int resumed)
{
    const ar_signal_conf_t *conf = cn->srv->conf;
    ar_sig_msg_t m;
    ar_sig_msg_init(&m, AR_SIG_WELCOME);
    m.u.welcome.peer = (ar_sig_str_t){s->rec->peer, AR__SIG_PEER_LEN};
    char resume[AR__SIG_RESUME_LEN + 1];
    if (!s->has_secret) /* a copy whose owner's secret came malformed: the client gets one */
        ar__sig_sess_new_resume(s);
    ar__sig_sess_resume_text(s, resume);
    m.u.welcome.resume = (ar_sig_str_t){resume, AR__SIG_RESUME_LEN};
    m.u.welcome.role = s->rec->role;
    m.u.welcome.resumed = resumed;
    m.u.welcome.last_seq = s->seq;
    m.u.welcome.grace = conf->grace / 1000;
    m.u.welcome.ping = AR__SIG_PING_S;
    m.u.welcome.frame_max = AR_SIG_FRAME_MAX;
    ar__sig_send0(cn, &m);
    sodium_memzero(resume, sizeof(resume));
    if (cn->state == AR__SIG_C_GONE)
        return; /* the welcome could not be sent: the session is lost with cn (on_free) */
    cn->state = AR__SIG_C_LIVE;
    /* A staff session's token is watched (refresh.c); a patient's or an invitee's session ends
     * with its consultation instead (protocol.md 5.15). */
    cn->staff = s->rec->role == AR_SIG_ROLE_STAFF && s->claims;
    ar__sig_sess_report_lost(s); /* frames dropped while it was away (bus.c) */
    if (cn->state == AR__SIG_C_GONE)
        return;
    if (cn->srv->draining)
        ar__sig_drain_send(cn->srv, cn); /* arrived while draining: move on at once */
}

/*
 * ---- per-address cap (max-per-address; the table is addr.c's) ----
 *
 * A direct client is counted from the moment its TCP connection is accepted, under its peer
 * address: one host cannot hold a crowd of bare TCP or half-done TLS connections, each kept
 * until the 10 s handshake timeout. A trusted proxy's connections are not counted at accept: the
 * client behind it is known only from X-Forwarded-For, after the upgrade, and it is counted then.
 * So each connection is counted once, at accept or after the upgrade, and either way its net
 * tag names the entry (ar_sn_conn_set_tag for the second): one release path, on_release, which
 * the net layer calls once when the socket closes, whatever the state. A connection that was
 * never counted has tag 0 and releases nothing.
 */

static uint32_t max_per_addr(const ar__sig_srv_t *srv)
{
    return srv->conf->max_per_addr > 0 ? (uint32_t)srv->conf->max_per_addr : 0;
}

static int on_accept(ar_sn_conn_t *c, const struct sockaddr_storage *ss, void *data)
{
    ar__sig_srv_t *srv = data;
    (void)c;
    uint8_t peer[16];
    if (!max_per_addr(srv) || ar__sig_addr_key(ss, peer) != 0 ||
        ar__sig_cidr_match(srv->proxies, srv->nproxies, peer))
        return 0; /* not counted now: no cap, no address, or counted after the upgrade */
    int tag = ar__sig_addrs_add(&srv->addrs, peer, max_per_addr(srv));
    if (tag < 0)
        ar_metric_add(srv->m.closes, 0, 1); /* closed before a byte is read */
    return tag;
}

static void on_release(ar_sn_conn_t *c, uint16_t tag, void *data)
{
    ar__sig_srv_t *srv = data;
    (void)c;
    ar__sig_addrs_release(&srv->addrs, tag);
}

/* After the upgrade: a connection from a trusted proxy is counted under the client it names.
 * Returns the entry (0: not counted) or a negative code to refuse the connection. */
static int count_proxied(ar__sig_srv_t *srv, ar_sn_conn_t *c, const ar_ws_upgrade_t *up)
{
    struct sockaddr_storage ss;
    uint8_t peer[16], key[16];
    if (!max_per_addr(srv) || ar_sn_conn_tag(c) != 0 || ar_sn_conn_peer(c, &ss) != 0 ||
        ar__sig_addr_key(&ss, peer) != 0)
        return 0;
    (void)ar__sig_client_key(peer, up->forwarded, up->forwarded_len, up->forwarded_cut,
                             srv->proxies, srv->nproxies, key);
    return ar__sig_addrs_add(&srv->addrs, key, max_per_addr(srv));
}

/* ---- net callbacks ---- */

ar__sig_conn_t *ar__sig_conn_of(ar_sn_conn_t *c)
{
    ar__sig_conn_t *cn = ar_sn_conn_area(c);
    return cn->srv ? cn : NULL;
}

static int on_open(ar_sn_conn_t *c, const ar_ws_upgrade_t *up, void *data)
{
    ar__sig_srv_t *srv = data;
    int tag = count_proxied(srv, c, up);
    if (tag < 0) {
        ar_metric_add(srv->m.closes, 0, 1);
        return -1; /* closed with 1008 before any session exists */
    }
    ar_sn_conn_set_tag(c, (uint16_t)tag); /* released with the socket (on_release) */
    if (ar_sn_conn_area_size(c) < sizeof(ar__sig_conn_t)) { /* a loop made without conn_area */
        ar_log0(AR_LOG_ERROR, "signal_conn_area_too_small");
        return -1;
    }
    ar__sig_conn_t *cn = ar_sn_conn_area(c); /* zeroed, allocated with c */
    cn->c = c;
    cn->srv = srv;
    cn->moved_in = srv->moving_in & 1u;
    cn->last_rx = cn->last_ping = srv->now;
    cn->tokens_ms = AR__SIG_BURST * 1000;
    cn->refill_ms = (uint32_t)ar_sn_loop_now_ms(srv->loop);
    cn->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = cn;
    srv->conns = cn;
    ar_metric_add(srv->m.conns, 0, 1);
    return 0;
}

/*
 * The connection is gone, possibly inside a send or a close that a caller further up the stack
 * made with cn in hand (a send to a slow reader fails and the net layer drops it at once). So
 * cn is not freed here and its session is not touched: cn is only marked GONE (every send and
 * close on it then does nothing) and taken off the list of connections. The rest waits for
 * on_free, which the loop runs once the current batch of events is handled.
 */
static void on_close(ar_sn_conn_t *c, uint16_t code, void *data)
{
    ar__sig_srv_t *srv = data;
    ar__sig_conn_t *cn = ar__sig_conn_of(c);
    if (!cn || cn->state == AR__SIG_C_GONE)
        return;
    ar__sig_drain_forget(srv, cn); /* the paced drain's cursor moves off it */
    /* Unlinked, but cn->next stays: a loop over the connections that holds cn goes on from it. */
    if (cn->prev)
        cn->prev->next = cn->next;
    else if (srv->conns == cn)
        srv->conns = cn->next;
    if (cn->next)
        cn->next->prev = cn->prev;
    cn->state = AR__SIG_C_GONE;
    ar__sig_snap_conn_gone(srv, cn); /* a queue snapshot still to send goes with it */
    /* The code we closed with decides whether the session ends, even when our close frame could
     * not be sent and the net layer reports 1006. */
    if (!cn->close_code)
        cn->close_code = code;
    /* A resume attempt goes now, as its provisional session may be freed before on_free by
     * whoever no longer finds cn resuming (rec.c): nothing up the stack uses it after a send. */
    if (ar__sig_conn_resume(cn))
        ar__sig_resume_tick(srv, cn); /* sees GONE and frees the attempt */
    ar_metric_add(srv->m.conns, 0, -1);
}

static void on_free(ar_sn_conn_t *c, void *data)
{
    ar__sig_srv_t *srv = data;
    ar__sig_conn_t *cn = ar__sig_conn_of(c);
    if (!cn)
        return;
    /* A session freed or handed to another connection meanwhile has let go of cn. */
    if (cn->sess && cn->sess->conn == cn) {
        cn->sess->conn = NULL;
        ar__sig_sess_lost(srv, cn->sess, cn->close_code);
    }
    if (ar__sig_conn_resume(cn)) /* went at the close; never left on the list freed */
        (void)ar__sig_conn_set_resume(cn, NULL);
    ar_free(cn->cold);
    cn->cold = NULL;
    /* cn's memory goes with c's, after this (ar_sn_conn_area). */
}

ar__sig_conn_cold_t *ar__sig_conn_cold(ar__sig_conn_t *cn)
{
    if (!cn->cold)
        cn->cold = ar_calloc(1, sizeof(*cn->cold));
    return cn->cold;
}

/* cn off srv->resuming; its rnext kept for a walk that holds it (internal.h). */
static void resuming_unlink(ar__sig_srv_t *srv, ar__sig_conn_t *cn)
{
    ar__sig_conn_cold_t *k = cn->cold;
    if (k->rprev)
        k->rprev->cold->rnext = k->rnext;
    else if (srv->resuming == cn)
        srv->resuming = k->rnext;
    if (k->rnext)
        k->rnext->cold->rprev = k->rprev;
    k->rprev = NULL;
}

int ar__sig_conn_set_resume(ar__sig_conn_t *cn, ar__sig_resume_t *a)
{
    ar__sig_srv_t *srv = cn->srv;
    if (!a) {
        if (cn->cold && cn->cold->resume) {
            cn->cold->resume = NULL;
            resuming_unlink(srv, cn);
        }
        return 0;
    }
    ar__sig_conn_cold_t *k = ar__sig_conn_cold(cn);
    if (!k)
        return -1;
    if (!k->resume) {
        k->rprev = NULL;
        k->rnext = srv->resuming;
        if (srv->resuming)
            srv->resuming->cold->rprev = cn;
        srv->resuming = cn;
    }
    k->resume = a;
    return 0;
}

/* cn's cold part freed once nothing in it is current: no attempt, no refusal episode, the
 * garbage window over, and no resume whose previous secret an ask from an attempt the client
 * left could still present (handover.c stale_ask; the client's first frame on cn ends that).
 * The tick, once a second. */
void ar__sig_conn_cold_trim(ar__sig_conn_t *cn, uint32_t now)
{
    ar__sig_conn_cold_t *k = cn->cold;
    if (k && !k->resume && !(k->resumed_ms && cn->sess && cn->sess->has_prev) &&
        (!k->over_since || now - k->last_refused >= 2) &&
        (!k->garbage || now - k->garbage_since >= AR__SIG_GARBAGE_WINDOW_S)) {
        ar_free(k);
        cn->cold = NULL;
    }
}

/* Token bucket: AR__SIG_RATE per second, AR__SIG_BURST deep. 1: the frame may pass. */
static int rate_ok(ar__sig_conn_t *cn)
{
    /* The loop's clock of this wake-up, not a clock read per message: messages that arrived
     * together count as arriving at once, which is what the bucket's burst is for. */
    uint32_t now = (uint32_t)ar_sn_loop_now_ms(cn->srv->loop);
    uint64_t add = (uint64_t)(uint32_t)(now - cn->refill_ms) * AR__SIG_RATE;
    cn->refill_ms = now;
    uint64_t t = cn->tokens_ms + add;
    cn->tokens_ms =
        (uint32_t)(t > (uint64_t)AR__SIG_BURST * 1000u ? (uint64_t)AR__SIG_BURST * 1000u : t);
    if (cn->tokens_ms >= 1000) {
        cn->tokens_ms -= 1000;
        return 1;
    }
    return 0;
}

void ar__sig_conn_garbage(ar__sig_conn_t *cn)
{
    ar__sig_srv_t *srv = cn->srv;
    ar__sig_conn_cold_t *k = ar__sig_conn_cold(cn);
    if (!k) { /* no memory to count it: a client sending garbage is not kept for it */
        ar__sig_conn_close(cn, AR_SIG_CLOSE_GARBAGE);
        return;
    }
    if (srv->now - k->garbage_since >= AR__SIG_GARBAGE_WINDOW_S) {
        k->garbage_since = srv->now;
        k->garbage = 0;
    }
    if (++k->garbage >= AR__SIG_GARBAGE)
        ar__sig_conn_close(cn, AR_SIG_CLOSE_GARBAGE);
}

int ar__sig_hello_session(ar__sig_conn_t *cn, const ar_token_claims_t *cl, int64_t id, int admit,
                          ar__sig_sess_t **out)
{
    ar__sig_srv_t *srv = cn->srv;
    *out = NULL;
    if (admit && !ar__sig_bus_admit(srv)) {
        ar__sig_conn_close(cn, AR_SIG_CLOSE_BUSY);
        return AR_EAGAIN;
    }
    /* An invite link opens one session in the whole jurisdiction; a resume is not a new use. */
    int invitee = cl->role == AR_TOKEN_INVITEE;
    if (invitee && ar__sig_invite_used(srv, cl)) {
        ar__sig_refuse(cn, AR_SIG_E_BAD_TOKEN, AR__SIG_INVITE_USED_TEXT, AR_SIG_HELLO, id,
                       AR_SIG_CLOSE_BAD_TOKEN);
        return AR_EPERM;
    }
    ar__sig_sess_t *s = ar__sig_sess_new(srv, cn, cl);
    if (!s)
        return AR_ENOMEM;
    if (invitee && ar__sig_invite_claim(srv, cl, s->rec->peer) != 0) {
        ar__sig_refuse(cn, AR_SIG_E_BAD_TOKEN, AR__SIG_INVITE_USED_TEXT, AR_SIG_HELLO, id,
                       AR_SIG_CLOSE_BAD_TOKEN); /* ends the session (sess.c) */
        return AR_EPERM;
    }
    *out = s;
    return 0;
}

/* raw: the hello's text, for a move to the session's owner (move.c). */
static void on_hello(ar__sig_conn_t *cn, ar_sig_msg_t *m, const uint8_t *raw, size_t raw_len)
{
    ar__sig_srv_t *srv = cn->srv;
    /* Before the token's check, which the owner makes (a move costs the node one check). */
    if (m->u.hello.resume.p &&
        ar__sig_move_resume(cn, m->u.hello.resume.p, m->u.hello.resume.len, raw, raw_len))
        return;
    /* A new session costs every worker its records: none while the bus is behind (bus.c), and
     * refused before the token check, which would cost the node more than the refusal. */
    if (!m->u.hello.resume.p && !ar__sig_bus_admit(srv)) {
        ar__sig_conn_close(cn, AR_SIG_CLOSE_BUSY);
        return;
    }
    ar_token_claims_t *cl = ar_malloc(sizeof(*cl));
    if (!cl) {
        ar__sig_refuse(cn, AR_SIG_E_INTERNAL, NULL, AR_SIG_HELLO, m->id, AR_SIG_CLOSE_SHUTDOWN);
        return;
    }
    int64_t now = (int64_t)time(NULL);
    int rc =
        ar_token_verify(&srv->keys, m->u.hello.token.p, m->u.hello.token.len, "signal", now, cl);
    /* An expired token (signature and audience good) may still resume the session it opened:
     * what proves the client then is the resume secret (protocol.md 5.10), and a patient may
     * wait longer than its token lives. Never a new session, and not for ever. */
    int expired = rc == AR_EEXPIRED && m->u.hello.resume.p != NULL &&
                  now - cl->exp < AR__SIG_RESUME_EXPIRED_MAX_S;
    if (expired)
        rc = 0;
    if (rc == 0 && strcmp(cl->jur, srv->conf->jurisdiction) != 0)
        rc = AR_EPERM; /* S10: a node serves only its own jurisdiction */
    if (rc != 0) {
        ar__sig_refuse(cn, rc == AR_EEXPIRED ? AR_SIG_E_TOKEN_EXPIRED : AR_SIG_E_BAD_TOKEN, NULL,
                       AR_SIG_HELLO, m->id, AR_SIG_CLOSE_BAD_TOKEN);
        ar_free(cl);
        return;
    }
    if (m->u.hello.resume.p) {
        char resume[AR_SIG_ID_MAX + 1];
        memcpy(resume, m->u.hello.resume.p, m->u.hello.resume.len);
        resume[m->u.hello.resume.len] = '\0';
        rc = ar__sig_resume_start(cn, cl, resume, m->u.hello.last_seq);
        if (rc == 0 || rc == AR_ENOMEM) {
            /* Without memory to start the resume, the session is left as it was: the client
             * is told to come back (internal, 4014) and resumes it with the same secret, as
             * after a resume that runs out of memory later (resume.c finish). A new session
             * in its place would throw away the one it still has. */
            if (rc == AR_ENOMEM)
                ar__sig_refuse(cn, AR_SIG_E_INTERNAL, NULL, AR_SIG_HELLO, m->id,
                               AR_SIG_CLOSE_SHUTDOWN);
            ar_free(cl);
            return; /* resumed here, waiting for the owner's answer, or told to come back */
        }
        if (expired) { /* no session to resume: what the token says of a new one counts */
            ar__sig_refuse(cn, AR_SIG_E_TOKEN_EXPIRED, NULL, AR_SIG_HELLO, m->id,
                           AR_SIG_CLOSE_BAD_TOKEN);
            ar_free(cl);
            return;
        }
        ar__sig_send_error(cn, AR_SIG_E_RESUME_FAILED, NULL, AR_SIG_HELLO, m->id);
        if (cn->state == AR__SIG_C_GONE) {
            ar_free(cl);
            return; /* the error could not be sent: no new session for a gone client */
        }
    }
    /* Without a resume token the admission was checked above, before the token's. */
    ar__sig_sess_t *s;
    rc = ar__sig_hello_session(cn, cl, m->id, m->u.hello.resume.p != NULL, &s);
    ar_free(cl);
    if (rc == AR_ENOMEM)
        ar__sig_refuse(cn, AR_SIG_E_INTERNAL, NULL, AR_SIG_HELLO, m->id, AR_SIG_CLOSE_SHUTDOWN);
    if (rc != 0)
        return;
    /* A staff member's or invitee's name, in the record's queue part (internal.h): without
     * memory for either, the session goes on nameless, as it did when its copy failed. */
    ar__sig_recq_t *q;
    if (m->u.hello.name.p && s->rec->role != AR_SIG_ROLE_PATIENT && (q = ar__sig_rec_q(s->rec))) {
        q->name = ar_strndup(m->u.hello.name.p, m->u.hello.name.len);
        ar__sig_rec_publish(srv, s->rec, "name");
    }
    ar__sig_welcome(cn, s, 0);
}

/* One message or control frame against cn's bucket (srv->now current): 1 when it passes, 0
 * when refused, -1 when refused and cn closed. Over the rate, refusals keep coming: past
 * AR__SIG_RATE_CLOSE_S of them the connection is closed (4004); a quiet second ends the
 * episode. */
int ar__sig_conn_rate_admit(ar__sig_conn_t *cn)
{
    /* over_since 0 means no episode, so the loop's second 0 counts as second 1 throughout (as
     * 0 it wrapped the difference below, and closed at the first refusal of a worker's first
     * second). */
    uint32_t now = cn->srv->now ? cn->srv->now : 1;
    ar__sig_conn_cold_t *k = cn->cold;
    if (rate_ok(cn)) {
        if (k && k->over_since && now - k->last_refused >= 2)
            k->over_since = 0;
        return 1;
    }
    /* Without memory to time the episode, a client over its rate is closed at once. */
    if ((k = ar__sig_conn_cold(cn)) != NULL) {
        k->last_refused = now;
        if (!k->over_since)
            k->over_since = now;
        if (now - k->over_since < AR__SIG_RATE_CLOSE_S)
            return 0;
    }
    ar__sig_conn_close(cn, AR_SIG_CLOSE_RATE_LIMIT);
    return -1;
}

/* WebSocket pings and pongs: unanswered pings were a way round the message rate (a client
 * without a token got a pong for each of 200,000 pings). They take tokens from the same bucket;
 * over it a ping goes unanswered, and a connection still over after AR__SIG_RATE_CLOSE_S is
 * closed with 4004 as a message flood is. */
static int on_control(ar_sn_conn_t *c, uint8_t opcode, void *ud)
{
    ar__sig_srv_t *srv = ud;
    ar__sig_conn_t *cn = ar__sig_conn_of(c);
    (void)opcode;
    if (!cn || cn->state == AR__SIG_C_GONE)
        return 1;
    srv->now = ar_sn_loop_now(srv->loop);
    return ar__sig_conn_rate_admit(cn) <= 0;
}

static void on_message(ar_sn_conn_t *c, uint8_t opcode, const uint8_t *data, size_t len, void *ud)
{
    ar__sig_srv_t *srv = ud;
    ar__sig_conn_t *cn = ar__sig_conn_of(c);
    if (!cn || cn->state == AR__SIG_C_GONE)
        return;
    srv->now = ar_sn_loop_now(srv->loop); /* the loop's turn may have started seconds ago */
    cn->last_rx = srv->now;
    ar_metric_add(srv->m.msgs_in, 0, 1);
    if (opcode != AR_WS_OP_TEXT) {
        ar__sig_conn_close(cn, AR_SIG_CLOSE_NOT_BINARY);
        return;
    }
    int admit = ar__sig_conn_rate_admit(cn);
    if (admit <= 0) {
        if (admit == 0)
            ar__sig_send_error(cn, AR_SIG_E_RATE_LIMITED, NULL, 0, AR_SIG_NONE);
        return;
    }
    ar_sig_msg_t m;
    ar_sig_err_t err;
    /* Offers and answers keep their SDP as sent: it is only forwarded (lift.c). A relay's frame
     * is read without jansson, its strings left in `data`, which outlives m (flat.c). */
    int rc = ar_sig_parse2(AR_SIG_FROM_CLIENT, (const char *)data, len,
                           AR_SIG_PARSE_KEEP_SDP_JSON | AR_SIG_PARSE_BORROW, &m, &err);
    if (rc == AR_ENOMEM) {
        ar__sig_send_error(cn, AR_SIG_E_INTERNAL, NULL, 0, AR_SIG_NONE);
        return;
    }
    if (rc != 0) {
        ar_sig_msg_t em;
        ar_sig_error_msg(&em, &err);
        ar_metric_add(srv->m.errors, 0, 1);
        ar__sig_send0(cn, &em);
        if (err.code == AR_SIG_E_BAD_VERSION)
            ar__sig_conn_close(cn, AR_SIG_CLOSE_BAD_VERSION);
        else
            ar__sig_conn_garbage(cn);
        return;
    }
    if (cn->state == AR__SIG_C_HELLO) {
        if (m.type == AR_SIG_HELLO) {
            on_hello(cn, &m, data, len);
        } else {
            ar__sig_refuse(cn, AR_SIG_E_NOT_AUTHENTICATED, NULL, m.type, m.id,
                           AR_SIG_CLOSE_BAD_TOKEN);
        }
    } else if (cn->state == AR__SIG_C_RESUMING || m.type == AR_SIG_HELLO) {
        ar__sig_send_error(cn, AR_SIG_E_BAD_STATE, NULL, m.type, m.id);
    } else {
        /* A client sends nothing before its welcome (7 not_authenticated, bad_state while
         * resuming): this frame shows it read the welcome, so the secret that welcome
         * replaced stops working (sess.c ar__sig_sess_rotate_resume). */
        if (cn->sess && cn->sess->has_prev)
            ar__sig_sess_resume_confirmed(srv, cn->sess);
        ar__sig_handle(cn, &m);
    }
    ar_sig_msg_free(&m);
}

/* Asked for by a queue snapshot with more pages to send (area.c). */
static void on_writable(ar_sn_conn_t *c, void *data)
{
    (void)data;
    ar__sig_conn_t *cn = ar__sig_conn_of(c);
    if (cn)
        ar__sig_snap_writable(cn);
}

void ar__sig_net_handler(ar__sig_srv_t *srv, ar_sn_handler_t *h)
{
    *h = (ar_sn_handler_t){.accept_cb = on_accept,
                           .release_cb = on_release,
                           .open_cb = on_open,
                           .message_cb = on_message,
                           .close_cb = on_close,
                           .free_cb = on_free,
                           .control_cb = on_control,
                           .writable_cb = on_writable,
                           .data = srv};
}

/* ---- timers ---- */

/* From now: /readyz 503, "draining" in heartbeats, clients told to go until drain_at. */
static void begin_drain(ar__sig_srv_t *srv, uint32_t now)
{
    ar__sig_drain_begin(srv, now);
    ar_log0(AR_LOG_INFO, "signal_drain_started");
}

/* The ping that asks for an acknowledgement (internal.h). "No ping since the last frame" is
 * last_ping at or before last_tx on the loop's 32-bit clock: a ping in the same second as a
 * frame may have gone before it. */
int ar__sig_conn_acks_due(const ar__sig_conn_t *cn, uint32_t now)
{
    const ar__sig_sess_t *s = cn->sess;
    return s && s->head && now - cn->last_tx >= AR__SIG_ACK_ASK_S &&
           (int32_t)(cn->last_ping - cn->last_tx) <= 0;
}

/*
 * A live client connection that carries no session this worker acts for: none at all, one
 * attached to another connection, a backup's copy, or one whose record names another owner.
 * Its client hears nothing more and does not know it (pings still come), so it is counted by
 * kind and warned (no ids), on one tick in CONN_REPORT_S while any is seen (docs/signal.md, "A
 * connection left without its session"). Not on every tick: the look reads each connection's
 * record, a cache miss each, and looking every second took 2.6 to 2.8 % of a failover
 * survivor's workers (performance.md, "Failover at 100,000 calls a node: the check's burst"). A
 * connection lingering a moment after a hand-over, or after its client's bye (which ends the
 * session before the close), is counted too; one seen look after look is the anomaly.
 */
#define CONN_REPORT_S 10u /* also how often idle closes are told at most (idle_report) */

int ar__sig_conn_astray(const ar__sig_srv_t *srv, const ar__sig_conn_t *cn)
{
    const ar__sig_sess_t *s = cn->sess;
    if (!s)
        return AR__SIG_ASTRAY_NONE;
    if (s->conn != cn)
        return AR__SIG_ASTRAY_OTHER_CONN;
    if (s->is_backup)
        return AR__SIG_ASTRAY_BACKUP;
    if (s->rec->owner != srv->node_id)
        return AR__SIG_ASTRAY_ELSEWHERE;
    return -1;
}

static void astray_report(const uint32_t *n)
{
    if (!(n[AR__SIG_ASTRAY_NONE] | n[AR__SIG_ASTRAY_OTHER_CONN] | n[AR__SIG_ASTRAY_BACKUP] |
          n[AR__SIG_ASTRAY_ELSEWHERE]))
        return;
    ar_log(AR_LOG_WARN, "signal_conns_astray", AR_LF_UINT("no_session", n[AR__SIG_ASTRAY_NONE]),
           AR_LF_UINT("other_conn", n[AR__SIG_ASTRAY_OTHER_CONN]),
           AR_LF_UINT("backup", n[AR__SIG_ASTRAY_BACKUP]),
           AR_LF_UINT("owned_elsewhere", n[AR__SIG_ASTRAY_ELSEWHERE]));
}

/*
 * Connections closed as idle (4009), told at most every CONN_REPORT_S while any are: a client
 * gone without a close is routine, but many at once, or ones whose output was queued (the worker
 * stops reading a connection whose client does not read, ar__sn_epoll_update, so its pongs wait
 * unread) or with bytes still unread, say the clients or the worker fell behind rather than
 * went (docs/signal.md, "Closed as idle, told").
 */
static void idle_report(ar__sig_srv_t *srv, uint32_t now)
{
    if (!srv->idle_closed || (srv->idle_logged && now - srv->idle_logged < CONN_REPORT_S))
        return;
    srv->idle_logged = now ? now : 1;
    ar_log(AR_LOG_INFO, "signal_idle_closed", AR_LF_UINT("closed", srv->idle_closed),
           AR_LF_UINT("output_queued", srv->idle_queued),
           AR_LF_UINT("input_unread", srv->idle_unread));
    srv->idle_closed = srv->idle_queued = srv->idle_unread = 0;
}

void ar__sig_srv_tick(uint32_t now, void *data)
{
    ar__sig_srv_t *srv = data;
    srv->now = now;
    if (g_stop)
        ar_sn_loop_stop(srv->loop);
    if (g_drain && !srv->draining)
        begin_drain(srv, now);
    /* This second's share of the clients told to go (drain.c), before any is closed below. */
    ar__sig_drain_tick(srv);
    int64_t wall = (int64_t)time(NULL); /* tokens' expiry is in Unix seconds */
    uint32_t astray[AR__SIG_ASTRAY_N] = {0};
    int astray_look = now % CONN_REPORT_S == 0;
    ar__sig_conn_t *next;
    for (ar__sig_conn_t *cn = srv->conns; cn; cn = next) {
        next = cn->next;
        ar__sig_conn_cold_trim(cn, now);
        if (cn->state == AR__SIG_C_HELLO) {
            if (now - cn->last_ping >= AR__SIG_HELLO_S) /* since it opened */
                ar__sig_conn_close(cn, AR_SIG_CLOSE_HANDSHAKE_TIMEOUT);
            continue;
        }
        if (cn->state == AR__SIG_C_RESUMING) {
            ar__sig_resume_tick(srv, cn);
            continue;
        }
        if (cn->state != AR__SIG_C_LIVE)
            continue;
        int k = astray_look ? ar__sig_conn_astray(srv, cn) : -1;
        if (k >= 0)
            astray[k]++;
        if (cn->staff && ar__sig_token_sweep(srv, cn, wall))
            continue;
        if (srv->draining && now >= srv->drain_at) {
            ar_metric_add(srv->m.drained, 0, 1);
            ar__sig_conn_close(cn, AR_SIG_CLOSE_DRAINED);
            continue;
        }
        /*
         * An overloaded loop can reach this check before it has read the pong the client sent
         * in time: bytes waiting in the socket mean the client is there, so the close waits
         * (up to one more ping period, so a client trickling a byte now and then while not
         * reading is still closed).
         */
        if (now - cn->last_rx >= AR__SIG_IDLE_S) {
            int unread = ar_sn_conn_input_waiting(cn->c);
            if (now - cn->last_rx >= AR__SIG_IDLE_S + AR__SIG_PING_S || !unread) {
                srv->idle_closed++;
                srv->idle_queued += ar_sn_conn_outgoing(cn->c) > 0;
                srv->idle_unread += unread != 0;
                ar__sig_conn_close(cn, AR_SIG_CLOSE_IDLE);
                continue;
            }
        }
        if (now - cn->last_ping >= AR__SIG_PING_S || ar__sig_conn_acks_due(cn, now)) {
            cn->last_ping = now;
            ar_sig_msg_t m;
            ar_sig_msg_init(&m, AR_SIG_PING);
            ar__sig_send0(cn, &m);
        }
    }
    if (astray_look)
        astray_report(astray);
    idle_report(srv, now);
    ar__sig_bus_heartbeat(srv);
    ar__sig_sess_tick(srv);
    ar__sig_frame_slabs_tick(srv);
    ar_metric_set(srv->m.sessions, (int64_t)srv->nsessions);
    ar_metric_set(srv->m.rooms, (int64_t)srv->nrooms);
}

/* ---- keys ---- */

static int load_keys(ar__sig_srv_t *srv)
{
    FILE *f = srv->conf->keys ? fopen(srv->conf->keys, "r") : NULL;
    if (!f)
        return AR_EIO;
    char line[256];
    int rc = 0;
    while (rc == 0 && fgets(line, sizeof(line), f)) {
        char kid[40], b64[80];
        if (line[0] == '#' || line[0] == '\n')
            continue;
        if (sscanf(line, "%39s %79s", kid, b64) != 2) {
            rc = AR_ECONFIG;
            break;
        }
        ar_token_key_t k;
        memset(&k, 0, sizeof(k));
        size_t n = 0;
        if (strlen(kid) > 32 ||
            sodium_base642bin(k.pk, sizeof(k.pk), b64, strlen(b64), NULL, &n, NULL,
                              sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
            n != 32) {
            rc = AR_ECONFIG;
            break;
        }
        memcpy(k.kid, kid, strlen(kid) + 1);
        rc = ar_token_keyring_add(&srv->keys, &k);
    }
    fclose(f);
    return rc ? rc : (srv->keys.count ? 0 : AR_ECONFIG);
}

/* ---- metrics and the operator listener (its own thread with a libuv loop) ---- */

static const double k_us_bounds[] = {50, 100, 250, 500, 1000, 2500, 5000, 10000, 50000, 250000};

static int metrics_init(ar__sig_srv_t *srv)
{
    ar_metrics_t *m = srv->metrics = ar_metrics_new();
    if (!m)
        return AR_ENOMEM;
    srv->m.conns = ar_metrics_gauge(m, "anteroom_signal_connections", "open WebSockets", NULL);
    srv->m.sessions = ar_metrics_gauge(m, "anteroom_signal_sessions",
                                       "sessions owned by this worker (live or in grace)", NULL);
    srv->m.rooms = ar_metrics_gauge(m, "anteroom_signal_rooms", "rooms known to this worker", NULL);
    srv->m.msgs_in =
        ar_metrics_counter(m, "anteroom_signal_messages_total", "frames", "dir=\"in\"");
    srv->m.msgs_out =
        ar_metrics_counter(m, "anteroom_signal_messages_total", "frames", "dir=\"out\"");
    srv->m.errors = ar_metrics_counter(m, "anteroom_signal_errors_total", "error frames", NULL);
    srv->m.closes = ar_metrics_counter(m, "anteroom_signal_refused_total",
                                       "connections refused by the per-address cap", NULL);
    srv->m.resumes =
        ar_metrics_counter(m, "anteroom_signal_resumes_total", "sessions resumed", NULL);
    srv->m.drained =
        ar_metrics_counter(m, "anteroom_signal_drained_total", "connections closed by drain", NULL);
    static const char moved_help[] = "resuming connections moved to their session's worker";
    srv->m.moved_out =
        ar_metrics_counter(m, "anteroom_signal_moved_total", moved_help, "dir=\"out\"");
    srv->m.moved_in =
        ar_metrics_counter(m, "anteroom_signal_moved_total", moved_help, "dir=\"in\"");
    srv->m.moved_unsent =
        ar_metrics_counter(m, "anteroom_signal_moved_total", moved_help, "dir=\"unsent\"");
    srv->m.snaps = ar_metrics_gauge(m, "anteroom_signal_queue_snapshots_pending",
                                    "queue snapshots waiting for their connection to drain", NULL);
    static const char *const unheld[AR__SIG_UNHELD_N] = {"why=\"no_record\"", "why=\"elsewhere\"",
                                                         "why=\"not_ours\"", "why=\"ours_no_copy\"",
                                                         "why=\"bad\""};
    for (int k = 0; k < AR__SIG_UNHELD_N; k++)
        srv->m.unheld[k] = ar_metrics_counter(
            m, "anteroom_signal_frames_unheld_total",
            "frames for a peer off the bus that this worker did not deliver", unheld[k]);
    srv->m.relay_us = ar_metrics_histogram(
        m, "anteroom_signal_relay_latency_us",
        "from the sender's worker publishing a frame to the recipient's worker sending it", NULL,
        k_us_bounds, sizeof(k_us_bounds) / sizeof(k_us_bounds[0]));
    srv->m.bus_lag_us =
        ar_metrics_histogram(m, "anteroom_signal_bus_lag_us", "heartbeat delay over NATS", NULL,
                             k_us_bounds, sizeof(k_us_bounds) / sizeof(k_us_bounds[0]));
    return srv->m.bus_lag_us ? 0 : AR_ENOMEM;
}

static int ready_cb(void *data)
{
    const ar__sig_srv_t *srv = data;
    /* Not while it catches up on ended rooms either: it admits no new session then (invite.c). */
    return !srv->draining && !__atomic_load_n(&srv->ended_catchup, __ATOMIC_RELAXED);
}

/*
 * POST /drain on any worker's operator listener drains the whole node, as SIGUSR1 to the
 * supervisor does (health.c takes it from loopback only). Runs on the operator thread: it only
 * raises the same flags a signal would.
 */
static int drain_action(void *data)
{
    (void)data;
    ar_log0(AR_LOG_INFO, "signal_drain_requested");
    if (ar__sig_supervisor > 0 && kill(ar__sig_supervisor, SIGUSR1) == 0)
        return 0;
    g_drain = 1; /* no supervisor to tell: at least this worker drains */
    return 0;
}

static void *health_thread(void *arg)
{
    ar__sig_srv_t *srv = arg;
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0)
        return NULL;
    ar_health_opts_t o = {.host = srv->conf->metrics_host,
                          .port = (uint16_t)(srv->conf->metrics_port + srv->index),
                          .metrics = srv->metrics,
                          .ready = ready_cb,
                          .ready_data = srv,
                          .action_path = "/drain",
                          .action = drain_action};
    ar_health_t *h;
    if (ar_health_start(&loop, &o, &h) != 0) {
        ar_log0(AR_LOG_ERROR, "signal_metrics_listen_failed");
        return NULL;
    }
    uv_run(&loop, UV_RUN_DEFAULT); /* lives as long as the worker process */
    return NULL;
}

/* ---- the worker ---- */

/*
 * A graceful stop (SIGTERM/SIGINT) hands the sessions over now, not after the heartbeat
 * timeout (docs/signal.md, "Graceful stop"). In this order: one wake-up's batch of what waits in
 * the bus's inbox is handled (bus.c WAKE_BATCH items and the heartbeats; the rest is not): frames
 * for our sessions numbered, sent and copied to their backups, frames between two of our own
 * sessions, which never go through NATS, delivered; then the departure goes out
 * after every copy and record, and every worker promotes as on our death (bus_node.c); only
 * then are the clients told to go (drain with the drain-urls, then close 4014), so that their
 * resumes find the sessions promoted. The sessions are let go of first: their connections'
 * closes must not mark them away or end them here (a client that closes with 1000 after
 * moving on a drain), and nothing published after the departure would go out anyway.
 */
static void stop_gracefully(ar__sig_srv_t *srv)
{
    srv->now = ar_sn_loop_now(srv->loop);
    srv->draining = 1; /* /readyz 503 while we go */
    srv->drain_at = srv->now;
    if (srv->bus)
        ar__sig_bus_wake(srv);
    ar__sig_bus_leave(srv);
    size_t told = 0;
    ar__sig_conn_t *next;
    for (ar__sig_conn_t *cn = srv->conns; cn; cn = next) {
        next = cn->next;
        if (cn->state == AR__SIG_C_LIVE && cn->sess && cn->sess->conn == cn) {
            cn->sess->conn = NULL;
            cn->sess = NULL;
            ar__sig_drain_send(srv, cn); /* within 0: go now (nothing without drain-urls) */
            told++;
        }
        ar__sig_conn_close(cn, AR_SIG_CLOSE_SHUTDOWN);
    }
    ar_log(AR_LOG_INFO, "signal_worker_stopping", AR_LF_UINT("clients", told));
}

static void on_signal(int sig)
{
    if (sig == SIGUSR1) {
        g_drain = 1;
    } else {
        g_stop = 1;
        if (g_loop)
            ar_sn_loop_stop(g_loop);
    }
}

void ar__sig_node_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGUSR1);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
}

/*
 * A worker holds SIGUSR1 (drain), SIGTERM and SIGINT blocked until its handlers are in place:
 * the supervisor forks it with them blocked (supervise.c spawn), and a direct caller gets them
 * blocked at the start of ar_signal_worker_run. One sent while the worker connects to the bus
 * and listens then waits, pending, instead of killing the worker by its default action (it
 * would be restarted, and not draining). Threads started meanwhile (libnats', the operator
 * listener's) keep them blocked, so the loop's thread takes them.
 */
static int drain_pending(void)
{
    sigset_t p;
    return sigpending(&p) == 0 && sigismember(&p, SIGUSR1) == 1;
}

static void catch_signals(ar__sig_srv_t *srv)
{
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigset_t set;
    ar__sig_node_signals(&set);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL); /* what is pending is delivered here */
    if (g_drain && !srv->draining)
        begin_drain(srv, ar_sn_loop_now(srv->loop)); /* before the loop takes anyone */
}

int ar_signal_worker_run(const ar_signal_conf_t *conf, unsigned index)
{
    sigset_t held, caller;
    ar__sig_node_signals(&held);
    pthread_sigmask(SIG_BLOCK, &held, &caller); /* until catch_signals; the caller's on return */
    ar_sig_init();
    ar__sig_srv_t *srv = ar_calloc(1, sizeof(*srv));
    if (!srv) {
        pthread_sigmask(SIG_SETMASK, &caller, NULL);
        return AR_ENOMEM;
    }
    srv->conf = conf;
    srv->index = index;
    ar_rand_bytes(&srv->node_id, sizeof(srv->node_id));
    /* Before libnats starts its threads, which inherit the policy (anteroom/sched.h says why). */
    if (conf->sched_batch && ar_sched_batch() < 0)
        ar_log(AR_LOG_DEBUG, "signal_sched_batch_failed", AR_LF_INT("errno", errno));
    int rc = load_keys(srv);
    if (rc != 0)
        ar_log(AR_LOG_ERROR, "signal_keys_unreadable", AR_LF_OPER("file", conf->keys));
    if (rc == 0)
        rc = metrics_init(srv);
    for (size_t i = 0; rc == 0 && i < conf->trusted_proxies.count; i++) {
        if (srv->nproxies == AR__SIG_PROXIES_MAX ||
            ar__sig_cidr_parse(conf->trusted_proxies.items[i], &srv->proxies[srv->nproxies++]))
            rc = AR_ECONFIG;
        if (rc)
            ar_log(AR_LOG_ERROR, "signal_trusted_proxy_invalid",
                   AR_LF_OPER("value", conf->trusted_proxies.items[i]));
    }
    ar_ws_upgrade_conf_t up = {.origins = (const char *const *)conf->origins.items,
                               .norigins = conf->origins.count,
                               .allow_no_origin = conf->allow_no_origin,
                               .protocol = AR_SIG_SUBPROTOCOL};
    ar_sn_tls_ctx_t *tls = NULL;
    if (rc == 0 && conf->tls_cert && conf->tls_key)
        rc = ar_sn_tls_ctx_new(AR_SN_TLS_DEFAULT, conf->tls_cert, conf->tls_key, &tls);
    ar_sn_conf_t nc = {.upgrade = &up,
                       .max_message = AR_SIG_FRAME_MAX,
                       .max_outgoing = 512 * 1024,
                       .handshake_timeout_s = AR__SIG_HELLO_S,
                       .idle_timeout_s = 200, /* our own 60 s idle rule closes with 4009 first */
                       .tls = tls,
                       .too_big_code = AR_SIG_CLOSE_TOO_BIG,
                       .conn_area = sizeof(ar__sig_conn_t)};
    ar_sn_handler_t h;
    ar__sig_net_handler(srv, &h);
    if (rc == 0)
        rc = ar_sn_loop_new(&nc, &h, &srv->loop);
    if (rc == 0)
        ar_sn_loop_set_tick(srv->loop, ar__sig_srv_tick, srv);
    /* A worker restarted on a draining node has a drain waiting (supervise.c): its first
     * heartbeat says so, or other workers would pick it as a backup. */
    if (rc == 0 && drain_pending())
        begin_drain(srv, ar_sn_loop_now(srv->loop));
    /* On the bus before taking clients, so their sessions can be placed and backed up. */
    if (rc == 0)
        rc = ar__sig_bus_start(srv);
    /* Without it a resume goes over the bus, as across nodes: logged, not fatal. */
    if (rc == 0 && conf->move_resumes)
        (void)ar__sig_move_start(srv);
    if (rc == 0)
        rc = ar_sn_loop_listen(srv->loop, conf->listen, (uint16_t)conf->port, NULL);
    /* A port of this worker's own: the app (or a benchmark) can put a room's members on one
     * worker, saving the hop between workers (design.md). */
    if (rc == 0 && conf->worker_port)
        rc =
            ar_sn_loop_listen(srv->loop, conf->listen, (uint16_t)(conf->worker_port + index), NULL);
    if (rc == 0 && conf->metrics_port) {
        pthread_t t;
        if (pthread_create(&t, NULL, health_thread, srv) == 0)
            pthread_detach(t);
    }
    if (rc == 0) {
        g_loop = srv->loop;
        catch_signals(srv);
        ar_log(AR_LOG_INFO, "signal_worker_ready", AR_LF_UINT("worker", index),
               AR_LF_UINT("port", (uint64_t)conf->port));
        rc = ar_sn_loop_run(srv->loop);
        g_loop = NULL;
        if (rc == 0 && g_stop)
            stop_gracefully(srv);
    } else {
        ar_log(AR_LOG_ERROR, "signal_worker_start_failed", AR_LF_ERR("err", rc));
    }
    /* Connections close with 4014 as the loop goes: sessions stay resumable on the backups. */
    for (ar__sig_conn_t *cn = srv->conns; cn; cn = cn->next)
        ar__sig_conn_close(cn, AR_SIG_CLOSE_SHUTDOWN);
    /* The loop first: its close callbacks still publish (sessions go away, resumable). */
    ar_sn_loop_free(srv->loop);
    ar__sig_move_stop(srv);
    ar__sig_addrs_free(&srv->addrs); /* after the loop: its closes release their counts */
    ar__sig_bus_stop(srv);
    ar__sig_invites_free(srv);
    ar__sig_frame_pool_free(srv);
    ar_sn_tls_ctx_free(tls);
    ar_token_keyring_wipe(&srv->keys);
    /* The metrics registry stays: the operator thread may still read it until exit. */
    pthread_sigmask(SIG_SETMASK, &caller, NULL);
    return rc;
}
