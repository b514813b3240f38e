/*
 * A Prometheus metrics registry. Counters and gauges are registered once at start with a name,
 * help text and optional fixed label pairs (label values are compile-time constants such as a
 * transport name: never a user, room or address). Updates are lock-free: each metric keeps one
 * cache-line-padded slot per worker shard, summed only when scraped, so the relay hot path pays
 * one relaxed add on memory no other thread writes.
 *
 * ar_metrics_render() writes the text exposition format (version 0.0.4) for GET /metrics.
 */
#ifndef ANTEROOM_METRICS_H
#define ANTEROOM_METRICS_H

#include "anteroom/buf.h"
#include "anteroom/err.h"

#include <stddef.h>
#include <stdint.h>

#define AR_METRICS_SHARDS 64 /* worker threads per process that get a private slot */

typedef struct ar_metrics_s ar_metrics_t;
typedef struct ar_metric_s ar_metric_t;

typedef enum { AR_METRIC_COUNTER, AR_METRIC_GAUGE, AR_METRIC_HISTOGRAM } ar_metric_kind_t;

ar_metrics_t *ar_metrics_new(void);
void ar_metrics_free(ar_metrics_t *m);

/*
 * Registers a metric. `labels` is NULL or a string of fixed label pairs in exposition syntax,
 * e.g. "transport=\"udp\"". Several metrics may share a name with different labels. For
 * histograms, `bounds` lists nbounds ascending upper bounds (the +Inf bucket is implicit).
 * Returns NULL on allocation failure.
 */
ar_metric_t *ar_metrics_counter(ar_metrics_t *m, const char *name, const char *help,
                                const char *labels);
ar_metric_t *ar_metrics_gauge(ar_metrics_t *m, const char *name, const char *help,
                              const char *labels);
ar_metric_t *ar_metrics_histogram(ar_metrics_t *m, const char *name, const char *help,
                                  const char *labels, const double *bounds, size_t nbounds);

/* shard: the caller's worker index (0 outside workers); taken modulo AR_METRICS_SHARDS. */
void ar_metric_add(ar_metric_t *c, unsigned shard, int64_t delta);
/* Gauges only: sets shard 0's value and clears the others. */
void ar_metric_set(ar_metric_t *g, int64_t value);
void ar_metric_observe(ar_metric_t *h, unsigned shard, double value);
/* The current sum over shards (tests, load reports). */
int64_t ar_metric_value(const ar_metric_t *c);

/* Appends the exposition text of every metric to out. */
AR_MUST_CHECK int ar_metrics_render(ar_metrics_t *m, ar_buf_t *out);

#endif
