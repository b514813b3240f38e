/*
 * A worker that starts after a room ended, or comes back from a cut, learns the ended rooms
 * before it admits a new session (src/signal/invite.c, "Catching up"; docs/signal.md, "Ended
 * rooms: a worker that starts later"). No sockets and no bus: the bus's publish calls are
 * wrapped at link time (bus_catch.c), and each caught message is handed to the worker it was
 * for as the bus would deliver it. Times are given, not waited for.
 */
#include "bus_catch.h"
#include "internal.h"
#include "sig_util.h"

#include "anteroom/alloc.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#define T0 1000000u /* the tests' clock, ms */

/* w as worker `id` heard it in a heartbeat just now, with that coverage ("ec"). */
static void hear(ar__sig_srv_t *w, uint64_t id, uint32_t cover_s)
{
    ar__sig_node_t *n = &w->nodes[w->nnodes++];
    memset(n, 0, sizeof(*n));
    n->id = id;
    n->seen_ms = ar__sig_rooms_ended_clock(); /* alive (ar__sig_node_alive's clock) */
    n->ended_cover_s = cover_s;
}

/* Hands every proc message of kind k caught from `from` to `to` (by its node id), in order. */
static size_t deliver(ar__sig_srv_t *from, ar__sig_srv_t *to, const char *k)
{
    size_t n = 0;
    for (size_t i = 0; i < bc_n; i++) {
        const char *ck = json_string_value(json_object_get(bc_caught[i].o, "k"));
        if (bc_caught[i].from != from || bc_caught[i].to != to->node_id || !ck ||
            strcmp(ck, k) != 0)
            continue;
        char *s = json_dumps(bc_caught[i].o, JSON_COMPACT);
        assert_non_null(s);
        ar__sig_proc_msg(to, s, strlen(s), NULL);
        ar_free(s);
        n++;
    }
    return n;
}

/* A worker already on the bus: its own catch-up done (nobody else to ask then). */
static ar__sig_srv_t *old_worker(uint64_t id)
{
    return su_srv_caught_up(id, T0);
}

static void done(ar__sig_srv_t *w)
{
    ar__sig_invites_free(w);
    ar_free(w);
}

/* The case of the issue: A ends the room; B starts afterwards, with nothing of it. */
static void test_late_worker_refuses_ended_room(void **state)
{
    (void)state;
    ar__sig_srv_t *a = old_worker(1);
    ar__sig_room_mark_ended(a, "room-1");
    bc_clear();
    ar__sig_srv_t *b = su_srv_new(2);
    assert_int_equal(ar__sig_room_ended(b, "room-1"), 0); /* the gap: it would reopen */
    assert_int_equal(ar__sig_rooms_ended_waiting(b), 0);  /* the loop does not step it */
    ar__sig_rooms_ended_begin(b, 0, T0, AR__SIG_ENDED_HEAR_MS);
    hear(b, 1, 5);
    /* New sessions wait from the start; nothing is asked before the heartbeats are heard. */
    assert_int_equal(ar__sig_rooms_ended_sync(b, 0, 1, T0 + 10), 1);
    assert_int_equal(ar__sig_rooms_ended_waiting(b), 1);
    int wait = ar__sig_rooms_ended_step(b, T0 + 200);
    assert_int_equal(wait, AR__SIG_ENDED_HEAR_MS - 200);
    assert_int_equal(bc_n, 0);
    assert_int_equal(ar__sig_rooms_ended_cover(b), 0); /* nobody picks it to ask meanwhile */
    assert_int_equal(b->ended_catchup, 1);             /* /readyz 503 meanwhile (srv.c ready_cb) */
    /* Then it asks A, A answers, and B refuses join and arrive in the room (flows.c, area.c
     * ask ar__sig_room_ended). */
    assert_true(ar__sig_rooms_ended_step(b, T0 + AR__SIG_ENDED_HEAR_MS) > 0);
    assert_non_null(bc_proc_sent(b, 1, "ended?"));
    assert_int_equal(deliver(b, a, "ended?"), 1);
    json_t *page = bc_proc_sent(a, 2, "ended");
    assert_non_null(page);
    assert_true(json_is_true(json_object_get(page, "b")));
    assert_int_equal(ar__sig_rooms_ended_sync(b, 0, 1, T0 + AR__SIG_ENDED_HEAR_MS + 1), 1);
    assert_int_equal(deliver(a, b, "ended"), 1);
    assert_int_equal(ar__sig_room_ended(b, "room-1"), 1);
    assert_int_equal(ar__sig_room_ended(b, "room-2"), 0);
    assert_int_equal(ar__sig_rooms_ended_sync(b, 0, 1, T0 + AR__SIG_ENDED_HEAR_MS + 2), 0);
    assert_int_equal(b->ended_catchup, 0);
    /* Done: the loop stops stepping it, which would have nothing to do. */
    assert_int_equal(ar__sig_rooms_ended_waiting(b), 0);
    assert_int_equal(ar__sig_rooms_ended_step(b, T0 + 10 * AR__SIG_ENDED_HEAR_MS), -1);
    /* B's set now covers as far back as A's: it may be asked in turn. */
    assert_true(ar__sig_rooms_ended_cover(b) >= ar__sig_rooms_ended_cover(a));
    bc_clear();
    done(a);
    done(b);
}

/* A set larger than a page comes in several; only the last one ends the wait. */
static void test_pages(void **state)
{
    (void)state;
    ar__sig_srv_t *a = old_worker(1), *b = su_srv_new(2);
    int64_t now = (int64_t)time(NULL);
    char room[32], msg[160], hex[33];
    for (unsigned i = 0; i < 2500; i++) {
        snprintf(room, sizeof(room), "r%u", i);
        ar__sig_room_ended_key(room, hex);
        int n = snprintf(msg, sizeof(msg),
                         "{\"w\":\"0000000000000003\",\"h\":\"%s\",\"e\":%lld,"
                         "\"end\":true}",
                         hex, (long long)(now + 1800 - (i == 7 ? 1900 : 0)));
        ar__sig_invite_apply(a, msg, (size_t)n);
    }
    assert_int_equal(ar__sig_rooms_ended_count(a), 2499); /* r7 had expired already */
    ar__sig_rooms_ended_begin(b, 0, T0, 0);
    hear(b, 1, 0);
    ar__sig_rooms_ended_step(b, T0);
    assert_int_equal(deliver(b, a, "ended?"), 1);
    size_t pages = 0;
    for (size_t i = 0; i < bc_n; i++) {
        if (bc_caught[i].from != a)
            continue;
        pages++;
        char *s = json_dumps(bc_caught[i].o, JSON_COMPACT);
        assert_int_equal(ar__sig_rooms_ended_sync(b, 0, 1, T0 + 1), 1); /* before each */
        assert_int_equal(json_is_true(json_object_get(bc_caught[i].o, "b")), pages == 3);
        ar__sig_proc_msg(b, s, strlen(s), NULL);
        ar_free(s);
    }
    assert_int_equal(pages, 3);
    assert_int_equal(ar__sig_rooms_ended_sync(b, 0, 1, T0 + 2), 0);
    assert_int_equal(ar__sig_rooms_ended_count(b), 2499);
    assert_int_equal(ar__sig_room_ended(b, "r0"), 1);
    assert_int_equal(ar__sig_room_ended(b, "r2499"), 1);
    assert_int_equal(ar__sig_room_ended(b, "r7"), 0);
    /* A malformed page, or a late one of another round, changes nothing. */
    const char bad[] = "{\"k\":\"ended\",\"w\":\"0000000000000001\",\"q\":1,\"s\":0,\"m\":\"abc\","
                       "\"b\":true}";
    ar__sig_proc_msg(b, bad, sizeof(bad) - 1, NULL);
    assert_int_equal(ar__sig_rooms_ended_count(b), 2499);
    bc_clear();
    done(a);
    done(b);
}

/* The live worker complete for longest is asked, alone, however many there are; one that
 * never answers is given up on in bounded time, and one that answers lends its coverage. */
static void test_whom_and_give_up(void **state)
{
    (void)state;
    ar__sig_srv_t *b = su_srv_new(2);
    ar__sig_rooms_ended_begin(b, 0, T0, 0);
    hear(b, 1, 40);
    hear(b, 3, 1700);
    hear(b, 4, 0);
    ar__sig_rooms_ended_step(b, T0);
    assert_int_equal(bc_n, 1);
    assert_non_null(bc_proc_sent(b, 3, "ended?"));
    /* Worker 3 stays silent: new sessions wait, but only for so long. */
    assert_int_equal(ar__sig_rooms_ended_sync(b, 0, 1, T0 + 2999), 1);
    assert_int_equal(ar__sig_rooms_ended_step(b, T0 + 3000), -1);
    assert_int_equal(ar__sig_rooms_ended_sync(b, 0, 1, T0 + 3001), 0);
    assert_int_equal(b->ended_catchup, 0);
    assert_true(ar__sig_rooms_ended_cover(b) < 5); /* vouched for by nobody: its own start */
    /* An answer after giving up still brings its markers, but not its coverage. */
    ar__sig_srv_t *w3 = old_worker(3);
    ar__sig_room_mark_ended(w3, "room-9");
    assert_int_equal(deliver(b, w3, "ended?"), 1);
    assert_int_equal(deliver(w3, b, "ended"), 1);
    assert_int_equal(ar__sig_room_ended(b, "room-9"), 1);
    assert_true(ar__sig_rooms_ended_cover(b) < 5);
    bc_clear();
    done(w3);
    done(b);

    /* Among workers complete for 30 minutes (all alike), any one; never an incomplete one. */
    for (int k = 0; k < 8; k++) {
        b = su_srv_new(2);
        ar__sig_rooms_ended_begin(b, 0, T0, 0);
        hear(b, 1, 5000);
        hear(b, 3, 1700);
        hear(b, 4, 1800);
        ar__sig_rooms_ended_step(b, T0);
        assert_int_equal(bc_n, 1);
        assert_true(bc_caught[0].to == 1 || bc_caught[0].to == 4);
        bc_clear();
        done(b);
    }

    /* The last page of the worker asked, in this round: its coverage becomes the asker's. */
    b = su_srv_new(2);
    ar__sig_rooms_ended_begin(b, 0, T0, 0);
    hear(b, 5, 1000);
    ar__sig_rooms_ended_step(b, T0);
    char page[160];
    int n = snprintf(page, sizeof(page),
                     "{\"k\":\"ended\",\"w\":\"%016x\",\"q\":%d,\"s\":%lld,\"m\":\"\",\"b\":true}",
                     5, 2, (long long)time(NULL) - 1000); /* another round's: no end */
    ar__sig_proc_msg(b, page, (size_t)n, NULL);
    assert_int_equal(ar__sig_rooms_ended_sync(b, 0, 1, T0 + 1), 1);
    n = snprintf(page, sizeof(page),
                 "{\"k\":\"ended\",\"w\":\"%016x\",\"q\":%d,\"s\":%lld,\"m\":\"\",\"b\":true}", 5,
                 1, (long long)time(NULL) - 1000);
    ar__sig_proc_msg(b, page, (size_t)n, NULL);
    assert_int_equal(ar__sig_rooms_ended_sync(b, 0, 1, T0 + 2), 0);
    assert_true(ar__sig_rooms_ended_cover(b) >= 999);
    bc_clear();
    done(b);
}

/* A worker whose subscriptions come back after a cut asks again at once. */
static void test_after_cut(void **state)
{
    (void)state;
    ar__sig_srv_t *a = old_worker(1), *b = old_worker(2);
    hear(b, 1, 1800);
    ar__sig_room_mark_ended(a, "room-5"); /* while B is cut: it never hears it */
    bc_clear();
    assert_int_equal(ar__sig_rooms_ended_sync(b, 1, 0, T0 + 10), 0); /* cut: as the backlog says */
    assert_int_equal(bc_n, 0);
    assert_int_equal(ar__sig_rooms_ended_sync(b, 2, 1, T0 + 20), 1); /* back: asks now */
    assert_non_null(bc_proc_sent(b, 1, "ended?"));
    assert_int_equal(deliver(b, a, "ended?"), 1);
    assert_int_equal(deliver(a, b, "ended"), 1);
    assert_int_equal(ar__sig_room_ended(b, "room-5"), 1);
    assert_int_equal(ar__sig_rooms_ended_sync(b, 2, 1, T0 + 30), 0);
    bc_clear();
    done(a);
    done(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_late_worker_refuses_ended_room),
        cmocka_unit_test(test_pages),
        cmocka_unit_test(test_whom_and_give_up),
        cmocka_unit_test(test_after_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
