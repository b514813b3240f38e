/*
 * A resume that makes a session this worker's (resume.c finish) in a room this worker knows was
 * ended (its marker came while another worker owned the session, so the room was not ended for
 * it here): the session is ended then, as `end` ends it (invite.c ar__sig_sess_check_ended), not
 * at a later sweep. The client gets its welcome, then `ended` and close 4007.
 * And a session whose copy caught an `ended` frame while the hand-over ran: that frame, numbered
 * as the copy's pending frames are, ends it inside finish, and nothing of it is read after (a
 * read of the freed session before, which ASan reports).
 * A worker loop on loopback (loop_harness.h, resume_fixture.h) with the bus's inbox; libnats is
 * stood in for.
 */
#include "bus_internal.h"
#include "resume_fixture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

static rf_resume_t A;      /* the client's resume of 'o' */
static const char *marker; /* the room whose marker this worker holds, or NULL */

/* On the loop: the marker of `marker` from worker 3, if any; then 'o', worker 2's session, in
 * "room-9", resumed through this worker (which asks worker 2 and waits). */
static void start_in_room(void *arg)
{
    ar__sig_srv_t *srv = LH.srv;
    if (marker) {
        char hex[33], msg[160];
        ar__sig_room_ended_key(marker, hex);
        int n = snprintf(msg, sizeof(msg),
                         "{\"w\":\"0000000000000003\",\"h\":\"%s\",\"e\":%lld,\"end\":true}", hex,
                         (long long)time(NULL) + 1800);
        ar__sig_invite_apply(srv, msg, (size_t)n);
        LH_CHECK(ar__sig_room_ended(srv, marker));
    }
    ar__sig_rec_t *r = ar__sig_rec_get(srv, su_peer('o'));
    LH_CHECK(r != NULL);
    r->owner = 2;
    ar__sig_rec_set_room(srv, r, "room-9");
    LH_CHECK(r->in_room != NULL);
    rf_resume_o(arg, 2);
}

/* On the loop: the copy made for the resume catches an `ended` frame for 'o' (the room ended
 * on another worker while the hand-over ran). */
static void ended_frame_caught(void *arg)
{
    (void)arg;
    ar__sig_rec_t *r = ar__sig_rec_find(LH.srv, su_peer('o'));
    LH_CHECK(r && r->local && r->local->is_backup);
    static const char frame[] =
        "{\"v\":1,\"type\":\"ended\",\"seq\":0,\"room\":\"room-9\",\"reason\":\"ended\"}";
    uint8_t fid[16] = {7};
    ar__sig_sess_deliver(LH.srv, r->local, fid, AR__SIG_ACT_ENDED, frame, sizeof(frame) - 1, 0);
    LH_CHECK(r->local->cold->npending == 1);
}

/* On the loop: worker 2 hands the session over; then the loop's wake-up for its bus (not
 * watched here) delivers what this worker queued for its own sessions (bus.c local_drain). */
static void owner_hands_over(void *arg)
{
    (void)arg;
    rf_taken("\"ok\":true,\"seq\":0,\"ack\":0,\"fr\":[],\"from\":\"0000000000000002\"");
    ar__sig_bus_take(LH.srv);
}

/* The client gets the session back, then `ended`, then close 4007, and the session is gone. */
static void expect_resumed_then_ended(int fd)
{
    char text[1024];
    rf_expect_resumed(fd, text, sizeof(text));
    rf_expect_text(fd, text, sizeof(text), "\"type\":\"ended\"", "\"room\":\"room-9\"");
    rf_expect_close(fd, 4007);
    close(fd);
    lh_wait(&LH.freed, 1);
}

/* This worker knows "room-9" ended; the resume makes 'o' its own: ended at once. */
static void test_resume_into_ended_room(void **state)
{
    (void)state;
    marker = "room-9";
    int fd = rf_dial_resuming(start_in_room, &A);
    lh_run(owner_hands_over, NULL);
    expect_resumed_then_ended(fd);
}

/* No marker here, but the copy caught the room's `ended` during the hand-over: numbered after
 * the welcome, it ends the session inside finish. */
static void test_ended_caught_during_handover(void **state)
{
    (void)state;
    marker = NULL;
    int fd = rf_dial_resuming(start_in_room, &A);
    lh_run(ended_frame_caught, NULL);
    lh_run(owner_hands_over, NULL);
    expect_resumed_then_ended(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_prestate_setup_teardown(test_resume_into_ended_room, rf_setup, rf_teardown,
                                                 &A),
        cmocka_unit_test_prestate_setup_teardown(test_ended_caught_during_handover, rf_setup,
                                                 rf_teardown, &A),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
