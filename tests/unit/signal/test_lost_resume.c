/*
 * Frames lost for a session while its client resumes on this worker, after the old owner has
 * answered or handed over (docs/signal.md, "Messages dropped before the loop takes them"): a
 * lost notice (action 0xfe on to.<peer>) or a frame dropped at this worker's full inbox reaches
 * the copy being resumed, which is not the owner yet. It used to be ignored (only owners
 * counted), and once the old owner had let go nobody told the client. Now the resuming copy
 * counts it and the client gets error "lost" after the welcome, naming the hand-over's seq.
 * A worker loop on loopback (loop_harness.h, resume_fixture.h) with the bus's inbox; libnats is
 * stood in for (fake_nats.c).
 */
#include "bus_internal.h"
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

#define INBOX_MAX 4096

static struct {
    rf_resume_t a;     /* the client's resume of 'o' */
    uint32_t notice_n; /* frames a notice says were lost; 0: a frame dropped at the inbox */
} T;

static int setup(void **state)
{
    (void)state;
    memset(&T, 0, sizeof(T));
    rf_start(&T.a, INBOX_MAX);
    return 0;
}

/* On the loop: a loss for 'o' arrives on the bus and the loop takes it. */
static void loss_arrives(void *arg)
{
    (void)arg;
    char subj[64];
    snprintf(subj, sizeof(subj), "ar.eu.to.%s", su_peer('o'));
    if (T.notice_n) { /* another worker's publisher dropped T.notice_n frames for 'o' */
        uint8_t d[NOTICE_LEN];
        su_lost_notice(d, 3, T.notice_n);
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
    rf_taken("\"ok\":true,\"seq\":4,\"ack\":0,\"fr\":[]");
}

static void resume_with_loss(uint32_t notice_n, const char *want)
{
    T.notice_n = notice_n;
    int fd = rf_dial_resuming(rf_resume_o_of_2, &T.a);
    lh_run(loss_arrives, NULL);
    lh_run(owner_hands_over, NULL);
    char text[1024];
    rf_expect_resumed(fd, text, sizeof(text));
    rf_expect_text(fd, text, sizeof(text), "\"name\":\"lost\"", want); /* after the welcome */
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
        cmocka_unit_test_setup_teardown(test_notice_while_resuming, setup, rf_teardown),
        cmocka_unit_test_setup_teardown(test_inbox_drop_while_resuming, setup, rf_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
