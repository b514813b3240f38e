/*
 * A worker's departure on a graceful stop (bus_node.c ar__sig_bus_leave, docs/signal.md
 * "Graceful stop"): a backup handles it in its place on the bus, after the numbered copies the
 * leaving owner published before it, and then promotes its copy exactly as on a death. Were the
 * departure handled first, as heartbeats are, the copies would come after the promotion and be
 * ignored: the frames would be numbered again as uncertain, under other numbers than the ones
 * the client got. A heartbeat that arrives after the departure does not bring the worker back.
 * The inbox is driven as libnats would fill it (ar__sig_bus_put), without a NATS connection;
 * publications are caught by wrapping bus.c's publish calls at link time.
 */
#include "internal.h"
#include "sig_util.h"

#include "anteroom/alloc.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define US 1u    /* this worker: the backup */
#define OWNER 2u /* the owner, which leaves */
#define OTHER 3u /* a third worker, alive throughout */

static int promotions; /* "own" updates with "pr" this worker published */

void __wrap_ar__sig_bus_rec(ar__sig_srv_t *srv, const char *kind, const char *key, void *json_obj);
void __wrap_ar__sig_bus_rec(ar__sig_srv_t *srv, const char *kind, const char *key, void *json_obj)
{
    (void)kind;
    (void)key;
    (void)srv;
    if (json_is_true(json_object_get(json_obj, "pr")))
        promotions++;
    json_decref(json_obj);
}

void __wrap_ar__sig_bus_proc(ar__sig_srv_t *srv, uint64_t worker, void *json_obj);
void __wrap_ar__sig_bus_proc(ar__sig_srv_t *srv, uint64_t worker, void *json_obj)
{
    (void)srv;
    (void)worker;
    json_decref(json_obj);
}

typedef su_bus_node_t fixture_t;

static int setup(void **state)
{
    fixture_t *f = su_bus_node_new(US);
    promotions = 0;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    su_bus_node_free(*state);
    return 0;
}

/* A heartbeat (or, with leave, a departure) of worker id as bus_node.c writes it. */
static void beat(fixture_t *f, uint64_t id, const char *node, int leave)
{
    char body[192];
    int n =
        snprintf(body, sizeof(body), "%s\"i\":\"%016llx\",\"n\":\"%s\",\"d\":%d,\"t\":1,\"b\":0}",
                 leave ? "{\"l\":1," : "{", (unsigned long long)id, node, leave);
    ar__sig_bus_put(f->srv->bus, "ar.eu.node", body, (size_t)n);
}

static void fid_of(uint8_t fid[16], uint64_t ctr)
{
    uint64_t node = OTHER;
    memcpy(fid, &node, 8);
    memcpy(fid + 8, &ctr, 8);
}

static const char *frame_of(uint64_t ctr, char *buf, size_t cap)
{
    snprintf(buf, cap, "{\"v\":1,\"type\":\"candidate\",\"seq\":0,\"c\":\"%llu\"}",
             (unsigned long long)ctr);
    return buf;
}

/* Frame ctr for peer c as its sender (on worker OTHER) publishes it on ar.eu.to.<peer>. */
static void put_to(fixture_t *f, char c, uint64_t ctr)
{
    uint8_t msg[AR__SIG_TO_HDR + 128];
    char frame[96];
    size_t len = strlen(frame_of(ctr, frame, sizeof(frame)));
    fid_of(msg, ctr);
    memset(msg + 16, 0, 8);
    msg[24] = 0;
    memcpy(msg + AR__SIG_TO_HDR, frame, len);
    char subj[64];
    snprintf(subj, sizeof(subj), "ar.eu.to.%s", su_peer(c));
    ar__sig_bus_put(f->srv->bus, subj, msg, AR__SIG_TO_HDR + len);
}

static void le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* The owner's batch of numbered copies (bus.c ar__sig_bus_num): frames first..last of peer c
 * under the numbers seq0, seq0 + 1, ... */
static void put_copies(fixture_t *f, char c, uint64_t first, uint64_t last, int64_t seq0)
{
    uint8_t buf[1024];
    size_t o = 0;
    buf[o++] = 'N';
    for (uint64_t ctr = first; ctr <= last; ctr++) {
        char frame[96];
        size_t len = strlen(frame_of(ctr, frame, sizeof(frame)));
        memcpy(buf + o, su_peer(c), AR__SIG_PEER_LEN);
        le(buf + o + AR__SIG_PEER_LEN, (uint64_t)(seq0 + (int64_t)(ctr - first)), 8);
        fid_of(buf + o + AR__SIG_PEER_LEN + 8, ctr);
        buf[o + AR__SIG_PEER_LEN + 24] = 0;
        le(buf + o + AR__SIG_PEER_LEN + 25, len, 4);
        o += AR__SIG_NUM_HDR;
        memcpy(buf + o, frame, len);
        o += len;
    }
    char subj[64];
    snprintf(subj, sizeof(subj), "ar.eu.proc.%016llx", (unsigned long long)US);
    ar__sig_bus_put(f->srv->bus, subj, buf, o);
}

/* Our backup copy of peer c, owned by OWNER. */
static ar__sig_sess_t *backup_of(fixture_t *f, char c)
{
    ar__sig_rec_t *r = ar__sig_rec_get(f->srv, su_peer(c));
    assert_non_null(r);
    r->owner = OWNER;
    r->backup = US;
    ar__sig_sess_t *s = ar__sig_sess_link_new(f->srv, r, 1);
    assert_non_null(s);
    return s;
}

/* Three frames reach the backup and the owner; the owner numbers them 1..3 and leaves. The
 * copies and the departure wait in the inbox together: the departure is handled after them. */
static void test_departure_after_copies(void **state)
{
    fixture_t *f = *state;
    beat(f, OWNER, "n2", 0);
    beat(f, OTHER, "n3", 0);
    ar__sig_bus_wake(f->srv);
    assert_true(ar__sig_node_alive(f->srv, OWNER));
    ar__sig_sess_t *s = backup_of(f, 'a');
    for (uint64_t i = 1; i <= 3; i++)
        put_to(f, 'a', i);
    ar__sig_bus_wake(f->srv); /* the frames came first: they wait for the owner's numbers */
    assert_int_equal(s->cold->npending, 3);
    put_copies(f, 'a', 1, 3, 1);
    beat(f, OWNER, "n2", 1); /* its last publication */
    ar__sig_bus_wake(f->srv);

    assert_false(ar__sig_node_alive(f->srv, OWNER));
    assert_true(ar__sig_node_alive(f->srv, OTHER));
    assert_int_equal(s->is_backup, 0);
    assert_int_equal(s->rec->owner, US);
    assert_int_equal(promotions, 1);
    /* The owner's numbers, none again, none uncertain: the client resumes with nothing to
     * drop. Handled before the copies, the three would be numbered 1..3 as uncertain. */
    assert_int_equal(s->seq, 3);
    assert_int_equal(s->cold->npending, 0);
    int64_t want = 1;
    for (const ar__sig_frame_t *fr = s->head; fr; fr = fr->next, want++) {
        assert_int_equal(fr->seq, want);
        assert_false(fr->uncertain);
    }
    assert_int_equal(want, 4);
    /* Its new backup is never the worker that left. */
    assert_int_equal(s->rec->backup, OTHER);
}

/* A frame the owner never numbered (it reached the backup only) is numbered after its last. */
static void test_unconfirmed_frame_numbered_after(void **state)
{
    fixture_t *f = *state;
    beat(f, OWNER, "n2", 0);
    ar__sig_bus_wake(f->srv);
    ar__sig_sess_t *s = backup_of(f, 'b');
    put_to(f, 'b', 1);
    put_to(f, 'b', 2);
    put_copies(f, 'b', 1, 1, 1);
    beat(f, OWNER, "n2", 1);
    ar__sig_bus_wake(f->srv);
    assert_int_equal(s->is_backup, 0);
    assert_int_equal(s->seq, 2);
    assert_false(s->head->uncertain);
    assert_true(s->tail->uncertain); /* replayed on the first resume whatever its last_seq */
}

/* A heartbeat the worker sent before leaving, arriving after: it stays gone. */
static void test_late_heartbeat_ignored(void **state)
{
    fixture_t *f = *state;
    beat(f, OWNER, "n2", 0);
    ar__sig_bus_wake(f->srv);
    beat(f, OWNER, "n2", 1);
    ar__sig_bus_wake(f->srv);
    assert_false(ar__sig_node_alive(f->srv, OWNER));
    beat(f, OWNER, "n2", 0);
    ar__sig_bus_wake(f->srv);
    assert_false(ar__sig_node_alive(f->srv, OWNER));
    assert_int_equal(ar__sig_pick_backup(f->srv, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_departure_after_copies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unconfirmed_frame_numbered_after, setup, teardown),
        cmocka_unit_test_setup_teardown(test_late_heartbeat_ignored, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
