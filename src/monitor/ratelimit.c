/*
 * Per-token rate limits, in memory: the monitor is one process and a token lives minutes, so a
 * shared store would cost a round trip per report for nothing. The table is bounded: sets of
 * AR__RL_WAYS entries indexed by a keyed hash of the token, the least recently used entry of a
 * full set making room. Evicting a busy token only gives it a fresh bucket (and may count its
 * call twice, docs/monitor.md); an attacker needs a validly signed token per entry to do that,
 * because entries are made only after the signature has been checked.
 *
 * The token is kept only as a 64-bit SipHash under a key drawn at start, so the table cannot be
 * turned back into tokens or linked to a call after the process ends.
 */
#include "internal.h"

#include "anteroom/alloc.h"

#include <sodium.h>
#include <string.h>

int ar__rl_init(ar__rl_t *rl, unsigned entries, unsigned burst, unsigned per_min)
{
    memset(rl, 0, sizeof(*rl));
    size_t sets = 1;
    while (sets * AR__RL_WAYS < entries)
        sets *= 2;
    rl->e = ar_calloc(sets * AR__RL_WAYS, sizeof(*rl->e));
    if (rl->e == NULL)
        return AR_ENOMEM;
    rl->nsets = sets;
    rl->burst_milli = burst * 1000u;
    rl->per_min = per_min;
    randombytes_buf(rl->hkey, sizeof(rl->hkey));
    return 0;
}

void ar__rl_free(ar__rl_t *rl)
{
    ar_free(rl->e);
    sodium_memzero(rl->hkey, sizeof(rl->hkey));
    rl->e = NULL;
}

uint64_t ar__rl_key(const ar__rl_t *rl, const char *token, size_t len)
{
    uint8_t out[crypto_shorthash_BYTES];
    crypto_shorthash(out, (const unsigned char *)token, len, rl->hkey);
    uint64_t k;
    memcpy(&k, out, sizeof(k));
    return k == 0 ? 1 : k; /* 0 marks an empty entry */
}

/* Adds what the bucket earned since it was last touched, capped at the burst. */
static void refill(const ar__rl_t *rl, ar__rl_entry_t *e, int64_t now_ms)
{
    if (now_ms <= e->last_ms)
        return;
    uint64_t earned = (uint64_t)(now_ms - e->last_ms) * rl->per_min / 60u; /* milli-reports */
    uint64_t v = e->milli + earned;
    e->milli = v > rl->burst_milli ? rl->burst_milli : (uint32_t)v;
    e->last_ms = now_ms;
}

static ar__rl_entry_t *find(ar__rl_t *rl, uint64_t key)
{
    ar__rl_entry_t *set = &rl->e[(key & (rl->nsets - 1)) * AR__RL_WAYS];
    for (size_t i = 0; i < AR__RL_WAYS; i++)
        if (set[i].key == key)
            return &set[i];
    return NULL;
}

int ar__rl_exhausted(ar__rl_t *rl, uint64_t key, int64_t now_ms)
{
    ar__rl_entry_t *e = find(rl, key);
    if (e == NULL)
        return 0;
    refill(rl, e, now_ms);
    return e->milli < 1000u;
}

ar__rl_entry_t *ar__rl_take(ar__rl_t *rl, uint64_t key, int64_t now_ms, int *fresh)
{
    *fresh = 0;
    ar__rl_entry_t *e = find(rl, key);
    if (e == NULL) {
        ar__rl_entry_t *set = &rl->e[(key & (rl->nsets - 1)) * AR__RL_WAYS];
        e = &set[0];
        for (size_t i = 0; i < AR__RL_WAYS; i++) {
            if (set[i].key == 0) {
                e = &set[i];
                break;
            }
            if (set[i].last_ms < e->last_ms)
                e = &set[i];
        }
        if (e->key == 0)
            rl->used++;
        e->key = key;
        e->last_ms = now_ms;
        e->milli = rl->burst_milli;
        e->flags = 0;
        *fresh = 1;
    }
    refill(rl, e, now_ms);
    if (e->milli < 1000u)
        return NULL;
    e->milli -= 1000u;
    return e;
}
