/*
 * Error "lost" (src/signal/bus.c, ar__sig_sess_report_lost; review 4): a session's loss is
 * cleared only once its report went out on a connection that is still live. The report used to
 * clear it first, so a report whose send killed the connection (a client gone, a full socket)
 * forgot the loss, and the client that resumed was never told of its gap. Here the send kills
 * the connection (loop_harness.h, "/dead"); the client resumes on a second connection and must
 * get the report right after its welcome, before anything else.
 */
#include "loop_harness.h"

#include "anteroom/alloc.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static struct {
    ar__sig_sess_t *s;
    uint32_t lost;
    int state, had_conn;
} T;

static int setup(void **state)
{
    (void)state;
    memset(&T, 0, sizeof(T));
    lh_start(0, 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    lh_stop();
    return 0;
}

/* On the loop: the last connection becomes the live client of a session this worker owns,
 * at seq 7, and two frames for it are found dropped (as a K_LOST marker reports them). */
static void live_session_loses_two(void *arg)
{
    (void)arg;
    ar__sig_srv_t *srv = LH.srv;
    ar__sig_rec_t *r = ar__sig_rec_get(srv, su_peer('a'));
    LH_CHECK(r != NULL);
    r->owner = srv->node_id;
    r->role = AR_SIG_ROLE_PATIENT;
    ar__sig_sess_t *s = ar__sig_sess_link_new(srv, r, 0);
    LH_CHECK(s != NULL);
    ar__sig_sess_new_resume(s);
    s->seq = 7;
    ar__sig_conn_t *cn = LH.last;
    cn->sess = s;
    s->conn = cn;
    cn->state = AR__SIG_C_LIVE;
    ar__sig_sess_frames_lost(srv, r->peer, 2); /* reported at once: the send is made here */
    T.s = s;
    T.lost = s->cold->lost;
    T.state = cn->state;
}

/* On the loop: the client resumes on the last connection (resume.c's finish welcomes it), and
 * a ping follows: the report must come between the two. */
static void resume_on_last(void *arg)
{
    (void)arg;
    ar__sig_conn_t *cn = LH.last;
    ar__sig_sess_t *s = T.s;
    T.had_conn = s->conn != NULL;
    s->conn = cn;
    cn->sess = s;
    s->rec->away = 0;
    ar__sig_welcome(cn, s, 1);
    ar_sig_msg_t m;
    ar_sig_msg_init(&m, AR_SIG_PING);
    ar__sig_send0(cn, &m);
    T.lost = s->cold->lost;
    T.state = cn->state;
}

static void test_report_killed_by_send_is_kept(void **state)
{
    (void)state;
    int dead = lh_dial("/dead");
    lh_run(live_session_loses_two, NULL);
    assert_int_equal(T.state, AR__SIG_C_GONE); /* the report's send killed the connection */
    assert_int_equal(T.lost, 2);               /* and the loss is still to be told */
    assert_int_equal(T.s->cold->lost_after, 7);
    lh_wait(&LH.freed, 1);
    close(dead);

    int fd = lh_dial("/ok");
    lh_run(resume_on_last, NULL);
    assert_int_equal(T.had_conn, 0); /* the dead connection let go of it (srv.c on_free) */
    assert_int_equal(T.state, AR__SIG_C_LIVE);
    assert_int_equal(T.lost, 0); /* told now */
    char text[1024];
    uint16_t code;
    assert_int_equal(lh_read(fd, text, sizeof(text), &code), 1);
    assert_non_null(strstr(text, "\"type\":\"welcome\""));
    assert_non_null(strstr(text, "\"resumed\":true"));
    assert_int_equal(lh_read(fd, text, sizeof(text), &code), 1);
    assert_non_null(strstr(text, "\"type\":\"error\""));
    assert_non_null(strstr(text, "\"name\":\"lost\""));
    assert_non_null(strstr(text, "2 messages for this session were lost after seq 7"));
    assert_int_equal(lh_read(fd, text, sizeof(text), &code), 1);
    assert_non_null(strstr(text, "\"type\":\"ping\""));
    close(fd);
    lh_wait(&LH.freed, 2);
}

/* The same loss on a connection that takes the report: told once, cleared, not told again by
 * the next welcome. */
static void test_report_on_live_conn_is_cleared(void **state)
{
    (void)state;
    int fd = lh_dial("/ok");
    lh_run(live_session_loses_two, NULL);
    assert_int_equal(T.state, AR__SIG_C_LIVE);
    assert_int_equal(T.lost, 0);
    char text[1024];
    uint16_t code;
    assert_int_equal(lh_read(fd, text, sizeof(text), &code), 1);
    assert_non_null(strstr(text, "2 messages for this session were lost after seq 7"));
    lh_run(resume_on_last, NULL); /* a welcome again on the same connection */
    assert_int_equal(lh_read(fd, text, sizeof(text), &code), 1);
    assert_non_null(strstr(text, "\"type\":\"welcome\""));
    assert_int_equal(lh_read(fd, text, sizeof(text), &code), 1);
    assert_non_null(strstr(text, "\"type\":\"ping\""));
    close(fd);
    lh_wait(&LH.freed, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_report_killed_by_send_is_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report_on_live_conn_is_cleared, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
