/*
 * A connection's cold part (srv.c ar__sig_conn_cold): a quiet connection has none; the first
 * garbage frame or refusal over the rate makes it, the tick frees it once its window or episode
 * is over; without memory for it, a client sending garbage or passing its rate is closed at once
 * rather than kept uncounted. Run on a real worker loop (loop_harness.c), the checks on its
 * thread.
 */
#include "loop_harness.h"

#include "anteroom/alloc.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static void quiet_has_none(void *arg)
{
    (void)arg;
    LH_CHECK(LH.last->cold == NULL);
    LH_CHECK(ar__sig_conn_resume(LH.last) == NULL);
}

/* Garbage counted in the cold part, which the tick keeps through the window and frees after. */
static void garbage_counted_then_trimmed(void *arg)
{
    (void)arg;
    ar__sig_conn_t *cn = LH.last;
    uint32_t now = LH.srv->now;
    ar__sig_conn_garbage(cn);
    ar__sig_conn_garbage(cn);
    LH_CHECK(cn->cold != NULL && cn->cold->garbage == 2);
    LH_CHECK(cn->close_code == 0);
    ar__sig_conn_cold_trim(cn, now + AR__SIG_GARBAGE_WINDOW_S - 1);
    LH_CHECK(cn->cold != NULL);
    ar__sig_conn_cold_trim(cn, now + AR__SIG_GARBAGE_WINDOW_S);
    LH_CHECK(cn->cold == NULL);
}

static void garbage_without_memory(void *arg)
{
    (void)arg;
    ar__sig_conn_t *cn = LH.last;
    ar_alloc_fail_after(0);
    ar__sig_conn_garbage(cn);
    long failed = ar_alloc_fail_after(-1);
    LH_CHECK(failed > 0);
    LH_CHECK(cn->cold == NULL);
    LH_CHECK(cn->close_code == AR_SIG_CLOSE_GARBAGE);
}

/* The bucket emptied: the next message is refused, the episode timed in the cold part (not
 * closed), the tick keeps it while refusals are recent. */
static void over_rate_timed(void *arg)
{
    (void)arg;
    ar__sig_conn_t *cn = LH.last;
    cn->tokens_ms = 0;
    cn->refill_ms = (uint32_t)ar_sn_loop_now_ms(LH.srv->loop);
    LH_CHECK(ar__sig_conn_rate_admit(cn) == 0); /* in the loop's second 0 too (a harness's) */
    LH_CHECK(cn->cold != NULL && cn->cold->over_since != 0);
    LH_CHECK(cn->close_code == 0);
    uint32_t at = cn->cold->last_refused;
    ar__sig_conn_cold_trim(cn, at + 1);
    LH_CHECK(cn->cold != NULL);
    ar__sig_conn_cold_trim(cn, at + 2); /* a quiet two seconds: the episode is over */
    LH_CHECK(cn->cold == NULL);
}

static void over_rate_without_memory(void *arg)
{
    (void)arg;
    ar__sig_conn_t *cn = LH.last;
    cn->tokens_ms = 0;
    cn->refill_ms = (uint32_t)ar_sn_loop_now_ms(LH.srv->loop);
    ar_alloc_fail_after(0);
    int r = ar__sig_conn_rate_admit(cn);
    long failed = ar_alloc_fail_after(-1);
    LH_CHECK(failed > 0);
    LH_CHECK(r == -1);
    LH_CHECK(cn->close_code == AR_SIG_CLOSE_RATE_LIMIT);
}

static void test_quiet(void **state)
{
    (void)state;
    lh_start(0, 0);
    int fd = lh_dial("/");
    lh_run(quiet_has_none, NULL);
    close(fd);
    lh_stop();
}

/* fn on one connection; no_memory on a second, which must then be closed with code. */
static void counted_then_closed(void (*fn)(void *), void (*no_memory)(void *), uint16_t code)
{
    lh_start(0, 0);
    int fd = lh_dial("/");
    lh_run(fn, NULL);
    int fd2 = lh_dial("/");
    lh_run(no_memory, NULL);
    char text[256];
    uint16_t got = 0;
    while (lh_read(fd2, text, sizeof(text), &got) >= 0 && got == 0)
        ;
    assert_int_equal(got, code);
    close(fd);
    close(fd2);
    lh_stop();
}

static void test_garbage(void **state)
{
    (void)state;
    counted_then_closed(garbage_counted_then_trimmed, garbage_without_memory, AR_SIG_CLOSE_GARBAGE);
}

static void test_rate(void **state)
{
    (void)state;
    counted_then_closed(over_rate_timed, over_rate_without_memory, AR_SIG_CLOSE_RATE_LIMIT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quiet),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_rate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
