/*
 * Internals shared by the files of ar_monitor: the listener (server.c), request handling
 * (ingest.c), the per-token rate limiter (ratelimit.c), the in-memory aggregates (agg.c) and
 * their flush to the store (flush.c).
 */
#ifndef ANTEROOM_MONITOR_INTERNAL_H
#define ANTEROOM_MONITOR_INTERNAL_H

#include "hist.h"
#include "monitor.h"
#include "stats.h"

#include "anteroom/tls.h"
#include "https.h"

#include <h2o.h>

/* ---- ratelimit.c: token buckets keyed by a keyed hash of the token ---- */

enum { AR__RL_RELAYED = 1, AR__RL_FINAL = 2 };

/* 128-bit SipHash of the token under a per-process random key. */
typedef struct ar__rl_key_s {
    uint64_t a, b; /* a == 0 marks an empty entry */
} ar__rl_key_t;

typedef struct ar__rl_entry_s {
    ar__rl_key_t key;
    int64_t last_ms;
    uint32_t milli; /* thousandths of a report left in the bucket */
    uint32_t flags; /* AR__RL_*: what this participant's call has already counted */
    /* What the token's verified claims said, so later reports of the same token skip the
     * Ed25519 check (most of a report's cost): where to count it and until when. */
    int64_t exp;
    char clinic[AR_TOKEN_ID_MAX];
    char area[AR_TOKEN_ID_MAX];
} ar__rl_entry_t;

typedef struct ar__rl_s {
    ar__rl_entry_t *e;
    size_t nsets; /* power of two; each set has AR__RL_WAYS entries */
    uint32_t burst_milli;
    uint32_t per_min;
    uint8_t hkey[16];
    size_t used;
} ar__rl_t;

#define AR__RL_WAYS 8

int ar__rl_init(ar__rl_t *rl, unsigned entries, unsigned burst, unsigned per_min);
void ar__rl_free(ar__rl_t *rl);
ar__rl_key_t ar__rl_key(const ar__rl_t *rl, const char *token, size_t len);
/* The entry of a token already verified, or NULL. */
ar__rl_entry_t *ar__rl_find(ar__rl_t *rl, ar__rl_key_t key);
/* 1 when the entry's bucket is empty at now_ms (checked before any signature work). */
int ar__rl_exhausted(ar__rl_t *rl, ar__rl_entry_t *e, int64_t now_ms);
/* Finds or makes the entry (evicting the set's least recently used) and takes one report from
 * its bucket. Returns the entry, or NULL when the bucket is empty. *fresh is 1 for a new entry:
 * the first report of this participant's call; the caller then fills exp, clinic and area. */
ar__rl_entry_t *ar__rl_take(ar__rl_t *rl, ar__rl_key_t key, int64_t now_ms, int *fresh);

/* ---- agg.c: aggregates per clinic, waiting area and hour ---- */

enum {
    AR__H_LOSS,
    AR__H_RTT,
    AR__H_JITTER,
    AR__H_BR_IN,
    AR__H_BR_OUT,
    AR__H_FPS,
    AR__H_HEIGHT,
    AR__H_CALL,
    AR__H_WAIT,
    AR__H_N
};

typedef struct ar__agg_s {
    char clinic[AR_TOKEN_ID_MAX];
    char area[AR_TOKEN_ID_MAX]; /* "" for staff reports, which wait in no area */
    int64_t hour;               /* hours since the Unix epoch (UTC) */
    uint64_t reports;
    uint64_t calls;         /* participants' calls: first report of a token */
    uint64_t relayed_calls; /* of those, calls that used a relay candidate */
    uint64_t ended_calls;   /* final reports (carry the call duration) */
    uint64_t call_seconds;
    uint64_t wait_seconds;
    uint64_t browser[AR_STATS_BROWSER_N]; /* per call */
    uint64_t profile[AR_STATS_PROFILE_N]; /* per report */
    uint64_t cand[AR_STATS_CAND_N];       /* per report, local candidate type */
    ar_hist_t h[AR__H_N];
} ar__agg_t;

/* A fixed-capacity table; entries are allocated on first use and handed off whole at flush. */
typedef struct ar__aggtab_s {
    ar__agg_t **slot; /* open addressing, capacity a power of two at least 2 * max */
    size_t cap;
    size_t max;
    size_t used;
} ar__aggtab_t;

extern const char *const ar__hist_names[AR__H_N];

int ar__agg_init(ar__aggtab_t *t, unsigned max);
void ar__agg_free(ar__aggtab_t *t);
/* The entry for the key, created when absent. NULL when the table is full or out of memory. */
ar__agg_t *ar__agg_get(ar__aggtab_t *t, const char *clinic, const char *area, int64_t hour);
/* Adds one accepted report (fresh: first of its call; relayed_first: first relayed one). */
void ar__agg_report(ar__agg_t *a, const ar_stats_report_t *r, int fresh, int relayed_first,
                    int count_final);
/* Adds b's counts into a (same key). */
void ar__agg_merge(ar__agg_t *a, const ar__agg_t *b);
/* Moves every entry out into a new array (*out, *n; the caller frees each and the array) and
 * empties the table. AR_ENOMEM leaves the table as it was. */
int ar__agg_take(ar__aggtab_t *t, ar__agg_t ***out, size_t *n);

/* ---- flush.c ---- */

/* Writes n aggregates in one transaction (a store job body; runs on a worker thread). */
int ar__flush_write(ar_store_conn_t *c, ar__agg_t *const *aggs, size_t n);
/* Starts a flush of the table; done(status, data) afterwards. */
int ar__flush_start(ar_monitor_t *m, ar_monitor_done_cb done, void *data);

/* ---- ingest.c ---- */

typedef enum {
    AR__REF_TOO_LARGE = AR_STATS_R_TOO_LARGE,
    AR__REF_MALFORMED = AR_STATS_R_MALFORMED,
    AR__REF_ADDRESS = AR_STATS_R_ADDRESS,
    AR__REF_UNKNOWN = AR_STATS_R_UNKNOWN,
    AR__REF_INVALID = AR_STATS_R_INVALID,
    AR__REF_VERSION = AR_STATS_R_VERSION,
    AR__REF_METHOD = AR_STATS_R_N,
    AR__REF_PATH,
    AR__REF_ORIGIN,
    AR__REF_MEDIA_TYPE,
    AR__REF_TOKEN,
    AR__REF_RATE,
    AR__REF_FULL,
    AR__REF_N
} ar__refusal_t;

typedef struct ar__metrics_s {
    ar_metric_t *accepted;
    ar_metric_t *preflights;
    ar_metric_t *refused[AR__REF_N];
    ar_metric_t *flushes;
    ar_metric_t *flush_failures;
    ar_metric_t *flushed_rows;
    ar_metric_t *dropped;
    ar_metric_t *agg_entries;
    ar_metric_t *rl_entries;
    ar_metric_t *report_us;
} ar__metrics_t;

int ar__metrics_register(ar_metrics_t *reg, ar__metrics_t *m);
/* The h2o handler body for every request. */
int ar__ingest(ar_monitor_t *m, h2o_req_t *req);

/* ---- server.c ---- */

struct ar_monitor_s {
    uv_loop_t *loop;
    ar_monitor_opts_t opts; /* strings point into owned copies below */
    char *origin;
    ar_token_keyring_t keys;
    ar_https_t https; /* the listener (src/https) */
    uv_timer_t flush_timer;
    ar__rl_t rl;
    ar__aggtab_t agg;
    ar__metrics_t met;
    int flushing;           /* a flush job is running */
    int last_flush_started; /* on stop */
    int timer_init;
    ar_monitor_done_cb stop_done;
    void *stop_data;
};

int64_t ar__mon_now(ar_monitor_t *m);

#endif
