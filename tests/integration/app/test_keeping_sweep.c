/*
 * The periodic sweep of expired keeping uploads (docs/keeping.md) through a real anteroom-app,
 * on both stores: uploads left unfinished are deleted with their chunks once they expire, with
 * no further upload started anywhere (the upload route's own delete never runs here), uploads
 * not yet expired stay, and the app logs only how many it removed. The sweep runs every 100 ms
 * (ar_app_opts_t.keeping_sweep_ms) on the app's clock, which the test moves.
 */
#include "harness.h"
#include "routes.h"

#include "anteroom/store.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SWEEP_MS 100

static char log_path[128];

/* Inserts an unfinished upload of the own clinic's provider expiring at `expires`, with
 * `chunks` chunks of ciphertext (random bytes), as the upload routes leave one. */
static void insert_upload(int64_t expires, int chunks)
{
    ar_store_conn_t *c;
    ar_store_stmt_t *st;
    uint8_t wrapped[384], iv[12], data[100];
    randombytes_buf(wrapped, sizeof(wrapped));
    randombytes_buf(iv, sizeof(iv));
    static const char ins[] =
        "INSERT INTO keeping_uploads (clinic_id, account_id, created_at, expires_at, kind, "
        "size, chunks, wrapped_key, iv) VALUES ($1, (SELECT id FROM accounts WHERE email = "
        "'provider@example.org'), $2, $3, 'file', $4, $5, $6, $7) RETURNING id";
    CHECK(ar_store_open(h_store_opts(), &c) == 0);
    CHECK(ar_store_prepare(c, ins, strlen(ins), &st) == 0);
    CHECK(ar_store_bind_int64(st, 1, h_clinic_own) == 0);
    CHECK(ar_store_bind_int64(st, 2, h_clock()) == 0);
    CHECK(ar_store_bind_int64(st, 3, expires) == 0);
    CHECK(ar_store_bind_int64(st, 4, (int64_t)sizeof(data) * chunks) == 0);
    CHECK(ar_store_bind_int64(st, 5, chunks) == 0);
    CHECK(ar_store_bind_blob(st, 6, wrapped, sizeof(wrapped)) == 0);
    CHECK(ar_store_bind_blob(st, 7, iv, sizeof(iv)) == 0);
    CHECK(ar_store_step(st) == AR_STORE_ROW);
    int64_t id = ar_store_col_int64(st, 0);
    ar_store_finalize(st);
    static const char chunk[] =
        "INSERT INTO keeping_upload_chunks (upload_id, idx, data) VALUES ($1, $2, $3)";
    for (int i = 0; i < chunks; i++) {
        randombytes_buf(data, sizeof(data));
        CHECK(ar_store_prepare(c, chunk, strlen(chunk), &st) == 0);
        CHECK(ar_store_bind_int64(st, 1, id) == 0);
        CHECK(ar_store_bind_int64(st, 2, i) == 0);
        CHECK(ar_store_bind_blob(st, 3, data, sizeof(data)) == 0);
        CHECK(ar_store_step(st) == AR_STORE_DONE);
        ar_store_finalize(st);
    }
    ar_store_close(c);
}

static int64_t count(const char *sql)
{
    ar_store_conn_t *c;
    ar_store_stmt_t *st;
    CHECK(ar_store_open(h_store_opts(), &c) == 0);
    CHECK(ar_store_prepare(c, sql, strlen(sql), &st) == 0);
    CHECK(ar_store_step(st) == AR_STORE_ROW);
    int64_t n = ar_store_col_int64(st, 0);
    ar_store_finalize(st);
    ar_store_close(c);
    return n;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

#define UPLOADS "SELECT count(*) FROM keeping_uploads"
#define CHUNKS "SELECT count(*) FROM keeping_upload_chunks"

static void cases(void)
{
    /* Two abandoned at their full life, one started later that outlives them. */
    int64_t t0 = h_clock();
    insert_upload(t0 + AR_APP_KEEPING_UPLOAD_TTL_S, 3);
    insert_upload(t0 + AR_APP_KEEPING_UPLOAD_TTL_S, 1);
    insert_upload(t0 + 2 * AR_APP_KEEPING_UPLOAD_TTL_S, 2);
    /* Ten sweeps before they expire: nothing goes. */
    sleep_ms(10 * SWEEP_MS);
    CHECK(count(UPLOADS) == 3 && count(CHUNKS) == 6);

    /* At their expiry (expires_at <= now) the two go within a few sweeps, chunks with them. */
    h_clock_set(t0 + AR_APP_KEEPING_UPLOAD_TTL_S);
    int64_t n = 3;
    for (int waited = 0; waited < 10000 && (n = count(UPLOADS)) != 1; waited += SWEEP_MS)
        sleep_ms(SWEEP_MS);
    if (n != 1) {
        fprintf(stderr, "expired uploads not swept: %lld rows left\n", (long long)n);
        exit(1);
    }
    CHECK(count(CHUNKS) == 2);
    printf("ok expired keeping uploads swept with their chunks, a live one kept\n");

    h_clock_set(t0 + 2 * AR_APP_KEEPING_UPLOAD_TTL_S);
    for (int waited = 0; waited < 10000 && (n = count(UPLOADS)) != 0; waited += SWEEP_MS)
        sleep_ms(SWEEP_MS);
    CHECK(n == 0 && count(CHUNKS) == 0);
    /* Stopping the app right after a sweep was submitted must not reach freed memory: the
     * harness stops it while the timer keeps firing every 100 ms (ASan run). */
    printf("ok the last one swept at its own expiry\n");
}

/* The log says how many went, as a count: one line for the two, one for the last. */
static void after(const ar_store_opts_t *so)
{
    (void)so;
    FILE *f = fopen(log_path, "r");
    CHECK(f != NULL);
    char line[1024];
    int two = 0, one = 0, other = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strstr(line, "\"event\":\"keeping_uploads_swept\"") == NULL)
            continue;
        if (strstr(line, ",\"count\":2}") != NULL)
            two++;
        else if (strstr(line, ",\"count\":1}") != NULL)
            one++;
        else
            other++;
    }
    fclose(f);
    if (two != 1 || one != 1 || other != 0) {
        fprintf(stderr, "sweep log lines: %d of 2, %d of 1, %d other\n", two, one, other);
        exit(1);
    }
    printf("ok the sweep logs only its counts\n");
}

int main(int argc, char **argv)
{
    h_keeping_sweep_ms = SWEEP_MS;
    snprintf(log_path, sizeof(log_path), "/tmp/ar-app-keepsweep-log.%d", (int)getpid());
    h_log_path = log_path;
    h_run(argc, argv, cases, after);
    unlink(log_path);
    printf("all keeping sweep tests passed (%s)\n", argv[1]);
    return 0;
}
