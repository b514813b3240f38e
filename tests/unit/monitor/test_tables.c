/*
 * The monitor's two in-memory tables: the per-token rate limiter (bucket, refill, bounded size,
 * least-recently-used eviction within a set) and the aggregate table (bounded, counts per
 * report, take-and-merge as a failed flush does), with allocation failures along the way.
 */
#include "internal.h"

#include "anteroom/alloc.h"
#include "anteroom/rand.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static void bucket_and_refill(void **state)
{
    (void)state;
    ar__rl_t rl;
    assert_int_equal(ar__rl_init(&rl, 64, 3, 60), 0); /* 3 at once, then one a second */
    ar__rl_key_t k = ar__rl_key(&rl, "AR1.a.b.c", 9);
    ar__rl_key_t k2 = ar__rl_key(&rl, "AR1.a.b.d", 9);
    assert_false(k.a == k2.a && k.b == k2.b);
    assert_null(ar__rl_find(&rl, k));
    int fresh;
    ar__rl_entry_t *e = ar__rl_take(&rl, k, 1000, &fresh);
    assert_non_null(e);
    assert_true(fresh);
    assert_non_null(ar__rl_take(&rl, k, 1000, &fresh));
    assert_false(fresh);
    assert_non_null(ar__rl_take(&rl, k, 1000, &fresh));
    assert_null(ar__rl_take(&rl, k, 1000, &fresh));
    assert_true(ar__rl_exhausted(&rl, ar__rl_find(&rl, k), 1500));
    assert_false(ar__rl_exhausted(&rl, ar__rl_find(&rl, k), 2000));
    assert_non_null(ar__rl_take(&rl, k, 2000, &fresh));
    assert_null(ar__rl_take(&rl, k, 2000, &fresh));
    /* Refill stops at the burst. */
    for (int i = 0; i < 3; i++)
        assert_non_null(ar__rl_take(&rl, k, 100000, &fresh));
    assert_null(ar__rl_take(&rl, k, 100000, &fresh));
    assert_int_equal(rl.used, 1);
    ar__rl_free(&rl);
}

static void bounded_and_lru(void **state)
{
    (void)state;
    ar__rl_t rl;
    assert_int_equal(ar__rl_init(&rl, 64, 2, 1), 0);
    size_t cap = rl.nsets * AR__RL_WAYS;
    char tok[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(tok, sizeof(tok), "AR1.t.%d", i);
        int fresh;
        assert_non_null(ar__rl_take(&rl, ar__rl_key(&rl, tok, strlen(tok)), i, &fresh));
        assert_true(fresh);
        assert_true(rl.used <= cap);
    }
    assert_int_equal(rl.used, cap);
    /* The most recent tokens are all still there: eviction takes the oldest of a set. */
    int kept = 0;
    for (int i = 5000 - (int)AR__RL_WAYS; i < 5000; i++) {
        snprintf(tok, sizeof(tok), "AR1.t.%d", i);
        kept += ar__rl_find(&rl, ar__rl_key(&rl, tok, strlen(tok))) != NULL;
    }
    assert_int_equal(kept, AR__RL_WAYS);
    ar__rl_free(&rl);
}

static ar_stats_report_t sample(uint32_t rtt, int cand)
{
    ar_stats_report_t r;
    memset(&r, 0, sizeof(r));
    r.version = 1;
    r.browser = AR_STATS_BROWSER_SAFARI;
    r.profile = AR_STATS_PROFILE_HIGH;
    r.cand = cand;
    r.rtt_ms = rtt;
    r.wait_s = 30;
    r.call_s = 600;
    r.present = AR_STATS_HAS_RTT | AR_STATS_HAS_WAIT;
    return r;
}

static void aggregates(void **state)
{
    (void)state;
    ar__aggtab_t t;
    assert_int_equal(ar__agg_init(&t, 3), 0);
    char longid[AR_TOKEN_ID_MAX + 1];
    memset(longid, 'x', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    assert_null(ar__agg_get(&t, longid, "a1", 10)); /* an id longer than tokens carry */
    assert_int_equal(t.used, 0);
    ar__agg_t *a = ar__agg_get(&t, "c1", "a1", 10);
    assert_non_null(a);
    assert_ptr_equal(ar__agg_get(&t, "c1", "a1", 10), a);
    assert_non_null(ar__agg_get(&t, "c1", "a1", 11));
    assert_non_null(ar__agg_get(&t, "c1", "", 10));
    assert_null(ar__agg_get(&t, "c2", "a1", 10)); /* full */
    ar_stats_report_t r = sample(40, AR_STATS_CAND_RELAY);
    ar__agg_report(a, &r, 1, 1, 0);
    r = sample(60, AR_STATS_CAND_HOST);
    r.final = 1;
    ar__agg_report(a, &r, 0, 0, 1);
    assert_int_equal(a->reports, 2);
    assert_int_equal(a->calls, 1);
    assert_int_equal(a->relayed_calls, 1);
    assert_int_equal(a->ended_calls, 1);
    assert_int_equal(a->call_seconds, 600);
    assert_int_equal(a->wait_seconds, 30);
    assert_int_equal(a->browser[AR_STATS_BROWSER_SAFARI], 1);
    assert_int_equal(a->profile[AR_STATS_PROFILE_HIGH], 2);
    assert_int_equal(a->cand[AR_STATS_CAND_RELAY], 1);
    assert_int_equal(a->h[AR__H_RTT].count, 2);
    assert_int_equal(ar_hist_quantile(&a->h[AR__H_RTT], 1), 60);
    assert_int_equal(a->h[AR__H_LOSS].count, 0);

    /* A failed take leaves the table whole; a taken batch merges back as after a failed flush. */
    ar_alloc_fail_after(0);
    ar__agg_t **v;
    size_t n;
    assert_int_equal(ar__agg_take(&t, &v, &n), AR_ENOMEM);
    ar_alloc_fail_after(-1);
    assert_int_equal(t.used, 3);
    assert_int_equal(ar__agg_take(&t, &v, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(t.used, 0);
    for (size_t i = 0; i < n; i++) {
        ar__agg_t *b = ar__agg_get(&t, v[i]->clinic, v[i]->area, v[i]->hour);
        assert_non_null(b);
        ar__agg_merge(b, v[i]);
        ar__agg_merge(b, v[i]);
        ar_free(v[i]);
    }
    ar_free(v);
    a = ar__agg_get(&t, "c1", "a1", 10);
    assert_int_equal(a->reports, 4);
    assert_int_equal(a->h[AR__H_RTT].count, 4);
    ar_alloc_fail_after(0);
    ar__agg_free(&t);
    assert_int_equal(ar__agg_init(&t, 3), AR_ENOMEM);
    ar_alloc_fail_after(-1);
}

int main(void)
{
    if (ar_rand_init() != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bucket_and_refill),
        cmocka_unit_test(bounded_and_lru),
        cmocka_unit_test(aggregates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
