/*
 * A resume through this worker that runs out of memory (src/signal/resume.c): the client is told
 * with error internal (protocol.md section 4, code 20) and close 4014, not closed without a word.
 *  - the owner handed the session over, and the new token's claims find no memory: the session
 *    is ours all the same, and the client, told, resumes it again with the secret it holds;
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
    LH_CHECK(cn->resume != NULL);
    cn->resume->answer = T.answer;
    ar_alloc_fail_after(0);
    ar__sig_resume_tick(LH.srv, cn);
    T.failed = ar_alloc_fail_after(-1);
    ar__sig_rec_t *r = ar__sig_rec_find(LH.srv, su_peer('o'));
    T.owned = r && r->owner == LH.srv->node_id;
    T.backup = r && r->local && r->local->is_backup;
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
    rf_expect_error(fd, "internal");
    rf_expect_close(fd, AR_SIG_CLOSE_SHUTDOWN);
    close(fd);
    lh_wait(&LH.freed, 1);
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
    LH_CHECK(LH.last->resume != NULL);
    LH.last->resume->answer = 1;
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_handover_without_memory, setup, rf_teardown),
        cmocka_unit_test_setup_teardown(test_handover_resumable_again, setup, rf_teardown),
        cmocka_unit_test_setup_teardown(test_fallback_without_memory, setup, rf_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
