/*
 * Aggregates held in memory between flushes: one entry per clinic, waiting area and hour,
 * holding counts and histograms and nothing else. Entries are allocated when a key first appears
 * and handed off whole to the flush, so the loop never waits on the store and a flush that fails
 * can be merged back.
 */
#include "internal.h"

#include "anteroom/alloc.h"

#include <string.h>

const char *const ar__hist_names[AR__H_N] = {
    "loss", "rtt", "jitter", "bitrate_in", "bitrate_out", "fps", "height", "call", "wait"};

int ar__agg_init(ar__aggtab_t *t, unsigned max)
{
    memset(t, 0, sizeof(*t));
    size_t cap = 16;
    while (cap < (size_t)max * 2)
        cap *= 2;
    t->slot = ar_calloc(cap, sizeof(ar__agg_t *));
    if (t->slot == NULL)
        return AR_ENOMEM;
    t->cap = cap;
    t->max = max;
    return 0;
}

void ar__agg_free(ar__aggtab_t *t)
{
    for (size_t i = 0; i < t->cap && t->slot != NULL; i++)
        ar_free(t->slot[i]);
    ar_free(t->slot);
    memset(t, 0, sizeof(*t));
}

/* FNV-1a over the key; the table is private and bounded, so no keyed hash is needed. */
static uint64_t hash(const char *clinic, const char *area, int64_t hour)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = clinic; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;
    for (const char *p = area; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    return (h ^ (uint64_t)hour) * 1099511628211ull;
}

ar__agg_t *ar__agg_get(ar__aggtab_t *t, const char *clinic, const char *area, int64_t hour)
{
    size_t mask = t->cap - 1;
    for (size_t i = hash(clinic, area, hour) & mask;; i = (i + 1) & mask) {
        ar__agg_t *a = t->slot[i];
        if (a == NULL) {
            if (t->used >= t->max || strlen(clinic) >= sizeof(a->clinic) ||
                strlen(area) >= sizeof(a->area))
                return NULL;
            a = ar_calloc(1, sizeof(*a));
            if (a == NULL)
                return NULL;
            memcpy(a->clinic, clinic, strlen(clinic) + 1);
            memcpy(a->area, area, strlen(area) + 1);
            a->hour = hour;
            t->slot[i] = a;
            t->used++;
            return a;
        }
        if (a->hour == hour && strcmp(a->clinic, clinic) == 0 && strcmp(a->area, area) == 0)
            return a;
    }
}

void ar__agg_report(ar__agg_t *a, const ar_stats_report_t *r, int fresh, int relayed_first,
                    int count_final)
{
    static const struct {
        size_t off;
        unsigned has;
        int h;
    } opt[] = {
        {offsetof(ar_stats_report_t, loss_permille), AR_STATS_HAS_LOSS, AR__H_LOSS},
        {offsetof(ar_stats_report_t, rtt_ms), AR_STATS_HAS_RTT, AR__H_RTT},
        {offsetof(ar_stats_report_t, jitter_ms), AR_STATS_HAS_JITTER, AR__H_JITTER},
        {offsetof(ar_stats_report_t, bitrate_in_kbps), AR_STATS_HAS_BITRATE_IN, AR__H_BR_IN},
        {offsetof(ar_stats_report_t, bitrate_out_kbps), AR_STATS_HAS_BITRATE_OUT, AR__H_BR_OUT},
        {offsetof(ar_stats_report_t, fps), AR_STATS_HAS_FPS, AR__H_FPS},
        {offsetof(ar_stats_report_t, height), AR_STATS_HAS_HEIGHT, AR__H_HEIGHT},
    };
    a->reports++;
    a->profile[r->profile]++;
    a->cand[r->cand]++;
    for (size_t i = 0; i < sizeof(opt) / sizeof(opt[0]); i++) {
        if (r->present & opt[i].has) {
            uint32_t v;
            memcpy(&v, (const char *)r + opt[i].off, sizeof(v));
            ar_hist_add(&a->h[opt[i].h], v);
        }
    }
    if (fresh) {
        a->calls++;
        a->browser[r->browser]++;
        /* The wait happened before the call: taken from the call's first report. */
        if (r->present & AR_STATS_HAS_WAIT) {
            ar_hist_add(&a->h[AR__H_WAIT], r->wait_s);
            a->wait_seconds += r->wait_s;
        }
    }
    if (relayed_first)
        a->relayed_calls++;
    if (count_final) {
        a->ended_calls++;
        ar_hist_add(&a->h[AR__H_CALL], r->call_s);
        a->call_seconds += r->call_s;
    }
}

void ar__agg_merge(ar__agg_t *a, const ar__agg_t *b)
{
    a->reports += b->reports;
    a->calls += b->calls;
    a->relayed_calls += b->relayed_calls;
    a->ended_calls += b->ended_calls;
    a->call_seconds += b->call_seconds;
    a->wait_seconds += b->wait_seconds;
    for (size_t i = 0; i < AR_STATS_BROWSER_N; i++)
        a->browser[i] += b->browser[i];
    for (size_t i = 0; i < AR_STATS_PROFILE_N; i++)
        a->profile[i] += b->profile[i];
    for (size_t i = 0; i < AR_STATS_CAND_N; i++)
        a->cand[i] += b->cand[i];
    for (size_t i = 0; i < AR__H_N; i++)
        ar_hist_merge(&a->h[i], &b->h[i]);
}

int ar__agg_take(ar__aggtab_t *t, ar__agg_t ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (t->used == 0)
        return 0;
    ar__agg_t **v = ar_calloc(t->used, sizeof(ar__agg_t *));
    if (v == NULL)
        return AR_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < t->cap; i++) {
        if (t->slot[i] != NULL) {
            v[k++] = t->slot[i];
            t->slot[i] = NULL;
        }
    }
    t->used = 0;
    *out = v;
    *n = k;
    return 0;
}
