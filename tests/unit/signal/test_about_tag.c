/*
 * A relay delivered at once is tagged with whom it is about by the code that built it (flows.c
 * on_relay, ar__sig_about_one), not by reading the frame back (purge.c). The purge finds frames
 * by that tag, so it must be exactly the tag the reading gives: for each frame a relay builds
 * (offer, answer, candidate), from a patient and from staff, through the worker's own handler.
 * And the purge still finds them: the patient's end redacts what it relayed to the staff
 * member. Without sockets or NATS: the bus's inbox alone, record updates caught at link time.
 * A relay of a frame the flat parse read, as srv.c reads a client's, goes out as the client's
 * bytes (ar_sig_build_relay), with no call of the builder (counted at link time), and is the
 * builder's frame byte for byte, tagged and purged the same.
 */
#include "internal.h"
#include "sig_util.h"

#include "anteroom/alloc.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define US 1u

static const char *const origins[] = {SU_ORIGIN};
static const ar_ws_upgrade_conf_t upconf = {origins, 1, 0, AR_SIG_SUBPROTOCOL};

void __wrap_ar__sig_bus_rec(ar__sig_srv_t *srv, const char *kind, const char *key, void *json_obj);
void __wrap_ar__sig_bus_rec(ar__sig_srv_t *srv, const char *kind, const char *key, void *json_obj)
{
    (void)srv;
    (void)kind;
    (void)key;
    json_decref(json_obj);
}

/* Calls of the builder: a relay read flat makes none. */
static int builds;
int __real_ar_sig_build(ar_sig_dir_t dir, const ar_sig_msg_t *msg, char *out, size_t cap);
int __wrap_ar_sig_build(ar_sig_dir_t dir, const ar_sig_msg_t *msg, char *out, size_t cap);
int __wrap_ar_sig_build(ar_sig_dir_t dir, const ar_sig_msg_t *msg, char *out, size_t cap)
{
    builds++;
    return __real_ar_sig_build(dir, msg, out, cap);
}

typedef struct fixture_s {
    ar_signal_conf_t conf;
    ar__sig_srv_t *srv;
    ar__sig_conn_t cn[2]; /* the patient's and the staff member's connections */
} fixture_t;

static ar_sig_str_t str(const char *s)
{
    return (ar_sig_str_t){s, strlen(s)};
}

/* Peer c in room-1, owned here with a session and a connection that is not live: the handler
 * takes its messages, and nothing is written to a socket. */
static ar__sig_sess_t *member(fixture_t *f, char c, ar_token_role_t role, ar__sig_conn_t *cn)
{
    ar__sig_rec_t *r = ar__sig_rec_get(f->srv, su_peer(c));
    assert_non_null(r);
    r->role = role == AR_TOKEN_PATIENT ? AR_SIG_ROLE_PATIENT : AR_SIG_ROLE_STAFF;
    r->owner = US;
    ar__sig_rec_set_room(f->srv, r, "room-1");
    assert_non_null(r->in_room);
    ar__sig_sess_t *s = ar__sig_sess_link_new(f->srv, r, 0);
    assert_non_null(s);
    ar_token_claims_t cl;
    su_claims(&cl, role, su_peer(c));
    s->claims = ar__sig_claims_new(&cl);
    assert_non_null(s->claims);
    su_conn_attach(cn, f->srv, s, AR__SIG_C_HELLO);
    return s;
}

static int setup(void **state)
{
    fixture_t *f = ar_calloc(1, sizeof(*f));
    assert_non_null(f);
    ar_sig_init();
    f->conf.jurisdiction = (char *)"eu";
    f->conf.node_name = (char *)"n1";
    f->srv = su_srv_new(US);
    f->srv->conf = &f->conf;
    ar_sn_conf_t nc = {.upgrade = &upconf, .conn_area = sizeof(ar__sig_conn_t)};
    ar_sn_handler_t h = {0};
    assert_int_equal(ar_sn_loop_new(&nc, &h, &f->srv->loop), 0);
    assert_int_equal(ar__sig_bus_new(f->srv), 0);
    member(f, 'p', AR_TOKEN_PATIENT, &f->cn[0]);
    member(f, 's', AR_TOKEN_STAFF, &f->cn[1]);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    su_recs_free(f->srv); /* the connections are the fixture's: their sessions let go of them */
    ar__sig_bus_stop(f->srv);
    ar_sn_loop_free(f->srv->loop);
    su_srv_free(f->srv);
    ar_free(f);
    return 0;
}

/* The tag reading f's body gives (purge.c), on a copy counted in a worker of its own. */
static uint16_t read_tag(const ar__sig_frame_t *f)
{
    ar__sig_srv_t *scratch = su_srv_new(9);
    ar__sig_frame_t *c = ar_malloc(sizeof(*c) + f->len + 1);
    assert_non_null(c);
    memcpy(c, f, sizeof(*c) + f->len + 1);
    ar__sig_about_tag(scratch, c, AR__SIG_ABOUT_READ);
    uint16_t t = c->about;
    ar_free(c);
    su_srv_free(scratch);
    return t;
}

/* Sender `from` (connection cn) relays a message of this type to `to` through the worker's
 * handler: the frame at the tail of to's buffer is it, tagged as reading it would tag it. */
static void relay(fixture_t *f, ar__sig_conn_t *cn, const char *to, int type)
{
    ar__sig_sess_t *dst = ar__sig_rec_find(f->srv, to)->local;
    int64_t seq = dst->seq;
    ar_sig_msg_t m;
    ar_sig_msg_init(&m, type);
    m.id = 5;
    if (type == AR_SIG_CANDIDATE) {
        m.u.cand.peer = str(to);
        m.u.cand.candidate = str("candidate:1 1 udp 2122260223 198.51.100.77 54400 typ host");
        m.u.cand.mid = str("0");
        m.u.cand.mline = 0;
    } else {
        m.u.sdp.peer = str(to);
        m.u.sdp.sdp = str("v=0\r\no=- 1 1 IN IP4 198.51.100.77\r\ns=-\r\n");
    }
    ar__sig_handle(cn, &m);
    assert_int_equal(dst->seq, seq + 1); /* delivered at once, numbered */
    const ar__sig_frame_t *fr = dst->tail;
    assert_non_null(fr);
    const char *from = cn->sess->rec->peer;
    assert_non_null(memmem(fr->data, fr->len, from, AR__SIG_PEER_LEN));
    assert_int_equal(fr->about, ar__sig_about_one(from, AR__SIG_PEER_LEN));
    assert_int_equal(fr->about, read_tag(fr));
}

static void test_relay_tag_is_the_read_one(void **state)
{
    fixture_t *f = *state;
    const int types[] = {AR_SIG_OFFER, AR_SIG_ANSWER, AR_SIG_CANDIDATE};
    for (size_t i = 0; i < 3; i++) {
        relay(f, &f->cn[0], su_peer('s'), types[i]); /* patient to staff */
        relay(f, &f->cn[1], su_peer('p'), types[i]); /* staff to patient */
    }
}

/* A client's frame of this type to `to`, read as srv.c reads it (the flat parse), relayed
 * through the handler: delivered numbered, with no call of the builder, and the builder's frame
 * for the same message byte for byte (with "seq":0 until it is sent), tagged as read. */
static void relay_parsed(fixture_t *f, ar__sig_conn_t *cn, const char *to, int type)
{
    char text[512];
    if (type == AR_SIG_CANDIDATE)
        snprintf(text, sizeof(text),
                 "{\"v\":1,\"type\":\"candidate\",\"id\":5,\"to\":\"%s\",\"candidate\":"
                 "\"candidate:1 1 udp 2122260223 198.51.100.77 54400 typ host\",\"mid\":\"0\","
                 "\"mline\":0,\"ufrag\":null}",
                 to);
    else
        snprintf(text, sizeof(text),
                 "{\"v\":1,\"type\":\"%s\",\"id\":5,\"to\":\"%s\",\"sdp\":\"v=0\\r\\no=- 1 "
                 "1 IN IP4 198.51.100.77\\r\\ns=-\\r\\na=x:\\\"q\\\" caf\xc3\xa9\\r\\n\"%s}",
                 ar_sig_type_name(type), to, type == AR_SIG_OFFER ? ",\"restart\":true" : "");
    ar_sig_msg_t m, b;
    ar_sig_err_t err;
    assert_int_equal(ar_sig_parse2(AR_SIG_FROM_CLIENT, text, strlen(text),
                                   AR_SIG_PARSE_KEEP_SDP_JSON | AR_SIG_PARSE_BORROW, &m, &err),
                     0);
    assert_non_null(m.flat_);
    b = m; /* the same message, for the builder */
    ar__sig_sess_t *dst = ar__sig_rec_find(f->srv, to)->local;
    int64_t seq = dst->seq;
    builds = 0;
    ar__sig_handle(cn, &m);
    assert_int_equal(builds, 0);
    assert_int_equal(dst->seq, seq + 1);
    const ar__sig_frame_t *fr = dst->tail;
    const char *from = cn->sess->rec->peer;
    ar_sig_str_t *peer = type == AR_SIG_CANDIDATE ? &b.u.cand.peer : &b.u.sdp.peer;
    *peer = (ar_sig_str_t){from, AR__SIG_PEER_LEN};
    b.seq = 0;
    char want[1024];
    int n = ar_sig_build(AR_SIG_FROM_SERVER, &b, want, sizeof(want));
    assert_true(n > 0);
    assert_int_equal(fr->len, n);
    assert_memory_equal(fr->data, want, (size_t)n);
    assert_int_equal(fr->about, ar__sig_about_one(from, AR__SIG_PEER_LEN));
    assert_int_equal(fr->about, read_tag(fr));
    ar_sig_msg_free(&m);
}

static void test_parsed_relay_forwards_bytes(void **state)
{
    fixture_t *f = *state;
    /* A message built by hand takes the builder. */
    builds = 0;
    relay(f, &f->cn[0], su_peer('s'), AR_SIG_OFFER);
    assert_int_equal(builds, 1);
    const int types[] = {AR_SIG_OFFER, AR_SIG_ANSWER, AR_SIG_CANDIDATE};
    for (size_t i = 0; i < 3; i++) {
        relay_parsed(f, &f->cn[0], su_peer('s'), types[i]);
        relay_parsed(f, &f->cn[1], su_peer('p'), types[i]);
    }
    ar__sig_sess_t *staff = ar__sig_rec_find(f->srv, su_peer('s'))->local;
    assert_int_equal(staff->nframes, 4);
    assert_int_equal(ar__sig_frames_purge(f->srv, ar__sig_rec_find(f->srv, su_peer('p'))), 4);
    for (const ar__sig_frame_t *fr = staff->head; fr; fr = fr->next)
        assert_string_equal(fr->data, AR__SIG_REDACTED_FRAME);
}

/* The patient's end redacts the three frames it relayed to the staff member, found by the
 * tag given at build. */
static void test_relay_purged(void **state)
{
    fixture_t *f = *state;
    const int types[] = {AR_SIG_OFFER, AR_SIG_ANSWER, AR_SIG_CANDIDATE};
    for (size_t i = 0; i < 3; i++)
        relay(f, &f->cn[0], su_peer('s'), types[i]);
    ar__sig_sess_t *staff = ar__sig_rec_find(f->srv, su_peer('s'))->local;
    assert_int_equal(staff->nframes, 3);
    ar__sig_rec_t *pat = ar__sig_rec_find(f->srv, su_peer('p'));
    assert_int_equal(ar__sig_frames_purge(f->srv, pat), 3);
    for (const ar__sig_frame_t *fr = staff->head; fr; fr = fr->next)
        assert_string_equal(fr->data, AR__SIG_REDACTED_FRAME);
}

/* A frame that waited as pending on a copy that then became the owner (a hand-over,
 * ar__sig_sess_flush_pending) is numbered with its pending copy's tag, not read again: the
 * same tag, and the patient's end still redacts it. */
static void test_flushed_pending_keeps_tag(void **state)
{
    fixture_t *f = *state;
    ar__sig_rec_t *r = ar__sig_rec_get(f->srv, su_peer('t'));
    assert_non_null(r);
    r->role = AR_SIG_ROLE_STAFF;
    r->owner = US;
    ar__sig_sess_t *s = ar__sig_sess_link_new(f->srv, r, 1);
    assert_non_null(s);
    ar_sig_msg_t m;
    ar_sig_msg_init(&m, AR_SIG_OFFER);
    m.u.sdp.peer = str(su_peer('p'));
    m.u.sdp.sdp = str("v=0\r\no=- 1 1 IN IP4 198.51.100.77\r\ns=-\r\n");
    m.seq = 0;
    char frame[512];
    int n = ar_sig_build(AR_SIG_FROM_SERVER, &m, frame, sizeof(frame));
    assert_true(n > 0);
    uint8_t fid[16] = {7};
    ar__sig_sess_deliver(f->srv, s, fid, AR__SIG_ACT_NONE, frame, (size_t)n, 0);
    assert_int_equal(s->cold->npending, 1);
    s->is_backup = 0;
    ar__sig_sess_flush_pending(f->srv, s);
    assert_int_equal(s->nframes, 1);
    assert_int_equal(s->tail->about, read_tag(s->tail));
    assert_int_equal(ar__sig_frames_purge(f->srv, ar__sig_rec_find(f->srv, su_peer('p'))), 1);
    assert_string_equal(s->tail->data, AR__SIG_REDACTED_FRAME);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_relay_tag_is_the_read_one, setup, teardown),
        cmocka_unit_test_setup_teardown(test_relay_purged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flushed_pending_keeps_tag, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parsed_relay_forwards_bytes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
