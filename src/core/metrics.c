/*
 * Prometheus registry with sharded, lock-free updates.
 *
 * Each metric owns AR_METRICS_SHARDS slots, each on its own cache line, so two workers never
 * write the same line (no false sharing) and updates are a relaxed atomic add. A scrape sums
 * the slots; it may see an update half-applied across shards, which Prometheus tolerates. The
 * registry lock guards only registration and rendering, never updates.
 */
#include "anteroom/metrics.h"

#include "anteroom/alloc.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CACHE_LINE 64
#define METRICS_MAX 4096 /* registrations per registry; a fixed set registered at start */
#define BUCKETS_MAX 64

struct ar_metric_s {
    ar_metric_kind_t kind;
    char *name;
    char *help;
    char *labels; /* NULL or "k=\"v\",..." */
    double *bounds;
    size_t nbounds;
    size_t stride; /* bytes between two shards' slots, a multiple of CACHE_LINE */
    void *raw;     /* the allocation; `slots` is it rounded up to a cache line */
    unsigned char *slots;
};

struct ar_metrics_s {
    pthread_mutex_t lock;
    ar_metric_t **items;
    size_t count;
};

/*
 * A shard's slot. Counters and gauges use v[0]. Histograms use one count per bucket (not
 * cumulative; the render makes them cumulative) followed by the sum as double bits.
 */
static _Atomic int64_t *slot(const ar_metric_t *m, unsigned shard)
{
    return (_Atomic int64_t *)(void *)(m->slots + (size_t)(shard % AR_METRICS_SHARDS) * m->stride);
}

ar_metrics_t *ar_metrics_new(void)
{
    ar_metrics_t *m = ar_calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    pthread_mutex_init(&m->lock, NULL);
    return m;
}

static void metric_free(ar_metric_t *x)
{
    if (x == NULL)
        return;
    ar_free(x->name);
    ar_free(x->help);
    ar_free(x->labels);
    ar_free(x->bounds);
    ar_free(x->raw);
    ar_free(x);
}

void ar_metrics_free(ar_metrics_t *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->count; i++)
        metric_free(m->items[i]);
    ar_free(m->items);
    pthread_mutex_destroy(&m->lock);
    ar_free(m);
}

/* Prometheus metric names: [a-zA-Z_:][a-zA-Z0-9_:]*. A bad name is a programming error. */
static int valid_name(const char *s)
{
    if (s == NULL || *s == '\0' || (*s >= '0' && *s <= '9'))
        return 0;
    for (; *s != '\0'; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == ':'))
            return 0;
    }
    return 1;
}

static char *dup_str(const char *s)
{
    return s == NULL ? NULL : ar_strndup(s, strlen(s));
}

static ar_metric_t *reg(ar_metrics_t *m, ar_metric_kind_t kind, const char *name, const char *help,
                        const char *labels, const double *bounds, size_t nbounds)
{
    if (m == NULL || !valid_name(name) || nbounds > BUCKETS_MAX)
        return NULL;
    for (size_t i = 1; i < nbounds; i++) {
        if (!(bounds[i] > bounds[i - 1]))
            return NULL;
    }
    ar_metric_t *x = ar_calloc(1, sizeof(*x));
    if (x == NULL)
        return NULL;
    x->kind = kind;
    x->name = dup_str(name);
    x->help = dup_str(help ? help : "");
    x->labels = labels && *labels ? dup_str(labels) : NULL;
    size_t per = kind == AR_METRIC_HISTOGRAM ? (nbounds + 2) * sizeof(int64_t) : sizeof(int64_t);
    x->stride = (per + CACHE_LINE - 1) / CACHE_LINE * CACHE_LINE;
    x->raw = ar_calloc(1, x->stride * AR_METRICS_SHARDS + CACHE_LINE);
    if (nbounds > 0) {
        x->bounds = ar_malloc(nbounds * sizeof(double));
        if (x->bounds != NULL)
            memcpy(x->bounds, bounds, nbounds * sizeof(double));
    }
    x->nbounds = nbounds;
    if (x->name == NULL || x->help == NULL || (labels && *labels && x->labels == NULL) ||
        x->raw == NULL || (nbounds > 0 && x->bounds == NULL))
        goto fail;
    /* ar_malloc does not promise cache-line alignment, so skip to the next line boundary. */
    x->slots = (unsigned char *)x->raw + (CACHE_LINE - (uintptr_t)x->raw % CACHE_LINE) % CACHE_LINE;
    pthread_mutex_lock(&m->lock);
    ar_metric_t **items = NULL;
    int clash = 0; /* one name cannot be both a counter and a gauge in the exposition */
    for (size_t i = 0; i < m->count && !clash; i++)
        clash = strcmp(m->items[i]->name, name) == 0 && m->items[i]->kind != kind;
    if (m->count < METRICS_MAX && !clash)
        items = ar_realloc(m->items, (m->count + 1) * sizeof(ar_metric_t *));
    if (items != NULL) {
        m->items = items;
        m->items[m->count++] = x;
    }
    pthread_mutex_unlock(&m->lock);
    if (items == NULL)
        goto fail;
    return x;
fail:
    metric_free(x);
    return NULL;
}

ar_metric_t *ar_metrics_counter(ar_metrics_t *m, const char *name, const char *help,
                                const char *labels)
{
    return reg(m, AR_METRIC_COUNTER, name, help, labels, NULL, 0);
}

ar_metric_t *ar_metrics_gauge(ar_metrics_t *m, const char *name, const char *help,
                              const char *labels)
{
    return reg(m, AR_METRIC_GAUGE, name, help, labels, NULL, 0);
}

ar_metric_t *ar_metrics_histogram(ar_metrics_t *m, const char *name, const char *help,
                                  const char *labels, const double *bounds, size_t nbounds)
{
    return reg(m, AR_METRIC_HISTOGRAM, name, help, labels, bounds, nbounds);
}

void ar_metric_add(ar_metric_t *c, unsigned shard, int64_t delta)
{
    if (c == NULL || c->kind == AR_METRIC_HISTOGRAM)
        return;
    /* Counters only go up; a negative delta is a caller bug and is dropped. */
    if (c->kind == AR_METRIC_COUNTER && delta < 0)
        return;
    atomic_fetch_add_explicit(slot(c, shard), delta, memory_order_relaxed);
}

void ar_metric_set(ar_metric_t *g, int64_t value)
{
    if (g == NULL || g->kind != AR_METRIC_GAUGE)
        return;
    for (unsigned i = 1; i < AR_METRICS_SHARDS; i++)
        atomic_store_explicit(slot(g, i), 0, memory_order_relaxed);
    atomic_store_explicit(slot(g, 0), value, memory_order_relaxed);
}

static double bits_to_double(int64_t bits)
{
    double d;
    memcpy(&d, &bits, sizeof(d));
    return d;
}

static int64_t double_to_bits(double d)
{
    int64_t bits;
    memcpy(&bits, &d, sizeof(d));
    return bits;
}

void ar_metric_observe(ar_metric_t *h, unsigned shard, double value)
{
    if (h == NULL || h->kind != AR_METRIC_HISTOGRAM || isnan(value))
        return;
    _Atomic int64_t *s = slot(h, shard);
    size_t b = 0;
    while (b < h->nbounds && value > h->bounds[b])
        b++;
    atomic_fetch_add_explicit(&s[b], 1, memory_order_relaxed);
    /* The sum is a double; a CAS loop that almost never retries (one writer per shard). */
    _Atomic int64_t *sum = &s[h->nbounds + 1];
    int64_t old = atomic_load_explicit(sum, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(sum, &old,
                                                  double_to_bits(bits_to_double(old) + value),
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
}

int64_t ar_metric_value(const ar_metric_t *c)
{
    if (c == NULL)
        return 0;
    int64_t total = 0;
    size_t n = c->kind == AR_METRIC_HISTOGRAM ? c->nbounds + 1 : 1;
    for (unsigned i = 0; i < AR_METRICS_SHARDS; i++) {
        _Atomic int64_t *s = slot(c, i);
        for (size_t b = 0; b < n; b++)
            total += atomic_load_explicit(&s[b], memory_order_relaxed);
    }
    return total;
}

/* Shortest text that reads back as the same double; Prometheus' own spellings for infinities. */
static void fmt_double(char *out, size_t outlen, double d)
{
    if (isinf(d)) {
        snprintf(out, outlen, d > 0 ? "+Inf" : "-Inf");
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, outlen, "%.*g", prec, d);
        if (strtod(out, NULL) == d)
            return;
    }
}

typedef struct {
    ar_buf_t *out;
    int rc;
} writer_t;

static void put(writer_t *w, const char *s, size_t n)
{
    if (w->rc == 0)
        w->rc = ar_buf_append(w->out, s, n);
}

static void puts_(writer_t *w, const char *s)
{
    put(w, s, strlen(s));
}

/* HELP text escapes backslash and newline, as the exposition format requires. */
static void put_help(writer_t *w, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '\\')
            puts_(w, "\\\\");
        else if (*s == '\n')
            puts_(w, "\\n");
        else
            put(w, s, 1);
    }
}

/* name{labels[,extra]} value\n */
static void put_sample(writer_t *w, const char *name, const char *suffix, const char *labels,
                       const char *extra, const char *value)
{
    puts_(w, name);
    puts_(w, suffix);
    if (labels != NULL || extra != NULL) {
        puts_(w, "{");
        if (labels != NULL)
            puts_(w, labels);
        if (labels != NULL && extra != NULL)
            puts_(w, ",");
        if (extra != NULL)
            puts_(w, extra);
        puts_(w, "}");
    }
    puts_(w, " ");
    puts_(w, value);
    puts_(w, "\n");
}

static void render_histogram(writer_t *w, const ar_metric_t *h)
{
    char value[64], le[80];
    int64_t cum = 0;
    double sum = 0;
    for (size_t b = 0; b <= h->nbounds; b++) {
        for (unsigned i = 0; i < AR_METRICS_SHARDS; i++)
            cum += atomic_load_explicit(&slot(h, i)[b], memory_order_relaxed);
        char bound[40];
        if (b < h->nbounds)
            fmt_double(bound, sizeof(bound), h->bounds[b]);
        else
            snprintf(bound, sizeof(bound), "+Inf");
        snprintf(le, sizeof(le), "le=\"%s\"", bound);
        snprintf(value, sizeof(value), "%lld", (long long)cum);
        put_sample(w, h->name, "_bucket", h->labels, le, value);
    }
    for (unsigned i = 0; i < AR_METRICS_SHARDS; i++)
        sum +=
            bits_to_double(atomic_load_explicit(&slot(h, i)[h->nbounds + 1], memory_order_relaxed));
    fmt_double(value, sizeof(value), sum);
    put_sample(w, h->name, "_sum", h->labels, NULL, value);
    snprintf(value, sizeof(value), "%lld", (long long)cum);
    put_sample(w, h->name, "_count", h->labels, NULL, value);
}

static void render_one(writer_t *w, const ar_metric_t *x)
{
    if (x->kind == AR_METRIC_HISTOGRAM) {
        render_histogram(w, x);
        return;
    }
    char value[32];
    snprintf(value, sizeof(value), "%lld", (long long)ar_metric_value(x));
    put_sample(w, x->name, "", x->labels, NULL, value);
}

static const char *const kind_names[] = {"counter", "gauge", "histogram"};

int ar_metrics_render(ar_metrics_t *m, ar_buf_t *out)
{
    writer_t w = {out, 0};
    pthread_mutex_lock(&m->lock);
    /*
     * Series sharing a name must be contiguous under one HELP/TYPE header, so each name is
     * rendered at its first registration together with every later series of that name.
     */
    for (size_t i = 0; i < m->count && w.rc == 0; i++) {
        const ar_metric_t *x = m->items[i];
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(m->items[j]->name, x->name) == 0;
        if (seen)
            continue;
        puts_(&w, "# HELP ");
        puts_(&w, x->name);
        puts_(&w, " ");
        put_help(&w, x->help);
        puts_(&w, "\n# TYPE ");
        puts_(&w, x->name);
        puts_(&w, " ");
        puts_(&w, kind_names[x->kind]);
        puts_(&w, "\n");
        for (size_t j = i; j < m->count; j++) {
            if (strcmp(m->items[j]->name, x->name) == 0)
                render_one(&w, m->items[j]);
        }
    }
    pthread_mutex_unlock(&m->lock);
    return w.rc;
}
