/*
 * Allocation tables for one engine: a chained hash table keyed by the client 5-tuple, a timer
 * wheel with one slot per second for allocation lifetimes, each allocation's permissions and
 * channels, the per-user and total quotas shared by every engine, and the max-bps buckets.
 *
 * Permissions and channels expire lazily: each carries its expiry and every lookup compares it
 * with the clock, and dead entries are compacted away when a new one is added. This costs one
 * compare on the hot path and saves a timer per permission; the wheel only has to reclaim whole
 * allocations, whose entries it frees with them.
 */
#include "internal.h"

#include "anteroom/alloc.h"

#include <string.h>

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static size_t tuple_hash(const ar_turn_engine_t *e, const ar_turn_tuple_t *t)
{
    uint64_t w[2];
    memcpy(w, t->client.ip, 16);
    uint64_t h = e->seed;
    h = mix64(h ^ w[0]);
    h = mix64(h ^ w[1]);
    h = mix64(h ^
              ((uint64_t)t->client.port << 32 | (uint64_t)t->listener << 16 |
               (uint64_t)t->proto << 8 | t->client.family) ^
              (uint64_t)t->conn << 40);
    return (size_t)h & (e->nbuckets - 1);
}

static bool tuple_eq(const ar_turn_tuple_t *a, const ar_turn_tuple_t *b)
{
    return a->listener == b->listener && a->proto == b->proto && a->conn == b->conn &&
           ar__turn_addr_eq(&a->client, &b->client);
}

ar_turn_alloc_t *ar__turn_alloc_find(ar_turn_engine_t *e, const ar_turn_tuple_t *t)
{
    if (e->count == 0)
        return NULL;
    for (ar_turn_alloc_t *a = e->buckets[tuple_hash(e, t)]; a; a = a->hnext) {
        if (tuple_eq(&a->tuple, t))
            return a;
    }
    return NULL;
}

/* Doubles the table when the load factor passes 1/2, so chains stay short: a new client's
 * lookups (which find nothing) then mostly land on an empty bucket and touch no allocation. */
static int table_grow(ar_turn_engine_t *e)
{
    size_t n = e->nbuckets ? e->nbuckets * 2 : 64;
    ar_turn_alloc_t **nb = ar_calloc(n, sizeof(ar_turn_alloc_t *));
    if (!nb)
        return AR_ENOMEM;
    ar_turn_alloc_t **old = e->buckets;
    size_t oldn = e->nbuckets;
    e->buckets = nb;
    e->nbuckets = n;
    for (size_t i = 0; i < oldn; i++) {
        ar_turn_alloc_t *a = old[i];
        while (a) {
            ar_turn_alloc_t *next = a->hnext;
            size_t h = tuple_hash(e, &a->tuple);
            a->hnext = nb[h];
            nb[h] = a;
            a = next;
        }
    }
    ar_free(old);
    return 0;
}

/* --- quotas (shared by every engine, under sh->lock) --- */

static ar__turn_quota_t *quota_slot(ar_turn_shared_t *sh, const uint8_t *uhash, bool insert)
{
    if (sh->nquotas == 0)
        return NULL;
    uint64_t h;
    memcpy(&h, uhash, 8);
    size_t mask = sh->nquotas - 1, i = (size_t)h & mask;
    for (size_t probes = 0; probes < sh->nquotas; probes++, i = (i + 1) & mask) {
        ar__turn_quota_t *q = &sh->quotas[i];
        if (!q->used)
            return insert ? q : NULL;
        if (memcmp(q->uhash, uhash, AR__TURN_UHASH_LEN) == 0)
            return q;
    }
    return NULL;
}

static int quota_grow(ar_turn_shared_t *sh)
{
    size_t n = sh->nquotas ? sh->nquotas * 2 : 256;
    ar__turn_quota_t *old = sh->quotas;
    size_t oldn = sh->nquotas;
    ar__turn_quota_t *nq = ar_calloc(n, sizeof(*nq));
    if (!nq)
        return AR_ENOMEM;
    sh->quotas = nq;
    sh->nquotas = n;
    sh->quota_used = 0;
    for (size_t i = 0; i < oldn; i++) {
        /* Entries whose count fell to 0 are dropped here: rehashing is the garbage collector. */
        if (old[i].used && old[i].count > 0) {
            *quota_slot(sh, old[i].uhash, true) = old[i];
            sh->quota_used++;
        }
    }
    ar_free(old);
    return 0;
}

static int quota_take(ar_turn_shared_t *sh, const uint8_t *uhash)
{
    int64_t total_cap = sh->o.total_quota;
    int64_t prev = atomic_fetch_add_explicit(&sh->total, 1, memory_order_relaxed);
    if (total_cap > 0 && prev >= total_cap) {
        atomic_fetch_sub_explicit(&sh->total, 1, memory_order_relaxed);
        return AR_EQUOTA;
    }
    if (sh->o.user_quota <= 0)
        return 0;
    int rc = 0;
    pthread_mutex_lock(&sh->lock);
    if (sh->quota_used * 2 >= sh->nquotas)
        rc = quota_grow(sh);
    ar__turn_quota_t *q = rc == 0 ? quota_slot(sh, uhash, true) : NULL;
    if (!q) {
        rc = rc ? rc : AR_ENOMEM;
    } else if (q->used && q->count >= sh->o.user_quota) {
        rc = AR_EQUOTA;
    } else {
        if (!q->used) {
            q->used = true;
            memcpy(q->uhash, uhash, AR__TURN_UHASH_LEN);
            sh->quota_used++;
        }
        q->count++;
    }
    pthread_mutex_unlock(&sh->lock);
    if (rc != 0)
        atomic_fetch_sub_explicit(&sh->total, 1, memory_order_relaxed);
    return rc;
}

static void quota_give(ar_turn_shared_t *sh, const uint8_t *uhash)
{
    atomic_fetch_sub_explicit(&sh->total, 1, memory_order_relaxed);
    if (sh->o.user_quota <= 0)
        return;
    pthread_mutex_lock(&sh->lock);
    ar__turn_quota_t *q = quota_slot(sh, uhash, false);
    if (q && q->count > 0)
        q->count--;
    pthread_mutex_unlock(&sh->lock);
}

/* --- timer wheel --- */

static void wheel_unlink(ar_turn_engine_t *e, ar_turn_alloc_t *a)
{
    if (a->wprev)
        a->wprev->wnext = a->wnext;
    else
        e->wheel[a->wheel_at % AR__TURN_WHEEL_SLOTS] = a->wnext;
    if (a->wnext)
        a->wnext->wprev = a->wprev;
    a->wnext = a->wprev = NULL;
}

static void wheel_link(ar_turn_engine_t *e, ar_turn_alloc_t *a)
{
    /* A deadline beyond the wheel is filed at its far end and refiled when that slot runs. */
    uint32_t at = a->expiry;
    if (at <= e->wheel_now)
        at = e->wheel_now + 1;
    if (at - e->wheel_now >= AR__TURN_WHEEL_SLOTS)
        at = e->wheel_now + AR__TURN_WHEEL_SLOTS - 1;
    a->wheel_at = at;
    ar_turn_alloc_t **head = &e->wheel[at % AR__TURN_WHEEL_SLOTS];
    a->wprev = NULL;
    a->wnext = *head;
    if (*head)
        (*head)->wprev = a;
    *head = a;
}

void ar__turn_wheel_run(ar_turn_engine_t *e)
{
    if (!e->wheel_started) {
        e->wheel_now = e->now_s;
        e->wheel_started = true;
        return;
    }
    /* After a long stall, every slot is visited at most once. */
    uint32_t steps = e->now_s - e->wheel_now;
    if (steps > AR__TURN_WHEEL_SLOTS)
        steps = AR__TURN_WHEEL_SLOTS;
    for (uint32_t i = 0; i < steps; i++) {
        e->wheel_now++;
        ar_turn_alloc_t **head = &e->wheel[e->wheel_now % AR__TURN_WHEEL_SLOTS];
        ar_turn_alloc_t *a = *head;
        *head = NULL;
        while (a) {
            ar_turn_alloc_t *next = a->wnext;
            a->wnext = a->wprev = NULL;
            if (a->expiry <= e->now_s) {
                e->stats.alloc_expired++;
                a->wheel_at = UINT32_MAX; /* not linked */
                ar__turn_alloc_delete(e, a);
            } else {
                wheel_link(e, a);
            }
            a = next;
        }
    }
    e->wheel_now = e->now_s;
}

void ar__turn_alloc_set_expiry(ar_turn_engine_t *e, ar_turn_alloc_t *a, uint32_t lifetime)
{
    if (a->wheel_at != UINT32_MAX)
        wheel_unlink(e, a);
    if (!e->wheel_started) {
        e->wheel_now = e->now_s;
        e->wheel_started = true;
    }
    a->lifetime = lifetime;
    a->expiry = e->now_s + lifetime;
    wheel_link(e, a);
}

/* --- allocations --- */

int ar__turn_alloc_create(ar_turn_engine_t *e, const ar_turn_tuple_t *t,
                          const uint8_t uhash[AR__TURN_UHASH_LEN], ar_turn_alloc_t **out)
{
    if (e->count * 2 >= e->nbuckets) {
        int rc = table_grow(e);
        if (rc != 0)
            return rc;
    }
    int rc = quota_take(e->sh, uhash);
    if (rc != 0)
        return rc;
    ar_turn_alloc_t *a = ar_calloc(1, sizeof(*a));
    if (!a) {
        quota_give(e->sh, uhash);
        return AR_ENOMEM;
    }
    a->tuple = *t;
    memcpy(a->uhash, uhash, AR__TURN_UHASH_LEN);
    a->wheel_at = UINT32_MAX;
    a->bw_in.tokens = a->bw_out.tokens = e->sh->o.max_bps;
    a->bw_in.last_ms = a->bw_out.last_ms = e->now_ms;
    size_t h = tuple_hash(e, t);
    a->hnext = e->buckets[h];
    e->buckets[h] = a;
    e->count++;
    e->stats.tr[ar_turn_tuple_tr(t)].allocations++;
    *out = a;
    return 0;
}

void ar__turn_alloc_delete(ar_turn_engine_t *e, ar_turn_alloc_t *a)
{
    ar_turn_alloc_t **pp = &e->buckets[tuple_hash(e, &a->tuple)];
    while (*pp && *pp != a)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = a->hnext;
    if (a->wheel_at != UINT32_MAX)
        wheel_unlink(e, a);
    if (a->relay && a->tcp)
        e->tp.tcp_relay_close(e->tp.ctx, a->relay);
    else if (a->relay)
        e->tp.relay_close(e->tp.ctx, a->relay);
    if (a->relay2)
        e->tp.relay_close(e->tp.ctx, a->relay2);
    quota_give(e->sh, a->uhash);
    e->count--;
    e->stats.tr[ar_turn_tuple_tr(&a->tuple)].allocations--;
    ar_free(a->perms);
    ar_free(a->chans);
    memset(a->key, 0, sizeof(a->key));
    ar_free(a);
}

/* --- permissions --- */

bool ar__turn_perm_ok(const ar_turn_engine_t *e, const ar_turn_alloc_t *a,
                      const ar_turn_addr_t *peer)
{
    for (uint16_t i = 0; i < a->nperms; i++) {
        const ar__turn_perm_t *p = &a->perms[i];
        if (ar__turn_ip_eq(&p->ip, peer))
            return p->expiry > e->now_s;
    }
    return false;
}

int ar__turn_perm_add(ar_turn_engine_t *e, ar_turn_alloc_t *a, const ar_turn_addr_t *peer)
{
    uint32_t exp = e->now_s + AR__TURN_PERM_LIFETIME;
    for (uint16_t i = 0; i < a->nperms; i++) {
        if (ar__turn_ip_eq(&a->perms[i].ip, peer)) {
            a->perms[i].expiry = exp;
            return 0;
        }
    }
    /* Drop expired entries before growing, so a client cycling peers stays within the cap. */
    uint16_t n = 0;
    for (uint16_t i = 0; i < a->nperms; i++) {
        if (a->perms[i].expiry > e->now_s)
            a->perms[n++] = a->perms[i];
    }
    a->nperms = n;
    if (n >= AR__TURN_MAX_PERMS)
        return AR_EQUOTA;
    if (n == a->cperms) {
        uint16_t c = a->cperms ? (uint16_t)(a->cperms * 2) : 2;
        ar__turn_perm_t *np = ar_realloc(a->perms, c * sizeof(*np));
        if (!np)
            return AR_ENOMEM;
        a->perms = np;
        a->cperms = c;
    }
    ar__turn_perm_t *p = &a->perms[a->nperms++];
    memset(p, 0, sizeof(*p));
    p->ip.family = peer->family;
    memcpy(p->ip.ip, peer->ip, 16);
    p->expiry = exp;
    return 0;
}

/* --- channels --- */

ar__turn_chan_t *ar__turn_chan_by_num(const ar_turn_engine_t *e, ar_turn_alloc_t *a, uint16_t num)
{
    for (uint16_t i = 0; i < a->nchans; i++) {
        if (a->chans[i].num == num)
            return a->chans[i].expiry > e->now_s ? &a->chans[i] : NULL;
    }
    return NULL;
}

ar__turn_chan_t *ar__turn_chan_by_peer(const ar_turn_engine_t *e, ar_turn_alloc_t *a,
                                       const ar_turn_addr_t *peer)
{
    for (uint16_t i = 0; i < a->nchans; i++) {
        if (ar__turn_addr_eq(&a->chans[i].peer, peer))
            return a->chans[i].expiry > e->now_s ? &a->chans[i] : NULL;
    }
    return NULL;
}

int ar__turn_chan_bind(ar_turn_engine_t *e, ar_turn_alloc_t *a, uint16_t num,
                       const ar_turn_addr_t *peer)
{
    /* RFC 8656 section 12: a channel number and a peer are bound to each other only; after a
     * binding expires, neither may be rebound to something else for 5 more minutes. */
    ar__turn_chan_t *same = NULL;
    for (uint16_t i = 0; i < a->nchans; i++) {
        ar__turn_chan_t *c = &a->chans[i];
        bool reserved = c->expiry + AR__TURN_CHAN_COOLDOWN > e->now_s;
        bool num_eq = c->num == num, peer_eq = ar__turn_addr_eq(&c->peer, peer);
        if (num_eq && peer_eq)
            same = c;
        else if (reserved && (num_eq || peer_eq))
            return AR_EINVAL;
    }
    uint32_t exp = e->now_s + AR__TURN_CHAN_LIFETIME;
    if (same) {
        same->expiry = exp;
        return 0;
    }
    uint16_t n = 0;
    for (uint16_t i = 0; i < a->nchans; i++) {
        if (a->chans[i].expiry + AR__TURN_CHAN_COOLDOWN > e->now_s)
            a->chans[n++] = a->chans[i];
    }
    a->nchans = n;
    if (n >= AR__TURN_MAX_CHANS)
        return AR_EQUOTA;
    if (n == a->cchans) {
        uint16_t c = a->cchans ? (uint16_t)(a->cchans * 2) : 2;
        ar__turn_chan_t *nc = ar_realloc(a->chans, c * sizeof(*nc));
        if (!nc)
            return AR_ENOMEM;
        a->chans = nc;
        a->cchans = c;
    }
    ar__turn_chan_t *c = &a->chans[a->nchans++];
    memset(c, 0, sizeof(*c));
    c->peer = *peer;
    c->num = num;
    c->expiry = exp;
    return 0;
}

/* --- bandwidth --- */

bool ar__turn_bw_take(const ar_turn_engine_t *e, ar__turn_bucket_t *b, size_t len)
{
    int64_t rate = e->sh->o.max_bps;
    if (rate <= 0)
        return true;
    if (e->now_ms > b->last_ms) {
        /* The bucket holds at most one second of traffic: bursts beyond that are dropped. */
        int64_t add = (int64_t)(e->now_ms - b->last_ms) * rate / 1000;
        if (add > 0) {
            b->tokens = b->tokens + add > rate ? rate : b->tokens + add;
            b->last_ms = e->now_ms;
        }
    }
    if (b->tokens < (int64_t)len)
        return false;
    b->tokens -= (int64_t)len;
    return true;
}
