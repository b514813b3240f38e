/*
 * A welcome lost with its connection leaves the client a secret that works (P6, protocol.md
 * 5.10; sess.c ar__sig_sess_rotate_resume): a resume renews the resume secret, and the client
 * whose connection dropped after the server sent that welcome, before it read it, holds only the
 * secret it presented. That one keeps working until the client's first frame after the welcome
 * (srv.c on_message), on the owner and on its backup, promoted when the owner dies. Before, it
 * stopped at once: resume_failed, a new peer id, the patient's place in the queue lost.
 *
 * Every hello goes through the worker's real message path (a signed token, sig_util.h su_mint,
 * a masked frame, the codec, on_hello, the token check). The client "loses" a welcome by never
 * using the secret it carries (the test reads it only to name it): what the server sees is the
 * same, a welcome sent and then a connection that goes without a frame. The session's backup is
 * a second worker without a loop (su_srv_new) to which the messages the loop's worker sends it
 * are delivered by hand: ar__sig_bus_proc is wrapped at link time to keep a copy of each.
 * A worker loop on loopback (loop_harness.h, resume_fixture.h) with the bus's inbox; libnats
 * is stood in for.
 */
#include "bus_internal.h"
#include "resume_fixture.h"

#include "anteroom/alloc.h"
#include "anteroom/log.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define INBOX_MAX (1 << 20)
#define OWNER_ID 1u  /* the loop's worker (loop_harness.c) */
#define BACKUP_ID 2u /* a worker of another node: every session's backup */
#define SENT_MAX 32

static struct {
    rf_resume_t a; /* its claims: the token's */
    ar_token_key_t key;
    char token[AR_TOKEN_MAX];
    char peer[AR__SIG_PEER_LEN + 1]; /* the session's peer id */
    /* Copies of what the loop's worker sent the backup (written on the loop's thread, read
     * after lh_run or lh_wait returned). */
    char *sent[SENT_MAX];
    size_t nsent, delivered;
    int secret_state; /* on the loop: 1 has_prev, 0 none, -1 no session */
} T;

void __real_ar__sig_bus_proc(ar__sig_srv_t *srv, uint64_t worker, void *json_obj);
void __wrap_ar__sig_bus_proc(ar__sig_srv_t *srv, uint64_t worker, void *json_obj);
void __wrap_ar__sig_bus_proc(ar__sig_srv_t *srv, uint64_t worker, void *json_obj)
{
    if (json_obj && srv == LH.srv && worker == BACKUP_ID && T.nsent < SENT_MAX)
        T.sent[T.nsent++] = json_dumps(json_obj, JSON_COMPACT);
    __real_ar__sig_bus_proc(srv, worker, json_obj);
}

static ar_signal_conf_t bconf = {.node_name = (char *)"node-b", .grace = 30000};

/* On the loop: worker BACKUP_ID of node-b is alive, so every session gets it as its backup. */
static void add_backup_node(void *arg)
{
    (void)arg;
    ar__sig_srv_t *srv = LH.srv;
    LH.conf.node_name = (char *)"node-a";
    srv->nodes[srv->nnodes] = (ar__sig_node_t){.id = BACKUP_ID, .seen_ms = mono_ms()};
    snprintf(srv->nodes[srv->nnodes++].name, sizeof(srv->nodes[0].name), "node-b");
}

static int setup(void **state)
{
    (void)state;
    memset(&T, 0, sizeof(T));
    rf_start(&T.a, INBOX_MAX);
    snprintf(T.a.cl.area, sizeof(T.a.cl.area), "area-1");
    su_signer(&T.key);
    lh_trust(&T.key);
    su_mint(&T.key, &T.a.cl, T.token, sizeof(T.token));
    lh_run(add_backup_node, NULL);
    return 0;
}

static int teardown(void **state)
{
    for (size_t i = 0; i < T.nsent; i++)
        ar_free(T.sent[i]);
    T.nsent = 0;
    return rf_teardown(state);
}

/* A string field of a welcome's text, into out (cap bytes); fails the test if missing. */
static void field(const char *text, const char *name, char *out, size_t cap)
{
    json_t *o = json_loads(text, 0, NULL);
    const char *v = json_string_value(json_object_get(o, name));
    if (!v || strlen(v) >= cap)
        fail_msg("no %s in %s", name, text);
    snprintf(out, cap, "%s", v);
    json_decref(o);
}

/* The client's connection drops (no close frame) and the worker has freed it: the session is
 * away. `freed`: the count of connections freed once it has. */
static void drop(int fd, int freed)
{
    close(fd);
    lh_wait(&LH.freed, freed);
}

/* On the loop: the backup's worker heard from now (the harness's worker would declare it dead
 * after AR__SIG_NODE_DEAD_S without its heartbeats). */
static void backup_heard(void *arg)
{
    (void)arg;
    LH.srv->nodes[0].seen_ms = mono_ms();
}

/* A new session (a hello without resume); its peer id in T.peer, its secret in secret. */
static int new_session(char *secret)
{
    lh_run(backup_heard, NULL);
    int fd = lh_dial("/ok");
    su_hello(fd, T.token, NULL, 0);
    char text[1024];
    rf_expect_text(fd, text, sizeof(text), "\"type\":\"welcome\"", "\"resumed\":false");
    field(text, "peer", T.peer, sizeof(T.peer));
    field(text, "resume", secret, AR__SIG_RESUME_LEN + 1);
    return fd;
}

/* A hello resuming with secret that gets the session back (same peer id): its connection, and
 * the renewed secret the welcome carries in renewed. */
static int resumed(const char *secret, char *renewed)
{
    lh_run(backup_heard, NULL);
    int fd = lh_dial("/ok");
    su_hello(fd, T.token, secret, 0);
    char text[1024], peer[AR__SIG_PEER_LEN + 1];
    rf_expect_resumed(fd, text, sizeof(text));
    field(text, "peer", peer, sizeof(peer));
    assert_string_equal(peer, T.peer);
    field(text, "resume", renewed, AR__SIG_RESUME_LEN + 1);
    assert_string_not_equal(renewed, secret);
    return fd;
}

/* A hello resuming with secret that fails: resume_failed, then a new session (another peer id). */
static int refused(const char *secret)
{
    int fd = lh_dial("/ok");
    su_hello(fd, T.token, secret, 0);
    rf_expect_error(fd, "resume_failed");
    char text[1024], peer[AR__SIG_PEER_LEN + 1];
    rf_expect_text(fd, text, sizeof(text), "\"type\":\"welcome\"", "\"resumed\":false");
    field(text, "peer", peer, sizeof(peer));
    assert_string_not_equal(peer, T.peer);
    return fd;
}

/* The client's first frame after its welcome (a ping), answered: the worker has handled it. */
static void first_frame(int fd)
{
    su_send_text(fd, "{\"v\":1,\"type\":\"ping\",\"t\":7}");
    char text[1024];
    rf_expect_text(fd, text, sizeof(text), "\"type\":\"pong\"", NULL);
}

static void look_secret(void *arg)
{
    (void)arg;
    ar__sig_rec_t *r = ar__sig_rec_find(LH.srv, T.peer);
    T.secret_state = r && r->local ? r->local->has_prev : -1;
}

/* Resume, lose the welcome, resume again with the old secret: the same session. After the
 * client's first frame on that connection, the old secret no longer works, the new one does. */
static void test_lost_welcome(void **state)
{
    (void)state;
    char s1[AR__SIG_RESUME_LEN + 1], s2[AR__SIG_RESUME_LEN + 1], s3[AR__SIG_RESUME_LEN + 1];
    char s4[AR__SIG_RESUME_LEN + 1];
    drop(new_session(s1), 1);
    drop(resumed(s1, s2), 2); /* welcome (s2) lost: the client holds s1 */
    int fd = resumed(s1, s3); /* before: resume_failed */
    lh_run(look_secret, NULL);
    assert_int_equal(T.secret_state, 1); /* s1 kept: this welcome may be lost too */
    first_frame(fd);
    lh_run(look_secret, NULL);
    assert_int_equal(T.secret_state, 0); /* wiped: the client has s3 */
    drop(fd, 3);
    drop(refused(s1), 4);
    drop(refused(s2), 5); /* never the client's: it was not kept */
    drop(resumed(s3, s4), 6);
}

/* Two lost welcomes in a row: the secret the client presented both times still works, and the
 * one of the first lost welcome (which the client never had) does not. */
static void test_two_lost_welcomes(void **state)
{
    (void)state;
    char s1[AR__SIG_RESUME_LEN + 1], s2[AR__SIG_RESUME_LEN + 1], s3[AR__SIG_RESUME_LEN + 1];
    char s4[AR__SIG_RESUME_LEN + 1];
    drop(new_session(s1), 1);
    drop(resumed(s1, s2), 2);
    drop(resumed(s1, s3), 3);
    int fd = resumed(s1, s4);
    first_frame(fd);
    drop(fd, 4);
    drop(refused(s2), 5);
    drop(refused(s3), 6);
}

/* A client that got its welcome and resumes with the new secret before sending a frame: the
 * secret it presented is the one kept, and the older one goes (the client proved it has the
 * new one by presenting it). */
static void test_new_secret_presented(void **state)
{
    (void)state;
    char s1[AR__SIG_RESUME_LEN + 1], s2[AR__SIG_RESUME_LEN + 1], s3[AR__SIG_RESUME_LEN + 1];
    char s4[AR__SIG_RESUME_LEN + 1];
    drop(new_session(s1), 1);
    drop(resumed(s1, s2), 2);
    drop(resumed(s2, s3), 3); /* welcome (s3) lost */
    drop(refused(s1), 4);
    drop(resumed(s2, s4), 5);
}

/* A new session keeps no previous secret: its welcome lost, the client has no secret at all. */
static void test_new_session_keeps_none(void **state)
{
    (void)state;
    char s1[AR__SIG_RESUME_LEN + 1];
    int fd = new_session(s1);
    lh_run(look_secret, NULL);
    assert_int_equal(T.secret_state, 0);
    drop(fd, 1);
}

/* On the loop: the last connection's hello resumes 'o', which worker 3 owns (another worker
 * of this node), with the client's secret (resume_fixture.h RF_SECRET). */
static void resume_o_of_3(void *arg)
{
    (void)rf_resume_o(arg, 3);
}

/* On the loop: worker 3 hands 'o' over ("taken", as handover.c sends it). */
static void o_handed_over(void *arg)
{
    (void)arg;
    rf_taken("\"ok\":true,\"seq\":0,\"ack\":0,\"fr\":[],\"from\":\"0000000000000003\"");
}

/* A resume through a hand-over (resume.c finish_attempt) whose welcome is lost: the secret the
 * client presented to the old owner works here, its new owner, until the client's first frame. */
static void test_lost_after_handover(void **state)
{
    (void)state;
    char s1[AR__SIG_RESUME_LEN + 1], s2[AR__SIG_RESUME_LEN + 1], s3[AR__SIG_RESUME_LEN + 1];
    snprintf(T.peer, sizeof(T.peer), "%s", su_peer('o'));
    rf_resume_text(s1, T.peer);
    lh_run(backup_heard, NULL);
    int fd = rf_dial_resuming(resume_o_of_3, &T.a);
    lh_run(o_handed_over, NULL);
    char text[1024];
    rf_expect_resumed(fd, text, sizeof(text));
    field(text, "resume", s2, sizeof(s2));
    drop(fd, 1); /* welcome (s2) lost */
    fd = resumed(s1, s3);
    first_frame(fd);
    drop(fd, 2);
    drop(refused(s1), 3);
}

/* ---- the backup ---- */

static ar__sig_srv_t *B;

/* Delivers to B what the loop's worker sent it since the last call, in order. */
static void deliver_to_backup(void)
{
    lh_run(backup_heard, NULL); /* T.sent as the loop's thread left it */
    for (; T.delivered < T.nsent; T.delivered++) {
        const char *m = T.sent[T.delivered];
        assert_non_null(m);
        ar__sig_proc_msg(B, m, strlen(m), NULL);
    }
}

static int backup_accepts(const char *secret)
{
    ar__sig_rec_t *r = ar__sig_rec_find(B, T.peer);
    assert_non_null(r);
    assert_non_null(r->local);
    uint8_t h[16];
    ar__sig_subhash(&T.a.cl, h);
    return ar__sig_sess_secret_ok(r->local, secret, h) && ar__sig_sess_resumable(r->local, 0);
}

/* The backup learns the kept secret with the resume ("res") and forgets it at the client's
 * first frame ("got"); promoted at the owner's death, it takes the secret of a lost welcome. */
static void test_backup_keeps_it(void **state)
{
    (void)state;
    B = su_srv_new(BACKUP_ID);
    B->conf = &bconf;
    B->nodes[B->nnodes] = (ar__sig_node_t){.id = OWNER_ID, .seen_ms = mono_ms()};
    snprintf(B->nodes[B->nnodes++].name, sizeof(B->nodes[0].name), "node-a");
    char s1[AR__SIG_RESUME_LEN + 1], s2[AR__SIG_RESUME_LEN + 1], s3[AR__SIG_RESUME_LEN + 1];
    int fd = new_session(s1);
    ar__sig_rec_t *r = ar__sig_rec_get(B, T.peer); /* as the owner's record update makes it */
    assert_non_null(r);
    r->owner = OWNER_ID;
    r->backup = BACKUP_ID;
    r->role = (unsigned)T.a.cl.role & 3u;
    /* The backup's copy, as its "adopt" makes it (B has no bus to subscribe on). */
    assert_non_null(ar__sig_sess_link_new(B, r, 1));
    deliver_to_backup(); /* "adopt" */
    assert_true(backup_accepts(s1));
    drop(fd, 1);
    drop(resumed(s1, s2), 2); /* welcome lost */
    deliver_to_backup();      /* "res" */
    assert_true(backup_accepts(s1));
    assert_true(backup_accepts(s2));
    fd = resumed(s1, s3);
    first_frame(fd);
    deliver_to_backup(); /* "res", then "got" */
    assert_false(backup_accepts(s1));
    assert_true(backup_accepts(s3));
    drop(fd, 3);

    /* Lost again, then the owner dies: the promoted backup takes the secret of s3's resume. */
    char s4[AR__SIG_RESUME_LEN + 1];
    drop(resumed(s3, s4), 4);
    deliver_to_backup();
    B->nodes[0].seen_ms = mono_ms() - 5000;
    B->nodes[0].dead = 1;
    ar__sig_node_dead(B, OWNER_ID);
    assert_int_equal(r->owner, BACKUP_ID);
    assert_false(r->local->is_backup);
    assert_true(backup_accepts(s3));
    assert_true(backup_accepts(s4));
    assert_false(backup_accepts(s1));

    for (size_t b = 0; b < ar__sig_rec_buckets(B); b++)
        while (B->recs[b])
            ar__sig_rec_free(B, B->recs[b]);
    su_srv_free(B);
    B = NULL;
}

int main(void)
{
    ar_log_init("signal", AR_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lost_welcome, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_lost_welcomes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_secret_presented, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_session_keeps_none, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_after_handover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backup_keeps_it, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
