/*
 * Per-token rate limits, in memory: the monitor is one process and a token lives minutes, so a
 * shared store would cost a round trip per report for nothing. The table is bounded: sets of
 * AR__RL_WAYS entries indexed by a keyed hash of the token, the least recently used entry of a
 * full set making room. Evicting a busy token only gives it a fresh bucket (and may count its
 * call twice, docs/monitor.md); an attacker needs a validly signed token per entry to do that,
 * because entries are made only after the signature has been checked.
 *
 * The token is kept only as a 128-bit SipHash under a key drawn at start, so the table cannot be
 * turned back into tokens or linked to a call after the process ends. The entry also remembers
 * where the token's verified claims say to count its reports, so only a token's first report
 * pays for the signature: finding a different token's entry would take a SipHash-128 collision
 * under a key the sender never sees.
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

ar__rl_key_t ar__rl_key(const ar__rl_t *rl, const char *token, size_t len)
{
    uint8_t out[crypto_shorthash_siphashx24_BYTES];
    crypto_shorthash_siphashx24(out, (const unsigned char *)token, len, rl->hkey);
    ar__rl_key_t k;
    memcpy(&k.a, out, sizeof(k.a));
    memcpy(&k.b, out + 8, sizeof(k.b));
    if (k.a == 0)
        k.a = 1; /* 0 marks an empty entry */
    return k;
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

ar__rl_entry_t *ar__rl_find(ar__rl_t *rl, ar__rl_key_t key)
{
    ar__rl_entry_t *set = &rl->e[(key.a & (rl->nsets - 1)) * AR__RL_WAYS];
    for (size_t i = 0; i < AR__RL_WAYS; i++)
        if (set[i].key.a == key.a && set[i].key.b == key.b)
            return &set[i];
    return NULL;
}

int ar__rl_exhausted(ar__rl_t *rl, ar__rl_entry_t *e, int64_t now_ms)
{
    refill(rl, e, now_ms);
    return e->milli < 1000u;
}

ar__rl_entry_t *ar__rl_take(ar__rl_t *rl, ar__rl_key_t key, int64_t now_ms, int *fresh)
{
    *fresh = 0;
    ar__rl_entry_t *e = ar__rl_find(rl, key);
    if (e == NULL) {
        ar__rl_entry_t *set = &rl->e[(key.a & (rl->nsets - 1)) * AR__RL_WAYS];
        e = &set[0];
        for (size_t i = 0; i < AR__RL_WAYS; i++) {
            if (set[i].key.a == 0) {
                e = &set[i];
                break;
            }
            if (set[i].last_ms < e->last_ms)
                e = &set[i];
        }
        if (e->key.a == 0)
            rl->used++;
        memset(e, 0, sizeof(*e));
        e->key = key;
        e->last_ms = now_ms;
        e->milli = rl->burst_milli;
        *fresh = 1;
    }
    refill(rl, e, now_ms);
    if (e->milli < 1000u)
        return NULL;
    e->milli -= 1000u;
    return e;
}
