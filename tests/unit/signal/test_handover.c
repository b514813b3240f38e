/*
 * A session handed over between workers keeps exactly one owner whatever happens to the new
 * owner meanwhile (docs/signal.md, "Resume", "A hand-over that finds no client"), and a session
 * whose owner and backup die one after the other is taken over (docs/signal.md, "Node failure"),
 * without sockets or NATS. Worker O owns an away session; worker T has a client resuming into it
 * and asks O for it ("take"); O answers "taken":
 *  - the client's connection on T goes before the answer arrives: T takes the session as away
 *    (its grace period runs there, its record names T), with the frames its copy caught
 *    meanwhile, and O's copy lets go when T's record update reaches it. It was: T ignored the
 * answer, O had freed its copy, every other worker still named O, and the record stayed everywhere
 * for ever (no grace period ran, no peer_left, the next resume waited 8 s and failed);
 *  - T dies with the answer in flight: O's copy, kept since it answered, is promoted back;
 *  - the answer is lost and T's attempt asks again: O answers again;
 *  - T never announces itself: O ends the session after a grace period;
 *  - T's attempt runs out, O answers it late, then asks T for the session for the client's next
 *    attempt: O's answers to T's older asks, repeated, are dropped at T once T handed it back.
 * Publications are caught by wrapping ar__sig_bus_rec and ar__sig_bus_proc at link time
 * (CMakeLists.txt), as in test_promotion.c; ar__sig_bus_sub_to too (no bus to subscribe on).
 */
#include "bus_catch.h"
#include "bus_internal.h"
#include "sig_util.h"

#include "anteroom/alloc.h"
#include "anteroom/log.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

/* Whether the bus is behind (bus_node.c), as each test sets it. */
static int congested;
int __wrap_ar__sig_bus_congested(ar__sig_srv_t *srv);
int __wrap_ar__sig_bus_congested(ar__sig_srv_t *srv)
{
    (void)srv;
    return congested;
}

/* What was sent to the client, one message after another (its connection has no socket here):
 * ar_sn_send and ar_sn_send_room are wrapped at link time. */
static char sent[4096];
int __wrap_ar_sn_send(ar_sn_conn_t *c, uint8_t opcode, const void *data, size_t len);
int __wrap_ar_sn_send(ar_sn_conn_t *c, uint8_t opcode, const void *data, size_t len)
{
    (void)c;
    (void)opcode;
    size_t n = strlen(sent);
    snprintf(sent + n, sizeof(sent) - n, "%.*s\n", (int)len, (const char *)data);
    return 0;
}

/* The close code a connection was last closed with (ar_sn_close wrapped at link time). */
static uint16_t closed_with;
void __wrap_ar_sn_close(ar_sn_conn_t *c, uint16_t code);
void __wrap_ar_sn_close(ar_sn_conn_t *c, uint16_t code)
{
    (void)c;
    closed_with = code;
}

int __wrap_ar_sn_send_room(ar_sn_conn_t *c, uint8_t opcode, uint8_t *buf, size_t len);
int __wrap_ar_sn_send_room(ar_sn_conn_t *c, uint8_t opcode, uint8_t *buf, size_t len)
{
    /* The payload only: the room before it is the header's (net.h). */
    return __wrap_ar_sn_send(c, opcode, buf + AR_SN_SEND_ROOM, len);
}

#define O_ID BC_O /* the owner */
#define T_ID BC_T /* the worker the client resumes through */
#define X_ID BC_X /* a worker of another node: the backups go there */
#define B_ID 4u   /* the session's backup, long gone */

static ar_signal_conf_t conf = {.node_name = (char *)"node-a", .grace = 20000};

static struct {
    ar__sig_srv_t *O, *T;
    ar__sig_rec_t *ro, *rt;
    ar_token_claims_t cl;
    char resume[AR__SIG_RESUME_LEN + 1];
    ar__sig_conn_t cn; /* the client's connection on T */
    ar__sig_conn_t oc; /* its next connection, on O (zero unless a test makes it) */
} H;

/* O owns an away session with two frames its client has not acknowledged; T knows its record
 * and has a client resuming into it, which has asked O ("take", caught). */
static int setup(void **state)
{
    (void)state;
    memset(&H, 0, sizeof(H));
    congested = 0;
    closed_with = 0;
    H.O = bc_worker(O_ID, &conf);
    H.T = bc_worker(T_ID, &conf);
    su_claims(&H.cl, AR_TOKEN_PATIENT, "patient-1");
    const char *peer = su_peer('p');
    H.ro = ar__sig_rec_get(H.O, peer);
    H.rt = ar__sig_rec_get(H.T, peer);
    assert_non_null(H.ro);
    assert_non_null(H.rt);
    H.ro->owner = H.rt->owner = O_ID;
    H.ro->backup = H.rt->backup = B_ID;
    H.ro->role = H.rt->role = (unsigned)H.cl.role & 3u;
    H.ro->away = H.rt->away = 1;
    ar__sig_sess_t *s = ar__sig_sess_link_new(H.O, H.ro, 0);
    assert_non_null(s);
    ar__sig_sess_new_resume(s);
    ar__sig_sess_resume_text(s, H.resume);
    ar__sig_subhash(&H.cl, s->subhash);
    ar__sig_sess_away_now(s, H.O->now);
    static const char frame[] = "{\"type\":\"offer\",\"seq\":0,\"sdp\":\"v=0\"}";
    uint8_t fid[16] = {1};
    for (int i = 0; i < 2; i++) {
        fid[1] = (uint8_t)i;
        ar__sig_sess_deliver(H.O, s, fid, AR__SIG_ACT_NONE, frame, sizeof(frame) - 1, 0);
    }
    assert_int_equal(s->seq, 2);
    memset(&H.cn, 0, sizeof(H.cn));
    H.cn.srv = H.T;
    H.cn.state = AR__SIG_C_HELLO;
    H.T->conns = &H.cn;
    assert_int_equal(ar__sig_resume_start(&H.cn, &H.cl, H.resume, 0), 0);
    assert_int_equal(H.cn.state, AR__SIG_C_RESUMING);
    assert_non_null(bc_proc_sent(H.T, O_ID, "take"));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    bc_clear();
    H.cn.sess = NULL;
    if (ar__sig_conn_resume(&H.cn))
        ar_free(ar__sig_conn_resume(&H.cn));
    ar_free(H.cn.cold);
    H.cn.cold = NULL;
    H.T->conns = NULL;
    if (H.oc.srv) {
        if (H.ro && H.ro->local && H.ro->local->conn == &H.oc)
            H.ro->local->conn = NULL;
        H.oc.sess = NULL;
        ar__sig_resume_t *a = ar__sig_conn_resume(&H.oc);
        (void)ar__sig_conn_set_resume(&H.oc, NULL);
        ar_free(a);
        ar_free(H.oc.cold);
        H.O->conns = NULL;
    }
    bc_worker_free(H.O);
    bc_worker_free(H.T);
    return 0;
}

/* O answers T's "take" (caught, not yet delivered). */
static json_t *owner_answers(void)
{
    json_t *take = json_incref(bc_proc_sent(H.T, O_ID, "take"));
    bc_deliver(H.O, take);
    json_decref(take);
    json_t *ans = bc_proc_sent(H.O, T_ID, "taken");
    assert_non_null(ans);
    assert_true(json_is_true(json_object_get(ans, "ok")));
    /* O keeps its copy, as a backup that names T the owner, until T says it has the session. */
    assert_non_null(H.ro->local);
    assert_true(H.ro->local->is_backup);
    assert_int_equal(H.ro->owner, T_ID);
    return json_incref(ans);
}

/* The client's connection on T goes, then O's answer ans (taken) arrives: T has the session, as
 * away. */
static void gone_then_taken(json_t *ans)
{
    H.cn.state = AR__SIG_C_GONE;
    ar__sig_resume_tick(H.T, &H.cn);
    bc_deliver(H.T, ans);
    json_decref(ans);
    assert_non_null(H.rt->local);
    assert_false(H.rt->local->is_backup);
    assert_int_equal(H.rt->owner, T_ID);
}

/* T's record still names the dead owner (B_ID, its death handled here), with O its backup,
 * which promoted its copy and answered the ask sent to it (resume.c whom_to_ask); the client
 * went meanwhile. T takes the session as away from O all the same: dropped, O would keep its
 * handed copy waiting for T's announcement and end the session a grace period later. */
static void test_taken_from_dead_owners_backup(void **state)
{
    (void)state;
    bc_heard(H.T, B_ID, "node-a", 3500);
    for (size_t i = 0; i < H.T->nnodes; i++)
        if (H.T->nodes[i].id == B_ID)
            H.T->nodes[i].dead = 1;
    H.rt->owner = B_ID;
    H.rt->backup = O_ID;
    H.cn.state = AR__SIG_C_GONE;
    ar__sig_resume_tick(H.T, &H.cn);
    json_t *ans = owner_answers();
    bc_clear();
    bc_deliver(H.T, ans);
    json_decref(ans);
    assert_non_null(H.rt->local);
    assert_false(H.rt->local->is_backup);
    assert_int_equal(H.rt->owner, T_ID);
    json_t *own = json_incref(bc_last_rec(H.T));
    assert_non_null(own); /* T's announcement, which lets O's copy go */
    json_decref(own);
}

/* The client's connection on T goes after its hello, before O's answer: T takes the session as
 * away, announces it, its grace period runs; O lets go at T's announcement. */
static void test_client_gone_mid_handover(void **state)
{
    (void)state;
    H.cn.state = AR__SIG_C_GONE;
    ar__sig_resume_tick(H.T, &H.cn); /* srv.c on_close: the attempt is dropped */
    assert_null(ar__sig_conn_resume(&H.cn));
    json_t *ans = owner_answers();
    /* A frame for the session reaches T before the answer: O no longer numbers it, so T's
     * copy, kept for the answer, must still hold it. */
    ar__sig_sess_t *s = H.rt->local;
    assert_non_null(s);
    static const char cand[] = "{\"type\":\"candidate\",\"seq\":0,\"candidate\":\"c\"}";
    uint8_t fid[16] = {9};
    ar__sig_sess_deliver(H.T, s, fid, AR__SIG_ACT_NONE, cand, sizeof(cand) - 1, 0);
    bc_clear();
    bc_deliver(H.T, ans);
    json_decref(ans);
    s = H.rt->local;
    assert_non_null(s);
    assert_false(s->is_backup);
    assert_int_equal(H.rt->owner, T_ID);
    assert_true(H.rt->away);
    assert_int_equal(s->seq, 3); /* O's two, then the candidate */
    assert_int_equal(s->nframes, 3);
    assert_memory_equal(s->tail->fid, fid, 16);
    assert_string_equal(su_resume(s), H.resume); /* the client resumes with the secret it holds */
    assert_int_equal(H.T->nsessions, 1);
    json_t *own = json_incref(bc_last_rec(H.T));
    assert_non_null(own);
    assert_string_equal(json_string_value(json_object_get(own, "own")), "0000000000000002");
    assert_int_equal(json_integer_value(json_object_get(own, "away")), 1);
    assert_int_equal(H.rt->backup, X_ID);
    assert_non_null(bc_proc_sent(H.T, X_ID, "adopt"));

    /* O applies T's update: its copy goes (X is the backup). */
    ar__sig_rec_apply(H.O, own);
    json_decref(own);
    assert_null(H.ro->local);
    assert_int_equal(H.O->nsessions, 0);

    /* No client comes back: the grace period ends the session on T, for everyone. */
    bc_clear();
    H.T->now += (uint32_t)(conf.grace / 1000);
    ar__sig_sess_tick(H.T);
    json_t *del = bc_last_rec(H.T);
    assert_non_null(del);
    assert_true(json_is_true(json_object_get(del, "del")));
    assert_null(ar__sig_rec_find(H.T, su_peer('p')));
}

/* T dies with the answer in flight: O promotes its copy back, and says so. */
static void test_new_owner_dies(void **state)
{
    (void)state;
    json_t *ans = owner_answers();
    json_decref(ans);
    bc_clear();
    H.O->nodes[0].seen_ms = mono_ms() - 5000; /* T: silent */
    H.O->nodes[0].dead = 1;
    ar__sig_node_dead(H.O, T_ID);
    ar__sig_sess_t *s = H.ro->local;
    assert_non_null(s);
    assert_false(s->is_backup);
    assert_int_equal(H.ro->owner, O_ID);
    assert_true(H.ro->away);
    assert_string_equal(su_resume(s), H.resume);
    assert_true(ar__sig_sess_resumable(s, 2));
    json_t *own = bc_last_rec(H.O);
    assert_non_null(own);
    assert_string_equal(json_string_value(json_object_get(own, "own")), "0000000000000001");
    assert_int_equal(H.O->nsessions, 1);
}

/* The answer is lost; T's attempt asks again a second later: O, which handed its copy to T
 * already, answers the same again (it answered nothing: it had freed its copy). */
static void test_answer_lost_asked_again(void **state)
{
    (void)state;
    json_t *lost = owner_answers();
    json_decref(lost);
    bc_clear();
    H.T->now++;
    ar__sig_resume_tick(H.T, &H.cn);
    json_t *ans = owner_answers();
    assert_string_equal(json_string_value(json_object_get(ans, "r")), H.resume);
    /* Its connection goes before this one arrives too: T takes the session as away. */
    gone_then_taken(ans);
}

/* While the bus is behind, the attempt waits on past its 8 s for O's answer, asking again each
 * second, up to AR__SIG_RESUME_WAIT_MAX_S: then the answer still takes the session to T. */
static void test_waits_while_bus_behind(void **state)
{
    (void)state;
    uint32_t start = H.T->now; /* the attempt's (setup) */
    congested = 1;
    bc_clear();
    H.T->now = start + AR__SIG_RESUME_WAIT_S + 5;
    ar__sig_resume_tick(H.T, &H.cn);
    assert_int_equal(H.cn.state, AR__SIG_C_RESUMING);
    assert_non_null(ar__sig_conn_resume(&H.cn));
    assert_non_null(bc_proc_sent(H.T, O_ID, "take")); /* asked again */
    H.T->now = start + AR__SIG_RESUME_WAIT_MAX_S - 1;
    ar__sig_resume_tick(H.T, &H.cn);
    assert_int_equal(H.cn.state, AR__SIG_C_RESUMING);
    gone_then_taken(owner_answers()); /* no socket here to welcome on */
}

/* O died 5 s into the attempt and X promoted its copy: asked then, X gets the whole wait to
 * answer, past the attempt's first 8 s (the bus not behind); an owner first asked late in the
 * attempt gets what is left of AR__SIG_RESUME_WAIT_MAX_S. Before, the promoter had only what
 * was left of the attempt's first 8 s. */
static void test_new_owner_gets_its_wait(void **state)
{
    (void)state;
    uint32_t start = H.T->now; /* the attempt's (setup) */
    bc_clear();
    H.T->now = start + 5;
    H.rt->owner = X_ID;
    ar__sig_resume_kick(H.T);
    assert_non_null(bc_proc_sent(H.T, X_ID, "take"));
    H.T->now = start + AR__SIG_RESUME_WAIT_S + 2;
    ar__sig_resume_tick(H.T, &H.cn);
    assert_int_equal(H.cn.state, AR__SIG_C_RESUMING);
    assert_int_equal(ar__sig_conn_resume(&H.cn)->deadline, start + 5 + AR__SIG_RESUME_WAIT_S);
    H.T->now = start + AR__SIG_RESUME_WAIT_MAX_S - 2;
    H.rt->owner = O_ID; /* handed back to O since: O is asked anew, with 2 s left */
    ar__sig_resume_kick(H.T);
    assert_int_equal(H.cn.state, AR__SIG_C_RESUMING);
    assert_int_equal(ar__sig_conn_resume(&H.cn)->deadline, start + AR__SIG_RESUME_WAIT_MAX_S);
    gone_then_taken(owner_answers());
}

/* O's answer arrives past the attempt's deadline (the bus not behind), before a tick gave the
 * attempt up: O let the session go when it answered, so the client resumes with it. It was:
 * resume_failed and a new session, and the session taken as away on T until its grace ended. */
static void test_late_answer_wins(void **state)
{
    (void)state;
    H.T->now += AR__SIG_RESUME_WAIT_S;
    json_t *ans = owner_answers();
    sent[0] = '\0';
    bc_deliver(H.T, ans);
    json_decref(ans);
    assert_int_equal(H.cn.state, AR__SIG_C_LIVE);
    assert_non_null(strstr(sent, "\"type\":\"welcome\""));
    assert_non_null(strstr(sent, "\"resumed\":true"));
    assert_null(strstr(sent, "resume_failed"));
    assert_int_equal(H.rt->owner, T_ID);
    assert_ptr_equal(H.cn.sess, H.rt->local);
}

/* The copy T kept for the answer goes when no answer comes in time (O died: its backup has
 * the session), or at a refusal. */
static void test_kept_copy_goes_without_answer(void **state)
{
    (void)state;
    H.cn.state = AR__SIG_C_GONE;
    ar__sig_resume_tick(H.T, &H.cn);
    assert_non_null(H.rt->local);
    H.T->now += AR__SIG_RESUME_WAIT_S - 1;
    ar__sig_sess_tick(H.T);
    assert_non_null(H.rt->local);
    H.T->now++;
    ar__sig_sess_tick(H.T);
    assert_null(H.rt->local);
    assert_int_equal(H.rt->owner, O_ID);
    assert_int_equal(H.T->nsessions, 0);
}

/* ... and at once at a refusal. */
static void test_kept_copy_goes_at_refusal(void **state)
{
    (void)state;
    H.cn.state = AR__SIG_C_GONE;
    ar__sig_resume_tick(H.T, &H.cn);
    assert_non_null(H.rt->local);
    json_t *no = json_pack("{s:s,s:s,s:b}", "k", "taken", "p", su_peer('p'), "ok", 0);
    bc_deliver(H.T, no);
    json_decref(no);
    assert_null(H.rt->local);
    assert_int_equal(H.rt->owner, O_ID);
}

/* A request that waited in O's inbox past T's death: O keeps the session (handed to a worker
 * whose death was handled already, nobody would promote it). */
static void test_take_from_the_dead(void **state)
{
    (void)state;
    H.O->nodes[0].seen_ms = mono_ms() - 5000; /* T */
    H.O->nodes[0].dead = 1;
    ar__sig_node_dead(H.O, T_ID);
    json_t *take = json_incref(bc_proc_sent(H.T, O_ID, "take"));
    bc_deliver(H.O, take);
    json_decref(take);
    assert_null(bc_proc_sent(H.O, T_ID, "taken"));
    assert_non_null(H.ro->local);
    assert_false(H.ro->local->is_backup);
    assert_int_equal(H.ro->owner, O_ID);
}

/* O's client, gone while T asked, resumed through O itself meanwhile (T took longer than the
 * client waited): it is connected to O through a resume that came after the hello of T's
 * attempt, so T's ask is one the client left, and O keeps the client (no answer, no 4010). An
 * ask from an attempt whose hello came after that resume is the client's newer connection: O
 * hands the session over and closes its connection with 4010, as before. */
static void test_stale_ask_unanswered(void **state)
{
    (void)state;
    ar__sig_sess_t *s = H.ro->local;
    ar__sig_conn_t oc;
    su_conn_attach(&oc, H.O, s, AR__SIG_C_LIVE);
    H.ro->away = 0;
    ar__sig_conn_cold_t *k = ar__sig_conn_cold(&oc);
    assert_non_null(k);
    json_t *take = json_deep_copy(bc_proc_sent(H.T, O_ID, "take"));
    json_int_t t = json_integer_value(json_object_get(take, "t"));
    assert_true(t > 0);
    k->resumed_ms = (uint64_t)t + 1;
    s->has_prev = 1; /* the client has sent nothing on oc yet: T's ask holds a working secret */
    ar__sig_conn_cold_trim(&oc, H.O->now);
    assert_ptr_equal(oc.cold, k); /* kept for such asks while that lasts */
    bc_deliver(H.O, take);
    assert_null(bc_proc_sent(H.O, T_ID, "taken"));
    assert_ptr_equal(s->conn, &oc);
    assert_false(s->is_backup);
    assert_int_equal(closed_with, 0);

    k->resumed_ms = (uint64_t)t - 1;
    bc_deliver(H.O, take);
    json_decref(take);
    assert_non_null(bc_proc_sent(H.O, T_ID, "taken"));
    assert_null(s->conn);
    assert_int_equal(closed_with, AR_SIG_CLOSE_REPLACED);
    ar__sig_conn_cold_trim(&oc, H.O->now); /* no session on oc any more: nothing to keep */
    assert_null(oc.cold);
}

/* An offer for the session from its partner (its fid's first byte b, its sdp text sdp) reaches
 * srv on the bus, as bus.c hands a frame published on to.<o>.<b>.<peer> to the loop. */
static void frame_from_bus(ar__sig_srv_t *srv, uint8_t b, const char *sdp)
{
    uint8_t d[128] = {b, 7};
    int n = snprintf((char *)d + 25, sizeof(d) - 25,
                     "{\"type\":\"offer\",\"seq\":0,\"sdp\":\"%s\"}", sdp);
    assert_true(n > 0 && (size_t)n < sizeof(d) - 25);
    d[24] = AR__SIG_ACT_NONE;
    ar__sig_to_msg(srv, su_peer('p'), d, 25 + (size_t)n);
}

/* O is behind: T's attempt asks twice and runs out unanswered (4016), its copy kept for the
 * answer. O then answers the first ask (handing the session to T), the client resumes through O
 * itself, which asks T, and O answers T's second ask again, after its own ask. At T: the first
 * answer makes T the owner (away), O's ask hands the session back to O, and the repeated answer
 * comes last. It was taken as a second hand-over: T claimed the session again ("own" T) after
 * O's client had resumed with T's answer, O took that claim, and frames for the session were
 * dropped at both (neither owner nor backup). Now it is dropped as stale, and O keeps its
 * client, to which the session's frames go. */
static void test_taken_repeat_after_handing_back(void **state)
{
    (void)state;
    json_t *t1 = json_incref(bc_proc_sent(H.T, O_ID, "take"));
    bc_clear();
    H.T->now++;
    ar__sig_resume_tick(H.T, &H.cn);
    json_t *t2 = json_incref(bc_proc_sent(H.T, O_ID, "take"));
    assert_non_null(t2);
    H.T->now += AR__SIG_RESUME_WAIT_S;
    ar__sig_resume_tick(H.T, &H.cn);
    assert_int_equal(closed_with, AR_SIG_CLOSE_BUSY);
    assert_null(ar__sig_conn_resume(&H.cn));
    assert_non_null(H.rt->local); /* kept for the answer */

    /* O answers the first ask, and hands the session to T. */
    bc_clear();
    bc_deliver(H.O, t1);
    json_decref(t1);
    json_t *ans1 = json_incref(bc_proc_sent(H.O, T_ID, "taken"));
    assert_non_null(ans1);
    assert_int_equal(H.ro->owner, T_ID);

    /* The client's next attempt comes to O, which asks T, then answers T's second ask again. */
    H.oc.srv = H.O;
    H.oc.state = AR__SIG_C_HELLO;
    H.O->conns = &H.oc;
    assert_int_equal(ar__sig_resume_start(&H.oc, &H.cl, H.resume, 0), 0);
    assert_int_equal(H.oc.state, AR__SIG_C_RESUMING);
    json_t *ot = json_incref(bc_proc_sent(H.O, T_ID, "take"));
    assert_non_null(ot);
    bc_clear();
    bc_deliver(H.O, t2);
    json_decref(t2);
    json_t *ans2 = json_incref(bc_proc_sent(H.O, T_ID, "taken"));
    assert_non_null(ans2);
    assert_true(json_is_true(json_object_get(ans2, "ok")));

    /* At T, in O's order: the first answer takes the session as away. */
    bc_clear();
    bc_deliver(H.T, ans1);
    json_decref(ans1);
    assert_int_equal(H.rt->owner, T_ID);
    json_t *own1 = json_incref(bc_last_rec(H.T));
    assert_non_null(own1);
    /* O's ask: T hands the session to O. */
    bc_clear();
    bc_deliver(H.T, ot);
    json_decref(ot);
    json_t *tans = json_incref(bc_proc_sent(H.T, O_ID, "taken"));
    assert_non_null(tans);
    assert_true(json_is_true(json_object_get(tans, "ok")));
    assert_int_equal(H.rt->owner, O_ID);
    /* The repeated answer: stale, dropped (logged), and T claims nothing. */
    bc_clear();
    int log = su_log_to_file();
    bc_deliver(H.T, ans2);
    json_decref(ans2);
    int stale = su_log_count(log, "signal_taken_stale");
    su_log_back(log);
    json_t *own2 = json_incref(bc_last_rec(H.T)); /* NULL: T claimed nothing */
    assert_int_equal(H.rt->owner, O_ID);
    assert_true(!H.rt->local || H.rt->local->is_backup);
    assert_null(own2);
    assert_int_equal(stale, 1);

    /* At O: T's first announcement, then T's answer: O's client resumes, O owns the session. */
    ar__sig_rec_apply(H.O, own1);
    json_decref(own1);
    bc_clear();
    bc_deliver(H.O, tans);
    json_decref(tans);
    assert_int_equal(H.oc.state, AR__SIG_C_LIVE);
    assert_non_null(H.ro->local);
    assert_ptr_equal(H.ro->local->conn, &H.oc);
    assert_int_equal(H.ro->owner, O_ID);
    json_t *own = json_incref(bc_last_rec(H.O));
    assert_non_null(own);
    ar__sig_rec_apply(H.T, own); /* T's handed copy lets go */
    json_decref(own);
    if (own2) { /* a claim T published after O's ask reaches O after O's client resumed */
        ar__sig_rec_apply(H.O, own2);
        json_decref(own2);
    }
    assert_int_equal(H.ro->owner, O_ID);
    assert_int_equal(H.rt->owner, O_ID);
    assert_true(!H.rt->local || H.rt->local->is_backup);

    /* A frame for the session from its partner reaches O's client. */
    sent[0] = '\0';
    frame_from_bus(H.O, 0x42, "v=partner");
    assert_non_null(strstr(sent, "v=partner"));
}

/* T never announces itself (all it published lost): O ends the session after a grace period,
 * rather than keep it for ever with every other worker naming O. */
static void test_never_confirmed(void **state)
{
    (void)state;
    json_t *ans = owner_answers();
    json_decref(ans);
    bc_clear();
    H.O->now += (uint32_t)(conf.grace / 1000) - 1;
    ar__sig_sess_tick(H.O);
    assert_non_null(H.ro->local);
    H.O->now++;
    ar__sig_sess_tick(H.O);
    json_t *del = bc_last_rec(H.O);
    assert_non_null(del);
    assert_true(json_is_true(json_object_get(del, "del")));
    assert_null(ar__sig_rec_find(H.O, su_peer('p')));
    H.ro = NULL;
}

/* Owner W1 and backup W2 (one node) die one after the other; worker X of the other node handles
 * W1's death while W2 still looks alive (its heartbeat a second younger), so the session is
 * W2's to promote; then W2's death. X, the lowest live worker, takes the session over. A session
 * whose owner is alive is not touched by its backup's death (the owner picks another). */
static void test_owner_then_backup_die(void **state)
{
    (void)state;
    ar__sig_srv_t *X = su_srv_new(X_ID + 10);
    X->conf = &conf;
    bc_heard(X, 1, "node-c", 3500);
    bc_heard(X, 2, "node-c", 2500);
    bc_heard(X, X_ID + 20, "node-d", 0);
    ar__sig_rec_t *r = ar__sig_rec_get(X, su_peer('s'));
    ar__sig_rec_t *r2 = ar__sig_rec_get(X, su_peer('t'));
    assert_non_null(r);
    assert_non_null(r2);
    r->owner = 1;
    r->backup = 2;
    r2->owner = X_ID + 20;
    r2->backup = 2;
    X->nodes[0].dead = 1;
    ar__sig_node_dead(X, 1);
    assert_int_equal(r->owner, 1);
    X->nodes[1].seen_ms = mono_ms() - 3500;
    X->nodes[1].dead = 1;
    ar__sig_node_dead(X, 2);
    assert_int_equal(r->owner, X->node_id);
    assert_non_null(r->local);
    assert_false(r->local->is_backup);
    assert_true(r->away);
    assert_int_equal(r2->owner, X_ID + 20);
    assert_null(r2->local);
    bc_clear();
    ar__sig_rec_free(X, r);
    ar__sig_rec_free(X, r2);
    su_srv_free(X);
}

int main(void)
{
    ar_log_init("signal", AR_LOG_WARN);
    ar_sig_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_client_gone_mid_handover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_taken_from_dead_owners_backup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_owner_dies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_answer_lost_asked_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_waits_while_bus_behind, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_owner_gets_its_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(test_late_answer_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kept_copy_goes_without_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kept_copy_goes_at_refusal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_take_from_the_dead, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_ask_unanswered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_taken_repeat_after_handing_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_never_confirmed, setup, teardown),
        cmocka_unit_test(test_owner_then_backup_die),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
