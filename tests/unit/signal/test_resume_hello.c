/*
 * A hello with a resume token that finds no memory to start the resume (srv.c on_hello,
 * resume.c ar__sig_resume_start): the client is told error internal and close 4014, the
 * session it resumes is left as it was, and its next resume, with the same secret, gets it
 * back. Before, the node sent resume_failed and started a new session: the client threw away
 * the one it still had.
 *
 * The hello goes through the worker's real message path: a signed token (sig_util.h su_mint),
 * a masked frame from a client socket, the codec, on_hello and the token check. Only the
 * arming of the allocation hook (ar_alloc_fail_after, as test_resume_oom.c uses it) needs a
 * seam: ar__sig_resume_start is wrapped at link time, so that exactly the allocations of the
 * resume's start fail, not those of the frame's parse or of the token check before it.
 * Three places run out: the attempt, the copy that catches the session's frames meanwhile,
 * and the attempt that would ask a promoter (our copy is kept, not demoted).
 * A worker loop on loopback (loop_harness.h, resume_fixture.h) with the bus's inbox; libnats is
 * stood in for.
 */
#include "bus_internal.h"
#include "resume_fixture.h"

#include "anteroom/alloc.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define INBOX_MAX (1 << 20)

static struct {
    rf_resume_t a; /* its claims: the token's */
    ar_token_key_t key;
    char token[AR_TOKEN_MAX];
    char resume[AR__SIG_RESUME_LEN + 1];
    long countdown; /* armed (>= 0): allocations that succeed before every one fails */
    atomic_int calls;
    int rc;      /* what the last ar__sig_resume_start returned */
    long failed; /* allocations that failed in it */
    /* Read on the loop after the refusal: the session as it was. */
    int found, owner_kept, no_copy, sessions;
    int ours_kept; /* the promoted copy here is still ours (not a backup), not connected */
} T;

int __real_ar__sig_resume_start(ar__sig_conn_t *cn, const ar_token_claims_t *claims,
                                const char *resume, int64_t last_seq);
int __wrap_ar__sig_resume_start(ar__sig_conn_t *cn, const ar_token_claims_t *claims,
                                const char *resume, int64_t last_seq);

/* On the loop, called by srv.c's hello. */
int __wrap_ar__sig_resume_start(ar__sig_conn_t *cn, const ar_token_claims_t *claims,
                                const char *resume, int64_t last_seq)
{
    long armed = T.countdown;
    T.countdown = -1;
    if (armed >= 0)
        ar_alloc_fail_after(armed);
    T.rc = __real_ar__sig_resume_start(cn, claims, resume, last_seq);
    T.failed = armed >= 0 ? ar_alloc_fail_after(-1) : 0;
    atomic_fetch_add(&T.calls, 1);
    return T.rc;
}

/* On the loop: session 'o' is worker 2's (away), with no copy here: a resume through us makes
 * the attempt, then a copy to catch its frames, then asks worker 2 for it. */
static void place_session(void *arg)
{
    (void)arg;
    ar__sig_rec_t *r = ar__sig_rec_get(LH.srv, su_peer('o'));
    LH_CHECK(r != NULL);
    r->owner = 2;
    r->away = 1;
    r->role = (unsigned)T.a.cl.role & 3u;
}

static int setup(void **state)
{
    (void)state;
    memset(&T, 0, sizeof(T));
    T.countdown = -1;
    rf_start(&T.a, INBOX_MAX);
    snprintf(T.a.cl.area, sizeof(T.a.cl.area), "area-1");
    su_signer(&T.key);
    lh_trust(&T.key);
    su_mint(&T.key, &T.a.cl, T.token, sizeof(T.token));
    lh_run(place_session, NULL);
    rf_resume_text(T.resume, su_peer('o'));
    return 0;
}

/* On the loop: the session after the refusal. */
static void look(void *arg)
{
    (void)arg;
    ar__sig_rec_t *r = ar__sig_rec_find(LH.srv, su_peer('o'));
    T.found = r != NULL;
    T.owner_kept = r && r->owner == 2 && r->away;
    T.no_copy = r && !r->local && !LH.srv->locals; /* no copy left, and no new session */
    T.sessions = (int)LH.srv->nsessions;
}

/* On the loop: worker 2 hands the session over (as sess.c's "taken" sets the answer). */
static void handed_over(void *arg)
{
    (void)arg;
    LH_CHECK(LH.last->state == AR__SIG_C_RESUMING && ar__sig_conn_resume(LH.last) != NULL);
    ar__sig_conn_resume(LH.last)->answer = 1;
    ar__sig_resume_tick(LH.srv, LH.last);
}

/* The client's second hello, with memory: the session comes back (worker 2 hands it over). */
static void resumed_second_time(void)
{
    int fd = lh_dial("/ok");
    su_hello(fd, T.token, T.resume, 0);
    lh_wait(&T.calls, 2);
    assert_int_equal(T.rc, 0);
    lh_run(handed_over, NULL);
    char text[1024];
    rf_expect_resumed(fd, text, sizeof(text));
    assert_non_null(strstr(text, su_peer('o')));
    close(fd);
    lh_wait(&LH.freed, 2);
}

/*
 * A hello that resumes 'o' with allocations failing after `countdown` succeed in the resume's
 * start: error internal, close 4014, the session as it was. Then a hello with the same secret
 * and memory: the resume starts, and once worker 2 hands the session over the client has it.
 */
static void refused_then_resumed(long countdown)
{
    int fd = lh_dial("/ok");
    T.countdown = countdown;
    su_hello(fd, T.token, T.resume, 0);
    rf_expect_error(fd, "internal");
    rf_expect_close(fd, AR_SIG_CLOSE_SHUTDOWN);
    assert_int_equal(atomic_load(&T.calls), 1);
    assert_int_equal(T.rc, AR_ENOMEM);
    assert_true(T.failed >= 1);
    close(fd);
    lh_wait(&LH.freed, 1);
    lh_run(look, NULL);
    assert_true(T.found);
    assert_true(T.owner_kept);
    assert_true(T.no_copy);
    assert_int_equal(T.sessions, 0);

    resumed_second_time();
}

/* No memory for the attempt itself (resume.c's first allocation). */
static void test_no_memory_for_attempt(void **state)
{
    (void)state;
    refused_then_resumed(0);
}

/* Memory for the attempt, none for the copy that catches the session's frames meanwhile: the
 * attempt is let go of, and no copy stays behind. */
static void test_no_memory_for_copy(void **state)
{
    (void)state;
    refused_then_resumed(1);
}

/* The same hello with memory: the resume starts at once (what the tests above refuse is the
 * memory, not the hello). */
static void test_with_memory(void **state)
{
    (void)state;
    int fd = lh_dial("/ok");
    su_hello(fd, T.token, T.resume, 0);
    lh_wait(&T.calls, 1);
    assert_int_equal(T.rc, 0);
    lh_run(handed_over, NULL);
    char text[1024];
    rf_expect_resumed(fd, text, sizeof(text));
    close(fd);
    lh_wait(&LH.freed, 1);
}

/* On the loop: session 'o' is ours, away, with the client's secret and subject, but worker 2
 * (alive) has promoted it meanwhile: a resume through us asks worker 2 first, keeping our copy
 * as a backup to fall back on (resume.c ask_promoter). */
static void place_promoted_elsewhere(void *arg)
{
    (void)arg;
    ar__sig_srv_t *srv = LH.srv;
    LH.conf.node_name = (char *)"node-a"; /* the hand-over picks a backup on another node */
    srv->nodes[srv->nnodes] = (ar__sig_node_t){.id = 2, .seen_ms = mono_ms()};
    snprintf(srv->nodes[srv->nnodes++].name, sizeof(srv->nodes[0].name), "node-b");
    ar__sig_rec_t *r = ar__sig_rec_find(srv, su_peer('o'));
    LH_CHECK(r != NULL);
    ar__sig_sess_t *s = ar__sig_sess_local_new(srv, r, 0, NULL);
    LH_CHECK(s != NULL);
    LH_CHECK(ar__sig_sess_resume_set(s, T.resume) == 0);
    ar__sig_subhash(&T.a.cl, s->subhash);
    ar__sig_sess_away_now(s, srv->now);
}

static void look_promoted(void *arg)
{
    (void)arg;
    ar__sig_rec_t *r = ar__sig_rec_find(LH.srv, su_peer('o'));
    T.ours_kept = r && r->owner == 2 && r->local && !r->local->is_backup && !r->local->conn &&
                  LH.srv->nsessions == 1;
}

/* No memory for the attempt that would ask the promoter: our copy is not demoted (it stays the
 * session's, ready for the next resume), and the next resume asks the promoter and gets it. */
static void test_no_memory_asking_promoter(void **state)
{
    (void)state;
    lh_run(place_promoted_elsewhere, NULL);
    int fd = lh_dial("/ok");
    T.countdown = 0;
    su_hello(fd, T.token, T.resume, 0);
    rf_expect_error(fd, "internal");
    rf_expect_close(fd, AR_SIG_CLOSE_SHUTDOWN);
    assert_int_equal(T.rc, AR_ENOMEM);
    close(fd);
    lh_wait(&LH.freed, 1);
    lh_run(look_promoted, NULL);
    assert_true(T.ours_kept);

    resumed_second_time();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_no_memory_for_attempt, setup, rf_teardown),
        cmocka_unit_test_setup_teardown(test_no_memory_for_copy, setup, rf_teardown),
        cmocka_unit_test_setup_teardown(test_no_memory_asking_promoter, setup, rf_teardown),
        cmocka_unit_test_setup_teardown(test_with_memory, setup, rf_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
