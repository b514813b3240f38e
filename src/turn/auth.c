/*
 * Authentication for the TURN engine: long-term credentials (RFC 8489 section 9.2) with static
 * users or the shared-secret TURN REST scheme, stateless expiring nonces, and the per-source
 * limit on unauthenticated requests.
 *
 * Nonces carry their own expiry and a MAC over it and the client's IP, keyed by a per-process
 * random key: no table to fill up, any worker can check any nonce, and a nonce seen from
 * another address is stale.
 */
#include "internal.h"

#include "anteroom/alloc.h"
#include "anteroom/turn_rest.h"
#include "stun/stun.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
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

/*
 * Keyed SipHash-2-4 with a 128-bit output (a PRF, several times cheaper than BLAKE2b for these
 * short inputs): usernames are told apart by it, and nonces are authenticated with it. The key
 * is random per process, so nobody can aim for collisions.
 */
void ar__turn_uhash(const ar_turn_shared_t *sh, const uint8_t *name, size_t len,
                    uint8_t out[AR__TURN_UHASH_LEN])
{
    crypto_shorthash_siphashx24(out, name, len, sh->nonce_key + 16);
}

static void nonce_mac(const ar_turn_engine_t *e, const uint8_t expiry[4],
                      const ar_turn_addr_t *client, uint8_t mac[16])
{
    uint8_t in[4 + 1 + 16];
    memcpy(in, expiry, 4);
    in[4] = client->family;
    memcpy(in + 5, client->ip, 16);
    crypto_shorthash_siphashx24(mac, in, sizeof(in), e->sh->nonce_key);
}

void ar__turn_nonce_make(ar_turn_engine_t *e, const ar_turn_addr_t *client, uint8_t *out)
{
    uint8_t raw[12], mac[16];
    uint32_t exp = e->now_s + e->sh->o.nonce_lifetime;
    raw[0] = (uint8_t)(exp >> 24);
    raw[1] = (uint8_t)(exp >> 16);
    raw[2] = (uint8_t)(exp >> 8);
    raw[3] = (uint8_t)exp;
    nonce_mac(e, raw, client, mac);
    memcpy(raw + 4, mac, 8);
    char text[AR__TURN_NONCE_LEN + 1];
    sodium_bin2base64(text, sizeof(text), raw, sizeof(raw),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    memcpy(out, text, AR__TURN_NONCE_LEN);
}

/* One base64url character's 6 bits, or -1. */
static int b64url_val(uint8_t c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '-' ? 62 : c == '_' ? 63 : -1;
}

/* Decodes the 16 characters of a nonce into its 12 bytes (4 groups of 4 characters, 3 bytes
 * each, no padding: nothing non-canonical is possible). Every request with credentials carries
 * one, and libsodium's general decoder cost more than the rest of the nonce check. */
static int b64url_12(const uint8_t *in, uint8_t out[12])
{
    for (size_t g = 0; g < 4; g++) {
        int32_t v = 0;
        for (size_t i = 0; i < 4; i++) {
            int d = b64url_val(in[4 * g + i]);
            if (d < 0)
                return AR_EINVAL;
            v = v << 6 | d;
        }
        out[3 * g] = (uint8_t)(v >> 16);
        out[3 * g + 1] = (uint8_t)(v >> 8);
        out[3 * g + 2] = (uint8_t)v;
    }
    return 0;
}

/* 0 for our live nonce, AR_EEXPIRED for an old or foreign one. */
static int nonce_check(const ar_turn_engine_t *e, const ar_turn_addr_t *client,
                       const ar_stun_attr_t *n)
{
    if (n->len != AR__TURN_NONCE_LEN)
        return AR_EEXPIRED;
    uint8_t raw[12], mac[16];
    if (b64url_12(n->value, raw) != 0)
        return AR_EEXPIRED;
    nonce_mac(e, raw, client, mac);
    if (sodium_memcmp(mac, raw + 4, 8) != 0)
        return AR_EEXPIRED;
    uint32_t exp = (uint32_t)raw[0] << 24 | (uint32_t)raw[1] << 16 | (uint32_t)raw[2] << 8 | raw[3];
    if (exp <= e->now_s || exp > e->now_s + e->sh->o.nonce_lifetime)
        return AR_EEXPIRED;
    return 0;
}

static int user_cmp(const void *a, const void *b)
{
    const ar__turn_user_t *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->name, y->name, n);
    if (c != 0)
        return c;
    return (x->len > y->len) - (x->len < y->len);
}

typedef struct user_key_s {
    const uint8_t *name;
    size_t len;
} user_key_t;

static int user_key_cmp(const void *key, const void *elem)
{
    const user_key_t *k = key;
    const ar__turn_user_t *u = elem;
    size_t n = k->len < u->len ? k->len : u->len;
    int c = memcmp(k->name, u->name, n);
    if (c != 0)
        return c;
    return (k->len > u->len) - (k->len < u->len);
}

static const ar__turn_user_t *user_find(const ar_turn_shared_t *sh, const uint8_t *name, size_t len)
{
    if (sh->nusers == 0)
        return NULL;
    user_key_t k = {.name = name, .len = len};
    return bsearch(&k, sh->users, sh->nusers, sizeof(ar__turn_user_t), user_key_cmp);
}

ar__auth_result_t ar__turn_authenticate(ar_turn_engine_t *e, const ar_turn_tuple_t *t,
                                        const ar_stun_msg_t *msg, const ar_turn_alloc_t *a,
                                        uint8_t key[16], uint8_t uhash[AR__TURN_UHASH_LEN])
{
    const ar_turn_shared_t *sh = e->sh;
    if (msg->integrity_off == 0)
        return AR__AUTH_MISSING;
    const ar_stun_attr_t *un = ar_stun_find(msg, AR_STUN_ATTR_USERNAME);
    const ar_stun_attr_t *realm = ar_stun_find(msg, AR_STUN_ATTR_REALM);
    const ar_stun_attr_t *nonce = ar_stun_find(msg, AR_STUN_ATTR_NONCE);
    if (!un || !realm || !nonce || un->len == 0 || un->len > AR__TURN_MAX_USERNAME)
        return AR__AUTH_BAD_REQ;
    if (nonce_check(e, &t->client, nonce) != 0)
        return AR__AUTH_STALE;
    if (realm->len != sh->realm_len || memcmp(realm->value, sh->realm, sh->realm_len) != 0)
        return AR__AUTH_FAILED;

    const ar__turn_user_t *u = user_find(sh, un->value, un->len);
    if (u) {
        if (ar_stun_check_integrity(msg, u->key, 16) != 0)
            return AR__AUTH_FAILED;
        memcpy(key, u->key, 16);
        ar__turn_uhash(sh, un->value, un->len, uhash);
        return AR__AUTH_OK;
    }
    if (!sh->o.use_auth_secret || sh->nsecrets == 0)
        return AR__AUTH_FAILED;
    /* Expired (or not a REST name at all): 401, as coturn answers. */
    if (ar_turn_rest_check_expiry((const char *)un->value, un->len, e->wall_s, NULL) != 0)
        return AR__AUTH_FAILED;
    /* The allocation's own user (Refresh, CreatePermission, ChannelBind) signs with the key
     * derived at Allocate: check with it and skip deriving the password again. */
    if (a) {
        ar__turn_uhash(sh, un->value, un->len, uhash);
        if (sodium_memcmp(uhash, a->uhash, AR__TURN_UHASH_LEN) == 0) {
            if (ar_stun_check_integrity(msg, a->key, 16) != 0)
                return AR__AUTH_FAILED;
            memcpy(key, a->key, 16);
            return AR__AUTH_OK;
        }
    }
    /* password = base64(HMAC-SHA1(secret, username)); several secrets allow rotation. */
    for (size_t i = 0; i < sh->nsecrets; i++) {
        char pass[AR_TURN_REST_PASS_MAX];
        uint8_t k[16];
        int rc = ar_turn_rest_password(sh->secrets[i], sh->secret_lens[i], (const char *)un->value,
                                       un->len, pass, sizeof(pass));
        if (rc == 0)
            rc = ar_stun_long_term_key((const char *)un->value, un->len, sh->realm, sh->realm_len,
                                       pass, strlen(pass), k);
        sodium_memzero(pass, sizeof(pass));
        if (rc == 0 && ar_stun_check_integrity(msg, k, 16) == 0) {
            memcpy(key, k, 16);
            sodium_memzero(k, sizeof(k));
            ar__turn_uhash(sh, un->value, un->len, uhash);
            return AR__AUTH_OK;
        }
        sodium_memzero(k, sizeof(k));
    }
    return AR__AUTH_FAILED;
}

bool ar__turn_rate_ok(ar_turn_engine_t *e, const ar_turn_addr_t *client)
{
    uint32_t rate = e->sh->o.unauth_rate, burst = e->sh->o.unauth_burst;
    if (rate == 0)
        return true;
    uint64_t h = e->seed ^ client->family;
    uint64_t w[2];
    memcpy(w, client->ip, 16);
    h = mix64(h ^ w[0]);
    h = mix64(h ^ w[1]);
    uint32_t tag = (uint32_t)(h >> 32) | 1u; /* never 0, which marks a free slot */
    ar__turn_rl_t *r = &e->rl[h % AR__TURN_RL_SLOTS];
    uint64_t cap = (uint64_t)burst * 1000;
    if (r->hash != tag) {
        /* A new or evicted source starts with a full bucket: evicting an attacker only gives
         * them what any new address gets. */
        r->hash = tag;
        r->tokens_milli = (uint32_t)cap;
        r->last_ms = e->now_ms;
    } else if (e->now_ms > r->last_ms) {
        uint64_t add = (e->now_ms - r->last_ms) * rate; /* milli-tokens: rate per s * ms */
        uint64_t tok = r->tokens_milli + add;
        r->tokens_milli = (uint32_t)(tok > cap ? cap : tok);
        r->last_ms = e->now_ms;
    }
    if (r->tokens_milli < 1000)
        return false;
    r->tokens_milli -= 1000;
    return true;
}

/* --- shared state --- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* "name:password" or "name:0x<32 hex digits>" (coturn's form for a precomputed key). */
static int parse_user(ar_turn_shared_t *sh, const char *line, ar__turn_user_t *u, size_t idx,
                      char *err, size_t errlen)
{
    const char *colon = strchr(line, ':');
    if (!colon || colon == line || colon[1] == '\0') {
        snprintf(err, errlen, "user #%zu: expected name:password or name:0xKEY", idx + 1);
        return AR_ECONFIG;
    }
    size_t nlen = (size_t)(colon - line);
    if (nlen > AR__TURN_MAX_USERNAME) {
        snprintf(err, errlen, "user #%zu: name longer than %d bytes", idx + 1,
                 AR__TURN_MAX_USERNAME);
        return AR_ECONFIG;
    }
    const char *pw = colon + 1;
    u->name = ar_strndup(line, nlen);
    if (!u->name)
        return AR_ENOMEM;
    u->len = nlen;
    if ((pw[0] == '0') && (pw[1] == 'x' || pw[1] == 'X') && strlen(pw) == 34) {
        for (int i = 0; i < 16; i++) {
            int hi = hexval(pw[2 + 2 * i]), lo = hexval(pw[3 + 2 * i]);
            if (hi < 0 || lo < 0) {
                snprintf(err, errlen, "user #%zu: bad hex key", idx + 1);
                return AR_ECONFIG;
            }
            u->key[i] = (uint8_t)(hi << 4 | lo);
        }
    } else if (ar_stun_long_term_key(line, nlen, sh->realm, sh->realm_len, pw, strlen(pw),
                                     u->key) != 0) {
        return AR_ENOMEM;
    }
    return 0;
}

void ar_turn_shared_free(ar_turn_shared_t *sh)
{
    if (!sh)
        return;
    for (size_t i = 0; sh->secrets && sh->secret_lens && i < sh->nsecrets; i++) {
        if (sh->secrets[i]) {
            sodium_memzero(sh->secrets[i], sh->secret_lens[i]);
            ar_free(sh->secrets[i]);
        }
    }
    ar_free(sh->secrets);
    ar_free(sh->secret_lens);
    for (size_t i = 0; sh->users && i < sh->nusers; i++) {
        ar_free(sh->users[i].name);
        sodium_memzero(sh->users[i].key, 16);
    }
    ar_free(sh->users);
    ar_free(sh->realm);
    ar_free(sh->quotas);
    pthread_mutex_destroy(&sh->lock);
    sodium_memzero(sh, sizeof(*sh));
    ar_free(sh);
}

ar_turn_shared_t *ar_turn_shared_new(const ar_turn_opts_t *opts, char *err, size_t errlen)
{
    if (errlen)
        err[0] = '\0';
    if (sodium_init() < 0)
        return NULL;
    ar_turn_shared_t *sh = ar_calloc(1, sizeof(*sh));
    if (!sh)
        return NULL;
    sh->o = *opts;
    sh->o.secrets = NULL;
    sh->o.users = NULL;
    sh->o.realm = NULL;
    if (sh->o.default_lifetime == 0)
        sh->o.default_lifetime = 600;
    if (sh->o.max_lifetime < sh->o.default_lifetime)
        sh->o.max_lifetime = sh->o.default_lifetime > 3600 ? sh->o.default_lifetime : 3600;
    if (sh->o.nonce_lifetime == 0)
        sh->o.nonce_lifetime = 600;
    if (sh->o.unauth_burst < sh->o.unauth_rate)
        sh->o.unauth_burst = sh->o.unauth_rate;
    pthread_mutex_init(&sh->lock, NULL);
    randombytes_buf(sh->nonce_key, sizeof(sh->nonce_key));

    const char *realm = opts->realm ? opts->realm : "anteroom";
    sh->realm_len = strlen(realm);
    sh->realm = ar_strndup(realm, sh->realm_len);
    if (!sh->realm)
        goto nomem;
    if (opts->nsecrets) {
        sh->secrets = ar_calloc(opts->nsecrets, sizeof(char *));
        sh->secret_lens = ar_calloc(opts->nsecrets, sizeof(size_t));
        if (!sh->secrets || !sh->secret_lens)
            goto nomem;
        sh->nsecrets = opts->nsecrets;
        for (size_t i = 0; i < opts->nsecrets; i++) {
            sh->secret_lens[i] = strlen(opts->secrets[i]);
            sh->secrets[i] = ar_strndup(opts->secrets[i], sh->secret_lens[i]);
            if (!sh->secrets[i])
                goto nomem;
        }
    }
    if (opts->nusers) {
        sh->users = ar_calloc(opts->nusers, sizeof(ar__turn_user_t));
        if (!sh->users)
            goto nomem;
        for (size_t i = 0; i < opts->nusers; i++) {
            sh->nusers = i + 1;
            int rc = parse_user(sh, opts->users[i], &sh->users[i], i, err, errlen);
            if (rc == AR_ENOMEM)
                goto nomem;
            if (rc != 0)
                goto fail;
        }
        qsort(sh->users, sh->nusers, sizeof(ar__turn_user_t), user_cmp);
        for (size_t i = 1; i < sh->nusers; i++) {
            if (user_cmp(&sh->users[i - 1], &sh->users[i]) == 0) {
                snprintf(err, errlen, "user: a name is listed twice");
                goto fail;
            }
        }
    }
    return sh;
nomem:
    snprintf(err, errlen, "out of memory");
fail:
    ar_turn_shared_free(sh);
    return NULL;
}

int64_t ar_turn_shared_allocations(const ar_turn_shared_t *sh)
{
    return atomic_load_explicit(&sh->total, memory_order_relaxed);
}
