/*
 * Ended one-time rooms across the jurisdiction (src/signal/invite.c, "Ended one-time rooms";
 * docs/signal.md, "Rooms: who makes them, who enters, and ended rooms"): the markers a worker
 * keeps, those other workers publish, their expiry and their cap. No sockets and no bus:
 * markers are applied as the bus would deliver them.
 */
#include "internal.h"
#include "sig_util.h"

#include "anteroom/alloc.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <malloc.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

/* A marker as worker w publishes it (hex: its key, or anything for a malformed one). */
static void apply_hex(ar__sig_srv_t *srv, const char *w, const char *hex, int64_t exp)
{
    char msg[256];
    int n = snprintf(msg, sizeof(msg), "{\"w\":\"%s\",\"h\":\"%s\",\"e\":%lld,\"end\":true}", w,
                     hex, (long long)exp);
    ar__sig_invite_apply(srv, msg, (size_t)n);
}

static void apply(ar__sig_srv_t *srv, const char *w, const char *room, int64_t exp)
{
    char hex[33];
    ar__sig_room_ended_key(room, hex);
    apply_hex(srv, w, hex, exp);
}

static void done(ar__sig_srv_t *srv)
{
    ar__sig_invites_free(srv);
    assert_null(srv->invites);
    su_srv_free(srv);
}

static void test_marked_here_and_elsewhere(void **state)
{
    (void)state;
    ar__sig_srv_t *srv = su_srv_new(1), *other = su_srv_new(2);
    int64_t now = (int64_t)time(NULL);
    assert_int_equal(ar__sig_room_ended(srv, "room-1"), 0);
    ar__sig_room_mark_ended(srv, "room-1");
    assert_int_equal(ar__sig_room_ended(srv, "room-1"), 1);
    assert_int_equal(ar__sig_room_ended(srv, "room-2"), 0);
    /* Only a hash is kept: the key is not the id. */
    char hex[33];
    ar__sig_room_ended_key("room-1", hex);
    assert_int_equal(strlen(hex), 32);
    assert_null(strstr(hex, "room"));
    /* Another worker learns it from the bus; its own publications it applied already. */
    apply(other, "0000000000000001", "room-1", now + 1800);
    assert_int_equal(ar__sig_room_ended(other, "room-1"), 1);
    apply(other, "0000000000000002", "room-3", now + 1800);
    assert_int_equal(ar__sig_room_ended(other, "room-3"), 0);
    /* Malformed, expired or not a marker: nothing. */
    apply_hex(other, "0000000000000001", "zz", now + 1800);
    apply_hex(other, "0000000000000001", "0123456789abcdef0123456789abcdeg", now + 1800);
    apply(other, "0000000000000001", "room-4", now - 1);
    const char bad[] = "{\"w\":\"0000000000000001\",\"h\":7,\"e\":1,\"end\":true}";
    ar__sig_invite_apply(other, bad, sizeof(bad) - 1);
    assert_int_equal(ar__sig_room_ended(other, "room-4"), 0);
    assert_int_equal(ar__sig_rooms_ended_count(other), 1);
    /* The same marker twice is one. */
    apply(other, "0000000000000003", "room-1", now + 1800);
    assert_int_equal(ar__sig_rooms_ended_count(other), 1);
    done(srv);
    done(other);
}

/* A marker lasts until its expiry; one from a clock far ahead no longer than a token does. */
static void test_expiry(void **state)
{
    (void)state;
    ar__sig_srv_t *srv = su_srv_new(1);
    int64_t now = (int64_t)time(NULL);
    apply(srv, "0000000000000002", "soon", now + 1);
    apply(srv, "0000000000000002", "later", now + 1800);
    assert_int_equal(ar__sig_room_ended(srv, "soon"), 1);
    sleep(3);
    assert_int_equal(ar__sig_room_ended(srv, "soon"), 0);
    assert_int_equal(ar__sig_room_ended(srv, "later"), 1);
    apply(srv, "0000000000000002", "next", (int64_t)time(NULL) + 1800);
    assert_int_equal(ar__sig_rooms_ended_count(srv), 2); /* "soon" went */
    done(srv);
}

/* At the cap the oldest marker goes and every newer one stays; memory stays bounded. */
static void test_cap(void **state)
{
    (void)state;
    ar__sig_srv_t *srv = su_srv_new(1);
    char room[32];
    ar__sig_room_mark_ended(srv, "first"); /* the tables, allocated once */
    size_t before = mallinfo2().uordblks;
    for (unsigned i = 0; i <= AR__SIG_ENDED_MAX; i++) {
        snprintf(room, sizeof(room), "r%u", i);
        ar__sig_room_mark_ended(srv, room);
    }
    assert_int_equal(ar__sig_rooms_ended_count(srv), AR__SIG_ENDED_MAX);
    /* What a full table costs (docs/signal.md quotes it); 0 under a sanitizer's allocator. */
    size_t used = mallinfo2().uordblks - before;
    if (used) {
        printf("ended markers: %zu bytes each, %zu MiB at the cap\n", used / AR__SIG_ENDED_MAX,
               used >> 20);
        assert_true(used / AR__SIG_ENDED_MAX <= 64);
    }
    assert_int_equal(ar__sig_room_ended(srv, "r0"), 0);
    assert_int_equal(ar__sig_room_ended(srv, "r1"), 1);
    snprintf(room, sizeof(room), "r%u", AR__SIG_ENDED_MAX);
    assert_int_equal(ar__sig_room_ended(srv, room), 1);
    ar__sig_room_mark_ended(srv, "one-more");
    assert_int_equal(ar__sig_rooms_ended_count(srv), AR__SIG_ENDED_MAX);
    assert_int_equal(ar__sig_room_ended(srv, "r1"), 0);
    assert_int_equal(ar__sig_room_ended(srv, "r2"), 1);
    assert_int_equal(ar__sig_room_ended(srv, "one-more"), 1);
    done(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_marked_here_and_elsewhere),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
