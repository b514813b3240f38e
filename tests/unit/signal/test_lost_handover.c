/*
 * Frames lost for a session (bus.c, ar__sig_sess_frames_lost) across a change of the copy's
 * role, without sockets or NATS (docs/signal.md, "Messages dropped before the loop takes them"):
 *  - the old owner's hand-over answer ("taken") carries the count, saturated at UINT32_MAX,
 *    as a count the new owner accepts (it was packed as an int: -1, which it rejected);
 *  - a copy that goes back to being a backup (a promotion undone: the owner's adopt, or a
 *    claim it yields to) forgets what it noted as owner: the owner tells its client.
 * Publications are caught by wrapping ar__sig_bus_rec and ar__sig_bus_proc at link time
 * (CMakeLists.txt), as in test_promotion.c.
 */
#include "internal.h"
#include "sig_util.h"

#include "anteroom/alloc.h"
#include "anteroom/log.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define CAUGHT_MAX 16
static json_t *caught[CAUGHT_MAX];
static size_t ncaught;

static void catch_it(void *json_obj)
{
    if (!json_obj)
        return;
    assert_true(ncaught < CAUGHT_MAX);
    caught[ncaught++] = json_obj;
}

void __wrap_ar__sig_bus_rec(ar__sig_srv_t *srv, const char *kind, const char *key, void *json_obj);
void __wrap_ar__sig_bus_rec(ar__sig_srv_t *srv, const char *kind, const char *key, void *json_obj)
{
    (void)srv;
    (void)kind;
    (void)key;
    catch_it(json_obj);
}

void __wrap_ar__sig_bus_proc(ar__sig_srv_t *srv, uint64_t worker, void *json_obj);
void __wrap_ar__sig_bus_proc(ar__sig_srv_t *srv, uint64_t worker, void *json_obj)
{
    (void)srv;
    (void)worker;
    catch_it(json_obj);
}

static void caught_clear(void)
{
    for (size_t i = 0; i < ncaught; i++)
        json_decref(caught[i]);
    ncaught = 0;
}

/* The caught proc message of kind k, or NULL. */
static json_t *caught_kind(const char *k)
{
    for (size_t i = 0; i < ncaught; i++) {
        const char *ck = json_string_value(json_object_get(caught[i], "k"));
        if (ck && strcmp(ck, k) == 0)
            return caught[i];
    }
    return NULL;
}

static const char PEER[] = "PPPPPPPPPPPPPPPPPPPPPP";
static const char RESUME[] = "PPPPPPPPPPPPPPPPPPPPPP.AAAAAAAAAAAAAAAAAAAA";
static const char HASH0[] = "00000000000000000000000000000000"; /* subhash all zero */
#define C_ID 1u
#define D_ID 2u

/* A saturated count goes in "taken" as UINT32_MAX, which take_lost accepts ("[I,I]"). */
static void test_taken_carries_saturated_count(void **state)
{
    (void)state;
    ar__sig_srv_t *C = su_srv_new(C_ID);
    ar__sig_rec_t *r = ar__sig_rec_get(C, PEER);
    assert_non_null(r);
    r->owner = C_ID;
    ar__sig_sess_t *s = ar__sig_sess_link_new(C, r, 0);
    assert_non_null(s);
    assert_int_equal(ar__sig_sess_resume_set(s, RESUME), 0);
    memset(s->subhash, 0, sizeof(s->subhash));
    s->seq = 5;
    assert_non_null(ar__sig_sess_cold(s));
    s->cold->lost = UINT32_MAX;
    s->cold->lost_after = 3;
    su_proc(C, json_pack("{s:s,s:s,s:s,s:s,s:I,s:s}", "k", "take", "p", PEER, "r", RESUME, "h",
                         HASH0, "l", (json_int_t)5, "from", "0000000000000002"));
    json_t *ans = caught_kind("taken");
    assert_non_null(ans);
    assert_true(json_is_true(json_object_get(ans, "ok")));
    json_int_t n = -1, after = -1;
    assert_int_equal(json_unpack(json_object_get(ans, "lost"), "[I,I]", &n, &after), 0);
    assert_true(n == (json_int_t)UINT32_MAX);
    assert_true(after == 3);
    /* Handed over: kept as a backup copy until the new owner announces itself (handover.c). */
    assert_non_null(r->local);
    assert_true(r->local->is_backup);
    assert_int_equal(r->owner, 2);
    caught_clear();
    ar__sig_rec_free(C, r);
    su_srv_free(C);
}

/* Worker D (*Dp) with a copy of PEER's session (its record *rp), promoted when D declared C
 * dead; drops were noted on it as owner. */
static ar__sig_sess_t *promoted_with_losses(ar__sig_srv_t **Dp, ar__sig_rec_t **rp)
{
    ar__sig_srv_t *D = *Dp = su_srv_new(D_ID);
    ar__sig_rec_t *r = *rp = ar__sig_rec_get(D, PEER);
    assert_non_null(r);
    r->owner = C_ID;
    r->backup = D_ID;
    ar__sig_sess_t *s = ar__sig_sess_link_new(D, r, 1);
    assert_non_null(s);
    s->seq = 7;
    ar__sig_node_dead(D, C_ID);
    assert_false(s->is_backup);
    assert_true(s->promoted);
    ar__sig_sess_frames_lost(D, PEER, 2); /* counted: D owns it now */
    assert_int_equal(s->cold->lost, 2);
    caught_clear();
    return s;
}

/* After C took the session back: D's copy s is C's backup again and no longer holds the drops
 * it noted as owner (the owner noted them too). Frees D. */
static void backup_again_without_losses(ar__sig_srv_t *D, ar__sig_rec_t *r, ar__sig_sess_t *s)
{
    assert_ptr_equal(r->local, s);
    assert_true(s->is_backup);
    assert_int_equal(s->cold->lost, 0);
    assert_int_equal(s->cold->lost_after, 0);
    caught_clear();
    ar__sig_rec_free(D, r);
    su_srv_free(D);
}

/* The owner (only cut off) takes the session back with its adopt: D's copy is a backup again
 * and no longer holds the drops it noted as owner (the owner noted them too). */
static void test_adopt_undoes_promotion_clears_lost(void **state)
{
    (void)state;
    ar__sig_srv_t *D;
    ar__sig_rec_t *r;
    ar__sig_sess_t *s = promoted_with_losses(&D, &r);
    r->owner = C_ID; /* C's claim, applied */
    su_proc(D, json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:[]}", "k", "adopt", "p", PEER, "r", RESUME,
                         "h", HASH0, "seq", (json_int_t)9, "ack", (json_int_t)0, "fr"));
    backup_again_without_losses(D, r, s);
}

/* D yields to the owner's re-announcement ("re"); its copy stays as the backup, without the
 * drops it noted as owner. */
static void test_yield_clears_lost(void **state)
{
    (void)state;
    ar__sig_srv_t *D;
    ar__sig_rec_t *r;
    ar__sig_sess_t *s = promoted_with_losses(&D, &r);
    json_t *re = json_pack("{s:s,s:s,s:s,s:s,s:b}", "o", "0000000000000001", "p", PEER, "own",
                           "0000000000000001", "bk", "0000000000000002", "re", 1);
    ar__sig_rec_apply(D, re);
    json_decref(re);
    assert_int_equal(r->owner, C_ID);
    backup_again_without_losses(D, r, s);
}

int main(void)
{
    ar_log_init("signal", AR_LOG_WARN);
    ar_sig_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_taken_carries_saturated_count),
        cmocka_unit_test(test_adopt_undoes_promotion_clears_lost),
        cmocka_unit_test(test_yield_clears_lost),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
