/*
 * The local session's cold part (internal.h, ar__sig_sess_cold_t): what an idle session leaves
 * empty, apart. A session starts without one (it points at ar__sig_no_cold, read only); the
 * first write of one of its fields makes it (a backup's pending frame, a candidate relayed, a
 * promotion, a renewed secret), and the once-a-second sweep lets it go once empty again. When
 * there is no memory for it, each path that needs it does without, as its comment in the
 * source says, instead of writing into the shared empty instance (which is in read-only memory:
 * such a write crashes the test). The resume secret is kept as its random bytes and rebuilt as
 * the text the client holds and the bus carries.
 *
 * Without sockets or NATS: publications are caught (bus_catch.c), frames to peers too
 * (sent_capture.c), and what is sent to a client is caught by wrapping ar_sn_send here.
 */
#include "bus_catch.h"
#include "internal.h"
#include "sent_capture.h"
#include "sig_util.h"

#include "anteroom/alloc.h"
#include "anteroom/log.h"

#include <jansson.h>
#include <setjmp.h>
#include <sodium.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static const char PEER[] = "PPPPPPPPPPPPPPPPPPPPPP";
static const char OTHER[] = "QQQQQQQQQQQQQQQQQQQQQQ";
static const char RESUME[] = "PPPPPPPPPPPPPPPPPPPPPP.rrrrrrrrrrrrrrrrrrrr";
static const char HASH0[] = "00000000000000000000000000000000";

/* What the worker sent its clients (ar_sn_send, wrapped at link time): the last text. */
static char sent_text[512];
static int nsent_client;
int __wrap_ar_sn_send(ar_sn_conn_t *c, uint8_t opcode, const void *data, size_t len);
int __wrap_ar_sn_send(ar_sn_conn_t *c, uint8_t opcode, const void *data, size_t len)
{
    (void)c;
    (void)opcode;
    size_t n = len < sizeof(sent_text) - 1 ? len : sizeof(sent_text) - 1;
    memcpy(sent_text, data, n);
    sent_text[n] = '\0';
    nsent_client++;
    return 0;
}

static ar_signal_conf_t conf;

static int setup(void **state)
{
    (void)state;
    ar_log_init("signal", AR_LOG_ERROR); /* the no-memory paths log at warn */
    ar_sig_init();
    memset(&conf, 0, sizeof(conf));
    conf.grace = 30000;
    conf.node_name = "node-a";
    sent_text[0] = '\0';
    nsent_client = 0;
    sc_nsent = 0;
    bc_clear();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    ar_alloc_fail_after(-1);
    bc_clear();
    return 0;
}

/* A session of PEER on srv: its owner's (backup 0) or a backup copy of BC_O's. */
static ar__sig_sess_t *sess(ar__sig_srv_t *srv, int backup)
{
    ar__sig_rec_t *r = ar__sig_rec_get(srv, PEER);
    assert_non_null(r);
    r->owner = backup ? BC_O : srv->node_id;
    r->backup = backup ? srv->node_id : 0;
    r->role = AR_SIG_ROLE_PATIENT;
    ar__sig_sess_t *s = ar__sig_sess_link_new(srv, r, backup);
    assert_non_null(s);
    return s;
}

static void fid_of(uint8_t fid[16], uint8_t n)
{
    memset(fid, 0, 16);
    fid[0] = n;
}

/* What the issue asked for: the part every held session has fits the allocator's 128-byte
 * class (it was 280 bytes, 288 allocated, before the cold part; 136, 144 allocated, before its
 * subscription and away time moved there), the cold part still the 144-byte one; the record
 * every worker holds the 112-byte one, a connection's state the 96-byte one (internal.h). */
static void test_sizes(void **state)
{
    (void)state;
    assert_true(sizeof(ar__sig_sess_t) <= 120);
    assert_true(sizeof(ar__sig_sess_cold_t) <= 136);
    assert_true(sizeof(ar__sig_rec_t) <= 104);
    assert_true(sizeof(ar__sig_conn_t) <= 88);
}

/* When an owner's copy went away is kept in its cold part: the sweep keeps the part while the
 * copy has no client, so the grace period runs from then, not from the loop's start; a client
 * back lets the part go. No memory for the part: the grace period is over at the next sweep. */
static void test_away_time(void **state)
{
    (void)state;
    ar__sig_srv_t *W = bc_worker(BC_T, &conf);
    W->now = 1000;
    ar__sig_sess_t *s = sess(W, 0);
    ar__sig_sess_new_resume(s);
    s->rec->away = 1;
    ar__sig_sess_away_now(s, W->now);
    assert_true(ar__sig_sess_has_cold(s));
    assert_int_equal(s->cold->away_since, 1000);
    W->now += (uint32_t)(conf.grace / 1000) - 1;
    ar__sig_sess_tick(W);
    assert_non_null(ar__sig_rec_find(W, PEER)); /* still in its grace period */
    assert_true(ar__sig_sess_has_cold(s));
    ar__sig_conn_t cn;
    su_conn_attach(&cn, W, s, AR__SIG_C_LIVE);
    s->rec->away = 0;
    ar__sig_sess_tick(W);
    assert_false(ar__sig_sess_has_cold(s)); /* back: nothing in it is read */
    s->conn = NULL;
    s->rec->away = 1;
    bc_clear();
    ar_alloc_fail_after(0);
    ar__sig_sess_away_now(s, W->now);
    assert_true(ar_alloc_fail_after(-1) > 0);
    assert_false(ar__sig_sess_has_cold(s));
    ar__sig_sess_tick(W);
    json_t *del = bc_last_rec(W);
    assert_non_null(del);
    assert_true(json_is_true(json_object_get(del, "del")));
    bc_worker_free(W);
}

/* A session has no cold part until a field of it is written: not for frames numbered by its
 * owner, nor for an offer; a backup's pending frame makes it, and the sweep lets it go once
 * the owner's numbered copy took the frame. */
static void test_made_at_first_need(void **state)
{
    (void)state;
    ar__sig_srv_t *W = bc_worker(BC_T, &conf);
    ar__sig_sess_t *s = sess(W, 0);
    assert_false(ar__sig_sess_has_cold(s));
    assert_ptr_equal(s->cold, &ar__sig_no_cold);
    ar__sig_sess_new_resume(s);
    uint8_t fid[16];
    fid_of(fid, 1);
    static const char frame[] = "{\"v\":1,\"type\":\"peer_left\",\"seq\":0,\"peer\":\"x\"}";
    ar__sig_sess_deliver(W, s, fid, AR__SIG_ACT_NONE, frame, sizeof(frame) - 1, 0);
    assert_int_equal(s->seq, 1);
    fid_of(fid, 2);
    ar__sig_sess_deliver(W, s, fid, AR__SIG_ACT_RESET_CAND, frame, sizeof(frame) - 1, 0);
    assert_int_equal(s->seq, 2);
    assert_false(ar__sig_sess_has_cold(s)); /* an owner's frames need none */
    bc_worker_free(W);

    ar__sig_srv_t *B = bc_worker(BC_X, &conf);
    ar__sig_sess_t *b = sess(B, 1);
    assert_false(ar__sig_sess_has_cold(b));
    fid_of(fid, 3);
    ar__sig_sess_deliver(B, b, fid, AR__SIG_ACT_NONE, frame, sizeof(frame) - 1, 0);
    assert_true(ar__sig_sess_has_cold(b));
    assert_int_equal(b->cold->npending, 1);
    ar__sig_sess_tick(B); /* still pending: kept */
    assert_true(ar__sig_sess_has_cold(b));
    char hex[33];
    sodium_bin2hex(hex, sizeof(hex), fid, 16);
    su_proc(B, json_pack("{s:s,s:s,s:I,s:s,s:i,s:s}", "k", "num", "p", PEER, "s", (json_int_t)1,
                         "f", hex, "a", 0, "d", frame));
    assert_int_equal(b->cold->npending, 0);
    assert_int_equal(b->nframes, 1);
    ar__sig_sess_tick(B); /* empty again: it goes */
    assert_false(ar__sig_sess_has_cold(b));
    assert_ptr_equal(b->cold, &ar__sig_no_cold);
    bc_worker_free(B);
}

/* Two members of a room on one worker, s (PEER) with a live client; the candidate or offer m
 * from it to OTHER, handled as its client's frame. */
typedef struct room_s {
    ar__sig_srv_t *W;
    ar__sig_sess_t *s;
    ar__sig_conn_t cn;
} room_t;

static void room_open(room_t *x)
{
    x->W = bc_worker(BC_T, &conf);
    x->s = sess(x->W, 0);
    ar_token_claims_t cl;
    su_claims(&cl, AR_TOKEN_PATIENT, "subject-1");
    x->s->claims = ar__sig_claims_new(&cl);
    assert_non_null(x->s->claims);
    ar__sig_rec_t *o = ar__sig_rec_get(x->W, OTHER);
    assert_non_null(o);
    o->owner = BC_O;
    o->role = AR_SIG_ROLE_STAFF;
    ar__sig_rec_set_room(x->W, x->s->rec, "room-1");
    ar__sig_rec_set_room(x->W, o, "room-1");
    assert_non_null(x->s->rec->in_room);
    su_conn_attach(&x->cn, x->W, x->s, AR__SIG_C_LIVE);
}

static void room_close(room_t *x)
{
    x->s->conn = NULL;
    bc_worker_free(x->W);
}

static void relay(room_t *x, int type)
{
    ar_sig_msg_t m;
    ar_sig_msg_init(&m, type);
    if (type == AR_SIG_CANDIDATE) {
        m.u.cand.peer = (ar_sig_str_t){OTHER, AR__SIG_PEER_LEN};
        m.u.cand.candidate = (ar_sig_str_t){"candidate:1 1 udp 1 192.0.2.1 5000 typ host", 43};
    } else {
        m.u.sdp.peer = (ar_sig_str_t){OTHER, AR__SIG_PEER_LEN};
        m.u.sdp.sdp = (ar_sig_str_t){"v=0\r\n", 5};
    }
    ar__sig_handle(&x->cn, &m);
}

/* The candidate counts are made at the first candidate (an offer before it needs none), and
 * keep the part through the sweep; an offer resets its peer's count. */
static void test_candidates(void **state)
{
    (void)state;
    room_t x;
    room_open(&x);
    relay(&x, AR_SIG_OFFER);
    assert_int_equal(sc_nsent, 1);
    assert_false(ar__sig_sess_has_cold(x.s));
    relay(&x, AR_SIG_CANDIDATE);
    relay(&x, AR_SIG_CANDIDATE);
    assert_int_equal(sc_nsent, 3);
    assert_true(ar__sig_sess_has_cold(x.s));
    assert_string_equal(x.s->cold->cand[0].peer, OTHER);
    assert_int_equal(x.s->cold->cand[0].n, 2);
    ar__sig_sess_tick(x.W);
    assert_true(ar__sig_sess_has_cold(x.s));
    relay(&x, AR_SIG_OFFER);
    assert_int_equal(x.s->cold->cand[0].n, 0);
    room_close(&x);
}

/* Candidates to OTHER and to a peer whose id differs from it only in its first, a middle or its
 * last byte (each in only one of the three words flows.c's same_peer compares) are counted
 * apart, each in its own slot. */
static void test_candidate_slots(void **state)
{
    (void)state;
    const size_t at[] = {0, 11, AR__SIG_PEER_LEN - 1};
    for (size_t a = 0; a < sizeof(at) / sizeof(at[0]); a++) {
        char near[AR__SIG_PEER_LEN + 1];
        memcpy(near, OTHER, sizeof(near));
        near[at[a]] = 'R';
        room_t x;
        room_open(&x);
        ar__sig_rec_t *o = ar__sig_rec_get(x.W, near);
        assert_non_null(o);
        o->owner = BC_O;
        o->role = AR_SIG_ROLE_STAFF;
        ar__sig_rec_set_room(x.W, o, "room-1");
        relay(&x, AR_SIG_CANDIDATE); /* to OTHER */
        for (int k = 0; k < 2; k++) {
            ar_sig_msg_t m;
            ar_sig_msg_init(&m, AR_SIG_CANDIDATE);
            m.u.cand.peer = (ar_sig_str_t){near, AR__SIG_PEER_LEN};
            m.u.cand.candidate = (ar_sig_str_t){"candidate:1 1 udp 1 192.0.2.1 5000 typ host", 43};
            ar__sig_handle(&x.cn, &m);
        }
        assert_int_equal(sc_nsent, 3);
        assert_string_equal(x.s->cold->cand[0].peer, OTHER);
        assert_int_equal(x.s->cold->cand[0].n, 1);
        assert_string_equal(x.s->cold->cand[1].peer, near);
        assert_int_equal(x.s->cold->cand[1].n, 2);
        room_close(&x);
        sc_nsent = 0;
    }
}

/* No memory for the counts: the candidate is refused with error internal, not relayed. */
static void test_candidate_no_memory(void **state)
{
    (void)state;
    room_t x;
    room_open(&x);
    ar_alloc_fail_after(0);
    relay(&x, AR_SIG_CANDIDATE);
    assert_true(ar_alloc_fail_after(-1) > 0);
    assert_int_equal(sc_nsent, 0);
    assert_false(ar__sig_sess_has_cold(x.s));
    assert_int_equal(nsent_client, 1);
    assert_non_null(strstr(sent_text, "\"error\""));
    assert_non_null(strstr(sent_text, "internal"));
    relay(&x, AR_SIG_CANDIDATE); /* with memory again */
    assert_int_equal(sc_nsent, 1);
    room_close(&x);
}

/* No memory at a backup's frame: not kept (the owner's numbered copy brings it). */
static void test_backup_frame_no_memory(void **state)
{
    (void)state;
    ar__sig_srv_t *B = bc_worker(BC_X, &conf);
    ar__sig_sess_t *b = sess(B, 1);
    uint8_t fid[16];
    fid_of(fid, 1);
    static const char frame[] = "{\"v\":1,\"type\":\"peer_left\",\"seq\":0,\"peer\":\"x\"}";
    /* A frame block kept for reuse (frame_pool.c), so that the frame itself finds memory: a
     * pending frame dropped (the owner's "drop" of the session copy) goes back to the pool. */
    ar__sig_sess_deliver(B, b, fid, AR__SIG_ACT_NONE, frame, sizeof(frame) - 1, 0);
    assert_int_equal(b->cold->npending, 1);
    ar__sig_sess_free(B, b);
    b = sess(B, 1);
    ar_alloc_fail_after(0);
    ar__sig_sess_deliver(B, b, fid, AR__SIG_ACT_NONE, frame, sizeof(frame) - 1, 0);
    assert_true(ar_alloc_fail_after(-1) > 0);
    assert_false(ar__sig_sess_has_cold(b));
    assert_int_equal(b->cold->npending, 0);
    ar__sig_sess_deliver(B, b, fid, AR__SIG_ACT_NONE, frame, sizeof(frame) - 1, 0);
    assert_int_equal(b->cold->npending, 1); /* with memory again */
    bc_worker_free(B);
}

/* No memory at a promotion: the copy is promoted all the same (nobody else would take it), but
 * has no old owner to ask, so its grace period ends it without a "held?". */
static void test_promotion_no_memory(void **state)
{
    (void)state;
    ar__sig_srv_t *B = bc_worker(BC_X, &conf);
    ar__sig_sess_t *b = sess(B, 1);
    assert_int_equal(ar__sig_sess_resume_set(b, RESUME), 0);
    ar_alloc_fail_after(0);
    ar__sig_node_dead(B, BC_O);
    assert_true(ar_alloc_fail_after(-1) > 0);
    ar__sig_rec_t *r = ar__sig_rec_find(B, PEER);
    assert_non_null(r);
    assert_ptr_equal(r->local, b);
    assert_int_equal(r->owner, BC_X);
    assert_false(b->is_backup);
    assert_true(b->promoted);
    assert_false(ar__sig_sess_has_cold(b));
    bc_heard(B, BC_O, "node-a", 0); /* the old owner alive again: still not asked */
    bc_clear();
    B->now += (uint32_t)(conf.grace / 1000);
    ar__sig_sess_tick(B);
    assert_null(bc_proc_sent(B, BC_O, "held?"));
    json_t *del = bc_last_rec(B);
    assert_non_null(del);
    assert_true(json_is_true(json_object_get(del, "del")));
    bc_worker_free(B);
}

/* No memory to keep the presented secret at a resume: the secret is not renewed, the presented
 * one stays the session's (the welcome carries it again). */
static void test_rotate_no_memory(void **state)
{
    (void)state;
    ar__sig_srv_t *W = bc_worker(BC_T, &conf);
    ar__sig_sess_t *s = sess(W, 0);
    ar__sig_sess_new_resume(s);
    char presented[AR__SIG_RESUME_LEN + 1];
    snprintf(presented, sizeof(presented), "%s", su_resume(s));
    uint8_t h0[16] = {0};
    ar_alloc_fail_after(0);
    assert_int_equal(ar__sig_sess_rotate_resume(s, presented), AR_ENOMEM);
    assert_true(ar_alloc_fail_after(-1) > 0);
    assert_false(s->has_prev);
    assert_false(ar__sig_sess_has_cold(s));
    assert_string_equal(su_resume(s), presented);
    assert_true(ar__sig_sess_secret_ok(s, presented, h0));
    /* With memory: renewed, the presented one kept beside it. */
    assert_int_equal(ar__sig_sess_rotate_resume(s, presented), 0);
    assert_true(s->has_prev);
    assert_string_not_equal(su_resume(s), presented);
    assert_true(ar__sig_sess_secret_ok(s, presented, h0));
    assert_true(ar__sig_sess_secret_ok(s, su_resume(s), h0));
    ar__sig_sess_prev_wipe(s);
    assert_false(ar__sig_sess_secret_ok(s, presented, h0));
    bc_worker_free(W);
}

/* No memory for the previous secret a backup is sent ("q"): none kept, the current one works. */
static void test_prev_get_no_memory(void **state)
{
    (void)state;
    ar__sig_srv_t *B = bc_worker(BC_X, &conf);
    ar__sig_sess_t *b = sess(B, 1);
    json_t *o = json_pack("{s:s}", "q", "0102030405060708");
    assert_non_null(o);
    ar_alloc_fail_after(0);
    ar__sig_sess_prev_get(b, o);
    assert_true(ar_alloc_fail_after(-1) > 0);
    assert_false(b->has_prev);
    assert_false(ar__sig_sess_has_cold(b));
    ar__sig_sess_prev_get(b, o); /* with memory */
    assert_true(b->has_prev);
    assert_memory_equal(b->cold->prev_resume, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
    json_decref(o);
    bc_worker_free(B);
}

/* No memory to note frames lost for a session: its live client is told at once; an away one's
 * loss is not noted (logged). */
static void test_lost_no_memory(void **state)
{
    (void)state;
    room_t x;
    room_open(&x);
    x.s->seq = 4;
    ar_alloc_fail_after(0);
    ar__sig_sess_frames_lost(x.W, PEER, 2);
    assert_true(ar_alloc_fail_after(-1) > 0);
    assert_false(ar__sig_sess_has_cold(x.s));
    assert_int_equal(nsent_client, 1);
    assert_non_null(strstr(sent_text, "2 messages for this session were lost after seq 4"));
    x.s->conn = NULL; /* away */
    ar_alloc_fail_after(0);
    ar__sig_sess_frames_lost(x.W, PEER, 3);
    assert_true(ar_alloc_fail_after(-1) > 0);
    assert_false(ar__sig_sess_has_cold(x.s));
    assert_int_equal(nsent_client, 1);
    ar__sig_sess_frames_lost(x.W, PEER, 3); /* with memory: kept for the next welcome */
    assert_int_equal(x.s->cold->lost, 3);
    assert_int_equal(x.s->cold->lost_after, 4);
    room_close(&x);
}

/* One "take" from BC_T on a fresh owner, every allocation after the first n failing (n < 0:
 * none): 1 when the session was handed over (and its copy notes to whom), 0 when it stayed
 * the owner's. *failed: whether any allocation failed. */
static int take(long n, int *failed)
{
    ar__sig_srv_t *O = bc_worker(BC_O, &conf);
    ar__sig_sess_t *s = sess(O, 0);
    assert_int_equal(ar__sig_sess_resume_set(s, RESUME), 0);
    s->seq = 2;
    json_t *msg = json_pack("{s:s,s:s,s:s,s:s,s:I,s:s}", "k", "take", "p", PEER, "r", RESUME, "h",
                            HASH0, "l", (json_int_t)2, "from", "0000000000000002");
    assert_non_null(msg);
    ar__sig_rec_t *r = s->rec;
    ar_alloc_fail_after(n);
    ar__sig_on_take(O, msg, r);
    *failed = ar_alloc_fail_after(-1) > 0;
    json_decref(msg);
    int handed = s->handed;
    if (handed) {
        assert_true(s->is_backup);
        assert_int_equal(s->cold->prev_owner, BC_T);
        assert_int_equal(r->owner, BC_T);
    } else {
        assert_false(s->is_backup);
        assert_false(ar__sig_sess_has_cold(s));
        assert_int_equal(r->owner, BC_O);
    }
    if (!*failed) {
        json_t *ans = bc_proc_sent(O, BC_T, "taken");
        assert_non_null(ans);
        assert_string_equal(json_string_value(json_object_get(ans, "r")), RESUME);
    }
    bc_worker_free(O);
    bc_clear();
    return handed;
}

/* No memory for the handed copy's note of its new owner: the hand-over is refused, the session
 * stays the owner's. Every allocation of the path fails in turn (a failure of them all would
 * stop it at jansson's unpacking, before the part is needed). */
static void test_take_no_memory(void **state)
{
    (void)state;
    int failed = 1;
    for (long n = 0; failed && n < 500; n++)
        (void)take(n, &failed);
    assert_false(failed);
    assert_int_equal(take(-1, &failed), 1);
}

/* One "taken" with "lost" taken as away on a fresh worker, every allocation after the first n
 * failing (n < 0: none): 1 when it was taken with the count dropped for want of memory (the
 * cold part's allocation failed), 2 taken with it, 0 not taken. *failed: whether any failed. */
static int taken_lost(long n, int *failed)
{
    ar__sig_srv_t *T = bc_worker(BC_T, &conf);
    ar__sig_sess_t *s = sess(T, 1); /* a copy made for the resume, now without its client */
    ar__sig_rec_t *r = s->rec;
    json_t *taken =
        json_pack("{s:s,s:s,s:b,s:I,s:I,s:[],s:s,s:s,s:s,s:[I,I]}", "k", "taken", "p", PEER, "ok",
                  1, "seq", (json_int_t)2, "ack", (json_int_t)0, "fr", "r", RESUME, "h", HASH0,
                  "from", "0000000000000001", "lost", (json_int_t)3, (json_int_t)1);
    assert_non_null(taken);
    ar_alloc_fail_after(n);
    ar__sig_on_taken(T, taken, r, PEER);
    *failed = ar_alloc_fail_after(-1) > 0;
    json_decref(taken);
    int rc = 0;
    if ((r = ar__sig_rec_find(T, PEER)) && r->owner == BC_T && r->local == s) {
        assert_false(s->is_backup);
        assert_string_equal(su_resume(s), RESUME); /* the secret came raw into its 15 bytes */
        rc = ar__sig_sess_has_cold(s) && s->cold->lost == 3 ? 2 : 1;
        if (rc == 1)
            assert_int_equal(s->cold->lost, 0); /* the shared empty part, untouched */
    }
    bc_worker_free(T);
    bc_clear();
    return rc;
}

/* No memory for the count of frames the old owner dropped ("taken" with "lost", taken as away):
 * the session is taken all the same, without the count. Every allocation of the path fails in
 * turn (jansson's unpacking allocates too, so a failure of them all would stop it earlier). */
static void test_taken_lost_no_memory(void **state)
{
    (void)state;
    int dropped = 0, failed = 1;
    for (long n = 0; failed && n < 500; n++)
        dropped |= taken_lost(n, &failed) == 1;
    assert_false(failed); /* the loop ran through the path's every allocation */
    assert_true(dropped);
    assert_int_equal(taken_lost(-1, &failed), 2);
}

/* The secret's text round-trips; a text that is not the session's peer and 20 characters of
 * base64url leaves it without one, which no text opens. */
static void test_secret_text(void **state)
{
    (void)state;
    ar__sig_srv_t *W = bc_worker(BC_T, &conf);
    ar__sig_sess_t *s = sess(W, 0);
    uint8_t h0[16] = {0};
    assert_false(s->has_secret);
    assert_string_equal(su_resume(s), "");
    assert_false(ar__sig_sess_secret_ok(s, RESUME, h0));
    assert_int_equal(ar__sig_sess_resume_set(s, RESUME), 0);
    assert_string_equal(su_resume(s), RESUME);
    assert_true(ar__sig_sess_secret_ok(s, RESUME, h0));
    static const char *const bad[] = {"",
                                      "QQQQQQQQQQQQQQQQQQQQQQ.rrrrrrrrrrrrrrrrrrrr",
                                      "PPPPPPPPPPPPPPPPPPPPPP,rrrrrrrrrrrrrrrrrrrr",
                                      "PPPPPPPPPPPPPPPPPPPPPP.rrrrrrrrrrrrrrrrrrr+",
                                      "PPPPPPPPPPPPPPPPPPPPPP.rrrrrrrrrrrrrrrrrrr",
                                      "PPPPPPPPPPPPPPPPPPPPPP.rrrrrrrrrrrrrrrrrrrrr"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(ar__sig_sess_resume_set(s, bad[i]), AR_EINVAL);
        assert_false(s->has_secret);
        assert_string_equal(su_resume(s), "");
        assert_false(ar__sig_sess_secret_ok(s, RESUME, h0));
    }
    for (int i = 0; i < 8; i++) { /* random ones too */
        ar__sig_sess_new_resume(s);
        char text[AR__SIG_RESUME_LEN + 1];
        snprintf(text, sizeof(text), "%s", su_resume(s));
        assert_int_equal(strlen(text), AR__SIG_RESUME_LEN);
        assert_int_equal(ar__sig_sess_resume_set(s, text), 0);
        assert_string_equal(su_resume(s), text);
    }
    bc_worker_free(W);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_away_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_made_at_first_need, setup, teardown),
        cmocka_unit_test_setup_teardown(test_candidates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_candidate_slots, setup, teardown),
        cmocka_unit_test_setup_teardown(test_candidate_no_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backup_frame_no_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_promotion_no_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotate_no_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prev_get_no_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_no_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_take_no_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_taken_lost_no_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret_text, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
