/*
 * Malformed worker-to-worker messages (proc.<worker>) as fuzz_signal_bus found or showed them
 * (docs/signal.md, "Fuzzing the bus"): what they say about a session's numbering is refused
 * unless a client could be sent it, so a backup promoted later never numbers past INT64_MAX
 * (signed overflow, sess.c own_frame and the promotion), and a frame id or subject hash that is
 * not 32 hex digits is refused instead of leaving bytes unwritten. Workers without sockets or
 * NATS; publications are caught by wrapping ar__sig_bus_rec and ar__sig_bus_proc at link time,
 * and ar__sig_bus_sub_to is wrapped to succeed.
 */
#include "bus_catch.h"
#include "internal.h"
#include "sig_util.h"

#include "anteroom/alloc.h"
#include "anteroom/log.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

static const char PEER[] = "PPPPPPPPPPPPPPPPPPPPPP";
static const char RESUME[] = "PPPPPPPPPPPPPPPPPPPPPP.rrrrrrrrrrrrrrrrrrrr";
static const char FID[] = "0102030405060708090a0b0c0d0e0f10";
static const char FRAME[] =
    "{\"v\":1,\"type\":\"peer_left\",\"seq\":0,\"peer\":\"x\",\"reason\":1}";
#define OWNER 1u
#define BACKUP 3u

/* A backup's copy subscribes to its peer's frames: here, as if it had. */
int __wrap_ar__sig_bus_sub_to(ar__sig_srv_t *srv, ar__sig_sess_t *s);
int __wrap_ar__sig_bus_sub_to(ar__sig_srv_t *srv, ar__sig_sess_t *s)
{
    (void)srv;
    (void)s;
    return 0;
}

/* Worker BACKUP with PEER's record (owned by OWNER, backed up here), and no copy yet. */
static ar__sig_srv_t *backup_worker(void)
{
    ar_log_init("signal", AR_LOG_ERROR);
    ar_sig_init();
    ar__sig_srv_t *srv = su_srv_new(BACKUP);
    ar__sig_rec_t *r = ar__sig_rec_get(srv, PEER);
    assert_non_null(r);
    r->owner = OWNER;
    r->backup = BACKUP;
    return srv;
}

static void worker_free(ar__sig_srv_t *srv)
{
    bc_clear();
    for (size_t b = 0; b < ar__sig_rec_buckets(srv); b++)
        while (srv->recs[b])
            ar__sig_rec_free(srv, srv->recs[b]);
    su_srv_free(srv);
}

static json_t *adopt(json_int_t seq, json_int_t ack, json_t *frames)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:o,s:b}", "k", "adopt", "p", PEER, "r", RESUME, "h",
                     "00000000000000000000000000000000", "seq", seq, "ack", ack, "fr",
                     frames ? frames : json_array(), "u", 0);
}

/* A backup worker (*srv) that took PEER's session from an adoption numbered up to seq,
 * acknowledged up to ack, with the buffer frames: the session as it holds it. */
static ar__sig_sess_t *adopted(ar__sig_srv_t **srv, json_int_t seq, json_int_t ack, json_t *frames)
{
    *srv = backup_worker();
    su_proc(*srv, adopt(seq, ack, frames));
    ar__sig_rec_t *r = ar__sig_rec_find(*srv, PEER);
    assert_non_null(r);
    assert_non_null(r->local);
    return r->local;
}

/* An adopt whose seq or ack no client could be sent makes no copy: a promotion would number on
 * from INT64_MAX (the fuzzer's UBSan report: signed overflow in own_frame). */
static void test_adopt_seq_out_of_range(void **state)
{
    (void)state;
    ar__sig_srv_t *srv = backup_worker();
    ar__sig_rec_t *r = ar__sig_rec_find(srv, PEER);
    su_proc(srv, adopt(INT64_MAX, 0, NULL));
    assert_null(r->local);
    su_proc(srv, adopt(AR_SIG_INT_MAX + 1, 0, NULL));
    assert_null(r->local);
    su_proc(srv, adopt(5, INT64_MAX, NULL));
    assert_null(r->local);
    su_proc(srv, adopt(-1, 0, NULL));
    assert_null(r->local);
    su_proc(srv, adopt(5, 2, NULL)); /* the same, well formed */
    assert_non_null(r->local);
    assert_int_equal(r->local->seq, 5);
    assert_int_equal(r->local->acked, 2);
    worker_free(srv);
}

/* The frames an adopt carries: one numbered 0, past what a client can be sent, or with a
 * short frame id is left out; the others are kept. */
static void test_adopt_frames_checked(void **state)
{
    (void)state;
    json_t *fr = json_pack("[[I,s,i,s],[I,s,i,s],[I,s,i,s],[I,s,i,s]]", (json_int_t)0, FID, 0,
                           FRAME, (json_int_t)INT64_MAX, FID, 0, FRAME, (json_int_t)3, "0102", 0,
                           FRAME, (json_int_t)4, FID, 0, FRAME);
    ar__sig_srv_t *srv;
    ar__sig_sess_t *s = adopted(&srv, 4, 0, fr);
    assert_int_equal(s->nframes, 1);
    assert_int_equal(s->head->seq, 4);
    worker_free(srv);
}

/* A buffer is taken in the order of its numbers and up to the session's seq, as its owner keeps
 * it: a frame numbered above the message's "seq", or not after the one before it, is left out.
 * Kept, the frame numbered above went to the client at the resume, and the new owner's next
 * frame took a number the client already had (the bus fuzzer with a connected client, through
 * a "taken": seq 2 twice). */
static void test_adopt_frames_in_order(void **state)
{
    (void)state;
    static const char *const fids[] = {
        "01010101010101010101010101010101", "05050505050505050505050505050505",
        "02020202020202020202020202020202", "03030303030303030303030303030303",
        "04040404040404040404040404040404"};
    json_int_t seqs[] = {1, 5, 2, 3, 3};
    json_t *fr = json_array();
    for (size_t i = 0; i < 5; i++)
        json_array_append_new(fr, json_pack("[I,s,i,s]", seqs[i], fids[i], 0, FRAME));
    ar__sig_srv_t *srv;
    ar__sig_sess_t *s = adopted(&srv, 3, 0, fr);
    assert_int_equal(s->nframes, 3);
    int64_t want = 1;
    for (const ar__sig_frame_t *f = s->head; f; f = f->next)
        assert_int_equal(f->seq, want++);
    assert_int_equal(s->tail->seq, 3);
    worker_free(srv);
}

/* What a buffer holds at or below the acknowledged seq it comes with is not kept: the client
 * has it, and a new frame no longer looks at the oldest to find it due (sess.c append). */
static void test_adopt_frames_acked(void **state)
{
    (void)state;
    static const char *const fids[] = {"01010101010101010101010101010101",
                                       "02020202020202020202020202020202",
                                       "03030303030303030303030303030303"};
    json_t *fr = json_array();
    for (size_t i = 0; i < 3; i++)
        json_array_append_new(fr, json_pack("[I,s,i,s]", (json_int_t)(i + 1), fids[i], 0, FRAME));
    ar__sig_srv_t *srv;
    ar__sig_sess_t *s = adopted(&srv, 3, 2, fr);
    assert_int_equal(s->nframes, 1);
    assert_int_equal(s->head->seq, 3);
    assert_ptr_equal(s->head, s->tail);
    worker_free(srv);
}

/* A subject hash that is not 32 hex digits leaves the copy's hash zero, not its first bytes
 * written over the last adopt's. */
static void test_adopt_short_hash(void **state)
{
    (void)state;
    ar__sig_srv_t *srv = backup_worker();
    json_t *o = adopt(1, 0, NULL);
    json_object_set_new(o, "h", json_string("ffffffffffffffffffffffffffffffff"));
    su_proc(srv, o);
    ar__sig_sess_t *s = ar__sig_rec_find(srv, PEER)->local;
    assert_non_null(s);
    assert_int_equal(s->subhash[15], 0xff);
    o = adopt(1, 0, NULL);
    json_object_set_new(o, "h", json_string("ab"));
    su_proc(srv, o);
    static const uint8_t zero[16];
    assert_memory_equal(s->subhash, zero, 16);
    worker_free(srv);
}

/* Numbered copies, one by one ("num") and batched ('N'): a seq out of 1..AR_SIG_INT_MAX or a
 * frame id that is not 32 hex digits is refused; the backup's numbering stays where it was. */
static void test_copies_checked(void **state)
{
    (void)state;
    ar__sig_srv_t *srv = backup_worker();
    su_proc(srv, adopt(0, 0, NULL));
    ar__sig_sess_t *s = ar__sig_rec_find(srv, PEER)->local;
    assert_non_null(s);
    json_int_t bad[] = {INT64_MAX, AR_SIG_INT_MAX + 1, 0, -1};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        su_proc(srv, json_pack("{s:s,s:s,s:I,s:s,s:i,s:s}", "k", "num", "p", PEER, "s", bad[i], "f",
                               FID, "a", 0, "d", FRAME));
    su_proc(srv, json_pack("{s:s,s:s,s:I,s:s,s:i,s:s}", "k", "num", "p", PEER, "s", (json_int_t)1,
                           "f", "0102", "a", 0, "d", FRAME));
    assert_int_equal(s->nframes, 0);
    assert_int_equal(s->seq, 0);

    uint64_t seqs[] = {0, (uint64_t)AR_SIG_INT_MAX + 1, UINT64_MAX};
    for (size_t i = 0; i < sizeof(seqs) / sizeof(seqs[0]); i++) {
        uint8_t batch[1 + AR__SIG_NUM_HDR + sizeof(FRAME)];
        size_t fl = sizeof(FRAME) - 1;
        batch[0] = 'N';
        memcpy(batch + 1, PEER, AR__SIG_PEER_LEN);
        ar__sig_le_put(batch + 1 + AR__SIG_PEER_LEN, seqs[i], 8);
        memset(batch + 1 + AR__SIG_PEER_LEN + 8, 7, 16);
        batch[1 + AR__SIG_PEER_LEN + 24] = 0;
        ar__sig_le_put(batch + 1 + AR__SIG_PEER_LEN + 25, fl, 4);
        memcpy(batch + 1 + AR__SIG_NUM_HDR, FRAME, fl);
        ar__sig_proc_msg(srv, (const char *)batch, 1 + AR__SIG_NUM_HDR + fl, NULL);
    }
    assert_int_equal(s->nframes, 0);
    assert_int_equal(s->seq, 0);

    su_proc(srv, json_pack("{s:s,s:s,s:I,s:s,s:i,s:s}", "k", "num", "p", PEER, "s", (json_int_t)1,
                           "f", FID, "a", 0, "d", FRAME));
    assert_int_equal(s->nframes, 1);
    assert_int_equal(s->seq, 1);
    worker_free(srv);
}

/* An "ack" past what a client can be sent is ignored: the promotion numbers the pending frames
 * after the ack (sess.c), which overflowed from INT64_MAX (the fuzzer's second UBSan report). */
static void test_ack_out_of_range(void **state)
{
    (void)state;
    ar__sig_srv_t *srv = backup_worker();
    su_proc(srv, adopt(0, 0, NULL));
    ar__sig_sess_t *s = ar__sig_rec_find(srv, PEER)->local;
    assert_non_null(s);
    su_proc(srv, json_pack("{s:s,s:s,s:I}", "k", "ack", "p", PEER, "s", (json_int_t)INT64_MAX));
    assert_int_equal(s->acked, 0);
    su_proc(srv, json_pack("{s:s,s:s,s:I}", "k", "ack", "p", PEER, "s", (json_int_t)2));
    assert_int_equal(s->acked, 2);
    worker_free(srv);
}

/* fid (16 bytes), send time (8), action (1), then frame: a message on to.<peer> (bus.c). */
static void to_peer(ar__sig_srv_t *srv, uint8_t id, const char *frame)
{
    uint8_t m[AR__SIG_TO_HDR + 128];
    size_t fl = strlen(frame);
    assert_true(fl <= sizeof(m) - AR__SIG_TO_HDR);
    memset(m, id, 16);
    memset(m + 16, 0, 9);
    memcpy(m + AR__SIG_TO_HDR, frame, fl);
    ar__sig_to_msg(srv, PEER, m, AR__SIG_TO_HDR + fl);
}

/* A batch of one numbered copy ('N', bus.c ar__sig_bus_num) of frame at seq. */
static void copy_batch(ar__sig_srv_t *srv, uint64_t seq, const char *frame)
{
    uint8_t batch[1 + AR__SIG_NUM_HDR + 128];
    size_t fl = strlen(frame);
    assert_true(fl <= sizeof(batch) - 1 - AR__SIG_NUM_HDR);
    batch[0] = 'N';
    memcpy(batch + 1, PEER, AR__SIG_PEER_LEN);
    ar__sig_le_put(batch + 1 + AR__SIG_PEER_LEN, seq, 8);
    memset(batch + 1 + AR__SIG_PEER_LEN + 8, (int)seq, 16);
    batch[1 + AR__SIG_PEER_LEN + 24] = 0;
    ar__sig_le_put(batch + 1 + AR__SIG_PEER_LEN + 25, fl, 4);
    memcpy(batch + 1 + AR__SIG_NUM_HDR, frame, fl);
    ar__sig_proc_msg(srv, (const char *)batch, 1 + AR__SIG_NUM_HDR + fl, NULL);
}

/* Frame bad from the bus is refused on the owner (to.<peer>) and on the backup (to.<peer> and a
 * batch of numbered copies); the same well formed is then taken on each. */
static void refused_from_bus(const char *bad)
{
    ar__sig_srv_t *srv = backup_worker();
    srv->node_id = OWNER;
    ar__sig_sess_t *s = ar__sig_sess_link_new(srv, ar__sig_rec_find(srv, PEER), 0);
    assert_non_null(s);
    to_peer(srv, 1, bad);
    assert_int_equal(s->seq, 0);
    assert_null(s->head);
    to_peer(srv, 2, FRAME); /* the same, well formed */
    assert_int_equal(s->seq, 1);
    assert_int_equal(s->nframes, 1);
    worker_free(srv);

    srv = backup_worker();
    su_proc(srv, adopt(0, 0, NULL));
    s = ar__sig_rec_find(srv, PEER)->local;
    assert_non_null(s);
    to_peer(srv, 1, bad);
    assert_int_equal(s->cold->npending, 0);
    copy_batch(srv, 1, bad);
    assert_int_equal(s->nframes, 0);
    assert_int_equal(s->seq, 0);
    to_peer(srv, 2, FRAME);
    copy_batch(srv, 1, FRAME);
    assert_int_equal(s->cold->npending, 1);
    assert_int_equal(s->nframes, 1);
    assert_int_equal(s->seq, 1);
    worker_free(srv);
}

/* A frame from the bus that is not UTF-8 is refused as it comes, on the owner (to.<peer>) and on
 * the backup (to.<peer> and numbered copies in a batch): numbered and kept, it went to the
 * client as a text frame (which RFC 6455 forbids; a browser fails the connection with 1007),
 * and again at every resume from the replay buffer, so the session could never be resumed (the
 * bus fuzzer with a connected client: its client's WebSocket parser refused the stream). */
static void test_frames_not_utf8(void **state)
{
    (void)state;
    refused_from_bus("{\"v\":1,\"type\":\"peer_left\",\"seq\":0,\"peer\":\"\x92\"}");
}

/* The eight-bytes-a-step test for a control character against the byte-at-a-time one: every
 * byte value at every place of a 19-byte run (two words and a tail), amid printable and
 * non-ASCII neighbours. */
static void test_has_control(void **state)
{
    (void)state;
    char buf[19];
    for (int fill = 0; fill < 2; fill++) {
        for (size_t at = 0; at < sizeof(buf); at++) {
            for (int b = 0; b < 256; b++) {
                memset(buf, fill ? 0xc3 : 'a', sizeof(buf));
                buf[at] = (char)b;
                assert_int_equal(ar__sig_has_control(buf, sizeof(buf)), b < 0x20);
                assert_int_equal(ar__sig_has_control(buf, at), 0); /* only before it */
            }
        }
    }
}

/* Nor a frame with a control character (no compact JSON frame the server builds has one; a NUL
 * cut what the client got, the bus fuzzer's find): not from to.<peer>, not in a batch of
 * numbered copies, not in an adoption's buffer (JSON strings, where it comes escaped). */
static void test_frames_with_controls(void **state)
{
    (void)state;
    static const char bad[] = "{\"v\":1,\"type\":\"peer_left\",\"seq\":0,\"peer\":\"a\x01\"}";
    refused_from_bus(bad);
    json_t *fr =
        json_pack("[[I,s,i,s],[I,s,i,s]]", (json_int_t)1, "01010101010101010101010101010101", 0,
                  bad, (json_int_t)2, "02020202020202020202020202020202", 0, FRAME);
    ar__sig_srv_t *srv;
    ar__sig_sess_t *s = adopted(&srv, 2, 0, fr);
    assert_int_equal(s->nframes, 1);
    assert_int_equal(s->head->seq, 2);
    worker_free(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adopt_seq_out_of_range), cmocka_unit_test(test_adopt_frames_checked),
        cmocka_unit_test(test_adopt_short_hash),       cmocka_unit_test(test_copies_checked),
        cmocka_unit_test(test_ack_out_of_range),       cmocka_unit_test(test_frames_not_utf8),
        cmocka_unit_test(test_adopt_frames_in_order),  cmocka_unit_test(test_adopt_frames_acked),
        cmocka_unit_test(test_frames_with_controls),   cmocka_unit_test(test_has_control),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
