/*
 * The log-bucket histogram against exact answers: every bucket's bounds, quantiles of known
 * samples within the documented 1/32 relative error (exact below 32), merging equal to adding,
 * and the stored form round-tripping and refusing damage.
 */
#include "hist.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static void buckets(void **state)
{
    (void)state;
    unsigned prev = 0;
    for (uint32_t v = 0; v <= AR_HIST_VMAX; v++) {
        unsigned i = ar_hist_bucket(v);
        assert_true(i < AR_HIST_BUCKETS);
        assert_true(i == prev || i == prev + 1);
        assert_true(ar_hist_lower(i) <= v && v < ar_hist_lower(i) + ar_hist_width(i));
        /* The midpoint is within v/32 of v (exact below 32). */
        uint32_t mid = ar_hist_lower(i) + (ar_hist_width(i) - 1) / 2;
        uint32_t d = mid > v ? mid - v : v - mid;
        assert_true(v < 32 ? d == 0 : (double)d <= (double)v / 32.0);
        prev = i;
    }
    assert_int_equal(ar_hist_bucket(AR_HIST_VMAX), AR_HIST_BUCKETS - 1);
    assert_int_equal(ar_hist_bucket(UINT32_MAX), AR_HIST_BUCKETS - 1);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* The nearest-rank quantile of sorted values. */
static uint32_t exact(const uint32_t *v, size_t n, double q)
{
    double r = q * (double)n;
    size_t rank = (size_t)r;
    if ((double)rank < r)
        rank++;
    if (rank == 0)
        rank = 1;
    return v[rank - 1];
}

static void quantiles_known(void **state)
{
    (void)state;
    enum { N = 5000 };
    uint32_t *v = malloc(N * sizeof(*v));
    ar_hist_t h;
    memset(&h, 0, sizeof(h));
    srand(7);
    for (size_t i = 0; i < N; i++) {
        /* A skewed spread like real RTTs: mostly tens of ms, a tail to seconds. */
        v[i] = (uint32_t)(rand() % 100) * (uint32_t)(rand() % 100) + (uint32_t)(rand() % 40);
        ar_hist_add(&h, v[i]);
    }
    qsort(v, N, sizeof(*v), cmp_u32);
    static const double qs[] = {0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1};
    for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
        uint32_t want = exact(v, N, qs[i]), got = ar_hist_quantile(&h, qs[i]);
        double err = want > got ? want - got : got - want;
        if (want < 32 ? err != 0 : err > (double)want / 32.0)
            fail_msg("q %.2f: got %u, exact %u", qs[i], got, want);
    }
    assert_int_equal(h.count, N);
    uint64_t sum = 0;
    for (size_t i = 0; i < N; i++)
        sum += v[i];
    assert_int_equal(h.sum, sum);
    free(v);

    ar_hist_t e;
    memset(&e, 0, sizeof(e));
    assert_int_equal(ar_hist_quantile(&e, 0.5), 0);
    ar_hist_add(&e, 7);
    ar_hist_add(&e, 9);
    ar_hist_add(&e, 1000000); /* clamped */
    assert_int_equal(ar_hist_quantile(&e, 0.5), 9);
    assert_int_equal(ar_hist_quantile(&e, 0.1), 7);
    assert_true(ar_hist_quantile(&e, 1) >= AR_HIST_VMAX - AR_HIST_VMAX / 32);
}

static void merge_and_encode(void **state)
{
    (void)state;
    ar_hist_t a, b, all;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    memset(&all, 0, sizeof(all));
    for (uint32_t i = 0; i < 3000; i++) {
        uint32_t x = (i * 2654435761u) % 70000;
        ar_hist_add(i % 3 ? &a : &b, x);
        ar_hist_add(&all, x);
    }
    ar_hist_merge(&a, &b);
    assert_memory_equal(&a, &all, sizeof(a));

    uint8_t buf[AR_HIST_ENC_MAX];
    int n = ar_hist_encode(&a, buf, sizeof(buf));
    assert_true(n > 0);
    ar_hist_t d;
    assert_int_equal(ar_hist_decode(buf, (size_t)n, &d), 0);
    assert_memory_equal(&d, &a, sizeof(a));
    /* Every truncation and a flipped version are refused, never misread. */
    for (int k = 1; k < n; k++)
        assert_int_equal(ar_hist_decode(buf, (size_t)k, &d), AR_EPARSE);
    buf[0] ^= 0x40;
    assert_int_equal(ar_hist_decode(buf, (size_t)n, &d), AR_EPARSE);
    assert_int_equal(ar_hist_decode(buf, 0, &d), 0);
    assert_int_equal(d.count, 0);
    assert_int_equal(ar_hist_encode(&a, buf, 10), AR_ETOOBIG);
    /* A zero gap after the first bucket would count one bucket twice. */
    const uint8_t dup[] = {1, 0, 2, 5, 1, 0, 1};
    assert_int_equal(ar_hist_decode(dup, sizeof(dup), &d), AR_EPARSE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(buckets),
        cmocka_unit_test(quantiles_known),
        cmocka_unit_test(merge_and_encode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
