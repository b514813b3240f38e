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

#include "anteroom/alloc.h"

#include <jansson.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

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
 * waits no longer than that. The heartbeat's sweep then forgets a worker no longer heard. The
 * batch's age is set by hand: a sleeping test would fail on a machine that stalls it. */
static void test_sent_when_due(void **state)
{
    (void)state;
    su_worker_t w;
    worker(&w, 1000);
    assert_int_equal(ar__sig_bus_nums_waiting(w.srv->bus), 0); /* the loop does not ask */
    copy(&w, 1);
    assert_int_equal(ar__sig_bus_nums_waiting(w.srv->bus), 1);
    int ms = ar__sig_bus_nums_idle(w.srv);
    assert_true(ms >= 1 && ms <= 1000);
    assert_int_equal(fake_nats_count(), 0);
    w.srv->bus->nums[0].since_us -= 1000 * 1000;
    assert_int_equal(ar__sig_bus_nums_idle(w.srv), -1);
    assert_int_equal(ar__sig_bus_nums_waiting(w.srv->bus), 0);
    assert_int_equal(fake_nats_wait_entered(1), 0);
    assert_copies(0, PROC2, 1);
    assert_int_equal(w.srv->bus->nnums, 1); /* the idle pass only sends */
    ar__sig_bus_nums_sweep(w.srv);
    assert_int_equal(w.srv->bus->nnums, 0); /* worker 2 never sent a heartbeat here */
    su_worker_free(&w);
}

/* What the owner batches, the backup reads (sess.c on_nums): a small copy and one big enough
 * to grow the buffer past its first size, both numbered as sent, fid and action kept. */
static void test_backup_reads_the_batch(void **state)
{
    (void)state;
    su_worker_t w;
    worker(&w, 1000);
    static char big[10000];
    int n = snprintf(big, sizeof(big), "{\"v\":1,\"type\":\"offer\",\"seq\":0,\"sdp\":\"");
    memset(big + n, 'x', sizeof(big) - (size_t)n - 3);
    memcpy(big + sizeof(big) - 3, "\"}", 3);
    uint8_t f1[16] = {1}, f2[16] = {2};
    ar__sig_bus_num(w.srv, 2, su_peer('a'), 7, f1, AR__SIG_ACT_NONE, FRAME, strlen(FRAME));
    ar__sig_bus_num(w.srv, 2, su_peer('a'), 8, f2, AR__SIG_ACT_RESET_CAND, big, strlen(big));
    ar__sig_nums_t *q = &w.srv->bus->nums[0];
    assert_int_equal(q->frames, 2);
    assert_true(q->cap > 8192); /* grown twice, contents kept (below) */

    ar__sig_srv_t *B = su_srv_new(2);
    ar__sig_rec_t *r = ar__sig_rec_get(B, su_peer('a'));
    assert_non_null(r);
    r->owner = 1;
    r->backup = 2;
    ar__sig_sess_t *sb = ar__sig_sess_link_new(B, r, 1);
    assert_non_null(sb);
    ar__sig_proc_msg(B, (const char *)q->buf, q->len, NULL);
    assert_int_equal(sb->seq, 8);
    assert_int_equal(sb->nframes, 2);
    assert_int_equal(sb->head->seq, 7);
    assert_memory_equal(sb->head->fid, f1, 16);
    assert_int_equal(sb->head->len, strlen(FRAME));
    assert_memory_equal(sb->head->data, FRAME, strlen(FRAME));
    const ar__sig_frame_t *g = sb->head->next;
    assert_int_equal(g->seq, 8);
    assert_memory_equal(g->fid, f2, 16);
    assert_int_equal(g->action, AR__SIG_ACT_RESET_CAND);
    assert_int_equal(g->len, strlen(big));
    assert_memory_equal(g->data, big, strlen(big));
    ar__sig_rec_free(B, r);
    su_srv_free(B);

    /* Sent, the grown buffer is given back; the next batch starts small. */
    ar__sig_bus_nums_flush(w.srv->bus);
    assert_null(q->buf);
    copy(&w, 9);
    assert_int_equal(q->cap, 4096);
    su_worker_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_at_once),
        cmocka_unit_test(test_batch_per_backup),
        cmocka_unit_test(test_sent_when_due),
        cmocka_unit_test(test_backup_reads_the_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
