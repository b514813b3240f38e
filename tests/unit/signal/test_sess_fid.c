/*
 * Exactly once after a node's death (docs/protocol.md 5.10.1), without sockets or NATS: one
 * session's frames from two senders are numbered by its owner in one order and reach its
 * backup in another; some of the owner's numbered copies reach the backup, the rest are lost
 * (in flight when the owner died, or dropped by a full inbox), and the client saw a prefix of
 * what the owner sent. The backup is promoted (ar__sig_node_dead) and the client resumes there
 * with its last_seq. A client that drops by fid (the rule of 5.10.1, modelled here as
 * web/js/signal.js does it) then has every frame that survived exactly once, each sender's in
 * that sender's order; a client that dropped by seq alone would repeat or miss frames in some
 * of the same cases (checked too, so that the test can tell the two apart).
 */
#include "internal.h"
#include "sig_util.h"

#include "anteroom/alloc.h"
#include "anteroom/log.h"

#include <jansson.h>
#include <sodium.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define MAXF 24    /* frames per trial */
#define WINDOW 512 /* fids the client remembers */

/* A local session as ar__sig_sess_local_new makes it, without the bus subscription. */
static ar__sig_sess_t *sess_new(ar__sig_srv_t *srv, ar__sig_rec_t *r, int backup)
{
    ar__sig_sess_t *s = ar__sig_sess_link_new(srv, r, backup);
    assert_non_null(s);
    return s;
}

static const char PEER[] = "PPPPPPPPPPPPPPPPPPPPPP";

/* Worker 2 (*B) with the backup copy of PEER's session, which worker 1 owns. */
static ar__sig_sess_t *backup_copy(ar__sig_srv_t **B, ar__sig_rec_t **rb)
{
    *B = su_srv_new(2);
    *rb = ar__sig_rec_get(*B, PEER);
    assert_non_null(*rb);
    (*rb)->owner = 1;
    (*rb)->backup = 2;
    return sess_new(*B, *rb, 1);
}

static uint64_t rng = 88172645463325252ull;
static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

typedef struct frame_s {
    uint8_t fid[16];
    int sender; /* 0: X, 1: Y */
    int nth;    /* its place in its sender's order */
    char data[128];
    size_t len;
} frame_t;

/* The client: drops by fid (the last WINDOW processed) or, as before 5.10.1, by seq. */
typedef struct client_s {
    int by_fid;
    int64_t last_seq;
    char fids[WINDOW][AR__SIG_FID_LEN];
    size_t nfids;
    int got[MAXF]; /* times each frame was processed */
    int order[2][MAXF];
    int norder[2];
} client_t;

static void client_rx(client_t *c, const frame_t *all, size_t nall, const char *wire, size_t n)
{
    /* What a client reads from the wire: seq and fid, spliced by the server. */
    char buf[256];
    assert_true(n < sizeof(buf));
    memcpy(buf, wire, n);
    buf[n] = '\0';
    const char *sq = strstr(buf, "\"seq\":"), *fd = strstr(buf, ",\"fid\":\"");
    assert_non_null(sq);
    assert_non_null(fd);
    int64_t seq = strtoll(sq + 6, NULL, 10);
    assert_true(seq >= 1);
    const char *fid = fd + 8;
    assert_int_equal(fid[AR__SIG_FID_LEN], '"');
    if (c->by_fid) {
        /* A duplicate still counts for last_seq: frames come in the order of their seq, so
         * everything up to it has arrived (processed now or before, under another number). */
        for (size_t i = 0; i < c->nfids && i < WINDOW; i++) {
            if (memcmp(c->fids[i], fid, AR__SIG_FID_LEN) == 0) {
                if (seq > c->last_seq)
                    c->last_seq = seq;
                return;
            }
        }
        memcpy(c->fids[c->nfids++ % WINDOW], fid, AR__SIG_FID_LEN);
    } else if (seq <= c->last_seq) {
        return;
    }
    if (seq > c->last_seq)
        c->last_seq = seq;
    for (size_t i = 0; i < nall; i++) {
        char t[AR__SIG_FID_LEN];
        ar__sig_fid_text(all[i].fid, t);
        if (memcmp(t, fid, AR__SIG_FID_LEN) == 0) {
            c->got[i]++;
            c->order[all[i].sender][c->norder[all[i].sender]++] = all[i].nth;
            /* The frame itself arrives unchanged around the splice. */
            assert_non_null(strstr(buf, strstr(all[i].data, "\"from\"")));
            return;
        }
    }
    fail_msg("a frame nobody sent");
}

static void client_frame(client_t *c, const frame_t *all, size_t nall, const ar__sig_frame_t *f)
{
    char out[512];
    size_t n = ar__sig_frame_wire(f, out, sizeof(out));
    assert_true(n > 0);
    client_rx(c, all, nall, out, n);
}

typedef struct rx_s {
    client_t *c;
    const frame_t *all;
    size_t nall;
} rx_t;

static int replay_cb(void *arg, const ar__sig_frame_t *f)
{
    rx_t *rx = arg;
    client_frame(rx->c, rx->all, rx->nall, f);
    return 0;
}

/* The owner's numbered copy of f as the backup gets it (ar__sig_bus_num's batch of one). */
static void copy_to_backup(ar__sig_srv_t *b, const ar__sig_frame_t *f)
{
    uint8_t buf[1 + AR__SIG_NUM_HDR + 256];
    size_t i = 0;
    buf[i++] = 'N';
    memcpy(buf + i, PEER, AR__SIG_PEER_LEN);
    i += AR__SIG_PEER_LEN;
    for (int k = 0; k < 8; k++)
        buf[i++] = (uint8_t)((uint64_t)f->seq >> (8 * k));
    memcpy(buf + i, f->fid, 16);
    i += 16;
    buf[i++] = f->action;
    for (int k = 0; k < 4; k++)
        buf[i++] = (uint8_t)(f->len >> (8 * k));
    memcpy(buf + i, f->data, f->len);
    i += f->len;
    ar__sig_proc_msg(b, (const char *)buf, i, NULL);
}

typedef struct result_s {
    int ok_fid, ok_seq; /* exactly once and in order, with each rule */
} result_t;

/*
 * One trial. nf frames, each from X or Y (random), in their senders' order; the owner numbers
 * the first m in that order (it dies before the rest reach it); the backup receives the remote
 * senders' frames on to.<peer> in an order of its own that keeps each sender's order (NATS
 * does), interleaved at random with the first k of the owner's numbered copies, and maybe an
 * acknowledgement the client sent; the client saw the first j the owner sent. y_local: Y is a
 * client of the owner's own worker, so its frames reach the backup only as copies (and die with
 * the owner otherwise).
 */
static result_t trial(void)
{
    result_t res = {1, 1};
    size_t nf = 1 + rnd(MAXF);
    int y_local = (int)rnd(2);
    frame_t all[MAXF];
    int nth[2] = {0, 0};
    for (size_t i = 0; i < nf; i++) {
        frame_t *f = &all[i];
        f->sender = (int)rnd(2);
        f->nth = nth[f->sender]++;
        memset(f->fid, 0, 16);
        f->fid[0] = (uint8_t)(f->sender + 1); /* the sender's worker id, then its counter */
        f->fid[8] = (uint8_t)f->nth;
        f->fid[9] = (uint8_t)(rng >> 8); /* and noise: ids are not in any order */
        f->len = (size_t)snprintf(f->data, sizeof(f->data),
                                  "{\"v\":1,\"type\":\"candidate\",\"seq\":0,\"from\":\"%c\","
                                  "\"candidate\":\"candidate:%d\"}",
                                  f->sender ? 'Y' : 'X', f->nth);
    }
    /* The backup's own order of the remote frames: a random merge of the two senders. */
    size_t border[MAXF], nb = 0;
    {
        size_t q[2][MAXF], nq[2] = {0, 0}, h[2] = {0, 0};
        for (size_t i = 0; i < nf; i++)
            if (!(y_local && all[i].sender == 1))
                q[all[i].sender][nq[all[i].sender]++] = i;
        while (h[0] < nq[0] || h[1] < nq[1]) {
            int w = h[0] == nq[0] ? 1 : h[1] == nq[1] ? 0 : (int)rnd(2);
            border[nb++] = q[w][h[w]++];
        }
    }
    size_t m = rnd((unsigned)nf + 1), k = rnd((unsigned)m + 1), j = rnd((unsigned)m + 1);
    int ack_at = rnd(3) == 0 && j ? (int)(1 + rnd((unsigned)j)) : 0;
    /* The backup's events: 'F' a frame on to.<peer>, 'C' a copy, in a random merge, and where
     * an acknowledgement from the client passes them (it is small: it can pass copies a full
     * inbox dropped). Drawn once, so that both rules see the same trial. */
    char ev[2 * MAXF];
    size_t nev = 0, ack_after = ack_at ? rnd((unsigned)(nb + k) + 1) : 0;
    for (size_t f = 0, cc = 0; f < nb || cc < k;) {
        int copy = cc < k && (f == nb || rnd(2));
        ev[nev++] = copy ? 'C' : 'F';
        copy ? cc++ : f++;
    }

    for (int rule = 0; rule < 2; rule++) {
        ar__sig_srv_t *O = su_srv_new(1), *B;
        ar__sig_rec_t *ro = ar__sig_rec_get(O, PEER), *rb;
        assert_non_null(ro);
        ro->owner = 1; /* ro->backup stays 0: the copies are handed over below */
        ar__sig_sess_t *so = sess_new(O, ro, 0), *sb = backup_copy(&B, &rb);
        client_t *c = ar_calloc(1, sizeof(*c));
        assert_non_null(c);
        c->by_fid = rule == 0;

        /* The owner numbers and sends; the client reads the first j. */
        const ar__sig_frame_t *numbered[MAXF];
        for (size_t i = 0; i < m; i++) {
            ar__sig_sess_deliver(O, so, all[i].fid, 0, all[i].data, all[i].len, 0);
            numbered[i] = so->tail;
            assert_int_equal(so->tail->seq, (int64_t)i + 1);
            if (i < j)
                client_frame(c, all, nf, so->tail);
        }
        /* The backup: its to.<peer> frames and the first k copies, interleaved. */
        size_t hb = 0, hc = 0;
        for (size_t e = 0; e <= nev; e++) {
            if (ack_at && e == ack_after) {
                char a[96];
                int n =
                    snprintf(a, sizeof(a), "{\"k\":\"ack\",\"p\":\"%s\",\"s\":%d}", PEER, ack_at);
                ar__sig_proc_msg(B, a, (size_t)n, NULL);
            }
            if (e == nev)
                break;
            if (ev[e] == 'C') {
                copy_to_backup(B, numbered[hc++]);
            } else {
                const frame_t *f = &all[border[hb++]];
                ar__sig_sess_deliver(B, sb, f->fid, 0, f->data, f->len, 0);
            }
        }
        int64_t last = c->last_seq;

        /* The owner dies; the backup promotes itself; the client resumes there. */
        ar__sig_node_dead(B, 1);
        assert_int_equal(rb->owner, 2);
        assert_false(sb->is_backup);
        assert_true(ar__sig_sess_resumable(sb, last));
        if (last > sb->seq)
            sb->seq = last; /* as resume.c's finish does */
        rx_t rx = {c, all, nf};
        ar__sig_replay_to(sb, last, replay_cb, &rx);
        /* A second resume (the client lost the connection again at once) repeats nothing. */
        client_t again = *c;
        rx.c = &again;
        ar__sig_replay_to(sb, c->last_seq, replay_cb, &rx);
        assert_memory_equal(again.got, c->got, sizeof(c->got));

        /* Expected: what the client got live, and whatever reached the backup. */
        int ok = 1;
        for (size_t i = 0; i < nf; i++) {
            int live = 0, at_backup = 0;
            for (size_t x = 0; x < j; x++)
                live |= x == i;
            for (size_t x = 0; x < nb; x++)
                at_backup |= border[x] == i;
            for (size_t x = 0; x < k; x++)
                at_backup |= x == i;
            int want = live || at_backup;
            if (c->got[i] != want)
                ok = 0;
        }
        for (int snd = 0; snd < 2; snd++)
            for (int x = 1; x < c->norder[snd]; x++)
                if (c->order[snd][x] <= c->order[snd][x - 1])
                    ok = 0;
        if (rule == 0)
            res.ok_fid = ok;
        else
            res.ok_seq = ok;
        ar_free(c);
        ar__sig_rec_free(O, ro);
        ar__sig_rec_free(B, rb);
        assert_int_equal(O->nsessions, 0);
        assert_int_equal(B->nsessions, 0);
        su_srv_free(O);
        su_srv_free(B);
    }
    return res;
}

static void test_exactly_once_after_promotion(void **state)
{
    (void)state;
    int seq_failed = 0;
    for (int t = 0; t < 600; t++) {
        uint64_t seed = rng;
        result_t r = trial();
        if (!r.ok_fid)
            fail_msg("trial %d (seed %llu): a frame repeated, missing or out of its sender's order",
                     t, (unsigned long long)seed);
        seq_failed += !r.ok_seq;
    }
    /* The seq rule alone repeats or misses frames in some of these trials: 5.10.1's case. */
    assert_true(seq_failed > 0);
}

/* The case 5.10.1 describes, by hand: X's x0 and Y's y0 reach the owner as x0, y0 and the
 * backup as y0, x0; the owner sent only x0 (seq 1) before it died, and no copy left. */
static void test_two_orders_by_hand(void **state)
{
    (void)state;
    ar__sig_srv_t *O = su_srv_new(1), *B;
    ar__sig_rec_t *ro = ar__sig_rec_get(O, PEER), *rb;
    assert_non_null(ro);
    ro->owner = 1;
    ar__sig_sess_t *so = sess_new(O, ro, 0), *sb = backup_copy(&B, &rb);
    const uint8_t fx[16] = {1, 0, 0, 0, 0, 0, 0, 0, 7}, fy[16] = {2, 0, 0, 0, 0, 0, 0, 0, 9};
    const char dx[] =
        "{\"v\":1,\"type\":\"candidate\",\"seq\":0,\"from\":\"X\",\"candidate\":\"\"}";
    const char dy[] =
        "{\"v\":1,\"type\":\"candidate\",\"seq\":0,\"from\":\"Y\",\"candidate\":\"\"}";
    ar__sig_sess_deliver(O, so, fx, 0, dx, strlen(dx), 0);
    ar__sig_sess_deliver(O, so, fy, 0, dy, strlen(dy), 0);
    char wire[256];
    size_t n = ar__sig_frame_wire(so->head, wire, sizeof(wire));
    wire[n] = '\0';
    char t[AR__SIG_FID_LEN + 1] = {0};
    ar__sig_fid_text(fx, t);
    assert_string_equal(t, "AQAAAAAAAAAHAAAAAAAAAA");
    assert_string_equal(wire, "{\"v\":1,\"type\":\"candidate\",\"seq\":1,\"fid\":"
                              "\"AQAAAAAAAAAHAAAAAAAAAA\",\"from\":\"X\",\"candidate\":\"\"}");
    /* Too small a buffer, or a frame without the placeholder: nothing. */
    assert_int_equal(ar__sig_frame_wire(so->head, wire, n - 1), 0);
    assert_int_equal(ar__sig_frame_wire(so->head, wire, n), n);

    ar__sig_sess_deliver(B, sb, fy, 0, dy, strlen(dy), 0);
    ar__sig_sess_deliver(B, sb, fx, 0, dx, strlen(dx), 0);
    ar__sig_node_dead(B, 1);
    assert_int_equal(sb->seq, 2);
    assert_true(sb->head->uncertain && sb->tail->uncertain);
    assert_memory_equal(sb->head->fid, fy, 16); /* the backup's 1 is y0, the owner's was x0 */
    /* The client resumes with last_seq 1: y0 (its 1 here) is replayed although not above 1,
     * then x0 (2), which the client drops by fid. */
    client_t c;
    memset(&c, 0, sizeof(c));
    c.by_fid = 1;
    frame_t all[2] = {{.sender = 0}, {.sender = 1}};
    memcpy(all[0].fid, fx, 16);
    memcpy(all[1].fid, fy, 16);
    snprintf(all[0].data, sizeof(all[0].data), "%s", dx);
    snprintf(all[1].data, sizeof(all[1].data), "%s", dy);
    client_frame(&c, all, 2, so->head);
    rx_t rx = {&c, all, 2};
    assert_int_equal(ar__sig_replay_to(sb, 1, replay_cb, &rx), 1);
    assert_int_equal(c.got[0], 1);
    assert_int_equal(c.got[1], 1);
    assert_int_equal(c.last_seq, 2);
    assert_false(sb->head->uncertain || sb->tail->uncertain);
    assert_int_equal(ar__sig_replay_to(sb, 1, replay_cb, &rx), 0); /* once only */
    ar__sig_rec_free(O, ro);
    ar__sig_rec_free(B, rb);
    su_srv_free(O);
    su_srv_free(B);
}

/* A frame f holding body d (n bytes, NULs included), numbered 3. */
static ar__sig_frame_t *wire_frame(const char *d, size_t n)
{
    ar__sig_frame_t *f = ar_calloc(1, sizeof(*f) + n + 1);
    assert_non_null(f);
    memcpy(f->data, d, n);
    f->len = (uint32_t)n;
    f->seq = 3;
    return f;
}

/* The splice finds "seq":0 where strstr would: after the type (where the server puts it),
 * elsewhere when it is not there, and nowhere past a NUL (a bus peer's frame with a NUL in its
 * type went out cut at the NUL, the bus fuzzer's find, before the search honoured it). */
static void test_frame_wire_placeholder(void **state)
{
    (void)state;
    char out[256];
    static const char later[] = "{\"v\":1,\"type\":\"x\",\"a\":1,\"seq\":0}";
    ar__sig_frame_t *f = wire_frame(later, sizeof(later) - 1);
    size_t n = ar__sig_frame_wire(f, out, sizeof(out));
    assert_true(n > 0 && n < sizeof(out));
    out[n] = '\0';
    assert_non_null(strstr(out, ",\"seq\":3,\"fid\":\""));
    ar_free(f);
    static const char nul[] = "{\"v\":1,\"type\":\"a\0b\",\"seq\":0,\"peer\":\"P\"}";
    f = wire_frame(nul, sizeof(nul) - 1);
    assert_int_equal(ar__sig_frame_wire(f, out, sizeof(out)), 0);
    ar_free(f);
    static const char none[] = "{\"v\":1,\"type\":\"x\",\"seq\":1}";
    f = wire_frame(none, sizeof(none) - 1);
    assert_int_equal(ar__sig_frame_wire(f, out, sizeof(out)), 0);
    ar_free(f);
}

/* ar__sig_frame_wire against a reference made with strstr and snprintf: every seq from 0 to
 * 100,000 and either side of every power of ten up to INT64_MAX, a negative one (0), and types
 * of every length up to 40 with a NUL or a quote at every position of them. */
static void wire_check(const char *d, size_t n, int64_t seq)
{
    ar__sig_frame_t *f = wire_frame(d, n);
    f->seq = seq;
    memset(f->fid, 0x5a, sizeof(f->fid));
    char want[512], got[512], fid[AR__SIG_FID_LEN + 1] = {0};
    ar__sig_fid_text(f->fid, fid);
    const char *ph = strstr(f->data, ",\"seq\":0");
    size_t wn = 0;
    if (ph) {
        int pre = (int)(ph - f->data) + 7;
        int w = snprintf(want, sizeof(want), "%.*s%lld,\"fid\":\"%s\"%s", pre, f->data,
                         (long long)(seq > 0 ? seq : 0), fid, f->data + pre + 1);
        assert_true(w > 0 && (size_t)w < sizeof(want));
        /* The rest past a NUL in the frame, which %s stopped at, goes out too. */
        wn = (size_t)w;
        size_t tail = strlen(f->data + pre + 1);
        memcpy(want + wn, f->data + pre + 1 + tail, n - (size_t)pre - 1 - tail);
        wn += n - (size_t)pre - 1 - tail;
    }
    size_t gn = ar__sig_frame_wire(f, got, sizeof(got));
    assert_int_equal(gn, wn);
    assert_memory_equal(got, want, wn);
    ar_free(f);
}

static void test_frame_wire_reference(void **state)
{
    (void)state;
    static const char d[] = "{\"v\":1,\"type\":\"offer\",\"seq\":0,\"from\":\"X\",\"sdp\":\"v=0\"}";
    for (int64_t seq = 0; seq <= 100000; seq++)
        wire_check(d, sizeof(d) - 1, seq);
    for (int64_t p = 10; p > 0 && p <= INT64_MAX / 10; p *= 10) {
        wire_check(d, sizeof(d) - 1, p - 1);
        wire_check(d, sizeof(d) - 1, p);
        wire_check(d, sizeof(d) - 1, p + 1);
    }
    wire_check(d, sizeof(d) - 1, INT64_MAX);
    wire_check(d, sizeof(d) - 1, -5);
    /* After the type, a short rest (its end then within sixteen bytes of the type's start for
     * the shortest types) and a longer one. */
    static const char pre[] = "{\"v\":1,\"type\":\"";
    static const char *const post[] = {"\",\"seq\":0}", "\",\"seq\":0,\"x\":1,\"y\":2}"};
    for (size_t pi = 0; pi < 2; pi++) {
        for (size_t tl = 0; tl <= 40; tl++) {
            for (size_t at = 0; at <= tl; at++) {
                for (int odd = 0; odd < 3; odd++) {
                    char b[128];
                    size_t n = sizeof(pre) - 1;
                    memcpy(b, pre, n);
                    memset(b + n, 'a', tl);
                    if (at < tl)
                        b[n + at] = odd == 0 ? '\0' : odd == 1 ? '"' : 'z';
                    memcpy(b + n + tl, post[pi], strlen(post[pi]));
                    wire_check(b, n + tl + strlen(post[pi]), 7);
                }
            }
        }
    }
}

/* Worker 2's backup copy (backup_copy) gets three frames from X (fid[0] = tag) that no numbered
 * copy confirms (the owner's copies were lost) and an acknowledgement of 5 from the client;
 * then it is promoted. */
static ar__sig_sess_t *promoted_after_ack(uint8_t tag, ar__sig_srv_t **B, ar__sig_rec_t **rb)
{
    ar__sig_sess_t *sb = backup_copy(B, rb);
    const char d[] = "{\"v\":1,\"type\":\"candidate\",\"seq\":0,\"from\":\"X\",\"candidate\":\"\"}";
    uint8_t fid[16] = {tag};
    for (int i = 0; i < 3; i++) {
        fid[8] = (uint8_t)i;
        ar__sig_sess_deliver(*B, sb, fid, 0, d, strlen(d), 0);
    }
    char a[96];
    int n = snprintf(a, sizeof(a), "{\"k\":\"ack\",\"p\":\"%s\",\"s\":5}", PEER);
    ar__sig_proc_msg(*B, a, (size_t)n, NULL);
    ar__sig_node_dead(*B, 1);
    return sb;
}

/* A promoted backup numbers after the client's acknowledgement when copies were lost: an
 * acknowledged number would be trimmed at once and never replayed. */
static void test_promotion_after_lost_copies_and_ack(void **state)
{
    (void)state;
    ar__sig_srv_t *B;
    ar__sig_rec_t *rb;
    ar__sig_sess_t *sb = promoted_after_ack(3, &B, &rb);
    assert_int_equal(sb->nframes, 3);
    assert_int_equal(sb->head->seq, 6);
    assert_int_equal(sb->seq, 8);
    char a[96];
    /* "res" from a later owner clears the marks on its backup when its replay went whole
     * ("c"), and only then. */
    assert_true(sb->head->uncertain);
    sb->is_backup = 1;
    int n = snprintf(a, sizeof(a), "{\"k\":\"res\",\"p\":\"%s\",\"r\":\"x\",\"c\":false}", PEER);
    ar__sig_proc_msg(B, a, (size_t)n, NULL);
    for (const ar__sig_frame_t *f = sb->head; f; f = f->next)
        assert_true(f->uncertain);
    n = snprintf(a, sizeof(a), "{\"k\":\"res\",\"p\":\"%s\",\"r\":\"x\",\"c\":true}", PEER);
    ar__sig_proc_msg(B, a, (size_t)n, NULL);
    for (const ar__sig_frame_t *f = sb->head; f; f = f->next)
        assert_false(f->uncertain);
    sb->is_backup = 0;
    ar__sig_rec_free(B, rb);
    su_srv_free(B);
}

typedef struct cut_s {
    int sent, cut_at; /* the connection goes at the cut_at-th frame (from 1); 0: never */
    int64_t seqs[8];
} cut_t;

static int cut_cb(void *arg, const ar__sig_frame_t *f)
{
    cut_t *c = arg;
    if (c->cut_at && c->sent + 1 == c->cut_at)
        return AR_ECLOSED;
    c->seqs[c->sent++] = f->seq;
    return 0;
}

/* A promoted backup holds frames 6-8, uncertain; the client resumes with last_seq 8. A replay
 * that the connection does not survive clears no mark: the next resume gets all three. */
static void test_replay_broken_off_keeps_marks(void **state)
{
    (void)state;
    ar__sig_srv_t *B;
    ar__sig_rec_t *rb;
    ar__sig_sess_t *sb = promoted_after_ack(4, &B, &rb);
    assert_false(sb->is_backup);
    assert_int_equal(sb->seq, 8);

    /* The welcome could not be sent: the connection is already gone when the replay starts. */
    ar__sig_conn_t gone;
    su_conn_attach(&gone, B, sb, AR__SIG_C_GONE);
    ar__sig_replay(B, sb, 8);
    sb->conn = NULL;
    for (const ar__sig_frame_t *f = sb->head; f; f = f->next)
        assert_true(f->uncertain);

    /* The connection goes at the second frame (the first was only written to its buffer). */
    cut_t c = {.cut_at = 2};
    assert_int_equal(ar__sig_replay_to(sb, 8, cut_cb, &c), AR_ECLOSED);
    assert_int_equal(c.sent, 1);
    for (const ar__sig_frame_t *f = sb->head; f; f = f->next)
        assert_true(f->uncertain);

    /* The next resume gets 6, 7 and 8, in order; then the marks are gone. */
    memset(&c, 0, sizeof(c));
    assert_int_equal(ar__sig_replay_to(sb, 8, cut_cb, &c), 3);
    assert_int_equal(c.sent, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(c.seqs[i], 6 + i);
    for (const ar__sig_frame_t *f = sb->head; f; f = f->next)
        assert_false(f->uncertain);
    memset(&c, 0, sizeof(c));
    assert_int_equal(ar__sig_replay_to(sb, 8, cut_cb, &c), 0);
    assert_int_equal(c.sent, 0);
    ar__sig_rec_free(B, rb);
    su_srv_free(B);
}

/* A frame that reaches a promoted backup before its client resumes is numbered after the
 * backup's count, which can be below the client's last_seq: the dead owner sent the client
 * frames whose copies never arrived. That frame is new to the client whatever its number, so
 * the first resume replays it even at or below last_seq; a client that had the frame under
 * another number drops it by fid. Found because a longer copy batch widens that gap. */
static void test_frame_after_promotion_replayed(void **state)
{
    (void)state;
    ar__sig_srv_t *B;
    ar__sig_rec_t *rb;
    ar__sig_sess_t *sb = promoted_after_ack(5, &B, &rb);
    assert_int_equal(sb->seq, 8);
    const char d[] = "{\"v\":1,\"type\":\"candidate\",\"seq\":0,\"from\":\"Y\",\"candidate\":\"\"}";
    uint8_t fid[16] = {5, 1};
    ar__sig_sess_deliver(B, sb, fid, 0, d, strlen(d), 0);
    assert_int_equal(sb->seq, 9);
    /* The client got 10 frames from the dead owner (two local to it, never copied). */
    cut_t c = {0};
    assert_int_equal(ar__sig_replay_to(sb, 10, cut_cb, &c), 4);
    assert_int_equal(c.sent, 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(c.seqs[i], 6 + i);
    /* After the resume (resume.c's finish moves the count past last_seq) frames are certain. */
    sb->promoted = 0;
    sb->seq = 10;
    fid[1] = 2;
    ar__sig_sess_deliver(B, sb, fid, 0, d, strlen(d), 0);
    for (const ar__sig_frame_t *f = sb->head; f; f = f->next)
        assert_false(f->uncertain);
    ar__sig_rec_free(B, rb);
    su_srv_free(B);
}

/* Two deaths before the client resumes. B promoted the session (6-8 uncertain) and numbers a
 * frame Z (9) that reached it since; its new backup C gets the buffer (adopt, "u": B is an
 * unresumed promotion) and Z's numbered copy. B dies too; C promotes and the client, which
 * had 10 frames from the first owner, resumes there: Z is replayed although numbered below
 * last_seq. Without "u", C held Z as certain and skipped it. */
static void test_two_deaths_keep_marks(void **state)
{
    (void)state;
    ar__sig_srv_t *B;
    ar__sig_rec_t *rb;
    ar__sig_sess_t *sb = promoted_after_ack(6, &B, &rb);
    const char d[] = "{\"v\":1,\"type\":\"candidate\",\"seq\":0,\"from\":\"Y\",\"candidate\":\"\"}";
    uint8_t fid[16] = {6, 1};
    ar__sig_sess_deliver(B, sb, fid, 0, d, strlen(d), 0);
    assert_int_equal(sb->seq, 9);

    /* Worker 3 (C) as B's new backup: the adopt B sends, then Z's numbered copy. */
    ar__sig_srv_t *C = su_srv_new(3);
    ar__sig_rec_t *rc = ar__sig_rec_get(C, PEER);
    assert_non_null(rc);
    rc->owner = 2;
    rc->backup = 3;
    ar__sig_sess_t *sc = sess_new(C, rc, 1); /* as on_adopt would make it, without the bus */
    char adopt[512];
    int n = snprintf(adopt, sizeof(adopt),
                     "{\"k\":\"adopt\",\"p\":\"%s\",\"r\":\"x\",\"h\":\"\",\"seq\":8,\"ack\":5,"
                     "\"fr\":[],\"u\":%s}",
                     PEER, sb->promoted ? "true" : "false");
    ar__sig_proc_msg(C, adopt, (size_t)n, NULL);
    assert_ptr_equal(rc->local, sc);
    assert_true(sc->copies_uncertain);
    copy_to_backup(C, sb->tail);
    assert_int_equal(sc->seq, 9);
    assert_true(sc->tail->uncertain);

    ar__sig_node_dead(C, 2);
    assert_false(sc->is_backup);
    cut_t c = {0};
    assert_int_equal(ar__sig_replay_to(sc, 10, cut_cb, &c), 1);
    assert_int_equal(c.seqs[0], 9);

    ar__sig_rec_free(C, rc);
    su_srv_free(C);
    ar__sig_rec_free(B, rb);
    su_srv_free(B);
}

/* A promoted copy whose client connection closed in this batch of events (GONE, not yet freed)
 * holds no client: the old owner's claim takes it back, and the connection lets go of it. */
static void test_claim_with_gone_conn(void **state)
{
    (void)state;
    ar__sig_srv_t *B;
    ar__sig_rec_t *rb;
    ar__sig_sess_t *sb = backup_copy(&B, &rb);
    ar__sig_node_dead(B, 1);
    assert_false(sb->is_backup);
    assert_true(sb->promoted);
    ar__sig_conn_t gone;
    su_conn_attach(&gone, B, sb, AR__SIG_C_GONE);
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:b}", "o", "0000000000000001", "p", PEER, "own",
                          "0000000000000001", "bk", "0000000000000002", "re", 1);
    assert_non_null(o);
    ar__sig_rec_apply(B, o);
    json_decref(o);
    assert_true(sb->is_backup);
    assert_null(sb->conn);
    assert_null(gone.sess);
    ar__sig_rec_free(B, rb);
    su_srv_free(B);
}

/* ar__sig_fid_text, which keeps the last fid's text for the next, against libsodium's base64url
 * of every fid: a worker's counter run across its low bytes' carries, two workers' fids in
 * turn, and a fid that differs from the one before in one byte, at every position, by every
 * value. */
static void fid_text_check(const uint8_t fid[16])
{
    char want[sodium_base64_ENCODED_LEN(16, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
    sodium_bin2base64(want, sizeof(want), fid, 16, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char got[AR__SIG_FID_LEN + 1] = {0};
    ar__sig_fid_text(fid, got);
    assert_string_equal(got, want);
}

static void test_fid_text_reference(void **state)
{
    (void)state;
    uint8_t a[16] = {0x9a, 0x01, 0xfe, 0x33, 0x80, 0x7f, 0x10, 0xc4}, b[16] = {0x9a, 0x01, 0xfe};
    for (uint64_t ctr = 0; ctr < 70000; ctr++) {
        memcpy(a + 8, &ctr, 8);
        fid_text_check(a);
    }
    for (uint64_t ctr = 0xfffffffffffffff0ull; ctr != 8; ctr++) {
        memcpy(a + 8, &ctr, 8);
        memcpy(b + 8, &ctr, 8);
        fid_text_check(a);
        fid_text_check(b);
    }
    for (int i = 0; i < 16; i++) {
        for (int v = 0; v < 256; v++) {
            uint8_t f[16];
            memcpy(f, a, 16);
            fid_text_check(f);
            f[i] = (uint8_t)v;
            fid_text_check(f);
        }
    }
}

int main(void)
{
    ar_log_init("signal", AR_LOG_WARN); /* every promotion logs at info */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_orders_by_hand),
        cmocka_unit_test(test_frame_wire_placeholder),
        cmocka_unit_test(test_fid_text_reference),
        cmocka_unit_test(test_frame_wire_reference),
        cmocka_unit_test(test_promotion_after_lost_copies_and_ack),
        cmocka_unit_test(test_exactly_once_after_promotion),
        cmocka_unit_test(test_replay_broken_off_keeps_marks),
        cmocka_unit_test(test_claim_with_gone_conn),
        cmocka_unit_test(test_frame_after_promotion_replayed),
        cmocka_unit_test(test_two_deaths_keep_marks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
