/*
 * The log-bucket histogram. Bucket i < 32 holds the value i. For v >= 32 with e = floor(log2 v)
 * (5..16), bucket 32 + (e - 5) * 16 + (v >> (e - 4)) - 16: the four bits after the leading one
 * pick one of 16 buckets of width 2^(e-4). The width is at most v/16, so the midpoint is within
 * v/32 of any value in the bucket.
 */
#include "hist.h"

#include <string.h>

#define LINEAR 32u
#define SUB 16u
#define ENC_VERSION 1

static unsigned log2u(uint32_t v)
{
    return 31u - (unsigned)__builtin_clz(v);
}

unsigned ar_hist_bucket(uint32_t v)
{
    if (v > AR_HIST_VMAX)
        v = AR_HIST_VMAX;
    if (v < LINEAR)
        return v;
    unsigned e = log2u(v);
    return LINEAR + (e - 5) * SUB + (unsigned)(v >> (e - 4)) - SUB;
}

uint32_t ar_hist_lower(unsigned i)
{
    if (i < LINEAR)
        return i;
    unsigned e = 5 + (i - LINEAR) / SUB, k = (i - LINEAR) % SUB;
    return (SUB + k) << (e - 4);
}

uint32_t ar_hist_width(unsigned i)
{
    if (i < LINEAR)
        return 1;
    return 1u << (5 + (i - LINEAR) / SUB - 4);
}

void ar_hist_add(ar_hist_t *h, uint32_t v)
{
    if (v > AR_HIST_VMAX)
        v = AR_HIST_VMAX;
    unsigned i = ar_hist_bucket(v);
    if (h->b[i] != UINT32_MAX) {
        h->b[i]++;
        h->count++;
        h->sum += v;
    }
}

void ar_hist_merge(ar_hist_t *a, const ar_hist_t *b)
{
    uint64_t count = 0;
    for (unsigned i = 0; i < AR_HIST_BUCKETS; i++) {
        uint64_t n = (uint64_t)a->b[i] + b->b[i];
        a->b[i] = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
        count += a->b[i];
    }
    a->count = count;
    a->sum += b->sum;
}

uint32_t ar_hist_quantile(const ar_hist_t *h, double q)
{
    if (h->count == 0)
        return 0;
    if (q < 0)
        q = 0;
    if (q > 1)
        q = 1;
    double r = q * (double)h->count;
    uint64_t rank = (uint64_t)r;
    if ((double)rank < r)
        rank++;
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < AR_HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank)
            return ar_hist_lower(i) + (ar_hist_width(i) - 1) / 2;
    }
    return ar_hist_lower(AR_HIST_BUCKETS - 1);
}

static size_t put_varint(uint8_t *out, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[n++] = (uint8_t)v;
    return n;
}

static int get_varint(const uint8_t *in, size_t len, size_t *pos, uint64_t *v)
{
    *v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (*pos >= len)
            return AR_EPARSE;
        uint8_t c = in[(*pos)++];
        *v |= (uint64_t)(c & 0x7f) << shift;
        if ((c & 0x80) == 0)
            return 0;
    }
    return AR_EPARSE;
}

int ar_hist_encode(const ar_hist_t *h, uint8_t *out, size_t cap)
{
    if (cap < AR_HIST_ENC_MAX)
        return AR_ETOOBIG;
    size_t n = 0, nonzero = 0;
    out[n++] = ENC_VERSION;
    n += put_varint(out + n, h->sum);
    for (unsigned i = 0; i < AR_HIST_BUCKETS; i++)
        nonzero += h->b[i] != 0;
    n += put_varint(out + n, nonzero);
    unsigned prev = 0;
    for (unsigned i = 0; i < AR_HIST_BUCKETS; i++) {
        if (h->b[i] == 0)
            continue;
        n += put_varint(out + n, i - prev);
        n += put_varint(out + n, h->b[i]);
        prev = i;
    }
    return (int)n;
}

int ar_hist_decode(const uint8_t *in, size_t len, ar_hist_t *h)
{
    memset(h, 0, sizeof(*h));
    if (len == 0)
        return 0;
    size_t pos = 1;
    uint64_t sum, nonzero, gap, cnt;
    if (in[0] != ENC_VERSION || get_varint(in, len, &pos, &sum) < 0 ||
        get_varint(in, len, &pos, &nonzero) < 0 || nonzero > AR_HIST_BUCKETS)
        return AR_EPARSE;
    uint64_t i = 0;
    for (uint64_t k = 0; k < nonzero; k++) {
        if (get_varint(in, len, &pos, &gap) < 0 || get_varint(in, len, &pos, &cnt) < 0)
            return AR_EPARSE;
        i += gap;
        /* Buckets ascend strictly after the first, and counts are never zero. */
        if ((k > 0 && gap == 0) || i >= AR_HIST_BUCKETS || cnt == 0 || cnt > UINT32_MAX)
            return AR_EPARSE;
        h->b[i] = (uint32_t)cnt;
        h->count += cnt;
    }
    if (pos != len)
        return AR_EPARSE;
    h->sum = sum;
    return 0;
}
