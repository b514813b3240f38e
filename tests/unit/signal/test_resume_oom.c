/*
 * A resume through this worker that runs out of memory (src/signal/resume.c): the client is told
 * with error internal (protocol.md section 4, code 20) and close 4014, not closed without a word.
 *  - the owner handed the session over, and the new token's claims find no memory: the session
 *    is ours all the same, and the client, told, resumes it again with the secret it holds;
 *    the session stays away from the refusal on (not counted as connected until the refused
 *    connection is freed), with no connection attached;
 *  - the same, local, into a promoted copy that lags its client: the client's last_seq is taken
 *    and the promotion is over, so the next resume with the same last_seq gets the session;
 *  - with memory, the session handed over stays resumable (the copy made for the resume had
 *    no subject hash, and every later resume of the session was refused);
 *  - the owner refused, and the new session that replaces it finds no memory: error
 *    resume_failed, then error internal and close 4014 (as srv.c's hello does).
 * The allocation hook (ar_alloc_fail_after) fails every allocation of one step of the loop. A
 * worker loop on loopback (loop_harness.h, resume_fixture.h) with the bus's inbox; libnats is
 * stood in for.
 */
#include "resume_fixture.h"

#include "anteroom/alloc.h"

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
    rf_resume_t a;     /* the client's resume of 'o' */
    int answer;        /* the owner's answer: 1 handed over, -1 refused */
    long failed;       /* allocations that failed during the answer's step */
    int owned, backup; /* after the answer: the record names us, the copy is not a backup */
    /* After the refusal, in its step of the loop and once its connection is freed: the record
     * says away, no connection is attached, the client's secret and last_seq are kept. */
    int away, attached, secret_kept, promoted;
    int64_t seq;
} T;

static int setup(void **state)
{
    (void)state;
    memset(&T, 0, sizeof(T));
    rf_start(&T.a, INBOX_MAX);
    return 0;
}

/* On the loop: the owner's answer (as sess.c's "taken" sets it), handled with no memory. */
static void answer_without_memory(void *arg)
{
    (void)arg;
    ar__sig_conn_t *cn = LH.last;
    LH_CHECK(ar__sig_conn_resume(cn) != NULL);
    ar__sig_conn_resume(cn)->answer = T.answer;
    ar_alloc_fail_after(0);
    ar__sig_resume_tick(LH.srv, cn);
    T.failed = ar_alloc_fail_after(-1);
    ar__sig_rec_t *r = ar__sig_rec_find(LH.srv, su_peer('o'));
    T.owned = r && r->owner == LH.srv->node_id;
    T.backup = r && r->local && r->local->is_backup;
    T.away = r && r->away;
    T.attached = r && r->local && r->local->conn;
}

/* On the loop: the session handed over, after the refused connection is freed. */
static void look(void *arg)
{
    (void)arg;
    ar__sig_rec_t *r = ar__sig_rec_find(LH.srv, su_peer('o'));
    LH_CHECK(r != NULL && r->local != NULL);
    T.owned = r->owner == LH.srv->node_id;
    T.away = r->away;
    T.attached = r->local->conn != NULL;
    T.secret_kept = strstr(su_resume(r->local), RF_SECRET) != NULL;
    T.promoted = r->local->promoted;
    T.seq = r->local->seq;
}

/* The client on fd was told internal and 4014; once its connection is freed the session is
 * still ours, away, unattached, with its secret, and no longer promoted: resumable. */
static void refused_and_kept(int fd)
{
    rf_expect_error(fd, "internal");
    rf_expect_close(fd, AR_SIG_CLOSE_SHUTDOWN);
    close(fd);
    lh_wait(&LH.freed, 1);
    lh_run(look, NULL);
    assert_true(T.owned);
    assert_true(T.away);
    assert_false(T.attached);
    assert_true(T.secret_kept);
    assert_false(T.promoted);
}

/* Handed over, no memory for the token's claims: error internal and close 4014; the session is
 * ours and the client resumes it here at once, with the secret it had. */
static void test_handover_without_memory(void **state)
{
    (void)state;
    int fd = rf_dial_resuming(rf_resume_o_of_2, &T.a);
    T.answer = 1;
    lh_run(answer_without_memory, NULL);
    assert_true(T.failed >= 1);
    assert_true(T.owned);
    assert_false(T.backup);
    /* Away from the refusal on, not only once its connection is freed: the client is told to
     * come back, and until then the session is not connected to anyone. */
    assert_true(T.away);
    assert_false(T.attached);
    refused_and_kept(fd);
    /* Again, with memory: resumed here (the session is ours: rf_resume_o leaves its owner), the
     * session the hand-over brought. */
    fd = lh_dial("/ok");
    lh_run(rf_resume_o_of_2, &T.a);
    assert_int_equal(T.a.rc, 0);
    char text[1024];
    rf_expect_resumed(fd, text, sizeof(text));
    assert_non_null(strstr(text, su_peer('o')));
    close(fd);
    lh_wait(&LH.freed, 2);
}

/* On the loop: the owner's answer, the session handed over (with memory). */
static void handed_over(void *arg)
{
    (void)arg;
    LH_CHECK(ar__sig_conn_resume(LH.last) != NULL);
    ar__sig_conn_resume(LH.last)->answer = 1;
    ar__sig_resume_tick(LH.srv, LH.last);
}

/* On the loop: the last connection resumes 'o' with the secret in arg. */
static void resume_with(void *arg)
{
    T.a.rc = ar__sig_resume_start(LH.last, &T.a.cl, arg, 0);
}

/* With memory, the same hand-over: welcomed with a new secret, with which the client resumes
 * here again (the copy made for the resume learnt the token's subject: it had none, and every
 * later resume of the session was refused). */
static void test_handover_resumable_again(void **state)
{
    (void)state;
    int fd = rf_dial_resuming(rf_resume_o_of_2, &T.a);
    lh_run(handed_over, NULL);
    char text[1024];
    rf_expect_resumed(fd, text, sizeof(text));
    const char *p = strstr(text, "\"resume\":\"");
    assert_non_null(p);
    char secret[AR__SIG_RESUME_LEN + 1];
    memcpy(secret, p + 10, AR__SIG_RESUME_LEN);
    secret[AR__SIG_RESUME_LEN] = '\0';
    assert_null(strstr(secret, RF_SECRET)); /* renewed */
    close(fd);
    lh_wait(&LH.freed, 1);
    fd = lh_dial("/ok");
    lh_run(resume_with, secret);
    assert_int_equal(T.a.rc, 0);
    rf_expect_resumed(fd, text, sizeof(text));
    close(fd);
    lh_wait(&LH.freed, 2);
}

/* Refused by the owner, no memory for the new session: resume_failed, internal, close 4014. */
static void test_fallback_without_memory(void **state)
{
    (void)state;
    int fd = rf_dial_resuming(rf_resume_o_of_2, &T.a);
    T.answer = -1;
    lh_run(answer_without_memory, NULL);
    assert_true(T.failed >= 1);
    rf_expect_error(fd, "resume_failed");
    rf_expect_error(fd, "internal");
    rf_expect_close(fd, AR_SIG_CLOSE_SHUTDOWN);
    close(fd);
    lh_wait(&LH.freed, 1);
}

/* On the loop: session 'o' is ours, a promoted backup's copy that numbered up to 40 (the dead
 * owner's last frames never reached it), away. */
static void place_promoted(void *arg)
{
    (void)arg;
    ar__sig_rec_t *r = ar__sig_rec_get(LH.srv, su_peer('o'));
    LH_CHECK(r != NULL);
    ar__sig_sess_t *s = ar__sig_sess_local_new(LH.srv, r, 0, NULL);
    LH_CHECK(s != NULL);
    r->owner = LH.srv->node_id;
    r->role = (unsigned)T.a.cl.role & 3u;
    r->away = 1;
    LH_CHECK(rf_sess_secret(s) == 0);
    ar__sig_subhash(&T.a.cl, s->subhash);
    s->seq = 40;
    s->promoted = 1;
    ar__sig_sess_away_now(s, LH.srv->now);
}

/* On the loop: the client, which has frames up to 43, resumes here with no memory at all. */
static void resume_promoted_without_memory(void *arg)
{
    (void)arg;
    char resume[AR__SIG_RESUME_LEN + 1];
    rf_resume_text(resume, su_peer('o'));
    ar_alloc_fail_after(0);
    T.a.rc = ar__sig_resume_start(LH.last, &T.a.cl, resume, 43);
    T.failed = ar_alloc_fail_after(-1);
    ar__sig_rec_t *r = ar__sig_rec_find(LH.srv, su_peer('o'));
    LH_CHECK(r != NULL && r->local != NULL);
    T.away = r->away;
    T.attached = r->local->conn != NULL;
}

/* On the loop: the client resumes again, with memory and the same secret and last_seq. */
static void resume_promoted(void *arg)
{
    (void)arg;
    char resume[AR__SIG_RESUME_LEN + 1];
    rf_resume_text(resume, su_peer('o'));
    T.a.rc = ar__sig_resume_start(LH.last, &T.a.cl, resume, 43);
}

/* Local, into a promoted copy that lags its client, with no memory for the claims: refused, and
 * the session stays away; the client's last_seq is taken all the same (numbering goes on after
 * it, the promotion is over), so its next resume finds the session where it left it. */
static void test_promoted_without_memory(void **state)
{
    (void)state;
    lh_run(place_promoted, NULL);
    int fd = lh_dial("/ok");
    lh_run(resume_promoted_without_memory, NULL);
    assert_int_equal(T.a.rc, 0); /* finish() refused it: told, not to be told again by srv.c */
    assert_true(T.failed >= 1);
    assert_true(T.away);
    assert_false(T.attached);
    refused_and_kept(fd);
    assert_int_equal(T.seq, 43);
    fd = lh_dial("/ok");
    lh_run(resume_promoted, NULL);
    assert_int_equal(T.a.rc, 0);
    char text[1024];
    rf_expect_resumed(fd, text, sizeof(text));
    assert_non_null(strstr(text, "\"last_seq\":43"));
    close(fd);
    lh_wait(&LH.freed, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_handover_without_memory, setup, rf_teardown),
        cmocka_unit_test_setup_teardown(test_handover_resumable_again, setup, rf_teardown),
        cmocka_unit_test_setup_teardown(test_fallback_without_memory, setup, rf_teardown),
        cmocka_unit_test_setup_teardown(test_promoted_without_memory, setup, rf_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
