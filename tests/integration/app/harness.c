#include "harness.h"
#include "keys.h"

#include "anteroom/log.h"
#include "anteroom/rand.h"
#include "anteroom/store.h"
#include "anteroom/tls.h"

#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

const char *h_origin = "https://app.test";
int64_t h_idle_s = 600, h_max_s = 1800;
int64_t h_clinic_own, h_clinic_other;
const char *h_password = "correct horse battery staple";
const uint8_t *h_seal_key = (const uint8_t *)"test seal key: 32 bytes exactly!";
const struct ar_app_servers_s *h_servers;
const char *h_log_path;
int64_t h_keeping_sweep_ms;

static h_frame_t frame; /* the directory, certificate and store (serve_frame.h) */
static uv_loop_t loop;
static uv_async_t stop_async;
static uv_async_t reload_async;
static uv_sem_t reloaded;
static int reload_rc;
static ar_app_t *app;
static ar_store_pool_t *pool;
static uint16_t port;

static void on_stop(uv_async_t *a)
{
    ar_app_stop(app);
    ar_store_pool_close(pool);
    uv_close((uv_handle_t *)a, NULL);
    uv_close((uv_handle_t *)&reload_async, NULL);
}

static void on_reload(uv_async_t *a)
{
    (void)a;
    reload_rc = ar_app_reload_tls(app);
    uv_sem_post(&reloaded);
}

int h_reload_tls(void)
{
    uv_async_send(&reload_async);
    uv_sem_wait(&reloaded);
    return reload_rc;
}

const char *h_tmpdir(void)
{
    return frame.dir;
}

const ar_store_opts_t *h_store_opts(void)
{
    return &frame.store;
}

uint16_t h_port(void)
{
    return port;
}

static void serve(void (*cases)(void))
{
    uv_loop_init(&loop);
    uv_async_init(&loop, &stop_async, on_stop);
    uv_async_init(&loop, &reload_async, on_reload);
    uv_sem_init(&reloaded, 0);
    int rc = ar_store_pool_open(&loop, &frame.store, 2, 0, &pool);
    ar_app_opts_t o = {.cert_path = frame.cert,
                       .key_path = frame.key,
                       .origin = h_origin,
                       .web_dir = AR_WEB_DIR,
                       .store = pool,
                       .session_idle_s = h_idle_s,
                       .session_max_s = h_max_s,
                       .max_body = 4096,
                       .clock = h_clock_cb,
                       .pwhash_ops = crypto_pwhash_OPSLIMIT_MIN,
                       .pwhash_mem = crypto_pwhash_MEMLIMIT_MIN,
                       .seal_key = h_seal_key,
                       .servers = h_servers,
                       .entry_per_minute = 5,
                       .keeping_sweep_ms = h_keeping_sweep_ms};
    if (rc == 0)
        rc = ar_app_start(&loop, &o, &app);
    CHECK(rc == 0);
    port = ar_app_port(app);
    h_client_init(frame.dir, port);
    h_frame_serve(&loop, &stop_async, cases);
}

static int64_t run_sql(ar_store_conn_t *c, const char *sql, const char *const *texts, int nt,
                       const int64_t *ints, int ni)
{
    ar_store_stmt_t *st;
    CHECK(ar_store_prepare(c, sql, strlen(sql), &st) == 0);
    for (int i = 0; i < nt; i++)
        CHECK(ar_store_bind_text(st, i + 1, texts[i], strlen(texts[i])) == 0);
    for (int i = 0; i < ni; i++)
        CHECK(ar_store_bind_int64(st, nt + i + 1, ints[i]) == 0);
    int rc = ar_store_step(st);
    CHECK(rc >= 0);
    int64_t id = rc == AR_STORE_ROW ? ar_store_col_int64(st, 0) : 0;
    ar_store_finalize(st);
    return id;
}

/* One account per role (members of the own clinic), a disabled one, and a second clinic
 * nobody here belongs to. */
static void seed(void)
{
    ar_store_conn_t *c;
    CHECK(ar_store_open(&frame.store, &c) == 0);
    CHECK(ar_store_migrate(c) == 0);
    static const char clinic_sql[] =
        "INSERT INTO clinics (name, jurisdiction, created_at) VALUES ($1, $2, $3) RETURNING id";
    const char *own[] = {"Own Clinic", "eu"}, *other[] = {"Other Clinic", "eu"};
    const int64_t one = 1;
    h_clinic_own = run_sql(c, clinic_sql, own, 2, &one, 1);
    h_clinic_other = run_sql(c, clinic_sql, other, 2, &one, 1);
    char hash[crypto_pwhash_STRBYTES];
    CHECK(ar_app_password_hash(h_password, strlen(h_password), crypto_pwhash_OPSLIMIT_MIN,
                               crypto_pwhash_MEMLIMIT_MIN, hash, sizeof(hash)) == 0);
    static const char *const roles[] = {"operator",     "clinic_admin", "provider",
                                        "receptionist", "reporter",     "disabled"};
    for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
        char email[64];
        snprintf(email, sizeof(email), "%s@example.org", roles[i]);
        const char *t[] = {email, "Test Person", hash};
        const int64_t n[] = {i == 0, strcmp(roles[i], "disabled") == 0};
        int64_t id = run_sql(c,
                             "INSERT INTO accounts (email, display_name, password_hash, "
                             "is_operator, disabled, created_at) VALUES ($1, $2, $3, $4, $5, 1) "
                             "RETURNING id",
                             t, 3, n, 2);
        if (i == 0 || i == 5)
            continue;
        const char *r[] = {roles[i]};
        const int64_t m[] = {id, h_clinic_own};
        /* role is $1, the ids $2 and $3 */
        run_sql(c, "INSERT INTO memberships (role, account_id, clinic_id) VALUES ($1, $2, $3)", r,
                1, m, 2);
    }
    /* The seeded accounts sign in with a password alone (the second factor is required for
     * staff by default: migration 0005); the accounts tests enrol their own. */
    run_sql(c, "UPDATE accounts SET mfa_required = 0", NULL, 0, NULL, 0);
    /* The first signing key and TURN secret, as the daemon makes them at start. */
    CHECK(ar_app_keys_ensure(c, h_seal_key, h_clock(), "test-turn-secret") == 0);
    ar_store_close(c);
}

void h_run(int argc, char **argv, void (*cases)(void), void (*after)(const ar_store_opts_t *))
{
    CHECK(argc >= 2);
    CHECK(ar_rand_init() == 0);
    ar_log_init("test_app", h_log_path ? AR_LOG_DEBUG : AR_LOG_WARN);
    if (h_log_path != NULL) {
        int fd = open(h_log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        CHECK(fd >= 0);
        ar_log_set_fd(fd);
    }
    h_frame_init(&frame, "/tmp/ar-app-test", "app.db", argv[1]);
    seed();
    serve(cases);
    if (after != NULL)
        after(&frame.store);
}

int h_signin(const char *email, const char *password, char *cookie, size_t cookiecap, char *csrf,
             size_t csrfcap)
{
    char body[300];
    snprintf(body, sizeof(body), "{\"email\":\"%s\",\"password\":\"%s\"}", email, password);
    req_t rq = {.method = "POST", .path = "/api/v1/session", .origin = h_origin, .body = body};
    resp_t r;
    h_request(&rq, &r);
    int status = r.status;
    if (status == 201) {
        char sc[300];
        CHECK(h_header(&r, "set-cookie", sc, sizeof(sc)) != NULL);
        snprintf(cookie, cookiecap, "%.*s", (int)strcspn(sc, ";"), sc);
        const char *t = strstr(r.body, "\"csrf_token\":\"");
        CHECK(t != NULL);
        t += strlen("\"csrf_token\":\"");
        snprintf(csrf, csrfcap, "%.*s", (int)strcspn(t, "\""), t);
    }
    h_resp_free(&r);
    return status;
}
