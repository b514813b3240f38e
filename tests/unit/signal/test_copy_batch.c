/*
 * The numbered copies an owner sends a backup (bus.c ar__sig_bus_num), gathered for copy-batch
 * milliseconds in a batch per backup worker (bus_nums.c): with 0 each goes at once; otherwise
 * they wait in one 'N' publication per backup, which every publication but a relayed frame
 * sends first. Over the libnats stand-in (fake_nats.c), which records publications.
 */
#include "bus_internal.h"
#include "bus_worker.h"
#include "fake_nats.h"
#include "sig_util.h"

#include <jansson.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

static const char FRAME[] = "{\"v\":1,\"type\":\"candidate\",\"seq\":0,\"from\":\"X\"}";
static const char PROC2[] = "ar.eu.proc.0000000000000002";
static const char PROC3[] = "ar.eu.proc.0000000000000003";

static void worker(su_worker_t *w, int64_t copy_batch_ms)
{
    memset(w, 0, sizeof(*w));
    ar_sig_init();
    fake_nats_reset();
    w->conf.copy_batch = copy_batch_ms;
    su_worker_new(w, 1, 1, 1 << 20);
}

/* Frame i of peer 'a', copied to worker `to`. */
static void copy_to(su_worker_t *w, uint64_t to, int i)
{
    uint8_t fid[16] = {(uint8_t)i};
    ar__sig_bus_num(w->srv, to, su_peer('a'), i, fid, AR__SIG_ACT_NONE, FRAME, strlen(FRAME));
}

static void copy(su_worker_t *w, int i)
{
    copy_to(w, 2, i);
}

/* Copies waiting in all batches. */
static unsigned waiting(su_worker_t *w)
{
    unsigned n = 0;
    for (size_t i = 0; i < w->srv->bus->nnums; i++)
        n += w->srv->bus->nums[i].frames;
    return n;
}

static void assert_copies(size_t i, const char *subj, size_t n)
{
    fake_pub_t p = fake_nats_get(i);
    assert_string_equal(p.subj, subj);
    assert_int_equal(p.data[0], 'N');
    assert_int_equal(p.len, 1 + n * (AR__SIG_NUM_HDR + strlen(FRAME)));
}

static void test_at_once(void **state)
{
    (void)state;
    su_worker_t w;
    worker(&w, 0);
    for (int i = 1; i <= 3; i++)
        copy(&w, i);
    assert_int_equal(waiting(&w), 0);
    assert_int_equal(fake_nats_wait_entered(3), 0);
    for (size_t i = 0; i < 3; i++)
        assert_copies(i, PROC2, 1);
    su_worker_free(&w);
}

/* Copies to worker 2 and 3 interleaved: a batch each. A relayed frame (for a session this
 * worker does not own) goes out ahead of them; anything else sends them first. */
static void test_batch_per_backup(void **state)
{
    (void)state;
    su_worker_t w;
    worker(&w, 10);
    for (int i = 1; i <= 4; i++)
        copy_to(&w, 2 + (i % 2), i);
    assert_int_equal(waiting(&w), 4);
    assert_int_equal(w.srv->bus->nnums, 2);
    int n = snprintf(w.srv->pub + AR__SIG_TO_HDR, AR_SIG_OUT_MAX, "%s", FRAME);
    ar__sig_bus_to(w.srv, su_peer('b'), AR__SIG_ACT_NONE, (size_t)n);
    assert_int_equal(fake_nats_wait_entered(1), 0);
    assert_int_equal(strncmp(fake_nats_get(0).subj, "ar.eu.to.", 9), 0);
    assert_int_equal(waiting(&w), 4);
    ar__sig_bus_proc(w.srv, 2, json_pack("{s:s}", "k", "x"));
    assert_int_equal(fake_nats_wait_entered(4), 0);
    /* The batches in the order they were made (worker 3's first), then the publication. */
    assert_copies(1, PROC3, 2);
    assert_copies(2, PROC2, 2);
    assert_string_equal(fake_nats_get(3).subj, PROC2);
    assert_int_equal(fake_nats_get(3).data[0], '{');
    assert_int_equal(waiting(&w), 0);
    su_worker_free(&w);
}

/* A batch goes once it is copy-batch old, when the loop is about to wait; until then the loop
 * waits no longer than that. A batch for a worker no longer heard is then dropped. */
static void test_sent_when_due(void **state)
{
    (void)state;
    su_worker_t w;
    worker(&w, 10);
    copy(&w, 1);
    int ms = ar__sig_bus_nums_idle(w.srv);
    assert_true(ms >= 1 && ms <= 10);
    assert_int_equal(fake_nats_count(), 0);
    struct timespec ts = {0, 11 * 1000 * 1000};
    nanosleep(&ts, NULL);
    assert_int_equal(ar__sig_bus_nums_idle(w.srv), -1);
    assert_int_equal(fake_nats_wait_entered(1), 0);
    assert_copies(0, PROC2, 1);
    assert_int_equal(w.srv->bus->nnums, 0); /* worker 2 never sent a heartbeat here */
    su_worker_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_at_once),
        cmocka_unit_test(test_batch_per_backup),
        cmocka_unit_test(test_sent_when_due),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
