/*
 * The per-address connection counts of one worker (max-per-address): an exact table of client
 * addresses, each IPv4 address or IPv6 /64 prefix with its own count.
 *
 * Why exact and keyed: counts kept in hash buckets shared by colliding addresses let whoever can
 * choose addresses (anyone with an IPv6 /48 picks among 65,536 /64 prefixes) fill the bucket of a
 * victim, a clinic's NAT address, and lock it out. Here a count belongs to one address, compared
 * in full, so a collision costs a probe, never a share of someone's count; and the slot hash is
 * SipHash (crypto_shorthash) under a key drawn per worker, so nobody can aim for long probe
 * chains either.
 *
 * Layout: entries live in a pool and keep their index while they are counted (a connection
 * carries its entry's index as its net-layer tag, 16 bits); an open-addressing index of entry
 * numbers (linear probing, at most half full, deletion by backward shift) finds them by address.
 * An entry is freed when its count drops to zero, so the table holds only addresses with
 * connections now: at most one per connection of the worker.
 */
#include "internal.h"

#include "anteroom/alloc.h"
#include "anteroom/rand.h"

#include <sodium.h>
#include <string.h>

_Static_assert(crypto_shorthash_KEYBYTES == sizeof(((ar__sig_addrs_t *)0)->hkey), "SipHash key");

static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* The key an address is counted by. */
static void prefix_of(const uint8_t key[16], uint8_t out[16])
{
    memcpy(out, key, 16);
    /* IPv6 is counted per /64, the smallest network one subscriber is usually given; IPv4
     * (::ffff:a.b.c.d) per address. A masked IPv6 key never equals a mapped IPv4 one (its bytes
     * 10 and 11 are zero). */
    if (memcmp(key, v4_mapped, sizeof(v4_mapped)) != 0)
        memset(out + 8, 0, 8);
}

static uint32_t hash_of(const ar__sig_addrs_t *t, const uint8_t key[16])
{
    uint8_t h[crypto_shorthash_BYTES];
    crypto_shorthash(h, key, 16, t->hkey);
    uint32_t v;
    memcpy(&v, h, sizeof(v));
    return v;
}

/* The index slot holding key's entry, or the empty slot where it would go. */
static uint32_t find(const ar__sig_addrs_t *t, const uint8_t key[16], uint32_t hash)
{
    uint32_t mask = t->nslots - 1;
    for (uint32_t i = hash & mask;; i = (i + 1) & mask) {
        uint16_t e = t->slots[i];
        if (!e || (t->ent[e].hash == hash && memcmp(t->ent[e].key, key, 16) == 0))
            return i;
    }
}

static int grow_index(ar__sig_addrs_t *t)
{
    uint32_t n = t->nslots ? t->nslots * 2 : 64;
    uint16_t *s = ar_calloc(n, sizeof(*s));
    if (!s)
        return AR_ENOMEM;
    uint16_t *old = t->slots;
    uint32_t oldn = t->nslots;
    t->slots = s;
    t->nslots = n;
    for (uint32_t i = 0; i < oldn; i++)
        if (old[i])
            t->slots[find(t, t->ent[old[i]].key, t->ent[old[i]].hash)] = old[i];
    ar_free(old);
    return 0;
}

/* A free entry number (1..AR__SIG_ADDRS_MAX), or 0 when there is none and no memory for one. */
static uint16_t new_entry(ar__sig_addrs_t *t)
{
    if (t->free_head) {
        uint16_t e = t->free_head;
        t->free_head = t->ent[e].next_free;
        return e;
    }
    if (t->nent + 1 >= t->cap) {
        if (t->cap > AR__SIG_ADDRS_MAX)
            return 0;
        uint32_t cap = t->cap ? t->cap * 2 : 64;
        if (cap > AR__SIG_ADDRS_MAX + 1)
            cap = AR__SIG_ADDRS_MAX + 1;
        ar__sig_addr_ent_t *ent = ar_realloc(t->ent, cap * sizeof(*ent));
        if (!ent)
            return 0;
        t->ent = ent;
        t->cap = cap;
    }
    return (uint16_t)++t->nent; /* entry 0 stays unused: tag 0 means "not counted" */
}

int ar__sig_addrs_add(ar__sig_addrs_t *t, const uint8_t addr[16], uint32_t max)
{
    if (!t->keyed) {
        ar_rand_bytes(t->hkey, sizeof(t->hkey));
        t->keyed = 1;
    }
    if ((t->live + 1) * 2 > t->nslots && grow_index(t) != 0)
        return AR_ENOMEM;
    uint8_t key[16];
    prefix_of(addr, key);
    uint32_t hash = hash_of(t, key);
    uint32_t i = find(t, key, hash);
    uint16_t e = t->slots[i];
    if (e) {
        if (t->ent[e].count >= max)
            return AR_EQUOTA;
        t->ent[e].count++;
        return e;
    }
    if (max == 0)
        return AR_EQUOTA;
    e = new_entry(t);
    if (!e)
        return AR_ENOMEM;
    memcpy(t->ent[e].key, key, 16);
    t->ent[e].hash = hash;
    t->ent[e].count = 1;
    t->ent[e].next_free = 0;
    t->slots[i] = e;
    t->live++;
    return e;
}

void ar__sig_addrs_release(ar__sig_addrs_t *t, uint16_t e)
{
    if (!e || e > t->nent || !t->ent[e].count)
        return;
    if (--t->ent[e].count)
        return;
    uint32_t mask = t->nslots - 1;
    uint32_t i = find(t, t->ent[e].key, t->ent[e].hash);
    /* Backward shift: entries after the hole that probed past it move into it, so every entry
     * stays reachable from its home slot without tombstones. */
    for (uint32_t j = (i + 1) & mask; t->slots[j]; j = (j + 1) & mask) {
        uint32_t home = t->ent[t->slots[j]].hash & mask;
        /* The entry at j may fill the hole at i unless its home lies cyclically in (i, j]. */
        int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            t->slots[i] = t->slots[j];
            i = j;
        }
    }
    t->slots[i] = 0;
    t->live--;
    sodium_memzero(t->ent[e].key, sizeof(t->ent[e].key));
    t->ent[e].next_free = t->free_head;
    t->free_head = e;
}

uint32_t ar__sig_addrs_count(const ar__sig_addrs_t *t, const uint8_t addr[16])
{
    if (!t->nslots)
        return 0;
    uint8_t key[16];
    prefix_of(addr, key);
    uint16_t e = t->slots[find(t, key, hash_of(t, key))];
    return e ? t->ent[e].count : 0;
}

void ar__sig_addrs_free(ar__sig_addrs_t *t)
{
    ar_free_wiped(t->ent);
    ar_free(t->slots);
    sodium_memzero(t, sizeof(*t));
}
