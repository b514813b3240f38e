/*
 * Frames lost for a session while its client resumes on this worker, after the old owner has
 * answered or handed over (docs/signal.md, "Messages dropped before the loop takes them"): a
 * lost notice (action 0xfe on to.<peer>) or a frame dropped at this worker's full inbox reaches
 * the copy being resumed, which is not the owner yet. It used to be ignored (only owners
 * counted), and once the old owner had let go nobody told the client. Now the resuming copy
 * counts it and the client gets error "lost" after the welcome, naming the hand-over's seq.
 * A worker loop on loopback (loop_harness.h) with the bus's inbox; libnats is stood in for
 * (fake_nats.c).
 */
#include "bus_internal.h"
#include "fake_nats.h"
#include "loop_harness.h"

#include "anteroom/alloc.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define INBOX_MAX 4096

static struct {
    ar_token_claims_t cl;
    int state_after;
    uint32_t notice_n; /* frames a notice says were lost; 0: a frame dropped at the inbox */
} T;

static int setup(void **state)
{
    (void)state;
    memset(&T, 0, sizeof(T));
    fake_nats_reset();
    lh_start(1, INBOX_MAX);
    su_claims(&T.cl, AR_TOKEN_PATIENT, "patient-1");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    lh_stop();
    return 0;
}

/* On the loop: the last connection's hello resumes session 'o', owned by worker 2. */
static void start_resume(void *arg)
{
    (void)arg;
    ar__sig_rec_t *r = ar__sig_rec_get(LH.srv, su_peer('o'));
    LH_CHECK(r != NULL);
    r->owner = 2;
    r->role = (uint8_t)T.cl.role;
    char resume[AR__SIG_RESUME_LEN + 1];
    snprintf(resume, sizeof(resume), "%s.AAAAAAAAAAAAAAAAAAAA", r->peer);
    LH_CHECK(ar__sig_resume_start(LH.last, &T.cl, resume, 0) == 0);
    T.state_after = LH.last->state;
}

/* On the loop: a loss for 'o' arrives on the bus and the loop takes it. */
static void loss_arrives(void *arg)
{
    (void)arg;
    char subj[64];
    snprintf(subj, sizeof(subj), "ar.eu.to.%s", su_peer('o'));
    if (T.notice_n) { /* another worker's publisher dropped T.notice_n frames for 'o' */
        uint8_t d[NOTICE_LEN];
        memset(d, 0, sizeof(d));
        d[0] = 3; /* from worker 3, counter 0 */
        d[24] = ACT_LOST;
        for (int i = 0; i < 4; i++)
            d[AR__SIG_TO_HDR + i] = (uint8_t)(T.notice_n >> (8 * i));
        ar__sig_bus_put(LH.srv->bus, subj, d, sizeof(d));
    } else { /* a frame over inbox-max: dropped here, a marker in its place */
        static char big[INBOX_MAX + 1];
        memset(big, 'x', sizeof(big));
        ar__sig_bus_put(LH.srv->bus, subj, big, sizeof(big));
    }
    ar__sig_bus_take(LH.srv);
}

/* On the loop: the owner's answer, the session handed over at seq 4, with no loss of its own. */
static void owner_hands_over(void *arg)
{
    (void)arg;
    char msg[160];
    int n = snprintf(msg, sizeof(msg),
                     "{\"k\":\"taken\",\"p\":\"%s\",\"ok\":true,\"seq\":4,\"ack\":0,\"fr\":[]}",
                     su_peer('o'));
    ar__sig_proc_msg(LH.srv, msg, (size_t)n, NULL);
}

static void resume_with_loss(uint32_t notice_n, const char *want)
{
    T.notice_n = notice_n;
    int fd = lh_dial("/ok");
    lh_run(start_resume, NULL);
    assert_int_equal(T.state_after, AR__SIG_C_RESUMING); /* waiting for the owner */
    lh_run(loss_arrives, NULL);
    lh_run(owner_hands_over, NULL);
    char text[1024];
    uint16_t code;
    assert_int_equal(lh_read(fd, text, sizeof(text), &code), 1);
    assert_non_null(strstr(text, "\"type\":\"welcome\""));
    assert_non_null(strstr(text, "\"resumed\":true"));
    int op = lh_read(fd, text, sizeof(text), &code);
    if (op != 1 || !strstr(text, "\"name\":\"lost\""))
        fail_msg("no error lost after the welcome (op %d): %s", op, op == 1 ? text : "");
    if (!strstr(text, want))
        fail_msg("error lost without \"%s\": %s", want, text);
    close(fd);
    lh_wait(&LH.freed, 1);
}

/* A lost notice for 3 frames while the client resumes: told after the welcome. */
static void test_notice_while_resuming(void **state)
{
    (void)state;
    resume_with_loss(3, "3 messages for this session were lost after seq 4");
}

/* A frame dropped at this worker's full inbox while the client resumes: told too. */
static void test_inbox_drop_while_resuming(void **state)
{
    (void)state;
    resume_with_loss(0, "1 messages for this session were lost after seq 4");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_notice_while_resuming, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inbox_drop_while_resuming, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
