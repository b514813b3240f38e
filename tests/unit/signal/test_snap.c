/*
 * A queue snapshot sent as the subscriber's connection drains (area.c, docs/signal.md "A
 * snapshot sent as the connection drains"): a worker loop on loopback whose socket to the staff
 * client is given small buffers, so that the snapshot stops at its first turn while the client
 * does not read. Then, on the loop, the queue changes under the cursor: a patient already
 * listed leaves, two not yet listed leave (one of them the last), and one arrives. Read to the
 * end, the snapshot must list every other patient once, in order, and neither the two removed
 * before their page nor the late one. A subscription whose connection closes, or that is
 * unsubscribed, mid-snapshot leaves no cursor behind (and AddressSanitizer finds no leak).
 */
#include "bus_internal.h"
#include "loop_harness.h"
#include "net/internal.h"

#include "anteroom/alloc.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#define N 200 /* about 430 KB of pages: past the harness's 256 KiB cap */

static ar_token_key_t key;
static char peers[N + 1][AR__SIG_PEER_LEN + 1];

static void on_bus(int fd, void *data)
{
    (void)fd;
    ar__sig_bus_wake(data);
}

/* On the loop: the bus's local queue is taken as the worker's own loop takes it (bus.c). */
static void watch_bus(void *arg)
{
    (void)arg;
    LH_CHECK(ar_sn_loop_watch(LH.srv->loop, LH.srv->bus->efd, on_bus, LH.srv) == 0);
}

static void arrive(ar__sig_srv_t *srv, int i)
{
    snprintf(peers[i], sizeof(peers[i]), "patient%015d", i);
    ar__sig_rec_t *r = ar__sig_rec_get(srv, peers[i]);
    LH_CHECK(r != NULL);
    ar__sig_recq_t *q = ar__sig_rec_q(r);
    LH_CHECK(q != NULL);
    r->role = AR_SIG_ROLE_PATIENT;
    char name[65], a[201];
    memset(name, '"', 64);
    name[64] = '\0';
    memset(a, '\\', 200);
    a[200] = '\0';
    q->name = ar_strndup(name, 64);
    q->ans = ar_calloc(AR_SIG_ANSWERS_MAX, sizeof(*q->ans));
    LH_CHECK(q->name && q->ans);
    for (int k = 0; k < 4; k++) {
        q->ans[k].q = (ar_sig_str_t){ar_strndup("question", 8), 8};
        q->ans[k].a = (ar_sig_str_t){ar_strndup(a, 200), 200};
    }
    q->nans = 4;
    r->status = AR_SIG_ST_WAITING;
    ar__sig_rec_set_area(srv, r, "c1", "big");
    LH_CHECK(r->q->in_area != NULL);
}

static void patients(void *arg)
{
    (void)arg;
    for (int i = 0; i < N; i++)
        arrive(LH.srv, i);
}

/* On the loop: the server's side of the last connection sends through a small buffer. */
static void small_sndbuf(void *arg)
{
    (void)arg;
    int small = 4096;
    LH_CHECK(setsockopt(LH.last->c->fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)) == 0);
}

static void count_snaps(void *arg)
{
    *(size_t *)arg = ar__sig_snaps_pending(LH.srv);
}

static size_t snaps(void)
{
    size_t n = SIZE_MAX;
    lh_run(count_snaps, &n);
    return n;
}

/* A staff client of clinic c1 that reads nothing yet, through small buffers both ways. */
static int staff(const char *sub)
{
    int fd = lh_dial("/ok");
    int small = 4096;
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
    lh_run(small_sndbuf, NULL);
    ar_token_claims_t cl;
    su_claims(&cl, AR_TOKEN_STAFF, sub);
    cl.room[0] = cl.clinic[0] = '\0'; /* a staff token names clinics only */
    snprintf(cl.clinics[0].id, sizeof(cl.clinics[0].id), "c1");
    snprintf(cl.clinics[0].roles[0], sizeof(cl.clinics[0].roles[0]), "provider");
    cl.clinics[0].nroles = 1;
    cl.nclinics = 1;
    char token[AR_TOKEN_MAX];
    su_mint(&key, &cl, token, sizeof(token));
    su_hello(fd, token, NULL, 0);
    static char text[AR_SIG_OUT_MAX + 1];
    assert_int_equal(lh_read(fd, text, sizeof(text), NULL), AR_WS_OP_TEXT);
    assert_non_null(strstr(text, "\"welcome\""));
    return fd;
}

static const char *const SUBSCRIBE =
    "{\"v\":1,\"type\":\"subscribe\",\"clinic\":\"c1\",\"area\":\"big\"}";

static int setup(void **state)
{
    (void)state;
    lh_start(1, 0);
    lh_run(watch_bus, NULL);
    su_signer(&key);
    lh_trust(&key);
    lh_run(patients, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    lh_stop();
    return 0;
}

/* On the loop, mid-snapshot: patient 0 (listed in the first turn's pages) leaves, then 150 and
 * the last (not listed yet), and one more arrives. */
static void change(void *arg)
{
    (void)arg;
    ar__sig_srv_t *srv = LH.srv;
    const int gone[] = {0, 150, N - 1};
    for (size_t k = 0; k < sizeof(gone) / sizeof(gone[0]); k++)
        ar__sig_rec_set_area(srv, ar__sig_rec_find(srv, peers[gone[k]]), "c1", "");
    arrive(srv, N);
}

static void test_cursor_under_changes(void **state)
{
    (void)state;
    int fd = staff("staff-1");
    su_send_text(fd, SUBSCRIBE);
    usleep(300000);
    assert_int_equal(snaps(), 1); /* stopped for the reader, not finished */
    lh_run(change, NULL);
    static char text[AR_SIG_OUT_MAX + 1];
    int listed[N + 1] = {0}, last = -1, more = 1, pages = 0;
    while (more) {
        assert_int_equal(lh_read(fd, text, sizeof(text), NULL), AR_WS_OP_TEXT);
        json_t *f = json_loads(text, 0, NULL);
        assert_non_null(f);
        assert_string_equal(json_string_value(json_object_get(f, "type")), "queue");
        json_t *es = json_object_get(f, "entries");
        for (size_t i = 0; i < json_array_size(es); i++) {
            const char *p = json_string_value(json_object_get(json_array_get(es, i), "peer"));
            int k = -1;
            assert_non_null(p);
            assert_int_equal(sscanf(p, "patient%d", &k), 1);
            assert_true(k >= 0 && k <= N);
            assert_true(k > last); /* in arrival order, each once */
            last = k;
            listed[k]++;
        }
        more = json_is_true(json_object_get(f, "more"));
        pages++;
        json_decref(f);
    }
    assert_true(pages > 2);
    assert_int_equal(listed[0], 1);   /* listed before it left */
    assert_int_equal(listed[150], 0); /* left before its page */
    assert_int_equal(listed[N - 1], 0);
    assert_int_equal(listed[N], 0); /* arrived after the subscription */
    for (int k = 1; k < N - 1; k++)
        if (k != 150 && listed[k] != 1)
            fail_msg("patient %d listed %d times", k, listed[k]);
    assert_int_equal(snaps(), 0);
    close(fd);
}

static void test_gone_mid_snapshot(void **state)
{
    (void)state;
    int fd = staff("staff-2");
    su_send_text(fd, SUBSCRIBE);
    usleep(300000);
    assert_int_equal(snaps(), 1);
    close(fd);
    lh_wait(&LH.freed, 1);
    assert_int_equal(snaps(), 0);

    fd = staff("staff-3");
    su_send_text(fd, SUBSCRIBE);
    usleep(300000);
    assert_int_equal(snaps(), 1);
    su_send_text(fd, "{\"v\":1,\"type\":\"unsubscribe\",\"clinic\":\"c1\",\"area\":\"big\"}");
    /* The client reads; the server reads the unsubscribe once its queue is written, and no
     * page is made after it: the last one that comes still says `more`. */
    static char text[AR_SIG_OUT_MAX + 1];
    int more = 0;
    for (int i = 0; i < 400; i++) {
        char c;
        if (snaps() == 0 && (usleep(300000), recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) <= 0))
            break;
        assert_int_equal(lh_read(fd, text, sizeof(text), NULL), AR_WS_OP_TEXT);
        json_t *f = json_loads(text, 0, NULL);
        assert_non_null(f);
        if (strcmp(json_string_value(json_object_get(f, "type")), "queue") == 0)
            more = json_is_true(json_object_get(f, "more"));
        json_decref(f);
    }
    assert_true(more);
    assert_int_equal(snaps(), 0);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cursor_under_changes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gone_mid_snapshot, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
