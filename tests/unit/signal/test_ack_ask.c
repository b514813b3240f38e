/*
 * The ping that asks a client for an acknowledgement (srv.c ar__sig_conn_acks_due): a session
 * whose client holds frames it has not acknowledged is pinged once the flow of frames to it has
 * paused for AR__SIG_ACK_ASK_S, not only at the keepalive AR__SIG_PING_S later, and the client's
 * ack that answers it empties the replay buffer. Why: an idle session's set-up frames (joined,
 * peer_joined) were held up to 25 s, a third of what it cost in its first seconds
 * (docs/performance.md, "Idle sessions: a ping for the acknowledgement").
 *
 * The rule's cases on fabricated clocks, then the worker's real tick on a loop on loopback
 * (loop_harness.h): a patient's session gets a numbered frame, and its client must get a ping
 * within the harness's 5 s read (the keepalive alone would come after 25 s); its ack empties the
 * replay buffer.
 */
#include "resume_fixture.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static struct {
    rf_resume_t a;
    ar_token_key_t key;
    char token[AR_TOKEN_MAX];
    int64_t seq; /* of the frame delivered, read on the test's thread */
    int held;    /* frames held by the session, read on the loop's thread */
} T;

/* The rule itself, on a connection and session the test makes up (no loop needed). */
static void test_rule(void **state)
{
    (void)state;
    ar__sig_frame_t f = {0};
    ar__sig_sess_t s = {0};
    ar__sig_conn_t cn = {0};
    cn.sess = &s;
    cn.last_ping = 100;
    cn.last_tx = 100;
    assert_false(ar__sig_conn_acks_due(&cn, 110)); /* nothing held */
    s.head = s.tail = &f;
    assert_false(ar__sig_conn_acks_due(&cn, 101)); /* the flow may go on */
    assert_true(ar__sig_conn_acks_due(&cn, 100 + AR__SIG_ACK_ASK_S));
    cn.last_tx = 105; /* a frame after the keepalive's ping */
    assert_false(ar__sig_conn_acks_due(&cn, 106));
    assert_true(ar__sig_conn_acks_due(&cn, 107));
    cn.last_ping = 107; /* asked: not again until another frame goes */
    assert_false(ar__sig_conn_acks_due(&cn, 108));
    assert_false(ar__sig_conn_acks_due(&cn, 200));
    cn.last_tx = 201;
    assert_true(ar__sig_conn_acks_due(&cn, 203));
    /* The loop's 32-bit clock wrapping between the ping and the frame. */
    cn.last_ping = UINT32_MAX - 1;
    cn.last_tx = 1;
    assert_true(ar__sig_conn_acks_due(&cn, 3));
    cn.last_ping = 3;
    assert_false(ar__sig_conn_acks_due(&cn, 5));
    cn.sess = NULL; /* still saying hello */
    assert_false(ar__sig_conn_acks_due(&cn, 5));
}

/* On the loop: a session-level frame for the session of the last connection, as the bus hands
 * one over (a frame the worker delivers to its own session goes through the bus, which libnats'
 * stand-in does not carry back). */
static void deliver_one(void *arg)
{
    (void)arg;
    static const uint8_t fid[16] = {1, 2, 3};
    static const char frame[] = AR__SIG_REDACTED_FRAME;
    LH_CHECK(LH.last && LH.last->sess);
    ar__sig_sess_deliver(LH.srv, LH.last->sess, fid, AR__SIG_ACT_NONE, frame, sizeof(frame) - 1, 0);
}

/* On the loop: the worker's own once-a-second timer, which the harness leaves out. */
static void start_ticking(void *arg)
{
    (void)arg;
    ar_sn_loop_set_tick(LH.srv->loop, ar__sig_srv_tick, LH.srv);
}

static void count_held(void *arg)
{
    (void)arg;
    LH_CHECK(LH.last && LH.last->sess);
    T.held = LH.last->sess->nframes;
}

/* The next frame on fd, a text one, as JSON (NULL after 5 s without one: the harness's read). */
static json_t *next_json(int fd)
{
    char text[4096];
    uint16_t code = 0;
    if (lh_read(fd, text, sizeof(text), &code) < 0 || code != 0)
        return NULL;
    return json_loads(text, 0, NULL);
}

static void test_pinged_after_a_pause(void **state)
{
    (void)state;
    lh_run(start_ticking, NULL);
    int fd = lh_dial("/ok");
    su_hello(fd, T.token, NULL, 0);
    char text[1024];
    rf_expect_text(fd, text, sizeof(text), "\"type\":\"welcome\"", NULL);
    lh_run(deliver_one, NULL);
    json_t *o = next_json(fd);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "type")), "redacted");
    T.seq = json_integer_value(json_object_get(o, "seq"));
    assert_true(T.seq > 0);
    json_decref(o);
    lh_run(count_held, NULL);
    assert_int_equal(T.held, 1);
    /* The ping: within AR__SIG_ACK_ASK_S and a tick of the frame, well before the keepalive. */
    o = next_json(fd);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "type")), "ping");
    assert_int_equal(json_integer_value(json_object_get(o, "seq")), 0);
    json_decref(o);
    char ack[96];
    snprintf(ack, sizeof(ack), "{\"v\":1,\"type\":\"ack\",\"seq\":%lld}", (long long)T.seq);
    su_send_text(fd, ack);
    /* A ping sent after the ack comes back only when the worker has handled the ack. */
    su_send_text(fd, "{\"v\":1,\"type\":\"ping\",\"t\":7}");
    o = next_json(fd);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "type")), "pong");
    json_decref(o);
    lh_run(count_held, NULL);
    assert_int_equal(T.held, 0);
    close(fd);
}

static int setup(void **state)
{
    (void)state;
    memset(&T, 0, sizeof(T));
    rf_start(&T.a, 1 << 20);
    snprintf(T.a.cl.area, sizeof(T.a.cl.area), "area-1");
    su_signer(&T.key);
    lh_trust(&T.key);
    su_mint(&T.key, &T.a.cl, T.token, sizeof(T.token));
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rule),
        cmocka_unit_test_setup_teardown(test_pinged_after_a_pause, setup, rf_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
