/*
 * Memory per clinic-hour of aggregates: fills the monitor's in-memory table (src/monitor/agg.c)
 * with N clinic-area-hours of R reports each, with realistic spreads, and prints
 *   - the heap bytes per entry (RSS growth / N, and the structure's size),
 *   - the stored bytes per row: the nine histograms in their sparse form plus the counters,
 *   - what a token's first report costs on top of later ones: one ar_token_verify (Ed25519).
 *   ar_bench_monitor_mem [entries] [reports-per-entry]
 */
#include "internal.h"

#include "anteroom/alloc.h"

#include "anteroom/rand.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* The signature check a token's first report pays (later ones hit the rate limiter's entry). */
static int verify_cost(void)
{
    ar_token_key_t k;
    ar_token_keyring_t ring;
    memset(&ring, 0, sizeof(ring));
    if (ar_rand_init() != 0 || ar_token_key_generate(&k, "b") != 0 ||
        ar_token_keyring_add(&ring, &k) != 0)
        return 1;
    ar_token_claims_t c;
    memset(&c, 0, sizeof(c));
    snprintf(c.aud, sizeof(c.aud), "monitor");
    snprintf(c.sub, sizeof(c.sub), "s");
    snprintf(c.room, sizeof(c.room), "r");
    snprintf(c.clinic, sizeof(c.clinic), "clinic-1");
    snprintf(c.area, sizeof(c.area), "area-1");
    snprintf(c.jur, sizeof(c.jur), "eu");
    c.role = AR_TOKEN_PATIENT;
    c.iat = (int64_t)time(NULL);
    c.exp = c.iat + 3600;
    char tok[AR_TOKEN_MAX];
    int n = ar_token_mint(&k, &c, tok, sizeof(tok));
    if (n < 0)
        return 1;
    enum { RUNS = 2000 };
    double t0 = now_us();
    for (int i = 0; i < RUNS; i++) {
        ar_token_claims_t out;
        if (ar_token_verify(&ring, tok, (size_t)n, "monitor", c.iat, &out) != 0)
            return 1;
    }
    printf("token: ar_token_verify %.1f us (a token's first report only)\n",
           (now_us() - t0) / RUNS);
    ar_token_keyring_wipe(&ring);
    return 0;
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    if (f != NULL)
        fclose(f);
    return kib;
}

int main(int argc, char **argv)
{
    unsigned n = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 10000;
    unsigned reps = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 360;
    ar__aggtab_t t;
    if (ar__agg_init(&t, n) != 0)
        return 1;
    long before = rss_kib();
    srand(1);
    for (unsigned i = 0; i < n; i++) {
        char clinic[32], area[32];
        snprintf(clinic, sizeof(clinic), "clinic-%u", i / 24 / 4);
        snprintf(area, sizeof(area), "area-%u", (i / 24) % 4);
        ar__agg_t *a = ar__agg_get(&t, clinic, area, 490000 + i % 24);
        if (a == NULL)
            return 1;
        for (unsigned r = 0; r < reps; r++) {
            ar_stats_report_t rep;
            memset(&rep, 0, sizeof(rep));
            rep.browser = rand() % AR_STATS_BROWSER_N;
            rep.profile = rand() % AR_STATS_PROFILE_N;
            rep.cand = rand() % AR_STATS_CAND_N;
            rep.loss_permille = (uint32_t)(rand() % 30 * (rand() % 4));
            rep.rtt_ms = 15 + (uint32_t)(rand() % 150) + (uint32_t)(rand() % 10 == 0) * 400;
            rep.jitter_ms = (uint32_t)(rand() % 40);
            rep.bitrate_in_kbps = 200 + (uint32_t)(rand() % 2500);
            rep.bitrate_out_kbps = 200 + (uint32_t)(rand() % 2500);
            rep.fps = 15 + (uint32_t)(rand() % 16);
            rep.height = (rand() % 2) ? 720 : 360;
            rep.call_s = 60 + (uint32_t)(rand() % 1800);
            rep.wait_s = (uint32_t)(rand() % 900);
            rep.present = 0x3fd; /* every optional value but the remote candidate */
            int fresh = r % 30 == 0;
            ar__agg_report(a, &rep, fresh, fresh && rep.cand == AR_STATS_CAND_RELAY, fresh);
        }
    }
    long after = rss_kib();
    ar__agg_t **all;
    size_t k;
    if (ar__agg_take(&t, &all, &k) != 0)
        return 1;
    uint8_t enc[AR_HIST_ENC_MAX];
    uint64_t stored = 0;
    for (size_t i = 0; i < k; i++) {
        for (int h = 0; h < AR__H_N; h++) {
            int len = ar_hist_encode(&all[i]->h[h], enc, sizeof(enc));
            if (len < 0)
                return 1;
            stored += (uint64_t)len;
        }
        ar_free(all[i]);
    }
    ar_free(all);
    printf("aggregates: %u clinic-area-hours x %u reports: heap %.0f B per entry (RSS +%ld KiB; "
           "struct %zu B + table slot %zu B); stored histograms %.0f B per row (+ 6 counters "
           "and ~%d category rows)\n",
           n, reps, (double)(after - before) * 1024.0 / n, after - before, sizeof(ar__agg_t),
           2 * sizeof(ar__agg_t *), (double)stored / (double)k,
           AR_STATS_BROWSER_N + AR_STATS_PROFILE_N + AR_STATS_CAND_N);
    ar__agg_free(&t);
    return verify_cost();
}
