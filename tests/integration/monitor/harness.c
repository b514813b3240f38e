#include "harness.h"

#include "anteroom/log.h"
#include "anteroom/rand.h"
#include "anteroom/tls.h"

#include <sodium.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

const char *h_origin = "https://app.test";
ar_token_key_t h_key;
ar_metrics_t *h_metrics;

static h_frame_t frame; /* the directory, certificate and store (serve_frame.h) */
static uv_loop_t loop;
static uv_async_t stop_async, flush_async;
static uv_sem_t flushed;
static int flush_rc;
static ar_monitor_t *mon;
static ar_store_pool_t *pool;
static uint16_t port;

static void on_stopped(int status, void *data)
{
    (void)status;
    (void)data;
    ar_store_pool_close(pool);
}

static void on_stop(uv_async_t *a)
{
    ar_monitor_stop(mon, on_stopped, NULL);
    uv_close((uv_handle_t *)a, NULL);
    uv_close((uv_handle_t *)&flush_async, NULL);
}

static void on_flushed(int status, void *data)
{
    (void)data;
    flush_rc = status;
    uv_sem_post(&flushed);
}

static void on_flush(uv_async_t *a)
{
    (void)a;
    int rc = ar_monitor_flush(mon, on_flushed, NULL);
    if (rc != 0)
        on_flushed(rc, NULL);
}

int h_flush(void)
{
    uv_async_send(&flush_async);
    uv_sem_wait(&flushed);
    return flush_rc;
}

void h_token(const char *clinic, const char *area, const char *aud, int64_t exp_in, char *out,
             size_t cap)
{
    ar_token_claims_t c;
    memset(&c, 0, sizeof(c));
    snprintf(c.aud, sizeof(c.aud), "%s", aud != NULL ? aud : "monitor");
    uint8_t sub[12];
    randombytes_buf(sub, sizeof(sub));
    sodium_bin2hex(c.sub, sizeof(c.sub), sub, sizeof(sub));
    snprintf(c.jur, sizeof(c.jur), "eu");
    if (area != NULL) {
        c.role = AR_TOKEN_PATIENT;
        snprintf(c.room, sizeof(c.room), "r%.40s", c.sub);
        snprintf(c.clinic, sizeof(c.clinic), "%s", clinic);
        snprintf(c.area, sizeof(c.area), "%s", area);
    } else {
        c.role = AR_TOKEN_STAFF;
        snprintf(c.clinics[0].id, sizeof(c.clinics[0].id), "%s", clinic);
        snprintf(c.clinics[0].roles[0], sizeof(c.clinics[0].roles[0]), "provider");
        c.clinics[0].nroles = 1;
        c.nclinics = 1;
    }
    c.iat = h_clock() - 10;
    c.exp = h_clock() + exp_in;
    CHECK(ar_token_mint(&h_key, &c, out, cap) > 0);
}

static void serve(void (*cases)(void))
{
    uv_loop_init(&loop);
    uv_async_init(&loop, &stop_async, on_stop);
    uv_async_init(&loop, &flush_async, on_flush);
    uv_sem_init(&flushed, 0);
    ar_token_keyring_t ring;
    memset(&ring, 0, sizeof(ring));
    ar_token_key_t pub = h_key;
    memset(pub.sk, 0, sizeof(pub.sk));
    pub.has_sk = 0;
    CHECK(ar_token_keyring_add(&ring, &pub) == 0);
    h_metrics = ar_metrics_new();
    CHECK(h_metrics != NULL);
    int rc = ar_store_pool_open(&loop, &frame.store, 1, 0, &pool);
    ar_monitor_opts_t o = {.cert_path = frame.cert,
                           .key_path = frame.key,
                           .origin = h_origin,
                           .keys = &ring,
                           .store = pool,
                           .metrics = h_metrics,
                           .flush_ms = 3600000, /* the tests flush when they choose */
                           .rate_burst = 5,
                           .rate_per_min = 1,
                           .clock = h_clock_cb};
    if (rc == 0)
        rc = ar_monitor_start(&loop, &o, &mon);
    ar_token_keyring_wipe(&ring);
    CHECK(rc == 0);
    port = ar_monitor_port(mon);
    h_client_init(frame.dir, port);
    h_frame_serve(&loop, &stop_async, cases);
    uv_sem_destroy(&flushed);
}

void h_run(int argc, char **argv, void (*cases)(void), void (*after)(const ar_store_opts_t *))
{
    CHECK(argc >= 2);
    CHECK(ar_rand_init() == 0);
    ar_log_init("test_monitor", AR_LOG_WARN);
    h_frame_init(&frame, "/tmp/ar-monitor-test", "monitor.db", argv[1]);
    CHECK(ar_token_key_generate(&h_key, "k1") == 0);
    ar_store_conn_t *c;
    CHECK(ar_store_open(&frame.store, &c) == 0);
    CHECK(ar_store_migrate(c) == 0);
    ar_store_close(c);
    serve(cases);
    if (after != NULL)
        after(&frame.store);
    ar_metrics_free(h_metrics);
}
