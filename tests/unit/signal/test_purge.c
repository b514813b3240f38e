/*
 * When a patient's (or invitee's) session ends, what staff replay buffers hold about it goes
 * (P5, S4; protocol.md 5.13; src/signal/purge.c): on the staff session's owner and on its
 * backup, numbered and pending frames alike. Each frame about the patient keeps its seq and
 * fid and becomes "redacted"; a queue snapshot and a joined that also list others are rebuilt
 * without it; the other patients' frames and the removal notices (queue_remove, ended) stay
 * byte for byte. A resume, from the owner or from the backup promoted after the owner's death,
 * replays a contiguous sequence holding no byte of the patient's name, answers, SDP or
 * candidates. Without sockets or NATS, as test_sess_fid.c.
 */
#include "internal.h"
#include "sig_util.h"

#include "anteroom/alloc.h"

#include <jansson.h>
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define NF 13
#define STAFF "SSSSSSSSSSSSSSSSSSSSSS"
#define PAT "PPPPPPPPPPPPPPPPPPPPPP"
#define OTHER "QQQQQQQQQQQQQQQQQQQQQQ"
#define INV "IIIIIIIIIIIIIIIIIIIIII"

/* What the patient and its invitee typed or sent: no byte of it may stay in a buffer. */
static const char *const secrets[] = {"Alice Purgeable", "MARKER-7Q", "Ivy Invited",
                                      "198.51.100.77"};
/* The other patient's: stays. */
#define KEPT_NAME "Quentin Kept"

typedef struct frame_s {
    uint8_t fid[16];
    char data[2048];
    size_t len;
    int fate; /* KEEP, REDACT, REBUILD */
} frame_t;
enum { KEEP, REDACT, REBUILD };

static ar_sig_str_t str(const char *s)
{
    return (ar_sig_str_t){s, strlen(s)};
}

static void build(frame_t *f, ar_sig_msg_t *m, int fate, int nth)
{
    m->seq = 0; /* as every session-level frame is built (flows.c to_peer) */
    int n = ar_sig_build(AR_SIG_FROM_SERVER, m, f->data, sizeof(f->data));
    assert_true(n > 0);
    f->len = (size_t)n;
    f->fate = fate;
    memset(f->fid, 0, 16);
    f->fid[0] = 9;
    f->fid[8] = (uint8_t)nth;
}

static ar_sig_entry_t entry(const char *peer, const char *name, ar_sig_answer_t *a)
{
    ar_sig_entry_t e;
    memset(&e, 0, sizeof(e));
    e.peer = str(peer);
    e.name = str(name);
    e.answers = (ar_sig_list_t){a, a ? 1 : 0};
    e.since = 1732000000;
    e.status = AR_SIG_ST_WAITING;
    return e;
}

/* The frames a staff member's buffer holds when the consultation ends: about the patient PAT
 * (and its invitee INV), about another waiting patient OTHER, and the end's own notices. */
static size_t make_frames(frame_t *fr)
{
    static ar_sig_answer_t ap = {{"reason", 6}, {"MARKER-7Q chest pain", 20}};
    static ar_sig_answer_t aq = {{"reason", 6}, {"a rash", 6}};
    size_t n = 0;
    ar_sig_msg_t m;

    ar_sig_msg_init(&m, AR_SIG_QUEUE_ADD);
    m.u.queue.clinic = str("c1");
    m.u.queue.area = str("knee");
    m.u.queue.entry = entry(PAT, "Alice Purgeable", &ap);
    build(&fr[n], &m, REDACT, (int)n);
    n++;

    ar_sig_msg_init(&m, AR_SIG_QUEUE_ADD);
    m.u.queue.clinic = str("c1");
    m.u.queue.area = str("knee");
    m.u.queue.entry = entry(OTHER, KEPT_NAME, &aq);
    build(&fr[n], &m, KEEP, (int)n);
    n++;

    ar_sig_entry_t both[2] = {entry(PAT, "Alice Purgeable", &ap), entry(OTHER, KEPT_NAME, &aq)};
    ar_sig_msg_init(&m, AR_SIG_QUEUE);
    m.u.queue.clinic = str("c1");
    m.u.queue.area = str("knee");
    m.u.queue.entries = (ar_sig_list_t){both, 2};
    build(&fr[n], &m, REBUILD, (int)n);
    n++;

    ar_sig_peer_t peers[2];
    memset(peers, 0, sizeof(peers));
    peers[0].peer = str(PAT);
    peers[0].role = AR_SIG_ROLE_PATIENT;
    peers[0].name = str("Alice Purgeable");
    peers[1].peer = str(INV);
    peers[1].role = AR_SIG_ROLE_INVITEE;
    peers[1].name = str("Ivy Invited");
    ar_sig_msg_init(&m, AR_SIG_JOINED);
    m.u.join.room = str("room-1");
    m.u.join.peers = (ar_sig_list_t){peers, 2};
    m.u.join.profile = AR_SIG_Q_STANDARD;
    build(&fr[n], &m, REBUILD, (int)n);
    n++;

    ar_sig_msg_init(&m, AR_SIG_OFFER);
    m.u.sdp.peer = str(PAT);
    m.u.sdp.sdp = str("v=0\r\no=- 1 1 IN IP4 198.51.100.77\r\ns=MARKER-7Q\r\n");
    build(&fr[n], &m, REDACT, (int)n);
    n++;

    ar_sig_msg_init(&m, AR_SIG_CANDIDATE);
    m.u.cand.peer = str(PAT);
    m.u.cand.candidate = str("candidate:1 1 udp 2122260223 198.51.100.77 54400 typ host");
    build(&fr[n], &m, REDACT, (int)n);
    n++;

    ar_sig_msg_init(&m, AR_SIG_HOLD);
    m.u.act.peer = str(PAT);
    m.u.act.on = 1;
    build(&fr[n], &m, REDACT, (int)n);
    n++;

    ar_sig_msg_init(&m, AR_SIG_QUEUE_UPDATE);
    m.u.queue.clinic = str("c1");
    m.u.queue.area = str("knee");
    m.u.queue.peer = str(OTHER);
    m.u.queue.status = AR_SIG_ST_HOLD;
    build(&fr[n], &m, KEEP, (int)n);
    n++;

    ar_sig_msg_init(&m, AR_SIG_PEER_JOINED);
    m.u.peer_joined.peer = str(INV);
    m.u.peer_joined.role = AR_SIG_ROLE_INVITEE;
    m.u.peer_joined.name = str("Ivy Invited");
    build(&fr[n], &m, REDACT, (int)n);
    n++;

    ar_sig_msg_init(&m, AR_SIG_QUEUE_UPDATE);
    m.u.queue.clinic = str("c1");
    m.u.queue.area = str("knee");
    m.u.queue.peer = str(PAT);
    m.u.queue.status = AR_SIG_ST_SEEN;
    m.u.queue.by = str(STAFF);
    m.u.queue.by_name = str("Dr Ana");
    build(&fr[n], &m, REDACT, (int)n);
    n++;

    ar_sig_msg_init(&m, AR_SIG_ENDED);
    m.u.ended.room = str("room-1");
    m.u.ended.reason = AR_SIG_END_ENDED;
    build(&fr[n], &m, KEEP, (int)n);
    n++;

    ar_sig_msg_init(&m, AR_SIG_QUEUE_REMOVE);
    m.u.queue.clinic = str("c1");
    m.u.queue.area = str("knee");
    m.u.queue.peer = str(PAT);
    m.u.queue.reason = AR_SIG_GONE_ENDED;
    build(&fr[n], &m, KEEP, (int)n);
    n++;

    ar_sig_msg_init(&m, AR_SIG_PEER_LEFT);
    m.u.peer_left.peer = str(INV);
    m.u.peer_left.reason = AR_SIG_LEFT_LEFT;
    build(&fr[n], &m, KEEP, (int)n);
    n++;
    assert_int_equal(n, NF);
    return n;
}

/* A worker's records of the staff member (owned by worker 1, backed up by 2), the patient,
 * its invitee and the other patient. */
static void records(ar__sig_srv_t *srv)
{
    const char *peers[4] = {STAFF, PAT, INV, OTHER};
    const uint8_t roles[4] = {AR_SIG_ROLE_STAFF, AR_SIG_ROLE_PATIENT, AR_SIG_ROLE_INVITEE,
                              AR_SIG_ROLE_PATIENT};
    for (int i = 0; i < 4; i++) {
        ar__sig_rec_t *r = ar__sig_rec_get(srv, peers[i]);
        assert_non_null(r);
        r->role = roles[i] & 3u;
        r->owner = i == 0 ? 1 : 3;
        r->backup = i == 0 ? 2 : 4;
    }
}

/* The owner's numbered copy of f as the backup gets it (ar__sig_bus_num's batch of one). */
static void copy_to_backup(ar__sig_srv_t *b, const ar__sig_frame_t *f)
{
    uint8_t buf[1 + AR__SIG_NUM_HDR + 2048];
    size_t i = 0;
    buf[i++] = 'N';
    memcpy(buf + i, STAFF, AR__SIG_PEER_LEN);
    i += AR__SIG_PEER_LEN;
    ar__sig_le_put(buf + i, (uint64_t)f->seq, 8);
    i += 8;
    memcpy(buf + i, f->fid, 16);
    i += 16;
    buf[i++] = f->action;
    ar__sig_le_put(buf + i, f->len, 4);
    i += 4;
    assert_true(f->len <= sizeof(buf) - i);
    memcpy(buf + i, f->data, f->len);
    i += f->len;
    ar__sig_proc_msg(b, (const char *)buf, i, NULL);
}

/* The deletion of peer's record as a worker other than its owner applies it (rec.c). */
static void apply_del(ar__sig_srv_t *srv, const char *peer)
{
    json_t *o = json_pack("{s:s,s:s,s:b}", "o", "0000000000000003", "p", peer, "del", 1);
    assert_non_null(o);
    ar__sig_rec_apply(srv, o);
    json_decref(o);
}

/* Nothing the patient or the invitee typed or sent, in any byte of any frame's block. */
static void assert_no_secret(const ar__sig_srv_t *srv, const ar__sig_frame_t *list)
{
    for (const ar__sig_frame_t *f = list; f; f = f->next)
        for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
            if (memmem(f, ar__sig_frame_cap(srv, f), secrets[i], strlen(secrets[i])))
                fail_msg("seq %lld still holds \"%s\"", (long long)f->seq, secrets[i]);
}

/* The buffer holds frames seq 1..n with the fids they were numbered with, each as its fate
 * says: kept byte for byte, redacted, or rebuilt without the patient and its invitee. */
static void check_buffer(const ar__sig_srv_t *srv, const ar__sig_sess_t *s, const frame_t *fr,
                         size_t n)
{
    static const char red[] = AR__SIG_REDACTED_FRAME;
    size_t i = 0;
    uint32_t bytes = 0;
    for (const ar__sig_frame_t *f = s->head; f; f = f->next, i++) {
        assert_true(i < n);
        assert_int_equal(f->seq, (int64_t)i + 1);
        assert_memory_equal(f->fid, fr[i].fid, 16);
        bytes += f->len;
        switch (fr[i].fate) {
        case KEEP:
            assert_int_equal(f->len, fr[i].len);
            assert_memory_equal(f->data, fr[i].data, fr[i].len);
            break;
        case REDACT:
            assert_int_equal(f->len, sizeof(red) - 1);
            assert_string_equal(f->data, red);
            break;
        default:
            assert_true(f->len < fr[i].len);
            assert_null(strstr(f->data, PAT));
            assert_null(strstr(f->data, INV));
            assert_non_null(strstr(f->data, "\"seq\":0"));
            if (strstr(fr[i].data, KEPT_NAME))
                assert_non_null(strstr(f->data, KEPT_NAME)); /* the other patient stays */
            break;
        }
    }
    assert_int_equal(i, n);
    assert_int_equal(s->bytes, bytes);
    assert_no_secret(srv, s->head);
}

typedef struct rx_s {
    int64_t next;
    int redacted;
} rx_t;

/* A resumed client's view: each replayed frame parses, seq follows seq, nothing secret. */
static int replay_cb(void *arg, const ar__sig_frame_t *f)
{
    rx_t *rx = arg;
    char out[4096];
    size_t n = ar__sig_frame_wire(f, out, sizeof(out));
    assert_true(n > 0);
    for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
        assert_null(memmem(out, n, secrets[i], strlen(secrets[i])));
    ar_sig_msg_t m;
    ar_sig_err_t err;
    assert_int_equal(ar_sig_parse(AR_SIG_FROM_SERVER, out, n, &m, &err), 0);
    assert_int_equal(m.seq, rx->next);
    assert_int_equal(m.fid.len, AR__SIG_FID_LEN);
    rx->redacted += m.type == AR_SIG_REDACTED;
    ar_sig_msg_free(&m);
    rx->next++;
    return 0;
}

static uint64_t counted(const ar__sig_srv_t *srv)
{
    uint64_t n = 0;
    for (size_t i = 0; i < 65536; i++)
        n += srv->about_n[i];
    return n;
}

/*
 * Worker 1 owns the staff member's session and numbers the thirteen frames; worker 2 backs it
 * up and got the numbered copies of the first eight (the rest were in flight): it holds those
 * five as pending, from to.<peer>. The patient's and invitee's records are deleted on both
 * (the end: the patient's owner publishes "del"), the owner's own view through rec_publish.
 */
static void test_end_purges_owner_and_backup(void **state)
{
    (void)state;
    ar_sig_init();
    frame_t fr[NF];
    size_t n = make_frames(fr);
    ar__sig_srv_t *O = su_srv_new(1), *B = su_srv_new(2);
    records(O);
    records(B);
    ar__sig_sess_t *so = ar__sig_sess_link_new(O, ar__sig_rec_find(O, STAFF), 0);
    ar__sig_sess_t *sb = ar__sig_sess_link_new(B, ar__sig_rec_find(B, STAFF), 1);
    assert_non_null(so);
    assert_non_null(sb);
    for (size_t i = 0; i < n; i++) {
        ar__sig_sess_deliver(O, so, fr[i].fid, 0, fr[i].data, fr[i].len, 0);
        if (i < 8)
            copy_to_backup(B, so->tail);
        else
            ar__sig_sess_deliver(B, sb, fr[i].fid, 0, fr[i].data, fr[i].len, 0);
    }
    assert_int_equal(so->nframes, n);
    assert_int_equal(sb->nframes, 8);
    assert_int_equal(sb->cold->npending, n - 8);
    /* Before: the buffers hold the patient's name (the test can tell). */
    assert_non_null(memmem(so->head->data, so->head->len, secrets[0], strlen(secrets[0])));

    /* The owner worker's own deletions (it owns the patient too), and the backup's from the bus. */
    ar__sig_rec_publish(O, ar__sig_rec_find(O, PAT), "del");
    ar__sig_rec_publish(O, ar__sig_rec_find(O, INV), "del");
    apply_del(B, PAT);
    apply_del(B, INV);
    assert_null(ar__sig_rec_find(O, PAT));
    assert_null(ar__sig_rec_find(B, INV));

    check_buffer(O, so, fr, n);
    /* The backup: the eight copies as the owner's buffer; the four pending ones, unnumbered. */
    const ar__sig_frame_t *p = sb->cold->pending;
    for (size_t i = 8; i < n; i++, p = p->next) {
        assert_non_null(p);
        assert_memory_equal(p->fid, fr[i].fid, 16);
        if (fr[i].fate == KEEP)
            assert_memory_equal(p->data, fr[i].data, fr[i].len);
        else
            assert_string_equal(p->data, AR__SIG_REDACTED_FRAME);
    }
    assert_no_secret(B, sb->head);
    assert_no_secret(B, sb->cold->pending);

    /* A resume on the owner: thirteen frames, seq 1 to 13, six redacted. */
    rx_t rx = {1, 0};
    assert_int_equal(ar__sig_replay_to(so, 0, replay_cb, &rx), 0);
    assert_int_equal(rx.next, (int64_t)n + 1);
    assert_int_equal(rx.redacted, 6);

    /* The owner dies; the backup numbers its pending frames after the copies and a resume
     * there replays the same thirteen, the same six redacted. */
    ar__sig_node_dead(B, 1);
    assert_false(sb->is_backup);
    check_buffer(B, sb, fr, n);
    rx = (rx_t){1, 0};
    ar__sig_replay_to(sb, 0, replay_cb, &rx);
    assert_int_equal(rx.next, (int64_t)n + 1);
    assert_int_equal(rx.redacted, 6);

    /* The counts the purge relies on follow every frame in and out. */
    ar__sig_rec_free(O, ar__sig_rec_find(O, STAFF));
    ar__sig_rec_free(B, ar__sig_rec_find(B, STAFF));
    assert_int_equal(counted(O), 0);
    assert_int_equal(counted(B), 0);
    ar__sig_rec_free(O, ar__sig_rec_find(O, OTHER));
    ar__sig_rec_free(B, ar__sig_rec_find(B, OTHER));
    su_srv_free(O);
    su_srv_free(B);
}

/* A staff member's end changes nothing in others' buffers (staff data is not the patient's),
 * and a patient that nobody's buffer mentions costs no look at the sessions. */
static void test_staff_and_strangers(void **state)
{
    (void)state;
    ar_sig_init();
    frame_t fr[NF];
    size_t n = make_frames(fr);
    ar__sig_srv_t *O = su_srv_new(1);
    records(O);
    ar__sig_rec_t *st = ar__sig_rec_get(O, "TTTTTTTTTTTTTTTTTTTTTT");
    assert_non_null(st);
    st->role = AR_SIG_ROLE_STAFF;
    ar__sig_sess_t *so = ar__sig_sess_link_new(O, ar__sig_rec_find(O, STAFF), 0);
    assert_non_null(so);
    for (size_t i = 0; i < n; i++)
        ar__sig_sess_deliver(O, so, fr[i].fid, 0, fr[i].data, fr[i].len, 0);
    ar_sig_msg_t m;
    frame_t from_staff;
    ar_sig_msg_init(&m, AR_SIG_OFFER);
    m.u.sdp.peer = str("TTTTTTTTTTTTTTTTTTTTTT");
    m.u.sdp.sdp = str("v=0\r\n");
    build(&from_staff, &m, KEEP, 99);
    ar__sig_sess_deliver(O, so, from_staff.fid, 0, from_staff.data, from_staff.len, 0);
    uint64_t before = counted(O);
    assert_int_equal(ar__sig_frames_purge(O, st), 0);
    ar__sig_rec_t *stranger = ar__sig_rec_get(O, "ZZZZZZZZZZZZZZZZZZZZZZ");
    assert_non_null(stranger);
    stranger->role = AR_SIG_ROLE_PATIENT;
    assert_int_equal(ar__sig_frames_purge(O, stranger), 0);
    assert_int_equal(counted(O), before);
    assert_memory_equal(so->tail->data, from_staff.data, from_staff.len);
    /* The patient: seven frames changed, in place (five redacted, two rebuilt). */
    assert_int_equal(ar__sig_frames_purge(O, ar__sig_rec_find(O, PAT)), 7);
    assert_int_equal(ar__sig_frames_purge(O, ar__sig_rec_find(O, PAT)), 0); /* once */
    const char *all[] = {
        STAFF, PAT, INV, OTHER, "TTTTTTTTTTTTTTTTTTTTTT", "ZZZZZZZZZZZZZZZZZZZZZZ"};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        ar__sig_rec_free(O, ar__sig_rec_find(O, all[i]));
    assert_int_equal(counted(O), 0);
    su_srv_free(O);
}

/*
 * Frames about the patient that reach a worker after it applied the deletion: the owner's
 * numbered copies still in their batch, a frame on to.<peer> from another worker, a hand-over's
 * buffer. Each is redacted (or rebuilt) as it enters; AR__SIG_GONE_S later, no longer looked
 * for (a new frame naming that id is a new one's business, and none can come so late).
 */
static void test_late_frames(void **state)
{
    (void)state;
    ar_sig_init();
    frame_t fr[NF];
    size_t n = make_frames(fr);
    ar__sig_srv_t *O = su_srv_new(1), *B = su_srv_new(2);
    records(O);
    records(B);
    ar__sig_sess_t *so = ar__sig_sess_link_new(O, ar__sig_rec_find(O, STAFF), 0);
    ar__sig_sess_t *sb = ar__sig_sess_link_new(B, ar__sig_rec_find(B, STAFF), 1);
    assert_non_null(so);
    assert_non_null(sb);
    /* The backup applies the deletions before any copy arrives. */
    apply_del(B, PAT);
    apply_del(B, INV);
    for (size_t i = 0; i < n; i++) {
        ar__sig_sess_deliver(O, so, fr[i].fid, 0, fr[i].data, fr[i].len, 0);
        if (i < 8)
            copy_to_backup(B, so->tail);
        else
            ar__sig_sess_deliver(B, sb, fr[i].fid, 0, fr[i].data, fr[i].len, 0);
    }
    assert_no_secret(B, sb->head);
    assert_no_secret(B, sb->cold->pending);
    /* A hand-over's or adoption's buffer: the owner's, not purged (it never saw the deletion). */
    json_t *frames = ar__sig_frames_json(so);
    assert_non_null(frames);
    sb->seq = so->seq; /* as the message's seq is taken first (sess.c take_state, on_taken) */
    ar__sig_load_frames(B, sb, frames);
    json_decref(frames);
    check_buffer(B, sb, fr, n); /* all thirteen, as the purge on the owner would have left them */
    assert_no_secret(B, sb->head);

    /* Still looked for in the last second of the window (purge.c gone_lately, gone_in)... */
    B->now = B->gone_last + AR__SIG_GONE_S;
    fr[4].fid[15] = 2; /* another frame */
    ar__sig_sess_deliver(B, sb, fr[4].fid, 0, fr[4].data, fr[4].len, 0);
    assert_no_secret(B, sb->cold->pending);
    /* The same with its tag known, as a relay gives it (flows.c on_relay; internal.h
     * ar__sig_about_tag, where only the read tag was looked for lately). */
    fr[4].fid[15] = 3; /* another frame */
    ar__sig_sess_deliver_about(B, sb, fr[4].fid, 0, fr[4].data, fr[4].len, 0,
                               ar__sig_about_one(PAT, strlen(PAT)));
    assert_no_secret(B, sb->cold->pending);
    /* ...and, half a minute on, not any more. */
    B->now = B->gone_last + AR__SIG_GONE_S + 1;
    fr[4].fid[15] = 1; /* another frame */
    ar__sig_sess_deliver(B, sb, fr[4].fid, 0, fr[4].data, fr[4].len, 0);
    assert_non_null(sb->cold->pending_tail);
    assert_memory_equal(sb->cold->pending_tail->data, fr[4].data, fr[4].len);

    ar__sig_rec_free(O, ar__sig_rec_find(O, STAFF));
    ar__sig_rec_free(B, ar__sig_rec_find(B, STAFF));
    assert_int_equal(counted(O), 0);
    assert_int_equal(counted(B), 0);
    const char *rest[] = {PAT, INV, OTHER};
    for (size_t i = 0; i < 3; i++) {
        ar__sig_rec_t *r = ar__sig_rec_find(O, rest[i]);
        if (r)
            ar__sig_rec_free(O, r);
        if ((r = ar__sig_rec_find(B, rest[i])))
            ar__sig_rec_free(B, r);
    }
    su_srv_free(O);
    su_srv_free(B);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_end_purges_owner_and_backup),
        cmocka_unit_test(test_staff_and_strangers),
        cmocka_unit_test(test_late_frames),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
