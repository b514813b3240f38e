/* A signalling worker for bus tests: bus_worker.h. */
#include "bus_worker.h"

#include "bus_internal.h"
#include "fake_nats.h"
#include "sig_util.h"

#include "anteroom/alloc.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

static const char *const origins[] = {SU_ORIGIN};
static const ar_ws_upgrade_conf_t upconf = {origins, 1, 0, AR_SIG_SUBPROTOCOL};

void su_worker_new(su_worker_t *w, uint64_t id, int start, long inbox_max)
{
    w->conf.jurisdiction = (char *)"eu";
    w->conf.inbox_max = inbox_max;
    w->srv = ar_calloc(1, sizeof(*w->srv));
    assert_non_null(w->srv);
    w->srv->conf = &w->conf;
    w->srv->node_id = id;
    w->srv->metrics = ar_metrics_new();
    assert_non_null(w->srv->metrics);
    ar_sn_conf_t nc = {.upgrade = &upconf, .conn_area = sizeof(ar__sig_conn_t)};
    ar_sn_handler_t h = {0};
    assert_int_equal(ar_sn_loop_new(&nc, &h, &w->srv->loop), 0);
    if (start) {
        assert_int_equal(ar__sig_bus_start(w->srv), 0);
        assert_true(w->srv->bus->pth_started); /* the publisher thread runs */
    } else {
        assert_int_equal(ar__sig_bus_new(w->srv), 0);
    }
}

void su_worker_free(su_worker_t *w)
{
    su_recs_free(w->srv);
    ar__sig_bus_stop(w->srv);     /* nothing if the test stopped it already */
    ar__sig_invites_free(w->srv); /* the bus's start made them (the ended rooms' catch-up) */
    ar_sn_loop_free(w->srv->loop);
    ar_metrics_free(w->srv->metrics);
    su_srv_free(w->srv);
}

su_bus_fixture_t *su_bus_fixture_new(long inbox_max)
{
    su_bus_fixture_t *f = ar_calloc(1, sizeof(*f));
    assert_non_null(f);
    ar_sig_init();
    fake_nats_reset();
    su_worker_new(&f->w, 1, 1, inbox_max);
    f->srv = f->w.srv;
    return f;
}

int su_bus_fixture_teardown(void **state)
{
    su_bus_fixture_t *f = *state;
    fake_nats_gate(1);
    su_worker_free(&f->w);
    ar_free(f);
    return 0;
}
