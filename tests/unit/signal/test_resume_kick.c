/*
 * A client resuming through this worker asks its session's new owner as soon as a record update
 * says the owner changed (src/signal/rec.c, resume.c ar__sig_resume_kick_marked): the update
 * marks the session, and one walk of the connections at the end of the batch of bus messages
 * kicks every client resuming into a marked session (was one walk per update). A session freed
 * while marked (its record deleted in the same batch) is not touched by that walk.
 * A worker loop on loopback (loop_harness.h, resume_fixture.h) with the bus's inbox; libnats is
 * stood in for (fake_nats.c), and the bus's ar__sig_bus_proc is wrapped at link time to see each
 * request.
 */
#include "bus_internal.h"
#include "resume_fixture.h"

#include "anteroom/alloc.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define INBOX_MAX (1 << 20)

static struct {
    rf_resume_t a;        /* the client's resume of 'o' */
    int state_after;      /* the connection's state after a later step */
    int takes[4];         /* "take" requests sent to worker i (on the loop's thread) */
    uint32_t last_try;    /* the attempt's last_try, read on the loop */
    int kick_pending;     /* srv->kicks after the record update, before the batch's end */
    int owned_here;       /* 'o' is this worker's own, not a backup copy */
    int wrong_secret;     /* resume_at_old_owner: the copy's secret is not the client's */
    int rc;               /* what ar__sig_resume_start returned there */
    uint64_t owner_after; /* the record's owner after the promoter's update */
    int created_local;    /* second_resume: the new attempt frees the copy when it fails */
    int first_waits;      /* second_resume: the first connection still has its attempt */
    int asked_at[8];      /* backs_off: takes[2] after the tick of second 101 + i */
    int copy_kept;        /* unanswered: 'o' still has the copy made for the resume */
} T;

void __real_ar__sig_bus_proc(ar__sig_srv_t *srv, uint64_t worker, void *json_obj);
void __wrap_ar__sig_bus_proc(ar__sig_srv_t *srv, uint64_t worker, void *json_obj);
void __wrap_ar__sig_bus_proc(ar__sig_srv_t *srv, uint64_t worker, void *json_obj)
{
    const char *k = json_string_value(json_object_get(json_obj, "k"));
    if (k && strcmp(k, "take") == 0 && worker < 4)
        T.takes[worker]++;
    __real_ar__sig_bus_proc(srv, worker, json_obj);
}

static int setup(void **state)
{
    (void)state;
    memset(&T, 0, sizeof(T));
    rf_start(&T.a, INBOX_MAX);
    return 0;
}

/* Worker id heard from just now (alive, ar__sig_node_alive). */
static void heard(ar__sig_srv_t *srv, uint64_t id)
{
    srv->nodes[srv->nnodes] = (ar__sig_node_t){.id = id, .seen_ms = mono_ms()};
    snprintf(srv->nodes[srv->nnodes++].name, sizeof(srv->nodes[0].name), "node-b");
}

/* On the loop: workers 2 and 3 are heard from (2 long ago and its death handled, when
 * owner_dead); the last connection's hello resumes session 'o', owned by worker 2 and backed
 * up by 3. */
static void resume_o(int owner_dead)
{
    ar__sig_srv_t *srv = LH.srv;
    LH.conf.node_name = (char *)"node-a"; /* a backup for a new session is picked by name */
    heard(srv, 2);
    heard(srv, 3);
    if (owner_dead) {
        srv->nodes[srv->nnodes - 2].seen_ms = mono_ms() - 60000;
        srv->nodes[srv->nnodes - 2].dead = 1;
    }
    srv->now = 100;
    ar__sig_rec_t *r = ar__sig_rec_get(srv, su_peer('o'));
    LH_CHECK(r != NULL);
    r->backup = 3;
    LH_CHECK(rf_resume_o(&T.a, 2) == r);
}

/* On the loop: resume_o, worker 2 alive: it is asked at once. */
static void start_resume(void *arg)
{
    (void)arg;
    resume_o(0);
    ar__sig_rec_t *r = ar__sig_rec_find(LH.srv, su_peer('o'));
    LH_CHECK(r != NULL);
    LH_CHECK(r->local != NULL);
    LH_CHECK(r->local->provisional);
}

/* A record update for 'o' from worker 3, as the bus's batch applies it. */
static void apply(const char *fields)
{
    char txt[256];
    snprintf(txt, sizeof(txt), "{\"o\":\"%016x\",\"p\":\"%s\",%s}", 3u, su_peer('o'), fields);
    json_t *o = json_loads(txt, 0, NULL);
    LH_CHECK(o != NULL);
    ar__sig_rec_apply(LH.srv, o);
    json_decref(o);
}

/* On the loop, in the same second as the first request (which would wait a second for the
 * next): worker 3 promoted its backup copy and says so. Then the batch's end. */
static void owner_moves(void *arg)
{
    (void)arg;
    apply("\"away\":1,\"own\":\"0000000000000003\",\"bk\":\"0000000000000000\",\"pr\":true");
    T.kick_pending = LH.srv->kicks;
    ar__sig_resume_kick_marked(LH.srv);
    ar__sig_conn_t *cn = LH.last;
    T.state_after = cn->state;
    T.last_try = ar__sig_conn_resume(cn) ? ar__sig_conn_resume(cn)->last_try : 0;
}

/* The client resuming into 'o' asks the new owner (3) at once, in the batch that moved it. */
static void test_kicked_when_owner_moves(void **state)
{
    (void)state;
    int fd = rf_dial_resuming(start_resume, &T.a);
    assert_int_equal(T.takes[2], 1);
    assert_int_equal(T.takes[3], 0);
    lh_run(owner_moves, NULL);
    assert_true(T.kick_pending);
    assert_int_equal(T.state_after, AR__SIG_C_RESUMING);
    assert_int_equal(T.takes[3], 1); /* not a second later, at its next tick */
    assert_int_equal(T.takes[2], 1);
    assert_int_equal(T.last_try, 100);
    close(fd);
    lh_wait(&LH.freed, 1);
}

/* On the loop: a batch with an update that moves 'o' twice; only one request per move. The
 * second batch finds nothing marked (the marks were cleared): no request. */
static void moves_then_nothing(void *arg)
{
    (void)arg;
    apply("\"away\":1,\"own\":\"0000000000000003\",\"bk\":\"0000000000000000\",\"pr\":true");
    ar__sig_resume_kick_marked(LH.srv);
    LH_CHECK(!LH.srv->kicks);
    ar__sig_rec_t *r = ar__sig_rec_find(LH.srv, su_peer('o'));
    LH_CHECK(r != NULL);
    LH_CHECK(r->local != NULL);
    LH_CHECK(!r->local->kick);
    /* An update that moves nothing marks nothing. */
    apply("\"away\":1,\"own\":\"0000000000000003\",\"bk\":\"0000000000000000\"");
    LH_CHECK(!LH.srv->kicks);
    ar__sig_resume_kick_marked(LH.srv);
}

static void test_marks_cleared(void **state)
{
    (void)state;
    int fd = rf_dial_resuming(start_resume, &T.a);
    lh_run(moves_then_nothing, NULL);
    assert_int_equal(T.takes[3], 1);
    assert_int_equal(T.takes[2], 1);
    close(fd);
    lh_wait(&LH.freed, 1);
}

/* On the loop: one batch moves 'o' (marked) and then deletes its record (its session freed
 * while marked); the walk at the batch's end does not touch it. */
static void moves_then_deleted(void *arg)
{
    (void)arg;
    apply("\"away\":1,\"own\":\"0000000000000003\",\"bk\":\"0000000000000000\",\"pr\":true");
    LH_CHECK(LH.srv->kicks);
    apply("\"del\":true");
    LH_CHECK((ar__sig_rec_find(LH.srv, su_peer('o'))) == NULL);
    ar__sig_resume_kick_marked(LH.srv);
    T.state_after = LH.last->state;
}

/* The attempt whose session went fails at its next look (the tick's, or the client's close):
 * under the asan preset, any read of the freed session is caught. */
static void tick_it(void *arg)
{
    (void)arg;
    ar__sig_resume_tick(LH.srv, LH.last);
}

static void test_marked_then_freed(void **state)
{
    (void)state;
    int fd = rf_dial_resuming(start_resume, &T.a);
    lh_run(moves_then_deleted, NULL);
    assert_int_equal(T.state_after, AR__SIG_C_RESUMING);
    assert_int_equal(T.takes[3], 0); /* nothing to ask for */
    lh_run(tick_it, NULL);
    char text[1024];
    uint16_t code;
    assert_int_equal(lh_read(fd, text, sizeof(text), &code), 1);
    assert_non_null(strstr(text, "\"name\":\"resume_failed\""));
    close(fd);
    lh_wait(&LH.freed, 1);
}

/* On the loop: this worker owned 'o' and lost its client; worker 3 promoted its copy meanwhile
 * (we were thought dead). The client comes back here, with the right secret unless
 * T.wrong_secret. Results in T, checked on the test's thread (a failed check on the loop's
 * thread would not reach cmocka). */
static void resume_at_old_owner(void *arg)
{
    (void)arg;
    ar__sig_srv_t *srv = LH.srv;
    LH.conf.node_name = (char *)"node-a";
    heard(srv, 2);
    heard(srv, 3);
    srv->now = 100;
    T.a.rc = -1000;
    ar__sig_rec_t *r = ar__sig_rec_get(srv, su_peer('o'));
    if (!r)
        return;
    r->owner = srv->node_id;
    r->backup = 3;
    r->role = (unsigned)T.a.cl.role & 3u;
    ar__sig_sess_t *s = ar__sig_sess_local_new(srv, r, 0, NULL);
    if (!s)
        return;
    LH_CHECK(rf_sess_secret(s) == 0);
    ar__sig_subhash(&T.a.cl, s->subhash);
    apply("\"away\":1,\"own\":\"0000000000000003\",\"bk\":\"0000000000000000\",\"pr\":true");
    T.owner_after = r->owner;
    if (T.wrong_secret)
        s->secret[0] ^= 0xff; /* not the client's */
    rf_resume_start(&T.a, r->peer);
    T.owned_here = r->local == s && !s->is_backup;
}

/* It asks the promoter (3) for the session rather than taking back its own stale copy. */
static void test_old_owner_asks_the_promoter(void **state)
{
    (void)state;
    int fd = lh_dial("/ok");
    lh_run(resume_at_old_owner, NULL);
    assert_int_equal(T.owner_after, 3);
    assert_int_equal(T.a.rc, 0);
    assert_int_equal(T.a.state_after, AR__SIG_C_RESUMING);
    assert_false(T.owned_here);
    assert_int_equal(T.takes[3], 1);
    close(fd);
    lh_wait(&LH.freed, 1);
}

/* On the loop, after resume_at_old_owner: the promoter refuses the hand-over. */
static void promoter_refuses(void *arg)
{
    (void)arg;
    rf_taken("\"ok\":false");
    ar__sig_resume_tick(LH.srv, LH.last);
    T.state_after = LH.last->state;
    ar__sig_rec_t *r = ar__sig_rec_find(LH.srv, su_peer('o'));
    T.owned_here = r && r->local && !r->local->is_backup && r->owner == LH.srv->node_id;
}

/* A promoter that refuses: the old owner's copy is the client's again (welcomed, as before it
 * asked), not a lost session and a stale backup copy. */
static void test_old_owner_falls_back(void **state)
{
    (void)state;
    int fd = lh_dial("/ok");
    lh_run(resume_at_old_owner, NULL);
    assert_int_equal(T.a.rc, 0);
    assert_int_equal(T.a.state_after, AR__SIG_C_RESUMING);
    lh_run(promoter_refuses, NULL);
    assert_int_equal(T.state_after, AR__SIG_C_LIVE);
    assert_true(T.owned_here);
    char text[1024];
    rf_expect_resumed(fd, text, sizeof(text));
    close(fd);
    lh_wait(&LH.freed, 1);
}

/* A client that cannot prove itself here does not make the old owner let go of its copy. */
static void test_old_owner_keeps_copy_for_a_stranger(void **state)
{
    (void)state;
    T.wrong_secret = 1;
    int fd = lh_dial("/ok");
    lh_run(resume_at_old_owner, NULL);
    assert_int_equal(T.a.rc, AR_EAUTH);
    assert_int_equal(T.takes[3], 0);
    assert_true(T.owned_here);
    close(fd);
    lh_wait(&LH.freed, 1);
}

/* On the loop: a second connection (the last one opened) resumes 'o' too, while the first
 * (arg) still waits for the owner. */
static void second_resume(void *arg)
{
    ar__sig_conn_t *first = arg;
    rf_resume_start(&T.a, su_peer('o'));
    T.created_local =
        ar__sig_conn_resume(LH.last) ? ar__sig_conn_resume(LH.last)->created_local : -1;
    T.first_waits =
        ar__sig_conn_resume(first) != NULL; /* first stays allocated until the batch's end */
}

/* The client reconnects before the owner answered: the new connection takes the attempt over
 * (and the copy made for it), the first is closed with 4010, and the owner is asked again. */
static void test_reconnect_while_waiting(void **state)
{
    (void)state;
    int fd1 = rf_dial_resuming(start_resume, &T.a);
    ar__sig_conn_t *first = LH.last;
    int fd2 = lh_dial("/ok");
    lh_run(second_resume, first);
    assert_int_equal(T.a.rc, 0);
    assert_int_equal(T.a.state_after, AR__SIG_C_RESUMING);
    assert_int_equal(T.created_local, 1);
    assert_false(T.first_waits);
    char text[1024];
    uint16_t code = 0;
    assert_int_equal(lh_read(fd1, text, sizeof(text), &code), 8);
    assert_int_equal(code, AR_SIG_CLOSE_REPLACED);
    close(fd1);
    close(fd2);
    lh_wait(&LH.freed, 2);
}

/* The same through the bus's inbox: the batch's end kicks (bus.c ar__sig_bus_wake). */
static void via_bus(void *arg)
{
    (void)arg;
    char txt[256];
    int n = snprintf(txt, sizeof(txt),
                     "{\"o\":\"%016x\",\"p\":\"%s\",\"away\":1,\"own\":\"0000000000000003\",\"bk\":"
                     "\"0000000000000000\",\"pr\":true}",
                     3u, su_peer('o'));
    ar__sig_bus_put(LH.srv->bus, "ar.eu.sess.x", txt, (size_t)n);
    ar__sig_bus_take(LH.srv);
    T.kick_pending = LH.srv->kicks;
}

static void test_via_bus(void **state)
{
    (void)state;
    int fd = rf_dial_resuming(start_resume, &T.a);
    lh_run(via_bus, NULL);
    assert_int_equal(T.takes[3], 1);
    assert_false(T.kick_pending);
    close(fd);
    lh_wait(&LH.freed, 1);
}

/* On the loop: the attempt's ticks of seconds 101 to 108, the owner silent (still alive), the
 * bus not behind; how many times it was asked after each. */
static void silent_owner(void *arg)
{
    (void)arg;
    ar__sig_srv_t *srv = LH.srv;
    for (int i = 0; i < 8; i++) {
        for (size_t j = 0; j < srv->nnodes; j++)
            if (srv->nodes[j].id == 2)
                srv->nodes[j].seen_ms = mono_ms(); /* worker 2 stays alive */
        srv->now = 101 + (uint32_t)i;
        ar__sig_resume_tick(srv, LH.last);
        T.asked_at[i] = T.takes[2];
    }
}

/* A silent owner is asked again after 1, 2, then 4 s (resume.c ask_gap), not every second: a
 * repeated ask is answered with the whole buffer again, which a node taking a storm of resumes
 * paid for tens of thousands of times. The attempt still gives up at its 8 s (its client told
 * to come back: test_unanswered_comes_back). */
static void test_asks_back_off(void **state)
{
    (void)state;
    int fd = rf_dial_resuming(start_resume, &T.a);
    assert_int_equal(T.takes[2], 1); /* at 100 */
    lh_run(silent_owner, NULL);
    static const int want[8] = {2, 2, 3, 3, 3, 3, 4, 4}; /* asked at 101, 103 and 107 */
    for (int i = 0; i < 8; i++)
        assert_int_equal(T.asked_at[i], want[i]);
    close(fd);
    lh_wait(&LH.freed, 1);
}

/* On the loop, after silent_owner: whether the copy made for the resume is still there. */
static void copy_after(void *arg)
{
    (void)arg;
    ar__sig_rec_t *r = ar__sig_rec_find(LH.srv, su_peer('o'));
    T.copy_kept = r && r->local && r->local->provisional;
}

/* An attempt whose live owner never answered within its 8 s does not lose the session: the
 * owner most likely still has it (its answer held back or lost on the bus). The client is told
 * to come back (close 4016 busy, no resume_failed and no new session) and the copy stays for
 * the answer. Before, it got resume_failed and a new session while the owner held the old. */
static void test_unanswered_comes_back(void **state)
{
    (void)state;
    int fd = rf_dial_resuming(start_resume, &T.a);
    lh_run(silent_owner, NULL);
    char text[1024];
    uint16_t code = 0;
    assert_int_equal(lh_read(fd, text, sizeof(text), &code), 8);
    assert_int_equal(code, AR_SIG_CLOSE_BUSY);
    lh_run(copy_after, NULL);
    assert_true(T.copy_kept);
    close(fd);
    lh_wait(&LH.freed, 1);
}

/* On the loop: resume_o with worker 2 (the owner) dead, its death handled here. */
static void start_resume_dead_owner(void *arg)
{
    (void)arg;
    resume_o(1);
}

/* A record that still names a dead owner (the promoter's update not here yet, or lost with a
 * connection) sends the attempt to the owner's backup, which promoted its copy at that death:
 * asked at once, the dead never. Before, nobody was asked until the update came. */
static void test_dead_owner_backup_asked(void **state)
{
    (void)state;
    int fd = rf_dial_resuming(start_resume_dead_owner, &T.a);
    assert_int_equal(T.takes[3], 1);
    assert_int_equal(T.takes[2], 0);
    close(fd);
    lh_wait(&LH.freed, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_kicked_when_owner_moves, setup, rf_teardown),
        cmocka_unit_test_setup_teardown(test_marks_cleared, setup, rf_teardown),
        cmocka_unit_test_setup_teardown(test_marked_then_freed, setup, rf_teardown),
        cmocka_unit_test_setup_teardown(test_via_bus, setup, rf_teardown),
        cmocka_unit_test_setup_teardown(test_old_owner_asks_the_promoter, setup, rf_teardown),
        cmocka_unit_test_setup_teardown(test_old_owner_falls_back, setup, rf_teardown),
        cmocka_unit_test_setup_teardown(test_old_owner_keeps_copy_for_a_stranger, setup,
                                        rf_teardown),
        cmocka_unit_test_setup_teardown(test_reconnect_while_waiting, setup, rf_teardown),
        cmocka_unit_test_setup_teardown(test_asks_back_off, setup, rf_teardown),
        cmocka_unit_test_setup_teardown(test_unanswered_comes_back, setup, rf_teardown),
        cmocka_unit_test_setup_teardown(test_dead_owner_backup_asked, setup, rf_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
