/*
 * Internals of the TURN engine shared by engine.c, auth.c and alloc.c. Not a public API.
 *
 * Memory budget: an allocation is one flat struct (about 200 bytes) plus its permission and
 * channel arrays, which start empty and grow only as a client adds peers. There are no
 * per-allocation buffers and no per-allocation timers: expiry is a timestamp checked where it
 * matters, and one timer wheel per engine reclaims allocations whose lifetime ran out.
 */
#ifndef AR_TURN_INTERNAL_H
#define AR_TURN_INTERNAL_H

#include "server.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#define AR__TURN_PERM_LIFETIME 300 /* s, RFC 8656 section 9 */
#define AR__TURN_CHAN_LIFETIME 600 /* s, RFC 8656 section 12 */
#define AR__TURN_CHAN_COOLDOWN 300 /* s a channel stays reserved after expiry (section 12) */
#define AR__TURN_MAX_PERMS 64      /* per allocation: more gets 508, bounding memory */
#define AR__TURN_MAX_CHANS 64
#define AR__TURN_WHEEL_SLOTS 4096 /* one per second; longer than the longest lifetime */
#define AR__TURN_RL_SLOTS 1024    /* unauthenticated rate limiter entries per engine */
#define AR__TURN_UHASH_LEN 16
#define AR__TURN_MAX_USERNAME 513 /* RFC 8489 section 14.3 */
#define AR__TURN_NONCE_LEN 16     /* base64url of 12 bytes: expiry and a truncated MAC */
/* RFC 8656 narrowed channel numbers to 0x4000-0x4fff, but RFC 5766 clients (coturn's own
 * turnutils_uclient among them) still pick up to 0x7fff. The leading bits 01 tell ChannelData
 * from STUN either way, so we accept the old range. */
#define AR__TURN_CHANNEL_MAX_COMPAT 0x7fff
#define AR__TURN_AMP_FACTOR 4 /* unauthenticated responses are at most 4x the request */

typedef struct ar__turn_perm_s {
    ar_turn_addr_t ip; /* port is 0: permissions are per IP address */
    uint32_t expiry;   /* engine seconds */
} ar__turn_perm_t;

typedef struct ar__turn_chan_s {
    ar_turn_addr_t peer;
    uint32_t expiry; /* engine seconds; usable until then, reserved for COOLDOWN after */
    uint16_t num;
    uint16_t pad;
} ar__turn_chan_t;

/* A token bucket counting bytes, refilled at max-bps. */
typedef struct ar__turn_bucket_s {
    int64_t tokens;
    uint64_t last_ms;
} ar__turn_bucket_t;

struct ar_turn_alloc_s {
    /* The chain link and the key first, in one cache line: a lookup that walks past this
     * allocation (every request of a new client does) touches only that line. */
    ar_turn_alloc_t *hnext; /* 5-tuple hash chain */
    ar_turn_tuple_t tuple;
    ar_turn_alloc_t *wnext, *wprev; /* timer wheel slot list */
    void *relay;                    /* transport's endpoint */
    void *relay2;                   /* a dual allocation's IPv6 endpoint (RFC 8656), or NULL */
    ar__turn_perm_t *perms;
    ar__turn_chan_t *chans;
    ar_turn_addr_t relayed;    /* the local relay address */
    ar_turn_addr_t advertised; /* what XOR-RELAYED-ADDRESS says (external-ip) */
    ar_turn_addr_t relayed2;   /* relay2's address (family 0 when none) */
    uint8_t key[16];           /* long-term credential key of the allocating user */
    uint8_t uhash[AR__TURN_UHASH_LEN];
    uint8_t tid[12]; /* the Allocate transaction, so a retransmission gets the same answer */
    uint32_t expiry; /* engine seconds */
    uint32_t wheel_at;
    uint16_t nperms, cperms, nchans, cchans;
    uint32_t lifetime; /* granted by the last Allocate/Refresh, for retransmitted answers */
    uint16_t v6_error; /* ADDITIONAL-ADDRESS-FAMILY IPv6 not granted: its ADDRESS-ERROR-CODE */
    bool armed;        /* relay_arm succeeded for relay */
    bool armed2;       /* and for relay2 */
    bool tcp;          /* RFC 6062 TCP allocation: relay is the transport's TCP endpoint */
    ar__turn_bucket_t bw_in, bw_out;
};

typedef struct ar__turn_user_s {
    char *name;
    size_t len;
    uint8_t key[16];
} ar__turn_user_t;

typedef struct ar__turn_quota_s {
    uint8_t uhash[AR__TURN_UHASH_LEN];
    int64_t count; /* 0 marks a free slot once used: tombstones are not needed for counting */
    bool used;
} ar__turn_quota_t;

struct ar_turn_shared_s {
    ar_turn_opts_t o; /* scalars copied; string pointers below are our own copies */
    char *realm;
    size_t realm_len;
    char **secrets;
    size_t *secret_lens;
    size_t nsecrets;
    ar__turn_user_t *users; /* sorted by name for bsearch */
    size_t nusers;
    uint8_t nonce_key[32]; /* [0,16): nonce MAC key; [16,32): username hash key */
    pthread_mutex_t lock;  /* guards quotas: taken on Allocate and on delete only */
    ar__turn_quota_t *quotas;
    size_t nquotas; /* slots, a power of two */
    size_t quota_used;
    atomic_llong total;
};

typedef struct ar__turn_rl_s {
    uint32_t hash; /* of the source IP; 0: free */
    uint32_t tokens_milli;
    uint64_t last_ms;
} ar__turn_rl_t;

struct ar_turn_engine_s {
    ar_turn_shared_t *sh;
    ar_turn_transport_t tp;
    uint64_t now_ms;
    uint32_t now_s; /* mono_ms / 1000 */
    int64_t wall_s;
    uint64_t seed; /* hash key, random per engine so clients cannot aim collisions */
    ar_turn_alloc_t **buckets;
    size_t nbuckets; /* power of two */
    size_t count;
    ar_turn_alloc_t *wheel[AR__TURN_WHEEL_SLOTS];
    uint32_t wheel_now; /* last second the wheel was run */
    bool wheel_started;
    ar__turn_rl_t rl[AR__TURN_RL_SLOTS];
    ar_turn_stats_t stats;
    uint32_t oversize_logged_s; /* engine second of the last oversize log line (+1; 0: never) */
    uint8_t out[1280];          /* responses are built here; the largest is well under this */
};

/* auth.c */
typedef enum {
    AR__AUTH_OK,
    AR__AUTH_MISSING, /* no MESSAGE-INTEGRITY: 401 challenge */
    AR__AUTH_BAD_REQ, /* integrity without USERNAME/REALM/NONCE: 400 */
    AR__AUTH_STALE,   /* nonce expired or not ours: 438 */
    AR__AUTH_FAILED,  /* unknown user, expired REST name, wrong password, wrong realm: 401 */
} ar__auth_result_t;

/* Writes a fresh nonce for the client address into out (AR__TURN_NONCE_LEN bytes). */
void ar__turn_nonce_make(ar_turn_engine_t *e, const ar_turn_addr_t *client, uint8_t *out);
/*
 * Authenticates a request: checks the nonce, finds the user's key (static user or REST secret;
 * for the user of allocation a, when given, its stored key), and verifies MESSAGE-INTEGRITY in
 * constant time. On OK fills key and uhash.
 */
struct ar_stun_msg_s;
ar__auth_result_t ar__turn_authenticate(ar_turn_engine_t *e, const ar_turn_tuple_t *t,
                                        const struct ar_stun_msg_s *msg, const ar_turn_alloc_t *a,
                                        uint8_t key[16], uint8_t uhash[AR__TURN_UHASH_LEN]);
/* True when an unauthenticated request from client may be answered (token bucket per IP). */
bool ar__turn_rate_ok(ar_turn_engine_t *e, const ar_turn_addr_t *client);
void ar__turn_uhash(const ar_turn_shared_t *sh, const uint8_t *name, size_t len,
                    uint8_t out[AR__TURN_UHASH_LEN]);

/* alloc.c */
ar_turn_alloc_t *ar__turn_alloc_find(ar_turn_engine_t *e, const ar_turn_tuple_t *t);
/* Takes quota for uhash, then creates and indexes an allocation. AR_EQUOTA when over quota,
 * AR_ENOMEM. The relay endpoint is opened by the caller. */
int ar__turn_alloc_create(ar_turn_engine_t *e, const ar_turn_tuple_t *t,
                          const uint8_t uhash[AR__TURN_UHASH_LEN], ar_turn_alloc_t **out);
/* Unindexes, closes the relay endpoint, gives quota back, frees. */
void ar__turn_alloc_delete(ar_turn_engine_t *e, ar_turn_alloc_t *a);
void ar__turn_alloc_set_expiry(ar_turn_engine_t *e, ar_turn_alloc_t *a, uint32_t lifetime);
bool ar__turn_perm_ok(const ar_turn_engine_t *e, const ar_turn_alloc_t *a,
                      const ar_turn_addr_t *peer);
int ar__turn_perm_add(ar_turn_engine_t *e, ar_turn_alloc_t *a, const ar_turn_addr_t *peer);
/* The live channel of number num, or NULL. */
ar__turn_chan_t *ar__turn_chan_by_num(const ar_turn_engine_t *e, ar_turn_alloc_t *a, uint16_t num);
/* The live channel bound to peer, or NULL. */
ar__turn_chan_t *ar__turn_chan_by_peer(const ar_turn_engine_t *e, ar_turn_alloc_t *a,
                                       const ar_turn_addr_t *peer);
/* ChannelBind rules: 0 bound or refreshed, AR_EINVAL for a conflict (400), AR_EQUOTA (508). */
int ar__turn_chan_bind(ar_turn_engine_t *e, ar_turn_alloc_t *a, uint16_t num,
                       const ar_turn_addr_t *peer);
/* Takes len bytes from a bucket; false when the cap says drop. */
bool ar__turn_bw_take(const ar_turn_engine_t *e, ar__turn_bucket_t *b, size_t len);
void ar__turn_wheel_run(ar_turn_engine_t *e);

static inline bool ar__turn_ip_eq(const ar_turn_addr_t *a, const ar_turn_addr_t *b)
{
    /* memcmp of a constant length compiles to one or two loads; casts would be misaligned. */
    if (a->family != b->family)
        return false;
    return a->family == 4 ? memcmp(a->ip, b->ip, 4) == 0 : memcmp(a->ip, b->ip, 16) == 0;
}

static inline bool ar__turn_addr_eq(const ar_turn_addr_t *a, const ar_turn_addr_t *b)
{
    return a->port == b->port && ar__turn_ip_eq(a, b);
}

#endif
