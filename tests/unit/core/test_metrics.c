/* Metrics registry: exact exposition text, shard sums, histograms, concurrency, allocation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "anteroom/alloc.h"
#include "anteroom/metrics.h"

#include <pthread.h>
#include <string.h>

static char *render(ar_metrics_t *m)
{
    static char text[8192];
    ar_buf_t b;
    ar_buf_init(&b, sizeof(text) - 1);
    assert_int_equal(ar_metrics_render(m, &b), 0);
    memcpy(text, b.data, b.len);
    text[b.len] = '\0';
    ar_buf_release(&b);
    return text;
}

static void test_render_exact(void **state)
{
    (void)state;
    ar_metrics_t *m = ar_metrics_new();
    assert_non_null(m);
    ar_metric_t *udp =
        ar_metrics_counter(m, "ar_turn_relayed_bytes_total", "Bytes relayed.", "transport=\"udp\"");
    ar_metric_t *alloc = ar_metrics_gauge(m, "ar_turn_allocations", "Live allocations.", NULL);
    ar_metric_t *tcp =
        ar_metrics_counter(m, "ar_turn_relayed_bytes_total", "Bytes relayed.", "transport=\"tcp\"");
    static const double bounds[] = {0.005, 0.1, 1};
    ar_metric_t *h = ar_metrics_histogram(m, "ar_rtt_seconds", "Round trip\\time\nin s.",
                                          "kind=\"x\"", bounds, 3);
    assert_non_null(udp);
    assert_non_null(alloc);
    assert_non_null(tcp);
    assert_non_null(h);
    ar_metric_add(udp, 0, 100);
    ar_metric_add(udp, 5, 23);
    ar_metric_add(udp, 69, 1); /* shards wrap modulo AR_METRICS_SHARDS */
    ar_metric_add(udp, 3, -5); /* counters never go down */
    ar_metric_add(alloc, 1, 7);
    ar_metric_add(alloc, 2, -2);
    ar_metric_add(tcp, 1, 9);
    /* Binary-exact values, so the sum's text is exact too. */
    ar_metric_observe(h, 0, 0.00390625);
    ar_metric_observe(h, 1, 0.0048828125);
    ar_metric_observe(h, 2, 0.5);
    ar_metric_observe(h, 3, 3);
    ar_metric_observe(h, 4, 1); /* bounds are inclusive: this lands in le="1" */
    assert_int_equal(ar_metric_value(udp), 124);
    assert_int_equal(ar_metric_value(alloc), 5);
    assert_int_equal(ar_metric_value(h), 5);
    const char *want = "# HELP ar_turn_relayed_bytes_total Bytes relayed.\n"
                       "# TYPE ar_turn_relayed_bytes_total counter\n"
                       "ar_turn_relayed_bytes_total{transport=\"udp\"} 124\n"
                       "ar_turn_relayed_bytes_total{transport=\"tcp\"} 9\n"
                       "# HELP ar_turn_allocations Live allocations.\n"
                       "# TYPE ar_turn_allocations gauge\n"
                       "ar_turn_allocations 5\n"
                       "# HELP ar_rtt_seconds Round trip\\\\time\\nin s.\n"
                       "# TYPE ar_rtt_seconds histogram\n"
                       "ar_rtt_seconds_bucket{kind=\"x\",le=\"0.005\"} 2\n"
                       "ar_rtt_seconds_bucket{kind=\"x\",le=\"0.1\"} 2\n"
                       "ar_rtt_seconds_bucket{kind=\"x\",le=\"1\"} 4\n"
                       "ar_rtt_seconds_bucket{kind=\"x\",le=\"+Inf\"} 5\n"
                       "ar_rtt_seconds_sum{kind=\"x\"} 4.5087890625\n"
                       "ar_rtt_seconds_count{kind=\"x\"} 5\n";
    assert_string_equal(render(m), want);

    ar_metric_set(alloc, 42);
    assert_int_equal(ar_metric_value(alloc), 42);
    assert_non_null(strstr(render(m), "\nar_turn_allocations 42\n"));
    ar_metrics_free(m);
}

static void test_bad_registrations(void **state)
{
    (void)state;
    ar_metrics_t *m = ar_metrics_new();
    assert_null(ar_metrics_counter(m, "1bad", "x", NULL));
    assert_null(ar_metrics_counter(m, "bad-name", "x", NULL));
    assert_non_null(ar_metrics_counter(m, "same", "x", NULL));
    assert_null(ar_metrics_gauge(m, "same", "x", NULL)); /* one name, one type */
    static const double unsorted[] = {1, 0.5};
    assert_null(ar_metrics_histogram(m, "h", "x", NULL, unsorted, 2));
    /* A histogram without explicit bounds has only +Inf. */
    ar_metric_t *h = ar_metrics_histogram(m, "h", "x", NULL, NULL, 0);
    ar_metric_observe(h, 0, 2.5);
    assert_non_null(strstr(render(m), "h_bucket{le=\"+Inf\"} 1\nh_sum 2.5\nh_count 1\n"));
    /* A render that does not fit fails with the buffer's cap error. */
    ar_buf_t b;
    ar_buf_init(&b, 10);
    assert_int_equal(ar_metrics_render(m, &b), AR_ETOOBIG);
    ar_buf_release(&b);
    ar_metrics_free(m);
}

typedef struct {
    ar_metric_t *c;
    unsigned shard;
} worker_arg_t;

static void *worker(void *p)
{
    worker_arg_t *a = p;
    for (int i = 0; i < 100000; i++)
        ar_metric_add(a->c, a->shard, 1);
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    ar_metrics_t *m = ar_metrics_new();
    ar_metric_t *c = ar_metrics_counter(m, "packets_total", "p", NULL);
    pthread_t t[4];
    worker_arg_t args[4];
    for (unsigned i = 0; i < 4; i++) {
        /* Two threads share shard 0: correctness must not depend on one writer per shard. */
        args[i] = (worker_arg_t){c, i < 2 ? 0 : i};
        pthread_create(&t[i], NULL, worker, &args[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(ar_metric_value(c), 400000);
    ar_metrics_free(m);
}

static void test_alloc_failures(void **state)
{
    (void)state;
    static const double bounds[] = {1, 2};
    int ok = 0;
    for (long n = 0; n < 50 && !ok; n++) {
        ar_alloc_fail_after(n);
        ar_metrics_t *m = ar_metrics_new();
        ar_metric_t *a = m ? ar_metrics_counter(m, "a", "h", "l=\"1\"") : NULL;
        ar_metric_t *h = m ? ar_metrics_histogram(m, "b", "h", NULL, bounds, 2) : NULL;
        ar_alloc_fail_after(-1);
        ok = a != NULL && h != NULL;
        ar_metrics_free(m);
    }
    assert_true(ok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_exact),
        cmocka_unit_test(test_bad_registrations),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
