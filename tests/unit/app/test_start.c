/* ar_app_start's refusals free everything (ASan checks) and name the right error. */
#include "app.h"

#include "anteroom/rand.h"
#include "anteroom/tls.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

static char dir[64], cert[128], key[128];
/* ar_app_start only keeps the pool pointer; these cases never reach a request. */
static int not_a_pool;

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/ar-app-start.XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
    snprintf(key, sizeof(key), "%s/key.pem", dir);
    assert_int_equal(ar_tls_selfsigned_generate(cert, key, NULL, 0, 1), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(cert);
    unlink(key);
    rmdir(dir);
    return 0;
}

static ar_app_opts_t base(void)
{
    /* No keeping sweep: it would submit a job to the pool (the case below has a real one). */
    ar_app_opts_t o = {.cert_path = cert,
                       .key_path = key,
                       .origin = "https://app.test",
                       .store = (ar_store_pool_t *)&not_a_pool,
                       .pwhash_ops = 1,
                       .pwhash_mem = 8192,
                       .keeping_sweep_ms = -1};
    return o;
}

static int start(const ar_app_opts_t *o)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    ar_app_t *app = NULL;
    int rc = ar_app_start(&loop, o, &app);
    if (rc == 0)
        ar_app_stop(app);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    return rc;
}

static void refusals(void **state)
{
    (void)state;
    ar_app_opts_t o = base();
    o.origin = "http://app.test";
    assert_int_equal(start(&o), AR_EINVAL);
    o = base();
    o.cert_path = "/nonexistent/cert.pem";
    assert_int_equal(start(&o), AR_ETLS);
    o = base();
    o.web_dir = "/nonexistent";
    assert_int_equal(start(&o), AR_EIO);
    o = base();
    o.host = "not-an-address";
    assert_int_equal(start(&o), AR_EINVAL);
    assert_int_equal(start(&(ar_app_opts_t){0}), AR_EINVAL);
}

static void starts_and_stops(void **state)
{
    (void)state;
    ar_app_opts_t o = base();
    assert_int_equal(start(&o), 0);
}

static void port_in_use(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    ar_app_opts_t o = base();
    ar_app_t *a = NULL, *b = NULL;
    assert_int_equal(ar_app_start(&loop, &o, &a), 0);
    o.port = ar_app_port(a);
    assert_int_equal(ar_app_start(&loop, &o, &b), AR_EADDRINUSE);
    ar_app_stop(a);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* With max_conns 1, a second connection is closed at once while the first stays open. */
static void connection_cap(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    ar_app_opts_t o = base();
    o.max_conns = 1;
    ar_app_t *app = NULL;
    assert_int_equal(ar_app_start(&loop, &o, &app), 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(ar_app_port(app))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fds[2];
    for (int i = 0; i < 2; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        assert_int_equal(connect(fds[i], (struct sockaddr *)&sa, sizeof(sa)), 0);
        for (int k = 0; k < 20; k++)
            uv_run(&loop, UV_RUN_NOWAIT), usleep(1000);
    }
    struct pollfd p[2] = {{.fd = fds[0], .events = POLLIN}, {.fd = fds[1], .events = POLLIN}};
    assert_int_equal(poll(p, 2, 100), 1);
    assert_int_equal(p[0].revents, 0);
    char b;
    assert_int_equal(read(fds[1], &b, 1), 0); /* closed by the server */
    close(fds[0]);
    close(fds[1]);
    for (int k = 0; k < 20; k++)
        uv_run(&loop, UV_RUN_NOWAIT), usleep(1000);
    ar_app_stop(app);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* Starts an app whose keeping sweep runs every 1 ms on a real pool over the SQLite file so,
 * and runs its loop until the first sweep job was submitted (`turns` times). */
static ar_app_t *sweep_app(uv_loop_t *loop, const ar_store_opts_t *so, ar_store_pool_t **pool,
                           int turns)
{
    uv_loop_init(loop);
    assert_int_equal(ar_store_pool_open(loop, so, 1, 0, pool), 0);
    ar_app_opts_t o = base();
    o.store = *pool;
    o.keeping_sweep_ms = 1;
    ar_app_t *app = NULL;
    assert_int_equal(ar_app_start(loop, &o, &app), 0);
    for (int k = 0; k < turns; k++) {
        usleep(1500);
        uv_run(loop, UV_RUN_NOWAIT);
    }
    return app;
}

/*
 * A keeping sweep job queued or running when the app stops completes later, on the sweep's own
 * memory, touching nothing of the app, and everything is freed (ASan checks both):
 *   - the daemon's order, the app stopped and the pool closed in one callback, after a varying
 *     number of sweeps (the job caught queued, running or done);
 *   - the job held up by another connection's write lock while the app stops and its loop turns
 *     (the sweep's timer closes), then the pool closes: the job's completion comes last. Seen to
 *     fail (heap-use-after-free) when the sweep was freed without waiting for its job.
 */
static void sweep_in_flight_at_stop(void **state)
{
    (void)state;
    char db[128];
    snprintf(db, sizeof(db), "%s/sweep.db", dir);
    ar_store_opts_t so = {.kind = AR_STORE_SQLITE, .target = db, .busy_timeout_ms = 300};
    ar_store_conn_t *c;
    assert_int_equal(ar_store_open(&so, &c), 0);
    assert_int_equal(ar_store_migrate(c), 0);
    uv_loop_t loop;
    ar_store_pool_t *pool;
    for (int i = 0; i < 12; i++) {
        ar_app_t *app = sweep_app(&loop, &so, &pool, 1 + i % 6);
        ar_app_stop(app);
        ar_store_pool_close(pool);
        uv_run(&loop, UV_RUN_DEFAULT);
        assert_int_equal(uv_loop_close(&loop), 0);
    }
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ar_store_exec(c, "BEGIN IMMEDIATE"), 0);
        ar_app_t *app = sweep_app(&loop, &so, &pool, 1);
        ar_app_stop(app);
        for (int k = 0; k < 5; k++)
            uv_run(&loop, UV_RUN_NOWAIT);
        assert_int_equal(ar_store_rollback(c), 0);
        ar_store_pool_close(pool);
        uv_run(&loop, UV_RUN_DEFAULT);
        assert_int_equal(uv_loop_close(&loop), 0);
    }
    ar_store_close(c);
    unlink(db);
    char side[160];
    snprintf(side, sizeof(side), "%s-wal", db);
    unlink(side);
    snprintf(side, sizeof(side), "%s-shm", db);
    unlink(side);
}

int main(void)
{
    if (ar_rand_init() != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(refusals),
        cmocka_unit_test(starts_and_stops),
        cmocka_unit_test(port_in_use),
        cmocka_unit_test(connection_cap),
        cmocka_unit_test(sweep_in_flight_at_stop),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
