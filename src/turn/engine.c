/*
 * The TURN engine: turns client messages into allocations, permissions, channels and relayed
 * data, and peer datagrams into Data indications or ChannelData. RFC 8656 section numbers are
 * given where a rule comes from. The engine does no I/O (see server.h for the transport seam).
 *
 * Hot paths are ChannelData from a client (one hash lookup, one channel scan, one permission
 * scan, one bucket) and a datagram from a peer (no lookup at all: the transport hands us the
 * allocation; the header is written in place into the headroom in front of the payload).
 */
#include "internal.h"

#include "anteroom/alloc.h"
#include "anteroom/log.h"
#include "anteroom/rand.h"
#include "stun/stun.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sodium.h>
#include <string.h>

/* --- addresses --- */

int ar_turn_addr_from_sa(ar_turn_addr_t *out, const struct sockaddr *sa)
{
    memset(out, 0, sizeof(*out));
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        out->family = 4;
        out->port = ntohs(in->sin_port);
        memcpy(out->ip, &in->sin_addr, 4);
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        out->family = 6;
        out->port = ntohs(in6->sin6_port);
        memcpy(out->ip, &in6->sin6_addr, 16);
        return 0;
    }
    return AR_EINVAL;
}

socklen_t ar_turn_addr_to_sa(const ar_turn_addr_t *a, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof(*out));
    if (a->family == 4) {
        struct sockaddr_in *in = (struct sockaddr_in *)(void *)out;
        in->sin_family = AF_INET;
        in->sin_port = htons(a->port);
        memcpy(&in->sin_addr, a->ip, 4);
        return sizeof(*in);
    }
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)(void *)out;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(a->port);
    memcpy(&in6->sin6_addr, a->ip, 16);
    return sizeof(*in6);
}

/* --- engine lifecycle --- */

ar_turn_engine_t *ar_turn_engine_new(ar_turn_shared_t *sh, const ar_turn_transport_t *tp)
{
    ar_turn_engine_t *e = ar_calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->sh = sh;
    e->tp = *tp;
    randombytes_buf(&e->seed, sizeof(e->seed));
    e->seed |= 1;
    return e;
}

void ar_turn_engine_free(ar_turn_engine_t *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->nbuckets; i++) {
        while (e->buckets[i])
            ar__turn_alloc_delete(e, e->buckets[i]);
    }
    ar_free(e->buckets);
    ar_free(e);
}

void ar_turn_engine_set_now(ar_turn_engine_t *e, uint64_t mono_ms, int64_t wall_s)
{
    e->now_ms = mono_ms;
    e->now_s = (uint32_t)(mono_ms / 1000);
    e->wall_s = wall_s;
}

void ar_turn_engine_tick(ar_turn_engine_t *e)
{
    ar__turn_wheel_run(e);
}

ar_turn_tr_stats_t ar_turn_stats_total(const ar_turn_stats_t *s)
{
    ar_turn_tr_stats_t t = {0};
    for (int i = 0; i < AR_TURN_NTR; i++) {
        t.allocations += s->tr[i].allocations;
        t.allocs_total += s->tr[i].allocs_total;
        t.pkts_in += s->tr[i].pkts_in;
        t.bytes_in += s->tr[i].bytes_in;
        t.pkts_out += s->tr[i].pkts_out;
        t.bytes_out += s->tr[i].bytes_out;
    }
    return t;
}

const ar_turn_stats_t *ar_turn_engine_stats(const ar_turn_engine_t *e)
{
    return &e->stats;
}

/* --- responses --- */

static int peer_allowed(const ar_turn_engine_t *e, const ar_turn_addr_t *peer)
{
    if (!e->sh->o.peer_allowed)
        return 0;
    struct sockaddr_storage ss;
    ar_turn_addr_to_sa(peer, &ss);
    return e->sh->o.peer_allowed(e->sh->o.peer_ctx, (const struct sockaddr *)&ss);
}

static void send_built(ar_turn_engine_t *e, const ar_turn_tuple_t *t, ar_stun_builder_t *b)
{
    int len = ar_stun_build_finish(b);
    if (len > 0)
        e->tp.send_client(e->tp.ctx, t, e->out, (size_t)len);
}

static void start_response(ar_turn_engine_t *e, ar_stun_builder_t *b, const ar_stun_msg_t *req,
                           uint8_t cls)
{
    ar_stun_build_start(b, e->out, sizeof(e->out), req->method, cls, req->tid);
}

/*
 * An error answer to a request that did not authenticate (401, 438, 400, 420). It carries REALM
 * and a fresh NONCE when asked, no SOFTWARE, and is dropped rather than sent when it would be
 * more than AR__TURN_AMP_FACTOR times the request: a spoofed source must gain nothing.
 */
static void reply_unauth(ar_turn_engine_t *e, const ar_turn_tuple_t *t, const ar_stun_msg_t *req,
                         int code, bool challenge)
{
    ar_stun_builder_t b;
    start_response(e, &b, req, AR_STUN_ERROR);
    ar_stun_build_error(&b, code, NULL);
    if (challenge) {
        uint8_t nonce[AR__TURN_NONCE_LEN];
        ar__turn_nonce_make(e, &t->client, nonce);
        ar_stun_build_attr(&b, AR_STUN_ATTR_REALM, e->sh->realm, e->sh->realm_len);
        ar_stun_build_attr(&b, AR_STUN_ATTR_NONCE, nonce, sizeof(nonce));
    }
    ar_stun_build_fingerprint(&b);
    int len = ar_stun_build_finish(&b);
    if (len <= 0 || (size_t)len > AR__TURN_AMP_FACTOR * req->raw_len)
        return;
    e->tp.send_client(e->tp.ctx, t, e->out, (size_t)len);
}

/* An error answer after authentication: signed with the user's key (RFC 8489 section 9.2.4). */
static void reply_error(ar_turn_engine_t *e, const ar_turn_tuple_t *t, const ar_stun_msg_t *req,
                        int code, const uint8_t *key)
{
    ar_stun_builder_t b;
    start_response(e, &b, req, AR_STUN_ERROR);
    ar_stun_build_error(&b, code, NULL);
    ar_stun_build_integrity(&b, key, 16);
    ar_stun_build_fingerprint(&b);
    send_built(e, t, &b);
}

static void reply_allocate_ok(ar_turn_engine_t *e, const ar_turn_tuple_t *t,
                              const ar_stun_msg_t *req, const ar_turn_alloc_t *a, uint64_t token)
{
    struct sockaddr_storage relayed, mapped;
    ar_turn_addr_to_sa(&a->advertised, &relayed);
    ar_turn_addr_to_sa(&t->client, &mapped);
    ar_stun_builder_t b;
    start_response(e, &b, req, AR_STUN_SUCCESS);
    ar_stun_build_xor_addr(&b, AR_TURN_ATTR_XOR_RELAYED_ADDRESS, (struct sockaddr *)&relayed);
    if (a->relay2) {
        /* A dual allocation's IPv6 address follows the IPv4 one (RFC 8656 section 7.2). */
        ar_turn_addr_t adv = a->relayed2;
        if (e->sh->o.external6.family != 0)
            memcpy(adv.ip, e->sh->o.external6.ip, 16);
        struct sockaddr_storage r6;
        ar_turn_addr_to_sa(&adv, &r6);
        ar_stun_build_xor_addr(&b, AR_TURN_ATTR_XOR_RELAYED_ADDRESS, (struct sockaddr *)&r6);
    }
    if (a->v6_error)
        ar_stun_build_address_error(&b, 6, a->v6_error, NULL);
    ar_stun_build_u32(&b, AR_TURN_ATTR_LIFETIME, a->expiry > e->now_s ? a->expiry - e->now_s : 0);
    ar_stun_build_xor_addr(&b, AR_STUN_ATTR_XOR_MAPPED_ADDRESS, (struct sockaddr *)&mapped);
    if (token) {
        uint8_t tv[8];
        for (int i = 0; i < 8; i++)
            tv[i] = (uint8_t)(token >> (56 - 8 * i));
        ar_stun_build_attr(&b, AR_TURN_ATTR_RESERVATION_TOKEN, tv, 8);
    }
    ar_stun_build_integrity(&b, a->key, 16);
    ar_stun_build_fingerprint(&b);
    send_built(e, t, &b);
}

/* --- requests --- */

static bool known_attr(uint16_t type)
{
    switch (type) {
    case AR_STUN_ATTR_MAPPED_ADDRESS:
    case AR_STUN_ATTR_USERNAME:
    case AR_STUN_ATTR_MESSAGE_INTEGRITY:
    case AR_STUN_ATTR_ERROR_CODE:
    case AR_TURN_ATTR_CHANNEL_NUMBER:
    case AR_TURN_ATTR_LIFETIME:
    case AR_TURN_ATTR_XOR_PEER_ADDRESS:
    case AR_TURN_ATTR_DATA:
    case AR_STUN_ATTR_REALM:
    case AR_STUN_ATTR_NONCE:
    case AR_TURN_ATTR_XOR_RELAYED_ADDRESS:
    case AR_TURN_ATTR_REQUESTED_ADDRESS_FAMILY:
    case AR_TURN_ATTR_EVEN_PORT:
    case AR_TURN_ATTR_REQUESTED_TRANSPORT:
    case AR_TURN_ATTR_DONT_FRAGMENT:
    case AR_STUN_ATTR_MESSAGE_INTEGRITY_SHA256:
    case AR_STUN_ATTR_PASSWORD_ALGORITHM:
    case AR_STUN_ATTR_USERHASH:
    case AR_STUN_ATTR_XOR_MAPPED_ADDRESS:
    case AR_TURN_ATTR_RESERVATION_TOKEN:
    case AR_STUN_ATTR_PRIORITY:
    case AR_STUN_ATTR_USE_CANDIDATE:
    case AR_TURN_ATTR_CONNECTION_ID:
        return true;
    default:
        return type >= 0x8000; /* comprehension-optional */
    }
}

/* Lifetime for Allocate and a non-zero Refresh (RFC 8656 sections 7.2 and 7.3). */
static uint32_t desired_lifetime(const ar_turn_engine_t *e, const ar_stun_msg_t *msg)
{
    uint32_t def = e->sh->o.default_lifetime, max = e->sh->o.max_lifetime, req = 0;
    const ar_stun_attr_t *lt = ar_stun_find(msg, AR_TURN_ATTR_LIFETIME);
    if (!lt || ar_stun_attr_u32(lt, &req) != 0)
        return def;
    if (req > max)
        req = max;
    return req > def ? req : def;
}

/* Decodes an XOR-PEER-ADDRESS: 0, or the error code to answer with. */
static int peer_attr(const ar_turn_engine_t *e, const ar_turn_alloc_t *a, const ar_stun_msg_t *msg,
                     const ar_stun_attr_t *attr, ar_turn_addr_t *peer)
{
    (void)e;
    struct sockaddr_storage ss;
    if (ar_stun_attr_xor_addr(attr, msg->tid, &ss) != 0 ||
        ar_turn_addr_from_sa(peer, (struct sockaddr *)&ss) != 0)
        return 400;
    if (peer->family != a->relayed.family && !(a->relay2 && peer->family == a->relayed2.family))
        return 443; /* Peer Address Family Mismatch (RFC 8656 section 9.1, RFC 6156) */
    return 0;
}

/* The endpoint that relays to peer: a dual allocation sends to IPv6 peers from its IPv6 one. */
static void *relay_for(const ar_turn_alloc_t *a, const ar_turn_addr_t *peer)
{
    return a->relay2 && peer->family == a->relayed2.family ? a->relay2 : a->relay;
}

/* a: the tuple's allocation, which handle_request looked up already (NULL: none). */
static void handle_allocate(ar_turn_engine_t *e, const ar_turn_tuple_t *t, const ar_stun_msg_t *msg,
                            const uint8_t *key, const uint8_t *uhash, ar_turn_alloc_t *a)
{
    if (a) {
        /* A retransmission of the Allocate that made it gets the same success (section 7.2). */
        if (memcmp(a->tid, msg->tid, 12) == 0 && memcmp(a->uhash, uhash, AR__TURN_UHASH_LEN) == 0)
            reply_allocate_ok(e, t, msg, a, 0);
        else
            reply_error(e, t, msg, 437, key);
        return;
    }
    const ar_stun_attr_t *rt = ar_stun_find(msg, AR_TURN_ATTR_REQUESTED_TRANSPORT);
    if (!rt || rt->len != 4) {
        reply_error(e, t, msg, 400, key);
        return;
    }
    bool tcp = rt->value[0] == AR_TURN_PROTO_TCP && e->tp.tcp_relay_open;
    if (rt->value[0] != AR_TURN_PROTO_UDP && !tcp) {
        reply_error(e, t, msg, 442, key);
        return;
    }
    /* RFC 6062 section 5.1: a TCP allocation is asked for over TCP or TLS, without EVEN-PORT,
     * RESERVATION-TOKEN or DONT-FRAGMENT. */
    if (tcp && (t->proto != AR_TURN_PROTO_TCP || ar_stun_find(msg, AR_TURN_ATTR_EVEN_PORT) ||
                ar_stun_find(msg, AR_TURN_ATTR_RESERVATION_TOKEN) ||
                ar_stun_find(msg, AR_TURN_ATTR_DONT_FRAGMENT))) {
        reply_error(e, t, msg, 400, key);
        return;
    }
    /* EVEN-PORT (with R: reserve the next port too) or RESERVATION-TOKEN, not both (7.2). */
    const ar_stun_attr_t *even = ar_stun_find(msg, AR_TURN_ATTR_EVEN_PORT);
    const ar_stun_attr_t *tok = ar_stun_find(msg, AR_TURN_ATTR_RESERVATION_TOKEN);
    ar_turn_relay_req_t req = {0};
    if ((even && tok) || (even && even->len != 1) || (tok && tok->len != 8)) {
        reply_error(e, t, msg, 400, key);
        return;
    }
    if (even) {
        req.even_port = 1;
        req.reserve_next = (even->value[0] & 0x80) != 0;
    }
    req.dont_fragment = ar_stun_find(msg, AR_TURN_ATTR_DONT_FRAGMENT) != NULL;
    for (size_t i = 0; tok && i < 8; i++)
        req.token = req.token << 8 | tok->value[i];
    if (tok && req.token == 0) {
        reply_error(e, t, msg, 508, key);
        return;
    }
    int family = tok ? 0 : 4; /* a token's reservation knows its family */
    const ar_stun_attr_t *raf = ar_stun_find(msg, AR_TURN_ATTR_REQUESTED_ADDRESS_FAMILY);
    if (raf && tok) {
        reply_error(e, t, msg, 400, key); /* the token fixes the family (RFC 6156) */
        return;
    }
    if (raf) {
        if (ar_stun_attr_family(raf, &family) != 0) {
            reply_error(e, t, msg, 440, key);
            return;
        }
    }
    /* ADDITIONAL-ADDRESS-FAMILY (RFC 8656 section 7.2): an IPv6 relayed address besides the IPv4
     * one. Not with REQUESTED-ADDRESS-FAMILY, never IPv4 (400); not with a RESERVATION-TOKEN,
     * which names one reserved port, nor for RFC 6062 TCP allocations (400 too). */
    const ar_stun_attr_t *aaf = ar_stun_find(msg, AR_TURN_ATTR_ADDITIONAL_ADDRESS_FAMILY);
    bool dual = false;
    if (aaf) {
        int af = 0, prc = ar_stun_attr_family(aaf, &af);
        if (raf || tok || tcp || prc == AR_EPARSE || (prc == 0 && af == 4)) {
            reply_error(e, t, msg, 400, key);
            return;
        }
        if (prc != 0) {
            reply_error(e, t, msg, 440, key);
            return;
        }
        dual = true;
    }
    const ar_turn_addr_t *relay_ip = family == 4 ? &e->sh->o.relay4 : &e->sh->o.relay6;
    if (family != 0 && relay_ip->family == 0) {
        reply_error(e, t, msg, 440, key);
        return;
    }
    if (e->sh->o.redirect_cb) {
        const struct sockaddr *alt = e->sh->o.redirect_cb(e->sh->o.redirect_ctx);
        if (alt) {
            ar_stun_builder_t b;
            start_response(e, &b, msg, AR_STUN_ERROR);
            ar_stun_build_error(&b, 300, NULL);
            ar_stun_build_addr(&b, AR_STUN_ATTR_ALTERNATE_SERVER, alt);
            ar_stun_build_integrity(&b, key, 16);
            ar_stun_build_fingerprint(&b);
            send_built(e, t, &b);
            return;
        }
    }
    int rc = ar__turn_alloc_create(e, t, uhash, &a);
    if (rc != 0) {
        if (rc == AR_EQUOTA)
            e->stats.quota_rejects++;
        reply_error(e, t, msg, rc == AR_EQUOTA ? 486 : 508, key);
        return;
    }
    memcpy(a->key, key, 16);
    memcpy(a->tid, msg->tid, 12);
    uint64_t token = 0;
    a->tcp = tcp;
    if (tcp)
        rc = e->tp.tcp_relay_open(e->tp.ctx, a, family, &a->relayed, &a->relay);
    else
        rc = e->tp.relay_open(e->tp.ctx, a, family, &req, &a->relayed, &token, &a->relay);
    if (rc != 0) {
        a->relay = NULL;
        ar__turn_alloc_delete(e, a);
        reply_error(e, t, msg, 508, key);
        return;
    }
    if (dual && e->sh->o.relay6.family == 0) {
        a->v6_error = 440; /* granted IPv4 only: this relay has no IPv6 relay address */
    } else if (dual) {
        /* EVEN-PORT (and its reservation) is honoured for the IPv4 address only. */
        ar_turn_relay_req_t req6 = {.dont_fragment = req.dont_fragment};
        uint64_t tok6 = 0;
        if (e->tp.relay_open(e->tp.ctx, a, 6, &req6, &a->relayed2, &tok6, &a->relay2) != 0) {
            a->relay2 = NULL;
            memset(&a->relayed2, 0, sizeof(a->relayed2));
            a->v6_error = 508;
        }
    }
    a->advertised = a->relayed;
    const ar_turn_addr_t *ext_ip =
        a->relayed.family == 4 ? &e->sh->o.external4 : &e->sh->o.external6;
    if (ext_ip->family != 0)
        memcpy(a->advertised.ip, ext_ip->ip, 16);
    ar__turn_alloc_set_expiry(e, a, desired_lifetime(e, msg));
    e->stats.tr[ar_turn_tuple_tr(t)].allocs_total++;
    reply_allocate_ok(e, t, msg, a, token);
}

static void handle_refresh(ar_turn_engine_t *e, const ar_turn_tuple_t *t, const ar_stun_msg_t *msg,
                           ar_turn_alloc_t *a)
{
    /* A family the allocation does not have is 443. A dual allocation is refreshed (or
     * deleted) whole, whichever of its families is named. */
    const ar_stun_attr_t *raf = ar_stun_find(msg, AR_TURN_ATTR_REQUESTED_ADDRESS_FAMILY);
    int fam = 0;
    if (raf && (ar_stun_attr_family(raf, &fam) != 0 ||
                (fam != a->relayed.family && !(a->relay2 && fam == a->relayed2.family)))) {
        reply_error(e, t, msg, 443, a->key);
        return;
    }
    uint32_t req = 1;
    const ar_stun_attr_t *lt = ar_stun_find(msg, AR_TURN_ATTR_LIFETIME);
    if (lt && ar_stun_attr_u32(lt, &req) != 0) {
        reply_error(e, t, msg, 400, a->key);
        return;
    }
    uint8_t key[16];
    memcpy(key, a->key, 16);
    uint32_t lifetime = 0;
    if (req == 0) {
        ar__turn_alloc_delete(e, a);
    } else {
        lifetime = desired_lifetime(e, msg);
        ar__turn_alloc_set_expiry(e, a, lifetime);
    }
    ar_stun_builder_t b;
    start_response(e, &b, msg, AR_STUN_SUCCESS);
    ar_stun_build_u32(&b, AR_TURN_ATTR_LIFETIME, lifetime);
    ar_stun_build_integrity(&b, key, 16);
    ar_stun_build_fingerprint(&b);
    sodium_memzero(key, sizeof(key));
    send_built(e, t, &b);
}

/*
 * Readies the endpoint that relays to peers of family fam, at its first permission: the
 * transport may bind the socket only now (see relay_arm). Called before anything is installed,
 * so a request whose endpoint cannot be readied fails whole (508) and can be retried. Each
 * endpoint of a dual allocation is readied on its own, so an IPv6 relay address that cannot be
 * bound does not fail the IPv4 permissions. A TCP allocation's endpoint is the stream
 * transport's and is always ready.
 */
static int arm(ar_turn_engine_t *e, ar_turn_alloc_t *a, int fam)
{
    bool second = a->relay2 && fam == a->relayed2.family;
    bool *armed = second ? &a->armed2 : &a->armed;
    if (*armed || a->tcp)
        return 0;
    if (e->tp.relay_arm) {
        int rc = e->tp.relay_arm(e->tp.ctx, second ? a->relay2 : a->relay);
        if (rc != 0) {
            e->stats.relay_bind_failed++;
            ar_log(AR_LOG_WARN, "relay_bind_failed",
                   AR_LF_UINT("port", second ? a->relayed2.port : a->relayed.port),
                   AR_LF_INT("family", fam), AR_LF_ERR("err", rc));
            return rc;
        }
    }
    *armed = true;
    return 0;
}

static void handle_create_permission(ar_turn_engine_t *e, const ar_turn_tuple_t *t,
                                     const ar_stun_msg_t *msg, ar_turn_alloc_t *a)
{
    /* Every address is checked before any is installed: the request succeeds or fails whole. */
    ar_turn_addr_t peers[AR_STUN_MAX_ATTRS];
    size_t n = 0;
    for (size_t i = 0; i < msg->nattrs; i++) {
        if (msg->attrs[i].type != AR_TURN_ATTR_XOR_PEER_ADDRESS)
            continue;
        int code = peer_attr(e, a, msg, &msg->attrs[i], &peers[n]);
        if (code == 0 && peer_allowed(e, &peers[n]) != 0) {
            e->stats.denied_peers++;
            code = 403;
        }
        if (code != 0) {
            reply_error(e, t, msg, code, a->key);
            return;
        }
        n++;
    }
    if (n == 0) {
        reply_error(e, t, msg, 400, a->key);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (arm(e, a, peers[i].family) != 0) {
            reply_error(e, t, msg, 508, a->key);
            return;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (ar__turn_perm_add(e, a, &peers[i]) != 0) {
            reply_error(e, t, msg, 508, a->key);
            return;
        }
    }
    ar_stun_builder_t b;
    start_response(e, &b, msg, AR_STUN_SUCCESS);
    ar_stun_build_integrity(&b, a->key, 16);
    ar_stun_build_fingerprint(&b);
    send_built(e, t, &b);
}

static void handle_channel_bind(ar_turn_engine_t *e, const ar_turn_tuple_t *t,
                                const ar_stun_msg_t *msg, ar_turn_alloc_t *a)
{
    const ar_stun_attr_t *cn = ar_stun_find(msg, AR_TURN_ATTR_CHANNEL_NUMBER);
    const ar_stun_attr_t *pa = ar_stun_find(msg, AR_TURN_ATTR_XOR_PEER_ADDRESS);
    if (!cn || cn->len != 4 || !pa) {
        reply_error(e, t, msg, 400, a->key);
        return;
    }
    uint16_t num = (uint16_t)(cn->value[0] << 8 | cn->value[1]);
    if (num < AR_TURN_CHANNEL_MIN || num > AR__TURN_CHANNEL_MAX_COMPAT) {
        ar_log(AR_LOG_DEBUG, "channel_number_refused", AR_LF_UINT("channel", num));
        reply_error(e, t, msg, 400, a->key);
        return;
    }
    ar_turn_addr_t peer;
    int code = peer_attr(e, a, msg, pa, &peer);
    if (code == 0 && peer_allowed(e, &peer) != 0) {
        e->stats.denied_peers++;
        code = 403;
    }
    if (code == 0 && arm(e, a, peer.family) != 0)
        code = 508;
    if (code == 0) {
        int rc = ar__turn_chan_bind(e, a, num, &peer);
        if (rc == 0)
            rc = ar__turn_perm_add(e, a, &peer);
        code = rc == 0 ? 0 : rc == AR_EINVAL ? 400 : 508;
    }
    if (code != 0) {
        ar_log(AR_LOG_DEBUG, "channel_bind_refused", AR_LF_UINT("channel", num),
               AR_LF_INT("code", code));
        reply_error(e, t, msg, code, a->key);
        return;
    }
    ar_stun_builder_t b;
    start_response(e, &b, msg, AR_STUN_SUCCESS);
    ar_stun_build_integrity(&b, a->key, 16);
    ar_stun_build_fingerprint(&b);
    send_built(e, t, &b);
}

/* RFC 6062 section 5.2: Connect. The answer follows from ar_turn_engine_connect_done. */
static void handle_connect(ar_turn_engine_t *e, const ar_turn_tuple_t *t, const ar_stun_msg_t *msg,
                           ar_turn_alloc_t *a)
{
    const ar_stun_attr_t *pa = ar_stun_find(msg, AR_TURN_ATTR_XOR_PEER_ADDRESS);
    ar_turn_addr_t peer;
    int code = !a->tcp || !pa ? 400 : peer_attr(e, a, msg, pa, &peer);
    /* The policy sees the canonical address: IPv4-mapped, NAT64 and 6to4 forms included. */
    if (code == 0 && peer_allowed(e, &peer) != 0) {
        e->stats.denied_peers++;
        code = 403;
    }
    if (code == 0) {
        int rc = e->tp.peer_connect(e->tp.ctx, a->relay, t, &peer, msg->tid);
        code = rc == 0 ? 0 : rc == AR_EEXIST ? 446 : 447;
    }
    if (code != 0)
        reply_error(e, t, msg, code, a->key);
}

void ar_turn_engine_connect_done(ar_turn_engine_t *e, const ar_turn_tuple_t *ctrl,
                                 const uint8_t tid[12], uint32_t cid)
{
    ar_turn_alloc_t *a = ar__turn_alloc_find(e, ctrl);
    if (!a)
        return; /* the control connection went away meanwhile */
    ar_stun_builder_t b;
    ar_stun_build_start(&b, e->out, sizeof(e->out), AR_TURN_CONNECT,
                        cid ? AR_STUN_SUCCESS : AR_STUN_ERROR, tid);
    if (cid) {
        uint8_t v[4] = {(uint8_t)(cid >> 24), (uint8_t)(cid >> 16), (uint8_t)(cid >> 8),
                        (uint8_t)cid};
        ar_stun_build_attr(&b, AR_TURN_ATTR_CONNECTION_ID, v, 4);
    } else {
        ar_stun_build_error(&b, 447, NULL);
    }
    ar_stun_build_integrity(&b, a->key, 16);
    ar_stun_build_fingerprint(&b);
    send_built(e, ctrl, &b);
}

int ar_turn_engine_connection_attempt(ar_turn_engine_t *e, ar_turn_alloc_t *a,
                                      const ar_turn_addr_t *peer, uint32_t cid)
{
    if (peer_allowed(e, peer) != 0) {
        e->stats.denied_peers++;
        return AR_EPERM;
    }
    if (!ar__turn_perm_ok(e, a, peer)) {
        e->stats.no_perm_dropped++;
        return AR_EPERM;
    }
    struct sockaddr_storage ss;
    ar_turn_addr_to_sa(peer, &ss);
    uint8_t tid[12];
    ar_rand_bytes(tid, sizeof(tid));
    uint8_t v[4] = {(uint8_t)(cid >> 24), (uint8_t)(cid >> 16), (uint8_t)(cid >> 8), (uint8_t)cid};
    ar_stun_builder_t b;
    ar_stun_build_start(&b, e->out, sizeof(e->out), AR_TURN_CONNECTION_ATTEMPT, AR_STUN_INDICATION,
                        tid);
    ar_stun_build_attr(&b, AR_TURN_ATTR_CONNECTION_ID, v, 4);
    ar_stun_build_xor_addr(&b, AR_TURN_ATTR_XOR_PEER_ADDRESS, (struct sockaddr *)&ss);
    ar_stun_build_fingerprint(&b);
    send_built(e, &a->tuple, &b);
    return 0;
}

/* RFC 6062 section 5.4: ConnectionBind on a new client connection with no allocation. */
static void handle_connection_bind(ar_turn_engine_t *e, const ar_turn_tuple_t *t,
                                   const ar_stun_msg_t *msg, const uint8_t *key,
                                   const uint8_t *uhash)
{
    const ar_stun_attr_t *ca = ar_stun_find(msg, AR_TURN_ATTR_CONNECTION_ID);
    uint32_t cid = 0;
    if (t->proto != AR_TURN_PROTO_TCP || !e->tp.data_bind || !ca ||
        ar_stun_attr_u32(ca, &cid) != 0 || ar__turn_alloc_find(e, t) ||
        e->tp.data_bind(e->tp.ctx, t, cid, uhash) != 0) {
        reply_error(e, t, msg, 400, key);
        return;
    }
    ar_stun_builder_t b;
    start_response(e, &b, msg, AR_STUN_SUCCESS);
    ar_stun_build_integrity(&b, key, 16);
    ar_stun_build_fingerprint(&b);
    send_built(e, t, &b);
}

static void handle_binding(ar_turn_engine_t *e, const ar_turn_tuple_t *t, const ar_stun_msg_t *msg)
{
    if (!ar__turn_rate_ok(e, &t->client)) {
        e->stats.rate_limited++;
        return;
    }
    struct sockaddr_storage mapped;
    ar_turn_addr_to_sa(&t->client, &mapped);
    ar_stun_builder_t b;
    start_response(e, &b, msg, AR_STUN_SUCCESS);
    ar_stun_build_xor_addr(&b, AR_STUN_ATTR_XOR_MAPPED_ADDRESS, (struct sockaddr *)&mapped);
    ar_stun_build_fingerprint(&b);
    int len = ar_stun_build_finish(&b);
    if (len > 0 && (size_t)len <= AR__TURN_AMP_FACTOR * msg->raw_len)
        e->tp.send_client(e->tp.ctx, t, e->out, (size_t)len);
}

/* RFC 3489 clients (no magic cookie) get their mapped address, rate limited like any Binding. */
static void handle_classic_binding(ar_turn_engine_t *e, const ar_turn_tuple_t *t,
                                   const uint8_t *buf, size_t len)
{
    if (!ar__turn_rate_ok(e, &t->client)) {
        e->stats.rate_limited++;
        return;
    }
    struct sockaddr_storage mapped;
    ar_turn_addr_to_sa(&t->client, &mapped);
    int n = ar_stun_classic_binding_response(buf, len, (struct sockaddr *)&mapped, e->out,
                                             sizeof(e->out));
    if (n <= 0) {
        e->stats.bad_packets++;
        return;
    }
    e->tp.send_client(e->tp.ctx, t, e->out, (size_t)n);
}

static void handle_request(ar_turn_engine_t *e, const ar_turn_tuple_t *t, const ar_stun_msg_t *msg)
{
    if (msg->method == AR_STUN_BINDING) {
        handle_binding(e, t, msg);
        return;
    }
    bool turn_method = msg->method == AR_TURN_ALLOCATE || msg->method == AR_TURN_REFRESH ||
                       msg->method == AR_TURN_CREATE_PERMISSION ||
                       msg->method == AR_TURN_CHANNEL_BIND || msg->method == AR_TURN_CONNECT ||
                       msg->method == AR_TURN_CONNECTION_BIND;
    uint16_t unknown[AR_STUN_MAX_ATTRS];
    size_t nunknown = 0;
    for (size_t i = 0; i < msg->nattrs; i++) {
        if (!known_attr(msg->attrs[i].type))
            unknown[nunknown++] = htons(msg->attrs[i].type);
    }
    uint8_t key[16], uhash[AR__TURN_UHASH_LEN];
    ar__auth_result_t ar = AR__AUTH_BAD_REQ;
    /* One lookup serves authentication and the method (nothing changes the table between).
     * A request without MESSAGE-INTEGRITY (every first Allocate) gets its 401 without one: the
     * lookup of a new client's tuple is a walk over cold memory that would find nothing. */
    bool check = turn_method && nunknown == 0;
    ar_turn_alloc_t *a = check && msg->integrity_off != 0 ? ar__turn_alloc_find(e, t) : NULL;
    if (check)
        ar = ar__turn_authenticate(e, t, msg, a, key, uhash);
    if (ar != AR__AUTH_OK) {
        /* Everything that failed to authenticate counts against the source's budget. */
        if (!ar__turn_rate_ok(e, &t->client)) {
            e->stats.rate_limited++;
            return;
        }
        if (!turn_method || (nunknown == 0 && ar == AR__AUTH_BAD_REQ)) {
            reply_unauth(e, t, msg, 400, false);
        } else if (nunknown) {
            ar_stun_builder_t b;
            start_response(e, &b, msg, AR_STUN_ERROR);
            ar_stun_build_error(&b, 420, NULL);
            ar_stun_build_attr(&b, AR_STUN_ATTR_UNKNOWN_ATTRIBUTES, unknown, nunknown * 2);
            ar_stun_build_fingerprint(&b);
            int len = ar_stun_build_finish(&b);
            if (len > 0 && (size_t)len <= AR__TURN_AMP_FACTOR * msg->raw_len)
                e->tp.send_client(e->tp.ctx, t, e->out, (size_t)len);
        } else if (ar == AR__AUTH_STALE) {
            e->stats.stale_nonces++;
            reply_unauth(e, t, msg, 438, true);
        } else {
            if (ar == AR__AUTH_FAILED)
                e->stats.auth_failures++;
            reply_unauth(e, t, msg, 401, true);
        }
        return;
    }
    if (msg->method == AR_TURN_ALLOCATE) {
        handle_allocate(e, t, msg, key, uhash, a);
    } else if (msg->method == AR_TURN_CONNECTION_BIND) {
        handle_connection_bind(e, t, msg, key, uhash);
    } else {
        if (!a)
            reply_error(e, t, msg, 437, key);
        else if (memcmp(a->uhash, uhash, AR__TURN_UHASH_LEN) != 0)
            reply_error(e, t, msg, 441, key); /* Wrong Credentials (section 5) */
        else if (msg->method == AR_TURN_REFRESH)
            handle_refresh(e, t, msg, a);
        else if (msg->method == AR_TURN_CREATE_PERMISSION)
            handle_create_permission(e, t, msg, a);
        else if (msg->method == AR_TURN_CONNECT)
            handle_connect(e, t, msg, a);
        else if (a->tcp)
            reply_error(e, t, msg, 400, a->key); /* no channels on TCP allocations */
        else
            handle_channel_bind(e, t, msg, a);
    }
    sodium_memzero(key, sizeof(key));
}

/* A packet from client t relayed to a peer, counted by t's transport. */
static void count_out(ar_turn_engine_t *e, const ar_turn_tuple_t *t, size_t len)
{
    ar_turn_tr_stats_t *tr = &e->stats.tr[ar_turn_tuple_tr(t)];
    tr->pkts_out++;
    tr->bytes_out += len;
}

void ar_turn_engine_count_stream(ar_turn_engine_t *e, const ar_turn_tuple_t *t, int out,
                                 size_t bytes)
{
    ar_turn_tr_stats_t *tr = &e->stats.tr[ar_turn_tuple_tr(t)];
    if (out)
        tr->bytes_out += bytes;
    else
        tr->bytes_in += bytes;
}

/* Send indication (section 11.2): relayed when a permission exists, silently dropped if not. */
static void handle_send(ar_turn_engine_t *e, const ar_turn_tuple_t *t, const ar_stun_msg_t *msg)
{
    if (msg->method != AR_TURN_SEND)
        return;
    ar_turn_alloc_t *a = ar__turn_alloc_find(e, t);
    const ar_stun_attr_t *pa = ar_stun_find(msg, AR_TURN_ATTR_XOR_PEER_ADDRESS);
    const ar_stun_attr_t *data = ar_stun_find(msg, AR_TURN_ATTR_DATA);
    ar_turn_addr_t peer;
    if (!a || a->tcp || !pa || !data || peer_attr(e, a, msg, pa, &peer) != 0) {
        e->stats.bad_packets++;
        return;
    }
    if (!ar__turn_perm_ok(e, a, &peer)) {
        e->stats.no_perm_dropped++;
        return;
    }
    /* The permission was checked against the policy when installed; this second check keeps a
     * policy change (or a bug elsewhere) from ever relaying to a refused address. */
    if (peer_allowed(e, &peer) != 0) {
        e->stats.denied_peers++;
        return;
    }
    if (data->len > AR_TURN_MAX_UDP_PAYLOAD) {
        ar_turn_engine_count_oversize(e, data->len);
        return;
    }
    if (!ar__turn_bw_take(e, &a->bw_out, data->len)) {
        e->stats.bw_dropped++;
        return;
    }
    count_out(e, t, data->len);
    e->tp.send_peer(e->tp.ctx, relay_for(a, &peer), &peer, data->value, data->len);
}

static void handle_channel_data(ar_turn_engine_t *e, const ar_turn_tuple_t *t, const uint8_t *buf,
                                size_t len)
{
    uint16_t num;
    const uint8_t *data;
    size_t dlen;
    /* Parsed here rather than with ar_turn_channel_parse(), which keeps to RFC 8656's range. */
    num = (uint16_t)(buf[0] << 8 | buf[1]);
    dlen = (size_t)(buf[2] << 8 | buf[3]);
    data = buf + 4;
    if (dlen > len - 4) {
        e->stats.bad_packets++;
        return;
    }
    ar_turn_alloc_t *a = ar__turn_alloc_find(e, t);
    ar__turn_chan_t *c = a ? ar__turn_chan_by_num(e, a, num) : NULL;
    if (!c) {
        e->stats.bad_packets++;
        return;
    }
    if (!ar__turn_perm_ok(e, a, &c->peer)) {
        e->stats.no_perm_dropped++;
        return;
    }
    if (dlen > AR_TURN_MAX_UDP_PAYLOAD) {
        ar_turn_engine_count_oversize(e, dlen);
        return;
    }
    if (!ar__turn_bw_take(e, &a->bw_out, dlen)) {
        e->stats.bw_dropped++;
        return;
    }
    count_out(e, t, dlen);
    e->tp.send_peer(e->tp.ctx, relay_for(a, &c->peer), &c->peer, data, dlen);
}

void ar_turn_engine_on_client(ar_turn_engine_t *e, const ar_turn_tuple_t *t, uint8_t *buf,
                              size_t len)
{
    if (len >= 4 && (buf[0] & 0xc0) == 0x40) {
        handle_channel_data(e, t, buf, len);
        return;
    }
    if (len >= 8 && (buf[0] & 0xc0) == 0 &&
        ((uint32_t)buf[4] << 24 | (uint32_t)buf[5] << 16 | (uint32_t)buf[6] << 8 | buf[7]) !=
            AR_STUN_MAGIC_COOKIE) {
        handle_classic_binding(e, t, buf, len);
        return;
    }
    ar_stun_msg_t msg;
    if (ar_stun_parse(buf, len, &msg) != 0 || ar_stun_check_fingerprint(&msg) != 0) {
        e->stats.bad_packets++;
        return;
    }
    if (msg.cls == AR_STUN_REQUEST)
        handle_request(e, t, &msg);
    else if (msg.cls == AR_STUN_INDICATION)
        handle_send(e, t, &msg);
}

/* --- peer datagrams --- */

void ar_turn_engine_client_closed(ar_turn_engine_t *e, const ar_turn_tuple_t *t)
{
    ar_turn_alloc_t *a = ar__turn_alloc_find(e, t);
    if (a)
        ar__turn_alloc_delete(e, a);
}

int ar_turn_engine_has_allocation(ar_turn_engine_t *e, const ar_turn_tuple_t *t)
{
    return ar__turn_alloc_find(e, t) != NULL;
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

void ar_turn_engine_on_peer(ar_turn_engine_t *e, ar_turn_alloc_t *a, const ar_turn_addr_t *peer,
                            uint8_t *buf, size_t len)
{
    if (!ar__turn_perm_ok(e, a, peer)) {
        e->stats.no_perm_dropped++;
        return;
    }
    ar__turn_chan_t *c = ar__turn_chan_by_peer(e, a, peer);
    size_t alen = peer->family == 4 ? 8 : 20;
    size_t pad = (4 - (len & 3)) & 3;
    /* A Data indication's attributes must fit the 16-bit STUN length; ChannelData carries up to
     * 65535 bytes, more than any UDP datagram. */
    if (len > AR_TURN_MAX_UDP_PAYLOAD || (!c && 4 + alen + 4 + len + pad > 0xffff)) {
        ar_turn_engine_count_oversize(e, len);
        return;
    }
    if (!ar__turn_bw_take(e, &a->bw_in, len)) {
        e->stats.bw_dropped++;
        return;
    }
    uint8_t *payload = buf + AR_TURN_HEADROOM;
    ar_turn_tr_stats_t *tr = &e->stats.tr[ar_turn_tuple_tr(&a->tuple)];
    tr->pkts_in++;
    tr->bytes_in += len;
    if (c) {
        /* ChannelData (section 12.4): the codec says how much padding a stream frame needs
         * (section 12.5); over UDP the padding is optional and we send none. */
        uint8_t *h = payload - 4;
        int cpad = ar_turn_channel_header(h, c->num, len);
        if (cpad < 0)
            return; /* not reached: channel numbers and len were checked above */
        size_t flen = len + 4;
        if (a->tuple.proto == AR_TURN_PROTO_TCP) {
            memset(payload + len, 0, (size_t)cpad);
            flen += (size_t)cpad;
        }
        e->tp.send_client(e->tp.ctx, &a->tuple, h, flen);
        return;
    }
    /* Data indication (section 11.4): header, XOR-PEER-ADDRESS, DATA, written in place. */
    size_t hdr = 20 + 4 + alen + 4;
    uint8_t *m = payload - hdr;
    put16(m, 0x0017);
    put16(m + 2, (uint16_t)(hdr - 20 + len + pad));
    m[4] = 0x21, m[5] = 0x12, m[6] = 0xa4, m[7] = 0x42;
    randombytes_buf(m + 8, 12);
    uint8_t *at = m + 20;
    put16(at, AR_TURN_ATTR_XOR_PEER_ADDRESS);
    put16(at + 2, (uint16_t)alen);
    at[4] = 0;
    at[5] = peer->family == 4 ? 1 : 2;
    put16(at + 6, peer->port ^ 0x2112);
    for (size_t i = 0; i < alen - 4; i++)
        at[8 + i] = peer->ip[i] ^ m[4 + i]; /* cookie, then transaction id, as the RFC says */
    at += 4 + alen;
    put16(at, AR_TURN_ATTR_DATA);
    put16(at + 2, (uint16_t)len);
    memset(payload + len, 0, pad);
    e->tp.send_client(e->tp.ctx, &a->tuple, m, hdr + len + pad);
}

void ar_turn_engine_count_oversize(ar_turn_engine_t *e, size_t len)
{
    e->stats.oversize_dropped++;
    /* One line a second at most, so a flood of big packets cannot become a flood of logs. */
    if (e->oversize_logged_s != e->now_s + 1) {
        e->oversize_logged_s = e->now_s + 1;
        ar_log(AR_LOG_WARN, "turn_oversize_dropped", AR_LF_UINT("bytes", len),
               AR_LF_UINT("max", AR_TURN_MAX_UDP_PAYLOAD),
               AR_LF_UINT("total", e->stats.oversize_dropped));
    }
}
