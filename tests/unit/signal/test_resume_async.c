/*
 * A resume that fails asynchronously (src/signal/resume.c, ar__sig_resume_tick): the session is
 * another worker's, this worker asked for it, and the owner refuses ("taken" with ok false).
 * The client gets error resume_failed and, as after a hello without a resume, a new session:
 * which must pass the same checks as srv.c's hello does for one (both added after review):
 *  - admission (review 6a): while the bus is behind, close 4016 busy instead of a session;
 *  - an invite link opens one session: an invitee whose link was used gets bad_token and close
 *    4001, and the new session of an unused link claims it, so that it is not used again.
 * A worker loop on loopback (loop_harness.h, resume_fixture.h) with the bus's inbox; libnats is
 * stood in for (fake_nats.c), so that a new session's subscription succeeds without a server.
 */
#include "fake_nats.h"
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

#define INBOX_MAX 4096 /* admission refuses while the inbox holds more than half */

static struct {
    rf_resume_t a; /* the client's resume of 'o' (its claims set by each test) */
    int behind;    /* put a record in the inbox that makes the bus behind */
    char new_peer[AR__SIG_PEER_LEN + 1];
} T;

static int setup(void **state)
{
    (void)state;
    memset(&T, 0, sizeof(T));
    rf_start(&T.a, INBOX_MAX);
    return 0;
}

static void claims(ar_token_role_t role, const char *sub)
{
    su_claims(&T.a.cl, role, sub);
}

/* On the loop: the last connection's hello resumes session 'o', owned by worker 2, after (if
 * T.behind) a record update that makes the bus behind. */
static void start_resume(void *arg)
{
    (void)arg;
    if (T.behind) {
        /* A record update the loop has not taken yet, over half of inbox-max. */
        static char big[INBOX_MAX * 3 / 4];
        memset(big, ' ', sizeof(big));
        big[0] = '{';
        big[sizeof(big) - 1] = '}';
        ar__sig_bus_put(LH.srv->bus, "ar.eu.sess.x", big, sizeof(big));
        LH_CHECK(ar__sig_bus_admit(LH.srv) == 0);
    }
    /* A resume is never refused for the bus: it waits for the owner's answer (rf_dial_resuming
     * checks). */
    (void)rf_resume_o(&T.a, 2);
}

/* On the loop: the owner's answer, a refusal. */
static void owner_refuses(void *arg)
{
    (void)arg;
    rf_taken("\"ok\":false");
    ar__sig_conn_t *cn = LH.last;
    T.new_peer[0] = '\0';
    if (cn->state == AR__SIG_C_LIVE && cn->sess)
        snprintf(T.new_peer, sizeof(T.new_peer), "%s", cn->sess->rec->peer);
}

/* A client whose resume fails asynchronously; returns its connection after the refusal. */
static int resume_and_fail(void)
{
    int fd = rf_dial_resuming(start_resume, &T.a);
    lh_run(owner_refuses, NULL);
    rf_expect_error(fd, "resume_failed");
    return fd;
}

/* The bus is behind: no new session, close 4016 (no welcome). */
static void test_fallback_admitted_like_hello(void **state)
{
    (void)state;
    claims(AR_TOKEN_PATIENT, "patient-1");
    T.behind = 1;
    int fd = resume_and_fail();
    rf_expect_close(fd, AR_SIG_CLOSE_BUSY);
    assert_int_equal(T.new_peer[0], '\0');
    close(fd);
    lh_wait(&LH.freed, 1);
}

/* The bus is not behind: the new session is welcomed (so the test above can tell). */
static void test_fallback_welcomed_when_not_behind(void **state)
{
    (void)state;
    claims(AR_TOKEN_PATIENT, "patient-1");
    int fd = resume_and_fail();
    char text[1024];
    rf_expect_text(fd, text, sizeof(text), "\"type\":\"welcome\"", "\"resumed\":false");
    assert_int_equal(strlen(T.new_peer), AR__SIG_PEER_LEN);
    assert_null(strstr(text, su_peer('o'))); /* a new peer id */
    close(fd);
    lh_wait(&LH.freed, 1);
}

/* On the loop: the invitee's session 'o' used its link (its claim, as invite.c makes it). */
static void link_used_by_o(void *arg)
{
    (void)arg;
    LH_CHECK(ar__sig_invite_claim(LH.srv, &T.a.cl, su_peer('o')) == 0);
}

/* An invitee whose link its lost session used: refused, not a second session. */
static void test_fallback_used_invite_refused(void **state)
{
    (void)state;
    claims(AR_TOKEN_INVITEE, "invite-1");
    lh_run(link_used_by_o, NULL);
    int fd = resume_and_fail();
    char text[1024];
    /* Error bad_token naming the used link, not a welcome (a second session for the link). */
    rf_expect_text(fd, text, sizeof(text), "\"name\":\"bad_token\"", AR__SIG_INVITE_USED_TEXT);
    rf_expect_close(fd, AR_SIG_CLOSE_BAD_TOKEN);
    close(fd);
    lh_wait(&LH.freed, 1);
    assert_string_equal(ar__sig_invite_holder(LH.srv, "invite-1"), su_peer('o'));
}

/* An invitee whose link no session here used yet: the new session claims it, so a later
 * hello with the same link is refused. */
static void test_fallback_claims_invite(void **state)
{
    (void)state;
    claims(AR_TOKEN_INVITEE, "invite-2");
    int fd = resume_and_fail();
    char text[1024];
    rf_expect_text(fd, text, sizeof(text), "\"type\":\"welcome\"", NULL);
    assert_int_equal(strlen(T.new_peer), AR__SIG_PEER_LEN);
    const char *holder = ar__sig_invite_holder(LH.srv, "invite-2");
    if (!holder)
        fail_msg("the new session did not claim its invite link");
    assert_string_equal(holder, T.new_peer);
    assert_int_equal(ar__sig_invite_used(LH.srv, &T.a.cl), 1);
    /* The claim went to the other workers too (ar.eu.inv.<hash>). */
    char hex[33], subj[64];
    ar__sig_invite_key("invite-2", hex);
    snprintf(subj, sizeof(subj), "ar.eu.inv.%s", hex);
    int seen = 0;
    for (size_t i = 0; i < fake_nats_count(); i++)
        seen |= strcmp(fake_nats_get(i).subj, subj) == 0;
    assert_true(seen);
    close(fd);
    lh_wait(&LH.freed, 1);
}

/* A resume with an expired token (srv.c lets it try: the secret proves the client) that the
 * owner refuses: told token_expired and closed 4001, not given a new session the token could
 * no longer open. */
static void test_fallback_expired_token_refused(void **state)
{
    (void)state;
    claims(AR_TOKEN_PATIENT, "patient-1");
    T.a.cl.iat = (int64_t)time(NULL) - 700;
    T.a.cl.exp = T.a.cl.iat + 600;
    int fd = rf_dial_resuming(start_resume, &T.a);
    lh_run(owner_refuses, NULL);
    char text[1024];
    rf_expect_text(fd, text, sizeof(text), "\"name\":\"token_expired\"", NULL);
    rf_expect_close(fd, AR_SIG_CLOSE_BAD_TOKEN);
    assert_int_equal(T.new_peer[0], '\0');
    close(fd);
    lh_wait(&LH.freed, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fallback_admitted_like_hello, setup, rf_teardown),
        cmocka_unit_test_setup_teardown(test_fallback_welcomed_when_not_behind, setup, rf_teardown),
        cmocka_unit_test_setup_teardown(test_fallback_used_invite_refused, setup, rf_teardown),
        cmocka_unit_test_setup_teardown(test_fallback_claims_invite, setup, rf_teardown),
        cmocka_unit_test_setup_teardown(test_fallback_expired_token_refused, setup, rf_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
