/*
 * Stopping the shared HTTPS listener: the owner's drained callback runs until it says done, and
 * never again once it has freed itself. Freeing disposes h2o's context, which runs the loop once
 * (uv_run NOWAIT): a stop tick falling due then used to call the owner a second time, inside its
 * own free (a double free ASan caught in CI on anteroom-monitor's stop).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "anteroom/tls.h"
#include "https.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static char dir[64], cert[128], key[128];

typedef struct {
    ar_https_t https;
    int calls;
    int freed;
} owner_t;

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    (void)req;
    return -1;
}

static void on_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    (void)self;
    h2o_setup_next_ostream(req, slot);
}

/* Works longer than one stop tick (10 ms) before disposing, so a tick is due inside the dispose. */
static int on_drained(ar_https_t *h, void *data, int can_wait)
{
    owner_t *o = data;
    (void)can_wait;
    o->calls++;
    assert_int_equal(o->freed, 0);
    struct timespec slow = {.tv_sec = 0, .tv_nsec = 30 * 1000 * 1000};
    nanosleep(&slow, NULL);
    ar_https_dispose(h);
    o->freed = 1;
    return 1;
}

static void stop_calls_owner_once_after_dispose(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/ar_https_XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
    snprintf(key, sizeof(key), "%s/key.pem", dir);
    assert_int_equal(ar_tls_selfsigned_generate(cert, key, NULL, 0, 1), 0);

    uv_loop_t loop;
    uv_loop_init(&loop);
    owner_t o = {0};
    ar_https_opts_t opts = {.cert_path = cert,
                            .key_path = key,
                            .max_conns = 4,
                            .max_request_body = 1024,
                            .on_req = on_req,
                            .on_setup_ostream = on_setup_ostream,
                            .data = &o};
    assert_int_equal(ar_https_start(&o.https, &loop, &opts), 0);
    assert_true(o.https.port > 0);
    ar_https_close(&o.https, on_drained, &o);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.freed, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
    unlink(cert);
    unlink(key);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stop_calls_owner_once_after_dispose),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
