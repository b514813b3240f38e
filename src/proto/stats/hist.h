/*
 * A small mergeable log-bucket histogram (in the manner of HDR histograms) for the monitor's
 * aggregates: loss, round-trip time, bitrate, jitter, durations.
 *
 * Values are integers from 0 to AR_HIST_VMAX (larger ones are clamped). Values below 32 have a
 * bucket each; above, every power of two is split into 16 equal buckets. A quantile is reported
 * as the midpoint of the bucket holding the sample of that rank, so it differs from that sample
 * by at most 1/32 of the sample (3.125 %), and is exact below 32. Two histograms merge by adding
 * counts, so per-hour aggregates from several monitors and several flushes combine exactly.
 *
 * 224 buckets of 32-bit counts: 896 bytes in memory. The stored form (ar_hist_encode) is sparse:
 * a version byte, the sum, then (bucket gap, count) pairs of varints for non-empty buckets only.
 */
#ifndef ANTEROOM_PROTO_HIST_H
#define ANTEROOM_PROTO_HIST_H

#include "anteroom/err.h"

#include <stddef.h>
#include <stdint.h>

#define AR_HIST_VMAX 131071u /* 2^17 - 1: a day in seconds, 100 Mbit/s in kbit/s fit */
#define AR_HIST_BUCKETS 224
/* The largest encoding: version, sum, bucket count, and each bucket's gap and count. */
#define AR_HIST_ENC_MAX (1 + 10 + 3 + AR_HIST_BUCKETS * (2 + 5))

typedef struct ar_hist_s {
    uint64_t count;
    uint64_t sum; /* of the clamped values, for means */
    uint32_t b[AR_HIST_BUCKETS];
} ar_hist_t;

/* The bucket of v (clamped), and the smallest value and width of bucket i. */
unsigned ar_hist_bucket(uint32_t v);
uint32_t ar_hist_lower(unsigned i);
uint32_t ar_hist_width(unsigned i);

void ar_hist_add(ar_hist_t *h, uint32_t v);
/* Adds counts of b into a. Counts saturate at UINT32_MAX rather than wrap. */
void ar_hist_merge(ar_hist_t *a, const ar_hist_t *b);
/* The q-quantile (0 <= q <= 1) as a bucket midpoint; 0 for an empty histogram. The rank is
 * ceil(q * count) (at least 1), the "nearest rank" definition. */
uint32_t ar_hist_quantile(const ar_hist_t *h, double q);

/* Writes the sparse form into out (cap at least AR_HIST_ENC_MAX is always enough); returns the
 * length or AR_ETOOBIG. */
AR_MUST_CHECK int ar_hist_encode(const ar_hist_t *h, uint8_t *out, size_t cap);
/* Reads the sparse form into *h (zeroed first). An empty input gives an empty histogram.
 * Returns 0 or AR_EPARSE. */
AR_MUST_CHECK int ar_hist_decode(const uint8_t *in, size_t len, ar_hist_t *h);

#endif
