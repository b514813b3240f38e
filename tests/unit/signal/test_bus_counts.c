/*
 * What the bus carries, counted by kind (src/signal/bus.c, bus_pub.c, bus_node.c):
 * anteroom_signal_bus_published_total and anteroom_signal_bus_received_total, by the subject's
 * kind. A failover's aftermath was read from them (every worker receives every record update,
 * docs/performance.md). libnats is stood in for (fake_nats.c).
 */
#include "bus_internal.h"
#include "bus_worker.h"
#include "fake_nats.h"

#include "anteroom/metrics.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

static int setup(void **state)
{
    *state = su_bus_fixture_new(1 << 20);
    return 0;
}

/* Each kind's counters start where the bus's start left them; only the kind used moves. */
static void test_counted_by_kind(void **state)
{
    su_bus_fixture_t *f = *state;
    ar__sig_bus_t *b = f->srv->bus;
    int64_t pub0[K__COUNT], rec0[K__COUNT];
    for (int k = 0; k < K__COUNT; k++) {
        pub0[k] = ar_metric_value(b->m_published[k]);
        rec0[k] = ar_metric_value(b->m_received[k]);
    }
    char subj[128];
    snprintf(subj, sizeof(subj), "%sproc.%016llx", b->prefix, 2ull);
    ar__sig_bus_publish(b, subj, "{}", 2);
    snprintf(subj, sizeof(subj), "%ssess.AAAAAAAAAAAAAAAAAAAAAA", b->prefix);
    ar__sig_bus_put(b, subj, "{}", 2);
    ar__sig_bus_put(b, subj, "{}", 2);
    snprintf(subj, sizeof(subj), "%sto.00000001.00000002.AAAAAAAAAAAAAAAAAAAAAA", b->prefix);
    ar__sig_bus_put(b, subj, "x", 1);
    ar__sig_bus_heartbeat(f->srv);
    for (int k = 0; k < K__COUNT; k++) {
        int64_t pub = ar_metric_value(b->m_published[k]) - pub0[k];
        int64_t rec = ar_metric_value(b->m_received[k]) - rec0[k];
        assert_int_equal(pub, k == K_PROC || k == K_NODE ? 1 : 0);
        assert_int_equal(rec, k == K_REC ? 2 : k == K_TO ? 1 : 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_counted_by_kind, setup, su_bus_fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
