/*
 * What a signalling worker reads from the NATS bus (docs/signal.md, "Fuzzing the bus"): record
 * updates (sess/room/area), worker-to-worker messages (proc.<worker>: hand-over, backup adopt,
 * res, got, numbered copies and their batches, the ended rooms' catch-up pages), heartbeats and
 * departures (node), invite claims and ended markers (inv.<hash>) and frames (to.<peer>), from a
 * corrupted or hostile NATS peer or another version of the worker.
 *
 * Two workers (ids 1 on node-a and 3 on node-b, each having heard the other and worker 2 of
 * node-a) are made for each input, fed, and freed with everything they hold, so an input's
 * outcome never depends on the inputs before it. Each message goes in where libnats' callback
 * puts it (ar__sig_bus_put, bus.c on_msg) and is taken as the loop's wake-up takes it
 * (ar__sig_bus_take). What the workers publish is caught (natsConnection_Publish below, in place
 * of libnats') and delivered to the workers subscribed to its subject, a few rounds after each
 * message, so that a record, an adopt or a hand-over answer meets the other worker's state.
 *
 * The input is a sequence of at most OPS_MAX operations, each:
 *   op (1 byte): bits 0-2 the subject kind: 0 node, 1 sess.<peer>, 2 room.<room>,
 *     3 area.<clinic>.<area>, 4 to.<peer>, 5 proc.<worker>, 6 inv.<hash>, 7 no message (below);
 *     bit 3 the worker (0: worker 1, 1: worker 3); bits 4-5 the key (peer, room, area) among
 *     four fixed ones;
 *   length (2 bytes, little endian, cut to what is left), then the payload.
 * Kind 7 with bit 7 clear ignores its payload: bit 6 clear, the worker gets an away session of
 * peer <key> that it owns, as a client whose connection dropped leaves it (resume secret: the
 * peer id, '.', twenty 'r'; subject hash zero; the records of others name it only if the input
 * says so); bit 6 set, the worker's tick runs (heartbeat, sessions' sweep).
 * Kind 7 with bit 7 set is a client of the worker (client_op): one that connects and resumes
 * <key>'s session (LIVE on a session the worker owns, or RESUMING while it asks the owner on
 * another worker), hangs up or sends a frame; or the worker starts draining. Each client is one
 * end of a socketpair whose other end the worker's loop adopted (ar_sn_loop_adopt: the real
 * upgrade, srv.c's callbacks); the loops take a turn after each operation (ar_sn_loop_turn:
 * output flushed, closed connections freed, as between two waits of a running loop), so
 * deliveries, replays, hand-overs, ends and removals reach real connections. What each client
 * reads is checked as a browser would take it: well-formed WebSocket frames from a server (UTF-8
 * text included, src/proto/ws), each text frame one the protocol's parser takes as a server
 * frame (src/proto/signal), numbered ones in order, or a relayed frame whose body came from the
 * bus as it is (only its seq and fid spliced); nothing after a close frame. Every connection is
 * closed at the end of an input (4014, as a stopping worker closes them) and every socket with
 * it.
 * Beyond "no crash, no leak": after each operation the links between records, rooms, waiting
 * areas and local sessions agree (check_links), and once everything is freed the worker counts no
 * room, session, connection or frame left (purge.c's about counts) and no descriptor is left
 * open, so a message that corrupts them shows.
 */
#include "bus_internal.h"
#include "internal.h"

#include "anteroom/alloc.h"
#include "anteroom/log.h"
#include "anteroom/token.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <nats/nats.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define OPS_MAX 24
#define ROUNDS 4
#define CAUGHT_MAX 64
#define NWORKERS 2

static const uint64_t worker_id[NWORKERS] = {1, 3};
/* What the harness signs the tokens of moved hellos with; the workers hold its public half. */
static ar_token_key_t signing_key;
static const char *const node_of[NWORKERS] = {"node-a", "node-b"};
static const char *const peers[4] = {"AAAAAAAAAAAAAAAAAAAAAA", "BBBBBBBBBBBBBBBBBBBBBB",
                                     "CCCCCCCCCCCCCCCCCCCCCC", "DDDDDDDDDDDDDDDDDDDDDD"};
static const char *const rooms[4] = {"room-1", "room-2", "room-3", "room-4"};
static const char *const areas[4] = {"clinic-1.area-1", "clinic-1.area-2", "clinic-2.area-1",
                                     "clinic-2.area-2"};

typedef struct worker_s {
    ar__sig_srv_t *srv;
    ar_signal_conf_t conf;
    char conn_tag;  /* its fake connections' address: what publishes tells the worker apart */
    int move_fd[2]; /* a link moves come on: the worker's end (0), the other worker's (1) */
} worker_t;

static worker_t workers[NWORKERS];

typedef struct caught_s {
    int from;
    char *subj;
    char *data;
    size_t len;
} caught_t;

static caught_t caught[CAUGHT_MAX];
static size_t ncaught;
static char subscription_tag; /* what natsConnection_Subscribe hands out */

/* ---- libnats, stood in for: subscriptions succeed, publications are caught ---- */

natsStatus natsConnection_Publish(natsConnection *nc, const char *subj, const void *data,
                                  int dataLen)
{
    int from = -1;
    for (int i = 0; i < NWORKERS; i++)
        if ((const void *)nc == (const void *)&workers[i].conn_tag)
            from = i;
    if (from < 0 || ncaught == CAUGHT_MAX || dataLen < 0)
        return NATS_OK; /* beyond: lost, as a bus may lose it */
    caught_t *c = &caught[ncaught];
    c->subj = ar_strndup(subj, strlen(subj));
    c->data = ar_malloc((size_t)dataLen + 1);
    if (!c->subj || !c->data) {
        ar_free(c->subj);
        ar_free(c->data);
        return NATS_NO_MEMORY;
    }
    memcpy(c->data, data, (size_t)dataLen);
    c->len = (size_t)dataLen;
    c->from = from;
    ncaught++;
    return NATS_OK;
}

natsStatus natsConnection_Subscribe(natsSubscription **sub, natsConnection *nc, const char *subject,
                                    natsMsgHandler cb, void *cbClosure)
{
    (void)nc;
    (void)subject;
    (void)cb;
    (void)cbClosure;
    *sub = (natsSubscription *)&subscription_tag;
    return NATS_OK;
}

natsStatus natsSubscription_SetPendingLimits(natsSubscription *sub, int msgLimit, int bytesLimit)
{
    (void)sub;
    (void)msgLimit;
    (void)bytesLimit;
    return NATS_OK;
}

natsStatus natsSubscription_Unsubscribe(natsSubscription *sub)
{
    (void)sub;
    return NATS_OK;
}

void natsSubscription_Destroy(natsSubscription *sub)
{
    (void)sub;
}

/* ---- the workers ---- */

static void heard(ar__sig_srv_t *srv, uint64_t id, const char *name)
{
    ar__sig_node_t *n = &srv->nodes[srv->nnodes++];
    *n = (ar__sig_node_t){.id = id, .seen_ms = mono_ms()};
    snprintf(n->name, sizeof(n->name), "%s", name);
}

static int worker_new(worker_t *w, int i)
{
    static const char *const origins[] = {"https://app.example.org"};
    static const ar_ws_upgrade_conf_t up = {origins, 1, 0, AR_SIG_SUBPROTOCOL};
    ar_sn_handler_t h;
    ar_sn_conf_t nc = {
        .upgrade = &up, .max_message = AR_SIG_FRAME_MAX, .conn_area = sizeof(ar__sig_conn_t)};
    w->conf.jurisdiction = (char *)"eu";
    w->conf.node_name = (char *)node_of[i];
    w->conf.grace = 30000;
    static char *drain_urls[] = {(char *)"wss://other.example.org/signal"};
    w->conf.drain_urls = (ar_conf_list_t){drain_urls, 1};
    w->conf.drain_within = 10000;
    w->move_fd[0] = w->move_fd[1] = -1;
    w->srv = ar_calloc(1, sizeof(*w->srv));
    if (!w->srv)
        return -1;
    ar__sig_srv_t *srv = w->srv;
    srv->conf = &w->conf;
    srv->node_id = worker_id[i];
    ar__sig_net_handler(srv, &h);
    if (ar_sn_loop_new(&nc, &h, &srv->loop) != 0 || ar__sig_bus_new(srv) != 0)
        return -1;
    /* Both connections are the worker's tag: what it publishes is caught, and known as its. */
    srv->bus->nc = (natsConnection *)&w->conn_tag;
    srv->bus->pnc = (natsConnection *)&w->conn_tag;
    ar__sig_rooms_ended_begin(srv, 0, mono_ms(), AR__SIG_ENDED_HEAR_MS);
    heard(srv, 1, "node-a");
    heard(srv, 2, "node-a");
    heard(srv, 3, "node-b");
    ar_token_key_t pub = signing_key;
    memset(pub.sk, 0, sizeof(pub.sk));
    pub.has_sk = 0;
    return ar_token_keyring_add(&srv->keys, &pub);
}

/* The harness's own scans of every bucket are not what the fuzzer should learn from (nor spend
 * its time in): left out of the coverage instrumentation. */
#if defined(__clang__)
#define NO_COVERAGE __attribute__((no_sanitize("coverage")))
#else
#define NO_COVERAGE
#endif

static const uint32_t zeros[1024];

NO_COVERAGE static void check_empty(const ar__sig_srv_t *srv)
{
    if (srv->locals || srv->nrooms || srv->nsessions || srv->nclinics)
        __builtin_trap();
    for (size_t i = 0; i < 65536; i += 1024)
        if (memcmp(&srv->about_n[i], zeros, sizeof(zeros)) != 0)
            __builtin_trap();
}

/* The links between records, rooms, areas and local sessions agree with each other. */
NO_COVERAGE static void check_links(ar__sig_srv_t *srv)
{
    const size_t block = sizeof(zeros) / (sizeof(srv->recs[0]));
    for (size_t at = 0; at < ar__sig_rec_buckets(srv); at += block) {
        if (memcmp(&srv->recs[at], zeros, sizeof(zeros)) == 0)
            continue;
        for (size_t b = at; b < at + block; b++)
            for (ar__sig_rec_t *r = srv->recs[b]; r; r = r->hnext) {
                if (ar__sig_rec_find(srv, r->peer) != r || (r->local && r->local->rec != r) ||
                    r->q->nsubs > AR__SIG_SUBS_MAX)
                    __builtin_trap();
                if (r->in_room) {
                    const ar__sig_room_t *room = r->in_room;
                    size_t seen = 0;
                    for (size_t i = 0; i < room->nmembers; i++)
                        seen += ar__sig_room_member(room, i) == r;
                    if (seen != 1 || ar__sig_room_find(srv, room->id) != room)
                        __builtin_trap();
                }
                if (r->q->in_area) {
                    const ar__sig_area_t *a = r->q->in_area;
                    size_t seen = 0;
                    for (size_t i = 0; i < a->npatients; i++)
                        seen += a->patients[i] == r;
                    if (seen != 1)
                        __builtin_trap();
                }
            }
    }
    size_t nrooms = 0, named = 0;
    const ar__sig_room_t *seen_rooms[64];
    for (size_t b = 0; b < AR__SIG_SMALL_BUCKETS; b++) {
        for (const ar__sig_room_t *room = srv->rooms[b]; room; room = room->hnext, nrooms++) {
            if (nrooms < sizeof(seen_rooms) / sizeof(seen_rooms[0]))
                seen_rooms[nrooms] = room;
            if (room->nmembers == 0 || room->nmembers > 2 * AR__SIG_ROOM_MAX)
                __builtin_trap();
            for (size_t i = 0; i < room->nmembers; i++)
                if (ar__sig_room_member(room, i)->in_room != room)
                    __builtin_trap();
            named += ar__sig_room_clinic(room)[0] != '\0';
        }
        for (const ar__sig_area_t *a = srv->areas[b]; a; a = a->hnext)
            for (size_t i = 0; i < a->npatients; i++)
                if (a->patients[i]->q->in_area != a)
                    __builtin_trap();
    }
    if (nrooms != srv->nrooms)
        __builtin_trap();
    /* Each clinic's copy is named by as many rooms as it counts, and by some; every room's
     * clinic is one of them (up to 64 rooms: the fuzzer's inputs make a few). */
    size_t refs = 0, nclinics = 0;
    for (size_t b = 0; b < AR__SIG_CLINIC_BUCKETS && nrooms <= 64; b++) {
        for (const ar__sig_clinic_t *c = srv->clinics[b]; c; c = c->hnext, nclinics++) {
            size_t n = 0;
            for (size_t i = 0; i < nrooms; i++)
                n += ar__sig_room_clinic(seen_rooms[i]) == c->id;
            if (n == 0 || n != c->refs)
                __builtin_trap();
            refs += n;
        }
    }
    if (nrooms <= 64 && (refs != named || nclinics != srv->nclinics))
        __builtin_trap();
    for (const ar__sig_sess_t *x = srv->locals; x; x = x->lnext) {
        if (x->rec->local != x || (x->lnext && x->lnext->lprev != x))
            __builtin_trap();
        uint32_t nf = 0, np = 0;
        const ar__sig_frame_t *last = NULL;
        for (const ar__sig_frame_t *f = x->head; f; f = f->next, nf++)
            last = f;
        if (nf != x->nframes || last != x->tail)
            __builtin_trap();
        last = NULL;
        for (const ar__sig_frame_t *f = x->cold->pending; f; f = f->next, np++)
            last = f;
        if (np != x->cold->npending || last != x->cold->pending_tail)
            __builtin_trap();
    }
}

NO_COVERAGE static void free_records(ar__sig_srv_t *srv)
{
    const size_t block = sizeof(zeros) / (sizeof(srv->recs[0]));
    for (size_t at = 0; at < ar__sig_rec_buckets(srv); at += block) {
        if (memcmp(&srv->recs[at], zeros, sizeof(zeros)) == 0)
            continue;
        for (size_t b = at; b < at + block; b++)
            while (srv->recs[b])
                ar__sig_rec_free(srv, srv->recs[b]);
    }
}

static void worker_free(worker_t *w)
{
    ar__sig_srv_t *srv = w->srv;
    if (!srv)
        return;
    /* The loop first, as srv.c's worker stops: its close callbacks still publish. */
    ar_sn_loop_free(srv->loop);
    srv->loop = NULL;
    if (srv->conns)
        __builtin_trap();
    for (int i = 0; i < 2; i++)
        if (w->move_fd[i] >= 0)
            close(w->move_fd[i]);
    ar__sig_addrs_free(&srv->addrs); /* what moved connections were counted under */
    ar_token_keyring_wipe(&srv->keys);
    free_records(srv);
    ar__sig_recs_free(srv);
    check_empty(srv);
    if (srv->bus) {
        srv->bus->nc = srv->bus->pnc = NULL; /* nothing to close: they were never connected */
        ar__sig_bus_stop(srv);
    }
    ar__sig_invites_free(srv);
    json_decref(srv->qt);
    json_decref(srv->left_told);
    ar__sig_frame_pool_free(srv);
    ar_free(srv);
    w->srv = NULL;
}

/* ---- feeding ---- */

static void take(worker_t *w)
{
    ar__sig_bus_take(w->srv);
}

/* Delivers what was caught to each worker subscribed to its subject, as NATS would. */
static void deliver_caught(void)
{
    for (int round = 0; round < ROUNDS && ncaught; round++) {
        caught_t batch[CAUGHT_MAX];
        size_t n = ncaught;
        memcpy(batch, caught, n * sizeof(caught[0]));
        ncaught = 0;
        for (size_t i = 0; i < n; i++) {
            for (int j = 0; j < NWORKERS; j++) {
                ar__sig_srv_t *srv = workers[j].srv;
                const char *peer;
                uint8_t kind = ar__sig_bus_subj_kind(srv->bus, batch[i].subj, &peer);
                int to_me = 1;
                if (kind == K_PROC) {
                    char mine[128];
                    snprintf(mine, sizeof(mine), "%sproc.%016llx", srv->bus->prefix,
                             (unsigned long long)srv->node_id);
                    to_me = strcmp(batch[i].subj, mine) == 0;
                } else if (kind == K_TO) {
                    /* to.<owner tag>.<backup tag>.<peer>: by a tag, or by the session's own
                     * subscription (bus.c) */
                    unsigned o = 0, bk = 0, me = ar__sig_worker_tag(srv->node_id);
                    const char *t = batch[i].subj + srv->bus->plen + 3;
                    int tagged = sscanf(t, "%8x.%8x.", &o, &bk) == 2 && (o == me || bk == me);
                    ar__sig_rec_t *r = ar__sig_rec_find(srv, peer);
                    to_me = tagged || (r && r->local && r->local->cold->sub_to);
                }
                if (to_me)
                    ar__sig_bus_put(srv->bus, batch[i].subj, batch[i].data, batch[i].len);
            }
            ar_free(batch[i].subj);
            ar_free(batch[i].data);
        }
        for (int j = 0; j < NWORKERS; j++)
            take(&workers[j]);
    }
}

static void forget_caught(void)
{
    for (size_t i = 0; i < ncaught; i++) {
        ar_free(caught[i].subj);
        ar_free(caught[i].data);
    }
    ncaught = 0;
}

/* Kind 7: an away session that w owns, or w's tick. */
static void special(worker_t *w, int key, int tick)
{
    ar__sig_srv_t *srv = w->srv;
    if (tick) {
        ar__sig_bus_heartbeat(srv);
        ar__sig_sess_tick(srv);
        return;
    }
    ar__sig_rec_t *r = ar__sig_rec_get(srv, peers[key]);
    if (!r || r->local)
        return;
    r->owner = srv->node_id;
    r->away = 1;
    ar__sig_sess_t *s = ar__sig_sess_local_new(srv, r, 0, NULL);
    if (s) {
        /* A known secret (the peer id, '.', twenty 'r'; subject hash zero), so that a "take"
         * in the input can present it and a hand-over goes through. */
        ar__sig_sess_away_now(s, srv->now);
        char text[AR__SIG_RESUME_LEN + 1];
        snprintf(text, sizeof(text), "%s.rrrrrrrrrrrrrrrrrrrr", peers[key]);
        if (ar__sig_sess_resume_set(s, text) != 0)
            __builtin_trap();
    }
}

/* ---- clients: a socketpair each, the worker's end adopted by its loop ---- */

#define CLIENTS_MAX 8
#define FAR_EXP 4102444800 /* 2100-01-01: tokens that stay valid for the corpus's life */

typedef struct client_s {
    int fd; /* the client's end; -1: a free slot */
    int w, key;
    int closed;  /* a close frame came: nothing may follow it */
    int64_t seq; /* the last numbered frame it got */
    ar_ws_parser_t p;
    uint8_t op; /* of the message being read */
    size_t len;
    uint8_t msg[AR_SIG_OUT_MAX + 64];
} client_t;

static client_t clients[CLIENTS_MAX];
/* FUZZ_SIGNAL_BUS_TRACE set: every message a client reads is printed (what a seed reaches). */
static int trace;

/* One turn of w's loop: what its clients sent, its output flushed, the connections closed in it
 * freed (srv.c on_free: a session goes away, which publishes). */
static void turn(worker_t *w)
{
    if (ar_sn_loop_turn(w->srv->loop) != 0)
        __builtin_trap();
}

/* A complete message from the worker: a text frame the protocol's own parser takes as a server
 * frame, numbered ones in order; or a relayed frame, whose body is what a bus peer sent (only
 * its splice is the worker's, sess.c ar__sig_frame_wire); or a close frame, the last. */
NO_COVERAGE static void client_message(client_t *cl)
{
    if (trace)
        fprintf(stderr, "client %d of worker %d: op %u: %.*s\n", cl->key, cl->w, cl->op,
                cl->op == AR_WS_OP_CLOSE ? 0 : (int)cl->len, (const char *)cl->msg);
    if (cl->closed)
        __builtin_trap(); /* a frame after the close frame */
    if (cl->op == AR_WS_OP_CLOSE) {
        uint16_t code;
        const uint8_t *reason;
        size_t rlen;
        if (ar_ws_close_parse(cl->msg, cl->len, &code, &reason, &rlen) != 0)
            __builtin_trap();
        cl->closed = 1;
        return;
    }
    if (cl->op != AR_WS_OP_TEXT)
        __builtin_trap(); /* the worker sends text, and close frames; pings only from its tick */
    ar_sig_msg_t m;
    ar_sig_err_t err;
    if (ar_sig_parse(AR_SIG_FROM_SERVER, (const char *)cl->msg, cl->len, &m, &err) == 0) {
        if (m.seq > 0 && m.seq <= cl->seq)
            __builtin_trap(); /* a connection gets its session's frames in order, once */
        if (m.seq > 0)
            cl->seq = m.seq;
        ar_sig_msg_free(&m);
        return;
    }
    cl->msg[cl->len < sizeof(cl->msg) ? cl->len : sizeof(cl->msg) - 1] = '\0';
    if (!strstr((const char *)cl->msg, ",\"fid\":\""))
        __builtin_trap(); /* the worker's own frame, malformed */
}

/* Reads what the worker sent cl, checking each frame; at EOF the client closes its end. */
NO_COVERAGE static void client_drain(client_t *cl)
{
    uint8_t buf[16384];
    for (;;) {
        ssize_t n = recv(cl->fd, buf, sizeof(buf), 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            close(cl->fd);
            cl->fd = -1;
            return;
        }
        /* Parsed until the parser asks for more: the event that ends a frame may come with
         * nothing left to consume. */
        for (size_t off = 0;;) {
            size_t used = 0;
            ar_ws_event_t ev;
            if (ar_ws_parse(&cl->p, buf + off, (size_t)n - off, &used, &ev) != 0)
                __builtin_trap(); /* not a well-formed WebSocket stream from a server */
            off += used;
            if (ev.type == AR_WS_EV_FRAME_START) {
                if (ev.opcode != AR_WS_OP_CONT) {
                    cl->op = ev.opcode;
                    cl->len = 0;
                }
            } else if (ev.type == AR_WS_EV_DATA) {
                if (ev.len > sizeof(cl->msg) - cl->len)
                    __builtin_trap(); /* larger than a server frame may be */
                memcpy(cl->msg + cl->len, ev.data, ev.len);
                cl->len += ev.len;
            } else if (ev.type == AR_WS_EV_FRAME_END && (ev.msg_end || (cl->op & 8))) {
                client_message(cl);
            } else if (ev.type == AR_WS_EV_NEED_MORE) {
                break;
            }
        }
    }
}

static void clients_drain(void)
{
    for (int i = 0; i < CLIENTS_MAX; i++)
        if (clients[i].fd >= 0)
            client_drain(&clients[i]);
}

/* The newest client of w for peer key, or NULL. */
static client_t *client_of(int w, int key)
{
    for (int i = CLIENTS_MAX - 1; i >= 0; i--)
        if (clients[i].fd >= 0 && clients[i].w == w && clients[i].key == key)
            return &clients[i];
    return NULL;
}

/* What the token of a client of peer key says: its subject "subject-<key>" (hashed into the
 * sessions the harness makes, so that its resume and a "take" presenting it go through), the
 * role, a patient's room and waiting area, staff's two clinics. */
static void claims_of(ar_token_claims_t *cl, int key, int role)
{
    memset(cl, 0, sizeof(*cl));
    snprintf(cl->aud, sizeof(cl->aud), "signal");
    snprintf(cl->sub, sizeof(cl->sub), "subject-%d", key);
    snprintf(cl->jur, sizeof(cl->jur), "eu");
    cl->role = (ar_token_role_t)role;
    if (role == AR_TOKEN_STAFF) {
        for (int i = 0; i < 2; i++) {
            snprintf(cl->clinics[i].id, sizeof(cl->clinics[i].id), "clinic-%d", i + 1);
            snprintf(cl->clinics[i].roles[0], sizeof(cl->clinics[i].roles[0]), "provider");
            cl->clinics[i].nroles = 1;
        }
        cl->nclinics = 2;
    } else {
        snprintf(cl->room, sizeof(cl->room), "%s", rooms[key]);
        snprintf(cl->clinic, sizeof(cl->clinic), "clinic-1");
        snprintf(cl->area, sizeof(cl->area), "area-1");
    }
    cl->iat = (int64_t)time(NULL);
    cl->exp = FAR_EXP;
}

/* The record of key's client (made when w has none), its role the record's or else payload byte
 * 1's (1 patient, 2 staff, 3 invitee), and the claims of its token; NULL without memory. */
static ar__sig_rec_t *client_record(ar__sig_srv_t *srv, int key, const uint8_t *p, size_t len,
                                    ar_token_claims_t *claims)
{
    int role = len > 1 ? p[1] % 3 + 1 : AR_TOKEN_PATIENT;
    ar__sig_rec_t *r = ar__sig_rec_get(srv, peers[key]);
    if (!r)
        return NULL;
    if (r->role >= AR_TOKEN_PATIENT && r->role <= AR_TOKEN_INVITEE)
        role = r->role;
    r->role = (unsigned)role & 3u;
    claims_of(claims, key, role);
    return r;
}

/* A client slot for a connection the worker holds from now on: fd is the client's end. */
static void client_add(int fd, int wi, int key)
{
    client_t *cl = NULL;
    for (int i = 0; i < CLIENTS_MAX && !cl; i++)
        if (clients[i].fd < 0)
            cl = &clients[i];
    if (!cl) {
        close(fd);
        return;
    }
    memset(cl, 0, offsetof(client_t, msg));
    cl->fd = fd;
    cl->w = wi;
    cl->key = key;
    ar_ws_parser_init(&cl->p, 0, sizeof(cl->msg));
}

/* A WebSocket client of w on a socketpair: upgraded through the worker's loop (the 101 read),
 * its connection (srv.c on_open) returned; NULL when no slot is free. */
static ar__sig_conn_t *client_new(worker_t *w, int wi, int key)
{
    static const char req[] =
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Origin: https://app.example.org\r\n"
        "Sec-WebSocket-Protocol: " AR_SIG_SUBPROTOCOL "\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n";
    client_t *cl = NULL;
    for (int i = 0; i < CLIENTS_MAX && !cl; i++)
        if (clients[i].fd < 0)
            cl = &clients[i];
    int sv[2];
    if (!cl || socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        return NULL;
    ar__sig_srv_t *srv = w->srv;
    const ar__sig_conn_t *before = srv->conns;
    if (ar_sn_loop_adopt(srv->loop, sv[0]) != 0 ||
        send(sv[1], req, sizeof(req) - 1, MSG_NOSIGNAL) != (ssize_t)sizeof(req) - 1)
        __builtin_trap();
    turn(w);
    char resp[256];
    ssize_t n = recv(sv[1], resp, sizeof(resp) - 1, 0);
    ar__sig_conn_t *cn = srv->conns;
    if (n < 12 || memcmp(resp, "HTTP/1.1 101", 12) != 0 || !cn || cn == before ||
        cn->state != AR__SIG_C_HELLO)
        __builtin_trap();
    resp[n] = '\0';
    if (strcmp(resp + n - 4, "\r\n\r\n") != 0)
        __builtin_trap();
    client_add(sv[1], wi, key);
    return cn;
}

/* A hello resuming key's session (the secret kind 7 gives), its token signed by the harness:
 * the text's length, 0 when it does not fit. */
static size_t moved_hello(const ar_token_claims_t *claims, int key, int64_t last_seq, char *out,
                          size_t cap)
{
    char token[2048];
    if (ar_token_mint(&signing_key, claims, token, sizeof(token)) < 0)
        return 0;
    int n = snprintf(out, cap,
                     "{\"v\":1,\"type\":\"hello\",\"token\":\"%s\",\"resume\":"
                     "\"%s.rrrrrrrrrrrrrrrrrrrr\",\"last_seq\":%lld}",
                     token, peers[key], (long long)last_seq);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/*
 * Sub-op 5: a connection moved to w by another worker of its node (move.c): the worker's end of
 * a socketpair and a datagram go over a socketpair standing for w's move socket, and w takes
 * them as its loop does (ar__sig_move_take). Payload byte 3 (1 when absent):
 *   bits 0-1: how many descriptors go with the datagram (a worker sends 1);
 *   bit 2: it comes with the credentials of another user (refused: only the worker's own user
 *     may hand it connections; skipped where the harness may not claim another user);
 *   bit 3: the rest of the payload (from byte 4) is the datagram as it is, header included;
 *     else a header as a worker writes it (bit 4: counted under an address), then the rest as
 *     the hello's text, or with no rest a hello resuming key's session that w owns (made away
 *     first as kind 7 makes one) with a token the harness signs for the role of byte 1.
 * A connection w opened from it is a client from then on, read and checked as any other.
 */
static void moved_op(worker_t *w, int wi, int key, const uint8_t *p, size_t len)
{
    static const uint8_t addr[16] = {0x20, 0x01, 0x0d, 0xb8};
    static uint8_t dgram[AR__SIG_MOVE_HEAD + AR_SIG_FRAME_MAX];
    ar__sig_srv_t *srv = w->srv;
    uint8_t flags = len > 3 ? p[3] : 1;
    const uint8_t *rest = p + (len > 4 ? 4 : len);
    size_t nrest = len > 4 ? len - 4 : 0, n;
    if (nrest > sizeof(dgram) - AR__SIG_MOVE_HEAD)
        nrest = sizeof(dgram) - AR__SIG_MOVE_HEAD;
    if (flags & 8) {
        memcpy(dgram, rest, nrest);
        n = nrest;
    } else {
        n = ar__sig_move_head(dgram, (flags & 16) ? addr : NULL);
        memcpy(dgram + n, rest, nrest);
        if (nrest) {
            n += nrest;
        } else {
            ar_token_claims_t claims;
            ar__sig_rec_t *r = client_record(srv, key, p, len, &claims);
            if (!r)
                return;
            claims.exp = claims.iat + 3600; /* a minted token's lifetime is bounded */
            if (!r->local)
                special(w, key, 0);
            if (r->local)
                ar__sig_subhash(&claims, r->local->subhash);
            n +=
                moved_hello(&claims, key, len > 2 ? p[2] : 0, (char *)dgram + n, sizeof(dgram) - n);
        }
    }
    if (w->move_fd[0] < 0) {
        int one = 1;
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, w->move_fd) !=
                0 ||
            setsockopt(w->move_fd[0], SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) != 0)
            __builtin_trap();
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        __builtin_trap();
    union {
        char b[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(3 * sizeof(int))];
        struct cmsghdr align;
    } ctl;
    memset(&ctl, 0, sizeof(ctl));
    struct iovec iov = {dgram, n};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b};
    size_t clen = 0;
    int nfd = flags & 3;
    if (nfd) {
        struct cmsghdr *cm = (struct cmsghdr *)ctl.b;
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN((size_t)nfd * sizeof(int));
        for (int i = 0; i < nfd; i++)
            memcpy(CMSG_DATA(cm) + (size_t)i * sizeof(int), &sv[0], sizeof(int));
        clen = CMSG_SPACE((size_t)nfd * sizeof(int));
    }
    if (flags & 4) {
        struct cmsghdr *cm = (struct cmsghdr *)(ctl.b + clen);
        struct ucred uc = {.pid = getpid(), .uid = 65534, .gid = 65534};
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_CREDENTIALS;
        cm->cmsg_len = CMSG_LEN(sizeof(uc));
        memcpy(CMSG_DATA(cm), &uc, sizeof(uc));
        clen += CMSG_SPACE(sizeof(uc));
    }
    mh.msg_controllen = clen;
    if (clen == 0)
        mh.msg_control = NULL;
    const ar__sig_conn_t *before = srv->conns;
    int sent = sendmsg(w->move_fd[1], &mh, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0;
    close(sv[0]); /* the worker holds its own copy now, if it came */
    if (sent)
        (void)ar__sig_move_take(srv, w->move_fd[0], 4); /* -1 never: the harness holds [1] */
    if (srv->conns != before)
        client_add(sv[1], wi, key);
    else
        close(sv[1]);
    turn(w);
}

/*
 * Kind 7 with bit 7 set: a client of w for peer key (payload byte 0, modulo 5):
 *  0: connects and resumes key's session, which w owns (made away first when w has none, as
 *     kind 7 makes one, with the client's subject): LIVE, welcomed and replayed through the
 *     connection;
 *  1: connects and resumes key's session as it stands here (a record made new names the
 *     other worker its owner): RESUMING while it asks that owner ("take"), or LIVE;
 *  2: the newest such client hangs up (its connection goes at the loop's next turn);
 *  3: the newest such client sends the rest of the payload as a text frame;
 *  4: w starts draining (drain.c: its clients told to move, a batch now, welcomes after);
 *  5: a connection moves in from another worker of the node (moved_op).
 * Payload byte 1: the role (1 patient, 2 staff, 3 invitee) when the record has none; byte 2
 * the last_seq of the resume. The resume secret is the one kind 7 gives (the peer id, '.',
 * twenty 'r').
 */
static void client_op(worker_t *w, int wi, int key, const uint8_t *p, size_t len)
{
    ar__sig_srv_t *srv = w->srv;
    int sub = len ? p[0] % 6 : 0;
    if (sub == 4) {
        if (!srv->draining)
            ar__sig_drain_begin(srv, srv->now);
        ar__sig_drain_tick(srv);
        return;
    }
    if (sub == 5) {
        moved_op(w, wi, key, p, len);
        return;
    }
    if (sub >= 2) {
        client_t *cl = client_of(wi, key);
        if (!cl)
            return;
        if (sub == 2) {
            close(cl->fd);
            cl->fd = -1;
        } else {
            static const uint8_t mask[4] = {0x5a, 0xa5, 0x3c, 0xc3};
            uint8_t frame[AR_WS_MAX_HEADER + 1024];
            size_t n = len - 1 < 1024 ? len - 1 : 1024;
            size_t h = ar_ws_frame_header(frame, AR_WS_OP_TEXT, 1, n, mask);
            memcpy(frame + h, p + 1, n);
            ar_ws_mask(frame + h, n, mask, 0);
            (void)send(cl->fd, frame, h + n, MSG_NOSIGNAL);
        }
        turn(w);
        return;
    }
    int64_t last_seq = len > 2 ? p[2] : 0;
    int known = ar__sig_rec_find(srv, peers[key]) != NULL;
    ar_token_claims_t claims;
    ar__sig_rec_t *r = client_record(srv, key, p, len, &claims);
    if (!r)
        return;
    if (sub == 0 && !r->local) {
        special(w, key, 0);
        if (r->local)
            ar__sig_subhash(&claims, r->local->subhash);
    } else if (sub == 1 && !known) {
        r->owner = worker_id[!wi];
    }
    ar__sig_conn_t *cn = client_new(w, wi, key);
    if (!cn)
        return;
    char resume[AR__SIG_RESUME_LEN + 1];
    snprintf(resume, sizeof(resume), "%s.rrrrrrrrrrrrrrrrrrrr", peers[key]);
    int rc = ar__sig_resume_start(cn, &claims, resume, last_seq);
    if (rc != 0) /* as srv.c's hello tells a client its resume failed, but with no new session */
        ar__sig_refuse(cn, AR_SIG_E_RESUME_FAILED, NULL, AR_SIG_HELLO, AR_SIG_NONE,
                       AR_SIG_CLOSE_SHUTDOWN);
}

static void feed(worker_t *w, int kind, int key, const uint8_t *p, size_t len)
{
    char subj[128];
    const char *prefix = w->srv->bus->prefix;
    switch (kind) {
    case 0:
        snprintf(subj, sizeof(subj), "%snode", prefix);
        break;
    case 1:
        snprintf(subj, sizeof(subj), "%ssess.%s", prefix, peers[key]);
        break;
    case 2:
        snprintf(subj, sizeof(subj), "%sroom.%s", prefix, rooms[key]);
        break;
    case 3:
        snprintf(subj, sizeof(subj), "%sarea.%s", prefix, areas[key]);
        break;
    case 4:
        snprintf(subj, sizeof(subj), "%sto.%s", prefix, peers[key]);
        break;
    case 5:
        snprintf(subj, sizeof(subj), "%sproc.%016llx", prefix, (unsigned long long)w->srv->node_id);
        break;
    default:
        snprintf(subj, sizeof(subj), "%sinv.%032x", prefix, (unsigned)key);
        break;
    }
    ar__sig_bus_put(w->srv->bus, subj, p, len);
    take(w);
}

/* After each operation: what was published delivered, the loops turned (their output flushed,
 * the connections closed freed) and the clients' input read, twice, as what one turn frees
 * publishes (a session goes away), and a delivery may write to a client. */
static int connected; /* a client was made in this input: the loops have turns to take */

static void settle(void)
{
    for (int round = 0; round < 2 && connected; round++) {
        deliver_caught();
        for (int i = 0; i < NWORKERS; i++)
            turn(&workers[i]);
        clients_drain();
    }
    deliver_caught();
}

/* The end of an input: every connection closed as a stopping worker closes them (4014), each
 * client reads its close frame and hangs up, the loops take that in; the rest goes with the
 * loops (worker_free). */
static void clients_end(void)
{
    if (!connected)
        return;
    for (int i = 0; i < NWORKERS; i++)
        for (ar__sig_conn_t *cn = workers[i].srv->conns; cn; cn = cn->next)
            ar__sig_conn_close(cn, AR_SIG_CLOSE_SHUTDOWN);
    settle();
    for (int i = 0; i < CLIENTS_MAX; i++) {
        if (clients[i].fd >= 0)
            close(clients[i].fd);
        clients[i].fd = -1;
    }
}

/* Which of the 64 descriptors from the lowest free one are open: the same after an input as
 * before it, or the input left one open (an input opens fewer than 64: two loops' epoll,
 * eventfd and spare descriptors, and a socketpair per client). */
NO_COVERAGE static uint64_t fds_open(int *from)
{
    if (*from < 0) {
        *from = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 0);
        if (*from >= 0)
            close(*from);
    }
    uint64_t open_fds = 0;
    for (int i = 0; i < 64 && *from >= 0; i++)
        if (fcntl(*from + i, F_GETFD) >= 0)
            open_fds |= 1ull << i;
    return open_fds;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        ar_sig_init();
        ar_log_init("fuzz",
                    (ar_log_level_t)(AR_LOG_ERROR + 1)); /* quiet: a message per input is noise */
        for (int i = 0; i < CLIENTS_MAX; i++)
            clients[i].fd = -1;
        trace = getenv("FUZZ_SIGNAL_BUS_TRACE") != NULL;
        if (ar_token_key_generate(&signing_key, "fuzz") != 0)
            __builtin_trap();
        ready = 1;
    }
    int fd_from = -1;
    uint64_t fds_before = fds_open(&fd_from);
    connected = 0;
    if (trace)
        fprintf(stderr, "input of %zu bytes\n", size);
    for (int i = 0; i < NWORKERS; i++) {
        if (worker_new(&workers[i], i) != 0) {
            for (int j = 0; j <= i; j++)
                worker_free(&workers[j]);
            return 0;
        }
    }
    size_t at = 0;
    for (int op = 0; op < OPS_MAX && at + 3 <= size; op++) {
        uint8_t b = data[at];
        size_t len = (size_t)data[at + 1] | (size_t)data[at + 2] << 8;
        at += 3;
        if (len > size - at)
            len = size - at;
        int wi = (b >> 3) & 1;
        worker_t *w = &workers[wi];
        int kind = b & 7, key = (b >> 4) & 3;
        if (kind == 7 && (b & 0x80)) {
            connected = 1;
            client_op(w, wi, key, data + at, len);
        } else if (kind == 7) {
            special(w, key, (b >> 6) & 1);
        } else {
            feed(w, kind, key, data + at, len);
        }
        at += len;
        settle();
        for (int i = 0; i < NWORKERS; i++)
            check_links(workers[i].srv);
    }
    clients_end();
    forget_caught();
    for (int i = 0; i < NWORKERS; i++)
        worker_free(&workers[i]);
    forget_caught(); /* what freeing the sessions published */
    if (fds_open(&fd_from) != fds_before)
        __builtin_trap(); /* a descriptor left open */
    return 0;
}
